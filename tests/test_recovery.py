"""Crash recovery: SIGKILL the flow at random points, restart with recovery, compare.

The flow runs as a user runs it (``python dataflow.py -r DIR``) on a real DuckDB file
and the real Redis; the reference is an uninterrupted run of the same input.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import redis

from pairflow.testing import REDIS_URL, ROOT
from sources.replay import write_repeated
from tests.flowutil import replay_env, result_tables, run_flow, settings_for

PASSES = 4
WINDOWS = "1s=60,1m=20"


def _teed(client: redis.Redis, prefix: str) -> int:
    return sum(client.xlen(f"{prefix}ticks:{s}") for s in ("BTCUSDT", "ETHUSDT"))


@pytest.fixture
def long_recording(tmp_path, recording) -> tuple[Path, int]:
    path = tmp_path / "long.ndjson"
    return path, write_repeated(recording, path, PASSES)


def test_recovery_after_sigkill_at_random_points_gives_identical_tables_and_streams(
    tmp_path, long_recording, redis_prefix
):
    path, n_ticks = long_recording
    ref_db = tmp_path / "ref.db"
    ref_prefix = f"{redis_prefix}ref:"
    run_flow(
        settings_for(
            ref_db, source=f"replay:{path}", replay_speed="max", windows=WINDOWS,
            redis_url=REDIS_URL, redis_prefix=ref_prefix,
        )
    )  # fmt: skip
    want = result_tables(ref_db)
    assert len(want["analytics"]) > 1000 and len(want["bars"]) > 5000

    db = tmp_path / "crash.db"
    rec_dir = tmp_path / "recovery"
    prefix = f"{redis_prefix}crash:"
    client = redis.Redis.from_url(REDIS_URL)
    rng = random.Random(20261124)
    kill_points = sorted(rng.uniform(0.1, 0.9) for _ in range(3))
    kills = []
    for frac in kill_points:
        proc = subprocess.Popen(
            [sys.executable, "dataflow.py", "-r", str(rec_dir)],
            cwd=ROOT, env=replay_env(db, path, prefix, WINDOWS),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while _teed(client, prefix) < frac * n_ticks and proc.poll() is None:
            assert time.monotonic() < deadline, "flow made no progress"
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(_teed(client, prefix))
        proc.wait(30)
    assert len(kills) >= 2, f"the flow finished before it could be killed: {kills}"

    final = subprocess.run(
        [sys.executable, "dataflow.py", "-r", str(rec_dir)],
        cwd=ROOT, env=replay_env(db, path, prefix, WINDOWS), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    resumed_at = [
        int(line.split(" resumes at line ")[1].split()[0])
        for line in final.stderr.splitlines()
        if " resumes at line " in line
    ]
    assert resumed_at and resumed_at[0] > 0, "the last run did not resume from a snapshot"

    got = result_tables(db)
    for name in ("bars", "analytics", "signals"):
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=False, rtol=1e-12)
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert client.xrange(f"{prefix}ticks:{sym}") == client.xrange(f"{ref_prefix}ticks:{sym}")
    client.close()
