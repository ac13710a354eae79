"""Binance spot REST client for the live input: backfill, warm start, symbol check.

Endpoints (weights: Binance spot API docs, 2026); rows become records in :mod:`.rows`:

- ``GET /api/v3/historicalTrades?fromId=`` (25): exact trades -> ``Tick``.
- ``GET /api/v3/aggTrades?fromId=|startTime=`` (4): aggregates -> ``Tick`` with
  ``count = l - f + 1`` and ``trade_id = l`` (ids ``f..l``, one price, one taker).
- ``GET /api/v3/klines`` (2): -> ``Bar`` (0-trade klines are no bar; ids ``None``).
- ``GET /api/v3/exchangeInfo?symbols=`` (20): symbol -> status.

Why ``historicalTrades`` first: the flow counts trades and keys everything by the
trade id ``t`` of the ``@trade`` stream. ``aggTrades`` gives exact id ranges and
counts too, but not the per-trade sizes, and is used only where ``historicalTrades``
is not served: market-data-only hosts (``data-api.binance.vision``) answer it with
404 / ``-1100``-style errors; the client then remembers that (per host) and the
callers fall back (:class:`EndpointNotServed`).

Politeness, per REST host and process (:class:`RestGate`): every request first takes
its weight from a :class:`~pairflow.backoff.TokenBucket` (default 2400 a minute, 40 %
of Binance's 6000/min per IP); ``X-MBX-USED-WEIGHT-1M`` is read on every response
(other processes on the same IP spend the same budget) and when it reaches
``ip_weight_cap`` every caller waits for the next minute; HTTP 429 (rate limit),
418 (IP ban) and 403 (WAF) pause every caller of the host for ``Retry-After``
seconds; 5xx and network errors are retried with jittered backoff until
``give_up_s`` has passed, then :class:`RestUnavailable` is raised. A ban longer than
the give-up time raises :class:`RestBanned` (the caller says so loudly).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from pairflow.backoff import Backoff, TokenBucket
from pairflow.records import Bar, Tick
from sources.binance.rows import MalformedRows, agg_ticks, kline_bars, statuses, trade_ticks

__all__ = [
    "AGG_TRADES_WEIGHT",
    "EXCHANGE_INFO_WEIGHT",
    "HISTORICAL_TRADES_WEIGHT",
    "KLINES_WEIGHT",
    "EndpointNotServed",
    "RestBanned",
    "RestClient",
    "RestGate",
    "RestUnavailable",
    "rest_gate",
]

logger = logging.getLogger(__name__)

HISTORICAL_TRADES_WEIGHT = 25
AGG_TRADES_WEIGHT = 4
KLINES_WEIGHT = 2
EXCHANGE_INFO_WEIGHT = 20
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}


class RestUnavailable(Exception):  # noqa: N818 - reads better at the raise site
    """REST could not serve a request within the allowed time."""


class RestBanned(RestUnavailable):
    """The host banned or throttled us for longer than the give-up time."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class EndpointNotServed(RestUnavailable):
    """The host does not serve this endpoint (e.g. a market-data-only host)."""


@dataclass
class RestGate:
    """Shared pacing state of one REST host (all shards and threads of a process).

    Attributes:
        budget: Request-weight budget of this process.
        blocked_until: Monotonic time before which nobody may call (429/418/403,
            or the IP's used weight at the cap).
        used_weight_1m: Last ``X-MBX-USED-WEIGHT-1M`` seen (the whole IP's).
        not_served: Endpoints this host answered "not served".
    """

    budget: TokenBucket
    blocked_until: float = 0.0
    used_weight_1m: int = 0
    not_served: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def block_for(self, now: float, seconds: float) -> None:
        """Pause every caller until ``now + seconds``."""
        with self.lock:
            self.blocked_until = max(self.blocked_until, now + seconds)


_GATES: dict[str, RestGate] = {}
_GATES_LOCK = threading.Lock()


def rest_gate(base_url: str, weight_per_min: float) -> RestGate:
    """Return the process-wide gate of ``base_url`` (created on first use)."""
    with _GATES_LOCK:
        gate = _GATES.get(base_url)
        if gate is None:
            gate = RestGate(TokenBucket(weight_per_min, weight_per_min / 60.0, time.monotonic()))
            _GATES[base_url] = gate
        return gate


def _retry_after(headers: Any, default: float) -> float:
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


def _short(body: bytes, n: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= n else text[:n] + "..."


def _not_served(status: int, body: bytes) -> bool:
    """404, or a Binance error code saying the endpoint/parameter is not available."""
    if status == 404:
        return True
    if status != 400:
        return False
    try:
        code = orjson.loads(body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return code in (-1100, -1101, -1102, -1128, -2014, -2015)


class RestClient:
    """Polite Binance REST calls; rows come back as records.

    Args:
        base_url: REST base URL without path, e.g. ``https://api.binance.com``.
        session: The aiohttp session to use (owned by the caller).
        gate: Shared pacing state of the host (see :func:`rest_gate`).
        give_up_s: How long one request may keep retrying.
        timeout_s: Timeout of one HTTP request.
        ip_weight_cap: Pause until the next minute once ``X-MBX-USED-WEIGHT-1M``
            reaches this (Binance's limit is 6000 per IP and minute).
        backoff: Retry policy for 5xx / network errors.
        clock: Monotonic clock in seconds.
        wall_s: Wall clock in seconds (the used-weight window is the wall minute).
        sleep: Async sleep (interruptible by the caller's stop).
        api_key: Optional ``X-MBX-APIKEY`` header value (never logged).
        name: Log prefix.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        gate: RestGate,
        *,
        give_up_s: float = 60.0,
        timeout_s: float = 10.0,
        ip_weight_cap: int = 5000,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_s: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        api_key: str | None = None,
        name: str = "binance",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._gate = gate
        self._give_up_s = give_up_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ip_cap = ip_weight_cap
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)
        self._clock = clock
        self._wall_s = wall_s
        self._sleep = sleep
        self._headers = {"X-MBX-APIKEY": api_key} if api_key else {}
        self._name = name
        self.requests_total = 0
        self.weight_total = 0
        self.throttled_total = 0
        self.banned_s = 0.0
        """Longest ban (s) announced by the host; 0 if none."""

    def __repr__(self) -> str:
        return f"RestClient({self.base_url!r})"  # never the API key

    def serves(self, endpoint: str) -> bool:
        """False once the host answered ``endpoint`` with "not served"."""
        return endpoint not in self._gate.not_served

    async def _wait_turn(self, deadline: float, weight: int) -> None:
        """Wait for the host's ban to lift and for weight budget."""
        while True:
            now = self._clock()
            wait = max(self._gate.blocked_until - now, 0.0)
            if wait == 0.0:
                wait = self._gate.budget.take(now, weight)
                if wait == 0.0:
                    return
            if now + wait > deadline:
                msg = f"REST budget/ban would need {wait:.0f} s more (over the give-up time)"
                if self._gate.blocked_until - now > self._give_up_s:
                    raise RestBanned(msg, self._gate.blocked_until - now)
                raise RestUnavailable(msg)
            await self._sleep(wait)

    def _observe_weight(self, headers: Any) -> None:
        """Steer by the IP's used weight: at the cap, wait for the next wall minute."""
        value = headers.get("X-MBX-USED-WEIGHT-1M")
        if value is None:
            return
        try:
            used = int(value)
        except ValueError:
            return
        self._gate.used_weight_1m = used
        if used >= self._ip_cap:
            rest_of_minute = 60.0 - (self._wall_s() % 60.0) + 0.5
            self._gate.block_for(self._clock(), rest_of_minute)
            logger.warning(
                "%s: REST used weight %d/min on this IP reached the cap %d; pausing %.1f s",
                self._name,
                used,
                self._ip_cap,
                rest_of_minute,
            )

    async def get(self, endpoint: str, params: dict[str, str], weight: int) -> Any:
        """GET ``/api/v3/{endpoint}`` and return the decoded JSON.

        Raises:
            EndpointNotServed: the host does not serve it (404 / ``-1100``-style).
            RestBanned: a ban or throttle longer than ``give_up_s``.
            RestUnavailable: after ``give_up_s`` of failures, or at once on another
                client error (4xx other than 429/418/403).
        """
        if endpoint in self._gate.not_served:
            msg = f"{self.base_url} does not serve /api/v3/{endpoint}"
            raise EndpointNotServed(msg)
        url = f"{self.base_url}/api/v3/{endpoint}"
        deadline = self._clock() + self._give_up_s
        attempt = 0
        while True:
            await self._wait_turn(deadline, weight)
            self.requests_total += 1
            self.weight_total += weight
            error: str
            try:
                async with self._session.get(
                    url, params=params, headers=self._headers, timeout=self._timeout
                ) as resp:
                    body = await resp.read()
                    self._observe_weight(resp.headers)
                    if resp.status == 200:
                        return orjson.loads(body)
                    if resp.status in (429, 418, 403):
                        self._throttled(resp.status, resp.headers, body)
                        continue
                    if _not_served(resp.status, body):
                        self._gate.not_served.add(endpoint)
                        msg = f"{self.base_url} does not serve /api/v3/{endpoint}: {_short(body)}"
                        raise EndpointNotServed(msg)
                    if 400 <= resp.status < 500:
                        msg = f"HTTP {resp.status} for {endpoint} {params}: {_short(body)}"
                        raise RestUnavailable(msg)
                    error = f"HTTP {resp.status}: {_short(body)}"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            delay = self._backoff.delay(attempt)
            attempt += 1
            if self._clock() + delay > deadline:
                msg = f"{error} (gave up after {attempt} attempts)"
                raise RestUnavailable(msg)
            log = logger.warning if attempt == 1 else logger.debug
            log("%s: REST %s; retrying in %.2f s", self._name, error, delay)
            await self._sleep(delay)

    def _throttled(self, status: int, headers: Any, body: bytes) -> None:
        self.throttled_total += 1
        default = {429: 1.0, 418: 120.0, 403: 5.0}[status]
        pause = _retry_after(headers, default)
        what = {429: "rate limit", 418: "IP banned", 403: "refused by the WAF"}[status]
        self._gate.block_for(self._clock(), pause)
        if status == 418:
            self.banned_s = max(self.banned_s, pause)
        logger.warning(
            "%s: REST %s %s (%s); every request to this host pauses %.1f s",
            self._name,
            status,
            what,
            _short(body),
            pause,
        )

    # ----- endpoints --------------------------------------------------------------------

    async def historical_trades(self, symbol: str, from_id: int, limit: int = 1000) -> list[Tick]:
        """Up to ``limit`` trades with ``id >= from_id``, oldest first."""
        params = {"symbol": symbol, "fromId": str(from_id), "limit": str(min(max(limit, 1), 1000))}
        rows = await self.get("historicalTrades", params, HISTORICAL_TRADES_WEIGHT)
        try:
            return trade_ticks(symbol, rows)
        except MalformedRows as exc:
            raise RestUnavailable(str(exc)) from None

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time_ms: int | None = None,
        limit: int = 1000,
    ) -> list[tuple[int, Tick]]:
        """Aggregates by aggregate id or by start time: ``(aggregate id a, Tick)``.

        The tick has ``trade_id = l`` and ``count = l - f + 1``. ``fromId`` here is an
        *aggregate* id, not a trade id (page on with the last ``a + 1``).
        """
        params = {"symbol": symbol, "limit": str(min(max(limit, 1), 1000))}
        if from_id is not None:
            params["fromId"] = str(from_id)
        if start_time_ms is not None:
            params["startTime"] = str(start_time_ms)
        rows = await self.get("aggTrades", params, AGG_TRADES_WEIGHT)
        try:
            return agg_ticks(symbol, rows)
        except MalformedRows as exc:
            raise RestUnavailable(str(exc)) from None

    async def first_trade_at(self, symbol: str, start_time_ms: int) -> tuple[int, int] | None:
        """``(first trade id f, aggregate id a)`` of the first aggregate at/after a time."""
        params = {"symbol": symbol, "startTime": str(start_time_ms), "limit": "1"}
        rows = await self.get("aggTrades", params, AGG_TRADES_WEIGHT)
        if not isinstance(rows, list) or not rows:
            return None
        row = rows[0]
        if not (isinstance(row, dict) and type(row.get("f")) is int and type(row.get("a")) is int):
            msg = f"malformed aggTrades row {row!r:.200}"
            raise RestUnavailable(msg)
        return row["f"], row["a"]

    async def klines(
        self, symbol: str, tf: str, start_ms: int, end_ms: int, limit: int = 1000
    ) -> tuple[list[Bar], int, int]:
        """Klines with ``start_ms <= open_time <= end_ms`` (one page).

        Returns:
            ``(bars with >= 1 trade, rows received, open_time of the last row or -1)``.
        """
        params = {
            "symbol": symbol,
            "interval": tf,
            "startTime": str(start_ms),
            "endTime": str(end_ms),
            "limit": str(min(max(limit, 1), 1000)),
        }
        rows = await self.get("klines", params, KLINES_WEIGHT)
        try:
            return kline_bars(symbol, tf, rows)
        except MalformedRows as exc:
            raise RestUnavailable(str(exc)) from None

    async def symbol_status(self, symbols: list[str]) -> dict[str, str]:
        """Status of each symbol Binance knows (``TRADING``, ``HALT``, ``BREAK``...)."""
        params = {"symbols": orjson.dumps(symbols).decode()}
        try:
            info = await self.get("exchangeInfo", params, EXCHANGE_INFO_WEIGHT)
        except RestUnavailable as exc:
            if "-1121" in str(exc):  # "Invalid symbol": at least one is unknown
                out: dict[str, str] = {}
                for s in symbols:
                    try:
                        one = await self.get("exchangeInfo", {"symbol": s}, EXCHANGE_INFO_WEIGHT)
                    except RestUnavailable as inner:
                        if "-1121" not in str(inner):
                            raise
                        continue
                    out.update(statuses(one))
                return out
            raise
        return statuses(info)
