"""DuckDB sink: one partition, batched, idempotent upserts.

All table writes of the flow go through this single partition (DuckDB allows one
read-write process at a time). Rows are buffered and flushed when ``batch_rows`` are
waiting or ``flush_ms`` have passed since the last flush, and on shutdown. Each flush
writes every table in one transaction on a connection that is closed again once no
flush has followed for :data:`HOLD_IDLE_MS` (and at the latest :data:`HOLD_MAX_MS`
after it was opened), so the dashboard can open the file read-only in between while
a fast replay does not pay an open and a checkpoint per batch. Keyed tables are deduplicated in
the buffer (last write wins) and written with ``INSERT OR REPLACE``; replaying the
same input therefore leaves the same rows. If the file is locked by another process
the flush retries with capped exponential backoff and never drops a batch.

Which record goes to which table, and how its fields become columns, is declared
once in :mod:`sinks.schema`. :class:`~pairflow.records.Retract` and
:class:`~pairflow.records.RetractFrom` delete keyed rows in the same transaction,
ordered with the upserts: whatever arrived last for a key wins.

Rows reach DuckDB as NumPy columns cast to the schema's types in SQL (no pandas,
no pyarrow); NumPy itself is imported with the first batch of
:data:`SMALL_BATCH_ROWS` rows or more, so importing the sink, and a short run, are cheap.
(Importing NumPy on a background thread during start-up was measured slower: the
two threads contend for the GIL.)

DuckDB itself is used through ``_duckdb``, the compiled module the ``duckdb`` package
re-exports (``duckdb.connect is _duckdb.connect``; tested): importing the package
also loads its relational-API wrappers and ``importlib.metadata`` (for its version
string), ~40 % of a 100-tick replay's start-up beyond a bare Bytewax flow here.

Every call into DuckDB's Python API takes the GIL back on its way out; the writer thread
waits for it while the flow's thread runs Python, up to the interpreter's switch
interval a call (``PAIRFLOW_SWITCH_INTERVAL_MS``, :mod:`pairflow.gc_tuning`). A flush
therefore makes few calls: one ``register`` and one ``INSERT`` a table, no
``unregister`` (each table's view is replaced by its next batch).

Unflushed rows are part of the partition's recovery snapshot, so a crash between
an epoch's end and the next flush loses nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from pairflow.records import Retract, RetractFrom
from pairflow.summary import COUNTS
from pairflow.timeutil import now_ms
from sinks.schema import TABLES, Table, create_all, record_map

try:  # the compiled module behind the ``duckdb`` package (see the module docstring)
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - a DuckDB build without the split module
    import duckdb  # type: ignore[no-redef]

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Key = tuple[Any, ...]
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Route:
    table: Table
    row: Callable[[Any], Row]
    key: Callable[[Row], Key] | None


_ROUTES: dict[type, _Route] = {}


def _route(cls: type) -> _Route:
    route = _ROUTES.get(cls)
    if route is None:
        rmap = record_map(cls)
        idx = rmap.table.key_index
        key: Callable[[Row], Key] | None = None
        if len(idx) == 1:
            only = idx[0]
            key = lambda row: (row[only],)  # noqa: E731
        elif idx:
            key = itemgetter(*idx)
        route = _ROUTES[cls] = _Route(rmap.table, rmap.row, key)
    return route


def _keyed_table(name: str) -> Table:
    table = TABLES.get(name)
    if table is None or not table.upsert:
        msg = f"cannot retract from {name!r}: not a keyed pairflow table"
        raise ValueError(msg)
    return table


@dataclass
class PendingRows:
    """Rows waiting for the next flush (also the partition's recovery state).

    Attributes:
        keyed: Per upsert table, rows by primary key (last write wins); ``None`` is a
            retraction of that key.
        appended: Per append-only table, rows in arrival order.
        ranges: :class:`~pairflow.records.RetractFrom` as ``(table, key_prefix, from_ms)``,
            applied before the keyed rows (buffered rows they cover are dropped when
            they arrive, so only later rows remain).
    """

    keyed: dict[str, dict[Key, Row | None]] = field(default_factory=dict)
    appended: dict[str, list[Row]] = field(default_factory=dict)
    ranges: list[tuple[str, Key, int]] = field(default_factory=list)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also snapshots written before ``ranges`` existed."""
        state.setdefault("ranges", [])
        self.__dict__.update(state)

    def __len__(self) -> int:
        return (
            sum(len(v) for v in self.keyed.values())
            + sum(len(v) for v in self.appended.values())
            + len(self.ranges)
        )

    def add(self, item: object) -> None:
        """Buffer one record (a table row, a :class:`Retract` or a :class:`RetractFrom`)."""
        route = _ROUTES.get(type(item))  # a row of a type seen before: the common case
        if route is None:
            if isinstance(item, Retract):
                table = _keyed_table(item.table)
                if len(item.key) != len(table.key):
                    msg = f"Retract({item.table}): key {item.key!r} is not {table.key}"
                    raise ValueError(msg)
                self.keyed.setdefault(table.name, {})[tuple(item.key)] = None
                return
            if isinstance(item, RetractFrom):
                self._add_range(item)
                return
            route = _route(type(item))
        row = route.row(item)
        name = route.table.name
        if route.key is None:
            rows = self.appended.get(name)
            if rows is None:
                rows = self.appended[name] = []
            rows.append(row)
            return
        keyed = self.keyed.get(name)
        if keyed is None:
            keyed = self.keyed[name] = {}
        keyed[route.key(row)] = row

    def _add_range(self, item: RetractFrom) -> None:
        table = _keyed_table(item.table)
        prefix = tuple(item.key_prefix)
        if table.time_column is None or len(prefix) > len(table.key):
            msg = f"RetractFrom({item.table}): needs a time column and a key prefix of {table.key}"
            raise ValueError(msg)
        n = len(prefix)
        t_row = table.names.index(table.time_column)
        t_key = table.key.index(table.time_column) if table.time_column in table.key else None
        rows = self.keyed.get(table.name, {})
        for key in [k for k in rows if k[:n] == prefix]:
            row = rows[key]
            ts = row[t_row] if row is not None else (key[t_key] if t_key is not None else None)
            if ts is not None and ts >= item.from_ms:
                del rows[key]
        self.ranges.append((table.name, prefix, int(item.from_ms)))

    def frames(self) -> Frames:
        """Everything pending: NumPy columns, or plain rows for small batches (:func:`_batch`)."""
        out = Frames()
        for name, rows in self.keyed.items():
            table = TABLES[name]
            live: list[Row] = [r for r in rows.values() if r is not None]
            dead: list[Row] = [k for k, r in rows.items() if r is None]
            if live:
                out.upserts[name] = _batch(table, live)
            if dead:
                out.deletes[name] = _columns(table, table.key, dead)
        for name, appended in self.appended.items():
            if appended:
                out.appends[name] = _batch(TABLES[name], appended)
        out.ranges = list(self.ranges)
        return out


Columns = dict[str, "np.ndarray[Any, Any]"]
"""One batch of one table as NumPy columns (what DuckDB scans, without pandas)."""

Batch = Columns | list[Row]
"""A table's rows of one flush: NumPy columns, or (small batches) the rows themselves."""

SMALL_BATCH_ROWS = 32
"""Batches of fewer rows are written as one parameterised ``VALUES`` list instead of
NumPy columns: cheaper for a live flush of a few rows (measured: 8 rows 10 ms vs 17 ms,
100 rows 24 ms vs 11 ms), and a short run does not need NumPy in the sink at all."""


def _batch(table: Table, rows: list[Row]) -> Batch:
    """``rows`` of ``table`` as written by :func:`write_frames` (see :data:`SMALL_BATCH_ROWS`)."""
    if len(rows) < SMALL_BATCH_ROWS:
        return rows
    return _columns(table, table.names, rows)


def _batch_len(batch: Batch) -> int:
    return len(batch) if isinstance(batch, list) else len(next(iter(batch.values())))


@dataclass
class Frames:
    """One flush: range deletes, key deletes, upserts and appends (NumPy columns)."""

    ranges: list[tuple[str, Key, int]] = field(default_factory=list)
    deletes: dict[str, Columns] = field(default_factory=dict)
    upserts: dict[str, Batch] = field(default_factory=dict)
    appends: dict[str, Batch] = field(default_factory=dict)

    def rows(self) -> dict[str, int]:
        """Rows written per table (upserts and appends)."""
        out: dict[str, int] = {}
        for frames in (self.upserts, self.appends):
            for name, batch in frames.items():
                out[name] = out.get(name, 0) + _batch_len(batch)
        return out


@functools.cache
def _numpy_types() -> dict[str, Any]:
    """Schema type -> NumPy dtype (NumPy imported on first use, see the module doc)."""
    import numpy as np  # noqa: PLC0415 - off the import path of the sink

    return {
        "DOUBLE": np.float64,  # None becomes NaN, which DuckDB reads as NULL
        "BIGINT": np.int64,
        "INTEGER": np.int64,
        "TIMESTAMPTZ": np.int64,  # epoch ms; converted in SQL (make_timestamptz), exact
        "BOOLEAN": np.bool_,
    }


def _columns(table: Table, names: tuple[str, ...], rows: list[Row]) -> Columns:
    """Rows as NumPy columns: typed where the values allow, ``object`` otherwise.

    (pyarrow would import pandas on its first conversion of Python lists: seconds of
    start-up. DuckDB scans a dict of NumPy arrays directly and casts in SQL.)
    """
    import numpy as np  # noqa: PLC0415 - cached in sys.modules after the first batch

    types = _numpy_types()
    out: Columns = {}
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        dtype = types.get(table.column(name).type)
        if dtype is not None and (dtype is np.float64 or None not in values):
            out[name] = np.array(values, dtype=dtype)
        else:
            out[name] = np.array(values, dtype=object)
    return out


def _select(table: Table, names: tuple[str, ...], source: str) -> str:
    """``SELECT`` list reading ``names`` from a registered NumPy batch, cast to the schema."""
    parts = []
    for name in names:
        col = table.column(name)
        if col.is_time:
            parts.append(f'make_timestamptz({source}."{name}"::BIGINT * 1000) AS "{name}"')
        else:
            parts.append(f'{source}."{name}"::{col.type} AS "{name}"')
    return ", ".join(parts)


LOCK_WARN_S = 2.0
"""A lock held longer than this (s) is logged as a WARNING; shorter waits at DEBUG."""


def connect_rw(
    path: Path, *, timeout_s: float = 600.0, sleep: Callable[[float], None] = time.sleep
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file read-write, retrying while another process holds the lock.

    Args:
        path: Database file (its directory is created if missing).
        timeout_s: Give up (raise) after this long; the sink passes a very long one.
        sleep: Injectable sleep for tests.

    Raises:
        duckdb.IOException: if the lock is still held after ``timeout_s``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    delay = 0.005
    waited = 0.0
    warned = False
    while True:
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or waited >= timeout_s:
                raise
            if waited == 0.0:
                log.debug("DuckDB file %s is locked by another process; retrying", path)
            elif not warned and waited >= LOCK_WARN_S:
                # a reader (the dashboard) holds the file for milliseconds: only a long
                # wait is worth a warning
                log.warning(
                    "DuckDB file %s is locked by another process for %.1f s; retrying "
                    "(is a program holding it open read-write, or a reader stuck?)",
                    path,
                    waited,
                )
                warned = True
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)  # a refused open costs ~3.5 ms: retry often
        else:
            if waited:
                level = logging.INFO if warned else logging.DEBUG
                log.log(level, "DuckDB file %s unlocked after %.2f s", path, waited)
            return con


def _time_param(table: Table, column: str) -> str:
    """A ``?`` placeholder, converting epoch ms for time columns."""
    return "make_timestamptz(?::BIGINT * 1000)" if table.column(column).is_time else "?"


class KeyExists(Exception):  # noqa: N818 - a condition, not a failure
    """A plain ``INSERT`` into ``table`` met a key already in the file (rolled back)."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


def write_frames(
    con: duckdb.DuckDBPyConnection, frames: Frames, plain: Collection[str] = ()
) -> None:
    """Write one flush in one transaction.

    Order: range retractions, key retractions, upserts (``INSERT OR REPLACE``), appends.
    Every SQL value is a parameter or a registered NumPy batch; table and column names
    come from :mod:`sinks.schema` only.

    Args:
        con: The read-write connection.
        frames: The flush.
        plain: Keyed tables to write with a plain ``INSERT`` (see :class:`InsertPlan`);
            if one of their keys is already in the file the whole transaction is
            rolled back and :class:`KeyExists` names the table.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        for name, prefix, from_ms in frames.ranges:
            table = TABLES[name]
            assert table.time_column is not None  # checked when buffered
            conds = [f'"{k}" = {_time_param(table, k)}' for k in table.key[: len(prefix)]]
            conds.append(f'"{table.time_column}" >= make_timestamptz(?::BIGINT * 1000)')
            sql = f"DELETE FROM {name} WHERE {' AND '.join(conds)}"  # noqa: S608
            con.execute(sql, [*prefix, from_ms])
        for name, keys in frames.deletes.items():
            table = TABLES[name]
            match = " AND ".join(f'{name}."{k}" = _gone."{k}"' for k in table.key)
            view = f"_gone_{name}"
            con.register(view, keys)  # replaced by the next one, as in _insert
            gone = f"(SELECT {_select(table, table.key, view)} FROM {view}) AS _gone"
            con.execute(f"DELETE FROM {name} USING {gone} WHERE {match}")  # noqa: S608
        for name, batch in frames.upserts.items():
            if name not in plain:
                _insert(con, "INSERT OR REPLACE INTO", TABLES[name], batch)
                continue
            try:
                _insert(con, "INSERT INTO", TABLES[name], batch)
            except duckdb.ConstraintException as exc:
                raise KeyExists(name) from exc
        for name, batch in frames.appends.items():
            _insert(con, "INSERT INTO", TABLES[name], batch)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@dataclass
class InsertPlan:
    """Which keyed tables a flush first tries with a plain ``INSERT``.

    Upserts are idempotent (``INSERT OR REPLACE``), but DuckDB pays for the replace
    even when no key exists: about twice a plain ``INSERT`` per row
    (``benchmarks/duckdb_insert.py``). Most flushes of a flow write new keys only, so
    every keyed table is tried plain; a flush that meets an existing key (an amended
    bar, a replay into a used file, a latest-value table such as ``strategy_stats``)
    is rolled back and redone with that table on ``INSERT OR REPLACE``, which it then
    stays on for ``backoff`` flushes, doubling (up to :data:`MAX_BACKOFF_FLUSHES`)
    while it keeps meeting keys. The rows written are the same either way.

    Attributes:
        flushes: Flushes planned so far.
        replace_until: Per table, the flush number up to which it is upserted.
        backoff: Per table, the current number of upsert-only flushes.
        redone: Flushes rolled back and redone (a statistic for tests and tuning).
    """

    flushes: int = 0
    replace_until: dict[str, int] = field(default_factory=dict)
    backoff: dict[str, int] = field(default_factory=dict)
    redone: int = 0

    def plain(self, frames: Frames) -> set[str]:
        """Start a flush: the keyed tables to try with a plain ``INSERT``."""
        self.flushes += 1
        return {n for n in frames.upserts if self.replace_until.get(n, 0) < self.flushes}

    def met_key(self, table: str) -> None:
        """``table`` met an existing key: upsert it for a while."""
        n = min(2 * self.backoff.get(table, 4), MAX_BACKOFF_FLUSHES)
        self.backoff[table] = n
        self.replace_until[table] = self.flushes + n
        self.redone += 1


MAX_BACKOFF_FLUSHES = 1024
"""The longest run of flushes a table that met existing keys stays on ``INSERT OR REPLACE``."""


def write_planned(con: duckdb.DuckDBPyConnection, frames: Frames, plan: InsertPlan) -> None:
    """:func:`write_frames` with ``plan``'s plain inserts, redone per table that met a key."""
    plain = plan.plain(frames)
    while True:
        try:
            write_frames(con, frames, plain)
            return
        except KeyExists as exc:
            plain.discard(exc.table)
            plan.met_key(exc.table)


def _insert(con: duckdb.DuckDBPyConnection, verb: str, table: Table, batch: Batch) -> None:
    """``verb`` (``INSERT [OR REPLACE] INTO``) one table's batch, cast to the schema.

    NumPy columns are registered and scanned; a small batch of rows is one ``VALUES``
    list of parameters (NaN becomes NULL, as DuckDB reads it from NumPy).
    """
    view = f"_pending_{table.name}"
    select = _select(table, table.names, view)
    head = f"{verb} {table.name} ({table.quoted()}) SELECT {select} FROM"
    if isinstance(batch, list):
        one = "(" + ", ".join("?" * len(table.names)) + ")"
        values = f"(VALUES {', '.join([one] * len(batch))}) AS {view}({table.quoted()})"
        params = [None if v != v else v for row in batch for v in row]  # noqa: PLR0124 - NaN
        con.execute(f"{head} {values}", params)
        return
    # Not unregistered: the next batch of the table replaces the view (registering is
    # transactional, and the connection is closed within HOLD_MAX_MS). Every call into
    # DuckDB waits for the GIL on its way out (see write_frames).
    con.register(view, batch)
    con.execute(f"{head} {view}")


HOLD_IDLE_MS = 50
"""The writer's connection is closed when no flush has followed for this long (ms)."""

HOLD_MAX_MS = 500
"""... and at the latest this long after it was opened, so readers get their turn (ms)."""


class HeldConnection:
    """The sink's read-write connection, kept open across flushes that follow closely.

    Opening a DuckDB file costs ~30 ms and closing it a checkpoint; a replay flushes
    many batches a second. The connection stays open while flushes follow within
    ``idle_ms`` of each other, and is closed (on a timer thread, under a lock) once
    they stop or ``max_ms`` after it was opened, whichever comes first. A reader
    (the dashboard) therefore waits at most ``max_ms`` plus one flush.

    Args:
        path: Database file.
        idle_ms: Close after this long without a flush.
        max_ms: Close after a flush once the connection has been open this long.
    """

    def __init__(self, path: Path, idle_ms: int = HOLD_IDLE_MS, max_ms: int = HOLD_MAX_MS) -> None:
        self.path = path
        self.idle_s = idle_ms / 1000
        self.max_s = max_ms / 1000
        self.opens = 0
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened_at = 0.0
        self._timer: threading.Timer | None = None

    @property
    def is_open(self) -> bool:
        """Whether the file is held right now (for tests)."""
        return self._con is not None

    def run(self, work: Callable[[duckdb.DuckDBPyConnection], None], timeout_s: float) -> None:
        """Run ``work`` on the open connection (opening it, waiting out a lock, if needed)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._con is None:
                self._con = connect_rw(self.path, timeout_s=timeout_s)
                self._opened_at = time.monotonic()
                self.opens += 1
            try:
                work(self._con)
            except BaseException:
                self._close_locked()
                raise
            if time.monotonic() - self._opened_at >= self.max_s:
                self._close_locked()
            else:
                self._timer = threading.Timer(self.idle_s, self._close_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():
                self._close_locked()

    def _close_locked(self) -> None:
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._timer = None
        if self._con is not None:
            con, self._con = self._con, None
            con.close()

    def close(self) -> None:
        """Close now (shutdown)."""
        with self._lock:
            self._close_locked()


MAX_PENDING_BATCHES = 4
"""While a write is in flight, up to this many batches of rows are buffered before the
flow waits for it (:class:`DuckDBPartition`)."""


class DuckDBPartition(StatefulSinkPartition[object, PendingRows]):
    """The single DuckDB writer partition.

    A flush that :meth:`write_batch` starts (enough rows or time) turns the pending
    rows into NumPy columns on the flow's thread and writes them on a writer thread
    (DuckDB releases the GIL while it inserts), so the flow goes on with the next
    batches meanwhile. At most one write is in flight, so flushes commit in order: a
    flush that comes due while it runs waits (its rows stay pending and the flow goes
    on) until it has committed and the next batch arrives, and only with
    ``max_pending_rows`` buffered does the flow itself wait. :meth:`snapshot` waits
    for the write in flight (what a snapshot leaves out must be committed),
    :meth:`flush` and :meth:`close` write synchronously. A failed write is raised by
    the next call into the partition (the flow stops one batch later than with a
    synchronous write, and a resumed flow rewrites what the last snapshot had not
    committed).

    Args:
        path: Database file.
        batch_rows: Flush when this many rows are waiting.
        flush_ms: ... or when this long has passed since the last flush.
        resume: Pending rows of a snapshot, written with the first flush.
        background: Write the flushes that ``write_batch`` starts on the writer
            thread (``False``: on the calling thread, as :meth:`flush` does).
        max_pending_rows: A flush that is due while a write is in flight waits (the
            rows stay pending, the flow goes on) until that write has committed, unless
            this many rows are pending: then the flow waits for the writer (bounded
            memory). Default :data:`MAX_PENDING_BATCHES` x ``batch_rows``.
    """

    def __init__(
        self,
        path: Path,
        batch_rows: int,
        flush_ms: int,
        resume: PendingRows | None,
        background: bool = True,
        max_pending_rows: int | None = None,
    ) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.flush_ms = flush_ms
        self.pending = resume if resume is not None else PendingRows()
        self.max_pending_rows = max_pending_rows or MAX_PENDING_BATCHES * batch_rows
        self.last_flush_ms = now_ms()
        self.flushes = 0
        self.plan = InsertPlan()
        self.held = HeldConnection(path)
        self.background = background
        self._writing: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._new_file = not path.exists()
        self.held.run(self._create_tables, timeout_s=600.0)

    def _create_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        for done in create_all(con, new_file=self._new_file):
            log.warning("DuckDB file %s migrated: %s", self.path, done)

    def write_batch(self, items: list[object]) -> None:
        """Buffer the items; flush if enough rows or time have accumulated.

        An item is a record or a ``list`` of records (the flow sends one list per
        batch, :func:`dataflow.build`), taken in order.
        """
        add = self.pending.add
        for item in items:
            if type(item) is list:
                for record in item:
                    add(record)
            else:
                add(item)
        n = len(self.pending)
        if n >= self.batch_rows or now_ms() - self.last_flush_ms >= self.flush_ms:
            writing = self._writing
            if writing is not None and writing.is_alive() and n < self.max_pending_rows:
                return  # the writer is busy: keep buffering, flush once it has committed
            self._start_flush(background=self.background)
        elif self._failed is not None:
            self.wait_written()  # raises the writer's error

    def flush(self) -> None:
        """Write everything pending, and wait for it (blocking while the file is locked)."""
        self._start_flush(background=False)

    def _start_flush(self, *, background: bool) -> None:
        """Turn the pending rows into one flush and write it (on the writer thread if asked).

        The write in flight, if any, commits first.
        """
        self.wait_written()
        self.last_flush_ms = now_ms()
        if not len(self.pending):
            return
        frames = self.pending.frames()
        self.flushes += 1
        if not background:
            self._write(frames)  # a failed write keeps its rows pending, for a retry
            self.pending = PendingRows()
            return
        self.pending = PendingRows()
        # not a daemon: an interpreter that exits (a crash elsewhere) lets it commit
        self._writing = threading.Thread(
            target=self._write_or_keep_error, args=(frames,), name="pairflow-duckdb-writer"
        )
        self._writing.start()

    def _write(self, frames: Frames) -> None:
        plan = self.plan  # only ever used by the one write running
        self.held.run(lambda con: write_planned(con, frames, plan), timeout_s=float("inf"))
        for table, n in frames.rows().items():  # only this write counts rows: no race
            COUNTS[f"rows:{table}"] += n

    def _write_or_keep_error(self, frames: Frames) -> None:
        try:
            self._write(frames)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow's thread
            self._failed = exc  # raised by the next call into the partition

    def wait_written(self) -> None:
        """Wait until the write in flight (if any) has committed.

        Raises:
            BaseException: what the writer thread's last write raised (once).
        """
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.join()
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def snapshot(self) -> PendingRows:
        """Unflushed rows, so a resumed flow writes them (after the write in flight commits)."""
        self.wait_written()
        return PendingRows(
            keyed={t: dict(r) for t, r in self.pending.keyed.items()},
            appended={t: list(r) for t, r in self.pending.appended.items()},
            ranges=list(self.pending.ranges),
        )

    def close(self) -> None:
        """Flush on shutdown and release the file."""
        try:
            self.flush()
        finally:
            self.held.close()


class DuckDBSink(FixedPartitionedSink[object, PendingRows]):
    """Writes the records registered in :mod:`sinks.schema`, and retractions.

    Upstream items must be ``(key, record)`` or ``(key, [record, ...])``; every key
    goes to the one partition.

    Args:
        path: DuckDB file.
        batch_rows: Flush when this many rows are waiting.
        flush_ms: ... or when this long has passed since the last flush.
    """

    def __init__(self, path: Path | str, batch_rows: int = 5000, flush_ms: int = 250) -> None:
        self.path = Path(path)
        self.batch_rows = batch_rows
        self.flush_ms = flush_ms

    def list_parts(self) -> list[str]:
        """A single partition: DuckDB has one writer."""
        return ["duckdb"]

    def part_fn(self, item_key: str) -> int:
        """Everything goes to partition 0."""
        return 0

    def build_part(
        self, step_id: str, for_part: str, resume_state: PendingRows | None
    ) -> DuckDBPartition:
        """Open (and create the tables of) the database file."""
        return DuckDBPartition(self.path, self.batch_rows, self.flush_ms, resume_state)
