"""Per-symbol trade-id sequencing of the live Binance input (no I/O).

Binance trade ids are contiguous per symbol, so the id alone tells whether anything
was missed. :class:`TradeSequencer` turns the raw frames of one or more (possibly
overlapping) WebSocket connections into one stream per symbol with strictly
increasing ids, no duplicates and, as long as REST backfill works, no holes:

- a frame whose id is ``last + 1`` goes straight out;
- an id ``<= last`` is a duplicate (overlapping connections, a REST page that already
  covered it) and is dropped;
- an id beyond ``last + 1`` opens a gap: the symbol's WebSocket frames are *held*
  while the caller backfills ``last + 1 .. first held - 1`` from REST (emitting
  those with :meth:`TradeSequencer.emit_backfilled`), then the held frames are
  released in id order (:meth:`TradeSequencer.drain`).

Frames that are not well-formed trades of a configured symbol are passed through
untouched, so the flow's parse step rejects them with a reason; they are never
dropped silently. The caller (one asyncio loop) owns all calls, so no locking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "FrameInfo",
    "SymbolState",
    "TradeSequencer",
    "backfill_frame",
    "classify_frame",
]

Frame = str | bytes
Emit = Callable[[object, str | None, int | None], None]
"""Output callback: ``(item, symbol, trade_id)``; symbol/id are ``None`` for non-trades."""


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a raw WebSocket message is.

    Attributes:
        kind: ``trade`` (a well-formed trade of a known symbol), ``shutdown`` (a
            ``serverShutdown`` event) or ``other`` (anything else: passed through).
        symbol: Upper-case symbol (trades only).
        trade_id: ``t`` (trades only).
        trade_time_ms: ``T`` (trades only).
    """

    kind: str
    symbol: str | None = None
    trade_id: int | None = None
    trade_time_ms: int | None = None


_OTHER = FrameInfo("other")
_SHUTDOWN = FrameInfo("shutdown")


def _is_shutdown(obj: dict[str, Any]) -> bool:
    """Recognise ``serverShutdown`` in any envelope Binance uses for events."""
    if obj.get("e") == "serverShutdown":
        return True
    for key in ("event", "data"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner.get("e") == "serverShutdown":
            return True
    return False


def classify_frame(raw: Frame, symbols: frozenset[str] | set[str]) -> FrameInfo:
    """Classify a raw combined-stream message.

    A frame counts as a trade only if it is a JSON object whose ``data`` has
    ``e == "trade"``, a known symbol ``s``, integer ``t`` and ``T`` and string ``p``
    and ``q``; only those take part in id sequencing. Everything else is ``other``
    (or ``shutdown``) and is the parse step's business.

    Args:
        raw: The message exactly as received.
        symbols: Upper-case symbols this input subscribed to.

    Returns:
        The classification; never raises.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _OTHER
    if not isinstance(obj, dict):
        return _OTHER
    data = obj.get("data")
    if isinstance(data, dict) and data.get("e") == "trade":
        sym, tid, ttime = data.get("s"), data.get("t"), data.get("T")
        if (
            sym in symbols
            and type(tid) is int
            and type(ttime) is int
            and isinstance(data.get("p"), str)
            and isinstance(data.get("q"), str)
        ):
            return FrameInfo("trade", sym, tid, ttime)
        return _OTHER
    if _is_shutdown(obj):
        return _SHUTDOWN
    return _OTHER


def backfill_frame(symbol: str, trade: Mapping[str, Any]) -> str:
    """Build the combined-stream frame of a REST ``historicalTrades`` row.

    The REST row ``{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}``
    becomes ``{"stream":"<sym>@trade","data":{"e":"trade","E":time,"s":SYM,"t":id,
    "p":price,"q":qty,"T":time,"m":isBuyerMaker,"M":isBestMatch}}``: the same envelope
    and field order as the live stream. REST has no event time, so ``E`` is the
    trade time.
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
        held: WebSocket frames waiting for a backfill to finish, by trade id.
        busy: A backfill task currently owns the symbol (frames are held).
        catchup_due: After a reconnect, no trade has been seen yet; if none comes
            soon, the caller asks REST whether anything happened meanwhile.
    """

    last_id: int | None = None
    held: dict[int, Frame] = field(default_factory=dict)
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


class TradeSequencer:
    """Orders, dedupes and gap-checks the trades of a set of symbols.

    Args:
        symbols: Upper-case symbols handled.
        emit: Output callback ``(item, symbol, trade_id)``.
    """

    def __init__(self, symbols: Iterable[str], emit: Emit) -> None:
        self.symbols = frozenset(symbols)
        self.states: dict[str, SymbolState] = {s: SymbolState() for s in self.symbols}
        self.counters = SequencerCounters()
        self._emit = emit

    def resume(self, last_ids: Mapping[str, int]) -> None:
        """Start from a recovery snapshot: the next trade expected is ``last + 1``."""
        for sym, last in last_ids.items():
            if sym in self.states and isinstance(last, int):
                self.states[sym].last_id = last

    def passthrough(self, raw: Frame) -> None:
        """Emit a frame that is not a sequenced trade (the parse step judges it)."""
        self.counters.passed_through_total += 1
        self._emit(raw, None, None)

    def on_trade(self, symbol: str, trade_id: int, raw: Frame) -> bool:
        """Handle a trade frame from a WebSocket connection.

        Returns:
            True if a gap was just found and the caller must start a backfill task
            for ``symbol`` (which then owns it until :meth:`release`).
        """
        st = self.states[symbol]
        st.catchup_due = False
        if st.last_id is None and not st.busy:
            self._out(st, symbol, trade_id, raw)
            self.counters.ws_trades_total += 1
            return False
        if st.last_id is not None and trade_id <= st.last_id:
            self.counters.duplicates_dropped_total += 1
            return False
        if st.busy:
            if trade_id in st.held:
                self.counters.duplicates_dropped_total += 1
            else:
                st.held[trade_id] = raw
            return False
        assert st.last_id is not None
        if trade_id == st.last_id + 1:
            self._out(st, symbol, trade_id, raw)
            self.counters.ws_trades_total += 1
            return False
        st.held[trade_id] = raw
        st.busy = True
        return True

    def claim(self, symbol: str) -> bool:
        """Take ownership of ``symbol`` for a catch-up backfill (no gap known yet).

        Returns:
            False if the symbol is already owned or has never traded in this run.
        """
        st = self.states[symbol]
        if st.busy or st.last_id is None:
            return False
        st.busy = True
        return True

    def drain(self, symbol: str) -> None:
        """Release held frames that continue the sequence; drop held duplicates."""
        st = self.states[symbol]
        if not st.held:
            return
        for tid in sorted(st.held):
            if st.last_id is not None and tid <= st.last_id:
                del st.held[tid]
                self.counters.duplicates_dropped_total += 1
            elif st.last_id is None or tid == st.last_id + 1:
                self._out(st, symbol, tid, st.held.pop(tid))
                self.counters.ws_trades_total += 1
            else:
                break

    def next_gap(self, symbol: str) -> tuple[int, int] | None:
        """After :meth:`drain`, the hole before the first held frame, if any."""
        st = self.states[symbol]
        if not st.held or st.last_id is None:
            return None
        first = min(st.held)
        return (st.last_id + 1, first - 1) if first > st.last_id + 1 else None

    def upper_bound(self, symbol: str) -> int | None:
        """Highest id a backfill may emit now (below the first held frame), or None."""
        st = self.states[symbol]
        return min(st.held) - 1 if st.held else None

    def emit_backfilled(self, symbol: str, trade: Mapping[str, Any]) -> bool:
        """Emit a REST trade if it continues the sequence (skipping ids already out).

        Returns:
            True if emitted.
        """
        st = self.states[symbol]
        tid = trade["id"]
        if st.last_id is not None and tid <= st.last_id:
            return False
        self._out(st, symbol, tid, backfill_frame(symbol, trade))
        self.counters.trades_backfilled_total += 1
        return True

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
        """Frames currently held across symbols."""
        return sum(len(st.held) for st in self.states.values())

    def _out(self, st: SymbolState, symbol: str, trade_id: int, item: Frame) -> None:
        st.last_id = trade_id
        self.counters.ticks_total += 1
        self._emit(item, symbol, trade_id)
