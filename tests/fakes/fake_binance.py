"""A fake Binance spot exchange on 127.0.0.1 for tests and offline demos.

It replays a recording of combined-stream frames (the shared NDJSON(.gz) format)
as a *live market*: a single timeline advances at ``speed`` times real time (or as
fast as connected clients read, ``speed=None``), and every connected WebSocket
client receives the trades of its streams as they "happen". Trades that happen
while a client is disconnected are gone for that client, exactly like the real
thing; REST ``historicalTrades`` serves every trade that has happened so far, by id.

Endpoints (one aiohttp server, one ephemeral port):

- ``GET /stream?streams=btcusdt@trade/ethusdt@trade`` — WebSocket combined streams.
- ``GET /api/v3/historicalTrades?symbol=&fromId=&limit=`` — REST rows shaped like
  Binance's: ``{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}``.
- ``GET /api/v3/ping`` (``{}``) and ``GET /api/v3/time`` (``{"serverTime": ms}``).

Fault injection (:class:`Faults`): drop each connection every N messages (close
frame or TCP abort), stall (silence, with or without pongs) for S seconds,
malformed frames, ``serverShutdown`` events, server pings that must be ponged,
refused handshakes for the first K attempts, a maximum connection age (the 24-hour
cut), REST 429 with ``Retry-After`` and a dead REST. It also *checks* the client:
client messages per second per connection (Binance allows 5) and pongs.

Time modes: ``recorded`` sends the recorded lines byte for byte; ``live`` stamps
each trade with the wall-clock time at which it happens (``T`` = now, ``E`` keeps
its recorded offset), so a flow sees fresh trades. ``loop`` replays forever with
ids shifted per pass (for demos).

Standalone::

    python -m tests.fakes.fake_binance --port 0 --speed 10

prints the ``PAIRFLOW_BINANCE_WS`` / ``PAIRFLOW_BINANCE_REST`` values to use.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import gzip
import itertools
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

__all__ = ["FakeBinance", "Faults", "load_frames"]

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
FRAMES_DIR = HERE.parent / "data" / "frames"
SHARED_RECORDING = (
    HERE.parents[2] / "shared" / "data" / "binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)
MALFORMED: tuple[str, ...] = (
    "this is not json",
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":',
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":"1.0","q":"1.0"}}',
    '{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"ETHUSDT","t":"12","p":"1.0",'
    '"q":"1.0","T":1,"m":true,"M":true}}',
    '{"stream":"xrpusdt@trade","data":{"e":"trade","E":1,"s":"XRPUSDT","t":5,"p":"1.0",'
    '"q":"1.0","T":1,"m":true,"M":true}}',
    "[1,2,3]",
)
"""Frames a faulty stream may carry (none has a valid id of a subscribed symbol)."""

MARKET_DATA_ONLY = frozenset({"aggTrades", "klines", "exchangeInfo", "ping", "time", "trades"})
"""REST endpoints of ``data-api.binance.vision`` used here (no ``historicalTrades``)."""
API_BINANCE_COM = None
"""``api*.binance.com``: every endpoint."""
REST_WEIGHTS = {
    "historicalTrades": 25,
    "aggTrades": 4,
    "klines": 2,
    "exchangeInfo": 20,
    "ping": 1,
    "time": 1,
}
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}


@dataclass
class Faults:
    """What the fake does wrong, and what it checks. All off by default.

    Counters ``every``/``after`` count trade messages sent on one connection.

    Attributes:
        drop_every: Drop a connection after this many messages.
        drop_mode: ``close`` (a close frame with ``drop_code``) or ``abort`` (TCP
            connection torn down, no close frame).
        drop_code: Close code of ``close`` drops.
        max_drops: Stop dropping after this many (``None``: no limit).
        stall_after: A connection goes silent after this many messages ...
        stall_s: ... for this long (trades of that time are lost to it).
        stall_answers_pings: Whether a stalled connection still answers pings.
        max_stalls: Stop stalling after this many.
        malformed_every: Send a malformed frame after every N messages.
        shutdown_after: Send a ``serverShutdown`` event after N messages ...
        shutdown_grace_s: ... and close the connection (1001) this much later.
        max_shutdowns: Stop after this many shutdown events.
        ping_interval_s: Ping every connection this often (Binance: 20 s; 0 = off).
        pong_timeout_s: Close a connection whose pong is this late (Binance: 60 s).
        refuse_first: Refuse the first K WebSocket handshakes ...
        refuse_status: ... with this HTTP status ...
        refuse_retry_after_s: ... and this ``Retry-After`` (``None``: no header).
        max_conn_age_s: Close connections older than this with 1001 (the 24 h cut).
        rest_429_every: Answer every Nth ``historicalTrades`` request with 429.
        rest_retry_after_s: ``Retry-After`` of those 429s.
        rest_fail: Answer every ``historicalTrades`` request with 503.
        rest_delay_s: Delay of every REST answer.
        max_client_msgs_per_s: Client messages per second and connection allowed.
        enforce_msg_limit: Close a connection (1008) that sends more.
        rest_endpoints: REST endpoints served (``None``: all). The market-data-only
            host profile (``data-api.binance.vision``) is :data:`MARKET_DATA_ONLY`.
            Others answer 404 like a host that does not serve them.
        rest_403_every: Answer every Nth REST request with 403 (a WAF refusal) ...
        rest_403_retry_after_s: ... with this ``Retry-After`` (``None``: none, as a
            real WAF; the client then pauses its default).
        rest_418_for_s: Ban the IP (418 with ``Retry-After``) for this long from the
            first REST request on.
        other_weight_1m: Weight other processes on "this IP" spend every minute
            (added to ``X-MBX-USED-WEIGHT-1M``).
        halted: Symbols ``exchangeInfo`` reports as ``HALT``.
    """

    drop_every: int = 0
    drop_mode: str = "close"
    drop_code: int = 1001
    max_drops: int | None = None
    stall_after: int = 0
    stall_s: float = 0.0
    stall_answers_pings: bool = False
    max_stalls: int | None = None
    malformed_every: int = 0
    shutdown_after: int = 0
    shutdown_grace_s: float = 1.0
    max_shutdowns: int | None = None
    ping_interval_s: float = 0.0
    pong_timeout_s: float = 60.0
    refuse_first: int = 0
    refuse_status: int = 503
    refuse_retry_after_s: float | None = None
    max_conn_age_s: float = 0.0
    rest_429_every: int = 0
    rest_retry_after_s: float = 1.0
    rest_fail: bool = False
    rest_delay_s: float = 0.0
    max_client_msgs_per_s: int = 5
    enforce_msg_limit: bool = True
    rest_endpoints: frozenset[str] | None = None
    rest_403_every: int = 0
    rest_403_retry_after_s: float | None = None
    rest_418_for_s: float = 0.0
    other_weight_1m: int = 0
    halted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Rec:
    """One recorded trade (or an unparseable line, ``symbol`` None)."""

    raw: str
    stream: str
    symbol: str | None
    data: dict[str, Any] | None


@dataclass
class _Happened:
    """The trades of one symbol that have happened, for REST and for checks."""

    ids: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Conn:
    """Server side of one client connection."""

    number: int
    ws: web.WebSocketResponse
    request: web.Request
    streams: frozenset[str]
    opened_at: float
    queue: asyncio.Queue[tuple[str, str, int]] = field(default_factory=asyncio.Queue)
    sent: int = 0
    stalled_until: float = 0.0
    last_pong: float = 0.0
    pings_sent: int = 0
    pongs: int = 0
    client_msgs: collections.deque[float] = field(default_factory=collections.deque)
    closed: bool = False
    close_reason: str = ""


def load_frames(path: Path | str) -> list[str]:
    """Lines of an NDJSON(.gz) recording, without line ends, skipping blank ones."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def _parse(raw: str) -> _Rec:
    try:
        obj = orjson.loads(raw)
        data = obj["data"]
        return _Rec(raw, obj["stream"], data["s"], data)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _Rec(raw, "", None, None)


def _quote_qty(price: str, qty: str) -> str:
    return f"{(Decimal(price) * Decimal(qty)).quantize(Decimal('0.00000001'))}"


class FakeBinance:
    """The fake exchange. Use :meth:`start_in_thread` from sync tests.

    Args:
        frames: Recorded lines (or a path to a recording).
        speed: Timeline speed (``None``: as fast as the connected clients read; the
            timeline then waits while no client is connected).
        faults: Fault injection and client checks.
        time_mode: ``recorded`` (send lines byte for byte) or ``live`` (stamp trades
            with the wall clock when they happen).
        start: ``connect`` (the timeline starts at the first WebSocket connection),
            ``now`` (at server start) or ``manual`` (:meth:`begin`).
        loop: Replay forever (ids and times shifted per pass).
        history_until_ms: Trades with ``T`` before this have already happened when
            the server starts (REST serves them: the warm start's history); the
            timeline plays the rest, ``T - history_until_ms`` after the start
            (divided by ``speed``). Use with ``time_mode="recorded"``.
        host: Interface to bind (only 127.0.0.1 is sensible here).
        port: Port (0: an ephemeral one).
    """

    def __init__(
        self,
        frames: Sequence[str] | Path | str,
        *,
        speed: float | None = None,
        faults: Faults | None = None,
        time_mode: str = "recorded",
        start: str = "connect",
        loop: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        history_until_ms: int | None = None,
    ) -> None:
        lines = load_frames(frames) if isinstance(frames, (str, Path)) else list(frames)
        if time_mode not in ("recorded", "live") or start not in ("connect", "now", "manual"):
            msg = f"bad time_mode={time_mode!r} or start={start!r}"
            raise ValueError(msg)
        self.records = [_parse(line) for line in lines]
        self.trades = [r for r in self.records if r.data is not None]
        self.speed = speed
        self.faults = faults or Faults()
        self.time_mode = time_mode
        self.start_mode = start
        self.loop_forever = loop
        self.host = host
        self.port = port
        self.happened: dict[str, _Happened] = collections.defaultdict(_Happened)
        self.delivered: dict[str, set[int]] = collections.defaultdict(set)
        self.conns: set[_Conn] = set()
        self.done = threading.Event()
        self.counters: collections.Counter[str] = collections.Counter()
        self.max_client_msgs_per_s = 0
        self.conn_log: list[dict[str, Any]] = []
        self._started: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._timeline_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn_numbers = itertools.count(1)
        self._last_live_ms = 0
        self._id_span = self._span_of_ids()
        times = [r.data["T"] for r in self.trades if r.data is not None]
        self._t_first = min(times) if times else 0
        self._t_span = (max(times) - self._t_first + 1000) if times else 1000
        self.history_until_ms = history_until_ms
        self._weight_minute = 0
        self._weight_used = 0
        self._banned_until = 0.0
        if history_until_ms is not None:
            for rec in self.records:
                if rec.data is not None and rec.data["T"] < history_until_ms:
                    self._happen(rec, 0)

    # ----- lifecycle --------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """WebSocket base URL (set ``PAIRFLOW_BINANCE_WS`` to it)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """REST base URL (set ``PAIRFLOW_BINANCE_REST`` to it)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving (in the running loop); sets :attr:`port`."""
        self._loop = asyncio.get_running_loop()
        self._started = asyncio.Event()
        app = web.Application()
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_get("/api/v3/historicalTrades", self._historical_trades)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the ephemeral port picked
        self._timeline_task = asyncio.ensure_future(self._timeline())
        if self.start_mode == "now":
            self._started.set()

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._timeline_task is not None:
            self._timeline_task.cancel()
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake exchange stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def begin(self) -> None:
        """Start the timeline (``start='manual'``); thread-safe."""
        if self._loop is not None and self._started is not None:
            self._loop.call_soon_threadsafe(self._started.set)

    def start_in_thread(self) -> FakeBinance:
        """Run the server in a background thread with its own loop; returns self."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=main, name="fake-binance", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeBinance:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` in the server's loop (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    # ----- checks for tests ----------------------------------------------------------------

    def symbols(self) -> list[str]:
        """Symbols in the recording."""
        return sorted({r.symbol for r in self.trades if r.symbol})

    def happened_ids(self, symbol: str) -> list[int]:
        """Trade ids of ``symbol`` that have happened so far, in order."""
        return list(self.happened[symbol].ids)

    def happened_rows(self, symbol: str) -> list[dict[str, Any]]:
        """REST rows of ``symbol`` that have happened so far."""
        return list(self.happened[symbol].rows)

    def happened_frames(self, symbol: str) -> list[str]:
        """The frames of ``symbol`` as they were broadcast (after time rewriting)."""
        return list(self.happened[symbol].frames)

    def recorded_ids(self, symbol: str) -> list[int]:
        """All trade ids of ``symbol`` in one pass of the recording."""
        return [r.data["t"] for r in self.trades if r.symbol == symbol and r.data is not None]

    def first_delivered(self, symbol: str) -> int | None:
        """Lowest id ever delivered over WebSocket to any client."""
        got = self.delivered.get(symbol)
        return min(got) if got else None

    def undelivered_after(self, symbol: str, first: int) -> list[int]:
        """Ids >= ``first`` that happened but were never delivered over WebSocket."""
        got = self.delivered.get(symbol, set())
        return [i for i in self.happened[symbol].ids if i >= first and i not in got]

    def sent_total(self) -> int:
        """Trade messages delivered over WebSocket so far (all connections)."""
        return sum(len(v) for v in self.delivered.values())

    # ----- timeline ------------------------------------------------------------------------

    def _span_of_ids(self) -> dict[str, int]:
        lo: dict[str, int] = {}
        hi: dict[str, int] = {}
        for r in self.trades:
            assert r.data is not None and r.symbol is not None
            t = r.data["t"]
            lo[r.symbol] = min(lo.get(r.symbol, t), t)
            hi[r.symbol] = max(hi.get(r.symbol, t), t)
        return {s: hi[s] - lo[s] + 1 for s in lo}

    def _can_advance(self) -> bool:
        live = [c for c in self.conns if not c.closed]
        if not live:
            return False
        return all(c.queue.qsize() < 256 for c in live)

    def _happen(self, rec: _Rec, pass_no: int) -> tuple[str, str, int] | None:
        """Make one recorded trade happen: returns ``(frame, symbol, id)``."""
        if rec.data is None or rec.symbol is None:
            return None
        data = rec.data
        tid = data["t"] + pass_no * self._id_span[rec.symbol]
        if self.time_mode == "live":
            now = max(time.time_ns() // 1_000_000, self._last_live_ms)
            self._last_live_ms = now
            ttime = now
            etime = now + (data["E"] - data["T"])
        else:
            shift = pass_no * self._t_span
            ttime = data["T"] + shift
            etime = data["E"] + shift
        if self.time_mode == "recorded" and pass_no == 0:
            frame = rec.raw
        else:
            body = dict(data)
            body["E"], body["t"], body["T"] = etime, tid, ttime
            frame = orjson.dumps({"stream": rec.stream, "data": body}).decode()
        hap = self.happened[rec.symbol]
        hap.ids.append(tid)
        hap.times.append(ttime)
        hap.frames.append(frame)
        hap.rows.append(
            {
                "id": tid,
                "price": data["p"],
                "qty": data["q"],
                "quoteQty": _quote_qty(data["p"], data["q"]),
                "time": ttime,
                "isBuyerMaker": data["m"],
                "isBestMatch": data.get("M", True),
            }
        )
        return frame, rec.symbol, tid

    def _broadcast(self, rec: _Rec, item: tuple[str, str, int] | None) -> None:
        payload = item if item is not None else (rec.raw, "", -1)
        for conn in self.conns:
            if not conn.closed and (rec.stream in conn.streams or rec.symbol is None):
                conn.queue.put_nowait(payload)

    async def _timeline(self) -> None:
        assert self._started is not None
        await self._started.wait()
        loop = asyncio.get_running_loop()
        hist = self.history_until_ms
        for pass_no in itertools.count():
            t0 = loop.time()
            first_t = self.trades[0].data["T"] if self.trades and self.trades[0].data else 0
            if hist is not None and pass_no == 0:
                first_t = hist
            for n, rec in enumerate(self.records):
                if hist is not None and pass_no == 0 and rec.data is not None:
                    if rec.data["T"] < hist:
                        continue
                if self.speed is None:
                    while not self._can_advance():
                        await asyncio.sleep(0.001)
                    if n % 50 == 0:
                        await asyncio.sleep(0)
                elif rec.data is not None:
                    due = t0 + (rec.data["T"] - first_t) / 1000.0 / self.speed
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                item = self._happen(rec, pass_no)
                self._broadcast(rec, item)
                self.counters["happened"] += 1
            if not self.loop_forever:
                break
        self.done.set()
        logger.info("fake binance: recording fully broadcast")

    # ----- WebSocket ---------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.counters["handshakes"] += 1
        f = self.faults
        if self.counters["handshakes"] <= f.refuse_first:
            self.counters["refused"] += 1
            headers = {}
            if f.refuse_retry_after_s is not None:
                headers["Retry-After"] = f"{f.refuse_retry_after_s:g}"
            return web.Response(status=f.refuse_status, text="refused by fake", headers=headers)
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        if not streams or len(streams) > 1024:
            return web.json_response({"code": -1100, "msg": "bad streams"}, status=400)
        ws = web.WebSocketResponse(autoping=False, heartbeat=None, max_msg_size=1 << 20)
        now = asyncio.get_running_loop().time()
        conn = _Conn(
            number=next(self._conn_numbers),
            ws=ws,
            request=request,
            streams=frozenset(streams),
            opened_at=now,
            last_pong=now,
        )
        # registered before the handshake completes: the client can rely on getting
        # every trade that happens after its handshake (make-before-break works)
        self.conns.add(conn)
        await ws.prepare(request)
        self.counters["connections"] += 1
        assert self._started is not None
        if self.start_mode == "connect":
            self._started.set()
        sender = asyncio.ensure_future(self._sender(conn))
        helpers = [sender]
        if f.ping_interval_s > 0:
            helpers.append(asyncio.ensure_future(self._pinger(conn)))
        if f.max_conn_age_s > 0:
            helpers.append(asyncio.ensure_future(self._age_limit(conn)))
        self._tasks.update(helpers)
        try:
            await self._reader(conn)
        finally:
            conn.closed = True
            self.conns.discard(conn)
            for task in helpers:
                task.cancel()
                self._tasks.discard(task)
            self.conn_log.append(
                {
                    "number": conn.number,
                    "opened": conn.opened_at,
                    "closed": asyncio.get_running_loop().time(),
                    "sent": conn.sent,
                    "pongs": conn.pongs,
                    "pings": conn.pings_sent,
                    "reason": conn.close_reason or "client closed",
                }
            )
        return ws

    def _count_client_msg(self, conn: _Conn) -> bool:
        """Record a client message; False if the client broke the message-rate limit."""
        now = time.monotonic()
        conn.client_msgs.append(now)
        while conn.client_msgs and conn.client_msgs[0] <= now - 1.0:
            conn.client_msgs.popleft()
        rate = len(conn.client_msgs)
        self.max_client_msgs_per_s = max(self.max_client_msgs_per_s, rate)
        if rate > self.faults.max_client_msgs_per_s:
            self.counters["rate_violations"] += 1
            return False
        return True

    async def _reader(self, conn: _Conn) -> None:
        ws = conn.ws
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type in (WSMsgType.PING, WSMsgType.PONG, WSMsgType.TEXT, WSMsgType.BINARY):
                ok = self._count_client_msg(conn)
                if not ok and self.faults.enforce_msg_limit:
                    conn.close_reason = "too many messages"
                    await ws.close(code=1008, message=b"Too many requests")
                    break
            if msg.type == WSMsgType.PING:
                self.counters["client_pings"] += 1
                stalled = loop.time() < conn.stalled_until
                if not stalled or self.faults.stall_answers_pings:
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.pongs += 1
                conn.last_pong = loop.time()
                self.counters["pongs"] += 1
            elif msg.type == WSMsgType.TEXT:
                self.counters["client_texts"] += 1
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                    req = orjson.loads(msg.data)
                    await ws.send_str(orjson.dumps({"result": None, "id": req.get("id")}).decode())

    async def _sender(self, conn: _Conn) -> None:
        ws = conn.ws
        f = self.faults
        loop = asyncio.get_running_loop()
        malformed = itertools.cycle(MALFORMED)
        while not ws.closed:
            frame, sym, tid = await conn.queue.get()
            if loop.time() < conn.stalled_until:
                self.counters["lost_in_stall"] += 1
                continue
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                break
            if tid < 0:
                continue
            conn.sent += 1
            self.delivered[sym].add(tid)
            if f.malformed_every and conn.sent % f.malformed_every == 0:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(next(malformed))
                    self.counters["malformed_sent"] += 1
            if f.shutdown_after and conn.sent == f.shutdown_after and self._budget("shutdowns"):
                event = {"event": {"e": "serverShutdown", "E": time.time_ns() // 1_000_000}}
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(orjson.dumps(event).decode())
                self._tasks.add(asyncio.ensure_future(self._close_later(conn, f.shutdown_grace_s)))
            if f.stall_after and conn.sent == f.stall_after and self._budget("stalls"):
                conn.stalled_until = loop.time() + f.stall_s
                logger.info("fake binance: connection #%d stalls %.1f s", conn.number, f.stall_s)
            if f.drop_every and conn.sent == f.drop_every and self._budget("drops"):
                await self._drop(conn)
                break

    def _budget(self, what: str) -> bool:
        limit = {
            "drops": self.faults.max_drops,
            "stalls": self.faults.max_stalls,
            "shutdowns": self.faults.max_shutdowns,
        }[what]
        if limit is not None and self.counters[what] >= limit:
            return False
        self.counters[what] += 1
        return True

    async def _drop(self, conn: _Conn) -> None:
        conn.closed = True
        if self.faults.drop_mode == "abort":
            conn.close_reason = "aborted"
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1006)
        else:
            conn.close_reason = f"dropped with {self.faults.drop_code}"
            await conn.ws.close(code=self.faults.drop_code, message=b"fake drop")

    async def _close_later(self, conn: _Conn, delay: float) -> None:
        await asyncio.sleep(delay)
        if not conn.ws.closed:
            conn.close_reason = "serverShutdown"
            conn.closed = True
            await conn.ws.close(code=1001, message=b"server shutdown")

    async def _pinger(self, conn: _Conn) -> None:
        f = self.faults
        loop = asyncio.get_running_loop()
        while not conn.ws.closed:
            await asyncio.sleep(f.ping_interval_s)
            if loop.time() - conn.last_pong > f.pong_timeout_s:
                conn.close_reason = "pong timeout"
                self.counters["pong_timeouts"] += 1
                await conn.ws.close(code=1008, message=b"pong timeout")
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.ping(b"fake")
                conn.pings_sent += 1
                self.counters["server_pings"] += 1

    async def _age_limit(self, conn: _Conn) -> None:
        await asyncio.sleep(self.faults.max_conn_age_s)
        if not conn.ws.closed:
            conn.close_reason = "max age"
            conn.closed = True
            self.counters["aged_out"] += 1
            await conn.ws.close(code=1001, message=b"connection too old")

    # ----- REST --------------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": time.time_ns() // 1_000_000})

    def _rest_gate(self, endpoint: str) -> tuple[web.Response | None, dict[str, str]]:
        """Count, weigh and fault a REST request: ``(error response or None, headers)``."""
        f = self.faults
        self.counters["rest_requests"] += 1
        self.counters[f"rest_{endpoint}"] += 1
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += REST_WEIGHTS.get(endpoint, 1)
        self.counters["rest_weight"] += REST_WEIGHTS.get(endpoint, 1)
        weight = {"X-MBX-USED-WEIGHT-1M": str(self._weight_used + f.other_weight_1m)}
        if f.rest_endpoints is not None and endpoint not in f.rest_endpoints:
            return web.Response(status=404, text="Not Found", headers=weight), weight
        if f.rest_fail:
            self.counters["rest_failed"] += 1
            return web.Response(status=503, text="Service Unavailable", headers=weight), weight
        if f.rest_418_for_s:
            now = time.monotonic()
            if not self._banned_until:
                self._banned_until = now + f.rest_418_for_s
            if now < self._banned_until:
                self.counters["rest_418"] += 1
                left = f"{self._banned_until - now:.0f}"
                body = {"code": -1003, "msg": "Way too many requests; IP banned (fake)."}
                return web.json_response(
                    body, status=418, headers={**weight, "Retry-After": left}
                ), weight
        if f.rest_403_every and self.counters["rest_requests"] % f.rest_403_every == 0:
            self.counters["rest_403"] += 1
            headers = dict(weight)
            if f.rest_403_retry_after_s is not None:
                headers["Retry-After"] = f"{f.rest_403_retry_after_s:g}"
            return web.Response(status=403, text="Forbidden (fake WAF)", headers=headers), weight
        if f.rest_429_every and self.counters["rest_requests"] % f.rest_429_every == 0:
            self.counters["rest_429"] += 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests; fake rate limit."},
                status=429,
                headers={**weight, "Retry-After": f"{f.rest_retry_after_s:g}"},
            ), weight
        return None, weight

    def _known(self, symbol: str) -> bool:
        return symbol in self._id_span

    @staticmethod
    def _bad(msg: str, code: int = -1100) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=400)

    async def _historical_trades(self, request: web.Request) -> web.Response:
        if self.faults.rest_delay_s:
            await asyncio.sleep(self.faults.rest_delay_s)
        err, weight = self._rest_gate("historicalTrades")
        if err is not None:
            return err
        symbol = request.query.get("symbol", "")
        if not self._known(symbol):
            return self._bad("Invalid symbol.", -1121)
        try:
            limit = int(request.query.get("limit", "500"))
            from_id = request.query.get("fromId")
            start = int(from_id) if from_id is not None else None
        except ValueError:
            return self._bad("Illegal characters")
        if not 1 <= limit <= 1000:
            return self._bad("limit out of range")
        hap = self.happened[symbol]
        if start is None:
            rows = hap.rows[-limit:]
        else:
            i = bisect.bisect_left(hap.ids, start)
            rows = hap.rows[i : i + limit]
        self.counters["rest_trades"] += len(rows)
        return web.Response(
            body=orjson.dumps(rows), content_type="application/json", headers=weight
        )

    async def _exchange_info(self, request: web.Request) -> web.Response:
        err, weight = self._rest_gate("exchangeInfo")
        if err is not None:
            return err
        q = request.query
        try:
            wanted = orjson.loads(q["symbols"]) if "symbols" in q else [q.get("symbol")]
        except orjson.JSONDecodeError:
            return self._bad("Illegal characters in symbols")
        wanted = [w for w in wanted if w] or sorted(self._id_span)
        if any(not self._known(w) for w in wanted):
            return self._bad("Invalid symbol.", -1121)
        rows = [
            {"symbol": w, "status": "HALT" if w in self.faults.halted else "TRADING"}
            for w in wanted
        ]
        return web.json_response({"timezone": "UTC", "symbols": rows}, headers=weight)

    async def _klines(self, request: web.Request) -> web.Response:
        """Binance semantics: open times in [startTime, endTime], a 0-trade interval
        has trades 0, volume 0 and OHLC = the previous close; ``limit`` <= 1000."""
        err, weight = self._rest_gate("klines")
        if err is not None:
            return err
        q = request.query
        symbol, tf = q.get("symbol", ""), q.get("interval", "")
        if not self._known(symbol):
            return self._bad("Invalid symbol.", -1121)
        if tf not in TF_MS:
            return self._bad("Invalid interval.", -1120)
        try:
            limit = int(q.get("limit", "500"))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._bad("Illegal characters")
        if not 1 <= limit <= 1000:
            return self._bad("limit out of range")
        hap = self.happened[symbol]
        if not hap.times:
            return web.json_response([], headers=weight)
        step = TF_MS[tf]
        now_open = hap.times[-1] - hap.times[-1] % step
        first_open = hap.times[0] - hap.times[0] % step
        o = first_open if start is None else max(first_open, start + (-start) % step)
        stop = now_open if end is None else min(now_open, end)
        out: list[list[Any]] = []
        while o <= stop and len(out) < limit:
            out.append(self._kline(hap, o, step))
            o += step
        return web.Response(body=orjson.dumps(out), content_type="application/json", headers=weight)

    @staticmethod
    def _kline(hap: _Happened, open_ms: int, step: int) -> list[Any]:
        i = bisect.bisect_left(hap.times, open_ms)
        j = bisect.bisect_left(hap.times, open_ms + step)
        rows = hap.rows[i:j]
        if not rows:
            prev = hap.rows[i - 1]["price"] if i > 0 else "0"
            zero = "0.00000000"
            return [open_ms, prev, prev, prev, prev, zero, open_ms + step - 1, zero, 0, zero,
                    zero, "0"]  # fmt: skip
        prices = [Decimal(r["price"]) for r in rows]
        vol = sum((Decimal(r["qty"]) for r in rows), Decimal(0))
        quote = sum((Decimal(r["price"]) * Decimal(r["qty"]) for r in rows), Decimal(0))
        buy = [r for r in rows if not r["isBuyerMaker"]]
        tb_vol = sum((Decimal(r["qty"]) for r in buy), Decimal(0))
        tb_quote = sum((Decimal(r["price"]) * Decimal(r["qty"]) for r in buy), Decimal(0))
        return [
            open_ms, rows[0]["price"], str(max(prices)), str(min(prices)), rows[-1]["price"],
            str(vol), open_ms + step - 1, str(quote), len(rows), str(tb_vol), str(tb_quote), "0",
        ]  # fmt: skip

    async def _agg_trades(self, request: web.Request) -> web.Response:
        """Aggregates = runs of trades with one time, price and side (``a`` = ``f``)."""
        err, weight = self._rest_gate("aggTrades")
        if err is not None:
            return err
        q = request.query
        symbol = q.get("symbol", "")
        if not self._known(symbol):
            return self._bad("Invalid symbol.", -1121)
        try:
            limit = int(q.get("limit", "500"))
            from_id = int(q["fromId"]) if "fromId" in q else None
            start = int(q["startTime"]) if "startTime" in q else None
        except ValueError:
            return self._bad("Illegal characters")
        if not 1 <= limit <= 1000:
            return self._bad("limit out of range")
        rows = self.happened[symbol].rows
        hap = self.happened[symbol]

        def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
            return (a["time"], a["price"], a["isBuyerMaker"]) == (
                b["time"],
                b["price"],
                b["isBuyerMaker"],
            )

        if from_id is not None:
            i = bisect.bisect_left(hap.ids, from_id)
            while 0 < i < len(rows) and same(rows[i - 1], rows[i]):
                i += 1  # fromId inside an aggregate: the next one starts at or after it
        elif start is not None:
            i = bisect.bisect_left(hap.times, start)
        else:
            i = max(0, len(rows) - limit)
            while 0 < i < len(rows) and same(rows[i - 1], rows[i]):
                i += 1
        out: list[dict[str, Any]] = []
        while i < len(rows) and len(out) < limit:
            j = i + 1
            while j < len(rows) and same(rows[i], rows[j]):
                j += 1
            qty = sum((Decimal(r["qty"]) for r in rows[i:j]), Decimal(0))
            out.append({
                "a": rows[i]["id"], "p": rows[i]["price"], "q": str(qty), "f": rows[i]["id"],
                "l": rows[j - 1]["id"], "T": rows[i]["time"], "m": rows[i]["isBuyerMaker"],
                "M": True,
            })  # fmt: skip
            i = j
        return web.Response(body=orjson.dumps(out), content_type="application/json", headers=weight)


def _default_recording() -> Path:
    if SHARED_RECORDING.exists():
        return SHARED_RECORDING
    return FRAMES_DIR / "head-2000.ndjson.gz"


def _speed(text: str) -> float | None:
    return None if text.strip().lower() == "max" else float(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake standalone until interrupted; prints the URLs to use."""
    parser = argparse.ArgumentParser(description="fake Binance spot exchange on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--file", type=Path, default=None, help="NDJSON(.gz) recording")
    parser.add_argument("--speed", type=_speed, default=1.0, help="factor of real time, or max")
    parser.add_argument("--time-mode", choices=("live", "recorded"), default="live")
    parser.add_argument("--start", choices=("connect", "now"), default="connect")
    parser.add_argument("--no-loop", action="store_true", help="stop after one pass")
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--drop-mode", choices=("close", "abort"), default="close")
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    parser.add_argument("--malformed-every", type=int, default=0)
    parser.add_argument("--shutdown-after", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--refuse-first", type=int, default=0)
    parser.add_argument("--rest-429-every", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    faults = Faults(
        drop_every=args.drop_every,
        drop_mode=args.drop_mode,
        stall_after=args.stall_after,
        stall_s=args.stall_s,
        malformed_every=args.malformed_every,
        shutdown_after=args.shutdown_after,
        ping_interval_s=args.ping_interval,
        refuse_first=args.refuse_first,
        rest_429_every=args.rest_429_every,
    )
    fake = FakeBinance(
        args.file or _default_recording(),
        speed=args.speed,
        faults=faults,
        time_mode=args.time_mode,
        start=args.start,
        loop=not args.no_loop,
        port=args.port,
    )

    async def serve() -> None:
        await fake.start()
        speed = "max" if args.speed is None else f"{args.speed:g}x"
        print(f"fake Binance on 127.0.0.1:{fake.port}: {len(fake.trades)} trades at {speed}")
        print(f"PAIRFLOW_BINANCE_WS={fake.ws_url}")
        print(f"PAIRFLOW_BINANCE_REST={fake.rest_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await fake.stop()

    asyncio.run(serve())
    return 0


def _iter_ids(frames: Sequence[str]) -> Iterator[tuple[str, int]]:
    """``(symbol, trade id)`` of each parseable frame (a helper for tests)."""
    for raw in frames:
        rec = _parse(raw)
        if rec.data is not None and rec.symbol is not None:
            yield rec.symbol, rec.data["t"]


if __name__ == "__main__":
    raise SystemExit(main())
