"""Redis key names shared by the tee (writer) and the dashboard (reader).

Kept apart from :mod:`sinks.redis_sink` so that readers can name the keys without
importing the Redis client.
"""

from __future__ import annotations


def stream_key(symbol: str, prefix: str = "") -> str:
    """Redis key of a symbol's tick stream: ``{PAIRFLOW_REDIS_PREFIX}ticks:{SYMBOL}``.

    Args:
        symbol: Upper-case Binance symbol.
        prefix: ``PAIRFLOW_REDIS_PREFIX`` (isolates demo and test runs).
    """
    return f"{prefix}ticks:{symbol}"
