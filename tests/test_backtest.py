"""``python -m pairflow.backtest`` on the shipped recording: printed table, grid, HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pairflow.backtest import grid_strategies, main, parse_grid
from pairflow.config import ConfigError
from pairflow.strategies.params import StrategyParams

RECORDING = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "recordings"
    / "binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)
ROW = re.compile(
    r"^(?P<strategy>\S+)\s+(?P<pair>\S+/\S+)\s+(?P<tf>1s|1m|5m)\s+(?P<trades>\d+)\s+"
    r"(?P<win>[-\d.]+)\s+(?P<pnl>-?[\d.]+)\s+(?P<ret>-?[\d.]+)\s+(?P<sharpe>[-\d.]+|-)\s+"
    r"(?P<dd>[\d.]+)\s+(?P<exp>[\d.]+)$"
)


def test_grid_names_values_and_invalid_points() -> None:
    grid = parse_grid(["entry=1.5,2", "exit=0,0.5,2", "model=ols,kalman"])
    assert grid.size == 12
    ps, skipped = grid_strategies(grid, StrategyParams(name="base"))
    names = [p.name for p in ps]
    assert "g_entry2_exit0p5_ols" in names and "g_entry1p5_exit0_kalman" in names
    assert len(ps) == 8 and len(skipped) == 4  # exit=2 >= entry
    p = next(p for p in ps if p.name == "g_entry2_exit0p5_kalman")
    assert (p.entry, p.exit, p.model, p.stop, p.fee_bps) == (2.0, 0.5, "kalman", 4.0, 10.0)
    with pytest.raises(ConfigError):
        parse_grid(["bogus=1"])
    with pytest.raises(ConfigError):
        grid_strategies(parse_grid(["entry=x"]), StrategyParams(name="base"))


def test_backtest_prints_the_stats_table_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, html = tmp_path / "bt.db", tmp_path / "report.html"
    argv = [
        f"replay:{RECORDING}",
        "--pairs", "BTCUSDT/ETHUSDT",
        "--windows", "1s=60",
        "--strategies", "default",
        "--grid", "entry=1.5,2", "exit=0,0.5",
        "--db", str(db),
        "--html", str(html),
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    printed = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            printed[m["strategy"], m["pair"], m["tf"]] = m
    with duckdb.connect(str(db), read_only=True) as con:
        stats = con.execute("SELECT * FROM strategy_stats ORDER BY strategy").df()
    names = {
        "default",
        "g_entry1p5_exit0",
        "g_entry1p5_exit0p5",
        "g_entry2_exit0",
        "g_entry2_exit0p5",
    }
    assert set(stats["strategy"]) == names
    assert len(printed) == len(stats) == 5
    for r in stats.itertuples(index=False):
        m = printed[r.strategy, r.pair, r.tf]
        assert int(m["trades"]) == r.trades
        assert float(m["pnl"]) == pytest.approx(round(r.pnl, 2), abs=0.006)
        assert float(m["ret"]) == pytest.approx(round(r.return_pct, 3), abs=6e-4)
        assert float(m["dd"]) == pytest.approx(round(r.max_drawdown, 2), abs=0.006)
        assert float(m["exp"]) == pytest.approx(round(100 * r.exposure, 1), abs=0.06)
        if r.win_rate == r.win_rate:  # not NaN
            assert float(m["win"]) == pytest.approx(round(100 * r.win_rate, 1), abs=0.06)
        assert float(m["sharpe"]) == pytest.approx(round(r.sharpe, 2), abs=0.006)
    assert "best Sharpe" in out
    # default and g_entry2_exit0p5 have the same parameters: the same results
    a = stats.set_index("strategy").loc["default"]
    b = stats.set_index("strategy").loc["g_entry2_exit0p5"]
    assert (a.trades, a.pnl, a.sharpe) == (b.trades, b.pnl, b.sharpe)
    text = html.read_text(encoding="utf-8")
    assert 'data-plot="equity BTCUSDT/ETHUSDT 1s"' in text
    assert 'data-plot="drawdown BTCUSDT/ETHUSDT 1s"' in text
    assert 'data-plot="sharpe heat map BTCUSDT/ETHUSDT 1s"' in text
    assert "Plotly.newPlot" in text and "<script src=" not in text  # plotly.js inlined


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main([f"replay:{RECORDING}", "--grid", "entry=1", "exit=2", "--db", str(tmp_path / "x.db")])
        == 2
    )
    assert "no valid combination" in capsys.readouterr().err
