"""Per-symbol trade-id sequencing of the live Binance input (no I/O).

Binance trade ids are contiguous per symbol, so the id alone tells whether anything
was missed. :class:`TradeSequencer` turns the :class:`~pairflow.records.Tick` records
of one or more (possibly overlapping) WebSocket connections into one stream per
symbol with strictly increasing ids, no duplicates and, as long as REST backfill
works, no holes:

- a tick whose id is ``last + 1`` goes straight out;
- an id ``<= last`` is a duplicate (overlapping connections, a REST page that already
  covered it) and is dropped;
- an id beyond ``last + 1`` opens a gap: the symbol's WebSocket ticks are *held*
  while the caller backfills ``last + 1 .. first held - 1`` from REST (emitting
  those with :meth:`TradeSequencer.emit_backfilled`), then the held ticks are
  released in id order (:meth:`TradeSequencer.drain`).

Frames are decoded where they arrive (:func:`classify_frame`), so everything held
or backfilled is already a ``Tick``; a frame that is not a trade of a configured
symbol becomes a :class:`~pairflow.records.Reject` with its raw text and the reason
(:meth:`TradeSequencer.reject`), never a silent drop. The caller (one asyncio loop)
owns all calls, so no locking.

Aggregates (``Tick.count > 1``, from ``aggTrades`` on market-data-only hosts) cover
ids ``first_trade_id .. trade_id`` at one price; see :meth:`emit_backfilled` for the
one case that cannot be reproduced exactly (an aggregate straddling ``last``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from pairflow.records import Reject, SourceItem, Tick
from sources.binance.wire import parse_frame, raw_text, tick_frame

__all__ = [
    "FrameInfo",
    "SequencerCounters",
    "SymbolState",
    "TradeSequencer",
    "backfill_frame",
    "classify_frame",
]

Frame = str | bytes
Emit = Callable[[SourceItem, str | None, int | None], None]
"""Output callback: ``(record, symbol, trade_id)``; symbol/id are ``None`` for non-trades."""


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a raw WebSocket message is.

    Attributes:
        kind: ``trade`` (a valid trade of a known symbol), ``shutdown`` (a
            ``serverShutdown`` event) or ``other`` (anything else: a reject).
        tick: The decoded trade (``trade`` only).
        reason: Why the frame is not a trade (``other`` only).
    """

    kind: str
    tick: Tick | None = None
    reason: str = ""

    @property
    def symbol(self) -> str | None:
        """Symbol of a trade (``None`` otherwise)."""
        return self.tick.symbol if self.tick is not None else None

    @property
    def trade_id(self) -> int | None:
        """Trade id ``t`` of a trade (``None`` otherwise)."""
        return self.tick.trade_id if self.tick is not None else None


_SHUTDOWN = FrameInfo("shutdown")


def _is_shutdown(raw: Frame) -> bool:
    """Recognise ``serverShutdown`` in any envelope Binance uses for events."""
    needle = b"serverShutdown" if isinstance(raw, (bytes, bytearray)) else "serverShutdown"
    if needle not in raw:  # type: ignore[operator]
        return False
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(obj, dict):
        return False
    if obj.get("e") == "serverShutdown":
        return True
    for key in ("event", "data"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner.get("e") == "serverShutdown":
            return True
    return False


def classify_frame(raw: Frame, symbols: frozenset[str] | set[str]) -> FrameInfo:
    """Decode a raw combined-stream message.

    Args:
        raw: The message exactly as received.
        symbols: Upper-case symbols this input subscribed to.

    Returns:
        ``trade`` with the validated :class:`Tick` (:func:`wire.parse_frame`), else
        ``shutdown`` or ``other`` with the reject reason; never raises.
    """
    parsed = parse_frame(raw, frozenset(symbols))
    if type(parsed) is not str:
        return FrameInfo("trade", parsed)  # type: ignore[arg-type]
    if _is_shutdown(raw):
        return _SHUTDOWN
    return FrameInfo("other", reason=parsed)  # type: ignore[arg-type]


def backfill_frame(symbol: str, trade: Mapping[str, object]) -> str:
    """The combined-stream frame of a REST ``historicalTrades`` row (for tools and tests).

    REST has no event time, so ``E`` is the trade time.
    """
    return orjson.dumps(
        {
            "stream": f"{symbol.lower()}@trade",
            "data": {
                "e": "trade",
                "E": trade["time"],
                "s": symbol,
                "t": trade["id"],
                "p": trade["price"],
                "q": trade["qty"],
                "T": trade["time"],
                "m": trade["isBuyerMaker"],
                "M": trade.get("isBestMatch", True),
            },
        }
    ).decode()


@dataclass
class SymbolState:
    """Sequencing state of one symbol.

    Attributes:
        last_id: Last trade id emitted (``None`` until the first trade of a fresh start).
        last_time_ms: Trade time of that trade (where an ``aggTrades`` fallback starts).
        held: WebSocket ticks waiting for a backfill to finish, by trade id.
        busy: A backfill (or the warm start) owns the symbol (ticks are held).
        catchup_due: After a reconnect, no trade has been seen yet; if none comes
            soon, the caller asks REST whether anything happened meanwhile.
    """

    last_id: int | None = None
    last_time_ms: int | None = None
    held: dict[int, Tick] = field(default_factory=dict)
    busy: bool = False
    catchup_due: bool = False


@dataclass
class SequencerCounters:
    """Cumulative counters (they feed the ``pipeline_stats`` table)."""

    ticks_total: int = 0
    ws_trades_total: int = 0
    trades_backfilled_total: int = 0
    duplicates_dropped_total: int = 0
    passed_through_total: int = 0
    gaps_found_total: int = 0
    gaps_filled_total: int = 0
    gaps_unfilled_total: int = 0
    overflow_dropped_total: int = 0
    straddling_aggregates_total: int = 0


class TradeSequencer:
    """Orders, dedupes and gap-checks the trades of a set of symbols.

    Args:
        symbols: Upper-case symbols handled.
        emit: Output callback ``(record, symbol, trade_id)``.
        source: Name written into ``rejects.source``.
        wall_ms: Wall clock (stamps rejects).
    """

    def __init__(
        self,
        symbols: Iterable[str],
        emit: Emit,
        *,
        source: str = "binance",
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.symbols = frozenset(symbols)
        self.states: dict[str, SymbolState] = {s: SymbolState() for s in self.symbols}
        self.counters = SequencerCounters()
        self._emit = emit
        self._source = source
        self._wall_ms = wall_ms or (lambda: 0)
        self.on_tick: Callable[[Tick], None] | None = None
        """Called with every trade emitted (the recorder hooks in here)."""

    def resume(self, last_ids: Mapping[str, int]) -> None:
        """Start from a recovery snapshot: the next trade expected is ``last + 1``."""
        for sym, last in last_ids.items():
            if sym in self.states and isinstance(last, int):
                self.states[sym].last_id = last

    def reject(self, raw: Frame, reason: str) -> None:
        """Emit a frame that is not a usable trade as a ``Reject`` (raw text kept)."""
        self.counters.passed_through_total += 1
        self._emit(Reject(self._wall_ms(), self._source, reason, raw_text(raw)), None, None)

    def on_trade(self, tick: Tick) -> bool:
        """Handle a trade from a WebSocket connection.

        Returns:
            True if a gap was just found and the caller must start a backfill task
            for the symbol (which then owns it until :meth:`release`).
        """
        symbol, trade_id = tick.symbol, tick.trade_id
        st = self.states[symbol]
        st.catchup_due = False
        if st.last_id is None and not st.busy:
            self._out(st, tick)
            self.counters.ws_trades_total += 1
            return False
        if st.last_id is not None and trade_id <= st.last_id:
            self.counters.duplicates_dropped_total += 1
            return False
        if st.busy:
            if trade_id in st.held:
                self.counters.duplicates_dropped_total += 1
            else:
                st.held[trade_id] = tick
            return False
        assert st.last_id is not None
        if trade_id == st.last_id + 1:
            self._out(st, tick)
            self.counters.ws_trades_total += 1
            return False
        st.held[trade_id] = tick
        st.busy = True
        return True

    def overflow(self, tick: Tick) -> bool:
        """A live trade that found the output buffer full: drop it, remember the hole.

        The socket keeps being read (pongs keep flowing); the dropped ids become a
        gap as soon as a later trade of the symbol is accepted, and are backfilled.

        Returns:
            True if the caller must start a backfill task (see :meth:`on_trade`).
        """
        self.counters.overflow_dropped_total += 1
        st = self.states[tick.symbol]
        st.catchup_due = True  # a quiet symbol: the catch-up asks REST
        return False

    def claim(self, symbol: str, *, fresh: bool = False) -> bool:
        """Take ownership of ``symbol`` for a catch-up backfill or the warm start.

        Args:
            symbol: The symbol.
            fresh: Also claim a symbol that has never traded in this run (warm start).

        Returns:
            False if the symbol is already owned (or, unless ``fresh``, has no last id).
        """
        st = self.states[symbol]
        if st.busy or (st.last_id is None and not fresh):
            return False
        st.busy = True
        return True

    def drain(self, symbol: str) -> None:
        """Release held ticks that continue the sequence; drop held duplicates."""
        st = self.states[symbol]
        if not st.held:
            return
        for tid in sorted(st.held):
            if st.last_id is not None and tid <= st.last_id:
                del st.held[tid]
                self.counters.duplicates_dropped_total += 1
            elif st.last_id is None or tid == st.last_id + 1:
                self._out(st, st.held.pop(tid))
                self.counters.ws_trades_total += 1
            else:
                break

    def next_gap(self, symbol: str) -> tuple[int, int] | None:
        """After :meth:`drain`, the hole before the first held tick, if any."""
        st = self.states[symbol]
        if not st.held or st.last_id is None:
            return None
        first = min(st.held)
        return (st.last_id + 1, first - 1) if first > st.last_id + 1 else None

    def upper_bound(self, symbol: str) -> int | None:
        """Highest id a backfill may emit now (below the first held tick), or None."""
        st = self.states[symbol]
        return min(st.held) - 1 if st.held else None

    def emit_backfilled(self, tick: Tick) -> int:
        """Emit a REST trade (or aggregate) if it continues the sequence.

        An aggregate ``f..l`` with ``f <= last < l`` straddles trades already emitted
        and cannot be split (the per-trade quantities are unknown): it is *not*
        emitted, ``last`` moves to ``l`` and the ``l - last`` trades it covered count
        as not recovered (the gap is then ``unfilled`` by that many; counted in
        ``straddling_aggregates_total``). Exact trades never straddle.

        Returns:
            The number of trades emitted (0, 1, or ``count`` of an aggregate).
        """
        st = self.states[tick.symbol]
        if st.last_id is not None and tick.trade_id <= st.last_id:
            return 0
        if st.last_id is not None and tick.first_trade_id <= st.last_id:
            self.counters.straddling_aggregates_total += 1
            st.last_id = tick.trade_id
            return 0
        self._out(st, tick)
        self.counters.trades_backfilled_total += tick.count
        return tick.count

    def skip_to(self, symbol: str, trade_id: int) -> None:
        """Give up on ids up to ``trade_id`` (an unfillable gap)."""
        st = self.states[symbol]
        if st.last_id is None or trade_id > st.last_id:
            st.last_id = trade_id

    def release(self, symbol: str) -> None:
        """End a backfill: hand the symbol back to the live path."""
        st = self.states[symbol]
        self.drain(symbol)
        st.busy = False

    def last_ids(self) -> dict[str, int]:
        """Last emitted id per symbol that has one."""
        return {s: st.last_id for s, st in self.states.items() if st.last_id is not None}

    def held_count(self) -> int:
        """Ticks currently held across symbols."""
        return sum(len(st.held) for st in self.states.values())

    def _out(self, st: SymbolState, tick: Tick) -> None:
        st.last_id = tick.trade_id
        st.last_time_ms = tick.trade_time_ms
        self.counters.ticks_total += 1
        if self.on_tick is not None:
            self.on_tick(tick)
        self._emit(tick, tick.symbol, tick.trade_id)


def tick_to_frame(tick: Tick) -> str:
    """Alias of :func:`sources.binance.wire.tick_frame` (kept for callers of this module)."""
    return tick_frame(tick)
