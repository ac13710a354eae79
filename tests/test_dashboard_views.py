"""The Strategy, Scanner and health additions of the app, on databases the real flow built.

AppTest (no browser): strategy selector and tab against the flow's strategy tables,
signals of the selected strategy, OLS + Kalman β, amendments and warm-up on the
health view, "N of W bars" when a window is not full, the SYNTHETIC badge, and the
scanner opening a pair in the pair view.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import pair_charts, pair_view, strategy_view, ui
from pairflow.testing import RECORDING
from pairflow.timeutil import UTC
from tests.flowutil import run_clusters, run_flow, settings_for, synthetic_symbols

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")
TIMEOUT = 60
STRATEGIES = "default:model=ols,entry=2,exit=0.5;kal:model=kalman,entry=1.5,exit=0"
SYMS = synthetic_symbols(12)

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture(scope="module")
def strat_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped recording through the real flow, W=60 at 1s, two strategies."""
    db = tmp_path_factory.mktemp("strat") / "replay.db"
    run_flow(settings_for(db, source=f"replay:{RECORDING}", windows="1s=60", strategies=STRATEGIES))
    return db


@pytest.fixture(scope="module")
def scan_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic clusters universe of 12 symbols (66 pairs), all scanned."""
    db = tmp_path_factory.mktemp("scan") / "universe.db"
    run_clusters(db, SYMS, duration_s=125)
    return db


def run_app(monkeypatch: pytest.MonkeyPatch, db: Path, **env: str) -> AppTest:
    monkeypatch.setenv("PAIRFLOW_DB", str(db))
    for k, v in env.items():
        monkeypatch.setenv(f"PAIRFLOW_{k.upper()}", v)
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run().run()  # 2 refreshes: all charts


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# --------------------------------------------------------------------------- strategy


def test_strategy_selector_lists_the_strategies_table(monkeypatch, strat_db: Path) -> None:
    at = run_app(monkeypatch, strat_db, windows="1s=60")
    assert_clean(at)
    assert at.selectbox(key="strategy").options == ["default", "kal"]
    assert at.selectbox(key="strategy").value == "default"


def test_strategy_tab_shows_the_flows_numbers(monkeypatch, strat_db: Path) -> None:
    at = run_app(monkeypatch, strat_db, windows="1s=60")
    for name in ("default", "kal"):
        at.selectbox(key="strategy").set_value(name).run()
        at.segmented_control(key="view").set_value("Strategy").run()
        assert_clean(at)
        with duckdb.connect(str(strat_db), read_only=True) as con:
            stats = con.execute(
                "SELECT pnl, sharpe, max_drawdown, win_rate, trades FROM strategy_stats "
                "WHERE strategy = ? AND pair = 'BTCUSDT/ETHUSDT' AND tf = '1s'",
                [name],
            ).fetchone()
            n_trades = con.execute(
                "SELECT count(*) FROM strategy_trades WHERE strategy = ? AND tf = '1s'", [name]
            ).fetchone()[0]
        assert stats is not None and n_trades > 0
        pnl, sharpe, max_dd, win_rate, trades = stats
        shown = metrics(at)
        assert shown["PnL"] == f"{pnl:,.2f}"
        assert shown["Sharpe (annualised)"] == f"{sharpe:.2f}"
        assert shown["Max drawdown"] == f"{max_dd:,.2f}"
        assert shown["Win rate"] == f"{100 * win_rate:.0f} %"
        assert shown["Trades"] == f"{trades:,.0f}"
        assert len(at.get("plotly_chart")) == 2  # equity, drawdown
        assert [d.value.shape[0] for d in at.dataframe] == [min(n_trades, 200)]
        assert any(f"Strategy **{name}**" in c for c in texts(at.caption))


def test_drawdown_is_running_max_minus_equity_of_the_stored_equity(strat_db: Path) -> None:
    """At one point per bar the curve's max is the flow's own max_drawdown."""
    with duckdb.connect(str(strat_db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        lo, end, flow_dd = con.execute(
            "SELECT min(e.ts), max(e.ts), any_value(s.max_drawdown) FROM strategy_equity e "
            "JOIN strategy_stats s USING (strategy, pair, tf) "
            "WHERE strategy = 'default' AND pair = 'BTCUSDT/ETHUSDT' AND tf = '1s'"
        ).fetchone()
        data = strategy_view.load_strategy(con, "default", "BTCUSDT/ETHUSDT", "1s", lo, end, 1)
        # a view starting later carries the earlier peak in
        mid = lo + (end - lo) / 2
        later = strategy_view.load_strategy(con, "default", "BTCUSDT/ETHUSDT", "1s", mid, end, 1)
    assert data.equity["drawdown"].max() == pytest.approx(flow_dd, abs=1e-9)
    tail = data.equity[data.equity["t"] >= later.equity["t"].iloc[0]]
    np.testing.assert_allclose(later.equity["drawdown"], tail["drawdown"], atol=1e-9)


def test_strategy_names_are_validated(strat_db: Path) -> None:
    with duckdb.connect(str(strat_db), read_only=True) as con:
        with pytest.raises(ValueError, match="strategy name"):
            strategy_view.load_strategy(con, "x'; DROP", "BTCUSDT/ETHUSDT", "1s", None, None, 1)


def test_z_chart_marks_the_selected_strategys_signals(strat_db: Path) -> None:
    with duckdb.connect(str(strat_db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for name in ("default", "kal"):
            req = pair_view.ViewRequest(
                "BTCUSDT", "ETHUSDT", "1s", timedelta(minutes=15), strategy=name
            )
            view = pair_view.load_view(con, req, use_cache=False)
            want = con.execute(
                "SELECT count(*) FROM signals WHERE strategy = ? AND tf = '1s' AND ts >= ?",
                [name, view.start],
            ).fetchone()[0]
            assert want > 0
            assert len(view.signals) == want
            fig = pair_charts.zscore_figure(view, 2.0, 0.5, kalman=name == "kal")
            markers = [t for t in fig.data if t.mode == "markers"]
            assert sum(len(t.x) for t in markers) == want
            names = {t.name for t in fig.data}
            assert ("Kalman z" in names) == (name == "kal")
            beta = pair_charts.beta_figure(view)
            assert {t.name for t in beta.data} == {"OLS β", "Kalman β"}


# --------------------------------------------------------------------------- health


def _with_revisions(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    t = datetime(2024, 8, 9, 0, 1, tzinfo=UTC)
    rows = [
        (t, "bars:BTCUSDT", "amended_bars_total", 3.0),
        (t + timedelta(seconds=5), "bars:BTCUSDT", "amended_bars_total", 7.0),
        (t + timedelta(seconds=2), "bars:ETHUSDT", "amended_bars_total", 2.0),
        (t + timedelta(seconds=6), "analytics:BTCUSDT/ETHUSDT|1s", "recomputed_rows_total", 61.0),
        (t + timedelta(seconds=6), "analytics:BTCUSDT/ETHUSDT|1s", "amended_points_total", 4.0),
        (t, "binance", "warmup_complete", 0.0),
        (t, "binance", "warmup_missing_intervals", 17.0),
        (t, "binance", "warmup_missing_symbols", 1.0),
    ]
    with duckdb.connect(str(dst)) as con:
        con.executemany("INSERT INTO pipeline_stats VALUES (?, ?, ?, ?)", rows)
    return dst


def test_health_shows_amendments_warmup_and_every_table(
    monkeypatch, strat_db: Path, tmp_path: Path
) -> None:
    db = _with_revisions(strat_db, tmp_path / "revised.db")
    at = run_app(monkeypatch, db, windows="1s=60")
    at.segmented_control(key="view").set_value("Pipeline health").run()
    assert_clean(at)
    caps = [c.replace(ui.WORD_JOINER, "") for c in texts(at.caption)]  # as a reader sees it
    assert any(
        "9 bars amended" in c and "61 analytics rows recomputed" in c and "00:01:06" in c
        for c in caps
    ), caps
    frames = [d.value for d in at.dataframe]
    by_symbol = next(f for f in frames if "bars_amended" in f.columns)
    assert dict(zip(by_symbol["symbol"], by_symbol["bars_amended"], strict=True)) == {
        "BTCUSDT": 7,
        "ETHUSDT": 2,
    }
    assert any("rows_recomputed" in f.columns for f in frames)
    warn = texts(at.warning)
    assert any("partial" in w and "17 kline" in w and "1 symbols" in w for w in warn), warn
    counts = next(f for f in frames if list(f.columns) == ["table", "rows"])
    assert len(counts) == 11
    # tall enough for every table (header + 11 rows of 35 px): no scrolling
    assert ui.table_height(counts, max_rows=len(counts)) == 38 + 35 * 11


def test_health_without_amendments_says_so(monkeypatch, strat_db: Path) -> None:
    at = run_app(monkeypatch, strat_db, windows="1s=60")
    at.segmented_control(key="view").set_value("Pipeline health").run()
    assert_clean(at)
    assert any("No bar was amended" in c for c in texts(at.caption))


# --------------------------------------------------------------------------- windows


def test_window_not_full_says_how_many_bars_it_has_and_needs(monkeypatch, strat_db: Path) -> None:
    at = run_app(monkeypatch, strat_db, windows="1s=60,1m=120", source=f"replay:{RECORDING}")
    at.segmented_control(key="tf").set_value("1m").run()
    assert_clean(at)
    with duckdb.connect(str(strat_db), read_only=True) as con:
        have = pair_view.grid_points(con, "BTCUSDT", "ETHUSDT", "1m")
    assert have is not None and 0 < have < 120
    info = " ".join(texts(at.info))
    assert "W = 120 1m bars" in info and f"has **{have:,}**" in info, info
    assert "PAIRFLOW_WARMUP" in info
    # a timeframe left out of PAIRFLOW_WINDOWS is said to be not analysed
    at.segmented_control(key="tf").set_value("5m").run()
    assert any("5m is not analysed" in i for i in texts(at.info))


def test_live_window_message_names_the_warm_start(monkeypatch, strat_db: Path) -> None:
    at = run_app(monkeypatch, strat_db, windows="1s=60,1m=120", warmup="auto")
    at.segmented_control(key="tf").set_value("1m").run()
    assert_clean(at)
    assert any("warm start (`PAIRFLOW_WARMUP=auto`) fills it" in i for i in texts(at.info))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_data_is_labelled(monkeypatch, scan_db: Path, strat_db: Path) -> None:
    at = run_app(monkeypatch, scan_db, source="synthetic", windows="1s=60")
    assert_clean(at)
    assert any("SYNTHETIC DATA" in m for m in texts(at.markdown))
    # real data is not
    monkeypatch.delenv("PAIRFLOW_SOURCE")
    at = run_app(monkeypatch, strat_db, windows="1s=60")
    assert not any("SYNTHETIC" in m for m in texts(at.markdown))


def test_scan_demo_file_is_labelled_without_the_setting(
    monkeypatch, scan_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "demo-scan.db"
    shutil.copy(scan_db, db)
    at = run_app(monkeypatch, db, windows="1s=60")
    assert any("SYNTHETIC DATA" in m for m in texts(at.markdown))


# --------------------------------------------------------------------------- scanner


def test_scanner_opens_the_pair_in_the_pair_view(monkeypatch, scan_db: Path) -> None:
    at = run_app(monkeypatch, scan_db, source="synthetic", windows="1s=60")
    at.segmented_control(key="view").set_value("Scanner").run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1  # the heat map
    pick = at.selectbox(key="scanner_pick")
    assert len(pick.options) == 66
    target = pick.options[3]
    pick.set_value(target)
    at.button(key="scanner_open").click().run()
    assert_clean(at)
    assert at.session_state["view"] == "Pair analytics"
    assert at.selectbox(key="pair").value == target
    assert any(f"{target.replace('/', ' / ')} · 1s" in m for m in texts(at.markdown))
    assert len(at.get("plotly_chart")) == 7
