"""The synthetic source's warm start (``PAIRFLOW_SYNTHETIC_HISTORY_S``)."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from pairflow import shutdown
from pairflow.records import Bar, Tick, Watermark
from pairflow.summary import COUNTS
from pairflow.timeutil import TF_MS, now_ms
from sources.synthetic import (
    SyntheticParams,
    SyntheticPartition,
    simulate_history,
)
from tests.flowutil import run_flow, settings_for

SYMBOLS = tuple(f"SYN{i:02d}" for i in range(6))
T5 = 1_800_000_000_000 - 1_800_000_000_000 % TF_MS["5m"]


@pytest.mark.parametrize("universe", ["clusters", "pair"])
def test_history_bars_are_consistent(universe: str) -> None:
    """OHLC inside [low, high], positive volumes, aligned, ordered, all before t5."""
    params = SyntheticParams(universe=universe, rate=4.0)
    spans = {"1s": 91.0, "1m": 1800.0, "5m": 6600.0}
    history = simulate_history(SYMBOLS, params, 7, T5, 6600, spans)
    by_key: dict[tuple[str, str], list[Bar]] = defaultdict(list)
    for bar in history.bars:
        by_key[bar.symbol, bar.tf].append(bar)
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low > 0
        assert bar.trades >= 1
        assert bar.volume > 0
        assert bar.quote_volume > 0
        assert 0 <= bar.taker_buy_volume <= bar.volume
        assert bar.low * bar.volume * 0.999 <= bar.quote_volume <= bar.high * bar.volume * 1.001
        assert bar.open_time_ms % TF_MS[bar.tf] == 0
        assert bar.open_time_ms + TF_MS[bar.tf] <= T5
        assert bar.first_trade_id is None
        assert bar.last_trade_id is None
    assert set(by_key) == {(s, tf) for s in SYMBOLS for tf in spans}
    for (_, tf), bars in by_key.items():
        times = [b.open_time_ms for b in bars]
        assert times == sorted(set(times))
        assert times[0] >= T5 - spans[tf] * 1000
        assert times[-1] == T5 - TF_MS[tf]  # rate 4/s: every interval trades
    # 5m bars aggregate the 1m bars of the same path
    for sym in SYMBOLS:
        m1 = {b.open_time_ms: b for b in by_key[sym, "1m"]}
        for b5 in by_key[sym, "5m"]:
            parts = [
                m1[b5.open_time_ms + k * 60_000]
                for k in range(5)
                if b5.open_time_ms >= T5 - 1_800_000
            ]
            if len(parts) == 5:  # noqa: PLR2004
                assert b5.open == parts[0].open
                assert b5.close == parts[-1].close
                assert b5.high == max(p.high for p in parts)
                assert b5.low == min(p.low for p in parts)
                assert b5.trades == sum(p.trades for p in parts)
                assert math.isclose(b5.volume, sum(p.volume for p in parts), rel_tol=1e-9)
    assert history.marks == [Watermark(s, tf, T5) for s in SYMBOLS for tf in ("5m", "1m", "1s")]


def test_history_of_a_large_universe_has_every_bar() -> None:
    """110 minutes of 24 symbols (plus 91 s of 1s bars): every interval has its bar.

    The time it takes is printed (no timed assertion; ~0.5 s measured here).
    """
    symbols = tuple(f"SYN{i:02d}" for i in range(24))
    start = time.perf_counter()
    history = simulate_history(
        symbols, SyntheticParams(universe="clusters", rate=4.0), 7, T5, 6600, {"1s": 91}
    )
    print(f"\nsimulate_history: 24 symbols x 110 min in {time.perf_counter() - start:.2f} s")
    assert len(history.bars) > 24 * 90 * 0.9


@pytest.mark.parametrize("universe", ["clusters", "pair"])
def test_live_trades_continue_from_history(universe: str) -> None:
    """History first (bars, then watermarks), then trades from t5 near the last close."""
    params = SyntheticParams(universe=universe, rate=4.0)
    part = SyntheticPartition(SYMBOLS, params, 7, 0.0, 100_000, None, 900, {"1s": 60})
    t5 = part.start_ms
    assert t5 % TF_MS["5m"] == 0
    assert t5 <= now_ms() < t5 + TF_MS["5m"] + 1000
    first = part.next_batch()
    assert first
    assert all(isinstance(x, (Bar, Watermark)) for x in first)
    n_bars = sum(isinstance(x, Bar) for x in first)
    assert all(isinstance(x, Watermark) for x in first[n_bars:])
    last_close = {b.symbol: b.close for b in first if isinstance(b, Bar) and b.tf == "1s"}
    first_trade: dict[str, Tick] = {}
    while len(first_trade) < len(SYMBOLS):
        for tick in part.next_batch():
            assert isinstance(tick, Tick)
            assert tick.trade_time_ms >= t5
            first_trade.setdefault(tick.symbol, tick)
    for sym, tick in first_trade.items():
        dt_s = (tick.trade_time_ms - t5) / 1000 + 1.0
        # a few sd of the model's moves over the gap (factor + spread, or a walk)
        sd = 3e-4 * math.sqrt(dt_s) * 2 + 2e-4 / math.sqrt(2 / 3)
        assert abs(math.log(tick.price / last_close[sym])) < 6 * sd + 1e-4, sym
    # a resumed source does not emit the history again
    resumed = SyntheticPartition(SYMBOLS, params, 7, 0.0, 100_000, part.snapshot(), 900)
    assert all(isinstance(x, Tick) for x in resumed.next_batch())


def test_history_only_in_real_time() -> None:
    """A simulated-time run (duration) ignores no setting silently: it is refused."""
    from pairflow.config import ConfigError

    with pytest.raises(ConfigError, match="HISTORY_S"):
        settings_for(
            Path("x.db"), source="synthetic", synthetic_history_s="600", synthetic_duration_s="60"
        )


def _stop_when(check: Callable[[], bool], limit_s: float) -> None:
    """Request the flow's stop once ``check()`` holds (or after ``limit_s``, a safety net)."""
    deadline = time.monotonic() + limit_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    shutdown.request_stop()


def test_flow_warm_start_fills_every_timeframe(tmp_path: Path) -> None:
    """A real-time flow with history writes 1s, 1m and 5m analytics and scans at once."""
    db = tmp_path / "warm.db"
    settings = settings_for(
        db,
        source="synthetic",
        synthetic_universe="clusters",
        synthetic_rate="4",
        synthetic_history_s="6300",  # 21 x 5 min: 5m W=20 needs 21 bars
        # 3 pairs: the trades t5..now (up to 5 min of 1s bars) go through analytics too
        symbols="SYN00,SYN01,SYN02",
        pairs="all",
        windows="1s=20,1m=20,5m=20",
        scan_every="1s=5,1m=1,5m=1",
        db_flush_ms="200",
    )
    before = dict(COUNTS)

    def ready() -> bool:
        # live trades are in and scan rows were written (the history went through)
        return COUNTS["ticks"] > before.get("ticks", 0) and COUNTS["rows:scan"] > before.get(
            "rows:scan", 0
        )

    timer = threading.Thread(target=_stop_when, args=(ready, 60.0), daemon=True)
    start = time.monotonic()
    timer.start()
    try:
        run_flow(settings)
    finally:
        timer.join()
        shutdown.STOP.clear()
    elapsed = time.monotonic() - start
    assert ready(), "no live ticks / scan rows within 60 s"
    print(f"\nsynthetic warm start: all timeframes analysed and scanned after {elapsed:.1f} s")
    con = duckdb.connect(str(db), read_only=True)
    try:
        tfs = dict(con.execute("SELECT tf, count(*) FROM analytics GROUP BY tf").fetchall())
        scans = dict(con.execute("SELECT tf, count(*) FROM scan GROUP BY tf").fetchall())
        source = con.execute(
            "SELECT value FROM pipeline_stats WHERE component = 'source' AND metric = 'synthetic'"
        ).fetchall()
    finally:
        con.close()
    assert set(tfs) == {"1s", "1m", "5m"}
    assert set(scans) == {"1s", "1m", "5m"}
    assert source
