"""Independent analytics oracle: statsmodels on the grid rebuilt from a ``bars`` table.

Every statistic is recomputed exactly as ``docs/design.md`` defines it.

Shares no code with ``operators/`` or ``pairflow/stats``: the grid and forward fill are
pandas, the statistics statsmodels (OLS, ``adfuller``, ``coint``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pairflow.timeutil import TF_MS

TOLERANCE = 1e-6
"""Relative for levels/ratios, absolute for p-values (docs/design.md: match statsmodels to 1e-6)."""

SPREAD_TOLERANCE = 1e-9
"""Absolute, for the log-price residual (~1e-4 in size)."""


def grid(bars: pd.DataFrame, y: str, x: str, tf: str) -> pd.DataFrame:
    """The analysis grid of ``y``/``x`` in ``tf``: closes forward-filled, fill flags.

    Every interval from the first one in which both legs have traded to the last bar
    of either leg; the last close before the grid start is carried into it.
    """
    one = bars[(bars.tf == tf) & bars.symbol.isin([y, x])]
    closes = one.pivot(index="open_time", columns="symbol", values="close")
    start = max(one[one.symbol == s].open_time.min() for s in (y, x))
    end = one.open_time.max()
    index = pd.date_range(start, end, freq=pd.Timedelta(milliseconds=TF_MS[tf]))
    raw = closes.reindex(closes.index.union(index)).sort_index()
    filled = raw.ffill().loc[index]
    flags = raw.loc[index].isna()
    return pd.DataFrame(
        {"y": filled[y], "x": filled[x], "y_filled": flags[y], "x_filled": flags[x]}
    )


def expected_row(window: pd.DataFrame) -> dict[str, float | None]:
    """Every analytics statistic of one window of the grid, computed by statsmodels."""
    import statsmodels.api as sm
    from statsmodels.tsa.stattools import adfuller, coint

    y = np.log(window["y"].to_numpy())
    x = np.log(window["x"].to_numpy())
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    alpha, beta = fit.params
    spreads = y - alpha - beta * x
    z = (spreads[-1] - spreads.mean()) / spreads.std(ddof=1)
    corr = float(np.corrcoef(np.diff(y), np.diff(x))[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adf_p = adfuller(spreads, regression="c", autolag="AIC")[1]
        eg_p = coint(y, x, trend="c", autolag="aic")[1]
    hl_fit = sm.OLS(np.diff(spreads), sm.add_constant(spreads[:-1])).fit()
    lam = hl_fit.params[1]
    half_life = -math.log(2) / math.log(1 + lam) if lam < 0 and 1 + lam > 0 else None
    return {
        "alpha": alpha, "beta": beta, "spread": spreads[-1], "zscore": z, "corr": corr,
        "adf_pvalue": adf_p, "eg_pvalue": eg_p, "half_life": half_life,
        "spread_std": float(spreads.std(ddof=1)),
    }  # fmt: skip


@dataclass
class Comparison:
    """What :func:`compare_analytics` checked.

    Attributes:
        rows: Analytics rows compared with statsmodels.
        worst: Worst error per column (relative, or absolute for p-values/spread).
        mismatches: ``(ts, column, got, want)`` beyond tolerance (empty when all agree).
    """

    rows: int = 0
    worst: dict[str, float] = field(default_factory=dict)
    mismatches: list[tuple[object, str, object, object]] = field(default_factory=list)


def compare_analytics(
    bars: pd.DataFrame,
    analytics: pd.DataFrame,
    y: str,
    x: str,
    tf: str,
    window: int,
    *,
    every: int = 1,
) -> Comparison:
    """Compare analytics rows of ``y/x`` in ``tf`` with statsmodels on the final ``bars``.

    Checks that the rows are exactly the grid points with ``window`` points behind
    them (closes and fill flags included), then recomputes every ``every``-th row
    (and the last) and records the worst error per column.

    Raises:
        AssertionError: when the set of rows or their closes differ from the grid.
    """
    g = grid(bars, y, x, tf)
    rows = analytics[(analytics.pair == f"{y}/{x}") & (analytics.tf == tf)].set_index("ts")
    assert list(rows.index) == list(g.index[window - 1 :]), "rows are not the grid's"
    for col, src in (("y_close", "y"), ("x_close", "x"), ("y_filled", "y_filled")):
        assert (rows[col].to_numpy() == g[src].iloc[window - 1 :].to_numpy()).all(), col
    out = Comparison()
    picks = sorted({*range(0, len(rows), every), len(rows) - 1}) if len(rows) else []
    for i in picks:
        ts = rows.index[i]
        end = g.index.get_loc(ts)
        want = expected_row(g.iloc[end - window + 1 : end + 1])
        got = rows.iloc[i]
        out.rows += 1
        for col, value in want.items():
            if value is None:
                if not pd.isna(got[col]):
                    out.mismatches.append((ts, col, got[col], None))
                continue
            if pd.isna(got[col]):
                out.mismatches.append((ts, col, None, value))
                continue
            diff = abs(float(got[col]) - value)
            if col.endswith("pvalue"):
                err, tol = diff, TOLERANCE
            elif col == "spread":
                err, tol = diff, SPREAD_TOLERANCE
            else:
                err, tol = diff / max(abs(value), 1e-12), TOLERANCE
            out.worst[col] = max(out.worst.get(col, 0.0), err)
            if err > tol:
                out.mismatches.append((ts, col, got[col], value))
    return out
