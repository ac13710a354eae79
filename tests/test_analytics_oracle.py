"""Issue-level oracle: the shared recording through the whole flow, then every
sampled ``analytics`` row recomputed with statsmodels from the ``bars`` table.

Independent of ``operators/``: the grid, forward fill and statistics are rebuilt by
:mod:`pairflow.testing.analytics_oracle` with pandas and statsmodels.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pairflow.testing.analytics_oracle import compare_analytics
from pairflow.testing.analytics_oracle import grid as oracle_grid
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


def test_analytics_rows_equal_statsmodels_recomputed_from_the_bars_table(replayed):
    bars, analytics, _ = replayed
    grid = oracle_grid(bars, "BTCUSDT", "ETHUSDT", "1s")
    rows = analytics[(analytics.pair == PAIR) & (analytics.tf == "1s")].set_index("ts")
    assert (rows["window"] == W).all()
    assert (rows["x_filled"].to_numpy() == grid["x_filled"].iloc[W - 1 :].to_numpy()).all()
    assert rows["x_filled"].any() and rows["y_filled"].any()  # forward fill was exercised

    # every grid point with W points behind it has a row, and no other row exists
    result = compare_analytics(bars, analytics, "BTCUSDT", "ETHUSDT", "1s", W, every=7)
    assert not result.mismatches, result.mismatches[:5]
    assert set(result.worst) >= {"alpha", "beta", "zscore", "corr", "adf_pvalue", "eg_pvalue"}
    print(f"\nanalytics oracle: {result.rows} rows; worst difference per column:", result.worst)


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
