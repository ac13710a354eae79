"""DuckDB sink: one partition, batched, idempotent upserts.

All table writes of the flow go through this single partition (DuckDB allows one
read-write process at a time). Rows are buffered and flushed when ``batch_rows`` are
waiting or ``flush_ms`` have passed since the last flush, and on shutdown. Each flush
opens the file, writes every table in one transaction, and closes it again, so the
dashboard can open the file read-only in between. Keyed tables are deduplicated in
the buffer (last write wins) and written with ``INSERT OR REPLACE``; replaying the
same input therefore leaves the same rows. If the file is locked by another process
the flush retries with capped exponential backoff and never drops a batch.

Unflushed rows are part of the partition's recovery snapshot, so a crash between
an epoch's end and the next flush loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from pairflow.records import AnalyticsRow, Bar, Gap, Reject, ScanRow, Signal, Stat
from pairflow.summary import COUNTS
from pairflow.timeutil import now_ms
from sinks.schema import TABLE_COLUMNS, UPSERT_TABLES, create_all

log = logging.getLogger(__name__)

_TIME_COLUMNS = {
    "bars": "open_time",
    "analytics": "ts",
    "signals": "ts",
    "rejects": "received_at",
    "pipeline_stats": "ts",
    "gaps": "detected_at",
    "scan": "ts",
}


def _row(item: object) -> tuple[str, tuple[Any, ...], tuple[Any, ...] | None]:
    """Map a record to ``(table, row, key)``; ``key`` is None for append-only tables."""
    if isinstance(item, Bar):
        row = (
            item.symbol, item.tf, item.open_time_ms, item.open, item.high, item.low,
            item.close, item.volume, item.quote_volume, item.vwap, item.trades,
            item.taker_buy_volume, item.first_trade_id, item.last_trade_id,
        )  # fmt: skip
        return "bars", row, row[:3]
    if isinstance(item, AnalyticsRow):
        row = (
            item.pair, item.tf, item.ts_ms, item.window, item.y_close, item.x_close,
            item.alpha, item.beta, item.spread, item.zscore, item.corr, item.adf_pvalue,
            item.eg_pvalue, item.half_life, item.y_filled, item.x_filled, item.spread_std,
        )  # fmt: skip
        return "analytics", row, row[:3]
    if isinstance(item, Signal):
        row = (item.pair, item.tf, item.ts_ms, item.kind, item.zscore)
        return "signals", row, row[:4]
    if isinstance(item, Reject):
        return "rejects", (item.received_at_ms, item.source, item.reason, item.raw), None
    if isinstance(item, Stat):
        row = (item.ts_ms, item.component, item.metric, float(item.value))
        return "pipeline_stats", row, row[:3]
    if isinstance(item, Gap):
        row = (
            item.symbol, item.from_trade_id, item.to_trade_id, item.detected_at_ms,
            item.status, item.filled,
        )  # fmt: skip
        return "gaps", row, row[:2]
    if isinstance(item, ScanRow):
        row = (
            item.tf, item.ts_ms, item.pair, item.eg_pvalue, item.eg_qvalue, item.adf_pvalue,
            item.half_life, item.beta, item.corr, item.zscore, item.rank,
        )  # fmt: skip
        return "scan", row, row[:3]
    msg = f"DuckDB sink got an unsupported record: {type(item).__name__}"
    raise TypeError(msg)


@dataclass
class PendingRows:
    """Rows waiting for the next flush (also the partition's recovery state).

    Attributes:
        keyed: Per upsert table, rows by primary key (last write wins).
        appended: Per append-only table, rows in arrival order.
    """

    keyed: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=dict)
    appended: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for v in self.keyed.values()) + sum(
            len(v) for v in self.appended.values()
        )

    def add(self, item: object) -> None:
        """Buffer one record."""
        table, row, key = _row(item)
        if key is None:
            self.appended.setdefault(table, []).append(row)
        else:
            self.keyed.setdefault(table, {})[key] = row

    def frames(self) -> dict[str, pd.DataFrame]:
        """One DataFrame per table, times converted to aware UTC."""
        out: dict[str, pd.DataFrame] = {}
        tables = {t: list(rows.values()) for t, rows in self.keyed.items()}
        tables.update(self.appended)
        for table, rows in tables.items():
            if not rows:
                continue
            df = pd.DataFrame.from_records(rows, columns=list(TABLE_COLUMNS[table]))
            col = _TIME_COLUMNS[table]
            df[col] = pd.to_datetime(df[col].astype("int64"), unit="ms", utc=True)
            out[table] = df
        return out


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
            if not warned:
                log.warning("DuckDB file %s is locked by another process; retrying", path)
                warned = True
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)  # a refused open costs ~3.5 ms: retry often
        else:
            if warned:
                log.info("DuckDB file %s unlocked after %.2f s", path, waited)
            return con


def write_frames(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Write buffered frames in one transaction (upsert keyed tables, append the rest)."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table, df in frames.items():
            cols = ", ".join(f'"{c}"' for c in TABLE_COLUMNS[table])
            verb = "INSERT OR REPLACE INTO" if table in UPSERT_TABLES else "INSERT INTO"
            con.register("_pending", df)
            con.execute(f"{verb} {table} ({cols}) SELECT {cols} FROM _pending")  # noqa: S608
            con.unregister("_pending")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class DuckDBPartition(StatefulSinkPartition[object, PendingRows]):
    """The single DuckDB writer partition."""

    def __init__(
        self,
        path: Path,
        batch_rows: int,
        flush_ms: int,
        resume: PendingRows | None,
    ) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.flush_ms = flush_ms
        self.pending = resume if resume is not None else PendingRows()
        self.last_flush_ms = now_ms()
        self.flushes = 0
        con = connect_rw(path)
        try:
            create_all(con)
        finally:
            con.close()

    def write_batch(self, items: list[object]) -> None:
        """Buffer the items; flush if enough rows or time have accumulated."""
        for item in items:
            self.pending.add(item)
        if len(self.pending) >= self.batch_rows or now_ms() - self.last_flush_ms >= self.flush_ms:
            self.flush()

    def flush(self) -> None:
        """Write everything pending (blocking while the file is locked)."""
        self.last_flush_ms = now_ms()
        if not len(self.pending):
            return
        frames = self.pending.frames()
        con = connect_rw(self.path, timeout_s=float("inf"))
        try:
            write_frames(con, frames)
        finally:
            con.close()
        for table, df in frames.items():
            COUNTS[f"rows:{table}"] += len(df)
        self.pending = PendingRows()
        self.flushes += 1

    def snapshot(self) -> PendingRows:
        """Unflushed rows, so a resumed flow writes them."""
        return PendingRows(
            keyed={t: dict(r) for t, r in self.pending.keyed.items()},
            appended={t: list(r) for t, r in self.pending.appended.items()},
        )

    def close(self) -> None:
        """Flush on shutdown."""
        self.flush()


class DuckDBSink(FixedPartitionedSink[object, PendingRows]):
    """Writes ``Bar``/``AnalyticsRow``/``Signal``/``Reject``/``Stat``/``Gap`` records.

    Upstream items must be ``(key, record)``; every key goes to the one partition.

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
