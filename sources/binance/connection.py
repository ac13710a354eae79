"""WebSocket connections of one shard: connect, rotate, watchdog, pump.

Connection hygiene (Binance's WebSocket rules): pings are answered automatically
(websockets); a silent connection is probed with a ping and dropped when the pong
does not come (or when even pongs cannot save a stream silent for
``max_silence_s``); ``serverShutdown`` events and the 24-hour connection limit are
handled by opening a new connection *before* closing the old one
(make-before-break, deduplicated by trade id); our own messages stay under 5 per
second; connection attempts stay under 300 per 5 minutes per process; reconnects
use capped exponential backoff with full jitter (:mod:`pairflow.backoff`).

Frames are decoded as they arrive (:func:`~sources.binance.sequencer.classify_frame`).
The pump never stops reading: when the output buffer is full, live trades are
dropped (counted) and come back as a gap from REST, so control frames (pings,
pongs, close) keep flowing and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from pairflow.backoff import Backoff, ReconnectTracker, SlidingWindowLimiter
from sources.binance.runtime import ShardRuntime
from sources.binance.sequencer import classify_frame
from sources.binance.tuning import BinanceTuning

__all__ = ["CLOSE_CODES", "ConnectionManager", "stream_url"]

logger = logging.getLogger("sources.binance")

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


class ConnectionManager:
    """Keeps one shard connected (two connections for a moment while rotating).

    Args:
        rt: The shard's runtime.
        ws_base: WebSocket base URL.
        on_gap: Called with a symbol whose live trades just revealed a gap (the
            caller starts a backfill task).
        on_reconnect: Called after every (re)connect that needs a catch-up.
        on_overflow: Called with a symbol whose live trade was just dropped for a
            full buffer (the caller makes sure its tail is fetched even if the
            symbol goes quiet, see :meth:`Backfiller.after_overflow`).
    """

    def __init__(
        self,
        rt: ShardRuntime,
        ws_base: str,
        *,
        on_gap: Callable[[str], None],
        on_reconnect: Callable[[], None],
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        self.rt = rt
        self.ws_base = ws_base
        self.url = stream_url(ws_base, rt.symbols)
        self._on_gap = on_gap
        self._on_reconnect = on_reconnect
        self._on_overflow = on_overflow
        self.conns: set[_Conn] = set()
        self._numbers = 0
        self._attempts = _attempt_limiter(ws_base, rt.t)
        self.tracker = ReconnectTracker(
            rt.name,
            Backoff(rt.t.backoff_base_s, rt.t.backoff_cap_s, rng=rt.rng),
            stable_after_s=rt.t.stable_after_s,
            remind_every_s=rt.t.remind_every_s,
        )
        self.reconnects_total = 0
        self.rotations_total = 0
        self.connect_attempts_total = 0
        self.lag: list[int] = []

    def connected(self) -> bool:
        """A connection is open and being read."""
        return any(cn.task is not None and not cn.task.done() for cn in self.conns)

    def _short_url(self) -> str:
        return f"{self.ws_base}/stream ({len(self.rt.symbols)} trade streams)"

    async def supervise(self, *, need_catchup: bool) -> None:
        """Connect, serve, reconnect with backoff, until the shard stops."""
        rt = self.rt
        while not rt.stopping():
            conn = await self._connect_until_up()
            if conn is None:
                return
            if need_catchup:
                self._on_reconnect()
            ended = await self._serve(conn)
            if ended is None:
                return
            self.reconnects_total += 1
            decision = self.tracker.on_disconnected(rt.clock(), ended.reason)
            logger.log(decision.level, decision.message)
            need_catchup = True
            await rt.sleep(decision.delay_s)

    async def close_all(self) -> None:
        """Close every connection (stop)."""
        for conn in list(self.conns):
            await self._close(conn, "stopping")

    async def _try_connect(self) -> tuple[_Conn | None, str, float | None]:
        """One connection attempt (within the attempt budget).

        Returns:
            ``(conn, "", None)`` on success, else ``(None, error, retry_after_s)``.
        """
        rt = self.rt
        while True:
            wait = self._attempts.reserve(rt.clock())
            if wait == 0.0:
                break
            logger.warning(
                "%s: %d connection attempts in %.0f s used up; waiting %.1f s",
                rt.name,
                self._attempts.limit,
                self._attempts.window_s,
                wait,
            )
            await rt.sleep(wait)
            if rt.stopping():
                return None, "stopping", None
        self.connect_attempts_total += 1
        try:
            ws = await connect(
                self.url,
                open_timeout=rt.t.connect_timeout_s,
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
        now = rt.now()
        self._numbers += 1
        conn = _Conn(
            number=self._numbers,
            ws=ws,
            opened_at=now,
            rotate_due=now + rt.t.rotate_after_s,
            limiter=SlidingWindowLimiter(max(1, rt.t.max_msgs_per_s - 1), 1.0),
            last_message=now,
        )
        self.conns.add(conn)
        conn.task = asyncio.ensure_future(self._pump(conn))
        return conn, "", None

    async def _connect_until_up(self) -> _Conn | None:
        rt = self.rt
        while not rt.stopping():
            conn, error, retry_after = await self._try_connect()
            if conn is not None:
                decision = self.tracker.on_connected(rt.clock(), self._short_url())
                logger.log(decision.level, decision.message)
                return conn
            if rt.stopping():
                return None
            decision = self.tracker.on_connect_failed(rt.clock(), error, retry_after)
            logger.log(decision.level, decision.message)
            await rt.sleep(decision.delay_s)
        return None

    async def _serve(self, conn: _Conn) -> _Conn | None:
        """Serve ``conn``, rotating it when due; return the connection that was lost."""
        rt = self.rt
        assert rt.stop is not None
        while True:
            assert conn.task is not None
            stop_wait = asyncio.ensure_future(rt.stop.wait())
            wake_wait = asyncio.ensure_future(conn.wake.wait())
            timeout = max(conn.rotate_due - rt.now(), 0.0)
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
            if rt.stopping():
                return None
            if conn.task.done():
                return conn
            if rt.now() < conn.rotate_due:
                continue
            new = await self._rotate(conn)
            if new is None:
                if conn.task.done():
                    return conn
                conn.rotate_due = rt.now() + self.tracker.backoff.delay(2)
                continue
            conn = new

    async def _rotate(self, old: _Conn) -> _Conn | None:
        """Open a new connection, overlap, then close ``old`` (make-before-break)."""
        rt = self.rt
        logger.info(
            "%s: replacing connection #%d (age %.0f s): opening the new one first",
            rt.name,
            old.number,
            rt.now() - old.opened_at,
        )
        new, error, _ = await self._try_connect()
        if new is None:
            if not rt.stopping():
                logger.warning("%s: could not open the replacement (%s)", rt.name, error)
            return None
        try:
            await asyncio.wait_for(new.first_message.wait(), rt.t.max_overlap_wait_s)
        except asyncio.TimeoutError:
            pass
        await rt.pause(rt.t.overlap_s)
        if old.task is not None and old.task.done():
            # the old one died during the overlap: anything it missed is found by id
            self._on_reconnect()
        await self._close(old, "replaced")
        self.rotations_total += 1
        self.tracker.connected_at = rt.clock()
        logger.info("%s: connection #%d replaced by #%d", rt.name, old.number, new.number)
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
        self.conns.discard(conn)

    async def _probe(self, conn: _Conn) -> bool:
        """Ping a silent connection; True if the pong came back in time."""
        while True:
            wait = conn.limiter.reserve(self.rt.now())
            if wait == 0.0:
                break
            await asyncio.sleep(wait)
        try:
            pong = await conn.ws.ping()
            await asyncio.wait_for(pong, self.rt.t.ping_timeout_s)
        except (asyncio.TimeoutError, ConnectionClosed):
            return False
        return True

    async def _watchdog(self, conn: _Conn) -> None:
        """Declare ``conn`` dead after silence without pong, or after ``max_silence_s``."""
        rt = self.rt
        t = rt.t
        while True:
            quiet = rt.now() - conn.last_message
            if quiet < t.silence_timeout_s:
                await asyncio.sleep(t.silence_timeout_s - quiet)
                continue
            alive = await self._probe(conn)
            quiet = rt.now() - conn.last_message
            if quiet < t.silence_timeout_s:
                continue  # a message arrived meanwhile
            if not alive:
                conn.dead_reason = (
                    f"no message for {quiet:.1f} s and no pong within {t.ping_timeout_s:g} s"
                )
            elif quiet >= t.max_silence_s:
                conn.dead_reason = f"no message for {quiet:.1f} s although pongs arrive"
            else:
                logger.debug("%s: quiet for %.1f s but the pong came back", rt.name, quiet)
                await asyncio.sleep(min(t.silence_timeout_s, t.max_silence_s - quiet))
                continue
            transport = conn.ws.transport
            if transport is not None:
                transport.abort()  # a dead peer would not answer a closing handshake
            return

    async def _pump(self, conn: _Conn) -> None:
        """Read ``conn`` until it ends (never pausing); sets ``conn.reason``."""
        ws = conn.ws
        rt = self.rt
        watchdog = asyncio.ensure_future(self._watchdog(conn))
        try:
            while True:
                raw = await ws.recv()
                arrival = rt.wall_ms()
                conn.last_message = rt.now()
                conn.messages += 1
                if conn.messages == 1:
                    conn.first_message.set()
                self._handle(conn, raw, arrival)
                if conn.messages % 256 == 0:
                    await asyncio.sleep(0)  # let other tasks (and Bytewax's drain) run
        except ConnectionClosed as exc:
            conn.reason = conn.dead_reason or _close_reason(exc)
        finally:
            watchdog.cancel()
            if not conn.closed_by_us and conn.dead_reason is None:
                try:
                    await asyncio.wait_for(ws.close(), 2.0)
                except (asyncio.TimeoutError, OSError, WebSocketException):
                    pass
            self.conns.discard(conn)

    def _handle(self, conn: _Conn, raw: str | bytes, arrival_ms: int) -> None:
        rt = self.rt
        info = classify_frame(raw, rt.seq.symbols)
        if info.kind == "trade":
            tick = info.tick
            assert tick is not None
            if len(self.lag) < 1_000_000:
                self.lag.append(arrival_ms - tick.trade_time_ms)
            if rt.full():
                rt.seq.overflow(tick)  # dropped, counted; the next trade shows the gap
                if self._on_overflow is not None:
                    self._on_overflow(tick.symbol)  # ... or a catch-up, if none comes
                return
            if rt.seq.on_trade(tick):
                self._on_gap(tick.symbol)
        elif info.kind == "shutdown":
            logger.warning(
                "%s: serverShutdown on connection #%d; replacing it now", rt.name, conn.number
            )
            conn.rotate_due = rt.now()
            conn.wake.set()
        else:
            rt.seq.reject(raw, info.reason)
