"""sinks.duckdb_sink and sinks.schema on real DuckDB files: upserts, dedupe, retractions,
migrations of old files, lock conflicts, snapshots."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from pairflow.records import AnalyticsRow, Bar, Gap, Reject, Retract, RetractFrom, Signal, Stat
from pairflow.testing.ticks import BASE_MS
from pairflow.timeutil import TIMEFRAMES
from sinks import duckdb_sink
from sinks.duckdb_sink import DuckDBPartition, HeldConnection, PendingRows
from sinks.schema import _RECORD_MAPS, TABLES, create_all, record_map

RECORD_TYPES = tuple(_RECORD_MAPS)


def bar(open_ms: int = 0, close: float = 10.0, trades: int = 1) -> Bar:
    return Bar(
        "BTCUSDT", "1s", BASE_MS + open_ms, 9.0, 11.0, 8.0, close, 2.0, 20.0, trades, 1.0, 5, 6
    )


def rows(db, sql):
    # read-write, like the sink: in this process that shares the database the
    # partition may still hold (HeldConnection), and sees what it committed
    con = duckdb.connect(str(db))
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


@pytest.mark.parametrize("n", [3, 40], ids=["values-path", "numpy-path"])
def test_new_keys_go_in_with_a_plain_insert_and_an_existing_key_redoes_the_flush(tmp_path, n):
    """A flush meeting a key already in the file is rolled back and redone as an upsert:
    same rows as ``INSERT OR REPLACE`` throughout, and the table stays on upserts for a
    backoff that doubles while it keeps meeting keys, then is tried plain again."""
    db = tmp_path / "p.db"
    part = DuckDBPartition(db, batch_rows=10**6, flush_ms=10**9, resume=None)
    part.write_batch([bar(1000 * i, close=1.0) for i in range(n)])
    part.flush()
    assert part.plan.redone == 0  # new keys: plain INSERT
    sig = _sig(0)  # another table in the same flush, new key: stays plain
    part.write_batch([bar(1000 * i, close=2.0) for i in range(n + 1)] + [sig])
    part.flush()
    assert part.plan.redone == 1
    assert rows(db, "SELECT count(*), min(close), max(close) FROM bars") == [(n + 1, 2.0, 2.0)]
    assert _signals(db) == [("default", 0, "exit")]
    first = part.plan.backoff["bars"]
    for k in range(first):  # upsert-only flushes: existing keys without a redo
        part.write_batch([bar(0, close=3.0 + k)])
        part.flush()
    assert part.plan.redone == 1
    part.write_batch([bar(0, close=99.0)])  # tried plain again, meets the key again
    part.flush()
    assert part.plan.redone == 2
    assert part.plan.backoff["bars"] == 2 * first
    part.close()
    assert rows(db, "SELECT close FROM bars WHERE open_time = make_timestamptz(?::BIGINT * 1000)"
                .replace("?", str(BASE_MS))) == [(99.0,)]  # fmt: skip


def test_a_failed_plain_insert_leaves_nothing_of_its_flush_behind(tmp_path):
    """The redo is of the whole transaction: deletes and other tables are not applied twice."""
    db = tmp_path / "t.db"
    part = DuckDBPartition(db, batch_rows=10**6, flush_ms=10**9, resume=None)
    part.write_batch([_sig(0), _sig(1000), bar(0)])
    part.flush()
    reject = Reject(BASE_MS, "replay", "bad_json", "{")  # appended: must be written once
    part.write_batch([Retract("signals", _key(0)), bar(0, close=7.0), reject])
    part.flush()
    part.close()
    assert part.plan.redone == 1
    assert _signals(db) == [("default", 1000, "exit")]
    assert rows(db, "SELECT close FROM bars") == [(7.0,)]
    assert rows(db, "SELECT count(*) FROM rejects") == [(1,)]


def test_duckdb_sink_takes_lists_of_records_in_order(tmp_path):
    """The flow sends one list per batch: the same rows as the records one by one."""
    items = [_sig(0), bar(close=1.0), Retract("signals", _key(0)), bar(close=2.0), _sig(1000)]
    tables = {}
    for name, batches in (("one_by_one", items), ("lists", [items[:2], items[2:]])):
        db = tmp_path / f"{name}.db"
        part = DuckDBPartition(db, batch_rows=10**6, flush_ms=10**9, resume=None)
        part.write_batch(batches)
        part.close()
        tables[name] = (_signals(db), rows(db, "SELECT close FROM bars"))
    assert tables["lists"] == tables["one_by_one"] == ([("default", 1000, "exit")], [(2.0,)])


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
    part.write_batch([bar(2000)])  # the third row starts a flush, on the writer thread
    assert len(part.pending) == 0
    part.wait_written()
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


class _GatedWrites:
    """Replaces ``write_planned``: each write waits until the test opens the gate."""

    def __init__(self, monkeypatch, fail: BaseException | None = None) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.threads: list[str] = []
        self.fail = fail
        real = duckdb_sink.write_planned

        def gated(con, frames, plan):
            self.threads.append(threading.current_thread().name)
            self.started.set()
            self.gate.wait(30)
            if self.fail is not None:
                raise self.fail
            real(con, frames, plan)

        monkeypatch.setattr(duckdb_sink, "write_planned", gated)


def test_a_flush_started_by_write_batch_is_written_on_the_writer_thread(tmp_path, monkeypatch):
    db = tmp_path / "bg.db"
    gated = _GatedWrites(monkeypatch)
    part = DuckDBPartition(db, batch_rows=2, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0), bar(1000)])  # returns with its flush still waiting at the gate
    assert gated.started.wait(10)
    part.write_batch([bar(2000)])  # the flow goes on while the write is in flight
    assert len(part.pending) == 1
    assert rows(db, "SELECT count(*) FROM bars") == [(0,)]
    gated.gate.set()
    part.wait_written()
    part.write_batch([bar(3000, close=5.0), bar(0, close=6.0)])  # the writer is free again
    part.write_batch([bar(4000)])  # below batch_rows: pending
    part.close()  # writes it on this thread
    writer, here = "pairflow-duckdb-writer", threading.current_thread().name
    assert gated.threads == [writer, writer, here]
    got = rows(db, "SELECT open_time, close FROM bars ORDER BY open_time")
    assert [c for _, c in got] == [6.0, 10.0, 10.0, 5.0, 10.0]  # the later flush won bar(0)


def test_a_flush_due_while_the_writer_is_busy_stays_pending_without_blocking(tmp_path, monkeypatch):
    db = tmp_path / "busy.db"
    gated = _GatedWrites(monkeypatch)
    part = DuckDBPartition(db, batch_rows=2, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0), bar(1000)])  # a flush, held at the gate
    assert gated.started.wait(10)
    caller = threading.Thread(target=part.write_batch, args=([bar(2000), bar(3000)],))
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), "a due flush must not wait for the write in flight"
    assert len(part.pending) == 2 and gated.threads == ["pairflow-duckdb-writer"]
    gated.gate.set()
    part.wait_written()
    part.write_batch([bar(4000)])  # the writer is free: the pending rows go with this one
    assert len(part.pending) == 0
    part.close()
    assert gated.threads == ["pairflow-duckdb-writer"] * 2
    assert rows(db, "SELECT count(*) FROM bars") == [(5,)]


def test_the_flow_waits_for_the_writer_once_max_pending_rows_are_buffered(tmp_path, monkeypatch):
    db = tmp_path / "full.db"
    gated = _GatedWrites(monkeypatch)
    part = DuckDBPartition(db, batch_rows=2, flush_ms=3_600_000, resume=None, max_pending_rows=4)
    part.write_batch([bar(0), bar(1000)])  # a flush, held at the gate
    assert gated.started.wait(10)
    part.write_batch([bar(2000), bar(3000), bar(4000)])  # 3 < 4: buffered
    assert len(part.pending) == 3
    caller = threading.Thread(target=part.write_batch, args=([bar(5000)],))
    caller.start()
    caller.join(0.3)
    assert caller.is_alive(), "with max_pending_rows buffered the flow must wait for the writer"
    gated.gate.set()
    caller.join(10)
    assert not caller.is_alive()
    part.close()
    assert rows(db, "SELECT count(*) FROM bars") == [(6,)]


def test_snapshot_waits_until_the_write_in_flight_has_committed(tmp_path, monkeypatch):
    db = tmp_path / "snap.db"
    gated = _GatedWrites(monkeypatch)
    part = DuckDBPartition(db, batch_rows=2, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0), bar(1000)])
    part.write_batch([bar(2000)])
    snaps: list[PendingRows] = []
    taker = threading.Thread(target=lambda: snaps.append(part.snapshot()))
    taker.start()
    taker.join(0.3)
    assert taker.is_alive() and not snaps, "the snapshot must wait for the write in flight"
    gated.gate.set()
    taker.join(10)
    # what the snapshot leaves out (the flushed rows) is in the file when it returns
    assert len(snaps[0]) == 1
    assert rows(db, "SELECT count(*) FROM bars") == [(2,)]
    part.close()


def test_a_failed_background_write_is_raised_by_the_next_call(tmp_path, monkeypatch):
    db = tmp_path / "fail.db"
    gated = _GatedWrites(monkeypatch, fail=OSError("disk full"))
    gated.gate.set()
    part = DuckDBPartition(db, batch_rows=1, flush_ms=3_600_000, resume=None)
    part.write_batch([bar(0)])  # the write fails on the writer thread
    with pytest.raises(OSError, match="disk full"):
        part.wait_written()
    gated.fail = None
    part.write_batch([bar(1000)])  # raised once; the partition works again
    part.close()
    # the failed flush is not retried here: in a flow the error stops it (no snapshot
    # is taken after it), and a resumed flow rewrites those rows from its last snapshot
    assert rows(db, "SELECT epoch_ms(open_time) FROM bars") == [(BASE_MS + 1000,)]


def test_background_false_writes_each_flush_on_the_calling_thread(tmp_path, monkeypatch):
    gated = _GatedWrites(monkeypatch)
    gated.gate.set()
    part = DuckDBPartition(tmp_path / "fg.db", 1, 3_600_000, resume=None, background=False)
    part.write_batch([bar(0)])
    assert gated.threads == [threading.current_thread().name]
    assert rows(tmp_path / "fg.db", "SELECT count(*) FROM bars") == [(1,)]
    part.close()


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
    part.wait_written()
    waited = time.monotonic() - started
    holder.wait(10)
    part.close()
    assert waited > 0.5, "the flush should have had to wait for the lock"
    assert rows(db, "SELECT count(*) FROM bars") == [(1,)]


# --------------------------------------------------------------------------- schema spec

OLD_DDL = (  # the layout of files written before issue 10 (kept to test migrations)
    """CREATE TABLE bars (symbol VARCHAR NOT NULL, tf VARCHAR NOT NULL,
        open_time TIMESTAMPTZ NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL,
        low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume DOUBLE NOT NULL,
        quote_volume DOUBLE NOT NULL, vwap DOUBLE NOT NULL, trades BIGINT NOT NULL,
        taker_buy_volume DOUBLE NOT NULL, first_trade_id BIGINT NOT NULL,
        last_trade_id BIGINT NOT NULL, PRIMARY KEY (symbol, tf, open_time))""",
    """CREATE TABLE analytics (pair VARCHAR NOT NULL, tf VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL, "window" INTEGER NOT NULL, y_close DOUBLE NOT NULL,
        x_close DOUBLE NOT NULL, alpha DOUBLE, beta DOUBLE, spread DOUBLE, zscore DOUBLE,
        corr DOUBLE, adf_pvalue DOUBLE, eg_pvalue DOUBLE, half_life DOUBLE,
        y_filled BOOLEAN NOT NULL, x_filled BOOLEAN NOT NULL, PRIMARY KEY (pair, tf, ts))""",
    """CREATE TABLE signals (pair VARCHAR NOT NULL, tf VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL, zscore DOUBLE NOT NULL,
        PRIMARY KEY (pair, tf, ts, kind))""",
)


def _layout(db):
    """``table -> [(column, type, nullable)]`` and ``table -> primary key`` of a file."""
    cols = rows(
        db,
        "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index",
    )
    keys = rows(
        db,
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY'",
    )
    layout: dict[str, list[tuple[str, str, bool]]] = {}
    for table, col, typ, nullable in cols:
        layout.setdefault(table, []).append((col, typ, nullable))
    return layout, {t: tuple(k) for t, k in keys}


def _spec_layout(table):
    names = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
    return sorted((c.name, names.get(c.type, c.type), c.nullable) for c in table.columns)


def test_new_file_has_exactly_the_tables_of_the_spec(tmp_path):
    db = tmp_path / "new.db"
    DuckDBPartition(db, batch_rows=1, flush_ms=0, resume=None).close()
    layout, keys = _layout(db)
    assert set(layout) == set(TABLES)
    for name, table in TABLES.items():
        assert sorted(layout[name]) == _spec_layout(table), name
        assert [c for c, _, _ in layout[name]] == list(table.names), name
        assert keys.get(name, ()) == table.key, name
    assert "stop" in TABLES["signals"].column("kind").values
    assert TABLES["bars"].column("tf").values == TIMEFRAMES


def test_old_files_are_migrated_in_place_keeping_their_rows(tmp_path):
    db = tmp_path / "old.db"
    con = duckdb.connect(str(db))
    for stmt in OLD_DDL:
        con.execute(stmt)
    con.execute(
        "INSERT INTO bars VALUES ('BTCUSDT', '1s', make_timestamptz(?::BIGINT * 1000), "
        "1, 2, 0.5, 1.5, 3, 4.5, 1.5, 7, 1, 10, 16)",
        [BASE_MS],
    )
    con.execute(
        "INSERT INTO signals VALUES ('BTCUSDT/ETHUSDT', '1s', make_timestamptz(?::BIGINT * 1000), "
        "'exit', 0.1)",
        [BASE_MS],
    )
    con.close()
    part = DuckDBPartition(db, batch_rows=100, flush_ms=10_000, resume=None)
    kline = Bar("ETHUSDT", "1m", BASE_MS, 1.0, 2.0, 0.5, 1.5, 3.0, 4.5, 7, 1.0, None, None)
    part.write_batch(
        [
            kline,
            Signal("BTCUSDT/ETHUSDT", "1s", BASE_MS, "exit", 0.2, strategy="fast"),
            AnalyticsRow("BTCUSDT/ETHUSDT", "1s", BASE_MS, 300, 1.0, 2.0, 0.1, 1.5, 0.01,
                         None, 0.9, 0.04, 0.03, None, False, True, 0.2),
        ]
    )  # fmt: skip
    part.close()
    layout, keys = _layout(db)
    for name in ("bars", "analytics", "signals"):
        assert sorted(layout[name]) == _spec_layout(TABLES[name]), name
        assert keys[name] == TABLES[name].key
    assert rows(db, "SELECT symbol, first_trade_id FROM bars ORDER BY symbol") == [
        ("BTCUSDT", 10),
        ("ETHUSDT", None),
    ]
    assert rows(db, "SELECT strategy, zscore FROM signals ORDER BY strategy") == [
        ("default", 0.1),
        ("fast", 0.2),
    ]
    assert rows(db, "SELECT spread_std, kalman_beta FROM analytics") == [(0.2, None)]
    con = duckdb.connect(str(db))
    try:
        assert create_all(con) == []  # migrated once; a current file needs nothing
    finally:
        con.close()


@pytest.fixture(params=["values", "numpy"])
def batch_path(request, monkeypatch) -> str:
    """Both write paths: small batches as a VALUES list, large ones as NumPy columns."""
    monkeypatch.setattr(duckdb_sink, "SMALL_BATCH_ROWS", 10**9 if request.param == "values" else 0)
    return request.param


@pytest.mark.parametrize("cls", sorted(RECORD_TYPES, key=lambda c: c.__name__))
def test_every_registered_record_type_round_trips_through_its_table(tmp_path, cls, batch_path):
    """Fill every field with a distinct value, write it, read it back column by column."""
    rmap = record_map(cls)
    table = rmap.table
    values: dict[str, object] = {}
    for i, f in enumerate(dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()):
        col = next(c for c, src in zip(table.columns, rmap.fields, strict=True) if src == f.name)
        values[f.name] = {
            "VARCHAR": f"v{i}", "DOUBLE": i + 0.5, "BIGINT": 1000 + i, "INTEGER": i,
            "BOOLEAN": i % 2 == 0, "TIMESTAMPTZ": BASE_MS + i,
        }[col.type]  # fmt: skip
    if cls is Bar:
        values["volume"] = 2.0  # vwap = quote_volume / volume
    record = cls(**values)
    db = tmp_path / "rt.db"
    part = DuckDBPartition(db, batch_rows=100, flush_ms=10_000, resume=None)
    part.write_batch([record])
    part.close()
    select = ", ".join(
        f'epoch_ms("{c.name}")' if c.is_time else f'"{c.name}"' for c in table.columns
    )
    (got,) = rows(db, f"SELECT {select} FROM {table.name}")  # noqa: S608
    assert got == rmap.row(record)


def _sig(ts: int, kind: str = "exit", z: float = 0.1, strategy: str = "default") -> Signal:
    return Signal("BTCUSDT/ETHUSDT", "1s", BASE_MS + ts, kind, z, strategy=strategy)


def _key(ts: int, kind: str = "exit", strategy: str = "default") -> tuple[object, ...]:
    return (strategy, "BTCUSDT/ETHUSDT", "1s", BASE_MS + ts, kind)


def _signals(db):
    return rows(db, "SELECT strategy, epoch_ms(ts) - ?, kind FROM signals ORDER BY ALL".replace(
        "?", str(BASE_MS)))  # fmt: skip


def test_retract_is_ordered_with_upserts_of_the_same_key_in_one_batch(tmp_path):
    db = tmp_path / "r.db"
    part = DuckDBPartition(db, batch_rows=1000, flush_ms=10**9, resume=None)
    part.write_batch([_sig(0), _sig(1000), _sig(2000)])
    part.flush()
    part.write_batch(
        [
            Retract("signals", _key(0)),  # in the file: deleted
            _sig(1000, z=0.3), Retract("signals", _key(1000)),  # upsert then retract: gone
            Retract("signals", _key(3000)), _sig(3000),  # retract then upsert: kept
            Retract("signals", _key(9000)),  # nothing to delete: fine
        ]
    )  # fmt: skip
    part.close()
    assert _signals(db) == [("default", 2000, "exit"), ("default", 3000, "exit")]


def test_retract_from_deletes_a_key_prefix_from_a_time_on_and_keeps_later_rows(tmp_path):
    db = tmp_path / "rf.db"
    part = DuckDBPartition(db, batch_rows=1000, flush_ms=10**9, resume=None)
    part.write_batch([_sig(0), _sig(1000), _sig(2000), _sig(2000, strategy="other")])
    part.flush()
    part.write_batch(
        [
            _sig(3000),  # buffered before the retraction: covered, dropped
            RetractFrom("signals", ("default", "BTCUSDT/ETHUSDT", "1s"), BASE_MS + 1000),
            _sig(2000, kind="long_spread"),  # the recomputed decision: kept
        ]
    )
    snap = part.snapshot()  # a retraction survives a crash before the flush
    part = DuckDBPartition(db, batch_rows=1000, flush_ms=10**9, resume=snap)
    part.close()
    assert _signals(db) == [
        ("default", 0, "exit"),
        ("default", 2000, "long_spread"),
        ("other", 2000, "exit"),
    ]


def test_retractions_of_unknown_tables_or_keys_are_refused(tmp_path):
    pending = PendingRows()
    with pytest.raises(ValueError, match="not a keyed"):
        pending.add(Retract("rejects", ("x",)))
    with pytest.raises(ValueError, match="key"):
        pending.add(Retract("signals", ("default", "BTCUSDT/ETHUSDT")))
    with pytest.raises(ValueError, match="time column"):
        pending.add(RetractFrom("strategies", ("x",), 0))
    with pytest.raises(TypeError, match="unsupported record"):
        pending.add(object())


def test_both_write_paths_store_none_and_nan_as_null_and_the_same_rows(tmp_path, batch_path):
    def row(i: int, beta: float | None) -> AnalyticsRow:
        return AnalyticsRow(
            "BTCUSDT/ETHUSDT", "1s", BASE_MS + 1000 * i, 300, 10.0 + i, 5.0, 0.1, beta,
            None, None, 0.5, None, None, None, i % 2 == 0, False,
        )  # fmt: skip

    db = tmp_path / f"{batch_path}.db"
    part = DuckDBPartition(db, batch_rows=100, flush_ms=10_000, resume=None)
    part.write_batch([row(0, 1.5), row(1, None), row(2, float("nan"))])
    part.close()
    got = rows(
        db,
        "SELECT epoch_ms(ts) - ?, y_close, beta, spread, corr, y_filled FROM analytics "
        "ORDER BY ts".replace("?", str(BASE_MS)),
    )
    assert got == [
        (0, 10.0, 1.5, None, 0.5, True),
        (1000, 11.0, None, None, 0.5, False),
        (2000, 12.0, None, None, 0.5, True),
    ]


@pytest.mark.parametrize(
    ("bars", "loaded"), [(1, "[]"), (40, "['numpy']")], ids=["small-batch", "numpy-batch"]
)
def test_flushing_never_imports_pandas_nor_the_duckdb_package_and_a_small_batch_not_numpy(
    tmp_path, bars, loaded
):
    code = (
        "import sys\n"
        "from sinks.duckdb_sink import DuckDBPartition\n"
        "from pairflow.records import Bar\n"
        f"p = DuckDBPartition(__import__('pathlib').Path({str(tmp_path / 'n.db')!r}), 1, 0, None)\n"
        f"p.write_batch([Bar('BTCUSDT', '1s', 1000 * i, 1., 1., 1., 1., 1., 1., 1, 0., None, None)"
        f" for i in range({bars})])\n"
        "p.close()\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'duckdb') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == loaded


def test_sink_uses_the_compiled_module_the_duckdb_package_reexports() -> None:
    """The sink skips the ``duckdb`` package's import (start-up) but must get the
    very objects the package exposes; a DuckDB upgrade that changes that fails here."""
    import duckdb

    from sinks import duckdb_sink

    assert duckdb_sink.duckdb.__name__ == "_duckdb"
    for name in ("connect", "IOException", "Error", "DuckDBPyConnection"):
        assert getattr(duckdb_sink.duckdb, name) is getattr(duckdb, name), name


def test_connect_rw_warns_only_when_the_lock_is_held_long(tmp_path, monkeypatch, caplog):
    """A reader's millisecond lock is not worth a WARNING (the demo printed many); a
    lock held for seconds is, once."""
    import duckdb

    from sinks import duckdb_sink

    real_connect = duckdb.connect
    refusals = {"left": 0}

    def flaky_connect(path: str, *args: object, **kwargs: object):
        if refusals["left"]:
            refusals["left"] -= 1
            raise duckdb.IOException('Could not set lock on file "x": Conflicting lock')
        return real_connect(path, *args, **kwargs)

    monkeypatch.setattr(duckdb_sink.duckdb, "connect", flaky_connect)
    no_sleep = lambda _s: None  # noqa: E731 - the waited time is accounted, not slept
    db = tmp_path / "lock.db"
    with caplog.at_level("DEBUG", logger="sinks.duckdb_sink"):
        refusals["left"] = 3  # 5 + 10 + 20 ms of retries
        duckdb_sink.connect_rw(db, sleep=no_sleep).close()
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        refusals["left"] = 60  # ~2.9 s of 50 ms retries
        duckdb_sink.connect_rw(db, sleep=no_sleep).close()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "locked by another process" in warnings[0].getMessage()
    assert any("unlocked after" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)


def test_held_connection_reuses_the_open_file_for_flushes_that_follow_closely(tmp_path):
    held = HeldConnection(tmp_path / "h.db", idle_ms=60_000, max_ms=60_000)
    held.run(lambda con: con.execute("CREATE TABLE t (a INTEGER)"), timeout_s=5)
    held.run(lambda con: con.execute("INSERT INTO t VALUES (1)"), timeout_s=5)
    assert held.opens == 1 and held.is_open
    held.close()
    assert not held.is_open
    assert rows(tmp_path / "h.db", "SELECT a FROM t") == [(1,)]


def test_held_connection_reopens_after_max_hold_so_readers_get_a_turn(tmp_path):
    held = HeldConnection(tmp_path / "m.db", idle_ms=60_000, max_ms=0)
    held.run(lambda con: con.execute("CREATE TABLE t (a INTEGER)"), timeout_s=5)
    assert not held.is_open  # held past max_ms: closed right after the flush
    held.run(lambda con: con.execute("INSERT INTO t VALUES (1)"), timeout_s=5)
    assert held.opens == 2
    held.close()


def test_held_connection_releases_the_file_when_flushes_stop(tmp_path):
    db = tmp_path / "idle.db"
    held = HeldConnection(db, idle_ms=20, max_ms=60_000)
    held.run(lambda con: con.execute("CREATE TABLE t (a INTEGER)"), timeout_s=5)
    deadline = time.monotonic() + 10
    while held.is_open and time.monotonic() < deadline:  # the idle timer closes it
        time.sleep(0.01)
    assert not held.is_open
    reader = subprocess.run(  # another process can open the file read-only now
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print(c.execute('SELECT count(*) FROM t').fetchone()[0])", str(db)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "0"


def test_held_connection_closes_the_file_when_a_flush_fails(tmp_path):
    held = HeldConnection(tmp_path / "f.db", idle_ms=60_000, max_ms=60_000)
    with pytest.raises(duckdb.Error):
        held.run(lambda con: con.execute("SELECT * FROM missing_table"), timeout_s=5)
    assert not held.is_open


def test_create_all_reads_only_the_current_database_not_attached_ones(tmp_path):
    other = duckdb.connect(str(tmp_path / "other.db"))
    create_all(other)  # a complete pairflow file...
    other.close()
    con = duckdb.connect(str(tmp_path / "main.db"))
    con.execute(f"ATTACH '{tmp_path / 'other.db'}' AS other")  # ...attached to a new one
    assert create_all(con) == []
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    con.close()
    assert tables == set(TABLES)
