"""Redis stream lengths for the health panel (the URL never reaches the page unredacted)."""

from __future__ import annotations

from collections.abc import Sequence

from dashboard.db import DashboardDataError
from dashboard.pair_view import is_valid_symbol
from pairflow.config import redact_url
from pairflow.redis_keys import stream_key


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL replaced by its redacted form and no password left in it."""
    text = text.replace(url, redact_url(url))
    creds = url.partition("://")[2].rpartition("@")[0]
    password = creds.partition(":")[2]
    return text.replace(password, "***") if password else text


def redis_stream_lengths(
    url: str, symbols: Sequence[str], prefix: str = "", timeout_s: float = 0.3
) -> dict[str, int]:
    """XLEN of each symbol's tick stream (:func:`pairflow.redis_keys.stream_key`).

    Args:
        url: Redis URL (may hold a password; it never appears in an error message).
        symbols: Symbols; invalid ones are skipped.
        prefix: ``PAIRFLOW_REDIS_PREFIX``, as the tee uses it.
        timeout_s: Connect/read timeout.

    Returns:
        Stream length by stream key (0 for a stream that does not exist).

    Raises:
        DashboardDataError: Redis unreachable or erroring (message redacted).
    """
    import redis  # noqa: PLC0415 - optional at run time

    keys = [stream_key(s, prefix) for s in symbols if is_valid_symbol(s)]
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.xlen(key)
            lengths = pipe.execute()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        msg = f"Redis at {redact_url(url)} is unreachable ({type(exc).__name__}: {exc})"
        raise DashboardDataError(_scrub(msg, url)) from None
    return {key: int(n) for key, n in zip(keys, lengths, strict=True)}
