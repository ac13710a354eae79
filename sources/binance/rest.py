"""REST backfill client: ``GET /api/v3/historicalTrades`` by trade id.

Why ``historicalTrades`` and not ``aggTrades``: the flow counts trades and keys
everything by the individual trade id ``t`` of the ``<symbol>@trade`` stream.
``aggTrades`` merges consecutive fills of one taker order at one price into a single
row with its own aggregate id, so neither the trade ids nor the trade counts (nor
per-trade quantities) of the missing stretch can be reproduced from it; bars built
from it would differ from bars built from the live stream. ``historicalTrades``
returns exactly the rows of the trade stream (``id``, ``price``, ``qty``, ``time``,
``isBuyerMaker``, ``isBestMatch``), addressable by ``fromId``, 1000 per request.

Politeness: every request first takes its weight (25) from a process-wide
:class:`~pairflow.backoff.TokenBucket` per REST host (default 2400 weight a
minute, 40 % of Binance's 6000/min per-IP limit); HTTP 429 (rate limit) and 418
(IP ban) pause *every* caller of that host for ``Retry-After`` seconds; 5xx and
network errors are retried with jittered backoff until ``give_up_s`` has passed,
then :class:`RestUnavailable` is raised and the caller records an unfilled gap.
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

__all__ = [
    "HISTORICAL_TRADES_WEIGHT",
    "HistoricalTradesClient",
    "RestGate",
    "RestUnavailable",
    "rest_gate",
]

logger = logging.getLogger(__name__)

HISTORICAL_TRADES_WEIGHT = 25
"""Request weight of ``GET /api/v3/historicalTrades`` (Binance spot, 2024)."""


class RestUnavailable(Exception):  # noqa: N818 - reads better at the raise site
    """REST could not serve a backfill request within the allowed time."""


@dataclass
class RestGate:
    """Shared pacing state of one REST host (all shards and threads of a process).

    Attributes:
        budget: Request-weight budget.
        blocked_until: Monotonic time before which nobody may call (after 429/418).
    """

    budget: TokenBucket
    blocked_until: float = 0.0
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


class HistoricalTradesClient:
    """Fetch pages of ``historicalTrades`` politely.

    Args:
        base_url: REST base URL without path, e.g. ``https://api.binance.com``.
        session: The aiohttp session to use (owned by the caller).
        gate: Shared pacing state of the host (see :func:`rest_gate`).
        give_up_s: How long one :meth:`fetch` may keep retrying.
        timeout_s: Timeout of one HTTP request.
        backoff: Retry policy for 5xx / network errors.
        clock: Monotonic clock in seconds.
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
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        api_key: str | None = None,
        name: str = "binance",
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/api/v3/historicalTrades"
        self._session = session
        self._gate = gate
        self._give_up_s = give_up_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)
        self._clock = clock
        self._sleep = sleep
        self._headers = {"X-MBX-APIKEY": api_key} if api_key else {}
        self._name = name
        self.requests_total = 0
        self.throttled_total = 0

    async def _wait_turn(self, deadline: float) -> None:
        """Wait for the host's ban to lift and for weight budget."""
        while True:
            now = self._clock()
            wait = max(self._gate.blocked_until - now, 0.0)
            if wait == 0.0:
                wait = self._gate.budget.take(now, HISTORICAL_TRADES_WEIGHT)
                if wait == 0.0:
                    return
            if now + wait > deadline:
                msg = f"REST budget/ban would need {wait:.0f} s more (over the give-up time)"
                raise RestUnavailable(msg)
            await self._sleep(wait)

    async def fetch(self, symbol: str, from_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Fetch up to ``limit`` trades of ``symbol`` with ``id >= from_id``, oldest first.

        Raises:
            RestUnavailable: after ``give_up_s`` of failures, on a ban longer than
                that, or at once on a client error (4xx other than 429/418).
        """
        params = {"symbol": symbol, "fromId": str(from_id), "limit": str(min(max(limit, 1), 1000))}
        deadline = self._clock() + self._give_up_s
        attempt = 0
        while True:
            await self._wait_turn(deadline)
            self.requests_total += 1
            error: str
            try:
                async with self._session.get(
                    self.url, params=params, headers=self._headers, timeout=self._timeout
                ) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        return self._parse(body)
                    if resp.status in (429, 418):
                        self.throttled_total += 1
                        pause = _retry_after(resp.headers, 60.0 if resp.status == 418 else 1.0)
                        self._gate.block_for(self._clock(), pause)
                        logger.warning(
                            "%s: REST %s %s (%s); every backfill of this host pauses %.1f s",
                            self._name,
                            resp.status,
                            "rate limit" if resp.status == 429 else "IP banned",
                            _short(body),
                            pause,
                        )
                        continue
                    if 400 <= resp.status < 500:
                        msg = f"HTTP {resp.status} for {symbol} fromId={from_id}: {_short(body)}"
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

    @staticmethod
    def _parse(body: bytes) -> list[dict[str, Any]]:
        rows = orjson.loads(body)
        if not isinstance(rows, list):
            msg = f"expected a JSON list, got {_short(body)}"
            raise ValueError(msg)
        out = []
        for row in rows:
            if not (
                isinstance(row, dict)
                and type(row.get("id")) is int
                and type(row.get("time")) is int
                and isinstance(row.get("price"), str)
                and isinstance(row.get("qty"), str)
                and isinstance(row.get("isBuyerMaker"), bool)
            ):
                msg = f"malformed historicalTrades row {row!r:.200}"
                raise ValueError(msg)
            out.append(row)
        out.sort(key=lambda r: r["id"])
        return out


def _short(body: bytes, n: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= n else text[:n] + "..."
