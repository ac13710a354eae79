"""Plotly figure builders for the dashboard.

Each builder takes frames from :mod:`dashboard.pair_view` and returns a
``plotly.graph_objects.Figure``; none of them reads the database or computes a
statistic (rebasing a price line to 100 and drawing ±k·σ from the stored σ are
display transforms).

Speed: figures are built from plain dicts and wrapped without Plotly's property
validation (7x cheaper; the tests validate every figure strictly), and times go to
Plotly as epoch milliseconds on ``date`` axes, which serialise as compact binary
arrays instead of thousands of ISO strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.pair_view import ViewData
from dashboard.pipeline_health import HealthData
from dashboard.strategy_view import StrategyData
from pairflow.timeutil import TF_MS
from sinks.schema import SIGNAL_KINDS

Y_COLOR = "#2563eb"
X_COLOR = "#f59e0b"
UP_COLOR = "#16a34a"
DOWN_COLOR = "#dc2626"
SPREAD_COLOR = "#7c3aed"
Z_COLOR = "#0f766e"
BAND_FILL = "rgba(124, 58, 237, 0.10)"
Z_FILL = "rgba(15, 118, 110, 0.15)"
NEUTRAL = "#64748b"
ENTRY_COLOR = "#dc2626"
EXIT_COLOR = "#64748b"
CORR_COLOR = "#0891b2"
BETA_COLOR = "#2563eb"
KALMAN_COLOR = "#ea580c"
EQUITY_COLOR = "#16a34a"
DRAWDOWN_COLOR = "#dc2626"
DRAWDOWN_FILL = "rgba(220, 38, 38, 0.18)"
ADF_COLOR = "#0891b2"
EG_COLOR = "#db2777"
PALETTE = ("#2563eb", "#f59e0b", "#16a34a", "#7c3aed", "#db2777", "#0891b2")

SIGNAL_STYLE: dict[str, dict[str, str]] = {
    "short_spread": {"symbol": "triangle-down", "color": "#dc2626", "name": "short spread"},
    "long_spread": {"symbol": "triangle-up", "color": "#16a34a", "name": "long spread"},
    "exit": {"symbol": "circle", "color": "#334155", "name": "exit"},
    "stop": {"symbol": "x", "color": "#b91c1c", "name": "stop"},
    "time": {"symbol": "square", "color": "#a16207", "name": "time stop"},
}
"""Marker per ``signals.kind`` (every kind of :data:`sinks.schema.SIGNAL_KINDS`)."""

CHART_HEIGHT = 300
P_FLOOR = 1e-6
"""p-values are drawn on a log axis; smaller ones (and 0) are drawn at this floor."""

VALIDATE = False
"""Validate figures against Plotly's schema while building (tests turn it on)."""

NO_DATA = "No analytics yet for this pair and timeframe"


# --------------------------------------------------------------------------- helpers


def _ms(values: pd.Series) -> np.ndarray:
    """Epoch milliseconds (float64) of a datetime column, for a ``date`` axis."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize("UTC")
    return values.dt.as_unit("ms").astype("int64").to_numpy().astype(np.float64)


def _floats(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=float, na_value=np.nan)


def _duration(seconds: int) -> str:
    """``15 s``, ``5 min``, ``1 h``."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    return go.Figure({"data": data, "layout": layout}, _validate=VALIDATE)


def _layout(title: str, revision: str, **extra: Any) -> dict[str, Any]:
    """Shared look; nested dicts in ``extra`` are merged one level deep."""
    layout: dict[str, Any] = {
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
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _hline(
    y: float, color: str, dash: str = "dash", width: float = 1.0, layer: str = "between"
) -> dict[str, Any]:
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


def _line(
    x: np.ndarray, y: np.ndarray, name: str, color: str, *, width: float = 1.5, **extra: Any
) -> dict[str, Any]:
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


def x_range(view: ViewData) -> list[float] | None:
    """Common x range (epoch ms) of the pair charts: first bucket to the view's end.

    Every time chart of the pair view shares it, so they line up even when the
    analytics start later than the bars.
    """
    if view.end is None or not view.has_bars:
        return None
    first = view.bars["t"].min()
    if not view.candles.empty:
        first = min(first, view.candles["t"].min())
    last = pd.Timestamp(view.end) + pd.Timedelta(milliseconds=TF_MS[view.request.tf])
    return [pd.Timestamp(first).timestamp() * 1000.0, last.timestamp() * 1000.0]


def _xaxis(view: ViewData, **extra: Any) -> dict[str, Any]:
    rng = x_range(view)
    return {**({"range": rng} if rng else {}), **extra}


def _revision(view: ViewData, name: str) -> str:
    req = view.request
    return f"{name}|{req.pair}|{req.tf}|{req.lookback.total_seconds():.0f}"


def empty_figure(title: str, message: str) -> go.Figure:
    """A blank chart that says why it is blank."""
    layout = _layout(title, title, showlegend=False)
    layout["xaxis"] = {"visible": False}
    layout["yaxis"] = {"visible": False}
    layout["annotations"] = [
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
    return _figure([], layout)


# --------------------------------------------------------------------------- pair view


def legs_figure(view: ViewData) -> go.Figure:
    """Both legs' closes rebased to 100 at the start of the view."""
    title = "Legs (close, rebased to 100)"
    if not view.has_bars:
        return empty_figure(title, "No bars in this view")
    traces = []
    for sym, color in ((view.request.y, Y_COLOR), (view.request.x, X_COLOR)):
        leg = view.leg(sym)
        if leg.empty:
            continue
        close = _floats(leg["close"])
        traces.append(
            _line(
                _ms(leg["t"]),
                close / close[0] * 100.0,
                sym,
                color,
                width=1.6,
                customdata=close,
                hovertemplate="%{y:.3f} (price %{customdata:,.4~f})<extra>" + sym + "</extra>",
            )
        )
    return _figure(traces, _layout(title, _revision(view, "legs"), xaxis=_xaxis(view)))


def candles_figure(view: ViewData, symbol: str) -> go.Figure:
    """Candlestick of one leg with its volume below (two y axes, one x axis)."""
    title = f"{symbol} OHLC and volume ({_duration(view.candle_bucket_s)} candles)"
    leg = view.leg_candles(symbol)
    if leg.empty:
        return empty_figure(title, f"No {symbol} bars in this view")
    t = _ms(leg["t"])
    opens, closes = _floats(leg["open"]), _floats(leg["close"])
    candle = {
        "type": "candlestick",
        "x": t,
        "open": opens,
        "high": _floats(leg["high"]),
        "low": _floats(leg["low"]),
        "close": closes,
        "name": symbol,
        "increasing": {"line": {"color": UP_COLOR, "width": 1}, "fillcolor": UP_COLOR},
        "decreasing": {"line": {"color": DOWN_COLOR, "width": 1}, "fillcolor": DOWN_COLOR},
        "showlegend": False,
    }
    volume = {
        "type": "bar",
        "x": t,
        "y": _floats(leg["volume"]),
        "yaxis": "y2",
        "name": "volume",
        "marker": {
            "color": np.where(closes >= opens, UP_COLOR, DOWN_COLOR).tolist(),
            "line": {"width": 0},
        },
        "opacity": 0.55,
        "showlegend": False,
        "hovertemplate": "%{y:,.4~f}<extra>volume</extra>",
    }
    layout = _layout(
        title,
        _revision(view, f"candles|{symbol}"),
        xaxis=_xaxis(view, rangeslider={"visible": False}, anchor="y2"),
        yaxis={"domain": [0.28, 1.0], "tickformat": ",.6~g"},
        yaxis2={"domain": [0.0, 0.22], "anchor": "x", "showgrid": False, "tickformat": "~s"},
        bargap=0.1,
    )
    return _figure([candle, volume], layout)


def spread_figure(view: ViewData, k: float, k_exit: float | None = None) -> go.Figure:
    """Spread with its window mean (0) and the ±k·σ (and ±k_exit·σ) bands."""
    title = f"Spread with mean ± {k:g}σ"
    ana = view.analytics
    if ana.empty or ana["spread"].isna().all():
        return empty_figure(title, NO_DATA)
    t = _ms(ana["t"])
    sigma = _floats(ana["spread_std"])
    band = {"color": SPREAD_COLOR, "width": 0.6, "dash": "dot"}
    traces: list[dict[str, Any]] = [
        _line(t, k * sigma, f"+{k:g}σ", SPREAD_COLOR, line=band, hoverinfo="skip"),
        _line(
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
        for sign in (1.0, -1.0):
            traces.append(
                _line(
                    t,
                    sign * k_exit * sigma,
                    f"±{k_exit:g}σ (exit)",
                    EXIT_COLOR,
                    line={"color": EXIT_COLOR, "width": 0.6, "dash": "dash"},
                    showlegend=sign > 0,
                    legendgroup="exit",
                    hoverinfo="skip",
                )
            )
    traces.append(
        _line(
            t,
            _floats(ana["spread"]),
            "spread",
            SPREAD_COLOR,
            width=1.4,
            customdata=k * sigma,
            hovertemplate="%{y:.3e} (band ±%{customdata:.2e})<extra>spread</extra>",
        )
    )
    layout = _layout(
        title,
        _revision(view, "spread"),
        xaxis=_xaxis(view),
        yaxis={"tickformat": ".1e"},
        shapes=[_hline(0.0, NEUTRAL, "solid", 0.8)],
    )
    return _figure(traces, layout)


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
    ana = view.analytics
    if ana.empty or ana["zscore"].isna().all():
        return empty_figure(title, NO_DATA)
    t = _ms(ana["t"])
    traces: list[dict[str, Any]] = []
    if view.downsampled:
        traces += [
            _line(
                t,
                _floats(ana["z_max"]),
                "bucket max",
                Z_COLOR,
                width=0,
                legendgroup="range",
                showlegend=False,
                hoverinfo="skip",
            ),
            _line(
                t,
                _floats(ana["z_min"]),
                "bucket min–max",
                Z_COLOR,
                width=0,
                legendgroup="range",
                fill="tonexty",
                fillcolor=Z_FILL,
                hoverinfo="skip",
            ),
        ]
    traces.append(
        _line(
            t,
            _floats(ana["zscore"]),
            "z",
            Z_COLOR,
            width=1.4,
            hovertemplate="%{y:.2f}<extra>z</extra>",
        )
    )
    if kalman and "kalman_zscore" in ana and ana["kalman_zscore"].notna().any():
        traces.append(
            _line(
                t,
                _floats(ana["kalman_zscore"]),
                "Kalman z",
                KALMAN_COLOR,
                width=1.2,
                hovertemplate="%{y:.2f}<extra>Kalman z</extra>",
            )
        )
    sig = view.signals
    for kind in kinds or SIGNAL_KINDS:
        rows = sig[sig["kind"] == kind] if not sig.empty else sig
        if rows.empty:
            continue
        style = SIGNAL_STYLE.get(kind, {"symbol": "x", "color": NEUTRAL, "name": kind})
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": _ms(rows["ts"]),
                "y": _floats(rows["zscore"]),
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
    shapes = [_hline(0.0, NEUTRAL, "solid", 0.8)]
    for level, color, dash in (
        (entry, ENTRY_COLOR, "dash"),
        (-entry, ENTRY_COLOR, "dash"),
        (exit_, EXIT_COLOR, "dot"),
        (-exit_, EXIT_COLOR, "dot"),
    ):
        shapes.append(_hline(level, color, dash, 1.2, layer="above"))
    # Keep both entry lines in view even when z has not reached them.
    lo = np.nanmin(_floats(ana["z_min"])) if view.downsampled else np.nanmin(_floats(ana["zscore"]))
    hi = np.nanmax(_floats(ana["z_max"])) if view.downsampled else np.nanmax(_floats(ana["zscore"]))
    if kalman and "kalman_zscore" in ana and ana["kalman_zscore"].notna().any():
        kz = _floats(ana["kalman_zscore"])
        lo, hi = min(lo, np.nanmin(kz)), max(hi, np.nanmax(kz))
    pad = 0.1 * max(entry, 1.0)
    yrange = [min(float(lo), -entry) - pad, max(float(hi), entry) + pad]
    layout = _layout(
        title,
        _revision(view, "z"),
        xaxis=_xaxis(view),
        yaxis={"range": yrange},
        shapes=shapes,
    )
    return _figure(traces, layout)


def _single_line(
    view: ViewData,
    title: str,
    column: str,
    color: str,
    *,
    fmt: str,
    yaxis: dict[str, Any] | None = None,
    shapes: list[dict[str, Any]] | None = None,
) -> go.Figure:
    ana = view.analytics
    if ana.empty or ana[column].isna().all():
        return empty_figure(title, NO_DATA)
    trace = _line(
        _ms(ana["t"]),
        _floats(ana[column]),
        column,
        color,
        hovertemplate="%{y:" + fmt + "}<extra>" + column + "</extra>",
    )
    layout = _layout(
        title,
        _revision(view, column),
        showlegend=False,
        xaxis=_xaxis(view),
        yaxis=yaxis or {},
        shapes=shapes or [],
    )
    return _figure([trace], layout)


def correlation_figure(view: ViewData) -> go.Figure:
    """Rolling correlation of the legs' log returns (as written by the flow)."""
    w = view.latest.get("window")
    suffix = f" ({int(w)} bars)" if w else ""
    return _single_line(
        view,
        f"Rolling return correlation{suffix}",
        "corr",
        CORR_COLOR,
        fmt=".3f",
        yaxis={"range": [-1.05, 1.05]},
        shapes=[_hline(0.0, NEUTRAL, "solid", 0.6)],
    )


def beta_figure(view: ViewData) -> go.Figure:
    """Hedge ratio β over time: rolling OLS and, where the flow wrote it, Kalman."""
    ana = view.analytics
    has_kalman = bool("kalman_beta" in ana and ana["kalman_beta"].notna().any())
    title = "Hedge ratio β" if has_kalman else "Hedge ratio β (rolling OLS)"
    if ana.empty or ana["beta"].isna().all():
        return empty_figure(title, NO_DATA)
    t = _ms(ana["t"])
    traces = [
        _line(
            t,
            _floats(ana["beta"]),
            "OLS β",
            BETA_COLOR,
            hovertemplate="%{y:.4f}<extra>OLS β</extra>",
        )
    ]
    if has_kalman:
        traces.append(
            _line(
                t,
                _floats(ana["kalman_beta"]),
                "Kalman β",
                KALMAN_COLOR,
                width=1.2,
                hovertemplate="%{y:.4f}<extra>Kalman β</extra>",
            )
        )
    layout = _layout(title, _revision(view, "beta"), showlegend=has_kalman, xaxis=_xaxis(view))
    return _figure(traces, layout)


# --------------------------------------------------------------------------- strategy


def equity_figure(view: ViewData, data: StrategyData) -> go.Figure:
    """The strategy's stored equity (quote currency) with the position as a step line."""
    title = f"Equity of '{data.strategy}' (closed PnL + open mark − fees)"
    eq = data.equity
    if eq.empty:
        return empty_figure(title, "No equity rows for this strategy, pair and timeframe yet")
    t = _ms(eq["t"])
    traces = [
        _line(
            t,
            _floats(eq["equity"]),
            "equity",
            EQUITY_COLOR,
            width=1.5,
            hovertemplate="%{y:,.2f}<extra>equity</extra>",
        ),
        _line(
            t,
            _floats(eq["position"]),
            "position",
            NEUTRAL,
            width=0.8,
            yaxis="y2",
            line_shape="hv",
            hovertemplate="%{y:+.0f}<extra>position</extra>",
        ),
    ]
    layout = _layout(
        title,
        _revision(view, f"equity|{data.strategy}"),
        xaxis=_xaxis(view),
        yaxis={"tickformat": ",.2f"},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "range": [-1.5, 1.5],
            "tickvals": [-1, 0, 1],
            "ticktext": ["short", "flat", "long"],
            "showgrid": False,
        },
        shapes=[_hline(0.0, NEUTRAL, "solid", 0.8)],
    )
    return _figure(traces, layout)


def drawdown_figure(view: ViewData, data: StrategyData) -> go.Figure:
    """Drawdown: running max of the stored equity (from 0) minus the equity."""
    title = f"Drawdown of '{data.strategy}'"
    eq = data.equity
    if eq.empty:
        return empty_figure(title, "No equity rows for this strategy, pair and timeframe yet")
    trace = _line(
        _ms(eq["t"]),
        -_floats(eq["drawdown"]),
        "drawdown",
        DRAWDOWN_COLOR,
        width=1.2,
        fill="tozeroy",
        fillcolor=DRAWDOWN_FILL,
        customdata=_floats(eq["drawdown"]),
        hovertemplate="−%{customdata:,.2f}<extra>drawdown</extra>",
    )
    layout = _layout(
        title,
        _revision(view, f"dd|{data.strategy}"),
        showlegend=False,
        xaxis=_xaxis(view),
        yaxis={"tickformat": ",.2f"},
    )
    return _figure([trace], layout)


STRATEGY_CHARTS: tuple[str, ...] = ("equity", "drawdown")


def strategy_figures(view: ViewData, data: StrategyData) -> dict[str, go.Figure]:
    """The Strategy tab's charts, by name, in :data:`STRATEGY_CHARTS` order."""
    return {"equity": equity_figure(view, data), "drawdown": drawdown_figure(view, data)}


def pvalue_figure(view: ViewData, level: float = 0.05) -> go.Figure:
    """ADF and Engle-Granger p-values on a log axis with the ``level`` line."""
    title = "Cointegration p-values"
    ana = view.analytics
    if ana.empty or (ana["adf_pvalue"].isna().all() and ana["eg_pvalue"].isna().all()):
        return empty_figure(title, "No p-values yet for this pair and timeframe")
    t = _ms(ana["t"])
    traces = []
    for column, name, color in (
        ("adf_pvalue", "ADF", ADF_COLOR),
        ("eg_pvalue", "Engle-Granger", EG_COLOR),
    ):
        values = _floats(ana[column])
        traces.append(
            _line(
                t,
                np.clip(values, P_FLOOR, None),
                name,
                color,
                width=1.4,
                customdata=values,
                hovertemplate="%{customdata:.4f}<extra>" + name + "</extra>",
            )
        )
    layout = _layout(
        title,
        _revision(view, "p"),
        xaxis=_xaxis(view),
        yaxis={
            "type": "log",
            "range": [-4.2, 0.05],
            "tickvals": [1e-4, 1e-3, 1e-2, 0.05, 0.2, 1.0],
            "ticktext": ["0.0001", "0.001", "0.01", "0.05", "0.2", "1"],
        },
        shapes=[_hline(level, ENTRY_COLOR, "dash", 1.2, layer="above")],
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
    return _figure(traces, layout)


# --------------------------------------------------------------------------- health


def rate_figure(health: HealthData) -> go.Figure:
    """Ticks per second per component (or trades/s of the 1s bars as a fallback)."""
    if health.rate_source == "pipeline_stats":
        title = "Ticks/s, last hour of stats"
    else:
        title = "Trades/s from the 1s bars, last 15 minutes (no stats reported)"
    if health.rate.empty:
        return empty_figure(title, "No throughput stats yet")
    traces = []
    for i, (component, grp) in enumerate(health.rate.groupby("component", sort=True)):
        traces.append(
            _line(
                _ms(grp["t"]),
                _floats(grp["value"]),
                str(component),
                PALETTE[i % len(PALETTE)],
                width=1.4,
                hovertemplate="%{y:,.1f}/s<extra>" + str(component) + "</extra>",
            )
        )
    return _figure(traces, _layout(title, "rate"))


def rejects_figure(health: HealthData) -> go.Figure:
    """Rejected inputs by reason (all time)."""
    title = "Rejected inputs by reason"
    rej = health.rejects
    if rej.empty:
        return empty_figure(title, "No rejected input")
    rej = rej.sort_values("n")
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": rej["n"].to_numpy(dtype=float),
        "y": rej["reason"].astype(str).tolist(),
        "marker": {"color": DOWN_COLOR},
        "opacity": 0.8,
        "name": "rejects",
        "hovertemplate": "%{x:,}<extra>%{y}</extra>",
    }
    layout = _layout(
        title,
        "rejects",
        showlegend=False,
        hovermode="closest",
        bargap=0.45,
        xaxis={"type": "linear", "tickformat": ",d"},
        yaxis={"automargin": True, "showgrid": False},
    )
    return _figure([trace], layout)


# --------------------------------------------------------------------------- sets


PAIR_CHARTS: tuple[str, ...] = ("legs", "candles", "spread", "zscore", "corr", "beta", "pvalues")
HEALTH_CHARTS: tuple[str, ...] = ("rate", "rejects")


def pair_figures(
    view: ViewData, candle_symbol: str, entry: float, exit_: float, *, kalman_z: bool = False
) -> dict[str, go.Figure]:
    """Every chart of the pair view, by name, in :data:`PAIR_CHARTS` order.

    ``kalman_z``: the selected strategy trades the Kalman z (drawn on the z chart).
    """
    return {
        "legs": legs_figure(view),
        "candles": candles_figure(view, candle_symbol),
        "spread": spread_figure(view, entry, exit_),
        "zscore": zscore_figure(view, entry, exit_, kalman=kalman_z),
        "corr": correlation_figure(view),
        "beta": beta_figure(view),
        "pvalues": pvalue_figure(view),
    }


def health_figures(health: HealthData) -> dict[str, go.Figure]:
    """Every chart of the health view, by name, in :data:`HEALTH_CHARTS` order."""
    return {"rate": rate_figure(health), "rejects": rejects_figure(health)}
