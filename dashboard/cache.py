"""Downsampling buckets kept between refreshes (process-wide, thread-safe)."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from pairflow.timeutil import dt_to_ms, ms_to_dt

CACHE_MAX_AGE_S = 60.0
"""A cached set of buckets is re-read in full after this long (catches REST backfills)."""

CACHE_REQUERY = timedelta(minutes=10)
"""Buckets this close to the newest bar are always re-read (late ticks amend bars up
to 5 minutes back; 5m bars then change too)."""


@dataclass
class _Buckets:
    frame: pd.DataFrame
    through_ms: int
    first_ms: int
    made_at: float
    file_id: tuple[int, int]


class BucketCache:
    """Complete downsampling buckets kept between refreshes (process-wide, thread-safe).

    A long view (7 days in 10-minute buckets) then re-reads only its last few
    buckets on each refresh instead of every row. An entry is re-read in full after
    :data:`CACHE_MAX_AGE_S`, and dropped when the file is replaced.
    """

    def __init__(self, max_age_s: float = CACHE_MAX_AGE_S, max_entries: int = 64) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], _Buckets] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def read(
        self,
        key: tuple[Any, ...],
        file_id: tuple[int, int],
        lo_ms: int,
        end_ms: int,
        bucket_ms: int,
        query: Callable[[int], pd.DataFrame],
    ) -> pd.DataFrame:
        """Buckets ``t_ms`` in ``[lo_ms, end_ms]``: cached ones plus ``query(from_ms)``.

        Args:
            key: What is bucketed (kind, pair or legs, timeframe, bucket).
            file_id: ``(st_dev, st_ino)`` of the database file.
            lo_ms: First bucket of the view (bucket-aligned).
            end_ms: The view's end (the newest bar's open time).
            bucket_ms: Bucket length.
            query: Reads the buckets from ``from_ms`` (aligned) to ``end_ms``; returns a
                frame with a ``t_ms`` column.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        usable = (
            hit is not None
            and hit.file_id == file_id
            and now - hit.made_at < self.max_age_s
            and hit.first_ms <= lo_ms
            and hit.through_ms <= end_ms + bucket_ms
        )
        if usable:
            assert hit is not None
            margin = math.ceil(CACHE_REQUERY.total_seconds() * 1000 / bucket_ms) * bucket_ms
            from_ms = max(lo_ms, hit.through_ms - margin)
            head = hit.frame[(hit.frame["t_ms"] >= lo_ms) & (hit.frame["t_ms"] < from_ms)]
            tail = query(from_ms)
            frame = pd.concat([head, tail], ignore_index=True) if len(head) else tail
            made_at, first_ms = hit.made_at, hit.first_ms
            self.hits += 1
        else:
            frame = query(lo_ms)
            made_at, first_ms = now, lo_ms
            self.misses += 1
        through = (end_ms // bucket_ms) * bucket_ms  # the last bucket may still grow
        entry = _Buckets(frame[frame["t_ms"] < through], through, first_ms, made_at, file_id)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return frame


BUCKETS = BucketCache()
"""The process-wide cache used by :func:`load_view` for downsampled views."""


def file_id(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the connection's database file, or None (in memory)."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchall()
    for (path,) in rows:
        if path:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_dev, st.st_ino)
    return None


def bucketed(
    file_id: tuple[int, int] | None,
    key: tuple[Any, ...],
    lo: datetime,
    end: datetime,
    bucket_s: int,
    downsampled: bool,
    query: Callable[[datetime], pd.DataFrame],
) -> pd.DataFrame:
    """Run ``query(from)`` for ``[lo, end]``, through :data:`BUCKETS` when worthwhile.

    ``file_id`` None means no caching (in-memory database or caching off).
    """
    if file_id is None or not downsampled:
        return query(lo)
    return BUCKETS.read(
        (*key, bucket_s),
        file_id,
        dt_to_ms(lo),
        dt_to_ms(end),
        bucket_s * 1000,
        lambda from_ms: query(ms_to_dt(from_ms)),
    )
