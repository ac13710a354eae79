"""Small builders of Tick records for unit tests."""

from __future__ import annotations

from pairflow.records import Tick

BASE_MS = 1_723_161_600_000  # 2024-08-09T00:00:00Z, aligned to 5 minutes


def tick(
    trade_id: int,
    t_ms: int,
    price: float = 100.0,
    qty: float = 1.0,
    *,
    symbol: str = "BTCUSDT",
    maker: bool = False,
) -> Tick:
    """A valid tick; ``t_ms`` is relative to :data:`BASE_MS`."""
    return Tick(
        symbol=symbol,
        trade_id=trade_id,
        price=price,
        qty=qty,
        trade_time_ms=BASE_MS + t_ms,
        event_time_ms=BASE_MS + t_ms,
        buyer_is_maker=maker,
        p=f"{price:.8f}",
        q=f"{qty:.8f}",
    )
