"""The Pair analytics view: the KPI row over every view, and the pair's seven charts.

Queries are in :mod:`dashboard.pair_view`, figures in :mod:`dashboard.pair_charts`.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from dashboard import pair_charts, pair_view
from dashboard.app_config import AppConfig, Controls
from dashboard.ui import STALE_AFTER_S, fmt_age, fmt_number, fmt_price, fmt_time, kpi, plotly_chart
from pairflow.timeutil import TF_MS

# The pair view's charts, row by row; each is drawn under the key ``chart_<name>``.
PAIR_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("legs", "candles"),
    ("spread", "zscore"),
    ("corr", "beta", "pvalues"),
)

FIRST_REFRESH_CHARTS = 1
_ALL_DRAWN = "pair_charts_all_drawn"
# A session's first live refresh draws the first FIRST_REFRESH_CHARTS charts only (the
# others keep empty slots), the next refresh all of them (_ALL_DRAWN: a session-state
# flag). A browser draws every chart of one refresh in one go, so the first chart is
# on screen only when all seven are (~0.1-0.3 s each on a slow machine, after ~4.7 MB
# of Plotly code has compiled); staging puts it there sooner. A paused page (no next
# refresh) draws all at once.


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
    staged = ctl.live and not st.session_state.get(_ALL_DRAWN)
    names = PAIR_LAYOUT[0][:FIRST_REFRESH_CHARTS] if staged else sum(PAIR_LAYOUT, ())
    figs = pair_charts.pair_figures(
        view, ctl.candle_leg, ctl.entry, ctl.exit, kalman_z=ctl.kalman, only=names
    )
    for row in PAIR_LAYOUT:
        for col, name in zip(st.columns(len(row)), row, strict=True):
            with col:
                if name in figs:
                    plotly_chart(figs[name], key=f"chart_{name}")
                else:
                    st.empty()  # this chart's slot, filled by the next refresh
    st.session_state[_ALL_DRAWN] = True
