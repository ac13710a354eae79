"""Reconnect policy of the live Binance input: backoff, budgets and log decisions.

Everything here is pure bookkeeping: no I/O and no sleeping. Callers pass the current
time (seconds on any monotonic clock) and sleep themselves, so the behaviour is
unit-testable with a fake clock and a seeded :class:`random.Random`.

- :class:`Backoff`: exponential backoff with full jitter, capped.
- :class:`SlidingWindowLimiter`: at most N events in any window (connection attempts,
  outgoing WebSocket messages).
- :class:`TokenBucket`: a refilling budget (REST request weight).
- :class:`ReconnectTracker`: the connect / lost / failing state machine that decides
  how long to wait and which line to log, so that an unreachable exchange produces one
  log line per state change (plus a periodic reminder) instead of a flood.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field

__all__ = [
    "Backoff",
    "Decision",
    "ReconnectTracker",
    "SlidingWindowLimiter",
    "TokenBucket",
]


@dataclass
class Backoff:
    """Exponential backoff with full jitter.

    The delay before retry number ``attempt`` (0-based) is drawn uniformly from
    ``[0, min(cap_s, base_s * 2**attempt)]`` ("full jitter"), so many clients that
    lost the same server do not come back in lock-step. ``floor_s`` keeps a draw
    close to zero from turning a failure loop into a busy loop.

    Attributes:
        base_s: Ceiling of the first delay.
        cap_s: Largest ceiling.
        floor_s: Smallest delay ever returned.
        rng: Source of randomness (inject a seeded one in tests).
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    floor_s: float = 0.05
    rng: random.Random = field(default_factory=random.Random)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay for retry number ``attempt``."""
        return min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), 60))

    def delay(self, attempt: int) -> float:
        """Draw the delay before retry number ``attempt`` (0-based)."""
        return max(self.floor_s, self.rng.uniform(0.0, self.ceiling(attempt)))


class SlidingWindowLimiter:
    """At most ``limit`` events in any ``window_s``-long window. Thread-safe.

    Used for Binance's connection-attempt limit (300 per 5 minutes per IP) and for
    the outgoing WebSocket message limit (5 per second).
    """

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            msg = f"need limit >= 1 and window_s > 0, got {limit}, {window_s}"
            raise ValueError(msg)
        self.limit = limit
        self.window_s = window_s
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Record an event at ``now`` if the budget allows it.

        Returns:
            0.0 if the event was recorded (go ahead), otherwise how many seconds to
            wait before asking again (nothing is recorded).
        """
        with self._lock:
            while self._events and self._events[0] <= now - self.window_s:
                self._events.popleft()
            if len(self._events) < self.limit:
                self._events.append(now)
                return 0.0
            return max(self._events[0] + self.window_s - now, 1e-3)

    def count(self, now: float) -> int:
        """Events recorded in the window that ends at ``now``."""
        with self._lock:
            return sum(1 for t in self._events if t > now - self.window_s)


class TokenBucket:
    """A budget of ``capacity`` tokens refilled at ``rate_per_s``. Thread-safe.

    Used to pace REST backfill by request weight well below Binance's per-IP limit.
    """

    def __init__(self, capacity: float, rate_per_s: float, now: float = 0.0) -> None:
        if capacity <= 0 or rate_per_s <= 0:
            msg = f"need capacity > 0 and rate_per_s > 0, got {capacity}, {rate_per_s}"
            raise ValueError(msg)
        self.capacity = capacity
        self.rate_per_s = rate_per_s
        self._tokens = capacity
        self._at: float | None = None
        self._lock = threading.Lock()

    def take(self, now: float, amount: float) -> float:
        """Take ``amount`` tokens at ``now`` if available.

        Returns:
            0.0 if taken, otherwise seconds until enough tokens will be there
            (nothing is taken).
        """
        amount = min(amount, self.capacity)
        with self._lock:
            if self._at is not None:
                self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            if self._tokens >= amount:
                self._tokens -= amount
                return 0.0
            return (amount - self._tokens) / self.rate_per_s


@dataclass(frozen=True)
class Decision:
    """What to do after a connection event.

    Attributes:
        delay_s: Seconds to wait before the next connection attempt.
        level: Logging level of ``message``.
        message: The line to log, or ``None`` to log nothing.
    """

    delay_s: float
    level: int
    message: str | None


@dataclass
class ReconnectTracker:
    """State machine of one WebSocket shard: ``idle`` → ``connected`` ⇄ ``failing``.

    The caller reports events with the current time; each call returns a
    :class:`Decision`. Rules:

    - A failed attempt waits ``backoff.delay(failures)`` (or the server's
      ``Retry-After`` if longer) and increments ``failures``.
    - A lost connection that had been up for at least ``stable_after_s`` resets
      ``failures`` to 0 (a quick reconnect); one that dropped sooner counts as a
      failure, so a flapping server is retried ever more slowly.
    - Logging: a warning on each state change (connection lost, first failure of a
      streak, a different error), the same error again only at DEBUG, and a
      reminder at WARNING every ``remind_every_s`` while still failing; an INFO line
      when connected again, saying how long the shard was down.

    Attributes:
        name: Prefix of every log line, e.g. ``binance[0]``.
        backoff: The backoff policy.
        stable_after_s: Uptime after which a connection counts as stable.
        remind_every_s: Interval of "still failing" reminders.
    """

    name: str
    backoff: Backoff = field(default_factory=Backoff)
    stable_after_s: float = 60.0
    remind_every_s: float = 60.0
    state: str = "idle"
    failures: int = 0
    failed_attempts: int = 0
    connects: int = 0
    down_since: float | None = None
    connected_at: float | None = None
    last_error: str | None = None
    last_logged_at: float | None = None

    def on_connected(self, now: float, url: str) -> Decision:
        """Report a successful handshake."""
        down = 0.0 if self.down_since is None else now - self.down_since
        n = self.failed_attempts
        tried = f"{n} failed attempt{'s' if n != 1 else ''}"
        if self.connects == 0:
            message = f"{self.name}: connected to {url}"
            if n:
                message += f" after {tried} over {down:.1f} s"
        else:
            message = f"{self.name}: connected again to {url} after {down:.1f} s down"
            if n:
                message += f" ({tried})"
        self.failed_attempts = 0
        self.state = "connected"
        self.connects += 1
        self.connected_at = now
        self.down_since = None
        self.last_error = None
        self.last_logged_at = now
        # failures is kept until the connection proves stable (see on_disconnected)
        return Decision(0.0, logging.INFO, message)

    def on_disconnected(self, now: float, reason: str) -> Decision:
        """Report that an established connection ended (not by us)."""
        uptime = 0.0 if self.connected_at is None else now - self.connected_at
        if uptime >= self.stable_after_s:
            self.failures = 0
        delay = self.backoff.delay(self.failures)
        self.failures += 1
        self.state = "failing"
        self.failed_attempts = 0
        self.down_since = now
        self.connected_at = None
        self.last_error = None
        self.last_logged_at = now
        message = (
            f"{self.name}: connection lost after {uptime:.1f} s ({reason}); "
            f"reconnecting in {delay:.2f} s"
        )
        return Decision(delay, logging.WARNING, message)

    def on_connect_failed(
        self, now: float, error: str, retry_after_s: float | None = None
    ) -> Decision:
        """Report a failed connection attempt (refused, timeout, HTTP error...)."""
        delay = self.backoff.delay(self.failures)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self.failures += 1
        self.failed_attempts += 1
        if self.down_since is None:
            self.down_since = now
        first_of_streak = self.state != "failing" or self.last_error is None
        if first_of_streak or error != self.last_error:
            level = logging.WARNING
            message = (
                f"{self.name}: cannot connect ({error}); retrying in {delay:.2f} s"
                " (further identical failures are logged at DEBUG)"
            )
            self.last_logged_at = now
        elif self.last_logged_at is None or now - self.last_logged_at >= self.remind_every_s:
            level = logging.WARNING
            message = (
                f"{self.name}: still cannot connect after {self.failed_attempts} attempts over "
                f"{now - self.down_since:.0f} s ({error}); next attempt in {delay:.2f} s"
            )
            self.last_logged_at = now
        else:
            level = logging.DEBUG
            message = (
                f"{self.name}: attempt {self.failed_attempts} failed ({error}); "
                f"retry in {delay:.2f} s"
            )
        self.state = "failing"
        self.last_error = error
        return Decision(delay, level, message)
