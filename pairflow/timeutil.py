"""The one place where epoch milliseconds become datetimes (and back).

Every timestamp inside the flow is an ``int`` of milliseconds since the Unix epoch
(Binance's unit). Conversion to aware-UTC :class:`datetime` happens only here, at
the edges (sinks, dashboard), so that no naive or local-time datetime can sneak in.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

UTC = timezone.utc

TF_MS: dict[str, int] = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
"""Length of each supported bar timeframe in milliseconds (the one definition)."""

TIMEFRAMES: tuple[str, ...] = tuple(TF_MS)
"""The bar timeframes, shortest first."""


def ms_to_dt(ms: int) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime (exact to the ms)."""
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)


def dt_to_ms(dt: datetime) -> int:
    """Convert an aware datetime to epoch milliseconds (floor).

    Raises:
        ValueError: if ``dt`` is naive (no tzinfo), which would be ambiguous.
    """
    if dt.tzinfo is None:
        msg = "naive datetime: attach tzinfo=timezone.utc before converting"
        raise ValueError(msg)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def now_utc() -> datetime:
    """Current wall-clock time as an aware UTC datetime."""
    return datetime.now(tz=UTC)
