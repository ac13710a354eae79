"""The pair scanner through the whole flow: the ``scan`` table equals a pandas
recomputation (statsmodels' BH, ranks) from the ``analytics`` table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from pairflow.testing.oracle import read_table
from pairflow.timeutil import TF_MS
from tests.flowutil import run_flow, settings_for

SYMBOLS = "SYN00,SYN01,SYN02,SYN03,SYN04,SYN05"


def expected_scan(analytics: pd.DataFrame, every: dict[str, int]) -> pd.DataFrame:
    """The scan table docs/design.md defines, recomputed from the analytics table with pandas."""
    a = analytics.copy()
    a["ts_ms"] = (a["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    a["k"] = a["tf"].map(every)
    a["tf_ms"] = a["tf"].map(TF_MS)
    a = a[(a.ts_ms // a.tf_ms) % a.k == 0]
    parts = []
    for _, grp in a.groupby(["tf", "ts"]):
        g = grp.assign(nullp=grp.eg_pvalue.isna()).sort_values(["nullp", "eg_pvalue", "pair"])
        g["rank"] = np.arange(1, len(g) + 1)
        tested = g.eg_pvalue.notna()
        g["eg_qvalue"] = np.nan
        if tested.any():
            q = multipletests(g.loc[tested, "eg_pvalue"].to_numpy(), method="fdr_bh")[1]
            g.loc[tested, "eg_qvalue"] = q
        parts.append(g)
    cols = ["tf", "ts", "pair", "eg_pvalue", "eg_qvalue", "adf_pvalue", "half_life"]
    cols += ["beta", "corr", "zscore", "rank"]
    out = pd.concat(parts)[cols]
    return out.sort_values(["tf", "ts", "pair"]).reset_index(drop=True)


@pytest.mark.parametrize("pvalue_every", ["1", "4"])
def test_scan_table_equals_recomputation_from_analytics(tmp_path: Path, pvalue_every: str) -> None:
    db = tmp_path / "scan.db"
    settings = settings_for(
        db,
        source="synthetic",
        synthetic_universe="clusters",
        synthetic_duration_s="150",
        synthetic_rate="4",
        symbols=SYMBOLS,
        pairs="all",
        windows="1s=60",
        scan_every="1s=10",
        pvalue_every=pvalue_every,
    )
    assert len(settings.pairs) == 15
    run_flow(settings)
    analytics = read_table(db, "analytics", "pair, tf, ts")
    assert analytics.pair.nunique() == 15
    got = read_table(db, "scan", "tf, ts, pair")
    want = expected_scan(analytics, settings.scan_every)
    assert len(got) == len(want) > 15 * 5
    got = got[want.columns].reset_index(drop=True)
    got["rank"] = got["rank"].astype("int64")
    want["rank"] = want["rank"].astype("int64")
    # identical inputs and the same float operations: exact equality
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)
    if pvalue_every != "1":
        assert (
            got.eg_pvalue.isna().any() and got.eg_qvalue.isna().sum() == got.eg_pvalue.isna().sum()
        )


def test_a_single_pair_has_no_scan(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    settings = settings_for(
        db,
        source="synthetic",
        synthetic_duration_s="70",
        synthetic_rate="4",
        symbols="SYN00,SYN01",
        windows="1s=60",
        scan_every="1s=1",
    )
    run_flow(settings)
    assert len(read_table(db, "analytics", "ts")) > 0
    assert read_table(db, "scan", "ts").empty
