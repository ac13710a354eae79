"""The shared look and the building blocks of the dashboard's Plotly charts.

The figure builders (:mod:`dashboard.pair_charts`, :mod:`dashboard.strategy_charts`,
:mod:`dashboard.health_charts`) take frames from the views and return a
``plotly.graph_objects.Figure``; none of them reads the database or computes a
statistic (rebasing a price line to 100 and drawing ±k·σ from the stored σ are
display transforms).

Speed: figures are built from plain dicts and wrapped without Plotly's property
validation (7x cheaper; the tests validate every figure strictly), and times go to
Plotly as epoch milliseconds on ``date`` axes, which serialise as compact binary
arrays instead of thousands of ISO strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.pair_view import ViewData
from pairflow.timeutil import TF_MS

UP_COLOR = "#16a34a"
DOWN_COLOR = "#dc2626"
NEUTRAL = "#64748b"

CHART_HEIGHT = 300

VALIDATE = False
"""Validate figures against Plotly's schema while building (tests turn it on)."""


def ms(values: pd.Series) -> np.ndarray:
    """Epoch milliseconds (float64) of a datetime column, for a ``date`` axis."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize("UTC")
    return values.dt.as_unit("ms").astype("int64").to_numpy().astype(np.float64)


def floats(values: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing values."""
    return values.to_numpy(dtype=float, na_value=np.nan)


def figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """Wrap traces and a layout (validated only when :data:`VALIDATE` is on)."""
    return go.Figure({"data": data, "layout": layout}, _validate=VALIDATE)


def layout(title: str, revision: str, **extra: Any) -> dict[str, Any]:
    """The shared look; nested dicts in ``extra`` are merged one level deep.

    ``revision`` is Plotly's ``uirevision``: zoom and legend state survive refreshes
    while it stays the same.
    """
    out: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "height": CHART_HEIGHT,
        "margin": {"l": 8, "r": 8, "t": 42, "b": 8},
        "hovermode": "x unified",
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "xanchor": "right",
            "x": 1.0,
            "font": {"size": 11},
        },
        "uirevision": revision,
        "xaxis": {"type": "date", "showgrid": True},
        "yaxis": {"showgrid": True, "automargin": True},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def hline(
    y: float, color: str, dash: str = "dash", width: float = 1.0, layer: str = "between"
) -> dict[str, Any]:
    """A horizontal line across the plot at ``y`` (a layout shape)."""
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": y,
        "y1": y,
        "line": {"color": color, "width": width, "dash": dash},
        "layer": layer,
    }


def line(
    x: np.ndarray, y: np.ndarray, name: str, color: str, *, width: float = 1.5, **extra: Any
) -> dict[str, Any]:
    """A line trace; ``extra`` adds or replaces trace properties."""
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines",
        "x": x,
        "y": y,
        "name": name,
        "line": {"color": color, "width": width},
    }
    trace.update(extra)
    return trace


def hover_line(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    color: str,
    fmt: str,
    *,
    unit: str = "",
    width: float = 1.5,
    **extra: Any,
) -> dict[str, Any]:
    """A line whose hover label shows ``y`` in the d3 format ``fmt`` (+ ``unit``) and ``name``."""
    hover = "%{y:" + fmt + "}" + unit + "<extra>" + name + "</extra>"
    return line(x, y, name, color, width=width, hovertemplate=hover, **extra)


def empty_figure(title: str, message: str) -> go.Figure:
    """A blank chart that says why it is blank."""
    look = layout(title, title, showlegend=False)
    look["xaxis"] = {"visible": False}
    look["yaxis"] = {"visible": False}
    look["annotations"] = [
        {
            "text": message,
            "xref": "paper",
            "yref": "paper",
            "x": 0.5,
            "y": 0.5,
            "showarrow": False,
            "font": {"size": 13, "color": NEUTRAL},
        }
    ]
    return figure([], look)


# --------------------------------------------------------------------------- time axis


def x_range(view: ViewData) -> list[float] | None:
    """Common x range (epoch ms) of the pair charts: first bucket to the view's end.

    Every time chart of the pair view (and the strategy's) shares it, so they line up
    even when the analytics start later than the bars.
    """
    if view.end is None or not view.has_bars:
        return None
    first = view.bars["t"].min()
    if not view.candles.empty:
        first = min(first, view.candles["t"].min())
    last = pd.Timestamp(view.end) + pd.Timedelta(milliseconds=TF_MS[view.request.tf])
    return [pd.Timestamp(first).timestamp() * 1000.0, last.timestamp() * 1000.0]


def xaxis(view: ViewData, **extra: Any) -> dict[str, Any]:
    """The x axis of a time chart of ``view`` (its :func:`x_range`, plus ``extra``)."""
    rng = x_range(view)
    return {**({"range": rng} if rng else {}), **extra}


def revision(view: ViewData, name: str) -> str:
    """The ``uirevision`` of chart ``name``: kept while pair, timeframe and lookback stay."""
    req = view.request
    return f"{name}|{req.pair}|{req.tf}|{req.lookback.total_seconds():.0f}"
