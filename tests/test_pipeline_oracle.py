"""The whole flow on the real recording, checked against independent computations.

Real parts: the shipped Binance recording, a real DuckDB file, the real Redis server.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import redis

from pairflow.testing.oracle import (
    compare_bars,
    read_table,
    redis_entries,
    resample_bars,
    trades_from_file,
)
from tests.flowutil import run_flow, settings_for

REDIS_URL = "redis://127.0.0.1:6379/0"


def _replay_settings(recording: Path, db: Path, prefix: str = "", **extra: str):
    env = {
        "SOURCE": f"replay:{recording}",
        "REPLAY_SPEED": "max",
        "WINDOWS": "",
    }
    if prefix:
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_PREFIX"] = prefix
    env.update(extra)
    return settings_for(db, **env)


def test_pipeline_bars_equal_pandas_resample_of_the_recording(recording, tmp_path, redis_prefix):
    db = tmp_path / "bars.db"
    run_flow(_replay_settings(recording, db, redis_prefix))

    got = read_table(db, "bars", "symbol, tf, open_time")
    want = resample_bars(trades_from_file(recording))
    counts = compare_bars(got, want)
    assert sum(counts.values()) == len(want)
    assert set(counts) == {"1s", "1m", "5m"}
    rejects = read_table(db, "rejects", "received_at")
    assert rejects.empty, rejects.head()


def test_pipeline_replayed_twice_leaves_identical_tables(recording, tmp_path, redis_prefix):
    db = tmp_path / "twice.db"
    settings = _replay_settings(recording, db, redis_prefix)
    run_flow(settings)
    first = read_table(db, "bars", "symbol, tf, open_time")
    run_flow(settings)
    second = read_table(db, "bars", "symbol, tf, open_time")
    pd.testing.assert_frame_equal(first, second)
    assert len(first) > 1000


def test_pipeline_redis_streams_hold_exactly_the_input_ticks(recording, tmp_path, redis_prefix):
    db = tmp_path / "redis.db"
    run_flow(_replay_settings(recording, db, redis_prefix))
    run_flow(_replay_settings(recording, db, redis_prefix))  # replay: Redis refuses dups

    with gzip.open(recording, "rt") as fh:
        want = redis_entries(fh)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for symbol, entries in want.items():
            got = client.xrange(f"{redis_prefix}ticks:{symbol}")
            assert got == entries, f"{symbol}: {len(got)} entries vs {len(entries)} ticks"
        stats = client.hgetall(f"{redis_prefix}pairflow:stats:tee")
    finally:
        client.close()
    total = sum(len(v) for v in want.values())
    assert int(stats["duplicates_total"]) == total  # the second replay was refused whole
    assert int(stats["written_total"]) == total


def test_pipeline_one_far_future_frame_is_rejected_and_bars_stay_exact(recording, tmp_path):
    lines = gzip.open(recording, "rt").read().splitlines()
    bogus = json.loads(lines[100])
    bogus["data"]["T"] = bogus["data"]["E"] = 3_786_912_000_000  # 2090
    path = tmp_path / "future.ndjson"
    mixed = [*lines[:100], json.dumps(bogus), *lines[101:]]
    path.write_text("\n".join(mixed) + "\n")
    db = tmp_path / "future.db"
    run_flow(_replay_settings(path, db, "", windows="1s=60"))
    rejects = read_table(db, "rejects", "received_at")
    assert list(rejects["reason"]) == ["trade_time_in_future"]
    want = resample_bars(trades_from_file(path).drop(index=100))
    compare_bars(read_table(db, "bars", "symbol, tf, open_time"), want)
    assert len(read_table(db, "analytics", "ts")) > 100
