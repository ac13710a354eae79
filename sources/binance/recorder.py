"""``PAIRFLOW_RECORD``: write every trade the live source emits to an NDJSON(.gz) file.

Each trade (live, backfilled, warm-up) becomes a combined-stream frame
(:func:`~sources.binance.wire.tick_frame`) in emission order, so ``replay:`` of the
file reproduces the live run's bars from trades. The file is flushed at least every
``record_flush_s`` (a gzip *sync* flush: everything written so far is readable even
if the process dies) and closed cleanly when the input ends (SIGTERM, EOF).
Aggregates (``count > 1``, from an ``aggTrades`` fallback) are written with their
``f``..``l`` range as ``"n": count`` in the frame, which the replay reads back.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
import zlib
from pathlib import Path
from typing import IO, cast

from pairflow.records import Tick
from sources.binance.wire import tick_frame

__all__ = ["TradeRecorder"]

logger = logging.getLogger("sources.binance")


class TradeRecorder:
    """Appends frames to a file (thread-safe; one per process, shared by shards).

    Args:
        path: ``.ndjson.gz`` (gzip) or ``.ndjson`` (plain text). Parent directories
            are created; an existing file is replaced.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._gz = self.path.suffix == ".gz"
        self._fh: IO[bytes] = cast(
            "IO[bytes]",
            gzip.open(self.path, "wb", compresslevel=6) if self._gz else open(self.path, "wb"),  # noqa: SIM115
        )
        self._lock = threading.Lock()
        self._dirty = False
        self._users = 0
        self.written = 0
        self.closed = False

    def attach(self) -> None:
        """One more shard writes here (closed when the last one detaches)."""
        with self._lock:
            self._users += 1

    def write(self, tick: Tick) -> None:
        """Write one emitted trade as a frame line."""
        line = tick_frame(tick)  # aggregates carry "n": count
        with self._lock:
            if self.closed:
                return
            self._fh.write(line.encode() + b"\n")
            self._dirty = True
            self.written += 1

    def flush(self) -> None:
        """Make everything written so far readable on disk."""
        with self._lock:
            if self.closed or not self._dirty:
                return
            if self._gz:
                self._fh.flush(zlib.Z_SYNC_FLUSH)  # type: ignore[call-arg]
            else:
                self._fh.flush()
            self._dirty = False

    async def flush_loop(self, every_s: float) -> None:
        """Flush every ``every_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            self.flush()

    def close(self) -> None:
        """Detach one shard; the last one flushes and closes the file."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or self.closed:
                return
            self.closed = True
            self._fh.close()
        logger.info("binance: recorded %d trades to %s", self.written, self.path)
