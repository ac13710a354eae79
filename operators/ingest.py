"""First stage after the source: typed records in, per-symbol tick chunks out.

Every source already emits typed records (:data:`pairflow.records.SourceItem`), so
this stage knows no wire format. It applies the guards every source needs, groups
ticks by symbol for the keyed steps, and counts what it saw:

* a tick of a symbol not in ``PAIRFLOW_SYMBOLS`` -> ``unknown_symbol`` reject;
* a tick stamped more than :data:`FUTURE_TOLERANCE_MS` after the wall clock ->
  ``trade_time_in_future`` reject (one bogus far-future ``T`` would otherwise close
  every bar and make later trades late);
* ``Reject``/``Gap``/``Stat`` pass through; source ``Bar`` records (klines) pass
  through to the bar stream; a ``SourceClock`` is copied to every symbol's key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pairflow.records import Bar, Reject, SourceClock, SourceItem, Stat, Tick, tick_raw
from pairflow.summary import COUNTS
from pairflow.timeutil import now_ms

FUTURE_TOLERANCE_MS = 60_000
"""Trades stamped more than this ahead of the wall clock are rejected (clock skew margin)."""

Chunk = tuple[str, list[Tick] | SourceClock]
"""``(symbol, ticks)``: one source batch's ticks of one symbol, in source order; or
``(symbol, SourceClock)``: a paced source's clock, sent to every symbol."""


def group_ticks(
    items: Iterable[SourceItem],
    symbols: frozenset[str],
    source: str,
    now: int,
    max_trade_time_ms: int | None,
) -> tuple[dict[str, list[Tick]], list[Reject], list[SourceItem]]:
    """Split a source batch into ticks by symbol, rejects and other records.

    Args:
        items: What the source emitted.
        symbols: Accepted symbols.
        source: Source name for the rejects made here.
        now: Wall-clock ms stamped on those rejects.
        max_trade_time_ms: Later trade times are ``trade_time_in_future`` rejects
            (``None``: no check).

    Returns:
        ``(ticks by symbol in input order, rejects, other records in input order)``.
    """
    by_symbol: dict[str, list[Tick]] = {}
    rejects: list[Reject] = []
    other: list[SourceItem] = []
    limit = max_trade_time_ms if max_trade_time_ms is not None else 1 << 62
    for item in items:
        if type(item) is Tick:
            sym = item.symbol
            lst = by_symbol.get(sym)
            if lst is None:
                if sym not in symbols:
                    rejects.append(Reject(now, source, "unknown_symbol", tick_raw(item)))
                    continue
                lst = by_symbol[sym] = []
            if item.trade_time_ms > limit:
                rejects.append(Reject(now, source, "trade_time_in_future", tick_raw(item)))
                continue
            lst.append(item)
        elif type(item) is Reject:
            rejects.append(item)
        else:
            other.append(item)
    return by_symbol, rejects, other


@dataclass
class Ingest:
    """``flat_map_batch`` body: records -> ``(symbol, [Tick])`` chunks and records.

    Every ``stats_every_ms`` it adds ``parse`` counters (``ticks_total``,
    ``ticks_per_s``, ``rejects_total``) as :class:`Stat` records.

    Attributes:
        symbols: Accepted symbols.
        source: Source name for rejects made here.
        stats_every_ms: Period of the counters.
        clock_ms: Wall clock (injectable for tests).
    """

    symbols: frozenset[str]
    source: str
    stats_every_ms: int
    clock_ms: Callable[[], int] = now_ms
    ticks_total: int = 0
    rejects_total: int = 0
    bars_total: int = 0
    last_stat_ms: int = field(default=-1)
    ticks_at_last_stat: int = 0

    def __call__(self, items: list[SourceItem]) -> Iterable[object]:
        """Group one source batch (see :func:`group_ticks`)."""
        now = self.clock_ms()
        out: list[object] = []
        if self.last_stat_ms < 0:
            self.last_stat_ms = now
            # which kind of source wrote this database (the dashboard labels synthetic data)
            out.append(Stat(now, "source", self.source, 1.0))
        by_symbol, rejects, other = group_ticks(
            items, self.symbols, self.source, now, now + FUTURE_TOLERANCE_MS
        )
        out.extend(by_symbol.items())
        out.extend(rejects)
        for item in other:
            if type(item) is SourceClock:
                # every symbol's bar step needs the source's clock (quiet ones too)
                out.extend((sym, item) for sym in self.symbols)
            else:
                out.append(item)
        n_ticks = sum(len(v) for v in by_symbol.values())
        self.ticks_total += n_ticks
        COUNTS["ticks"] += n_ticks
        self.rejects_total += len(rejects)
        self.bars_total += sum(1 for x in other if type(x) is Bar)
        if now - self.last_stat_ms >= self.stats_every_ms:
            rate = (self.ticks_total - self.ticks_at_last_stat) * 1000 / (now - self.last_stat_ms)
            out += [
                Stat(now, "parse", "ticks_total", self.ticks_total),
                Stat(now, "parse", "ticks_per_s", rate),
                Stat(now, "parse", "rejects_total", self.rejects_total),
            ]
            self.last_stat_ms = now
            self.ticks_at_last_stat = self.ticks_total
        return out


def is_chunk(item: object) -> bool:
    """``(symbol, [Tick])`` from :class:`Ingest` (records are never plain tuples)."""
    return type(item) is tuple
