"""Read-only access to the flow's DuckDB file: open with lock retry, errors, catalog.

The database is opened read-only for one refresh and closed at once, so the flow
(the only writer, which opens the file per flush) is never kept out for long. When
the writer holds the lock, :func:`connect_readonly` retries with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from sinks.schema import TABLES

LOCK_MARKERS = ("could not set lock", "conflicting lock")


class DashboardDataError(Exception):
    """The data cannot be read right now; ``str(exc)`` is a message for the user."""


class DatabaseMissingError(DashboardDataError):
    """The DuckDB file does not exist yet (the flow has not run)."""


class DatabaseLockedError(DashboardDataError):
    """Another process holds the DuckDB write lock longer than the retry budget."""


class DatabaseUnreadableError(DashboardDataError):
    """The file exists but DuckDB cannot open it (not a DuckDB file, wrong version...)."""


class SchemaMissingError(DashboardDataError):
    """The file has no pairflow tables yet."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in LOCK_MARKERS)


def _connect_once(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:  # pragma: no cover - ICU is bundled with the wheel
        pass
    return con


def connect_readonly(
    path: str | Path,
    *,
    timeout_s: float = 2.0,
    first_delay_s: float = 0.02,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file read-only, retrying while a writer holds the lock.

    Args:
        path: The DuckDB file.
        timeout_s: Give up after about this long.
        first_delay_s: First backoff; doubles up to 0.25 s (a flush of the flow
            holds the lock for tens of milliseconds, so short retries win).
        sleep: Sleep function (tests pass a fake).

    Returns:
        An open read-only connection with ``TimeZone = 'UTC'``. Close it soon.

    Raises:
        DatabaseMissingError: the file does not exist.
        DatabaseLockedError: still locked after ``timeout_s``.
        DatabaseUnreadableError: DuckDB cannot open the file for another reason.
    """
    path = Path(path)
    if not path.exists():
        msg = f"No database at {path} yet."
        raise DatabaseMissingError(msg)
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return _connect_once(path)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                if not path.exists():
                    msg = f"No database at {path} yet."
                    raise DatabaseMissingError(msg) from exc
                msg = f"Cannot open {path} as a DuckDB database: {exc}"
                raise DatabaseUnreadableError(msg) from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = (
                    f"{path} is locked by another process (the flow writes to it); "
                    f"gave up after {attempts} tries in {timeout_s:.1f} s."
                )
                raise DatabaseLockedError(msg) from exc
            sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)


@contextmanager
def open_readonly(path: str | Path, **kwargs: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`connect_readonly` that always closes.

    Catalog errors (a table missing) become :class:`SchemaMissingError`.
    """
    con = connect_readonly(path, **kwargs)
    try:
        yield con
    except duckdb.CatalogException as exc:
        msg = f"{path} has no pairflow tables yet ({exc})."
        raise SchemaMissingError(msg) from exc
    finally:
        con.close()


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the pairflow tables present in the database."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
    ).fetchall()
    return {r[0] for r in rows} & set(TABLES)


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (files written before a migration may not)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(row and row[0])


def ms_to_time(values: pd.Series) -> pd.Series:
    """Epoch milliseconds to aware-UTC timestamps (the vectorised ``timeutil.ms_to_dt``)."""
    return pd.to_datetime(values.astype("int64"), unit="ms", utc=True)
