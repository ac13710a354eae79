"""sinks.duckdb_sink on real DuckDB files: upserts, dedupe, lock conflicts, snapshots."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb

from pairflow.records import AnalyticsRow, Bar, Gap, Reject, Signal, Stat
from pairflow.testing.ticks import BASE_MS
from sinks.duckdb_sink import DuckDBPartition, PendingRows


def bar(open_ms: int = 0, close: float = 10.0, trades: int = 1) -> Bar:
    return Bar(
        "BTCUSDT", "1s", BASE_MS + open_ms, 9.0, 11.0, 8.0, close, 2.0, 20.0, trades, 1.0, 5, 6
    )


def rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_duckdb_sink_upsert_replaces_rows_with_the_same_key(tmp_path):
    db = tmp_path / "u.db"
    part = DuckDBPartition(db, batch_rows=1, flush_ms=10_000, resume=None)
    part.write_batch([bar(close=10.0)])
    part.write_batch([bar(close=12.0, trades=3)])
    part.close()
    assert rows(db, "SELECT close, trades, vwap FROM bars") == [(12.0, 3, 10.0)]


def test_duckdb_sink_dedupes_keys_inside_one_batch(tmp_path):
    db = tmp_path / "d.db"
    part = DuckDBPartition(db, batch_rows=100, flush_ms=10_000, resume=None)
    part.write_batch([bar(close=1.0), bar(close=2.0), bar(1000, close=3.0)])
    part.close()
    assert rows(db, "SELECT close FROM bars ORDER BY open_time") == [(2.0,), (3.0,)]


def test_duckdb_sink_writes_every_record_type_with_utc_times(tmp_path):
    db = tmp_path / "all.db"
    part = DuckDBPartition(db, batch_rows=100, flush_ms=10_000, resume=None)
    part.write_batch(
        [
            bar(),
            AnalyticsRow("BTCUSDT/ETHUSDT", "1s", BASE_MS, 300, 1.0, 2.0, 0.1, 1.5, 0.01,
                         None, 0.9, 0.04, 0.03, None, False, True),
            Signal("BTCUSDT/ETHUSDT", "1s", BASE_MS, "long_spread", -2.1),
            Reject(BASE_MS, "replay", "not_json", "{"),
            Stat(BASE_MS, "parse", "ticks_total", 5),
            Gap("BTCUSDT", 10, 12, BASE_MS, "filled", 3),
        ]
    )  # fmt: skip
    part.close()
    assert rows(db, "SELECT epoch_ms(open_time) FROM bars") == [(BASE_MS,)]
    assert rows(db, "SELECT zscore, half_life, x_filled FROM analytics") == [(None, None, True)]
    assert rows(db, "SELECT kind FROM signals") == [("long_spread",)]
    assert rows(db, "SELECT reason, raw FROM rejects") == [("not_json", "{")]
    assert rows(db, "SELECT metric, value FROM pipeline_stats") == [("ticks_total", 5.0)]
    assert rows(db, "SELECT status, filled FROM gaps") == [("filled", 3)]
    tz = rows(db, "SELECT typeof(open_time) FROM bars")[0][0]
    assert tz == "TIMESTAMP WITH TIME ZONE"


def test_duckdb_sink_buffers_until_batch_rows_or_flush_interval(tmp_path):
    db = tmp_path / "b.db"
    part = DuckDBPartition(db, batch_rows=3, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0), bar(1000)])
    assert rows(db, "SELECT count(*) FROM bars") == [(0,)]
    part.write_batch([bar(2000)])
    assert rows(db, "SELECT count(*) FROM bars") == [(3,)]
    part.close()


def test_duckdb_sink_snapshot_carries_unflushed_rows_into_a_resumed_partition(tmp_path):
    db = tmp_path / "s.db"
    part = DuckDBPartition(db, batch_rows=100, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0), Reject(BASE_MS, "replay", "x", "y")])
    snap = part.snapshot()
    assert isinstance(snap, PendingRows) and len(snap) == 2
    # the process dies here; a resumed partition writes what was pending
    resumed = DuckDBPartition(db, batch_rows=100, flush_ms=3_600_000, resume=snap)
    resumed.close()
    assert rows(db, "SELECT count(*) FROM bars") == [(1,)]
    assert rows(db, "SELECT count(*) FROM rejects") == [(1,)]


def test_duckdb_sink_waits_for_a_lock_held_by_another_process_and_loses_nothing(tmp_path):
    db = tmp_path / "lock.db"
    part = DuckDBPartition(db, batch_rows=1, flush_ms=0, resume=None)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(1.5); c.close()", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    part.write_batch([bar(0)])
    waited = time.monotonic() - started
    holder.wait(10)
    part.close()
    assert waited > 0.5, "the flush should have had to wait for the lock"
    assert rows(db, "SELECT count(*) FROM bars") == [(1,)]
