"""History in: Binance public-data dumps and replay progress (used by :mod:`sources.replay`)."""
