"""The Pipeline health view's charts: throughput per component and rejected inputs.

Built from :class:`dashboard.pipeline_health.HealthData` (helpers in
:mod:`dashboard.chart_base`).
"""

from __future__ import annotations

import plotly.graph_objects as go

from dashboard import chart_base as base
from dashboard.pipeline_health import HealthData

PALETTE = ("#2563eb", "#f59e0b", "#16a34a", "#7c3aed", "#db2777", "#0891b2")

HEALTH_CHARTS: tuple[str, ...] = ("rate", "rejects")


def rate_figure(health: HealthData) -> go.Figure:
    """Ticks per second per component (or trades/s of the 1s bars as a fallback)."""
    if health.rate_source == "pipeline_stats":
        title = "Ticks/s, last hour of stats"
    else:
        title = "Trades/s from the 1s bars, last 15 minutes (no stats reported)"
    if health.rate.empty:
        return base.empty_figure(title, "No throughput stats yet")
    traces = [
        base.hover_line(
            base.ms(grp["t"]),
            base.floats(grp["value"]),
            str(component),
            PALETTE[i % len(PALETTE)],
            ",.1f",
            unit="/s",
            width=1.4,
        )
        for i, (component, grp) in enumerate(health.rate.groupby("component", sort=True))
    ]
    return base.figure(traces, base.layout(title, "rate"))


def rejects_figure(health: HealthData) -> go.Figure:
    """Rejected inputs by reason (all time)."""
    title = "Rejected inputs by reason"
    rej = health.rejects
    if rej.empty:
        return base.empty_figure(title, "No rejected input")
    rej = rej.sort_values("n")
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": rej["n"].to_numpy(dtype=float),
        "y": rej["reason"].astype(str).tolist(),
        "marker": {"color": base.DOWN_COLOR},
        "opacity": 0.8,
        "name": "rejects",
        "hovertemplate": "%{x:,}<extra>%{y}</extra>",
    }
    layout = base.layout(
        title,
        "rejects",
        showlegend=False,
        hovermode="closest",
        bargap=0.45,
        xaxis={"type": "linear", "tickformat": ",d"},
        yaxis={"automargin": True, "showgrid": False},
    )
    return base.figure([trace], layout)


def health_figures(health: HealthData) -> dict[str, go.Figure]:
    """Every chart of the health view, by name, in :data:`HEALTH_CHARTS` order."""
    return {"rate": rate_figure(health), "rejects": rejects_figure(health)}
