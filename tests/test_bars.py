"""operators.bars: event-time 1s/1m/5m bars, watermarks, late ticks, wall-clock closing."""

from __future__ import annotations

import bytewax.operators as op
import pandas as pd
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.bars import BarLogic
from pairflow.records import Bar, Reject, Tick, Watermark
from pairflow.testing.oracle import compare_bars, resample_bars
from pairflow.testing.ticks import BASE_MS, tick


def run_bars(chunks: list[list[Tick]], **logic_kw) -> list[object]:
    """Ticks (as chunks) through the bar step in a real bytewax flow; returns its output."""
    flow = Dataflow("bars_test")
    inp = op.input("inp", flow, TestingSource([(c[0].symbol, c) for c in chunks if c]))
    logic_kw.setdefault("wall_clock", False)
    logic_kw.setdefault("grace_ms", 300)
    out = op.stateful_batch("bars", inp, lambda resume: BarLogic("test", state=resume, **logic_kw))
    got: list[object] = []
    op.output("out", op.map("values", out, lambda kv: kv[1]), TestingSink(got))
    run_main(flow)
    return got


def bars_of(out: list[object], tf: str = "1s") -> list[Bar]:
    return [b for b in out if isinstance(b, Bar) and b.tf == tf]


def test_bars_when_ticks_share_one_second_emit_one_bar_per_timeframe_at_eof():
    out = run_bars(
        [[tick(1, 100, 10.0, 1.0), tick(2, 200, 12.0, 2.0, maker=True), tick(3, 900, 11.0, 3.0)]]
    )
    for tf in ("1s", "1m", "5m"):
        (bar,) = bars_of(out, tf)
        assert (bar.open, bar.high, bar.low, bar.close) == (10.0, 12.0, 10.0, 11.0)
        assert bar.volume == 6.0 and bar.trades == 3
        assert bar.quote_volume == 10.0 + 24.0 + 33.0
        assert bar.taker_buy_volume == 4.0  # trade 2 was a taker sell
        assert (bar.first_trade_id, bar.last_trade_id) == (1, 3)
        assert bar.open_time_ms == BASE_MS


def test_bars_when_window_empty_emits_nothing_for_it_but_a_watermark():
    out = run_bars([[tick(1, 100), tick(2, 3_500)]])
    assert [b.open_time_ms - BASE_MS for b in bars_of(out)] == [0, 3_000]
    marks = [w for w in out if isinstance(w, Watermark) and w.tf == "1s"]
    assert Watermark("BTCUSDT", "1s", BASE_MS + 3_000) in marks


def test_bars_when_no_ticks_emit_nothing():
    assert run_bars([]) == []


def test_bars_close_on_a_later_tick_before_eof():
    flow_out = run_bars([[tick(1, 100)], [tick(2, 1_100)]])
    first = bars_of(flow_out)[0]
    assert first.open_time_ms == BASE_MS and first.trades == 1


def test_bars_late_tick_within_horizon_amends_the_closed_bar_order_independently():
    out = run_bars([[tick(2, 100, 10.0), tick(3, 1_200, 11.0)], [tick(1, 50, 9.0)]])
    first_versions = [b for b in bars_of(out) if b.open_time_ms == BASE_MS]
    assert len(first_versions) == 2  # emitted, then amended
    amended = first_versions[-1]
    assert amended.open == 9.0 and amended.first_trade_id == 1 and amended.trades == 2
    assert amended.close == 10.0 and amended.low == 9.0


def test_bars_tick_beyond_amend_horizon_is_rejected_as_late_not_dropped():
    out = run_bars(
        [[tick(1, 0), tick(2, 400_000)], [tick(3, 10)]],
        amend_horizon_ms=5_000,
    )
    rejects = [r for r in out if isinstance(r, Reject)]
    assert len(rejects) == 1 and rejects[0].reason == "late_tick"
    assert '"t":3' in rejects[0].raw


def test_bars_wall_clock_closes_quiet_interval_after_grace():
    clock = {"now": 1_000_000}
    logic = BarLogic("test", wall_clock=True, grace_ms=500, clock_ms=lambda: clock["now"])
    out, _ = logic.on_batch([[tick(1, 200)]])
    assert not bars_of(out)
    # event clock = T + elapsed wall time; the interval [0, 1000) ends at T+800
    due = logic.notify_at()
    assert due is not None
    clock["now"] += 800 + 500 - 1
    out, _ = logic.on_notify()
    assert not bars_of(out)
    clock["now"] += 1
    out, _ = logic.on_notify()
    assert [b.open_time_ms for b in bars_of(out)] == [BASE_MS]
    clock["now"] += 3_000
    out, _ = logic.on_notify()
    marks = [w for w in out if isinstance(w, Watermark) and w.tf == "1s"]
    assert marks and marks[-1].through_ms == BASE_MS + 4_000


def test_bars_wall_clock_off_never_asks_for_notification():
    logic = BarLogic("test", wall_clock=False, grace_ms=300)
    logic.on_batch([[tick(1, 200)]])
    assert logic.notify_at() is None


def test_bars_snapshot_resume_continues_identically():
    ticks = [tick(i, i * 170, 100.0 + i % 7) for i in range(1, 40)]
    whole = BarLogic("t", wall_clock=False, grace_ms=300)
    out_whole, _ = whole.on_batch([ticks])
    out_whole += whole.on_eof()[0]
    first = BarLogic("t", wall_clock=False, grace_ms=300)
    out_a, _ = first.on_batch([ticks[:20]])
    resumed = BarLogic("t", wall_clock=False, grace_ms=300, state=first.snapshot())
    out_b, _ = resumed.on_batch([ticks[20:]])
    out_b += resumed.on_eof()[0]
    assert bars_of(out_whole) == bars_of(out_a + out_b)


def _frame_of(ticks: list[Tick]) -> pd.DataFrame:
    return pd.DataFrame(
        [(t.symbol, t.trade_id, t.price, t.qty, t.trade_time_ms, t.buyer_is_maker) for t in ticks],
        columns=["s", "t", "p", "q", "T", "m"],
    )


def _bars_frame(bars: list[Bar]) -> pd.DataFrame:
    latest = {(b.symbol, b.tf, b.open_time_ms): b for b in bars}
    rows = [
        {
            "symbol": b.symbol, "tf": b.tf,
            "open_time": pd.Timestamp(b.open_time_ms, unit="ms", tz="UTC"),
            "open": b.open, "high": b.high, "low": b.low, "close": b.close,
            "volume": b.volume, "quote_volume": b.quote_volume, "vwap": b.vwap,
            "trades": b.trades, "taker_buy_volume": b.taker_buy_volume,
            "first_trade_id": b.first_trade_id, "last_trade_id": b.last_trade_id,
        }
        for b in latest.values()
    ]  # fmt: skip
    return pd.DataFrame(rows)


tick_steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=90_000),  # ms since previous tick
        st.integers(min_value=1, max_value=10_000),  # price in cents
        st.integers(min_value=1, max_value=10_000),  # qty in 1e-4
        st.booleans(),
    ),
    min_size=1,
    max_size=120,
)


def _ticks_from_steps(steps) -> list[Tick]:
    t_ms = 0
    out = []
    for i, (dt, price, qty, maker) in enumerate(steps):
        t_ms += dt
        out.append(tick(i + 1, t_ms, price / 100, qty / 10_000, maker=maker))
    return out


@settings(max_examples=60, deadline=None)
@given(tick_steps, st.integers(min_value=1, max_value=7))
def test_bars_equal_pandas_resample_for_any_ticks_and_batching(steps, chunk):
    ticks = _ticks_from_steps(steps)
    chunks = [ticks[i : i + chunk] for i in range(0, len(ticks), chunk)]
    out = run_bars(chunks)
    bars = [b for b in out if isinstance(b, Bar)]
    compare_bars(_bars_frame(bars), resample_bars(_frame_of(ticks)))


@settings(max_examples=60, deadline=None)
@given(tick_steps)
def test_bars_invariants_hold_and_volumes_add_up_across_timeframes(steps):
    ticks = _ticks_from_steps(steps)
    bars = [b for b in run_bars([ticks]) if isinstance(b, Bar)]
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.low <= b.vwap * (1 + 1e-12) and b.vwap <= b.high * (1 + 1e-12)
        assert 0 <= b.taker_buy_volume <= b.volume * (1 + 1e-12)
        assert b.first_trade_id <= b.last_trade_id
    by_tf = {tf: [b for b in bars if b.tf == tf] for tf in ("1s", "1m", "5m")}
    for small, big in (("1s", "1m"), ("1m", "5m")):
        for b in by_tf[big]:
            end = b.open_time_ms + (60_000 if big == "1m" else 300_000)
            parts = [s for s in by_tf[small] if b.open_time_ms <= s.open_time_ms < end]
            assert sum(p.trades for p in parts) == b.trades
            assert abs(sum(p.volume for p in parts) - b.volume) <= 1e-9 * b.volume
            assert parts[0].open == b.open and parts[-1].close == b.close
            assert max(p.high for p in parts) == b.high and min(p.low for p in parts) == b.low


def test_bars_resumed_after_downtime_do_not_close_on_the_downtime():
    clock = {"now": 1_000_000}
    logic = BarLogic("t", wall_clock=True, grace_ms=300, clock_ms=lambda: clock["now"])
    logic.on_batch([[tick(1, 200)]])
    snap = logic.snapshot()
    clock["now"] += 3_600_000  # an hour of downtime
    resumed = BarLogic(
        "t", wall_clock=True, grace_ms=300, state=snap, clock_ms=lambda: clock["now"]
    )
    out, _ = resumed.on_notify()
    assert not bars_of(out)
    out, _ = resumed.on_batch([[tick(2, 700)]])  # a backfilled trade of the same second
    assert not [r for r in out if isinstance(r, Reject)]
    clock["now"] += 2_000
    out, _ = resumed.on_notify()
    (bar,) = bars_of(out)
    assert bar.trades == 2


def _final_bars(out: list[object]) -> dict[tuple[str, int], Bar]:
    """Last version of every bar (the sink upserts: the last write wins)."""
    final: dict[tuple[str, int], Bar] = {}
    for b in out:
        if isinstance(b, Bar):
            final[(b.tf, b.open_time_ms)] = b
    return final


def test_bars_tick_just_beyond_horizon_is_rejected_in_all_timeframes_not_amended_in_5m():
    # 1s frontier at 301 s, 5m frontier at 300 s: a tick at 0.5 s is 301 s behind the
    # 1s frontier (beyond the 300 s horizon) but was within it for the 5m bar.
    out = run_bars([[tick(1, 1_000), tick(2, 301_500)], [tick(3, 500)]])
    rejects = [r for r in out if isinstance(r, Reject)]
    assert [r.reason for r in rejects] == ["late_tick"]
    final = _final_bars(out)
    assert final[("5m", BASE_MS)].trades == 1  # not amended
    assert final[("1m", BASE_MS)].trades == 1


@given(
    st.lists(st.integers(min_value=0, max_value=400_000), min_size=2, max_size=60),
    st.lists(st.integers(min_value=0, max_value=59), max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_bars_volumes_of_1s_1m_5m_add_up_under_late_ticks(times, late_positions):
    """Every tick is in all three timeframes or in none (rejected): volumes agree."""
    ordered = sorted(times)
    ticks = [tick(i + 1, t, qty=1.0 + i % 7) for i, t in enumerate(ordered)]
    late = sorted({p % len(ticks) for p in late_positions})
    on_time = [t for i, t in enumerate(ticks) if i not in late]
    arrival = [on_time, [ticks[i] for i in late]]  # late ones arrive after the rest
    out = run_bars([c for c in arrival if c])
    final = _final_bars(out)
    rejected = sum(float(orjson_loads(r.raw)["q"]) for r in out if isinstance(r, Reject))
    total = sum(t.qty for t in ticks)
    for tf in ("1s", "1m", "5m"):
        vol = sum(b.volume for (f, _), b in final.items() if f == tf)
        assert abs(vol + rejected - total) < 1e-9, tf


def orjson_loads(text: str) -> dict:
    import orjson

    return orjson.loads(text)


def test_bars_close_on_the_source_clock_not_the_wall_clock():
    """A paced source's SourceClock drives closing: a frozen wall clock closes nothing."""
    from pairflow.records import SourceClock

    frozen = {"now": 5_000_000}
    logic = BarLogic("t", wall_clock=True, grace_ms=300, clock_ms=lambda: frozen["now"])
    out, _ = logic.on_batch([[tick(1, 200)]])
    assert not bars_of(out)
    out, _ = logic.on_batch([SourceClock(BASE_MS + 1_299)])
    assert not bars_of(out)  # 1_299 - 300 grace < 1_000: interval not over yet
    out, _ = logic.on_batch([SourceClock(BASE_MS + 1_300)])
    assert [b.open_time_ms for b in bars_of(out)] == [BASE_MS]
    assert logic.notify_at() is None  # the source's clock drives, no wall timers
    # the wall clock running ahead (a 0.5x replay) closes nothing on its own
    frozen["now"] += 60_000
    out, _ = logic.on_notify()
    assert not bars_of(out, "1m")
