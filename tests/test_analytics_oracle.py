"""Issue-level oracle: the shared recording through the whole flow, then every
sampled ``analytics`` row recomputed with statsmodels from the ``bars`` table.

Independent of ``operators/``: the grid, forward fill and statistics are rebuilt here
with pandas and statsmodels exactly as DESIGN.md defines them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from pairflow.testing.oracle import read_table
from tests.flowutil import run_flow, settings_for

W = 300
PAIR = "BTCUSDT/ETHUSDT"


@pytest.fixture(scope="module")
def replayed(recording, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    db = tmp_path_factory.mktemp("aor") / "a.db"
    run_flow(settings_for(db, source=f"replay:{recording}", replay_speed="max", windows=f"1s={W}"))
    return (
        read_table(db, "bars", "symbol, tf, open_time"),
        read_table(db, "analytics", "pair, tf, ts"),
        read_table(db, "signals", "pair, tf, ts, kind"),
    )


def _grid(bars: pd.DataFrame) -> pd.DataFrame:
    one = bars[bars.tf == "1s"]
    closes = one.pivot(index="open_time", columns="symbol", values="close")
    start = max(one[one.symbol == s].open_time.min() for s in ("BTCUSDT", "ETHUSDT"))
    end = one.open_time.max()
    index = pd.date_range(start, end, freq="1s")
    # carry the last close before the grid start into it
    raw = closes.reindex(closes.index.union(index)).sort_index()
    filled = raw.ffill().loc[index]
    flags = raw.loc[index].isna()
    return pd.DataFrame(
        {
            "y": filled["BTCUSDT"],
            "x": filled["ETHUSDT"],
            "y_filled": flags["BTCUSDT"],
            "x_filled": flags["ETHUSDT"],
        }
    )


def _expected(window: pd.DataFrame) -> dict[str, float | None]:
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


def test_analytics_rows_equal_statsmodels_recomputed_from_the_bars_table(replayed):
    bars, analytics, _ = replayed
    grid = _grid(bars)
    rows = analytics[(analytics.pair == PAIR) & (analytics.tf == "1s")].set_index("ts")
    # every grid point with W points behind it has a row, and no other row exists
    assert list(rows.index) == list(grid.index[W - 1 :])
    assert (rows["window"] == W).all()
    assert (rows["y_close"].to_numpy() == grid["y"].iloc[W - 1 :].to_numpy()).all()
    assert (rows["x_close"].to_numpy() == grid["x"].iloc[W - 1 :].to_numpy()).all()
    assert (rows["y_filled"].to_numpy() == grid["y_filled"].iloc[W - 1 :].to_numpy()).all()
    assert (rows["x_filled"].to_numpy() == grid["x_filled"].iloc[W - 1 :].to_numpy()).all()
    assert rows["x_filled"].any() and rows["y_filled"].any()  # forward fill was exercised

    sample = list(range(0, len(rows), 7)) + [len(rows) - 1]
    worst: dict[str, float] = {}
    for i in sample:
        ts = rows.index[i]
        end = grid.index.get_loc(ts)
        want = _expected(grid.iloc[end - W + 1 : end + 1])
        got = rows.iloc[i]
        for col, value in want.items():
            if value is None:
                assert pd.isna(got[col]), (ts, col)
                continue
            diff = abs(float(got[col]) - value)
            if col.endswith("pvalue"):
                err, tol = diff, 1e-6  # probabilities: absolute
            elif col == "spread":
                err, tol = diff, 1e-9  # log-price residual, ~1e-4: absolute
            else:
                err, tol = diff / max(abs(value), 1e-12), 1e-6
            worst[col] = max(worst.get(col, 0.0), err)
            assert err <= tol, f"{col} at {ts}: got {got[col]!r}, statsmodels {value!r}"
    assert set(worst) >= {"alpha", "beta", "zscore", "corr", "adf_pvalue", "eg_pvalue"}
    print(f"\nanalytics oracle: {len(sample)} rows; worst difference per column:", worst)


def test_signals_table_follows_the_zscore_column(replayed):
    _, analytics, signals = replayed
    entry, exit_ = 2.0, 0.5
    position = 0
    expected = []
    for ts, z in analytics[["ts", "zscore"]].itertuples(index=False):
        if pd.isna(z):
            continue
        kind = None
        if position == 0:
            kind = "short_spread" if z > entry else "long_spread" if z < -entry else None
        elif position == -1 and z < -entry:
            kind = "long_spread"
        elif position == 1 and z > entry:
            kind = "short_spread"
        elif position == -1 and z < exit_ or position == 1 and z > -exit_:
            kind = "exit"
        if kind is not None:
            expected.append((ts, kind))
            position = {"short_spread": -1, "long_spread": 1, "exit": 0}[kind]
    got = list(signals[["ts", "kind"]].itertuples(index=False, name=None))
    assert got == expected
    assert got, "the recording should produce at least one signal"
