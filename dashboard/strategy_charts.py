"""The Strategy view's charts: the stored equity with the position, and the drawdown.

Built from :class:`dashboard.strategy_view.StrategyData` on the pair view's time axis
(helpers in :mod:`dashboard.chart_base`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard import chart_base as base
from dashboard.pair_view import ViewData
from dashboard.strategy_view import StrategyData

EQUITY_COLOR = "#16a34a"
DRAWDOWN_COLOR = "#dc2626"
DRAWDOWN_FILL = "rgba(220, 38, 38, 0.18)"
NO_EQUITY = "No equity rows for this strategy, pair and timeframe yet"

STRATEGY_CHARTS: tuple[str, ...] = ("equity", "drawdown")


def _equity_figure(view: ViewData, data: StrategyData, t: np.ndarray, title: str) -> go.Figure:
    """The stored equity (quote currency) with the position as a step line."""
    eq = data.equity
    traces = [
        base.hover_line(t, base.floats(eq["equity"]), "equity", EQUITY_COLOR, ",.2f"),
        base.hover_line(
            t,
            base.floats(eq["position"]),
            "position",
            base.NEUTRAL,
            "+.0f",
            width=0.8,
            yaxis="y2",
            line_shape="hv",
        ),
    ]
    layout = base.layout(
        title,
        base.revision(view, f"equity|{data.strategy}"),
        xaxis=base.xaxis(view),
        yaxis={"tickformat": ",.2f"},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "range": [-1.5, 1.5],
            "tickvals": [-1, 0, 1],
            "ticktext": ["short", "flat", "long"],
            "showgrid": False,
        },
        shapes=[base.hline(0.0, base.NEUTRAL, "solid", 0.8)],
    )
    return base.figure(traces, layout)


def _drawdown_figure(view: ViewData, data: StrategyData, t: np.ndarray, title: str) -> go.Figure:
    """Drawdown: running max of the stored equity (from 0) minus the equity."""
    drawdown = base.floats(data.equity["drawdown"])
    trace = base.line(
        t,
        -drawdown,
        "drawdown",
        DRAWDOWN_COLOR,
        width=1.2,
        fill="tozeroy",
        fillcolor=DRAWDOWN_FILL,
        customdata=drawdown,
        hovertemplate="−%{customdata:,.2f}<extra>drawdown</extra>",
    )
    layout = base.layout(
        title,
        base.revision(view, f"dd|{data.strategy}"),
        showlegend=False,
        xaxis=base.xaxis(view),
        yaxis={"tickformat": ",.2f"},
    )
    return base.figure([trace], layout)


def strategy_figures(view: ViewData, data: StrategyData) -> dict[str, go.Figure]:
    """The Strategy tab's charts, by name, in :data:`STRATEGY_CHARTS` order.

    Both are blank charts that say why while the strategy has no equity rows.
    """
    titles = {
        "equity": f"Equity of '{data.strategy}' (closed PnL + open mark − fees)",
        "drawdown": f"Drawdown of '{data.strategy}'",
    }
    if data.equity.empty:
        return {name: base.empty_figure(title, NO_EQUITY) for name, title in titles.items()}
    t = base.ms(data.equity["t"])
    return {
        "equity": _equity_figure(view, data, t, titles["equity"]),
        "drawdown": _drawdown_figure(view, data, t, titles["drawdown"]),
    }
