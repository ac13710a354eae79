"""What the parts of one shard share: its loop-side helpers and output buffer.

A shard (one partition of :class:`~sources.binance.BinanceSource`) runs one asyncio
loop in a background thread. Its jobs live in their own modules and all take the
shard's :class:`ShardRuntime`: :mod:`~sources.binance.connection` (connect, rotate,
watchdog, pump), :mod:`~sources.binance.backfill` (gaps and catch-ups from REST),
:mod:`~sources.binance.warmup` (history before the live stream), and
:mod:`~sources.binance.runner` (the thread, the loop, stats).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pairflow.records import SourceItem
from pairflow.shutdown import stop_requested
from sources.binance.rest import RestUnavailable
from sources.binance.sequencer import TradeSequencer
from sources.binance.tuning import BinanceTuning

__all__ = ["ShardRuntime"]

logger = logging.getLogger("sources.binance")


class ShardRuntime:
    """Loop-side state and helpers of one shard.

    Args:
        name: Log prefix and ``Stat`` component (``binance`` or ``binance-<i>``).
        symbols: Upper-case symbols of the shard.
        tuning: Timeouts and limits.
        clock: Monotonic clock in seconds (policy timing: backoff, budgets).
        wall_ms: Wall clock in epoch ms (stamps records, measures lag, warm start).
        sleep: Async sleep for policy waits (tests inject a fake), else interruptible.
        rng: Randomness of jitter.
        stop_event: External stop (the source's); SIGTERM stops too.
    """

    def __init__(
        self,
        *,
        name: str,
        symbols: Sequence[str],
        tuning: BinanceTuning,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[Any]] | None,
        rng: random.Random,
        stop_event: threading.Event | None,
    ) -> None:
        self.name = name
        self.symbols = tuple(symbols)
        self.t = tuning
        self.clock = clock
        self.wall_ms = wall_ms
        self.rng = rng
        self.out: deque[tuple[SourceItem, str | None, int | None]] = deque()
        self.seq = TradeSequencer(self.symbols, self.emit, source="binance", wall_ms=wall_ms)
        self._sleep_fn = sleep
        self._ext_stop = stop_event
        self.stop_flag = threading.Event()
        self.stop: asyncio.Event | None = None
        self.helpers: set[asyncio.Task[Any]] = set()
        self.backfills: set[asyncio.Task[Any]] = set()

    def emit(self, item: SourceItem, symbol: str | None, trade_id: int | None) -> None:
        """Append a record for Bytewax (``symbol``/``trade_id`` feed the snapshot)."""
        self.out.append((item, symbol, trade_id))

    def full(self) -> bool:
        """The Bytewax buffer (or the held ticks) reached ``max_buffer``."""
        return len(self.out) > self.t.max_buffer or self.seq.held_count() > self.t.max_buffer

    def stopping(self) -> bool:
        """True once the shard was asked to stop."""
        return self.stop is not None and self.stop.is_set()

    @staticmethod
    def now() -> float:
        """Loop time: times connection liveness, rotation and overlap (never faked)."""
        return asyncio.get_running_loop().time()

    async def pause(self, seconds: float) -> None:
        """Really sleep (whatever ``sleep`` was injected), returning early when stopping."""
        assert self.stop is not None
        try:
            await asyncio.wait_for(self.stop.wait(), max(seconds, 0.0))
        except asyncio.TimeoutError:
            pass

    async def sleep(self, seconds: float) -> None:
        """Policy wait (backoff, budgets): the injected ``sleep``, else :meth:`pause`."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
            return
        await self.pause(seconds)

    async def rest_sleep(self, seconds: float) -> None:
        """REST retry wait; aborts the request when the input stops."""
        await self.sleep(seconds)
        if self.stopping():
            msg = "input stopping"
            raise RestUnavailable(msg)

    async def room(self) -> None:
        """Back-pressure for REST pages: wait while Bytewax has a full buffer to drain."""
        while len(self.out) > self.t.max_buffer and not self.stopping():
            await asyncio.sleep(0.005)

    def spawn(self, coro: Awaitable[Any], pool: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task kept in ``pool`` (errors are logged, never lost)."""
        task = asyncio.ensure_future(coro)
        pool.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            pool.discard(task)
            if not task.cancelled() and task.exception() is not None:
                logger.error("%s: background task failed", self.name, exc_info=task.exception())

        task.add_done_callback(done)
        return task

    async def watch_stop(self) -> None:
        """Turn the thread-side stop signals into the loop's stop event."""
        assert self.stop is not None
        while not self.stop.is_set():
            if (
                self.stop_flag.is_set()
                or stop_requested()
                or (self._ext_stop is not None and self._ext_stop.is_set())
            ):
                self.stop.set()
                break
            await asyncio.sleep(0.05)
