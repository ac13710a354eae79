"""Timeouts and limits of the live Binance input (:class:`BinanceTuning`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from pairflow.config import ConfigError
from pairflow.parsing import parse_assignments

__all__ = ["MAX_STREAMS_PER_CONNECTION", "BinanceTuning"]

MAX_STREAMS_PER_CONNECTION = 1024
"""Binance's limit of streams on one combined-stream connection."""


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
        max_buffer: Records buffered for Bytewax; beyond it live trades are dropped
            (counted) and refetched from REST as a gap, while reading goes on.
        max_batch: Largest batch returned by ``next_batch``.
        poll_interval_s: ``next_awake`` delay of an idle partition.
        stop_grace_s: On stop, let running backfills finish this long.
        warmup_give_up_s: A warm-up REST request failing this long is given up
            (the flow then runs live with a partial warm-up, reported as a ``Stat``).
        rest_ip_weight_cap: When ``X-MBX-USED-WEIGHT-1M`` (the whole IP's use this
            minute, other processes included) reaches this, REST waits for the next
            minute (Binance's limit: 6000).
        record_flush_s: A recording (``PAIRFLOW_RECORD``) is flushed this often.
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
    warmup_give_up_s: float = 30.0
    rest_ip_weight_cap: float = 5000.0
    record_flush_s: float = 1.0

    @classmethod
    def parse(cls, text: str, base: BinanceTuning | None = None) -> BinanceTuning:
        """Parse ``key=value,key=value`` overrides (``PAIRFLOW_BINANCE_TUNING``).

        Raises:
            ConfigError: on an unknown key or a value that is not a positive number.
        """
        base = base or cls()
        kinds = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in parse_assignments(
            "BINANCE_TUNING", text, sorted(kinds), ("KEY", "VALUE")
        ):
            try:
                number = int(value) if kinds[key] in ("int", int) else float(value)
            except ValueError:
                number = math.nan
            if not (number > 0) or math.isinf(number):
                msg = f"PAIRFLOW_BINANCE_TUNING: {key} must be a positive number, got {value!r}"
                raise ConfigError(msg)
            changes[key] = number
        return replace(base, **changes)

    def overrides(self) -> str:
        """The ``key=value,...`` text that :meth:`parse` turns back into this tuning."""
        default = type(self)()
        return ",".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )
