"""The live Binance spot source: combined ``@trade`` streams plus REST backfill.

The package owns Binance's wire format (:mod:`sources.binance.wire`): everything it
emits is already a typed record (``Tick`` batches, ``Reject`` with the raw frame,
``Gap``, ``Stat``), so the rest of the flow never sees Binance JSON.

The source's names load on first use, so that importing :mod:`sources.binance.wire`
(a replay of recorded frames does) does not import aiohttp and websockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sources.binance.source import BinanceSource, BinanceTuning, stream_url

__all__ = ["BinanceSource", "BinanceTuning", "stream_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sources.binance import source

        return getattr(source, name)
    msg = f"module 'sources.binance' has no attribute {name!r}"
    raise AttributeError(msg)
