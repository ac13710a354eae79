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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import streamlit as st

from dashboard import charts, export, pair_view, pipeline_health, redis_streams, snapshot
from dashboard import db as dbio
from pairflow import timeutil
from pairflow.config import DEFAULTS, ConfigError, load_settings, redact_url
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
        warning: Why the settings could not be loaded (defaults used), if so.
    """

    db_path: Path
    redis_url: str | None
    redis_prefix: str
    pairs: tuple[str, ...]
    entry_z: float
    exit_z: float
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
        return AppConfig(
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


@st.cache_resource(ttl=1.0, max_entries=32, show_spinner=False)
def shared_snapshot(
    db_path: str, req: pair_view.ViewRequest
) -> tuple[pair_view.ViewData, pipeline_health.HealthData]:
    """One read of the database, shared by every viewer of the same view for 1 s.

    Several browser tabs then cost one read-only open per second, not one each,
    which keeps the flow's writer from waiting on readers. Errors are not cached.
    """
    with dbio.open_readonly(db_path) as con:
        return snapshot.load_snapshot(con, req, db_path, health_max_age_s=HEALTH_EVERY_S)


def pair_options(cfg: AppConfig) -> list[str]:
    """Pairs found in the database first, then configured ones; all validated."""
    options: list[str] = []
    for name in [*discover_pairs(str(cfg.db_path)), *cfg.pairs]:
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

    def request(self) -> pair_view.ViewRequest:
        """The query request for these controls (validates the pair)."""
        y, x = pair_view.parse_pair(self.pair)
        return pair_view.ViewRequest(
            y=y, x=x, tf=self.tf, lookback=pair_view.LOOKBACKS[self.lookback]
        )


def sidebar(cfg: AppConfig, pairs: list[str]) -> Controls:
    """Draw the controls and return their values."""
    sb = st.sidebar
    sb.markdown("## pairflow")
    sb.caption("Crypto pair-trading analytics")
    pair = sb.selectbox("Pair (Y / X)", pairs, key="pair", help="From the analytics table.")
    tf = sb.segmented_control(
        "Timeframe", timeutil.TIMEFRAMES, default="1s", required=True, key="tf"
    )
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


def render_pair_tab(view: pair_view.ViewData, ctl: Controls) -> None:
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
        top.info(
            f"No analytics for {req.pair} at {req.tf} in this view yet: the flow writes "
            "them once the analytics window has filled with bars of both legs."
        )
    figs = charts.pair_figures(view, ctl.candle_leg, ctl.entry, ctl.exit)
    layout = (("legs", "candles"), ("spread", "zscore"), ("corr", "beta", "pvalues"))
    for row in layout:
        for col, name in zip(st.columns(len(row)), row, strict=True):
            with col:
                st.plotly_chart(
                    figs[name], key=f"chart_{name}", config=PLOTLY_CONFIG, width="stretch"
                )


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
        st.dataframe(
            [{"table": k, "rows": v} for k, v in health.row_counts.items()],
            hide_index=True,
            width="stretch",
        )
    with c3:
        st.markdown("**Gaps in trade ids (newest)**")
        if health.gaps_recent.empty:
            st.caption("No gaps detected.")
        else:
            st.dataframe(health.gaps_recent, hide_index=True, width="stretch")
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
        view, health = shared_snapshot(str(cfg.db_path), req)
        st.session_state["last_good"] = (state_key, view, health)
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
        _, view, health = last
        notices.warning(
            f"The database is busy (the flow holds its lock); showing data read at "
            f"{view.read_at.strftime('%H:%M:%S')} UTC."
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
        tab_pair, tab_health, tab_data = st.tabs(["Pair analytics", "Pipeline health", "Data"])
        with tab_pair:
            render_pair_tab(view, ctl)
        with tab_health:
            render_health_tab(cfg, view, health)
        with tab_data:
            render_data_tab(view)


def _safe_live(cfg: AppConfig, ctl: Controls) -> None:
    try:
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
    y, x = (ctl.pair.split("/") + ["", ""])[:2]
    st.markdown(f"### {y} / {x} · {ctl.tf}" if ctl.pair else "### pairflow")
    if cfg.warning:
        st.warning(f"Settings problem, using defaults: {cfg.warning}")
    if ctl.exit >= ctl.entry:
        st.warning("Exit |z| should be below entry |z|; bands are drawn as given.")
    run_every = timedelta(seconds=ctl.refresh_s) if ctl.live else None
    st.fragment(run_every=run_every)(_safe_live)(cfg, ctl)


if __name__ == "__main__":
    main()
