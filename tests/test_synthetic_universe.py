"""sources.synthetic ``clusters`` universe: layout, planted pairs, determinism, and the
scanner ranking the planted pairs on top with almost no false discoveries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairflow.config import ConfigError, parse_pairs
from pairflow.records import Tick
from pairflow.testing.oracle import read_table
from sources.synthetic import (
    SyntheticParams,
    SyntheticPartition,
    cluster_layout,
    planted_pairs,
)
from tests.flowutil import run_clusters, settings_for, synthetic_symbols

CLUSTERS = SyntheticParams(universe="clusters", rate=5.0)


@pytest.mark.parametrize("n", [2, 3, 5, 12, 20, 30, 100])
def test_cluster_layout_covers_every_symbol_once(n: int) -> None:
    clusters, independent = cluster_layout(n)
    flat = [i for c in clusters for i in c] + list(independent)
    assert sorted(flat) == list(range(n))
    assert all(2 <= len(c) <= 4 for c in clusters)
    assert len(independent) >= n // 4


def test_planted_pairs_are_the_pairs_inside_clusters_oriented_like_pairs_all() -> None:
    syms = synthetic_symbols(12)
    assert cluster_layout(12) == (((0, 1), (2, 3, 4), (5, 6, 7, 8)), (9, 10, 11))
    planted = planted_pairs(syms)
    assert len(planted) == 1 + 3 + 6
    assert planted <= set(parse_pairs("all", syms))
    assert ("SYN02", "SYN04") in planted and ("SYN01", "SYN02") not in planted
    assert planted_pairs(("BTCUSDT", "ETHUSDT", "SOLUSDT"), "pair") == {("BTCUSDT", "ETHUSDT")}
    with pytest.raises(ValueError, match="universe"):
        planted_pairs(syms, "nope")


def test_clusters_universe_is_deterministic_and_resumable() -> None:
    syms = synthetic_symbols(12)
    a = SyntheticPartition(syms, CLUSTERS, 3, 60, 400, None)
    b = SyntheticPartition(syms, CLUSTERS, 3, 60, 400, None)
    first = a.next_batch()
    assert first == b.next_batch()
    resumed = SyntheticPartition(syms, CLUSTERS, 3, 60, 400, a.snapshot())
    assert resumed.next_batch() == b.next_batch()
    assert {t.symbol for t in first} == set(syms)
    assert all(isinstance(t, Tick) and t.price >= 100 for t in first)


def test_pair_universe_stays_the_default(tmp_path: Path) -> None:
    s = settings_for(tmp_path / "x.db", source="synthetic")
    assert s.source.universe == "pair"
    assert (
        "universe=clusters"
        in settings_for(
            tmp_path / "x.db", source="synthetic", synthetic_universe="Clusters"
        ).source.describe()
    )
    with pytest.raises(ConfigError, match="PAIRFLOW_SYNTHETIC_UNIVERSE"):
        settings_for(tmp_path / "x.db", source="synthetic", synthetic_universe="grid")


def test_planted_pairs_rank_on_top_and_unrelated_pairs_are_rarely_discoveries(
    tmp_path: Path,
) -> None:
    """12 symbols (66 pairs, 10 planted), 1s bars, W=90, 4 simulated minutes at 5 trades/s."""
    db = tmp_path / "universe.db"
    syms = synthetic_symbols(12)
    run_clusters(db, syms, duration_s=240, rate=5, windows="1s=90", scan_every="1s=5")
    scan = read_table(db, "scan", "tf, ts, rank")
    planted = {f"{y}/{x}" for y, x in planted_pairs(syms)}
    k = len(planted)
    full = scan.groupby("ts").filter(lambda g: len(g) == 66)
    n_scans = full.ts.nunique()
    assert n_scans >= 20
    top = full[full["rank"] <= k]
    recall = top.pair.isin(planted).sum() / (k * n_scans)
    unrelated = full[~full.pair.isin(planted)]
    false_share = (unrelated.eg_qvalue < 0.05).mean()
    planted_found = (full[full.pair.isin(planted)].eg_qvalue < 0.05).mean()
    print(
        f"scans={n_scans} recall@{k}={recall:.3f} planted q<0.05={planted_found:.3f} "
        f"unrelated q<0.05={false_share:.4f}"
    )
    assert recall >= 0.9
    assert false_share <= 0.01
