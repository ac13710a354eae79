"""The Pair analytics view's seven charts, from :class:`dashboard.pair_view.ViewData`.

Legs rebased to 100, one leg's candles and volume, the spread with its ±k·σ bands,
the z-score with the thresholds and the selected strategy's signals, the rolling
correlation, the hedge ratio β (OLS and Kalman) and the cointegration p-values. All
share one time axis (:func:`dashboard.chart_base.x_range`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import chart_base as base
from dashboard.pair_view import ViewData
from sinks.schema import SIGNAL_KINDS

Y_COLOR = "#2563eb"
X_COLOR = "#f59e0b"
SPREAD_COLOR = "#7c3aed"
Z_COLOR = "#0f766e"
BAND_FILL = "rgba(124, 58, 237, 0.10)"
Z_FILL = "rgba(15, 118, 110, 0.15)"
ENTRY_COLOR = "#dc2626"
EXIT_COLOR = "#64748b"
CORR_COLOR = "#0891b2"
BETA_COLOR = "#2563eb"
KALMAN_COLOR = "#ea580c"
ADF_COLOR = "#0891b2"
EG_COLOR = "#db2777"

SIGNAL_STYLE: dict[str, dict[str, str]] = {
    "short_spread": {"symbol": "triangle-down", "color": "#dc2626", "name": "short spread"},
    "long_spread": {"symbol": "triangle-up", "color": "#16a34a", "name": "long spread"},
    "exit": {"symbol": "circle", "color": "#334155", "name": "exit"},
    "stop": {"symbol": "x", "color": "#b91c1c", "name": "stop"},
    "time": {"symbol": "square", "color": "#a16207", "name": "time stop"},
}
"""Marker per ``signals.kind`` (every kind of :data:`sinks.schema.SIGNAL_KINDS`)."""

P_FLOOR = 1e-6
"""p-values are drawn on a log axis; smaller ones (and 0) are drawn at this floor."""

NO_DATA = "No analytics yet for this pair and timeframe"

PAIR_CHARTS: tuple[str, ...] = ("legs", "candles", "spread", "zscore", "corr", "beta", "pvalues")


def _duration(seconds: int) -> str:
    """``15 s``, ``5 min``, ``1 h``."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    """``frame`` has ``column`` with at least one value that is not missing."""
    return column in frame and bool(frame[column].notna().any())


def _times(view: ViewData, *columns: str) -> np.ndarray | None:
    """Epoch ms of the view's analytics rows; None while none of ``columns`` has a value."""
    ana = view.analytics
    if not any(_has_values(ana, c) for c in columns):
        return None
    return base.ms(ana["t"])


def legs_figure(view: ViewData) -> go.Figure:
    """Both legs' closes rebased to 100 at the start of the view."""
    title = "Legs (close, rebased to 100)"
    if not view.has_bars:
        return base.empty_figure(title, "No bars in this view")
    traces = []
    for sym, color in ((view.request.y, Y_COLOR), (view.request.x, X_COLOR)):
        leg = view.leg(sym)
        if leg.empty:
            continue
        close = base.floats(leg["close"])
        traces.append(
            base.line(
                base.ms(leg["t"]),
                close / close[0] * 100.0,
                sym,
                color,
                width=1.6,
                customdata=close,
                hovertemplate="%{y:.3f} (price %{customdata:,.4~f})<extra>" + sym + "</extra>",
            )
        )
    return base.figure(
        traces, base.layout(title, base.revision(view, "legs"), xaxis=base.xaxis(view))
    )


def candles_figure(view: ViewData, symbol: str) -> go.Figure:
    """Candlestick of one leg with its volume below (two y axes, one x axis)."""
    title = f"{symbol} OHLC and volume ({_duration(view.candle_bucket_s)} candles)"
    leg = view.leg_candles(symbol)
    if leg.empty:
        return base.empty_figure(title, f"No {symbol} bars in this view")
    t = base.ms(leg["t"])
    opens, closes = base.floats(leg["open"]), base.floats(leg["close"])
    up, down = base.UP_COLOR, base.DOWN_COLOR
    candle = {
        "type": "candlestick",
        "x": t,
        "open": opens,
        "high": base.floats(leg["high"]),
        "low": base.floats(leg["low"]),
        "close": closes,
        "name": symbol,
        "increasing": {"line": {"color": base.UP_COLOR, "width": 1}, "fillcolor": base.UP_COLOR},
        "decreasing": {
            "line": {"color": base.DOWN_COLOR, "width": 1},
            "fillcolor": base.DOWN_COLOR,
        },
        "showlegend": False,
    }
    volume = {
        "type": "bar",
        "x": t,
        "y": base.floats(leg["volume"]),
        "yaxis": "y2",
        "name": "volume",
        "marker": {
            "color": np.where(closes >= opens, up, down).tolist(),
            "line": {"width": 0},
        },
        "opacity": 0.55,
        "showlegend": False,
        "hovertemplate": "%{y:,.4~f}<extra>volume</extra>",
    }
    layout = base.layout(
        title,
        base.revision(view, f"candles|{symbol}"),
        xaxis=base.xaxis(view, rangeslider={"visible": False}, anchor="y2"),
        yaxis={"domain": [0.28, 1.0], "tickformat": ",.6~g"},
        yaxis2={"domain": [0.0, 0.22], "anchor": "x", "showgrid": False, "tickformat": "~s"},
        bargap=0.1,
    )
    return base.figure([candle, volume], layout)


def spread_figure(view: ViewData, k: float, k_exit: float | None = None) -> go.Figure:
    """Spread with its window mean (0) and the ±k·σ (and ±k_exit·σ) bands."""
    title = f"Spread with mean ± {k:g}σ"
    t = _times(view, "spread")
    if t is None:
        return base.empty_figure(title, NO_DATA)
    sigma = base.floats(view.analytics["spread_std"])
    band = {"color": SPREAD_COLOR, "width": 0.6, "dash": "dot"}
    traces: list[dict[str, Any]] = [
        base.line(t, k * sigma, f"+{k:g}σ", SPREAD_COLOR, line=band, hoverinfo="skip"),
        base.line(
            t,
            -k * sigma,
            f"−{k:g}σ",
            SPREAD_COLOR,
            line=band,
            fill="tonexty",
            fillcolor=BAND_FILL,
            hoverinfo="skip",
        ),
    ]
    if k_exit is not None and k_exit > 0:
        exit_band = {"color": EXIT_COLOR, "width": 0.6, "dash": "dash"}
        traces += [
            base.line(
                t,
                sign * k_exit * sigma,
                f"±{k_exit:g}σ (exit)",
                EXIT_COLOR,
                line=exit_band,
                showlegend=sign > 0,
                legendgroup="exit",
                hoverinfo="skip",
            )
            for sign in (1.0, -1.0)
        ]
    traces.append(
        base.line(
            t,
            base.floats(view.analytics["spread"]),
            "spread",
            SPREAD_COLOR,
            width=1.4,
            customdata=k * sigma,
            hovertemplate="%{y:.3e} (band ±%{customdata:.2e})<extra>spread</extra>",
        )
    )
    layout = base.layout(
        title,
        base.revision(view, "spread"),
        xaxis=base.xaxis(view),
        yaxis={"tickformat": ".1e"},
        shapes=[base.hline(0.0, base.NEUTRAL, "solid", 0.8)],
    )
    return base.figure(traces, layout)


def _signal_markers(signals: pd.DataFrame, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """One marker trace per signal kind present, at the z the strategy decided on."""
    traces = []
    for kind in kinds:
        rows = signals[signals["kind"] == kind] if not signals.empty else signals
        if rows.empty:
            continue
        style = SIGNAL_STYLE.get(kind, {"symbol": "x", "color": base.NEUTRAL, "name": kind})
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": base.ms(rows["ts"]),
                "y": base.floats(rows["zscore"]),
                "name": style["name"],
                "marker": {
                    "symbol": style["symbol"],
                    "color": style["color"],
                    "size": 8,
                    "line": {"width": 0.5, "color": "white"},
                },
                "hovertemplate": "%{y:.2f}<extra>" + style["name"] + "</extra>",
            }
        )
    return traces


def zscore_figure(
    view: ViewData,
    entry: float,
    exit_: float,
    kinds: Sequence[str] | None = None,
    *,
    kalman: bool = False,
) -> go.Figure:
    """Z-score with ±entry/±exit bands and the selected strategy's signals as markers.

    When the view is downsampled, the bucket's min-max range of the OLS z is drawn
    behind the line, so that no excursion past a threshold disappears. ``kalman``
    (the strategy trades the Kalman z) adds the stored ``kalman_zscore`` line; the
    markers sit at the z the strategy decided on (``signals.zscore``).
    """
    strategy = view.request.strategy
    title = f"Z-score and signals of strategy '{strategy}'"
    t = _times(view, "zscore")
    if t is None:
        return base.empty_figure(title, NO_DATA)
    ana = view.analytics
    z = base.floats(ana["zscore"])
    traces: list[dict[str, Any]] = []
    lo, hi = np.nanmin(z), np.nanmax(z)
    if view.downsampled:
        z_min, z_max = base.floats(ana["z_min"]), base.floats(ana["z_max"])
        lo, hi = np.nanmin(z_min), np.nanmax(z_max)
        range_line: dict[str, Any] = {"width": 0, "legendgroup": "range", "hoverinfo": "skip"}
        traces += [
            base.line(t, z_max, "bucket max", Z_COLOR, showlegend=False, **range_line),
            base.line(
                t, z_min, "bucket min–max", Z_COLOR, fill="tonexty", fillcolor=Z_FILL, **range_line
            ),
        ]
    traces.append(base.hover_line(t, z, "z", Z_COLOR, ".2f", width=1.4))
    if kalman and _has_values(ana, "kalman_zscore"):
        kz = base.floats(ana["kalman_zscore"])
        traces.append(base.hover_line(t, kz, "Kalman z", KALMAN_COLOR, ".2f", width=1.2))
        lo, hi = min(lo, np.nanmin(kz)), max(hi, np.nanmax(kz))
    traces += _signal_markers(view.signals, kinds or SIGNAL_KINDS)
    shapes = [base.hline(0.0, base.NEUTRAL, "solid", 0.8)]
    for level, color, dash in (
        (entry, ENTRY_COLOR, "dash"),
        (-entry, ENTRY_COLOR, "dash"),
        (exit_, EXIT_COLOR, "dot"),
        (-exit_, EXIT_COLOR, "dot"),
    ):
        shapes.append(base.hline(level, color, dash, 1.2, layer="above"))
    # Keep both entry lines in view even when z has not reached them.
    pad = 0.1 * max(entry, 1.0)
    yrange = [min(float(lo), -entry) - pad, max(float(hi), entry) + pad]
    layout = base.layout(
        title,
        base.revision(view, "z"),
        xaxis=base.xaxis(view),
        yaxis={"range": yrange},
        shapes=shapes,
    )
    return base.figure(traces, layout)


def correlation_figure(view: ViewData) -> go.Figure:
    """Rolling correlation of the legs' log returns (as written by the flow)."""
    w = view.latest.get("window")
    title = f"Rolling return correlation{f' ({int(w)} bars)' if w else ''}"
    t = _times(view, "corr")
    if t is None:
        return base.empty_figure(title, NO_DATA)
    trace = base.hover_line(t, base.floats(view.analytics["corr"]), "corr", CORR_COLOR, ".3f")
    layout = base.layout(
        title,
        base.revision(view, "corr"),
        showlegend=False,
        xaxis=base.xaxis(view),
        yaxis={"range": [-1.05, 1.05]},
        shapes=[base.hline(0.0, base.NEUTRAL, "solid", 0.6)],
    )
    return base.figure([trace], layout)


def beta_figure(view: ViewData) -> go.Figure:
    """Hedge ratio β over time: rolling OLS and, where the flow wrote it, Kalman."""
    ana = view.analytics
    has_kalman = _has_values(ana, "kalman_beta")
    title = "Hedge ratio β" if has_kalman else "Hedge ratio β (rolling OLS)"
    t = _times(view, "beta")
    if t is None:
        return base.empty_figure(title, NO_DATA)
    traces = [base.hover_line(t, base.floats(ana["beta"]), "OLS β", BETA_COLOR, ".4f")]
    if has_kalman:
        kb = base.floats(ana["kalman_beta"])
        traces.append(base.hover_line(t, kb, "Kalman β", KALMAN_COLOR, ".4f", width=1.2))
    layout = base.layout(
        title, base.revision(view, "beta"), showlegend=has_kalman, xaxis=base.xaxis(view)
    )
    return base.figure(traces, layout)


def pvalue_figure(view: ViewData, level: float = 0.05) -> go.Figure:
    """ADF and Engle-Granger p-values on a log axis with the ``level`` line."""
    title = "Cointegration p-values"
    t = _times(view, "adf_pvalue", "eg_pvalue")
    if t is None:
        return base.empty_figure(title, "No p-values yet for this pair and timeframe")
    traces = []
    for column, name, color in (
        ("adf_pvalue", "ADF", ADF_COLOR),
        ("eg_pvalue", "Engle-Granger", EG_COLOR),
    ):
        values = base.floats(view.analytics[column])
        traces.append(
            base.line(
                t,
                np.clip(values, P_FLOOR, None),
                name,
                color,
                width=1.4,
                customdata=values,
                hovertemplate="%{customdata:.4f}<extra>" + name + "</extra>",
            )
        )
    layout = base.layout(
        title,
        base.revision(view, "p"),
        xaxis=base.xaxis(view),
        yaxis={
            "type": "log",
            "range": [-4.2, 0.05],
            "tickvals": [1e-4, 1e-3, 1e-2, 0.05, 0.2, 1.0],
            "ticktext": ["0.0001", "0.001", "0.01", "0.05", "0.2", "1"],
        },
        shapes=[base.hline(level, ENTRY_COLOR, "dash", 1.2, layer="above")],
        annotations=[
            {
                "text": f"p = {level:g}",
                "xref": "paper",
                "x": 0.0,
                "xanchor": "left",
                "bgcolor": "rgba(255,255,255,0.75)",
                "yref": "y",
                "y": float(np.log10(level)),
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 10, "color": ENTRY_COLOR},
            }
        ],
    )
    return base.figure(traces, layout)


def pair_figures(
    view: ViewData,
    candle_symbol: str,
    entry: float,
    exit_: float,
    *,
    kalman_z: bool = False,
    only: tuple[str, ...] | None = None,
) -> dict[str, go.Figure]:
    """The charts of the pair view, by name, in :data:`PAIR_CHARTS` order.

    ``kalman_z``: the selected strategy trades the Kalman z (drawn on the z chart).
    ``only``: just these names (default: all).
    """
    makers: dict[str, Callable[[], go.Figure]] = {
        "legs": lambda: legs_figure(view),
        "candles": lambda: candles_figure(view, candle_symbol),
        "spread": lambda: spread_figure(view, entry, exit_),
        "zscore": lambda: zscore_figure(view, entry, exit_, kalman=kalman_z),
        "corr": lambda: correlation_figure(view),
        "beta": lambda: beta_figure(view),
        "pvalues": lambda: pvalue_figure(view),
    }
    return {name: make() for name, make in makers.items() if only is None or name in only}
