"""Scale-out: two workers, and two processes on localhost, give the one-worker tables."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import redis

from pairflow.testing import REDIS_URL, ROOT
from pairflow.testing.oracle import read_table
from tests.flowutil import replay_env, result_tables, run_flow, settings_for

WINDOWS = "1s=60,1m=20"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_same(db: Path, ref_db: Path, prefix: str, ref_prefix: str) -> None:
    got, want = result_tables(db), result_tables(ref_db)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=False, rtol=1e-12)
    client = redis.Redis.from_url(REDIS_URL)
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert client.xrange(f"{prefix}ticks:{sym}") == client.xrange(f"{ref_prefix}ticks:{sym}")
    client.close()


def _reference(tmp_path: Path, recording: Path, prefix: str) -> Path:
    ref_db = tmp_path / "one.db"
    run_flow(
        settings_for(
            ref_db, source=f"replay:{recording}", replay_speed="max", windows=WINDOWS,
            redis_url=REDIS_URL, redis_prefix=prefix,
        )
    )  # fmt: skip
    assert len(read_table(ref_db, "analytics", "ts")) > 500
    return ref_db


def test_two_workers_give_the_one_worker_tables(tmp_path, recording, redis_prefix):
    ref_db = _reference(tmp_path, recording, f"{redis_prefix}one:")
    db = tmp_path / "w2.db"
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow", "-w", "2"],
        cwd=ROOT, env=replay_env(db, recording, f"{redis_prefix}w2:", WINDOWS),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same(db, ref_db, f"{redis_prefix}w2:", f"{redis_prefix}one:")


def test_two_processes_on_localhost_give_the_one_worker_tables(tmp_path, recording, redis_prefix):
    ref_db = _reference(tmp_path, recording, f"{redis_prefix}one:")
    db = tmp_path / "p2.db"
    addresses = f"127.0.0.1:{_free_port()};127.0.0.1:{_free_port()}"
    env = replay_env(db, recording, f"{redis_prefix}p2:", WINDOWS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow", "-i", str(i), "-a", addresses],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    _assert_same(db, ref_db, f"{redis_prefix}p2:", f"{redis_prefix}one:")
