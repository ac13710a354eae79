"""pairflow dashboard: ``streamlit run dashboard`` (Streamlit runs this file).

A thin reader of the flow's DuckDB file. This file is the page skeleton: settings,
sidebar, view selector, the live fragment and the dispatch to one view module:
:mod:`dashboard.render_pair`, :mod:`dashboard.render_strategy`, :mod:`dashboard.scanner`,
:mod:`dashboard.render_health`, :mod:`dashboard.render_data`. Every refresh opens the
file read-only (:mod:`dashboard.app_data`), closes it, and draws the selected view. The
live part is an ``st.fragment`` that reruns every few seconds; the sidebar controls
rerun the whole page.

Configuration comes from the usual ``PAIRFLOW_*`` settings: ``PAIRFLOW_DB`` (the file),
``PAIRFLOW_REDIS_URL`` (stream lengths; empty = none), ``PAIRFLOW_PAIRS``,
``PAIRFLOW_ENTRY_Z`` / ``PAIRFLOW_EXIT_Z`` (the default thresholds).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import duckdb
import streamlit as st

from dashboard import db as dbio
from dashboard import pair_view, scanner
from dashboard import strategy_view as sv
from dashboard.app_config import AppConfig, Controls, load_app_config
from dashboard.app_data import (
    Snapshot,
    discover_pairs,
    discover_strategies,
    is_synthetic,
    shared_snapshot,
)
from dashboard.render_data import render_data_tab
from dashboard.render_health import render_health_tab
from dashboard.render_pair import render_kpis, render_pair_tab
from dashboard.render_strategy import render_strategy_tab
from dashboard.ui import STALE_AFTER_S, fmt_age, fmt_clock, fmt_time, missing_db_message
from pairflow import timeutil
from pairflow.config import redact_url
from pairflow.timeutil import UTC

LOG = logging.getLogger("pairflow.dashboard")

# (Comments, not docstrings, at module level: Streamlit "magic" would print a bare
# string literal of this script.)
REFRESH_CHOICES_S: tuple[int, ...] = (1, 2, 5, 10, 30)
DEFAULT_REFRESH_S = 2
DEFAULT_LOOKBACK = "15 min"

VIEW_PAIR = "Pair analytics"
VIEW_STRATEGY = "Strategy"
VIEW_SCANNER = "Scanner"
VIEW_HEALTH = "Pipeline health"
VIEW_DATA = "Data"
VIEWS: tuple[str, ...] = (VIEW_PAIR, VIEW_STRATEGY, VIEW_SCANNER, VIEW_HEALTH, VIEW_DATA)
# Only the selected view is drawn (st.tabs would build and ship every tab's charts
# before the browser can draw the first one).


# --------------------------------------------------------------------------- sidebar


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


# --------------------------------------------------------------------------- live fragment


def render_live(cfg: AppConfig, ctl: Controls) -> None:
    """One refresh: read the data (read-only, closed at once) and draw everything.

    Messages go into a container of their own, so that the charts below keep the
    same place in Streamlit's element tree whether or not a message is shown.
    """
    t0 = time.perf_counter()
    now = datetime.now(tz=UTC)
    status = f"● live, every {ctl.refresh_s} s" if ctl.live else "⏸ paused"
    status_slot = st.empty()
    status_slot.caption(f"{status} · read at {fmt_clock(now)} UTC")
    notices = st.container()
    body = st.container()
    try:
        _render_body(cfg, ctl, now, notices, body)
    finally:
        took_ms = (time.perf_counter() - t0) * 1000
        status_slot.caption(f"{status} · read at {fmt_clock(now)} UTC · drawn in {took_ms:.0f} ms")


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
        notices.info(missing_db_message(cfg.db_path))
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
            f"{fmt_clock(snap.view.read_at)} UTC."
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
        st.info(missing_db_message(cfg.db_path))
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
