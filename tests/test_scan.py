"""operators.scan and pairflow.stats.multitest: BH q-values, ranks, grid rule, amendments."""

from __future__ import annotations

import random

import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from statsmodels.stats.multitest import multipletests

from operators.scan import AMEND_HORIZON_MS, pair_scan, scan_rows
from pairflow.config import ConfigError, load_settings, parse_pairs, parse_scan_every
from pairflow.records import AnalyticsRow, ScanRow, Stat
from pairflow.stats.multitest import bh_qvalues

T0 = 1_704_067_200_000  # a multiple of 5 min


def arow(pair: str, ts_ms: int, p: float | None, tf: str = "1s", z: float = 0.0) -> AnalyticsRow:
    """An analytics row with only the fields the scanner reads set meaningfully."""
    return AnalyticsRow(
        pair, tf, ts_ms, 60, 1.0, 1.0, 0.0, 1.5, 0.0, z, 0.9, p, p, 12.0, False, False, 0.1
    )


def run_scan(rows: list[AnalyticsRow], every: dict[str, int]) -> list[ScanRow | Stat]:
    """Run the scan operator alone over ``rows`` (in this order) with TestingSource."""
    out: list[ScanRow | Stat] = []
    flow = Dataflow("scan_test")
    inp = op.input("inp", flow, TestingSource(rows))
    op.output("out", pair_scan("scan", inp, every), TestingSink(out))
    run_main(flow)
    return out


def final(out: list[ScanRow | Stat]) -> dict[tuple[str, int, str], ScanRow]:
    """Last row per (tf, ts, pair): what an upserting sink keeps."""
    return {(r.tf, r.ts_ms, r.pair): r for r in out if isinstance(r, ScanRow)}


# --- Benjamini-Hochberg ---------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 10, 91, 435, 1225])
def test_bh_equals_statsmodels_exactly(m: int) -> None:
    rng = np.random.default_rng(m)
    for trial in range(50):
        p = rng.uniform(size=m) ** rng.uniform(0.2, 6.0)
        if trial % 3 == 0:
            p = np.round(p, 2)  # many ties
        if trial % 7 == 0:
            p[: m // 2] = 1e-12  # extreme values
        expected = multipletests(p, method="fdr_bh")[1]
        assert np.array_equal(bh_qvalues(p), expected), (m, trial)


def test_bh_empty_and_bounds() -> None:
    assert bh_qvalues([]).shape == (0,)
    q = bh_qvalues([0.9, 0.95, 1.0])
    assert (q <= 1).all()
    assert bh_qvalues([0.0])[0] == 0.0


# --- one scan --------------------------------------------------------------------------


def test_scan_rows_rank_by_p_ties_by_pair_nulls_last_and_q_over_tested_rows() -> None:
    rows = [
        arow("C/D", T0, 0.03),
        arow("A/B", T0, 0.03),
        arow("E/F", T0, None),
        arow("A/C", T0, 0.001),
        arow("B/C", T0, 0.5),
        arow("A/D", T0, None),
    ]
    got = scan_rows("1s", T0, rows)
    assert [(r.pair, r.rank) for r in got] == [
        ("A/C", 1),
        ("A/B", 2),
        ("C/D", 3),
        ("B/C", 4),
        ("A/D", 5),
        ("E/F", 6),
    ]
    tested = [r for r in got if r.eg_pvalue is not None]
    q = multipletests([r.eg_pvalue for r in tested], method="fdr_bh")[1]
    assert [r.eg_qvalue for r in tested] == q.tolist()  # m = 4 (NULL p not counted)
    assert [r.eg_qvalue for r in got if r.eg_pvalue is None] == [None, None]
    assert all(r.tf == "1s" and r.ts_ms == T0 and r.beta == 1.5 for r in got)


# --- the operator ----------------------------------------------------------------------


def grid(pairs: list[str], n: int, tf_ms: int = 1000, seed: int = 0) -> list[AnalyticsRow]:
    """Rows for ``n`` grid times per pair, shuffled across pairs within each time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = [arow(p, T0 + i * tf_ms, rng.random(), tf="1s") for p in pairs]
        rng.shuffle(at)
        out += at
    return out


def test_only_every_kth_grid_time_is_scanned_and_each_once() -> None:
    pairs = ["A/B", "A/C", "B/C"]
    out = run_scan(grid(pairs, 125), {"1s": 60})
    scan = [r for r in out if isinstance(r, ScanRow)]
    assert sorted({r.ts_ms for r in scan}) == [T0, T0 + 60_000, T0 + 120_000]
    assert len(scan) == 9  # no re-emission without amendments
    for ts in (T0, T0 + 60_000, T0 + 120_000):
        at = [r for r in scan if r.ts_ms == ts]
        assert sorted(r.rank for r in at) == [1, 2, 3]


def test_a_time_waits_for_every_pair_and_eof_flushes() -> None:
    # A/C has only T0, so T0 is not complete when A/B passes it: it comes at EOF.
    rows = [arow("A/C", T0, 0.01), arow("A/B", T0, 0.1), arow("A/B", T0 + 1000, 0.2)]
    out = run_scan(rows, {"1s": 1})
    scan = [r for r in out if isinstance(r, ScanRow)]
    at0 = [r for r in scan if r.ts_ms == T0]
    assert [(r.pair, r.rank) for r in at0] == [("A/C", 1), ("A/B", 2)]  # emitted once
    assert [r.pair for r in scan if r.ts_ms == T0 + 1000] == ["A/B"]


def test_a_first_row_after_its_time_was_scanned_re_scans_it() -> None:
    rows = [arow("A/B", T0, 0.1), arow("A/B", T0 + 1000, 0.2), arow("A/C", T0, 0.01)]
    out = run_scan(rows, {"1s": 1})
    at0 = [r for r in out if isinstance(r, ScanRow) and r.ts_ms == T0]
    assert [(r.pair, r.rank) for r in at0] == [("A/B", 1), ("A/C", 1), ("A/B", 2)]


def test_a_pair_not_warm_is_left_out_and_later_pairs_join() -> None:
    rows = [arow("A/B", T0 + i * 1000, 0.5) for i in range(5)]
    rows += [arow("C/D", T0 + i * 1000, 0.01) for i in range(3, 6)]
    out = run_scan(rows, {"1s": 1})
    got = final(out)
    assert sorted(p for (_, ts, p) in got if ts == T0) == ["A/B"]
    assert sorted(p for (_, ts, p) in got if ts == T0 + 3000) == ["A/B", "C/D"]
    assert got[("1s", T0 + 3000, "C/D")].rank == 1


def test_amended_row_re_emits_its_whole_scan_time() -> None:
    pairs = ["A/B", "A/C", "B/C"]
    rows = grid(pairs, 10)
    # ts T0+5s is long scanned when A/C's row there is amended to a tiny p-value
    rows.append(arow("A/C", T0 + 5000, 1e-9, z=3.0))
    rows += [arow(p, T0 + 10_000, 0.5) for p in pairs]
    out = run_scan(rows, {"1s": 1})
    at5 = [r for r in out if isinstance(r, ScanRow) and r.ts_ms == T0 + 5000]
    assert len(at5) == 6  # scanned, then re-scanned as a whole
    last = {r.pair: r for r in at5}
    assert last["A/C"].rank == 1
    assert last["A/C"].zscore == 3.0
    assert last["A/C"].eg_pvalue == 1e-9
    ps = [r.eg_pvalue for r in last.values()]
    q = dict(zip(last, multipletests(ps, method="fdr_bh")[1].tolist(), strict=True))
    assert {p: r.eg_qvalue for p, r in last.items()} == q


def test_rows_older_than_the_horizon_are_dropped_and_counted() -> None:
    n = AMEND_HORIZON_MS // 1000 + 30
    rows = grid(["A/B", "A/C"], n)
    rows.append(arow("A/B", T0, 1e-9))  # far too late
    out = run_scan(rows, {"1s": 1})
    assert final(out)[("1s", T0, "A/B")].eg_pvalue != 1e-9
    stats = [s for s in out if isinstance(s, Stat)]
    assert [(s.metric, s.value) for s in stats] == [("late_rows_1s_total", 1.0)]


def test_timeframes_are_scanned_independently() -> None:
    rows = [arow("A/B", T0 + i * 60_000, 0.2, tf="1m") for i in range(3)]
    rows += [arow("A/B", T0 + i * 1000, 0.3, tf="1s") for i in range(3)]
    out = final(run_scan(rows, {"1s": 2, "1m": 1}))
    assert sorted(k for k in out if k[0] == "1m") == [
        ("1m", T0 + i * 60_000, "A/B") for i in range(3)
    ]
    assert sorted(k for k in out if k[0] == "1s") == [("1s", T0, "A/B"), ("1s", T0 + 2000, "A/B")]


# --- configuration ---------------------------------------------------------------------


def test_pairs_all_is_every_unordered_pair_first_listed_is_y() -> None:
    syms = ("CC", "AA", "BB", "DD")
    pairs = parse_pairs("all", syms)
    assert pairs == (
        ("CC", "AA"),
        ("CC", "BB"),
        ("CC", "DD"),
        ("AA", "BB"),
        ("AA", "DD"),
        ("BB", "DD"),
    )
    assert len(parse_pairs("ALL", tuple(f"S{i:02d}" for i in range(30)))) == 435


def test_scan_every_default_and_validation() -> None:
    s = load_settings({"PAIRFLOW_PAIRS": "all"})
    assert s.scan_every == {"1s": 60, "1m": 1, "5m": 1}
    assert parse_scan_every("1m=5") == {"1s": 1, "1m": 5, "5m": 1}
    for bad in ("1h=2", "1s=0", "1s=x", "1s"):
        with pytest.raises(ConfigError, match="PAIRFLOW_SCAN_EVERY"):
            parse_scan_every(bad)
