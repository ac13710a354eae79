"""Cheap synthetic trade histories for the fake exchange (SYNTHETIC, never real data).

A warm-start test needs hours of history (``21 x 5m`` = 105 min for a 5m window of
20), but not hours of *dense* history: bars before ``t5`` come from klines, so a
sparse stream of trades is just as good a test of the kline semantics (and
exercises 0-trade klines), while the span from ``t5`` on (exact trades with ids)
can be denser to page ``historicalTrades``. :func:`synthetic_frames` builds such a
history in a few milliseconds: two cointegrated log-price paths (X a random walk,
``ln Y = a + b ln X + OU noise``), Poisson trade times per symbol with a rate that
may change over time, optional quiet spans per symbol, contiguous trade ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

__all__ = ["Segment", "synthetic_frames"]


@dataclass(frozen=True)
class Segment:
    """Trades at ``rate_per_s`` (per symbol) for ``start_ms <= T < end_ms``."""

    start_ms: int
    end_ms: int
    rate_per_s: float


def _paths(n_s: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-second log prices of Y (~60000) and X (~2600), cointegrated."""
    x = np.log(2600.0) + np.cumsum(rng.normal(0.0, 2e-4, n_s))
    noise = np.zeros(n_s)
    eps = rng.normal(0.0, 1e-4, n_s)
    for i in range(1, n_s):
        noise[i] = 0.98 * noise[i - 1] + eps[i]
    y = np.log(60000.0) - 1.1 * np.log(2600.0) + 1.1 * x + noise
    return y, x


def synthetic_frames(
    symbols: Sequence[str],
    segments: Sequence[Segment],
    *,
    quiet: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    seed: int = 12,
    first_id: Mapping[str, int] | None = None,
    keep: Callable[[str, int], bool] | None = None,
) -> list[str]:
    """Combined-stream ``trade`` frames of a synthetic market, in time order.

    Args:
        symbols: Two symbols ``(Y, X)`` (a third or more follow X's path, scaled).
        segments: Consecutive time spans and their trade rate per symbol.
        quiet: Per symbol, ``[start_ms, end_ms)`` spans without a trade.
        seed: Randomness (same seed, same frames).
        first_id: First trade id per symbol (default ``1_000_000`` apart).
        keep: Extra filter ``(symbol, T) -> bool``.

    Returns:
        Frames as text, sorted by trade time (ties: symbol order), ids contiguous
        per symbol in time order.
    """
    rng = np.random.default_rng(seed)
    t0 = min(s.start_ms for s in segments)
    t1 = max(s.end_ms for s in segments)
    n_s = (t1 - t0) // 1000 + 2
    y_path, x_path = _paths(n_s, rng)
    rows: list[tuple[int, int, str, dict[str, object]]] = []
    for k, sym in enumerate(symbols):
        path = y_path if k == 0 else x_path + np.log(1.0 + 0.1 * (k - 1))
        times: list[np.ndarray] = []
        for seg in segments:
            n = rng.poisson(seg.rate_per_s * (seg.end_ms - seg.start_ms) / 1000.0)
            times.append(np.sort(rng.integers(seg.start_ms, seg.end_ms, n)))
        ts = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
        for lo, hi in (quiet or {}).get(sym, ()):
            ts = ts[(ts < lo) | (ts >= hi)]
        if keep is not None:
            ts = np.array([t for t in ts if keep(sym, int(t))], dtype=np.int64)
        base = (first_id or {}).get(sym, 1_000_000 * (k + 1))
        jitter = rng.normal(0.0, 5e-5, len(ts))
        qtys = rng.integers(1, 200_000, len(ts))
        makers = rng.random(len(ts)) < 0.5
        for i, t in enumerate(ts.tolist()):
            price = float(np.exp(path[(t - t0) // 1000] + jitter[i]))
            data = {
                "e": "trade",
                "E": t + 1,
                "s": sym,
                "t": base + i,
                "p": f"{price:.2f}000000",
                "q": f"0.{int(qtys[i]):05d}000",
                "T": t,
                "m": bool(makers[i]),
                "M": True,
            }
            rows.append((t, k, f"{sym.lower()}@trade", data))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [orjson.dumps({"stream": s, "data": d}).decode() for _, _, s, d in rows]
