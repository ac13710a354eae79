"""Per-symbol trade-id continuity: drop (and reject) duplicate or backwards trade ids.

Binance trade ids are strictly increasing per symbol. A tick whose id is not above
the last accepted one is a duplicate (same id) or out of order (lower id): it is
turned into a :class:`Reject` so that it is counted and kept, never silently lost.
Forward jumps (gaps) are accepted; the live source backfills them before they
reach this step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bytewax.operators import StatefulBatchLogic

from pairflow.records import Reject, SourceClock, Tick, tick_raw
from pairflow.timeutil import now_ms


@dataclass
class SequenceState:
    """Last accepted trade id of one symbol (``-1`` before the first tick)."""

    last_trade_id: int = -1


SeqIn = list[Tick] | SourceClock
SeqOut = list[Tick] | Reject | SourceClock


class SequenceLogic(StatefulBatchLogic[SeqIn, SeqOut, SequenceState]):
    """Stateful logic for one symbol: passes ticks with increasing ids, rejects the rest.

    Input values are lists of ticks (one source batch of one symbol); output values
    are lists of accepted ticks and single :class:`Reject` records.

    Args:
        source: Source name for the rejects.
        state: Resume state, or ``None`` for a new symbol.
        clock_ms: Wall clock stamped on rejects (injectable for tests).
    """

    def __init__(
        self,
        source: str,
        state: SequenceState | None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.source = source
        self.state = state if state is not None else SequenceState()
        self.clock_ms = clock_ms

    def on_batch(self, values: list[SeqIn]) -> tuple[list[SeqOut], bool]:
        """Filter each chunk; emits at most one accepted chunk per input chunk.

        A :class:`SourceClock` passes through in order (for the bar step).
        """
        out: list[SeqOut] = []
        last = self.state.last_trade_id
        for chunk in values:
            if isinstance(chunk, SourceClock):
                out.append(chunk)
                continue
            good: list[Tick] = []
            for tick in chunk:
                tid = tick.trade_id
                if tid - tick.count >= last:  # an aggregate's first id must be new too
                    good.append(tick)
                    last = tid
                else:
                    reason = "duplicate_trade_id" if tid == last else "backwards_trade_id"
                    out.append(Reject(self.clock_ms(), self.source, reason, tick_raw(tick)))
            if good:
                out.append(good)
        self.state.last_trade_id = last
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> SequenceState:
        """Copy of the state for recovery."""
        return SequenceState(self.state.last_trade_id)
