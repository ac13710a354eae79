"""Unit tests of the live Binance input: policies, sequencing, the reconnect loop.

Reconnect/backoff behaviour is checked with an injected clock, sleep and rng, not
with real waiting: the pure state machine directly, and the real runner with a
patched ``connect`` that refuses (or serves a scripted connection) while the fake
sleep advances the fake clock.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

import sources.binance.connection as connection_mod
from pairflow.backoff import Backoff, ReconnectTracker, SlidingWindowLimiter, TokenBucket
from pairflow.config import ConfigError, Settings
from pairflow.records import Gap, Tick
from sources.binance import BinanceSource, BinanceTuning, stream_url
from sources.binance.rest import RestClient, RestGate, RestUnavailable
from sources.binance.sequencer import TradeSequencer, backfill_frame, classify_frame
from sources.registry import BinanceConfig
from tests.fakes import binance_settings, run_live, split_items
from tests.fakes.fake_binance import MALFORMED, FakeBinance, Faults

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "tests" / "data" / "frames" / "head-2000.ndjson.gz"
SYMS = ("BTCUSDT", "ETHUSDT")


def head_lines() -> list[str]:
    with gzip.open(HEAD, "rt", encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


# ----- backoff, budgets --------------------------------------------------------------------


def test_backoff_full_jitter_is_bounded_capped_and_seeded() -> None:
    b = Backoff(base_s=0.5, cap_s=30.0, floor_s=0.05, rng=random.Random(1))
    assert [b.ceiling(a) for a in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    for attempt in range(50):
        for _ in range(20):
            d = b.delay(attempt)
            assert 0.05 <= d <= b.ceiling(attempt)
    again = Backoff(rng=random.Random(42))
    same = Backoff(rng=random.Random(42))
    assert [again.delay(a) for a in range(10)] == [same.delay(a) for a in range(10)]
    # full jitter: the draws spread over the whole range, not around the ceiling
    draws = [Backoff(rng=random.Random(i)).delay(10) for i in range(400)]
    assert min(draws) < 3.0 and max(draws) > 27.0


def test_sliding_window_limits_connection_attempts() -> None:
    lim = SlidingWindowLimiter(300, 300.0)
    now = 1000.0
    for i in range(300):
        assert lim.reserve(now + i * 0.1) == 0.0
    wait = lim.reserve(now + 30.0)
    assert wait == pytest.approx(300.0 - 30.0)
    assert lim.count(now + 30.0) == 300
    assert lim.reserve(now + 300.0) == 0.0  # the first one left the window


def test_token_bucket_paces_weight() -> None:
    bucket = TokenBucket(capacity=100, rate_per_s=10, now=0.0)
    assert bucket.take(0.0, 100) == 0.0
    assert bucket.take(0.0, 25) == pytest.approx(2.5)
    assert bucket.take(2.5, 25) == 0.0


# ----- the reconnect state machine ------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_tracker_logs_state_changes_not_every_failure() -> None:
    clock = FakeClock()
    tr = ReconnectTracker("binance", Backoff(rng=random.Random(3)), remind_every_s=60.0)
    levels: list[int] = []
    delays: list[float] = []
    err = "ConnectionRefusedError: [Errno 111]"
    for _ in range(40):
        d = tr.on_connect_failed(clock(), err)
        levels.append(d.level)
        delays.append(d.delay_s)
        clock.now += d.delay_s
    warnings = [i for i, lv in enumerate(levels) if lv == logging.WARNING]
    assert warnings[0] == 0, "the first failure of a streak is a warning"
    # later warnings are reminders, at least remind_every_s apart in (fake) time
    times = [1000.0 + sum(delays[:i]) for i in warnings]
    assert all(b - a >= 60.0 for a, b in zip(times, times[1:], strict=False))
    assert len(warnings) < 40 // 2
    assert all(d <= tr.backoff.ceiling(i) for i, d in enumerate(delays))
    assert max(delays) <= 30.0
    # a different error is a state change: logged at once
    d = tr.on_connect_failed(clock(), "TimeoutError")
    assert d.level == logging.WARNING and "TimeoutError" in (d.message or "")
    # connected: one INFO line saying how long it was down
    d = tr.on_connected(clock(), "ws://x/stream")
    assert d.level == logging.INFO
    assert "after 41 failed attempts" in (d.message or "")


def test_tracker_backoff_resets_after_a_stable_connection() -> None:
    clock = FakeClock()
    tr = ReconnectTracker(
        "b", Backoff(base_s=0.5, cap_s=30, rng=random.Random(5)), stable_after_s=60
    )
    tr.on_connected(clock(), "u")
    # flapping: connections that die quickly escalate the delay ceiling
    ceilings = []
    for _ in range(6):
        clock.now += 1.0
        tr.on_disconnected(clock(), "drop")
        ceilings.append(tr.backoff.ceiling(tr.failures - 1))
        tr.on_connected(clock(), "u")
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    # a connection that stayed up long enough reconnects quickly again
    clock.now += 61.0
    d = tr.on_disconnected(clock(), "drop")
    assert d.delay_s <= 0.5 and d.level == logging.WARNING
    assert "connection lost after 61.0 s (drop)" in (d.message or "")


def test_tracker_honours_retry_after() -> None:
    tr = ReconnectTracker("b", Backoff(rng=random.Random(0)))
    d = tr.on_connect_failed(0.0, "HTTP 429 on the WebSocket handshake", retry_after_s=120.0)
    assert d.delay_s >= 120.0


# ----- the real runner loop with a fake clock, fake sleep and a patched connect ------------


class ScriptedWS:
    """Stands in for a websockets connection: yields frames, then the server closes."""

    def __init__(self, frames: list[str], close_code: int = 1001) -> None:
        self.frames = list(frames)
        self.close_code = close_code
        self.transport = None
        self.closed = asyncio.Event()

    async def recv(self) -> str:
        if self.frames:
            await asyncio.sleep(0)
            return self.frames.pop(0)
        raise ConnectionClosedError(Close(self.close_code, "scripted close"), None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.set()

    async def ping(self) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        fut.set_result(0.0)
        return fut


def run_runner(
    monkeypatch: pytest.MonkeyPatch,
    script: list[Any],
    *,
    until_fake_s: float,
    tuning: BinanceTuning,
) -> tuple[list[float], list[Any], FakeClock]:
    """Drive one shard runner; ``script`` says what each connect attempt does."""
    clock = FakeClock()
    attempts: list[float] = []
    stop = threading.Event()

    async def fake_connect(url: str, **kwargs: Any) -> Any:
        attempts.append(clock())
        step = script[len(attempts) - 1] if len(attempts) <= len(script) else script[-1]
        if isinstance(step, BaseException):
            raise step
        return step()

    async def fake_sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock() - 1000.0 >= until_fake_s:
            stop.set()
            await asyncio.sleep(0.2)  # let the stop watcher see it

    monkeypatch.setattr(connection_mod, "connect", fake_connect)
    settings = binance_settings(
        f"ws://fake-{id(clock)}", "http://127.0.0.1:9", ["BTCUSDT"], tuning=tuning
    )
    source = BinanceSource(
        settings, clock=clock, sleep=fake_sleep, rng=random.Random(11), stop_event=stop,
        check_symbols=False,
    )  # fmt: skip
    part = source.build_part("in", "binance-0", None)
    items: list[Any] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            items.extend(part.next_batch())
        except StopIteration:
            break
        time.sleep(0.005)
    else:
        pytest.fail("runner did not stop")
    return attempts, items, clock


def test_unreachable_runner_retries_with_backoff_never_busy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sources.binance")
    refused = ConnectionRefusedError(111, "Connect call failed")
    attempts, _, _ = run_runner(monkeypatch, [refused], until_fake_s=1800.0, tuning=BinanceTuning())
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert min(gaps) >= 0.05 - 1e-9, "every retry waits (floor), never a busy loop"
    assert 60 <= len(attempts) <= 400, "30 fake minutes of retries with a 30 s cap"
    assert sum(gaps[10:]) / len(gaps[10:]) > 5.0, "the capped, jittered delay averages ~15 s"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(m.startswith("binance: cannot connect") for m in warnings) == 1
    reminders = sum(m.startswith("binance: still cannot connect") for m in warnings)
    assert 20 <= reminders <= 31, "one reminder a minute over 30 minutes"
    assert len(warnings) == 1 + reminders


def test_runner_respects_the_connection_attempt_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ConnectionRefusedError(111, "refused")
    tuning = BinanceTuning(
        backoff_base_s=0.001, backoff_cap_s=0.002, max_conn_attempts=300, conn_attempt_window_s=300
    )
    attempts, _, _ = run_runner(monkeypatch, [refused], until_fake_s=900.0, tuning=tuning)
    assert len(attempts) >= 600
    j = 0
    for i, t in enumerate(attempts):  # at most 300 attempts in any 300 s window
        while attempts[j] <= t - 300.0:
            j += 1
        assert i - j + 1 <= 300


def test_runner_connects_after_failures_then_reconnects_after_a_close(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sources.binance")
    lines = [ln for ln in head_lines() if '"s":"BTCUSDT"' in ln][:6]
    refused = ConnectionRefusedError(111, "refused")
    script: list[Any] = [
        refused,
        refused,
        lambda: ScriptedWS(lines[:3]),
        lambda: ScriptedWS(lines[3:]),
        refused,
    ]
    tuning = BinanceTuning(catchup_delay_s=60.0)
    attempts, items, _ = run_runner(monkeypatch, script, until_fake_s=40.0, tuning=tuning)
    run = split_items(items, ["BTCUSDT"])
    assert run.ids("BTCUSDT") == [orjson.loads(x)["data"]["t"] for x in lines]
    messages = [r.getMessage() for r in caplog.records]
    assert any("connected to ws://" in m and "after 2 failed attempts" in m for m in messages)
    assert any("connection lost after" in m and "code 1001" in m for m in messages)
    assert any(m.startswith("binance: connected again") for m in messages)
    assert len(attempts) >= 5


# ----- sequencing ---------------------------------------------------------------------------


def tk(tid: int, qty: str = "1.0") -> Tick:
    return Tick("BTCUSDT", tid, 1.0, float(qty), 5, 5, True, "1.0", qty)


def collect() -> tuple[list[tuple[object, str | None, int | None]], TradeSequencer]:
    out: list[tuple[object, str | None, int | None]] = []
    seq = TradeSequencer(["BTCUSDT"], lambda item, s, t: out.append((item, s, t)))
    return out, seq


def test_sequencer_orders_dedupes_and_holds_across_a_gap() -> None:
    out, seq = collect()
    assert not seq.on_trade(tk(10))
    assert not seq.on_trade(tk(11))
    assert not seq.on_trade(tk(11))
    assert seq.on_trade(tk(15)), "a jump past last+1 asks for a backfill"
    assert not seq.on_trade(tk(16))  # held
    assert not seq.on_trade(tk(14))  # held (overlapping connection)
    assert [t for _, _, t in out] == [10, 11]
    seq.drain("BTCUSDT")
    assert seq.next_gap("BTCUSDT") == (12, 13)
    for tid in (12, 13):
        assert seq.emit_backfilled(tk(tid, "2.0")) == 1
    seq.drain("BTCUSDT")
    assert seq.next_gap("BTCUSDT") is None
    seq.release("BTCUSDT")
    assert not seq.on_trade(tk(17))
    assert [t for _, _, t in out] == [10, 11, 12, 13, 14, 15, 16, 17]
    assert seq.counters.duplicates_dropped_total == 1
    assert seq.counters.trades_backfilled_total == 2
    assert seq.last_ids() == {"BTCUSDT": 17}


def test_sequencer_resume_and_unfillable_gap() -> None:
    out, seq = collect()
    seq.resume({"BTCUSDT": 100, "XRPUSDT": 5})
    assert seq.on_trade(tk(105))
    seq.drain("BTCUSDT")
    assert seq.next_gap("BTCUSDT") == (101, 104)
    seq.skip_to("BTCUSDT", 104)
    seq.release("BTCUSDT")
    assert [t for _, _, t in out] == [105]
    assert not seq.claim("BTCUSDT") or seq.states["BTCUSDT"].busy


def test_classify_frames() -> None:
    syms = frozenset(SYMS)
    line = head_lines()[0]
    info = classify_frame(line, syms)
    assert (info.kind, info.symbol, info.trade_id) == ("trade", "BTCUSDT", 3735683259)
    assert classify_frame(line.encode(), syms).kind == "trade"
    for bad in MALFORMED:
        assert classify_frame(bad, syms).kind == "other", bad
    for shutdown in (
        '{"event":{"e":"serverShutdown","E":1}}',
        '{"e":"serverShutdown","E":1}',
        '{"stream":"x","data":{"e":"serverShutdown","E":1}}',
    ):
        assert classify_frame(shutdown, syms).kind == "shutdown"
    assert classify_frame('{"result":null,"id":1}', syms).kind == "other"


def test_backfill_frame_is_the_live_envelope() -> None:
    """A REST row rebuilt as a frame is byte-identical to the live frame (when E == T)."""
    lines = head_lines()
    same = [ln for ln in lines if orjson.loads(ln)["data"]["E"] == orjson.loads(ln)["data"]["T"]]
    assert same
    for line in same[:50]:
        d = orjson.loads(line)["data"]
        row = {
            "id": d["t"], "price": d["p"], "qty": d["q"], "quoteQty": "0", "time": d["T"],
            "isBuyerMaker": d["m"], "isBestMatch": d["M"],
        }  # fmt: skip
        assert backfill_frame(d["s"], row) == line


# ----- configuration, sharding, partition behaviour ------------------------------------------


def test_tuning_overrides_parse_and_validate() -> None:
    t = BinanceTuning.parse("silence_timeout_s=60, max_conn_attempts=100")
    assert t.silence_timeout_s == 60.0 and t.max_conn_attempts == 100
    assert isinstance(t.max_conn_attempts, int)
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        BinanceTuning.parse("nope=1")
    with pytest.raises(ConfigError, match="positive"):
        BinanceTuning.parse("ping_timeout_s=-1")


def test_shards_and_urls() -> None:
    syms = [f"S{i:04d}USDT" for i in range(2500)]
    src = BinanceSource(binance_settings("ws://h", "http://h", syms))
    assert src.list_parts() == ["binance-0", "binance-1", "binance-2"]
    assert [len(s) for s in src.shards] == [1024, 1024, 452]
    small = BinanceSource(
        Settings(
            source=BinanceConfig(streams_per_connection=2),
            symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"),
        )
    )
    assert small.shards == [("BTCUSDT", "ETHUSDT"), ("BNBUSDT",)]
    assert small.ws_url == "wss://stream.binance.com:9443"
    assert small.rest_url == "https://api.binance.com"
    url = stream_url("wss://data-stream.binance.vision/", ["BTCUSDT", "ethusdt"])
    assert url == "wss://data-stream.binance.vision/stream?streams=btcusdt@trade/ethusdt@trade"
    big = BinanceSource(
        binance_settings("ws://h", "http://h", syms[:10], streams_per_connection=5000)
    )
    assert big.streams_per_connection == 1024


def test_next_batch_never_blocks_and_idle_source_sleeps() -> None:
    with FakeBinance(HEAD, speed=1.0, start="manual") as fake:
        stop = threading.Event()
        settings = binance_settings(fake.ws_url, fake.rest_url, SYMS, stats_every_s=5.0)
        src = BinanceSource(settings, stop_event=stop)
        part = src.build_part("in", "binance-0", None)
        worst = 0.0
        for _ in range(50):
            t0 = time.perf_counter()
            assert part.next_batch() == []
            worst = max(worst, time.perf_counter() - t0)
            awake = part.next_awake()
            assert awake is not None, "idle: ask bytewax to come back later, no busy loop"
            time.sleep(0.01)
        assert worst < 0.005
        stop.set()
        with pytest.raises(StopIteration):
            for _ in range(500):
                part.next_batch()
                time.sleep(0.01)
        part.close()


def test_stats_records_and_lag(capsys: pytest.CaptureFixture[str]) -> None:
    tuning = replace(BinanceTuning(), catchup_delay_s=0.3, backoff_base_s=0.05)
    with FakeBinance(HEAD, speed=20.0, time_mode="live", faults=Faults(drop_every=600)) as fake:
        run = run_live(fake, tuning=tuning, stats_every_s=0.5)
        log = list(fake.conn_log)
    names = {s.metric for s in run.stats}
    required = {
        "ticks_per_s", "ticks_total", "reconnects_total", "gaps_found_total",
        "gaps_filled_total", "trades_backfilled_total", "lag_p50_ms", "lag_p99_ms", "connected",
    }  # fmt: skip
    assert required <= names
    assert {s.component for s in run.stats} == {"binance"}
    p50 = [s.value for s in run.stats if s.metric == "lag_p50_ms"]
    p99 = [s.value for s in run.stats if s.metric == "lag_p99_ms"]
    assert all(0 <= a <= b for a, b in zip(p50, p99, strict=True))
    # loopback lag is milliseconds (printed below); the bound only catches a unit or
    # clock bug (seconds, or epoch offsets), not a slow machine
    assert max(p99) < 5_000
    assert max(s.value for s in run.stats if s.metric == "ticks_per_s") > 100
    assert 1.0 in {s.value for s in run.stats if s.metric == "connected"}
    log.sort(key=lambda c: c["opened"])
    latency = [
        b["opened"] - a["closed"]
        for a, b in zip(log, log[1:], strict=False)
        if a["reason"] != "client closed"
    ]
    assert latency and max(latency) < 5.0  # backoff starts at 0.05 s: not a 30 s cap
    with capsys.disabled():
        print(
            f"\n[lag at 20x] p50 median={sorted(p50)[len(p50) // 2]:.1f} ms max={max(p50):.1f} ms; "
            f"p99 median={sorted(p99)[len(p99) // 2]:.1f} ms max={max(p99):.1f} ms; "
            f"reconnect latency after a drop: {', '.join(f'{x * 1000:.0f}' for x in latency)} ms"
        )


def test_gap_records_describe_filled_gaps() -> None:
    tuning = replace(BinanceTuning(), catchup_delay_s=0.3, backoff_base_s=0.05)
    with FakeBinance(HEAD, speed=40.0, faults=Faults(drop_every=500, max_drops=1)) as fake:
        run = run_live(fake, tuning=tuning)
    opened = [g for g in run.gaps if g.status == "open"]
    final = run.final_gaps()
    assert len(opened) >= 1
    assert all(isinstance(g, Gap) and g.status == "filled" for g in final)
    for g in final:
        assert g.filled == g.to_trade_id - g.from_trade_id + 1


# ----- REST client --------------------------------------------------------------------------


async def _fetch(fake: FakeBinance, **kw: Any) -> tuple[list[Tick] | None, float, str]:
    import aiohttp

    gate = RestGate(TokenBucket(1e6, 1e6, time.monotonic()))
    async with aiohttp.ClientSession() as session:
        client = RestClient(fake.rest_url, session, gate, backoff=Backoff(0.05, 0.1), **kw)
        first = fake.happened_ids("BTCUSDT")[0]
        t0 = time.monotonic()
        try:
            rows = await client.historical_trades("BTCUSDT", first, 1000)
        except RestUnavailable as exc:
            return None, time.monotonic() - t0, str(exc)
        return rows, time.monotonic() - t0, ""


def _played(faults: Faults) -> FakeBinance:
    fake = FakeBinance(HEAD, speed=1000.0, start="now", faults=faults).start_in_thread()
    fake.done.wait(10)
    return fake


def test_rest_rows_have_binance_shape_and_paging() -> None:
    fake = _played(Faults())
    try:
        rows, _, err = asyncio.run(_fetch(fake))
        assert rows is not None, err
        assert len(rows) == 1000, "one page"
        raw = urllib.request.urlopen(
            f"{fake.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={rows[0].trade_id}&limit=1",
            timeout=5,
        ).read()
        assert set(orjson.loads(raw)[0]) == {
            "id",
            "price",
            "qty",
            "quoteQty",
            "time",
            "isBuyerMaker",
            "isBestMatch",
        }
        assert [r.trade_id for r in rows] == fake.recorded_ids("BTCUSDT")[:1000]
        body = urllib.request.urlopen(f"{fake.rest_url}/api/v3/ping", timeout=5).read()
        assert body == b"{}"
        t = orjson.loads(urllib.request.urlopen(f"{fake.rest_url}/api/v3/time", timeout=5).read())
        assert abs(t["serverTime"] - time.time() * 1000) < 5000
    finally:
        fake.stop_thread()


def test_rest_429_retry_after_is_waited_out() -> None:
    fake = _played(Faults(rest_429_every=1, rest_retry_after_s=0.4))
    try:
        # a give-up time of several Retry-After periods, so that even a loaded machine
        # sends at least two requests before giving up
        rows, took, err = asyncio.run(_fetch(fake, give_up_s=3.0))
        assert rows is None and "give-up" in err
        assert fake.counters["rest_429"] >= 2
        assert took >= 0.8, "each 429 paused for its Retry-After"
    finally:
        fake.stop_thread()


def test_rest_5xx_retries_until_give_up_and_4xx_fails_fast() -> None:
    fake = _played(Faults(rest_fail=True))
    try:
        rows, took, err = asyncio.run(_fetch(fake, give_up_s=0.5))
        assert rows is None and "HTTP 503" in err and took < 2.0
        assert fake.counters["rest_requests"] >= 2
    finally:
        fake.stop_thread()

    async def bad_symbol() -> str:
        import aiohttp

        fake2 = _played(Faults())
        try:
            gate = RestGate(TokenBucket(1e6, 1e6, time.monotonic()))
            async with aiohttp.ClientSession() as session:
                client = RestClient(fake2.rest_url, session, gate)
                with pytest.raises(RestUnavailable, match="HTTP 400") as info:
                    await client.historical_trades("NOPEUSDT", 1, 10)
                return str(info.value)
        finally:
            fake2.stop_thread()

    assert "-1121" in asyncio.run(bad_symbol())


# ----- the fake standalone ------------------------------------------------------------------


def test_fake_runs_standalone_and_prints_its_urls() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_binance", "--port", "0", "--speed", "10",
         "--file", str(HEAD), "--ping-interval", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while len(urls) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.match(r"(PAIRFLOW_BINANCE_\w+)=(\S+)", line)
            if m:
                urls[m.group(1)] = m.group(2)
        assert urls["PAIRFLOW_BINANCE_WS"].startswith("ws://127.0.0.1:")
        assert urls["PAIRFLOW_BINANCE_REST"].startswith("http://127.0.0.1:")

        async def one_frame() -> str:
            from websockets.asyncio.client import connect

            url = stream_url(urls["PAIRFLOW_BINANCE_WS"], SYMS)
            async with connect(url, proxy=None) as ws:
                return str(await asyncio.wait_for(ws.recv(), 10))

        frame = orjson.loads(asyncio.run(one_frame()))
        assert frame["stream"] in {"btcusdt@trade", "ethusdt@trade"}
        assert abs(frame["data"]["T"] - time.time() * 1000) < 10_000, "live time mode"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0
