"""Sources: everything the flow reads (live Binance, replay files, synthetic ticks)."""
