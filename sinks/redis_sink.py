"""Redis tee: every accepted tick into the stream ``ticks:{SYMBOL}``.

Entry ID ``{T}-{t}`` (trade time ms, trade id) is strictly increasing per symbol, so
Redis itself refuses a replayed duplicate; such refusals are counted, not errors.
Fields ``p`` and ``q`` are Binance's strings unchanged, ``m`` is ``true``/``false``.
Streams are capped with ``MAXLEN ~ maxlen``.

Speed: one ``EVALSHA`` of a small Lua script per symbol and batch appends up to
:data:`CHUNK` entries server-side (and adds its counts to the stats hash), instead
of one redis-py command per tick (which costs more than the rest of the flow per
tick; see ``benchmarks/``). The tee keeps one batch in flight: a batch's commands
are sent and its replies are read when the next batch is written (or at close,
:meth:`RedisTeePartition.settle`), so the server appends them on the other core
while the flow goes on instead of the flow waiting a round trip per batch.

Redis down (at start or mid-run): the tee never blocks the flow for long and never
raises. Ticks wait in a bounded in-memory backlog (oldest dropped and counted past
``backlog_max``), reconnects back off exponentially (capped), and one log line is
written per state change. A batch whose replies are lost with the connection goes
back to the front of the backlog and is sent again (entries Redis already has are
then refused and counted as duplicates: nothing is lost or doubled). Counters go to
the Redis hash ``pairflow:stats:tee``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pairflow.config import redact_url
from pairflow.records import Tick
from pairflow.redis_keys import stream_key
from pairflow.timeutil import now_ms

log = logging.getLogger(__name__)

CHUNK = 2_000
"""Most entries appended by one script call."""

STATS_KEY = "pairflow:stats:tee"

DUPLICATE_WARN_MIN = 1_000
"""Ticks seen before the "most ticks refused as duplicates" warning may fire."""

_XADD_MANY = """
local added, dup, other, err = 0, 0, 0, ''
for id, p, q, m in string.gmatch(ARGV[2], '(%S+) (%S+) (%S+) (%S+)\\n') do
  local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 'p', p, 'q', q, 'm', m)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'equal or smaller', 1, true) then dup = dup + 1
    else other = other + 1; err = r.err end
  else added = added + 1 end
end
redis.call('HINCRBY', KEYS[2], 'written_total', added)
redis.call('HINCRBY', KEYS[2], 'duplicates_total', dup)
redis.call('HSET', KEYS[2], 'updated_ms', ARGV[3])
return {added, dup, other, err}
"""
"""Appends entries given as one ``"ID p q m\\n"``-per-entry string (one argument per
call keeps client-side packing cost flat; ``p``/``q`` are plain decimals, checked by
the parser, so they contain no spaces). ``KEYS[2]`` is the stats hash, ``ARGV[3]``
the time (ms)."""


@dataclass
class _Sent:
    """One command sent whose reply is not read yet: the ticks it carries (none: stats)."""

    ticks: list[Tick]


class RedisTeePartition(StatelessSinkPartition[list[Tick]]):
    """One worker's tee connection and backlog."""

    def __init__(
        self,
        url: str,
        maxlen: int,
        *,
        key_prefix: str = "",
        backlog_max: int = 1_000_000,
        backoff_cap_s: float = 30.0,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.url = url
        self.maxlen = str(maxlen)
        self.key_prefix = key_prefix
        self.backlog: deque[Tick] = deque()
        self.backlog_max = backlog_max
        self.backoff_cap_ms = int(backoff_cap_s * 1000)
        self.clock_ms = clock_ms
        import redis  # here, not at module import: it costs ~1 s of start-up

        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=5.0, health_check_interval=0
        )
        self.conn: Any = None  # the tee's own connection (redis.Connection), opened on use
        self.sha = ""
        self.sent: list[_Sent] = []  # in flight: sent, replies not read yet
        self.stats_key = f"{key_prefix}{STATS_KEY}"
        self.up: bool | None = None  # unknown until the first replies
        self.retry_at_ms = 0
        self.backoff_ms = 0
        self.written_total = 0
        self.duplicates_total = 0
        self.dropped_total = 0
        self.errors_total = 0
        self.warned_duplicates = False
        self._stats_reported = (0, 0)  # (dropped, errors) last written to the hash

    def write_batch(self, items: list[list[Tick]]) -> None:
        """Queue the ticks, read the previous batch's replies, send (never raises)."""
        for chunk in items:
            self.backlog.extend(chunk)
        self._bound_backlog()
        if self.clock_ms() < self.retry_at_ms:
            return
        self._exchange()

    def settle(self) -> None:
        """Read the replies of everything sent (close, tests); never raises."""
        if self.sent:
            self._collect()

    def _bound_backlog(self) -> None:
        overflow = len(self.backlog) - self.backlog_max
        if overflow > 0:
            for _ in range(overflow):
                self.backlog.popleft()
            self.dropped_total += overflow
            log.warning("Redis tee backlog full: dropped %d oldest ticks", overflow)

    def _exchange(self) -> None:
        """Replies of the batch in flight, then send the backlog (one batch in flight)."""
        import redis

        if self.sent and not self._collect():
            return
        if not self.backlog:
            return
        try:
            self._send()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._down(exc)

    def _connection(self) -> Any:
        """The tee's connection, opened (and the script loaded on it) if needed."""
        if self.conn is None:
            conn = self.client.connection_pool.make_connection()
            try:
                conn.send_command("SCRIPT", "LOAD", _XADD_MANY)
                self.sha = conn.read_response().decode()
            except BaseException:
                conn.disconnect()
                raise
            self.conn = conn
        return self.conn

    def _send(self) -> None:
        """Send the backlog as script calls (per symbol, :data:`CHUNK` ticks a call)."""
        conn = self._connection()
        by_symbol: dict[str, list[Tick]] = {}
        for tick in self.backlog:
            by_symbol.setdefault(tick.symbol, []).append(tick)
        commands: list[tuple[Any, ...]] = []
        sent: list[_Sent] = []
        now = str(self.clock_ms())
        for symbol, ticks in by_symbol.items():
            key = stream_key(symbol, self.key_prefix)
            for i in range(0, len(ticks), CHUNK):
                part = ticks[i : i + CHUNK]
                entries = "".join(
                    [
                        f"{t.trade_time_ms}-{t.trade_id} {t.p} {t.q} "
                        f"{'true' if t.buyer_is_maker else 'false'}\n"
                        for t in part
                    ]
                )
                commands.append(
                    ("EVALSHA", self.sha, 2, key, self.stats_key, self.maxlen, entries, now)
                )
                sent.append(_Sent(part))
        if (self.dropped_total, self.errors_total) != self._stats_reported:
            self._stats_reported = (self.dropped_total, self.errors_total)
            commands.append(
                ("HSET", self.stats_key, "dropped_total", self.dropped_total,
                 "errors_total", self.errors_total)
            )  # fmt: skip
            sent.append(_Sent([]))
        self.sent = sent
        self.backlog.clear()
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except BaseException:
            self._drop_connection()
            self._requeue()
            raise

    def _requeue(self) -> None:
        """Put the ticks in flight back in front of the backlog (their fate is unknown)."""
        for item in reversed(self.sent):
            self.backlog.extendleft(reversed(item.ticks))
        self.sent = []
        self._bound_backlog()

    def _collect(self) -> bool:
        """Read the replies in flight; False if the connection failed (backlog requeued)."""
        import redis

        conn = self.conn
        added_n = dup_n = 0
        resend = [False] * len(self.sent)  # NOSCRIPT: sent again with the reloaded script
        try:
            for i, item in enumerate(self.sent):
                try:
                    res = conn.read_response(disconnect_on_error=True)
                except redis.exceptions.NoScriptError:  # SCRIPT FLUSH while connected
                    resend[i] = True
                    continue
                except redis.ResponseError as exc:  # e.g. a user's key is in the way
                    self.errors_total += len(item.ticks)
                    log.error("Redis tee: %s; %d ticks not teed", exc, len(item.ticks))
                    self.sent[i] = _Sent([])
                    continue
                if item.ticks:  # else the stats HSET
                    added, dup, other, err = res
                    added_n += int(added)
                    dup_n += int(dup)
                    if int(other):
                        self.errors_total += int(other)
                        log.error("Redis tee: %d entries refused: %s", int(other), err)
                if not resend[i]:
                    self.sent[i] = _Sent([])  # answered: not requeued if a later reply is lost
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._drop_connection()
            self.sent = [s for s in self.sent if s.ticks]  # unanswered or NOSCRIPT, in order
            self._requeue()
            self._count(added_n, dup_n)
            self._down(exc)
            return False
        self.sent = [s for s, again in zip(self.sent, resend, strict=True) if again]
        if self.sent:
            self._drop_connection()  # reconnecting reloads the script
            self._requeue()
        self._count(added_n, dup_n)
        if self.up is not True:
            if self.up is False:
                log.warning("Redis tee: %s reachable again, backlog written", redact_url(self.url))
            self.up = True
        self.backoff_ms = 0
        return True

    def _count(self, added: int, dup: int) -> None:
        self.written_total += added
        self.duplicates_total += dup
        self._warn_if_mostly_duplicates()

    def _drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None

    def _warn_if_mostly_duplicates(self) -> None:
        """Say so once, loudly, when Redis refuses most of this run's ticks.

        Redis refuses an entry whose ID ``{T}-{t}`` is not above the stream's last
        one: a replay of ticks that are already there, or a stream that another run
        (e.g. the demo, whose times are shifted to now) filled with newer IDs.
        """
        seen = self.written_total + self.duplicates_total
        if self.warned_duplicates or seen < DUPLICATE_WARN_MIN or 2 * self.duplicates_total < seen:
            return
        self.warned_duplicates = True
        log.warning(
            "Redis tee: %d of %d ticks so far were refused as duplicates: the streams "
            "%sticks:{SYMBOL} at %s already hold these or newer trade IDs (an earlier run "
            "of the same data, or another run writing the same keys). Bars and analytics "
            "are unaffected. To tee this run, use its own keys (PAIRFLOW_REDIS_PREFIX=run1:) "
            "or delete the old streams (redis-cli DEL %sticks:BTCUSDT ...).",
            self.duplicates_total,
            seen,
            self.key_prefix,
            redact_url(self.url),
            self.key_prefix,
        )

    def _down(self, exc: Exception) -> None:
        self.backoff_ms = min(max(2 * self.backoff_ms, 100), self.backoff_cap_ms)
        self.retry_at_ms = self.clock_ms() + self.backoff_ms
        if self.up is not False:
            log.warning(
                "Redis tee: cannot write to %s (%s); bars keep flowing, ticks wait in a "
                "backlog (max %d) and the tee retries with backoff up to %.0f s",
                redact_url(self.url),
                exc.__class__.__name__,
                self.backlog_max,
                self.backoff_cap_ms / 1000,
            )
            self.up = False

    def close(self) -> None:
        """Last attempt to write the backlog; says how much could not be teed."""
        self.settle()
        if self.backlog:
            self.retry_at_ms = 0
            self._exchange()
            self.settle()
        if self.backlog:
            log.error("Redis tee: stopping with %d ticks not teed (Redis down)", len(self.backlog))
        self._drop_connection()
        self.client.close()


class RedisTeeSink(DynamicSink[list[Tick]]):
    """Tee of validated ticks into Redis streams, one partition per worker.

    Args:
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        maxlen: Approximate cap per stream (``MAXLEN ~``).
        key_prefix: Prepended to every key (tests use a unique one).
        backlog_max: Ticks kept while Redis is down before the oldest are dropped.
    """

    def __init__(
        self, url: str, maxlen: int, *, key_prefix: str = "", backlog_max: int = 1_000_000
    ) -> None:
        self.url = url
        self.maxlen = maxlen
        self.key_prefix = key_prefix
        self.backlog_max = backlog_max

    def build(self, step_id: str, worker_index: int, worker_count: int) -> RedisTeePartition:
        """A connection per worker (ticks of one symbol always come from one worker)."""
        return RedisTeePartition(
            self.url, self.maxlen, key_prefix=self.key_prefix, backlog_max=self.backlog_max
        )
