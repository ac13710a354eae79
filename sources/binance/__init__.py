"""The live Binance spot source: combined ``@trade`` streams plus REST backfill.

The package owns Binance's wire format (:mod:`sources.binance.wire`): everything it
emits is already a typed record (``Tick`` batches, ``Reject`` with the raw frame,
``Gap``, ``Stat``), so the rest of the flow never sees Binance JSON.
"""

from sources.binance.source import BinanceSource, BinanceTuning, stream_url

__all__ = ["BinanceSource", "BinanceTuning", "stream_url"]
