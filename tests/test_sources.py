"""sources.replay and sources.synthetic: modes, pacing, looping, resume."""

from __future__ import annotations

import gzip

import numpy as np
import orjson

from pairflow.records import SourceClock, Tick
from pairflow.testing.oracle import read_table
from pairflow.timeutil import dt_to_ms, now_ms
from sources.replay import ReplayPartition, ReplayState, open_lines
from sources.synthetic import SyntheticParams, SyntheticPartition
from tests.flowutil import drain, run_flow, settings_for


def frames_and_clocks(batch: list) -> tuple[list[bytes], list[int]]:
    """A paced batch's frames, and its SourceClock values (at the end of the batch)."""
    clocks = [x.now_ms for x in batch if isinstance(x, SourceClock)]
    frames = [x for x in batch if not isinstance(x, SourceClock)]
    assert all(isinstance(x, SourceClock) for x in batch[len(frames) :])
    return frames, clocks


def test_replay_max_speed_emits_every_line_in_order_then_ends(recording):
    part = ReplayPartition(recording, None, False, 1000, None)
    got = drain(part)
    assert got == list(open_lines(recording))
    assert len(got) == 34_419


def test_replay_resume_from_snapshot_continues_exactly(recording):
    part = ReplayPartition(recording, None, False, 777, None)
    first = part.next_batch() + part.next_batch()
    snap = part.snapshot()
    assert snap == ReplayState(1554, 0, 0)
    resumed = ReplayPartition(recording, None, False, 777, snap)
    assert first + drain(resumed) == list(open_lines(recording))


def test_replay_loop_shifts_times_and_ids_so_both_keep_increasing(tmp_path, recording):
    small = tmp_path / "small.ndjson"
    lines = list(open_lines(recording))[:300]
    small.write_bytes(b"\n".join(lines) + b"\n")
    part = ReplayPartition(small, None, True, 100, None)
    frames = [orjson.loads(f)["data"] for _ in range(9) for f in part.next_batch()]
    assert len(frames) == 900  # three passes
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = [d["t"] for d in frames if d["s"] == sym]
        times = [d["T"] for d in frames if d["s"] == sym]
        assert all(b > a for a, b in zip(ids, ids[1:], strict=False)), sym
        assert all(b >= a for a, b in zip(times, times[1:], strict=False)), sym
    first = [orjson.loads(x)["data"] for x in lines]
    span = max(d["T"] for d in first) - min(d["T"] for d in first)
    assert frames[300]["T"] == first[0]["T"] + span + 1000
    assert part.snapshot().loop == 2


def test_replay_paced_emits_only_due_frames_and_sleeps_until_the_next(recording):
    part = ReplayPartition(recording, 10.0, False, 10_000, None)
    started = now_ms()
    batch, clocks = frames_and_clocks(part.next_batch())
    elapsed = now_ms() - started
    times = [orjson.loads(f)["data"]["T"] for f in batch]
    assert batch and max(times) - times[0] <= 10 * (elapsed + 5)
    awake = part.next_awake()
    assert awake is not None and dt_to_ms(awake) > started
    # the replay clock: at or after every emitted trade, before the next one
    (clock,) = clocks
    next_t = orjson.loads(part.pending[0])["data"]["T"]
    assert max(times) <= clock < next_t


def test_replay_loop_at_real_time_replays_the_first_pass_as_history_ending_now(recording):
    part = ReplayPartition(recording, 1.0, True, 100_000, None)
    started = now_ms()
    first_pass, _ = frames_and_clocks(part.next_batch())  # all due at once: in the past
    assert len(first_pass) == 34_419
    last_t = orjson.loads(first_pass[-1])["data"]["T"]
    assert abs(last_t - started) < 5_000
    second, _ = frames_and_clocks(part.next_batch())  # the next pass is paced
    assert len(second) < 100
    awake = part.next_awake()
    assert awake is not None and dt_to_ms(awake) > started


def test_replay_passes_malformed_lines_through(tmp_path):
    f = tmp_path / "bad.ndjson.gz"
    with gzip.open(f, "wb") as fh:
        fh.write(b'not json\n{"stream":"x@trade"}\n')
    assert drain(ReplayPartition(f, None, False, 10, None)) == [
        b"not json",
        b'{"stream":"x@trade"}',
    ]


def test_synthetic_is_deterministic_for_a_seed_and_resumable():
    a = SyntheticPartition(("Y", "X"), SyntheticParams(), 3, 60, 500, None)
    b = SyntheticPartition(("Y", "X"), SyntheticParams(), 3, 60, 500, None)
    first = a.next_batch()
    assert first == b.next_batch()
    resumed = SyntheticPartition(("Y", "X"), SyntheticParams(), 3, 60, 500, a.snapshot())
    assert resumed.next_batch() == b.next_batch()
    tick = first[0]
    assert isinstance(tick, Tick) and tick.symbol in {"Y", "X"} and tick.price > 0
    assert float(tick.p) == tick.price and float(tick.q) == tick.qty


def test_synthetic_pair_through_the_flow_has_its_known_hedge_ratio(tmp_path):
    db = tmp_path / "syn.db"
    run_flow(
        settings_for(
            db, source="synthetic", synthetic_duration_s="900", synthetic_rate="5",
            synthetic_beta="1.5", windows="", symbols="BTCUSDT,ETHUSDT",
        )
    )  # fmt: skip
    bars = read_table(db, "bars", "open_time")
    closes = (
        bars[bars.tf == "1s"].pivot(index="open_time", columns="symbol", values="close").ffill()
    )
    closes = closes.dropna()
    slope = np.polyfit(np.log(closes["ETHUSDT"]), np.log(closes["BTCUSDT"]), 1)[0]
    assert abs(slope - 1.5) < 0.15
    assert read_table(db, "rejects", "received_at").empty
    stats = read_table(db, "pipeline_stats", "ts")  # the DB says its data is simulated
    assert ((stats.component == "source") & (stats.metric == "synthetic")).any()


def test_replay_paced_loop_resumed_after_downtime_jumps_forward_to_now(recording):
    part = ReplayPartition(recording, 1.0, True, 100, None)
    first, _ = frames_and_clocks(part.next_batch())
    snap = part.snapshot()
    stale = ReplayState(snap.lines_done, snap.loop, snap.base_shift_ms - 3_600_000)
    resumed = ReplayPartition(recording, 1.0, True, 100, stale)
    batch, _ = frames_and_clocks(resumed.next_batch())
    t_first = orjson.loads(batch[0])["data"]["T"]
    assert abs(t_first - now_ms()) < 5_000
    assert t_first >= orjson.loads(first[-1])["data"]["T"]
