"""Helpers shared by the test suite, the benchmarks and the tools (not used by the flow).

Paths to the shipped data, the bar/statistics oracles, database generators and
instrumented runs live here so that ``tests/`` and ``benchmarks/`` never import each
other.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this package is installed editable from it)."""

RECORDING = (
    ROOT / "data" / "recordings" / "binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)
"""The shipped real Binance recording (34,419 BTCUSDT/ETHUSDT trades, ~11 min, MIT)."""

REDIS_URL = "redis://127.0.0.1:6379/0"
"""The real Redis server tests and benchmarks use (under a unique key prefix)."""
