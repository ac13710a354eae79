"""The live Binance input under faults, against the fake exchange on 127.0.0.1.

Source level: ``op.input(BinanceSource) → TestingSink`` in a real Bytewax flow. Under
every fault the trade ids emitted per symbol must be exactly the recording's ids
from the first one received to the end (no loss, no duplicates, in order), every
trade's content must equal the recording's, and the number of trades backfilled
from REST must match what the fake never delivered over the WebSocket plus the
trades REST and the WebSocket both delivered (a catch-up after a reconnect asks REST
for everything since the last trade while the new connection may already carry some
of it: the WebSocket copy is dropped as a duplicate and counted).

End to end: ``python dataflow.py`` as a subprocess with ``PAIRFLOW_SOURCE=binance``
pointed at the fake; after SIGTERM the ``bars`` table must equal an independent
pandas resample of the trades from the first one received.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from pairflow.records import Gap
from sources.binance import BinanceTuning
from tests.fakes import LiveRun, binance_settings, run_live
from tests.fakes.fake_binance import MALFORMED, FakeBinance, Faults

ROOT = Path(__file__).resolve().parent.parent
FRAMES = ROOT / "tests" / "data" / "frames"
HEAD = FRAMES / "head-2000.ndjson.gz"
BURST = FRAMES / "burst-3734.ndjson.gz"
SYMS = ("BTCUSDT", "ETHUSDT")

FAST = BinanceTuning(
    silence_timeout_s=0.5,
    ping_timeout_s=0.5,
    max_silence_s=5.0,
    backoff_base_s=0.05,
    backoff_cap_s=0.4,
    stable_after_s=5.0,
    catchup_delay_s=0.4,
    rest_give_up_s=2.0,
    rest_weight_per_min=1e6,
    overlap_s=0.2,
    max_overlap_wait_s=1.0,
    connect_timeout_s=2.0,
    stop_grace_s=1.0,
)
"""Production logic with test-sized timeouts."""


def recorded(fake: FakeBinance) -> dict[str, dict[int, dict[str, Any]]]:
    """Recorded trade data by symbol and id."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for rec in fake.trades:
        assert rec.data is not None and rec.symbol is not None
        out.setdefault(rec.symbol, {})[rec.data["t"]] = rec.data
    return out


def assert_complete(run: LiveRun, fake: FakeBinance) -> tuple[int, int]:
    """No loss, no duplicates, right content; returns (backfilled, undelivered)."""
    rec = recorded(fake)
    undelivered = 0
    for sym in SYMS:
        ids = run.ids(sym)
        assert ids, f"{sym}: nothing emitted"
        first = ids[0]
        assert first == fake.first_delivered(sym), "a fresh start begins with the first WS trade"
        want = [i for i in fake.recorded_ids(sym) if i >= first]
        if ids != want:
            dupes = len(ids) - len(set(ids))
            missing = sorted(set(want) - set(ids))[:10]
            order = next((k for k in range(1, len(ids)) if ids[k] <= ids[k - 1]), None)
            pytest.fail(
                f"{sym}: {len(ids)} emitted vs {len(want)} expected; {dupes} duplicates, "
                f"missing e.g. {missing}, first out-of-order index {order}"
            )
        for data in run.trades[sym]:
            r = rec[sym][data["t"]]
            assert (data["p"], data["q"], data["T"], data["m"]) == (r["p"], r["q"], r["T"], r["m"])
        undelivered += len(fake.undelivered_after(sym, first))
    backfilled = int(run.final("trades_backfilled_total"))
    assert int(run.final("ticks_total")) == sum(len(run.ids(s)) for s in SYMS)
    return backfilled, undelivered


def assert_backfill_exact(
    run: LiveRun,
    fake: FakeBinance,
    backfilled: int,
    undelivered: int,
    components: tuple[str, ...] = ("binance",),
) -> None:
    """REST filled exactly what the WebSocket missed, plus what both delivered.

    Without rotations the only WebSocket duplicates are trades a catch-up fetched
    from REST while the new connection also delivered them. Exact when every
    reconnect was the server's (a close frame: the client read every frame the fake
    wrote); if the client's own watchdog closed a connection on a busy machine, frames
    the fake had written may never have been read and are backfilled too (lossless,
    checked by :func:`assert_complete`), so REST may fill more.
    """
    duplicates = sum(int(run.final("duplicates_dropped_total", c)) for c in components)
    reconnects = sum(int(run.final("reconnects_total", c)) for c in components)
    assert undelivered > 0
    if reconnects == fake.counters["drops"] + fake.counters["aged_out"]:
        assert backfilled == undelivered + duplicates, (backfilled, undelivered, duplicates)
    else:
        assert backfilled >= undelivered + duplicates, (backfilled, undelivered, duplicates)


def report(name: str, run: LiveRun, fake: FakeBinance, backfilled: int) -> None:
    """One line per scenario (visible with -s; collected for the hand-over report)."""
    expected = sum(len([i for i in fake.recorded_ids(s) if i >= run.ids(s)[0]]) for s in SYMS)
    received = sum(len(run.ids(s)) for s in SYMS)
    print(
        f"\n[{name}] trades expected={expected} received={received} backfilled={backfilled} "
        f"reconnects={int(run.final('reconnects_total'))} gaps={len(run.final_gaps())} "
        f"rest_requests={fake.counters['rest_requests']} elapsed={run.elapsed_s:.1f}s"
    )


def scenario(
    faults: Faults,
    *,
    frames: Path = HEAD,
    speed: float | None = 40.0,
    tuning: BinanceTuning = FAST,
) -> tuple[FakeBinance, LiveRun]:
    with FakeBinance(frames, speed=speed, faults=faults) as fake:
        run = run_live(fake, tuning=tuning, timeout_s=40)
    return fake, run


# ----- source level ----------------------------------------------------------------------


def test_no_fault_baseline() -> None:
    fake, run = scenario(Faults())
    backfilled, undelivered = assert_complete(run, fake)
    assert backfilled == undelivered == 0
    assert run.final("reconnects_total") == 0
    assert run.final_gaps() == []
    assert run.passed == []
    # no backfill: the only REST call is the start-up symbol check (exchangeInfo)
    assert fake.counters["rest_requests"] == fake.counters["rest_exchangeInfo"] <= 1
    report("baseline", run, fake, backfilled)


def test_drop_with_close_frame_is_backfilled_exactly() -> None:
    fake, run = scenario(Faults(drop_every=300, drop_code=1001))
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["drops"] >= 4
    assert run.final("reconnects_total") == fake.counters["drops"]
    assert_backfill_exact(run, fake, backfilled, undelivered)
    gaps = run.final_gaps()
    assert gaps and all(g.status == "filled" for g in gaps)
    assert sum(g.filled for g in gaps) == backfilled
    assert run.final("gaps_found_total") == run.final("gaps_filled_total") == len(gaps)
    report("drop-close", run, fake, backfilled)


def test_drop_without_close_frame_abort() -> None:
    fake, run = scenario(Faults(drop_every=300, drop_mode="abort"))
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["drops"] >= 4
    # frames written just before the abort may never reach the client: they are
    # backfilled too, so REST may fill a little more than the fake "undelivered"
    assert undelivered <= backfilled <= undelivered + 50 * fake.counters["drops"]
    assert all(g.status == "filled" for g in run.final_gaps())
    report("drop-abort", run, fake, backfilled)


def test_burst_gap_is_paged_from_rest() -> None:
    """A drop inside a burst of 735 trades in one ms; small pages force paging."""
    tuning = replace(FAST, rest_limit=100)
    # the burst is lines 1501-2235 of the fixture: drop the first connection in it
    faults = Faults(drop_every=1600, max_drops=1)
    fake, run = scenario(faults, frames=BURST, speed=20.0, tuning=tuning)
    backfilled, undelivered = assert_complete(run, fake)
    assert_backfill_exact(run, fake, backfilled, undelivered)
    assert undelivered > 300
    assert fake.counters["rest_requests"] >= backfilled // 100
    report("burst-paged", run, fake, backfilled)


def test_stall_without_pongs_is_detected_by_ping_timeout() -> None:
    faults = Faults(stall_after=300, stall_s=3.0, max_stalls=2)
    fake, run = scenario(faults, speed=10.0)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["stalls"] == 2
    assert run.final("reconnects_total") >= 2
    assert backfilled >= undelivered > 0
    assert fake.counters["client_pings"] >= 2
    report("stall-dead", run, fake, backfilled)


def test_stalled_stream_that_still_pongs_is_dropped_after_max_silence() -> None:
    faults = Faults(stall_after=300, stall_s=4.0, stall_answers_pings=True, max_stalls=1)
    tuning = replace(FAST, max_silence_s=1.2)
    fake, run = scenario(faults, speed=15.0, tuning=tuning)
    backfilled, undelivered = assert_complete(run, fake)
    assert run.final("reconnects_total") >= 1
    assert backfilled >= undelivered > 0
    report("stall-pongs", run, fake, backfilled)


def test_malformed_frames_pass_through_and_do_not_break_sequencing() -> None:
    fake, run = scenario(Faults(malformed_every=50))
    backfilled, _ = assert_complete(run, fake)
    assert backfilled == 0
    sent = fake.counters["malformed_sent"]
    assert sent >= 30
    assert len(run.passed) == sent
    assert set(run.passed) <= set(MALFORMED)
    assert run.final("frames_passed_through_total") == sent
    report("malformed", run, fake, backfilled)


def test_server_shutdown_rotates_without_a_gap() -> None:
    # the fake keeps the old connection this long after serverShutdown: long enough for
    # the replacement to be up even on a busy machine (a late one is backfilled, lossless,
    # but then this test of the overlap would not be testing it)
    faults = Faults(shutdown_after=500, shutdown_grace_s=3.0, max_shutdowns=2)
    fake, run = scenario(faults)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["shutdowns"] == 2
    assert run.final("rotations_total") == 2
    assert run.final("reconnects_total") == 0
    assert backfilled == undelivered == 0
    assert run.final_gaps() == []
    assert run.final("duplicates_dropped_total") > 0, "the overlap must have been deduped"
    report("server-shutdown", run, fake, backfilled)


def test_rotation_before_the_24h_cut_has_no_gap() -> None:
    """The fake cuts connections at 3 s (Binance: 24 h); we rotate at 0.8 s (23 h).

    The margin (2.2 s for handshake + first message + overlap) is wide enough for a
    loaded machine, so ``aged_out == 0`` means "rotated in time", not "was lucky".
    """
    tuning = replace(FAST, rotate_after_s=0.8)
    fake, run = scenario(Faults(max_conn_age_s=3.0), speed=10.0, tuning=tuning)
    backfilled, undelivered = assert_complete(run, fake)
    assert run.final("rotations_total") >= 2
    assert fake.counters["aged_out"] == 0
    assert backfilled == undelivered == 0
    assert run.final_gaps() == []
    report("rotation", run, fake, backfilled)


def test_24h_cut_without_rotation_is_backfilled() -> None:
    fake, run = scenario(Faults(max_conn_age_s=0.7), speed=15.0)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["aged_out"] >= 2
    assert_backfill_exact(run, fake, backfilled, undelivered)
    report("age-cut", run, fake, backfilled)


def test_server_pings_are_answered_and_message_rate_respected() -> None:
    """Pings every 0.5 s (2 pongs/s): pongs delayed by a busy machine and sent
    together still stay under 5 messages/s, so a violation is really ours."""
    faults = Faults(ping_interval_s=0.5, pong_timeout_s=3.0)
    fake, run = scenario(faults, speed=10.0)
    backfilled, _ = assert_complete(run, fake)
    assert fake.counters["server_pings"] >= 5
    assert fake.counters["pongs"] >= fake.counters["server_pings"] - 1
    assert fake.counters["pong_timeouts"] == 0
    assert fake.counters["rate_violations"] == 0
    assert fake.max_client_msgs_per_s <= 5
    assert run.final("reconnects_total") == 0
    report("pings", run, fake, backfilled)


def test_refused_handshakes_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sources.binance")
    fake, run = scenario(Faults(refuse_first=4, refuse_status=503))
    backfilled, _ = assert_complete(run, fake)
    assert fake.counters["refused"] == 4
    assert run.final("connect_attempts_total") == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("cannot connect (HTTP 503" in m for m in warnings) == 1, warnings
    assert any("after 4 failed attempts" in r.getMessage() for r in caplog.records)
    report("refused", run, fake, backfilled)


def test_rest_429_with_retry_after_is_honoured() -> None:
    faults = Faults(drop_every=300, rest_429_every=2, rest_retry_after_s=0.2)
    fake, run = scenario(faults)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["rest_429"] >= 2
    assert_backfill_exact(run, fake, backfilled, undelivered)
    assert all(g.status == "filled" for g in run.final_gaps())
    report("rest-429", run, fake, backfilled)


def test_max_speed_replay_with_drops() -> None:
    """speed=None: the fake's timeline moves as fast as the connected client reads."""
    fake, run = scenario(Faults(drop_every=400, drop_mode="abort"), speed=None)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["drops"] >= 4
    assert backfilled >= undelivered
    report("max-speed-abort", run, fake, backfilled)


def test_one_connection_per_shard() -> None:
    """streams_per_connection=1: two partitions, two connections, each gap-free."""
    with FakeBinance(HEAD, speed=40.0, faults=Faults(drop_every=250)) as fake:
        run = run_live(fake, tuning=FAST, streams_per_connection=1)
    backfilled = 0
    for sym in SYMS:
        ids = run.ids(sym)
        assert ids == [i for i in fake.recorded_ids(sym) if i >= ids[0]]
    components = {s.component for s in run.stats}
    assert components == {"binance-0", "binance-1"}
    backfilled = sum(int(run.final("trades_backfilled_total", c)) for c in components)
    undelivered = sum(len(fake.undelivered_after(s, run.ids(s)[0])) for s in SYMS)
    assert_backfill_exact(run, fake, backfilled, undelivered, tuple(sorted(components)))
    assert fake.counters["connections"] >= 2 + fake.counters["drops"]
    report_line = f"\n[two-shards] backfilled={backfilled} drops={fake.counters['drops']}"
    print(report_line)


def test_dead_rest_gives_unfilled_gaps_and_no_duplicates() -> None:
    faults = Faults(drop_every=300, max_drops=3, rest_fail=True)
    tuning = replace(FAST, rest_give_up_s=0.6)

    def until(fake: FakeBinance, items: list[Any]) -> bool:
        return fake.done.is_set()

    with FakeBinance(HEAD, speed=40.0, faults=faults) as fake:
        run = run_live(fake, tuning=tuning, until=until, settle_s=2.5, timeout_s=40)
    gaps = run.final_gaps()
    assert gaps and all(g.status == "unfilled" and g.filled == 0 for g in gaps)
    for sym in SYMS:
        ids = run.ids(sym)
        assert ids == sorted(set(ids)), "strictly increasing, no duplicates"
        assert set(ids) <= set(fake.delivered[sym])
        holes = {i for i in fake.recorded_ids(sym) if ids[0] <= i <= ids[-1]} - set(ids)
        covered = {
            i for g in gaps if g.symbol == sym for i in range(g.from_trade_id, g.to_trade_id + 1)
        }
        assert holes == covered, "every hole is reported as an unfilled gap, nothing else"
    assert run.final("trades_backfilled_total") == 0
    assert run.final("gaps_unfilled_total") == len(gaps)
    missing = sum(g.to_trade_id - g.from_trade_id + 1 for g in gaps)
    print(f"\n[rest-dead] unfilled gaps={len(gaps)} trades missing={missing}")


def test_stop_during_a_blocked_backfill_is_prompt_and_leaves_the_gap_open() -> None:
    faults = Faults(drop_every=300, max_drops=1, rest_429_every=1, rest_retry_after_s=30.0)

    def until(fake: FakeBinance, items: list[Any]) -> bool:
        return any(isinstance(x, Gap) for x in items) and fake.counters["rest_429"] >= 1

    with FakeBinance(HEAD, speed=40.0, faults=faults) as fake:
        started = time.monotonic()
        tuning = replace(FAST, rest_give_up_s=60.0)
        run = run_live(fake, tuning=tuning, until=until, settle_s=0.1, timeout_s=20)
        took = time.monotonic() - started
    final = run.final_gaps()
    assert final and all(g.status == "open" for g in final), final
    assert run.final("gaps_unfilled_total") == 0
    assert took < 8.0, "the 30 s Retry-After must not hold up the stop"
    for sym in SYMS:
        ids = run.ids(sym)
        assert ids == sorted(set(ids))


def test_resume_from_snapshot_backfills_what_was_missed() -> None:
    """A recovered partition (snapshot = last id per symbol) backfills from there."""
    import threading

    from sources.binance import BinanceSource

    with FakeBinance(HEAD, speed=40.0, start="now") as fake:
        while len(fake.happened_ids("BTCUSDT")) < 400:
            time.sleep(0.01)
        resume = {s: fake.happened_ids(s)[100] for s in SYMS}
        stop = threading.Event()
        settings = binance_settings(fake.ws_url, fake.rest_url, SYMS, tuning=FAST)
        source = BinanceSource(settings, stop_event=stop)
        assert source.list_parts() == ["binance-0"]
        # trades that happened before the partition exists can only come by backfill
        before = {s: len(fake.happened_ids(s)) for s in SYMS}
        part = source.build_part("in", "binance-0", resume)
        items: list[Any] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            items.extend(part.next_batch())
            snap = part.snapshot()
            if fake.done.is_set() and all(snap.get(s) == fake.recorded_ids(s)[-1] for s in SYMS):
                break
            time.sleep(0.01)
        stop.set()
        while True:
            try:
                items.extend(part.next_batch())
            except StopIteration:
                break
            time.sleep(0.01)
        part.close()
    from tests.fakes import split_items

    run = split_items(items, SYMS)
    for sym in SYMS:
        want = [i for i in fake.recorded_ids(sym) if i > resume[sym]]
        assert run.ids(sym) == want
    assert part.snapshot() == {s: fake.recorded_ids(s)[-1] for s in SYMS}
    missed = sum(before[s] - fake.happened_ids(s).index(resume[s]) - 1 for s in SYMS)
    assert missed >= 299
    assert run.final("trades_backfilled_total") >= missed
    assert any(isinstance(g, Gap) and g.status == "filled" for g in run.gaps)


def test_unreachable_exchange_logs_state_changes_not_a_flood(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real sockets (nothing listens), real time: a few lines, no crash, no busy loop."""
    import socket
    import threading

    from sources.binance import BinanceSource

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.DEBUG, logger="sources.binance")
    stop = threading.Event()
    tuning = replace(FAST, backoff_base_s=0.05, backoff_cap_s=0.2, remind_every_s=1.0)
    url = f"127.0.0.1:{port}"
    settings = binance_settings(f"ws://{url}", f"http://{url}", ["BTCUSDT"], tuning=tuning)
    source = BinanceSource(settings, stop_event=stop, check_symbols=False)
    part = source.build_part("in", "binance-0", None)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        assert part.next_batch() == [] or True
        time.sleep(0.02)
    stop.set()
    while True:
        try:
            part.next_batch()
        except StopIteration:
            break
        time.sleep(0.01)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    attempts = [r for r in caplog.records if "attempt" in r.getMessage()]
    assert sum(m.startswith("binance: cannot connect") for m in warnings) == 1
    assert 1 <= sum(m.startswith("binance: still cannot connect") for m in warnings) <= 3
    assert len(warnings) <= 4
    assert 5 <= len(attempts) <= 60, "retries continue, paced by the backoff"
    assert any("ConnectionRefusedError" in m for m in warnings)


# ----- end to end: python dataflow.py against the fake ------------------------------------


E2E_FAULTS = {
    "baseline": Faults(ping_interval_s=1.0),
    "drop": Faults(drop_every=700),
    "malformed": Faults(malformed_every=100),
    "shutdown": Faults(shutdown_after=800, shutdown_grace_s=1.0, max_shutdowns=2),
    "refused": Faults(refuse_first=3),
    "rest429": Faults(drop_every=700, rest_429_every=2, rest_retry_after_s=0.5),
    "abort": Faults(drop_every=700, drop_mode="abort"),
    "stall": Faults(stall_after=900, stall_s=4.0, max_stalls=1),
    "age": Faults(max_conn_age_s=1.5),
}
E2E_FAST = {"baseline", "drop"}


def dataflow_env(fake: FakeBinance, tmp: Path) -> dict[str, str]:
    """Environment of a ``python dataflow.py`` pointed at ``fake`` (Redis off)."""
    (tmp / "none.toml").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env.update(
        {
            "PAIRFLOW_SOURCE": "binance",
            "PAIRFLOW_BINANCE_WS": fake.ws_url,
            "PAIRFLOW_BINANCE_REST": fake.rest_url,
            "PAIRFLOW_REDIS_URL": "",
            "PAIRFLOW_DB": str(tmp / "live.db"),
            "PAIRFLOW_CONFIG": str(tmp / "none.toml"),
            "PAIRFLOW_STATS_EVERY_S": "1",
            # what the source emitted, flushed every 0.2 s: the tests' readiness signal
            "PAIRFLOW_RECORD": str(emitted_path(tmp)),
            "PAIRFLOW_BINANCE_TUNING": (
                "silence_timeout_s=1,ping_timeout_s=1,max_silence_s=5,backoff_base_s=0.1,"
                "backoff_cap_s=0.5,catchup_delay_s=0.5,rest_give_up_s=5,overlap_s=0.3,"
                "rest_weight_per_min=100000,record_flush_s=0.2"
            ),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_dataflow(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("a") as fh:
        return subprocess.Popen(
            [sys.executable, "dataflow.py", *args],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def emitted_path(tmp: Path) -> Path:
    """The flow's ``PAIRFLOW_RECORD`` file (plain NDJSON, so it can be read while written)."""
    return tmp / "emitted.ndjson"


def emitted_last_ids(path: Path) -> dict[str, int]:
    """Last trade id per symbol the flow's source emitted so far (from its recording)."""
    last: dict[str, int] = {}
    if not path.exists():
        return last
    for line in path.read_bytes().splitlines():
        try:
            data = orjson.loads(line)["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # a line still being written
        last[data["s"]] = max(last.get(data["s"], 0), data["t"])
    return last


def wait_caught_up(
    fake: FakeBinance, proc: subprocess.Popen[bytes], emitted: Path, timeout_s: float = 90
) -> None:
    """Wait until the fake broadcast everything and the flow emitted every last trade."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if fake.done.is_set():
            want = {s: fake.happened_ids(s)[-1] for s in SYMS if fake.happened_ids(s)}
            got = emitted_last_ids(emitted)
            if want and all(got.get(s, 0) >= v for s, v in want.items()):
                return
        time.sleep(0.1)


def wait_done_then_sigterm(fake: FakeBinance, proc: subprocess.Popen[bytes], emitted: Path) -> int:
    """Wait until the flow caught up with the fake (by its recording), SIGTERM, return rc."""
    try:
        wait_caught_up(fake, proc, emitted)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()


def wait_for_snapshot(rec: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Wait until the recovery store holds a *committed* snapshot of the input step.

    Bytewax resumes from snapshots older than the last committed epoch; before one
    exists, a killed flow restarts fresh (and there is nothing to resume).
    """
    import sqlite3

    query = (
        "SELECT count(*) FROM snaps s, commits c WHERE s.step_id LIKE '%input%' "
        "AND s.ser_change IS NOT NULL AND s.snap_epoch <= c.commit_epoch"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for part in rec.glob("part-*.sqlite3"):
            try:
                con = sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=1)
                try:
                    if con.execute(query).fetchone()[0]:
                        return
                finally:
                    con.close()
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    pytest.fail("no committed snapshot of the input in the recovery store")


def run_dataflow(fake: FakeBinance, tmp: Path) -> tuple[int, str, Path]:
    """Run ``python dataflow.py`` against ``fake``, SIGTERM it once caught up."""
    log = tmp / "dataflow.log"
    proc = start_dataflow(dataflow_env(fake, tmp), log)
    rc = wait_done_then_sigterm(fake, proc, emitted_path(tmp))
    return rc, log.read_text(encoding="utf-8"), tmp / "live.db"


def oracle_bars(fake: FakeBinance, firsts: dict[str, int | None]) -> Any:
    """pandas resample of the trades the fake broadcast, from the first one received."""
    from pairflow.testing.oracle import resample_bars, trades_from_lines

    rows = []
    for sym in SYMS:
        for raw, tid in zip(fake.happened_frames(sym), fake.happened_ids(sym), strict=True):
            if tid >= (firsts[sym] or 0):
                rows.append(raw)
    return resample_bars(trades_from_lines(rows)), len(rows)


def db_bars(db: Path) -> Any:
    import pandas as pd

    from pairflow.testing.oracle import read_table

    got = read_table(db, "bars", "symbol, tf, open_time")
    got["open_time"] = pd.to_datetime(got["open_time"], utc=True)
    return got


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in E2E_FAST else pytest.mark.slow) for n in E2E_FAULTS],
)
def test_end_to_end_bars_match_pandas_resample(name: str, tmp_path: Path) -> None:
    from pairflow.testing.oracle import compare_bars, read_table

    faults = E2E_FAULTS[name]
    with FakeBinance(HEAD, speed=20.0, faults=faults, time_mode="live") as fake:
        rc, log, db = run_dataflow(fake, tmp_path)
        assert rc == 0, log[-4000:]
    want, n_trades = oracle_bars(fake, {s: fake.first_delivered(s) for s in SYMS})
    got = db_bars(db)
    try:
        counts = compare_bars(got, want)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- dataflow log ---\n{log[-6000:]}") from None
    stats = read_table(db, "pipeline_stats", "ts")
    src = stats[stats["component"] == "binance"]
    last = src.sort_values("ts").groupby("metric")["value"].last().to_dict()
    assert last.get("ticks_total") == n_trades
    gaps = read_table(db, "gaps", "symbol, from_trade_id")
    assert (gaps["status"] == "filled").all(), gaps
    if name in ("baseline", "malformed", "shutdown", "refused"):
        assert gaps.empty, gaps
    rejects = read_table(db, "rejects", "received_at")
    if name == "malformed":
        assert len(rejects) == fake.counters["malformed_sent"]
    else:
        assert len(rejects) == 0, rejects.head()
    print(
        f"\n[e2e {name}] bars={counts} trades={n_trades} "
        f"backfilled={last.get('trades_backfilled_total')} "
        f"reconnects={last.get('reconnects_total')} "
        f"lag_p50={last.get('lag_p50_ms')} lag_p99={last.get('lag_p99_ms')}"
    )


@pytest.mark.slow
def test_end_to_end_sigkill_and_resume_backfills_the_downtime(tmp_path: Path) -> None:
    """``dataflow.py -r DIR`` killed mid-stream and restarted: the snapshot's last trade
    ids make the source backfill what happened while it was down; bars stay exact."""
    from pairflow.testing.oracle import compare_bars, read_table

    rec = tmp_path / "recovery"
    log = tmp_path / "dataflow.log"
    with FakeBinance(HEAD, speed=8.0, time_mode="live") as fake:
        env = dataflow_env(fake, tmp_path)
        first = start_dataflow(env, log, "-r", str(rec))
        deadline = time.monotonic() + 60
        while fake.sent_total() < 800 and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_for_snapshot(rec, first)  # else the restart would start fresh
        firsts = {s: fake.first_delivered(s) for s in SYMS}
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = fake.sent_total()
        second = start_dataflow(env, log, "-r", str(rec))
        rc = wait_done_then_sigterm(fake, second, emitted_path(tmp_path))
        text = log.read_text(encoding="utf-8")
        assert rc == 0, text[-4000:]
    assert "resuming after trade ids" in text, text[-3000:]
    want, n_trades = oracle_bars(fake, firsts)
    got = db_bars(tmp_path / "live.db")
    try:
        counts = compare_bars(got, want)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- dataflow log ---\n{text[-6000:]}") from None
    gaps = read_table(tmp_path / "live.db", "gaps", "symbol, from_trade_id")
    assert len(gaps) >= 1 and (gaps["status"] == "filled").all(), gaps
    print(
        f"\n[e2e sigkill-resume] killed after {killed_at} trades; bars={counts} "
        f"trades={n_trades} backfilled after restart={int(gaps['filled'].sum())}"
    )
