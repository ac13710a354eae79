"""pairflow dashboard: ``streamlit run dashboard`` (Streamlit runs this file).

A thin reader of the flow's DuckDB file. Every refresh opens the file read-only,
runs the queries of :mod:`dashboard.queries`, closes it, and draws the figures of
:mod:`dashboard.charts`. The live part is an ``st.fragment`` that reruns every few
seconds; the sidebar controls rerun the whole page.

Configuration comes from the usual ``PAIRFLOW_*`` settings: ``PAIRFLOW_DB`` (the file),
``PAIRFLOW_REDIS_URL`` (stream lengths; empty = none), ``PAIRFLOW_PAIRS``,
``PAIRFLOW_ENTRY_Z`` / ``PAIRFLOW_EXIT_Z`` (the default thresholds).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pandas as pd
import streamlit as st

from dashboard import charts, export, pair_view, pipeline_health, redis_streams, scanner, snapshot
from dashboard import db as dbio
from dashboard import strategy_view as sv
from pairflow import timeutil
from pairflow.config import DEFAULTS, ConfigError, load_settings, parse_windows, redact_url
from pairflow.timeutil import TF_MS, UTC

LOG = logging.getLogger("pairflow.dashboard")

# The newest bar is stale (flow stopped?) when it ended longer ago than this.
# (Comments, not docstrings: Streamlit "magic" would print a bare string literal.)
STALE_AFTER_S = 30.0

REFRESH_CHOICES_S: tuple[int, ...] = (1, 2, 5, 10, 30)
DEFAULT_REFRESH_S = 2
DEFAULT_LOOKBACK = "15 min"
PREVIEW_ROWS = 200
HEALTH_EVERY_S = 4.5  # the flow reports pipeline stats every 5 s
PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

VIEW_PAIR = "Pair analytics"
VIEW_STRATEGY = "Strategy"
VIEW_SCANNER = "Scanner"
VIEW_HEALTH = "Pipeline health"
VIEW_DATA = "Data"
VIEWS: tuple[str, ...] = (VIEW_PAIR, VIEW_STRATEGY, VIEW_SCANNER, VIEW_HEALTH, VIEW_DATA)
# Only the selected view is drawn (st.tabs would build and ship every tab's charts
# before the browser can draw the first one).
TRADE_ROWS = 200
SYNTHETIC_DB_NAMES = ("demo-scan.db",)  # the scan demo's file (pairflow.demo)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AppConfig:
    """What the dashboard needs from the pairflow settings.

    Attributes:
        db_path: DuckDB file to read.
        redis_url: Redis URL for stream lengths, or ``None``. May hold a password:
            show it only through :func:`pairflow.config.redact_url`.
        redis_prefix: ``PAIRFLOW_REDIS_PREFIX`` (the tee's key prefix).
        pairs: Configured pairs (``Y/X``), offered even before they have data.
        entry_z: Default entry threshold.
        exit_z: Default exit threshold.
        windows: ``PAIRFLOW_WINDOWS`` (W per analysed timeframe), for "N of W bars".
        source_kind: ``binance``, ``replay`` or ``synthetic`` (``PAIRFLOW_SOURCE``).
        warmup: ``PAIRFLOW_WARMUP`` of the live source (``None`` for other sources).
        warning: Why the settings could not be loaded (defaults used), if so.
    """

    db_path: Path
    redis_url: str | None
    redis_prefix: str
    pairs: tuple[str, ...]
    entry_z: float
    exit_z: float
    windows: dict[str, int] = field(default_factory=dict)
    source_kind: str = "binance"
    warmup: str | None = None
    warning: str | None = None


def load_app_config(env: Mapping[str, str] | None = None) -> AppConfig:
    """Load the settings the dashboard needs; never raises on a bad setting.

    A :class:`~pairflow.config.ConfigError` (say, a replay file that is gone) is
    turned into ``warning`` and the dashboard falls back to ``PAIRFLOW_DB`` /
    ``PAIRFLOW_REDIS_URL`` read directly, and defaults for the rest.
    """
    env = os.environ if env is None else env
    try:
        s = load_settings(env)
    except ConfigError as exc:
        redis_url = env.get("PAIRFLOW_REDIS_URL", DEFAULTS["REDIS_URL"]).strip() or None
        try:
            windows = parse_windows(env.get("PAIRFLOW_WINDOWS", "").strip() or DEFAULTS["WINDOWS"])
        except (ConfigError, ValueError):
            windows = {}
        source = env.get("PAIRFLOW_SOURCE", "").strip().lower()
        return AppConfig(
            windows=windows,
            source_kind=source.split(":", 1)[0] if source else "binance",
            db_path=Path(env.get("PAIRFLOW_DB", "").strip() or DEFAULTS["DB"]),
            redis_url=redis_url,
            redis_prefix=env.get("PAIRFLOW_REDIS_PREFIX", "").strip(),
            pairs=("BTCUSDT/ETHUSDT",),
            entry_z=float(DEFAULTS["ENTRY_Z"]),
            exit_z=float(DEFAULTS["EXIT_Z"]),
            warning=str(exc),
        )
    return AppConfig(
        db_path=s.db_path,
        redis_url=s.redis_url,
        redis_prefix=s.redis_prefix,
        pairs=tuple(f"{y}/{x}" for y, x in s.pairs),
        entry_z=s.entry_z,
        exit_z=s.exit_z,
        windows=dict(s.windows),
        source_kind=s.source_kind,
        warmup=getattr(s.source, "warmup", None),
    )


# --------------------------------------------------------------------------- formatting


def fmt_price(value: float | None) -> str:
    """Price with a precision that suits its size (``61,837.63``, ``0.0001234``)."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    if abs(value) >= 1:
        return f"{value:,.4f}"
    return f"{value:.6g}"


def fmt_number(value: object, spec: str) -> str:
    """Format ``value`` with ``spec``, or an em dash when it is missing."""
    if value is None:
        return "—"
    try:
        return format(float(value), spec)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"


def fmt_age(seconds: float, *, compact: bool = False) -> str:
    """Human age: ``4 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``, ``838 days``.

    ``compact`` keeps only the largest unit (``3 h``, ``838 d``).
    """
    s = max(0.0, seconds)
    if compact and s >= 3600:
        return f"{s / 86_400:,.0f} d" if s >= 86_400 * 2 else f"{s / 3600:.0f} h"
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86_400:
        h, rest = divmod(int(s), 3600)
        return f"{h} h {rest // 60} min"
    d, rest = divmod(int(s), 86_400)
    return f"{d} d {rest // 3600} h" if d < 3 else f"{d:,} days"


def fmt_bytes(n: int) -> str:
    """Bytes as ``12.3 MB``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def fmt_time(ts: datetime | None) -> str:
    """``2024-08-08 23:59:59 UTC``."""
    if ts is None:
        return "—"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- data access


@st.cache_data(ttl=15, show_spinner=False)
def discover_pairs(db_path: str) -> list[str]:
    """Pairs with data in the database (empty when it cannot be read right now)."""
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            return pair_view.list_pairs(con)
    except (dbio.DashboardDataError, duckdb.Error):
        return []


@st.cache_data(ttl=5, show_spinner=False)
def redis_lengths(
    url: str, symbols: tuple[str, ...], prefix: str
) -> tuple[dict[str, int], str | None]:
    """Stream lengths, or an error message (cached briefly so a dead Redis costs once)."""
    try:
        return redis_streams.redis_stream_lengths(url, symbols, prefix), None
    except dbio.DashboardDataError as exc:
        return {}, str(exc)


@st.cache_data(ttl=15, show_spinner=False)
def discover_strategies(db_path: str) -> dict[str, dict[str, Any]]:
    """Strategies in the database (name -> params); empty when it cannot be read."""
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            return sv.list_strategies(con)
    except (dbio.DashboardDataError, duckdb.Error):
        return {}


_SYNTHETIC_SQL = {
    "rejects": "SELECT 1 FROM rejects WHERE source = 'synthetic' LIMIT 1",
    "pipeline_stats": (
        "SELECT 1 FROM pipeline_stats WHERE component = 'source' AND metric = 'synthetic' LIMIT 1"
    ),
}


@st.cache_data(ttl=30, show_spinner=False)
def db_says_synthetic(db_path: str) -> bool:
    """Whether the database itself says its data came from the synthetic source.

    (``rejects.source = 'synthetic'``, or the flow's ``source``/``synthetic`` stat.)
    """
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            tables = dbio.existing_tables(con)
            return any(
                con.execute(sql).fetchone() is not None
                for table, sql in _SYNTHETIC_SQL.items()
                if table in tables
            )
    except (dbio.DashboardDataError, duckdb.Error):
        return False


def is_synthetic(cfg: AppConfig) -> bool:
    """Whether the data shown is synthetic.

    Any of: ``PAIRFLOW_SOURCE=synthetic``, the scan demo's file name, or the
    database's own record of its source.
    """
    return (
        cfg.source_kind == "synthetic"
        or cfg.db_path.name in SYNTHETIC_DB_NAMES
        or "synthetic" in cfg.db_path.name.lower()
        or db_says_synthetic(str(cfg.db_path))
    )


class Snapshot(NamedTuple):
    """One read of everything the selected view shows."""

    view: pair_view.ViewData
    health: pipeline_health.HealthData
    strategy: sv.StrategyData
    grid_points: int | None
    """Grid points of the pair at the view's tf when it has no analytics yet."""


@st.cache_resource(ttl=1.0, max_entries=32, show_spinner=False)
def shared_snapshot(db_path: str, req: pair_view.ViewRequest) -> Snapshot:
    """One read of the database, shared by every viewer of the same view for 1 s.

    Several browser tabs then cost one read-only open per second, not one each,
    which keeps the flow's writer from waiting on readers. Errors are not cached.
    """
    with dbio.open_readonly(db_path) as con:
        tables = dbio.existing_tables(con)
        view, health = snapshot.load_snapshot(con, req, db_path, health_max_age_s=HEALTH_EVERY_S)
        strategy = sv.load_strategy(
            con, req.strategy, req.pair, req.tf, view.start, view.end, view.bucket_s, tables=tables
        )
        grid = None
        if not view.has_analytics and "bars" in tables:
            grid = pair_view.grid_points(con, req.y, req.x, req.tf)
        return Snapshot(view, health, strategy, grid)


def pair_options(cfg: AppConfig) -> list[str]:
    """Pairs found in the database first, then configured ones; all validated.

    The pair the scanner just opened is kept even if the list is a few seconds old.
    """
    options: list[str] = []
    chosen = st.session_state.get("pair")
    extra = [chosen] if isinstance(chosen, str) else []
    for name in [*discover_pairs(str(cfg.db_path)), *cfg.pairs, *extra]:
        try:
            pair_view.parse_pair(name)
        except ValueError:
            continue
        if name not in options:
            options.append(name)
    return options


# --------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class Controls:
    """The sidebar's choices."""

    pair: str
    tf: str
    lookback: str
    entry: float
    exit: float
    candle_leg: str
    live: bool
    refresh_s: int
    strategy: str = sv.DEFAULT_STRATEGY
    strategy_params: dict[str, Any] = field(default_factory=dict)

    def request(self) -> pair_view.ViewRequest:
        """The query request for these controls (validates the pair)."""
        y, x = pair_view.parse_pair(self.pair)
        return pair_view.ViewRequest(
            y=y,
            x=x,
            tf=self.tf,
            lookback=pair_view.LOOKBACKS[self.lookback],
            strategy=self.strategy,
        )

    @property
    def kalman(self) -> bool:
        """The selected strategy trades the Kalman z."""
        return self.strategy_params.get("model") == "kalman"


def sidebar(cfg: AppConfig, pairs: list[str]) -> Controls:
    """Draw the controls and return their values."""
    sb = st.sidebar
    sb.markdown("## pairflow")
    sb.caption("Crypto pair-trading analytics")
    pair = sb.selectbox("Pair (Y / X)", pairs, key="pair", help="From the analytics table.")
    # No `default=`: the scanner sets this key from a callback (a default as well
    # would make Streamlit warn about the double source of the value).
    st.session_state.setdefault("tf", "1s")
    tf = sb.segmented_control("Timeframe", timeutil.TIMEFRAMES, required=True, key="tf")
    known = discover_strategies(str(cfg.db_path))
    names = sv.strategy_order(list(known)) or [sv.DEFAULT_STRATEGY]
    strategy = sb.selectbox(
        "Strategy",
        names,
        key="strategy",
        help="Paper strategy whose signals, trades and equity are shown (from the "
        "`strategies` table; PAIRFLOW_STRATEGIES).",
    )
    strategy = strategy if strategy and sv.is_valid_strategy(strategy) else sv.DEFAULT_STRATEGY
    lookback = sb.select_slider(
        "Lookback",
        options=list(pair_view.LOOKBACKS),
        value=DEFAULT_LOOKBACK,
        key="lookback",
        help="Measured back from the newest bar in the database, so a replay shows too.",
    )
    c1, c2 = sb.columns(2)
    entry = c1.number_input(
        "Entry |z|", min_value=0.1, max_value=10.0, value=cfg.entry_z, step=0.1, key="entry"
    )
    exit_ = c2.number_input(
        "Exit |z|", min_value=0.0, max_value=10.0, value=cfg.exit_z, step=0.1, key="exit"
    )
    y, x = pair_view.parse_pair(pair) if pair else ("Y", "X")
    leg = sb.radio(
        "Candlestick leg",
        ("Y", "X"),
        format_func=lambda v: y if v == "Y" else x,
        horizontal=True,
        key="candle_leg",
    )
    sb.divider()
    live = sb.toggle("Live refresh", value=True, key="live")
    refresh_s = sb.select_slider(
        "Refresh every",
        options=REFRESH_CHOICES_S,
        value=DEFAULT_REFRESH_S,
        format_func=lambda s: f"{s} s",
        key="refresh_s",
        disabled=not live,
    )
    sb.divider()
    sb.caption(f"Database: `{cfg.db_path.name}`", help=str(cfg.db_path.resolve()))
    sb.caption(f"Redis: `{redact_url(cfg.redis_url)}`" if cfg.redis_url else "Redis: off")
    return Controls(
        pair=pair or "",
        tf=tf or "1s",
        lookback=lookback,
        entry=float(entry),
        exit=float(exit_),
        candle_leg=y if leg == "Y" else x,
        live=bool(live),
        refresh_s=int(refresh_s),
        strategy=strategy,
        strategy_params=known.get(strategy, {}),
    )


# --------------------------------------------------------------------------- rendering


def kpi(
    col: st.delta_generator.DeltaGenerator,
    label: str,
    value: str,
    note: str | None = None,
    tone: str = "off",
) -> None:
    """One bordered KPI card; ``note`` is shown below the value in ``tone``.

    Args:
        col: Where to draw it.
        label: Card title.
        value: Main value.
        note: Short text under the value (no arrow), or ``None``.
        tone: ``off`` (grey), ``normal`` (green) or ``inverse`` (red).
    """
    col.metric(
        label,
        value,
        delta=note,
        delta_color=tone,  # type: ignore[arg-type]
        delta_arrow="off",
        border=True,
        height="stretch",
    )


def z_zone(z: float | None, entry: float, exit_: float) -> str | None:
    """Where ``z`` sits against the thresholds (display only)."""
    if z is None:
        return None
    if z >= entry:
        return "short zone"
    if z <= -entry:
        return "long zone"
    if abs(z) <= exit_:
        return "exit band"
    return None


def render_kpis(view: pair_view.ViewData, ctl: Controls, now: datetime) -> None:
    """The KPI row: last prices, β, z, correlation, EG p-value, half-life, bar age."""
    req = view.request
    latest = view.latest
    cols = st.columns(8)
    kpi(cols[0], f"{req.y} last", fmt_price(view.last_close.get(req.y)))
    kpi(cols[1], f"{req.x} last", fmt_price(view.last_close.get(req.x)))
    kpi(cols[2], "Hedge ratio β", fmt_number(latest.get("beta"), ".4f"))
    z = latest.get("zscore")
    kpi(cols[3], "Z-score", fmt_number(z, "+.2f"), z_zone(z, ctl.entry, ctl.exit))
    kpi(cols[4], "Return corr.", fmt_number(latest.get("corr"), ".3f"))
    eg = latest.get("eg_pvalue")
    if eg is None:
        kpi(cols[5], "Engle-Granger p", "—")
    elif eg < 0.05:
        kpi(cols[5], "Engle-Granger p", fmt_number(eg, ".4f"), "< 0.05", "normal")
    else:
        kpi(cols[5], "Engle-Granger p", fmt_number(eg, ".4f"), "≥ 0.05", "inverse")
    hl = latest.get("half_life")
    if hl is None:
        kpi(cols[6], "Half-life", "—")
    else:
        seconds = float(hl) * TF_MS[req.tf] / 1000
        kpi(cols[6], "Half-life", f"{float(hl):.1f} bars", "≈ " + fmt_age(seconds))
    if view.newest_bar_end is None:
        kpi(cols[7], "Newest bar age", "—")
    else:
        age = (now - view.newest_bar_end).total_seconds()
        stale = age > STALE_AFTER_S
        kpi(
            cols[7],
            "Newest bar age",
            fmt_age(age, compact=True),
            "stale" if stale else "fresh",
            "inverse" if stale else "normal",
        )


def window_message(cfg: AppConfig, req: pair_view.ViewRequest, grid_points: int | None) -> str:
    """Why a timeframe has no analytics yet, and how long it needs (display only).

    ``W`` comes from ``PAIRFLOW_WINDOWS`` (the ``analytics.window`` column does not
    exist before the first row); ``grid_points`` is what the pair has so far.
    """
    head = f"No analytics for {req.pair} at {req.tf} yet"
    w = cfg.windows.get(req.tf)
    if cfg.windows and w is None:
        analysed = ", ".join(f"{tf} (W={n})" for tf, n in cfg.windows.items())
        return (
            f"{head}: {req.tf} is not analysed (`PAIRFLOW_WINDOWS` lists {analysed}). "
            f"Add `{req.tf}=W` to analyse it."
        )
    if w is None:
        return f"{head}: the flow writes them once the window has filled with bars of both legs."
    have = grid_points or 0
    need = max(0, w - have)
    wait = fmt_age(need * TF_MS[req.tf] / 1000)
    text = (
        f"{head}: the window needs **W = {w} {req.tf} bars** of both legs and has "
        f"**{have:,}** so far ({need:,} to go, ≈ {wait} at one bar per {req.tf})."
    )
    if cfg.source_kind == "binance":
        if cfg.warmup and cfg.warmup != "off":
            text += (
                f" Live: the warm start (`PAIRFLOW_WARMUP={cfg.warmup}`) fills it from REST "
                "klines when the flow starts; the Pipeline health view says if it was partial."
            )
        else:
            text += " Live: turn on the warm start (`PAIRFLOW_WARMUP=auto`) to fill it at start."
    else:
        text += (
            " This input does not hold enough history for it; a live run with the warm "
            "start (`PAIRFLOW_WARMUP=auto`) fills every window within seconds."
        )
    return text


def render_pair_tab(
    cfg: AppConfig, view: pair_view.ViewData, ctl: Controls, grid_points: int | None = None
) -> None:
    """The charts of the pair view."""
    req = view.request
    top = st.container()  # a fixed slot: the charts keep their place in the tree
    if view.end is not None and view.start is not None:
        bucket = (
            f"downsampled to {fmt_age(view.bucket_s)} buckets"
            if view.downsampled
            else f"one point per {req.tf} bar"
        )
        top.caption(
            f"{fmt_time(view.start)} → {fmt_time(view.end)} ({ctl.lookback} back from the "
            f"newest {req.tf} bar), {bucket}."
        )
    if not view.has_analytics:
        top.info(window_message(cfg, req, grid_points))
    figs = charts.pair_figures(view, ctl.candle_leg, ctl.entry, ctl.exit, kalman_z=ctl.kalman)
    layout = (("legs", "candles"), ("spread", "zscore"), ("corr", "beta", "pvalues"))
    for row in layout:
        for col, name in zip(st.columns(len(row)), row, strict=True):
            with col:
                st.plotly_chart(
                    figs[name], key=f"chart_{name}", config=PLOTLY_CONFIG, width="stretch"
                )


def _params_text(params: dict[str, Any]) -> str:
    if not params:
        return "parameters not in the `strategies` table"
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def render_strategy_tab(view: pair_view.ViewData, data: sv.StrategyData, ctl: Controls) -> None:
    """One paper strategy on the pair: KPIs, equity, drawdown and the trade list.

    Every number is the flow's (``strategy_stats``, ``strategy_equity``,
    ``strategy_trades``); only the drawdown curve is drawn from the stored equity.
    """
    st.caption(
        f"Strategy **{data.strategy}** on {data.pair} at {data.tf}: "
        f"{_params_text(data.params)}. Paper fills at the next bar's closes; no order "
        "book, funding or borrow costs. Entry/exit markers are on the Pair analytics z chart."
    )
    stats = data.stats
    cols = st.columns(7)
    pnl = stats.get("pnl")
    tone = "off" if pnl is None else ("normal" if pnl >= 0 else "inverse")
    kpi(
        cols[0],
        "PnL",
        fmt_number(pnl, ",.2f"),
        fmt_number(stats.get("return_pct"), "+.2f") + " %",
        tone,
    )
    kpi(cols[1], "Sharpe (annualised)", fmt_number(stats.get("sharpe"), ".2f"))
    kpi(cols[2], "Max drawdown", fmt_number(stats.get("max_drawdown"), ",.2f"))
    win = stats.get("win_rate")
    kpi(cols[3], "Win rate", "—" if win is None else f"{100 * float(win):.0f} %")
    kpi(cols[4], "Trades", fmt_number(stats.get("trades"), ",.0f"))
    exposure = stats.get("exposure")
    kpi(cols[5], "Exposure", "—" if exposure is None else f"{100 * float(exposure):.0f} %")
    kpi(cols[6], "Mean bars held", fmt_number(stats.get("mean_bars_held"), ".1f"))
    if not stats:
        st.info(
            f"No results of strategy '{data.strategy}' for {data.pair} at {data.tf} yet: "
            "strategies run on the analytics rows, so they start when the window is full."
        )
    figs = charts.strategy_figures(view, data)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figs["equity"], key="chart_equity", config=PLOTLY_CONFIG, width="stretch")
    with right:
        st.plotly_chart(
            figs["drawdown"], key="chart_drawdown", config=PLOTLY_CONFIG, width="stretch"
        )
    st.markdown("**Closed trades** (newest first)")
    if data.trades.empty:
        st.caption("No closed trade yet.")
        return
    shown = data.trades.head(TRADE_ROWS)
    st.caption(
        f"{data.trade_count:,} closed trades; the newest {len(shown):,} below. "
        "Times are fills (UTC); side +1 = long spread (long Y, short β·X)."
    )
    num = st.column_config.NumberColumn
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * len(shown)),
        column_config={
            "entry_ts": st.column_config.DatetimeColumn("entry", format="YYYY-MM-DD HH:mm:ss"),
            "exit_ts": st.column_config.DatetimeColumn("exit", format="YYYY-MM-DD HH:mm:ss"),
            "side": num("side", format="%+d"),
            "entry_z": num("entry z", format="%.2f"),
            "exit_z": num("exit z", format="%.2f"),
            "beta": num("β", format="%.4f"),
            "q_y": num("q Y", format="%.6g"),
            "q_x": num("q X", format="%.6g"),
            "entry_y": num("Y in", format="%.6g"),
            "entry_x": num("X in", format="%.6g"),
            "exit_y": num("Y out", format="%.6g"),
            "exit_x": num("X out", format="%.6g"),
            "fees": num("fees", format="%.2f"),
            "pnl": num("PnL", format="%.2f"),
            "bars_held": num("bars", format="%d"),
        },
    )


def render_revisions(health: pipeline_health.HealthData) -> None:
    """Amendments: how many numbers the flow revised after late data, and when."""
    st.markdown("**Revised after late data (amendments)**")
    by_symbol = health.amendments_by_symbol()
    by_key = health.recomputed_by_key()
    if by_symbol.empty and by_key.empty:
        st.caption(
            "No bar was amended: every number shown is as first computed. (The flow "
            "reports `amended_bars_total` when a late tick or a backfill changes a bar.)"
        )
        return
    last = health.last_revision()
    bars = int(by_symbol["bars_amended"].sum()) if not by_symbol.empty else 0
    rows = int(by_key["rows_recomputed"].sum()) if not by_key.empty else 0
    st.caption(
        f"{bars:,} bars amended (all timeframes, counted per symbol), {rows:,} analytics "
        f"rows recomputed; the last revision at {fmt_time(last)}. Analytics, signals, "
        "trades and equity from an amended interval on were recomputed from the final bars."
    )
    c1, c2 = st.columns(2)
    with c1:
        if not by_symbol.empty:
            st.dataframe(
                by_symbol, hide_index=True, width="stretch", height=_table_height(by_symbol)
            )
    with c2:
        if not by_key.empty:
            st.dataframe(by_key, hide_index=True, width="stretch", height=_table_height(by_key))


def render_warmup(health: pipeline_health.HealthData) -> None:
    """The live source's warm start: complete, or partial with how much is missing."""
    wu = health.warmup
    if wu.empty:
        return
    for row in wu.itertuples(index=False):
        if row.complete:
            st.success(
                f"Warm start of `{row.component}` complete: every analysed timeframe "
                f"started with full history (reported {fmt_time(pd_time(row.ts))})."
            )
        else:
            st.warning(
                f"**Warm start of `{row.component}` partial**: {row.missing_intervals:,} kline "
                f"intervals not fetched, {row.missing_symbols:,} symbols without trades since "
                "the 5m boundary (REST throttled or down). Windows fill from live bars; "
                "the first analytics rows of those timeframes come later."
            )


def pd_time(value: object) -> datetime | None:
    """A pandas/NumPy timestamp as an aware datetime (``None`` if missing)."""
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return (ts if ts.tzinfo else ts.tz_localize("UTC")).to_pydatetime()


def _table_height(frame: object, max_rows: int = 12) -> int:
    """Pixel height that shows every row of ``frame`` (up to ``max_rows``)."""
    n = len(frame)  # type: ignore[arg-type]
    return 38 + 35 * max(1, min(n, max_rows))


def render_health_tab(
    cfg: AppConfig, view: pair_view.ViewData, health: pipeline_health.HealthData
) -> None:
    """Pipeline health: throughput, rejects, late ticks, reconnects, gaps, Redis, DB."""
    cols = st.columns(6)
    rate_label = "Ticks/s" if health.rate_source == "pipeline_stats" else "Trades/s (bars)"
    kpi(cols[0], rate_label, fmt_number(health.latest_rate, ",.1f"))
    kpi(cols[1], "Rejected inputs", fmt_number(health.row_counts.get("rejects"), ",.0f"))
    kpi(cols[2], "Late ticks", fmt_number(health.late_ticks, ",.0f"))
    kpi(cols[3], "Reconnects", fmt_number(health.reconnects, ",.0f"))
    found = health.row_counts.get("gaps", 0)
    kpi(cols[4], "Gaps not filled", f"{health.open_gaps:,}", f"{found:,} found")
    kpi(cols[5], "DB size", fmt_bytes(health.db_bytes))
    render_warmup(health)

    figs = charts.health_figures(health)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figs["rate"], key="chart_rate", config=PLOTLY_CONFIG, width="stretch")
    with right:
        st.plotly_chart(figs["rejects"], key="chart_rejects", config=PLOTLY_CONFIG, width="stretch")

    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        st.markdown("**Redis streams**")
        if not cfg.redis_url:
            st.caption("Redis tee is off (`PAIRFLOW_REDIS_URL` is empty).")
        else:
            legs = (view.request.y, view.request.x)
            lengths, error = redis_lengths(cfg.redis_url, legs, cfg.redis_prefix)
            if error:
                st.caption(f"⚠️ {error}")
            else:
                st.dataframe(
                    [{"stream": k, "entries": v} for k, v in lengths.items()],
                    hide_index=True,
                    width="stretch",
                )
    with c2:
        st.markdown("**Rows per table**")
        counts = [{"table": k, "rows": v} for k, v in health.row_counts.items()]
        st.dataframe(
            counts,
            hide_index=True,
            width="stretch",
            height=_table_height(counts, max_rows=len(counts)),  # every table, no scrolling
        )
    with c3:
        st.markdown("**Gaps in trade ids (newest)**")
        if health.gaps_recent.empty:
            st.caption("No gaps detected.")
        else:
            st.dataframe(health.gaps_recent, hide_index=True, width="stretch")
    render_revisions(health)
    with st.expander("All pipeline stats (newest value per component and metric)"):
        if health.stats_latest.empty:
            st.caption("The flow has not reported any stats yet.")
        else:
            st.dataframe(health.stats_latest, hide_index=True, width="stretch")


def render_data_tab(view: pair_view.ViewData) -> None:
    """The current view as a table, with a CSV download."""
    req = view.request
    stamp = view.end.strftime("%Y%m%dT%H%M%SZ") if view.end else "empty"
    name = f"pairflow_{req.y}-{req.x}_{req.tf}_{stamp}.csv"
    st.download_button(
        "Download CSV of the current view",
        data=lambda: export.view_table(view).to_csv(index=False).encode(),
        file_name=name,
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download_csv",
    )
    preview = export.view_table(view, last=PREVIEW_ROWS)
    st.caption(
        f"{len(view.leg(req.y)):,} rows in the view (one per bucket); the newest "
        f"{len(preview):,} below, newest first."
    )
    st.dataframe(preview.iloc[::-1], hide_index=True, width="stretch", height=360)


def missing_db_message(cfg: AppConfig) -> str:
    """What to do when the database file does not exist yet."""
    return (
        f"**No database yet** at `{cfg.db_path}`.\n\n"
        "Start the flow to create it, for example a replay of the shared recording:\n\n"
        "```\nPAIRFLOW_SOURCE=replay:PATH.ndjson.gz PAIRFLOW_REPLAY_SPEED=max "
        "python -m bytewax.run dataflow\n```\n"
        "or point the dashboard at another file with `PAIRFLOW_DB`."
    )


def render_live(cfg: AppConfig, ctl: Controls) -> None:
    """One refresh: read the data (read-only, closed at once) and draw everything.

    Messages go into a container of their own, so that the charts below keep the
    same place in Streamlit's element tree whether or not a message is shown.
    """
    t0 = time.perf_counter()
    now = datetime.now(tz=UTC)
    status = f"● live, every {ctl.refresh_s} s" if ctl.live else "⏸ paused"
    status_slot = st.empty()
    status_slot.caption(f"{status} · read at {now.strftime('%H:%M:%S')} UTC")
    notices = st.container()
    body = st.container()
    try:
        _render_body(cfg, ctl, now, notices, body)
    finally:
        took_ms = (time.perf_counter() - t0) * 1000
        status_slot.caption(
            f"{status} · read at {now.strftime('%H:%M:%S')} UTC · drawn in {took_ms:.0f} ms"
        )


def _render_body(
    cfg: AppConfig,
    ctl: Controls,
    now: datetime,
    notices: st.delta_generator.DeltaGenerator,
    body: st.delta_generator.DeltaGenerator,
) -> None:
    try:
        req = ctl.request()
    except ValueError as exc:
        notices.warning(f"Pick a pair: {exc}")
        return
    state_key = (str(cfg.db_path), req)
    try:
        snap = shared_snapshot(str(cfg.db_path), req)
        st.session_state["last_good"] = (state_key, snap)
    except dbio.DatabaseMissingError:
        notices.info(missing_db_message(cfg))
        return
    except dbio.DatabaseLockedError as exc:
        last = st.session_state.get("last_good")
        if last is None or last[0] != state_key:
            notices.warning(
                f"**The database is busy.** {exc} The dashboard tries again on the next refresh."
            )
            return
        _, snap = last
        notices.warning(
            f"The database is busy (the flow holds its lock); showing data read at "
            f"{snap.view.read_at.strftime('%H:%M:%S')} UTC."
        )
    except dbio.SchemaMissingError:
        notices.info(
            f"`{cfg.db_path}` has no pairflow tables yet; they appear when the flow "
            "writes its first bars."
        )
        return
    except (dbio.DashboardDataError, duckdb.Error) as exc:
        notices.error(f"Cannot read the database: {exc}")
        return

    view = snap.view
    if view.newest_bar_end is None:
        notices.info(
            f"No bars for {req.y} or {req.x} yet. They appear a second or two after the "
            "flow sees their first trades."
        )
        return
    age = (now - view.newest_bar_end).total_seconds()
    if age > STALE_AFTER_S:
        notices.warning(
            f"**Newest bar is {fmt_age(age)} old** (ended {fmt_time(view.newest_bar_end)}): "
            "the flow is stopped, or this is a replayed recording. Views are measured back "
            "from the newest bar."
        )
    if not view.has_bars:
        notices.info(f"No {req.tf} bars for {req.pair} yet; try another timeframe.")
    with body:
        render_kpis(view, ctl, now)
        selected = current_view()
        # A container per view (keyed): switching views then mounts fresh elements
        # instead of turning one view's charts into another view's tables in place
        # (which left st.dataframe blank in Chromium).
        slot = st.container(key=f"view_{VIEWS.index(selected)}")
        with slot:
            _render_view(selected, cfg, ctl, snap)


def _render_view(selected: str, cfg: AppConfig, ctl: Controls, snap: Snapshot) -> None:
    """Draw the selected view (only that one)."""
    if selected == VIEW_STRATEGY:
        render_strategy_tab(snap.view, snap.strategy, ctl)
    elif selected == VIEW_HEALTH:
        render_health_tab(cfg, snap.view, snap.health)
    elif selected == VIEW_DATA:
        render_data_tab(snap.view)
    else:
        render_pair_tab(cfg, snap.view, ctl, snap.grid_points)


def current_view() -> str:
    """The view picked in the view selector (the pair view by default)."""
    value = st.session_state.get("view")
    return value if value in VIEWS else VIEW_PAIR


def _open_from_scanner(pair: str, tf: str) -> None:
    """Scanner callback: show the pair view of the pair just opened.

    The whole app must rerun, since the sidebar lives outside the live fragment.
    """
    st.session_state["view"] = VIEW_PAIR
    st.session_state["rerun_app"] = True


def render_scanner_view(cfg: AppConfig) -> None:
    """The Scanner view (its own read of the ``scan`` table)."""
    try:
        scanner.render_scanner_tab(
            lambda: dbio.open_readonly(cfg.db_path),
            timeframes=timeutil.TIMEFRAMES,
            on_open=_open_from_scanner,
        )
    except dbio.DatabaseMissingError:
        st.info(missing_db_message(cfg))
    except dbio.DatabaseLockedError as exc:
        st.warning(
            f"**The database is busy.** {exc} The dashboard tries again on the next refresh."
        )
    except (dbio.DashboardDataError, duckdb.Error) as exc:
        st.error(f"Cannot read the scan: {exc}")


def _safe_live(cfg: AppConfig, ctl: Controls) -> None:
    if st.session_state.pop("rerun_app", False):
        st.rerun()  # the scanner opened a pair: redraw the sidebar and the pair view
    try:
        if current_view() == VIEW_SCANNER:
            render_scanner_view(cfg)
        else:
            render_live(cfg, ctl)
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        LOG.exception("dashboard refresh failed")
        st.error(f"Something went wrong while drawing the dashboard: {type(exc).__name__}: {exc}")


def main() -> None:
    """Entry point of the Streamlit script."""
    st.set_page_config(page_title="pairflow", page_icon="📈", layout="wide")
    st.html(
        "<style>.block-container{padding-top:2.2rem;padding-bottom:1rem}"
        "[data-testid='stMetricValue']{font-size:1.45rem}</style>"
    )
    cfg = load_app_config()
    pairs = pair_options(cfg)
    ctl = sidebar(cfg, pairs)
    synthetic = is_synthetic(cfg)
    y, x = (ctl.pair.split("/") + ["", ""])[:2]
    badge = " :orange-badge[:material/science: SYNTHETIC DATA]" if synthetic else ""
    st.markdown((f"### {y} / {x} · {ctl.tf}" if ctl.pair else "### pairflow") + badge)
    if synthetic:
        st.sidebar.markdown(":orange-badge[:material/science: SYNTHETIC DATA]")
        st.caption(
            "**Synthetic data**: simulated prices from pairflow's synthetic source "
            "(planted cointegrated pairs), not market prices."
        )
    st.session_state.setdefault("view", VIEW_PAIR)
    st.segmented_control("View", VIEWS, required=True, key="view", label_visibility="collapsed")
    if cfg.warning:
        st.warning(f"Settings problem, using defaults: {cfg.warning}")
    if ctl.exit >= ctl.entry:
        st.warning("Exit |z| should be below entry |z|; bands are drawn as given.")
    run_every = timedelta(seconds=ctl.refresh_s) if ctl.live else None
    st.fragment(run_every=run_every)(_safe_live)(cfg, ctl)


if __name__ == "__main__":
    main()
