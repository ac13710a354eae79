"""dashboard.scanner: queries, filters, heat map and table spec on a DB the flow built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from dashboard import scanner
from pairflow.config import parse_pairs
from sources.synthetic import planted_pairs
from tests.flowutil import run_clusters, synthetic_symbols

SYMS = synthetic_symbols(8)


@pytest.fixture(scope="module")
def scan_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("scan") / "scan.db"
    run_clusters(db, SYMS, duration_s=125)  # ends mid-interval: the last scan is full
    return db


@contextmanager
def ro(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        yield con
    finally:
        con.close()


def test_latest_scan_is_the_newest_time_ordered_by_rank(scan_db: Path) -> None:
    with ro(scan_db) as con:
        times = scanner.scan_times(con)
        df = scanner.latest_scan(con, "1s")
        newest = con.execute("SELECT max(ts) FROM scan WHERE tf = '1s'").fetchone()[0]
        assert scanner.latest_scan(con, "5m").empty
    assert set(times) == {"1s"}
    assert times["1s"] == newest
    assert (df.ts == newest).all()
    assert len(df) == 28  # every pair of 8 symbols
    assert df["rank"].tolist() == list(range(1, 29))
    assert list(df.columns) == ["ts", *scanner.SCAN_COLUMNS]
    assert df.eg_pvalue.is_monotonic_increasing


def test_planted_pairs_light_up_the_heat_map(scan_db: Path) -> None:
    with ro(scan_db) as con:
        df = scanner.latest_scan(con, "1s")
    syms, values, names = scanner.heatmap_matrix(df)
    assert syms == list(SYMS)  # configuration order recovered from the pairs
    assert np.isnan(np.diag(values)).all()
    np.testing.assert_array_equal(values, values.T)
    planted = {f"{y}/{x}" for y, x in planted_pairs(SYMS)}
    cell = {names[i, j]: values[i, j] for i in range(8) for j in range(8) if names[i, j]}
    assert set(cell) == set(df.pair)
    assert np.median([cell[p] for p in planted]) < np.median(
        [v for p, v in cell.items() if p not in planted]
    )
    fig = scanner.heatmap_figure(df, "eg_qvalue")
    heat, marks = fig.data
    assert heat.type == "heatmap" and marks.type == "scatter"
    assert len(marks.customdata) == 2 * 28  # both triangles clickable
    assert set(marks.customdata) == set(df.pair)
    assert "EG q" in heat.colorbar.title.text


def test_filters_and_table_spec(scan_db: Path) -> None:
    with ro(scan_db) as con:
        df = scanner.latest_scan(con, "1s")
    assert len(scanner.filter_scan(df, scanner.ScanFilter())) == len(df)
    q = scanner.filter_scan(df, scanner.ScanFilter(q_max=0.05))
    assert (q.eg_qvalue <= 0.05).all() and len(q) == (df.eg_qvalue <= 0.05).sum()
    hl = scanner.filter_scan(df, scanner.ScanFilter(half_life_min=0.5, half_life_max=3.0))
    assert hl.half_life.between(0.5, 3.0).all()
    z = scanner.filter_scan(df, scanner.ScanFilter(abs_z_min=1.0))
    assert (z.zscore.abs() >= 1.0).all()
    data, spec = scanner.table_spec(df)
    assert list(data.columns) == list(spec)
    assert "abs_z" in data and (data.abs_z == data.zscore.abs()).all()


def test_heat_map_is_readable_at_30_symbols() -> None:
    syms = tuple(f"S{i:02d}USDT" for i in range(30))
    pairs = ["/".join(p) for p in parse_pairs("all", syms)]
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"pair": pairs, "eg_pvalue": rng.uniform(size=435)})
    df["eg_qvalue"] = df.eg_pvalue
    fig = scanner.heatmap_figure(df)
    assert list(fig.data[0].x) == list(syms)
    assert 600 <= fig.layout.height <= 900
    assert fig.layout.yaxis.scaleanchor == "x"  # square cells
    assert len(fig.data[1].customdata) == 870
    assert scanner.symbol_order(pairs) == list(syms)


def test_render_scanner_tab_runs_on_a_flow_built_db(scan_db: Path) -> None:
    from streamlit.testing.v1 import AppTest

    def app(db: str) -> None:
        from contextlib import contextmanager

        import duckdb
        import streamlit as st

        from dashboard.scanner import render_scanner_tab

        @contextmanager
        def factory():  # noqa: ANN202
            con = duckdb.connect(db, read_only=True)
            try:
                yield con
            finally:
                con.close()

        st.session_state.setdefault("pair", "")
        render_scanner_tab(factory)

    at = AppTest.from_function(app, args=(str(scan_db),), default_timeout=30).run()
    assert not at.exception
    assert any("pairs" in c.value for c in at.caption)
    assert len(at.number_input) == 2 and len(at.slider) == 1
