"""Live Binance spot trades as a Bytewax input.

:class:`BinanceSource` is a :class:`~bytewax.inputs.FixedPartitionedSource` over
Binance *combined streams* (``{ws}/stream?streams=btcusdt@trade/ethusdt@trade``).
The symbols are cut into shards of at most ``streams_per_connection`` streams
(Binance allows 1024 per connection); each shard is one partition, served by one
WebSocket connection (two for a moment while it rotates) that runs in a background
thread with its own asyncio loop. ``next_batch`` only drains an in-memory buffer, so
it never blocks; ``next_awake`` paces polling of an idle shard (no busy loop).

Items emitted (see ``docs/live-mode.md``):

- raw combined-stream frames (``str``), exactly as received, for the parse step;
  REST-backfilled trades are frames in the same envelope;
- :class:`~pairflow.records.Gap` records (``open`` → ``filled`` / ``unfilled``);
- :class:`~pairflow.records.Stat` records every ``stats_every_s`` (component
  ``binance``, or ``binance-<shard>`` when there are several shards).

Guarantees per symbol: strictly increasing trade ids, no duplicates, and no holes
as long as REST backfill works (see :mod:`sources.binance.sequencer` and
:mod:`sources.binance.rest`); a hole REST cannot fill becomes a ``Gap`` with status
``unfilled``. Backfill uses ``GET /api/v3/historicalTrades`` by ``fromId``, not
``aggTrades``: aggregate trades merge the fills of one taker order under their own
ids, so the missing trade ids, trade counts and per-trade sizes could not be
reproduced and the bars would differ from those built from the live stream.

A fresh start begins with the first trades that arrive after connecting; a resumed
flow (recovery snapshot = last trade id per symbol) first backfills what it missed.

Connection hygiene: Binance's pings are answered automatically (websockets); a
silent connection is probed with a ping and dropped when the pong does not come
(or when even pongs cannot save a stream silent for ``max_silence_s``);
``serverShutdown`` events and the 24-hour connection limit are handled by opening
a new connection *before* closing the old one (make-before-break, deduplicated by
trade id); our own messages stay under 5 per second; connection attempts stay
under 300 per 5 minutes per process; reconnects use capped exponential backoff
with full jitter (:mod:`pairflow.backoff`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from pairflow.backoff import Backoff, ReconnectTracker, SlidingWindowLimiter
from pairflow.config import ConfigError, Settings
from pairflow.records import Gap, Stat
from pairflow.shutdown import stop_requested
from pairflow.timeutil import now_ms
from sources.binance.rest import HistoricalTradesClient, RestUnavailable, rest_gate
from sources.binance.sequencer import TradeSequencer, classify_frame
from sources.binance.wire import decode_frames
from sources.registry import BinanceConfig

__all__ = ["MAX_STREAMS_PER_CONNECTION", "BinanceSource", "BinanceTuning", "stream_url"]

logger = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
"""Binance's limit of streams on one combined-stream connection."""

CLOSE_CODES: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1006: "abnormal closure",
    1008: "policy violation (too many messages?)",
    1011: "internal server error",
    1012: "service restart",
    1013: "try again later",
}

_ATTEMPT_LIMITERS: dict[str, SlidingWindowLimiter] = {}
_ATTEMPT_LIMITERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class BinanceTuning:
    """Timeouts and limits of the live input. Defaults suit production.

    Tests shrink them; operators may override any of them with
    ``PAIRFLOW_BINANCE_TUNING="silence_timeout_s=60,rotate_after_s=43200"``.

    Attributes:
        silence_timeout_s: Probe a connection with a ping after this long without a
            message (quiet markets exist, so silence alone is not death).
        ping_timeout_s: ... and drop it if the pong does not come within this.
        max_silence_s: Drop a connection silent this long even if pongs arrive
            (a stalled stream); the reconnect backfills anything missed.
        rotate_after_s: Replace a connection after this age (Binance cuts at 24 h).
        overlap_s: When rotating, keep the old connection this long after the new
            one delivered its first message (both feed the dedupe).
        max_overlap_wait_s: ... waiting at most this long for that first message.
        connect_timeout_s: WebSocket opening handshake timeout.
        backoff_base_s: First reconnect delay ceiling (full jitter below it).
        backoff_cap_s: Largest reconnect delay ceiling.
        stable_after_s: A connection up this long resets the backoff.
        remind_every_s: While unreachable, repeat a warning this often.
        max_conn_attempts: Connection attempts allowed per ``conn_attempt_window_s``
            in this process (Binance: 300 per 5 minutes per IP).
        conn_attempt_window_s: Window of that limit.
        max_msgs_per_s: Messages we may send per second and connection (Binance: 5).
            One slot is left to the automatic pong replies.
        rest_limit: Trades per ``historicalTrades`` request (max 1000).
        rest_weight_per_min: REST weight budget of this process per host.
        rest_give_up_s: A backfill request failing this long marks the gap unfilled.
        rest_timeout_s: Timeout of one REST request.
        rest_empty_retries: Re-ask this often when REST does not have a gap's
            trades yet (replication lag) before calling them unfillable.
        max_backfill_trades: Larger gaps are recorded ``unfilled`` without REST.
        catchup_delay_s: After a reconnect, symbols that stayed silent this long are
            caught up from REST (a quiet symbol would otherwise reveal a gap only at
            its next trade).
        max_buffer: Frames buffered for Bytewax before reading pauses.
        max_batch: Largest batch returned by ``next_batch``.
        poll_interval_s: ``next_awake`` delay of an idle partition.
        stop_grace_s: On stop, let running backfills finish this long.
    """

    silence_timeout_s: float = 30.0
    ping_timeout_s: float = 10.0
    max_silence_s: float = 300.0
    rotate_after_s: float = 23 * 3600.0
    overlap_s: float = 2.0
    max_overlap_wait_s: float = 10.0
    connect_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stable_after_s: float = 60.0
    remind_every_s: float = 60.0
    max_conn_attempts: int = 300
    conn_attempt_window_s: float = 300.0
    max_msgs_per_s: int = 5
    rest_limit: int = 1000
    rest_weight_per_min: float = 2400.0
    rest_give_up_s: float = 60.0
    rest_timeout_s: float = 10.0
    rest_empty_retries: int = 3
    max_backfill_trades: int = 200_000
    catchup_delay_s: float = 3.0
    max_buffer: int = 100_000
    max_batch: int = 5_000
    poll_interval_s: float = 0.02
    stop_grace_s: float = 2.0

    @classmethod
    def parse(cls, text: str, base: BinanceTuning | None = None) -> BinanceTuning:
        """Parse ``key=value,key=value`` overrides (``PAIRFLOW_BINANCE_TUNING``).

        Raises:
            ConfigError: on an unknown key or a value that is not a positive number.
        """
        base = base or cls()
        kinds = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in kinds:
                msg = (
                    f"PAIRFLOW_BINANCE_TUNING: {item.strip()!r} is not KEY=VALUE with KEY one of "
                    f"{', '.join(sorted(kinds))}"
                )
                raise ConfigError(msg)
            try:
                number = int(value) if kinds[key] in ("int", int) else float(value)
            except ValueError:
                number = math.nan
            if not (number > 0) or math.isinf(number):
                msg = f"PAIRFLOW_BINANCE_TUNING: {key} must be a positive number, got {value!r}"
                raise ConfigError(msg)
            changes[key] = number
        return replace(base, **changes)


def stream_url(ws_base: str, symbols: Sequence[str]) -> str:
    """Combined-stream URL of the ``@trade`` streams of ``symbols`` (lower-case names)."""
    streams = "/".join(f"{s.lower()}@trade" for s in symbols)
    return f"{ws_base.rstrip('/')}/stream?streams={streams}"


def _attempt_limiter(ws_base: str, tuning: BinanceTuning) -> SlidingWindowLimiter:
    """Process-wide connection-attempt limiter of one WebSocket host."""
    with _ATTEMPT_LIMITERS_LOCK:
        lim = _ATTEMPT_LIMITERS.get(ws_base)
        if lim is None or (lim.limit, lim.window_s) != (
            tuning.max_conn_attempts,
            tuning.conn_attempt_window_s,
        ):
            lim = SlidingWindowLimiter(tuning.max_conn_attempts, tuning.conn_attempt_window_s)
            _ATTEMPT_LIMITERS[ws_base] = lim
        return lim


def _close_reason(exc: ConnectionClosed) -> str:
    """Human-readable reason of a closed connection."""
    frame = exc.rcvd
    if frame is None:
        return "connection dropped without a close frame (1006)"
    text = f"server closed it with code {frame.code} ({CLOSE_CODES.get(frame.code, 'unknown')})"
    if frame.reason:
        text += f": {frame.reason!r}"
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} on the WebSocket handshake"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass(eq=False)
class _Conn:
    """One open WebSocket connection of a shard."""

    number: int
    ws: ClientConnection
    opened_at: float
    rotate_due: float
    limiter: SlidingWindowLimiter
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    first_message: asyncio.Event = field(default_factory=asyncio.Event)
    last_message: float = 0.0
    task: asyncio.Task[None] | None = None
    reason: str = "closed"
    dead_reason: str | None = None
    closed_by_us: bool = False
    messages: int = 0


class _ShardRunner:
    """Owns one shard: a thread running an asyncio loop with WS + REST clients."""

    def __init__(
        self,
        *,
        name: str,
        symbols: Sequence[str],
        ws_base: str,
        rest_base: str,
        tuning: BinanceTuning,
        stats_every_s: float,
        resume: Mapping[str, int] | None,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[Any]] | None,
        rng: random.Random,
        api_key: str | None,
        stop_event: threading.Event | None,
    ) -> None:
        self.name = name
        self.symbols = tuple(symbols)
        self.ws_base = ws_base
        self.url = stream_url(ws_base, self.symbols)
        self.rest_base = rest_base
        self.t = tuning
        self.stats_every_s = stats_every_s
        self.out: deque[tuple[object, str | None, int | None]] = deque()
        self.seq = TradeSequencer(self.symbols, self._emit)
        self.resumed = bool(resume)
        if resume:
            self.seq.resume(resume)
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep_fn = sleep
        self._rng = rng
        self._api_key = api_key
        self._ext_stop = stop_event
        self._stop_flag = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._thread_main, name=f"pairflow-{name}", daemon=True
        )
        # loop-side state (touched only from the runner's thread)
        self._stop: asyncio.Event | None = None
        self._conns: set[_Conn] = set()
        self._backfills: set[asyncio.Task[None]] = set()
        self._catchup_waiting: set[str] = set()
        self._helpers: set[asyncio.Task[Any]] = set()
        self._conn_numbers = 0
        self._rest: HistoricalTradesClient | None = None
        self._attempts = _attempt_limiter(ws_base, tuning)
        self._tracker = ReconnectTracker(
            name,
            Backoff(tuning.backoff_base_s, tuning.backoff_cap_s, rng=rng),
            stable_after_s=tuning.stable_after_s,
            remind_every_s=tuning.remind_every_s,
        )
        self.reconnects_total = 0
        self.rotations_total = 0
        self.connect_attempts_total = 0
        self._lag: list[int] = []
        self._stats_at = clock()
        self._ticks_at_stats = 0

    # ----- thread side (called from Bytewax's thread) -----------------------------

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to close connections and finish (returns at once)."""
        self._stop_flag.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to Bytewax by next_batch
            self.error = exc
            logger.exception("%s: live input crashed", self.name)
        finally:
            self.finished.set()

    # ----- loop side ----------------------------------------------------------------

    def _emit(self, item: object, symbol: str | None, trade_id: int | None) -> None:
        self.out.append((item, symbol, trade_id))

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    @staticmethod
    def _now() -> float:
        """Loop time: times connection liveness, rotation and overlap (never faked)."""
        return asyncio.get_running_loop().time()

    async def _pause(self, seconds: float) -> None:
        """Really sleep (whatever ``sleep`` was injected), returning early when stopping."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), max(seconds, 0.0))
        except asyncio.TimeoutError:
            pass

    async def _sleep(self, seconds: float) -> None:
        """Policy wait (backoff, budgets): the injected ``sleep``, else :meth:`_pause`."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
            return
        await self._pause(seconds)

    async def _rest_sleep(self, seconds: float) -> None:
        """REST retry wait; aborts the request when the input stops."""
        await self._sleep(seconds)
        if self._stopping():
            msg = "input stopping"
            raise RestUnavailable(msg)

    def _spawn(self, coro: Awaitable[Any], pool: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        pool.add(task)
        task.add_done_callback(self._task_done(pool))
        return task

    def _task_done(self, pool: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            pool.discard(task)
            if not task.cancelled() and task.exception() is not None:
                logger.error("%s: background task failed", self.name, exc_info=task.exception())

        return done

    async def _watch_stop(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            if (
                self._stop_flag.is_set()
                or stop_requested()
                or (self._ext_stop is not None and self._ext_stop.is_set())
            ):
                self._stop.set()
                break
            await asyncio.sleep(0.05)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._spawn(self._watch_stop(), self._helpers)
        self._stats_at = self._clock()
        headers = {"User-Agent": "pairflow-live/0.1"}
        async with aiohttp.ClientSession(headers=headers, trust_env=True) as session:
            self._rest = HistoricalTradesClient(
                self.rest_base,
                session,
                rest_gate(self.rest_base, self.t.rest_weight_per_min),
                give_up_s=self.t.rest_give_up_s,
                timeout_s=self.t.rest_timeout_s,
                backoff=Backoff(0.25, 5.0, rng=self._rng),
                clock=self._clock,
                sleep=self._rest_sleep,
                api_key=self._api_key,
                name=self.name,
            )
            self._spawn(self._stats_loop(), self._helpers)
            try:
                await self._supervise()
            finally:
                await self._shutdown()
                self._emit_stats()
                for task in list(self._helpers):
                    task.cancel()

    async def _shutdown(self) -> None:
        for conn in list(self._conns):
            await self._close(conn, "stopping")
        if self._backfills:
            await asyncio.wait(set(self._backfills), timeout=self.t.stop_grace_s)
        for task in list(self._backfills):
            task.cancel()
        if self._backfills:
            await asyncio.wait(set(self._backfills), timeout=1.0)
        logger.info(
            "%s: stopped (%d trades, %d backfilled, %d reconnects)",
            self.name,
            self.seq.counters.ticks_total,
            self.seq.counters.trades_backfilled_total,
            self.reconnects_total,
        )

    # ----- connections ----------------------------------------------------------------

    def _short_url(self) -> str:
        return f"{self.ws_base}/stream ({len(self.symbols)} trade streams)"

    async def _try_connect(self) -> tuple[_Conn | None, str, float | None]:
        """One connection attempt (within the attempt budget).

        Returns:
            ``(conn, "", None)`` on success, else ``(None, error, retry_after_s)``.
        """
        while True:
            wait = self._attempts.reserve(self._clock())
            if wait == 0.0:
                break
            logger.warning(
                "%s: %d connection attempts in %.0f s used up; waiting %.1f s",
                self.name,
                self._attempts.limit,
                self._attempts.window_s,
                wait,
            )
            await self._sleep(wait)
            if self._stopping():
                return None, "stopping", None
        self.connect_attempts_total += 1
        try:
            ws = await connect(
                self.url,
                open_timeout=self.t.connect_timeout_s,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=2.0,
                max_size=2**22,
                user_agent_header="pairflow-live/0.1",
            )
        except InvalidURI:
            raise
        except InvalidStatus as exc:
            retry_after = None
            value = exc.response.headers.get("Retry-After")
            if value is not None:
                try:
                    retry_after = float(value)
                except ValueError:
                    retry_after = None
            return None, _describe(exc), retry_after
        except (OSError, asyncio.TimeoutError, EOFError, WebSocketException) as exc:
            return None, _describe(exc), None
        now = self._now()
        self._conn_numbers += 1
        conn = _Conn(
            number=self._conn_numbers,
            ws=ws,
            opened_at=now,
            rotate_due=now + self.t.rotate_after_s,
            limiter=SlidingWindowLimiter(max(1, self.t.max_msgs_per_s - 1), 1.0),
            last_message=now,
        )
        self._conns.add(conn)
        conn.task = asyncio.ensure_future(self._pump(conn))
        return conn, "", None

    async def _connect_until_up(self) -> _Conn | None:
        while not self._stopping():
            conn, error, retry_after = await self._try_connect()
            if conn is not None:
                decision = self._tracker.on_connected(self._clock(), self._short_url())
                logger.log(decision.level, decision.message)
                return conn
            if self._stopping():
                return None
            decision = self._tracker.on_connect_failed(self._clock(), error, retry_after)
            logger.log(decision.level, decision.message)
            await self._sleep(decision.delay_s)
        return None

    async def _supervise(self) -> None:
        need_catchup = self.resumed
        while not self._stopping():
            conn = await self._connect_until_up()
            if conn is None:
                return
            if need_catchup:
                self._schedule_catchup()
            ended = await self._serve(conn)
            if ended is None:
                return
            self.reconnects_total += 1
            decision = self._tracker.on_disconnected(self._clock(), ended.reason)
            logger.log(decision.level, decision.message)
            need_catchup = True
            await self._sleep(decision.delay_s)

    async def _serve(self, conn: _Conn) -> _Conn | None:
        """Serve ``conn``, rotating it when due; return the connection that was lost."""
        assert self._stop is not None
        while True:
            assert conn.task is not None
            stop_wait = asyncio.ensure_future(self._stop.wait())
            wake_wait = asyncio.ensure_future(conn.wake.wait())
            timeout = max(conn.rotate_due - self._now(), 0.0)
            try:
                await asyncio.wait(
                    {conn.task, stop_wait, wake_wait},
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stop_wait.cancel()
                wake_wait.cancel()
            conn.wake.clear()
            if self._stopping():
                return None
            if conn.task.done():
                return conn
            if self._now() < conn.rotate_due:
                continue
            new = await self._rotate(conn)
            if new is None:
                if conn.task.done():
                    return conn
                conn.rotate_due = self._now() + self._tracker.backoff.delay(2)
                continue
            conn = new

    async def _rotate(self, old: _Conn) -> _Conn | None:
        """Open a new connection, overlap, then close ``old`` (make-before-break)."""
        logger.info(
            "%s: replacing connection #%d (age %.0f s): opening the new one first",
            self.name,
            old.number,
            self._now() - old.opened_at,
        )
        new, error, _ = await self._try_connect()
        if new is None:
            if not self._stopping():
                logger.warning("%s: could not open the replacement (%s)", self.name, error)
            return None
        try:
            await asyncio.wait_for(new.first_message.wait(), self.t.max_overlap_wait_s)
        except asyncio.TimeoutError:
            pass
        await self._pause(self.t.overlap_s)
        if old.task is not None and old.task.done():
            # the old one died during the overlap: anything it missed is found by id
            self._schedule_catchup()
        await self._close(old, "replaced")
        self.rotations_total += 1
        self._tracker.connected_at = self._clock()
        logger.info("%s: connection #%d replaced by #%d", self.name, old.number, new.number)
        return new

    async def _close(self, conn: _Conn, why: str) -> None:
        conn.closed_by_us = True
        try:
            await asyncio.wait_for(conn.ws.close(1000, why), 3.0)
        except (asyncio.TimeoutError, OSError, WebSocketException):
            pass
        if conn.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(conn.task), 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                conn.task.cancel()
        self._conns.discard(conn)

    async def _probe(self, conn: _Conn) -> bool:
        """Ping a silent connection; True if the pong came back in time."""
        while True:
            wait = conn.limiter.reserve(self._now())
            if wait == 0.0:
                break
            await asyncio.sleep(wait)
        try:
            pong = await conn.ws.ping()
            await asyncio.wait_for(pong, self.t.ping_timeout_s)
        except (asyncio.TimeoutError, ConnectionClosed):
            return False
        return True

    async def _watchdog(self, conn: _Conn) -> None:
        """Declare ``conn`` dead after silence without pong, or after ``max_silence_s``."""
        t = self.t
        while True:
            quiet = self._now() - conn.last_message
            if quiet < t.silence_timeout_s:
                await asyncio.sleep(t.silence_timeout_s - quiet)
                continue
            alive = await self._probe(conn)
            quiet = self._now() - conn.last_message
            if quiet < t.silence_timeout_s:
                continue  # a message arrived meanwhile
            if not alive:
                conn.dead_reason = (
                    f"no message for {quiet:.1f} s and no pong within {t.ping_timeout_s:g} s"
                )
            elif quiet >= t.max_silence_s:
                conn.dead_reason = f"no message for {quiet:.1f} s although pongs arrive"
            else:
                logger.debug("%s: quiet for %.1f s but the pong came back", self.name, quiet)
                await asyncio.sleep(min(t.silence_timeout_s, t.max_silence_s - quiet))
                continue
            transport = conn.ws.transport
            if transport is not None:
                transport.abort()  # a dead peer would not answer a closing handshake
            return

    async def _pump(self, conn: _Conn) -> None:
        """Read ``conn`` until it ends; sets ``conn.reason``."""
        ws = conn.ws
        watchdog = asyncio.ensure_future(self._watchdog(conn))
        try:
            while True:
                raw = await ws.recv()
                arrival = self._wall_ms()
                conn.last_message = self._now()
                conn.messages += 1
                if conn.messages == 1:
                    conn.first_message.set()
                self._handle(conn, raw, arrival)
                if len(self.out) > self.t.max_buffer:
                    await self._room()
        except ConnectionClosed as exc:
            conn.reason = conn.dead_reason or _close_reason(exc)
        finally:
            watchdog.cancel()
            if not conn.closed_by_us and conn.dead_reason is None:
                try:
                    await asyncio.wait_for(ws.close(), 2.0)
                except (asyncio.TimeoutError, OSError, WebSocketException):
                    pass
            self._conns.discard(conn)

    def _handle(self, conn: _Conn, raw: str | bytes, arrival_ms: int) -> None:
        info = classify_frame(raw, self.seq.symbols)
        if info.kind == "trade":
            assert info.symbol is not None and info.trade_id is not None
            if len(self._lag) < 1_000_000:
                self._lag.append(arrival_ms - (info.trade_time_ms or arrival_ms))
            if self.seq.on_trade(info.symbol, info.trade_id, raw):
                self._spawn(self._backfill(info.symbol, open_ended=False), self._backfills)
        elif info.kind == "shutdown":
            logger.warning(
                "%s: serverShutdown on connection #%d; replacing it now", self.name, conn.number
            )
            conn.rotate_due = self._now()
            conn.wake.set()
        else:
            self.seq.passthrough(raw)

    async def _room(self) -> None:
        """Back-pressure: wait while Bytewax has a full buffer to drain."""
        while len(self.out) > self.t.max_buffer and not self._stopping():
            await asyncio.sleep(0.005)

    # ----- backfill -------------------------------------------------------------------

    def _schedule_catchup(self) -> None:
        self._catchup_waiting.clear()
        for st in self.seq.states.values():
            if st.last_id is not None:
                st.catchup_due = True
        self._spawn(self._catchup_later(), self._helpers)

    async def _catchup_later(self) -> None:
        await self._pause(self.t.catchup_delay_s)
        if self._stopping():
            return
        for sym, st in self.seq.states.items():
            if not st.catchup_due:
                continue
            if self.seq.claim(sym):
                st.catchup_due = False
                self._spawn(self._backfill(sym, open_ended=True), self._backfills)
            else:
                # a backfill owns it: that task catches up when its gaps are done
                self._catchup_waiting.add(sym)

    async def _backfill(self, symbol: str, *, open_ended: bool) -> None:
        """Own ``symbol`` until its held frames are contiguous again."""
        try:
            while not self._stopping():
                self.seq.drain(symbol)
                gap = self.seq.next_gap(symbol)
                if gap is not None:
                    await self._fill_gap(symbol, *gap)
                elif open_ended or (
                    symbol in self._catchup_waiting and self.seq.states[symbol].catchup_due
                ):
                    open_ended = False
                    self._catchup_waiting.discard(symbol)
                    self.seq.states[symbol].catchup_due = False
                    await self._catch_up(symbol)
                else:
                    break
        finally:
            self.seq.release(symbol)

    async def _fetch_nonempty(self, symbol: str, from_id: int, limit: int) -> list[dict[str, Any]]:
        """Fetch a page, re-asking a few times if REST does not have it yet."""
        assert self._rest is not None
        for attempt in range(self.t.rest_empty_retries + 1):
            rows = await self._rest.fetch(symbol, from_id, limit)
            if any(r["id"] >= from_id for r in rows) or self._stopping():
                return rows
            if attempt < self.t.rest_empty_retries:
                await self._pause(0.5)
        return []

    async def _fill_gap(self, symbol: str, lo: int, hi: int) -> None:
        size = hi - lo + 1
        counters = self.seq.counters
        counters.gaps_found_total += 1
        detected = self._wall_ms()
        self._emit(Gap(symbol, lo, hi, detected, "open", 0), None, None)
        logger.info("%s: %s gap %d..%d (%d trades); backfilling", self.name, symbol, lo, hi, size)
        started = self._clock()
        filled = 0
        problem = ""
        if size > self.t.max_backfill_trades:
            problem = f"larger than max_backfill_trades={self.t.max_backfill_trades}"
        else:
            cur = lo
            try:
                while cur <= hi and not self._stopping():
                    rows = await self._fetch_nonempty(
                        symbol, cur, min(self.t.rest_limit, hi - cur + 1)
                    )
                    rows = [r for r in rows if cur <= r["id"] <= hi]
                    if not rows:
                        problem = f"REST has no trades from id {cur}"
                        break
                    for row in rows:
                        if self.seq.emit_backfilled(symbol, row):
                            filled += 1
                    cur = rows[-1]["id"] + 1
                    await self._room()
            except RestUnavailable as exc:
                problem = str(exc)
            if self._stopping() and cur <= hi:
                # not a loss: the snapshot holds the last id emitted, a resumed flow
                # backfills from there; the gap row stays "open"
                logger.info(
                    "%s: %s gap %d..%d left open at stop (%d trades recovered)",
                    self.name,
                    symbol,
                    lo,
                    hi,
                    filled,
                )
                return
        self.seq.skip_to(symbol, hi)
        status = "filled" if filled == size else "unfilled"
        if status == "filled":
            counters.gaps_filled_total += 1
            logger.info(
                "%s: %s gap %d..%d filled (%d trades in %.2f s)",
                self.name,
                symbol,
                lo,
                hi,
                filled,
                self._clock() - started,
            )
        else:
            counters.gaps_unfilled_total += 1
            logger.warning(
                "%s: %s gap %d..%d NOT filled: %d of %d trades recovered (%s)",
                self.name,
                symbol,
                lo,
                hi,
                filled,
                size,
                problem or "incomplete REST answer",
            )
        self._emit(Gap(symbol, lo, hi, detected, status, filled), None, None)

    async def _catch_up(self, symbol: str) -> None:
        """Ask REST what happened since the last trade (open-ended, after a reconnect)."""
        assert self._rest is not None
        st = self.seq.states[symbol]
        if st.last_id is None:
            return
        lo = st.last_id + 1
        cur = lo
        got = 0
        detected = self._wall_ms()
        try:
            while not self._stopping() and got < self.t.max_backfill_trades:
                rows = await self._rest.fetch(symbol, cur, self.t.rest_limit)
                bound = self.seq.upper_bound(symbol)
                fresh = [r for r in rows if r["id"] >= cur and (bound is None or r["id"] <= bound)]
                for row in fresh:
                    if self.seq.emit_backfilled(symbol, row):
                        got += 1
                if fresh:
                    cur = fresh[-1]["id"] + 1
                if len(rows) < self.t.rest_limit or not fresh:
                    break
                await self._room()
        except RestUnavailable as exc:
            logger.warning(
                "%s: %s catch-up after reconnect failed (%s); its next trade will show the gap",
                self.name,
                symbol,
                exc,
            )
        if got:
            counters = self.seq.counters
            counters.gaps_found_total += 1
            status = "filled" if got == cur - lo else "unfilled"
            if status == "filled":
                counters.gaps_filled_total += 1
            else:
                counters.gaps_unfilled_total += 1
            logger.info(
                "%s: %s caught up %d..%d from REST (%d trades)", self.name, symbol, lo, cur - 1, got
            )
            self._emit(Gap(symbol, lo, cur - 1, detected, status, got), None, None)

    # ----- stats ------------------------------------------------------------------------

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_every_s)
            self._emit_stats()

    def _emit_stats(self) -> None:
        now = self._clock()
        ts = self._wall_ms()
        c = self.seq.counters
        elapsed = now - self._stats_at
        rate = (c.ticks_total - self._ticks_at_stats) / elapsed if elapsed > 0 else 0.0
        self._stats_at = now
        self._ticks_at_stats = c.ticks_total
        connected = any(cn.task is not None and not cn.task.done() for cn in self._conns)
        metrics: dict[str, float] = {
            "ticks_per_s": rate,
            "ticks_total": c.ticks_total,
            "reconnects_total": self.reconnects_total,
            "gaps_found_total": c.gaps_found_total,
            "gaps_filled_total": c.gaps_filled_total,
            "gaps_unfilled_total": c.gaps_unfilled_total,
            "trades_backfilled_total": c.trades_backfilled_total,
            "duplicates_dropped_total": c.duplicates_dropped_total,
            "frames_passed_through_total": c.passed_through_total,
            "rotations_total": self.rotations_total,
            "connect_attempts_total": self.connect_attempts_total,
            "rest_requests_total": self._rest.requests_total if self._rest else 0,
            "held_frames": self.seq.held_count(),
            "connected": 1.0 if connected else 0.0,
        }
        if self._lag:
            lag = sorted(self._lag)
            metrics["lag_p50_ms"] = _percentile(lag, 0.50)
            metrics["lag_p99_ms"] = _percentile(lag, 0.99)
            self._lag = []
        component = self.name
        for metric, value in metrics.items():
            self._emit(Stat(ts, component, metric, float(value)), None, None)


class _BinancePartition(StatefulSourcePartition[object, dict[str, int]]):
    """Bytewax side of a shard: drains the runner's buffer without blocking."""

    def __init__(self, runner: _ShardRunner, resume: Mapping[str, int] | None) -> None:
        self._runner = runner
        self._symbols = frozenset(runner.symbols)
        self._last: dict[str, int] = dict(resume or {})
        self._poll = timedelta(seconds=runner.t.poll_interval_s)
        self._max_batch = runner.t.max_batch
        self._idle = False

    def next_batch(self) -> list[object]:
        """Return what arrived since the last call (possibly nothing)."""
        runner = self._runner
        finished = runner.finished.is_set()
        out = runner.out
        batch: list[object] = []
        last = self._last
        for _ in range(min(len(out), self._max_batch)):
            item, sym, tid = out.popleft()
            batch.append(item)
            if sym is not None and tid is not None:
                last[sym] = tid
        if batch:
            # The edge: Binance frames become typed records here (Tick | Reject,
            # the source's own Gap/Stat records pass through).
            batch = decode_frames(batch, self._symbols, "binance", runner._wall_ms())  # noqa: SLF001
        if not batch and finished:
            if runner.error is not None:
                msg = f"{runner.name}: live input crashed"
                raise RuntimeError(msg) from runner.error
            raise StopIteration
        self._idle = not batch
        return batch

    def next_awake(self) -> datetime | None:
        """Poll again at once while data flows, else after ``poll_interval_s``."""
        if self._idle:
            return datetime.now(timezone.utc) + self._poll
        return None

    def snapshot(self) -> dict[str, int]:
        """Last trade id emitted per symbol (a resumed flow backfills after it)."""
        return dict(self._last)

    def close(self) -> None:
        """Stop the shard's thread."""
        self._runner.request_stop()
        self._runner.join(10.0)


class BinanceSource(FixedPartitionedSource[object, dict[str, int]]):
    """Live Binance spot ``@trade`` streams; one partition per connection shard.

    Args:
        settings: Take symbols, URLs, ``streams_per_connection`` and
            ``stats_every_s`` from here (explicit arguments win).
        symbols: Symbols to subscribe to (any case).
        ws_url: WebSocket base URL, e.g. ``wss://stream.binance.com:9443`` or the
            market-data-only ``wss://data-stream.binance.vision``.
        rest_url: REST base URL, e.g. ``https://api.binance.com`` or the
            market-data-only ``https://data-api.binance.vision``.
        streams_per_connection: Streams per connection (at most 1024).
        stats_every_s: Period of the ``Stat`` records.
        tuning: Timeouts and limits; default :class:`BinanceTuning` with
            ``$PAIRFLOW_BINANCE_TUNING`` overrides applied.
        api_key: Optional ``X-MBX-APIKEY`` for REST (default
            ``$PAIRFLOW_BINANCE_API_KEY``; not needed for public market data).
        clock: Monotonic clock in seconds (inject for tests).
        wall_ms: Wall clock in epoch ms (stamps ``Stat``/``Gap``, measures lag).
        sleep: Async sleep used for backoff waits (inject a fake to test the
            reconnect loop without waiting; default: an interruptible sleep).
        rng: Randomness of the backoff jitter.
        stop_event: When set, every partition ends (Bytewax then sees EOF). The
            process-wide :func:`pairflow.shutdown.request_stop` (SIGTERM in
            ``python dataflow.py``) does the same.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        symbols: Sequence[str] | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        streams_per_connection: int | None = None,
        stats_every_s: float | None = None,
        tuning: BinanceTuning | None = None,
        api_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        rng: random.Random | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        base = settings or Settings()
        cfg = base.source if isinstance(base.source, BinanceConfig) else BinanceConfig()
        syms = tuple(s.strip().upper() for s in (symbols or base.symbols) if s.strip())
        if not syms:
            msg = "BinanceSource needs at least one symbol"
            raise ConfigError(msg)
        self.symbols = syms
        self.ws_url = (ws_url or cfg.ws).rstrip("/")
        self.rest_url = (rest_url or cfg.rest).rstrip("/")
        spc = streams_per_connection or cfg.streams_per_connection
        self.streams_per_connection = max(1, min(int(spc), MAX_STREAMS_PER_CONNECTION))
        self.stats_every_s = float(stats_every_s or base.stats_every_s)
        self.tuning = tuning if tuning is not None else BinanceTuning.parse(cfg.tuning)
        self._api_key = api_key or cfg.api_key
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._stop_event = stop_event or threading.Event()
        n = self.streams_per_connection
        self.shards: list[tuple[str, ...]] = [syms[i : i + n] for i in range(0, len(syms), n)]
        self._runners: list[_ShardRunner] = []

    def _part_name(self, index: int) -> str:
        return "binance" if len(self.shards) == 1 else f"binance-{index}"

    def list_parts(self) -> list[str]:
        """One partition per connection shard: ``binance-0``, ``binance-1``..."""
        return [f"binance-{i}" for i in range(len(self.shards))]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, int] | None
    ) -> _BinancePartition:
        """Start the shard's connection thread (resuming after ``resume_state``)."""
        index = int(for_part.rsplit("-", 1)[1])
        resume = {
            s: int(v)
            for s, v in (resume_state or {}).items()
            if s in self.shards[index] and isinstance(v, int)
        }
        runner = _ShardRunner(
            name=self._part_name(index),
            symbols=self.shards[index],
            ws_base=self.ws_url,
            rest_base=self.rest_url,
            tuning=self.tuning,
            stats_every_s=self.stats_every_s,
            resume=resume or None,
            clock=self._clock,
            wall_ms=self._wall_ms,
            sleep=self._sleep,
            rng=self._rng,
            api_key=self._api_key,
            stop_event=self._stop_event,
        )
        if resume:
            logger.info(
                "%s: resuming after trade ids %s; backfilling what was missed",
                runner.name,
                resume,
            )
        self._runners.append(runner)
        runner.start()
        return _BinancePartition(runner, resume)

    def stop(self) -> None:
        """End the input gracefully: partitions drain their buffers, then EOF.

        Safe to call from any thread or a signal handler.
        """
        self._stop_event.set()
