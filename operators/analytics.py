"""Rolling pair analytics: closed bars of two legs in, ``analytics`` rows out.

Pure stream logic (no I/O). :func:`pair_analytics_op` wires it into a dataflow:

```
Bar | Watermark ──flat_map: re-key to every (pair, tf) holding the symbol──►
    stateful_batch(PairAnalyticsLogic) ──► AnalyticsRow | Stat ──► split
```

Each ``(pair, tf)`` key (``"Y/X|tf"``, e.g. ``"BTCUSDT/ETHUSDT|1s"``) owns one
:class:`~operators.pair_state.PairState`. The definitions are those of docs/design.md,
"Analytics definitions"; each part lives in the module that does it:

* :mod:`operators.pair_state`: the per-key state, its parameters and snapshots.
* :mod:`operators.pair_grid`: grid and alignment, latency, bad bars, EOF
  (:func:`~operators.pair_grid.ingest`, :func:`~operators.pair_grid.advance`).
* :mod:`operators.pair_row`: window, statistics, undefined values, hedge models
  (one row per placed grid point).
* :mod:`operators.pair_amend`: amendments (upserts of every row they change,
  bit-identical to an in-order run over the final bars).

The signals are not made here: the strategies (:mod:`operators.strategies`) run on
the ``analytics`` rows.

Importing this module (done by ``dataflow.build``) does not import numpy or the
statistics: :class:`PairAnalyticsLogic` imports :mod:`operators.pair_grid` when the
first key's logic is made, and that imports numpy and the statistics
(:mod:`operators.pair_row`) only when a key makes its first row, after ``W`` grid
points. A short run (fewer grid points than ``W``) never loads numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from operators.pair_state import (
    Output,
    PairState,
    check_params,
    new_state,
    pair_key,
    parse_pair_key,
    snapshot_state,
)
from pairflow.records import AnalyticsRow, Bar, Stat, Watermark

__all__ = [
    "PairAnalyticsLogic",
    "PairAnalyticsOut",
    "PairState",
    "new_state",
    "pair_analytics_op",
    "pair_key",
    "parse_pair_key",
    "route",
]


RoutedValue = tuple[str, "Bar | Watermark | list[Bar | Watermark]"]
"""What the analytics step gets per item: its key and a bar/watermark, or a list of them."""


class PairAnalyticsLogic(StatefulBatchLogic[RoutedValue, Output, PairState | None]):
    """Bytewax logic for one ``(pair, tf)`` key: wraps ``pair_grid.ingest`` / ``advance``.

    ``stateful_batch`` does not tell a builder its key, so :func:`route` sends
    ``(key, item)`` values and the state is made from the first one.

    Args:
        resume: State restored from a snapshot, or ``None`` for a new key.
        make: Builds a fresh state for a key.
    """

    def __init__(self, resume: PairState | None, make: Callable[[str], PairState]) -> None:
        from operators.pair_grid import advance, ingest  # no numpy: that waits for a row

        self.state = resume
        self._make = make
        self._ingest = ingest
        self._advance = advance

    def on_batch(self, values: list[RoutedValue]) -> tuple[Iterable[Output], bool]:
        """Ingest a batch (legs interleaved arbitrarily), then emit what became ready.

        A value's item is a bar or watermark, or a list of them in order
        (:meth:`Router.batch`, what the flow sends).
        """
        if self.state is None:
            self.state = self._make(values[0][0])
        state = self.state
        ingest = self._ingest
        for _, item in values:
            if isinstance(item, list):
                for one in item:
                    ingest(state, one)
            else:
                ingest(state, item)
        return self._advance(state), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        """No timers: nothing to do."""
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        """Flush up to the last interval in which either leg traded."""
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        return self._advance(self.state, eof=True), StatefulBatchLogic.RETAIN

    def snapshot(self) -> PairState | None:
        """A copy of the state that later batches cannot change (:func:`snapshot_state`)."""
        return None if self.state is None else snapshot_state(self.state)


class Router:
    """Re-keys a bar/watermark to every ``(pair, tf)`` key whose pair holds its symbol.

    The keys of each ``(symbol, tf)`` are listed once, at build time: a bar costs the
    pairs of its symbol (N - 1 in a full scan), not a pass over all N(N - 1)/2 pairs.

    Args:
        pairs: ``(Y, X)`` pairs analysed.
        windows: Window per timeframe; bars of other timeframes go nowhere.
    """

    def __init__(self, pairs: tuple[tuple[str, str], ...], windows: dict[str, int]) -> None:
        table: dict[tuple[str, str], list[str]] = {}
        for tf in windows:
            for y, x in pairs:
                key = pair_key(y, x, tf)
                for symbol in dict.fromkeys((y, x)):
                    table.setdefault((symbol, tf), []).append(key)
        self.keys: dict[tuple[str, str], tuple[str, ...]] = {k: tuple(v) for k, v in table.items()}

    def __call__(self, item: Bar | Watermark) -> list[tuple[str, tuple[str, Bar | Watermark]]]:
        """``(key, (key, item))`` per key of the item's symbol and tf, in pair order.

        Keyed for ``stateful_batch``; the value repeats the key so that a new key's
        logic knows which pair it serves.
        """
        return [(key, (key, item)) for key in self.keys.get((item.symbol, item.tf), ())]

    def batch(self, items: list[Bar | Watermark]) -> list[tuple[str, RoutedValue]]:
        """A batch of bars/watermarks as one ``(key, (key, [items...]))`` per key.

        Each key's items keep their order in ``items`` (what :meth:`__call__` per
        item would deliver); one item per key instead of one per bar and key.
        """
        out: dict[str, list[Bar | Watermark]] = {}
        keys = self.keys
        for item in items:
            for key in keys.get((item.symbol, item.tf), ()):
                lst = out.get(key)
                if lst is None:
                    out[key] = [item]
                else:
                    lst.append(item)
        return [(key, (key, lst)) for key, lst in out.items()]


def route(
    item: Bar | Watermark,
    pairs: tuple[tuple[str, str], ...],
    windows: dict[str, int],
) -> list[tuple[str, tuple[str, Bar | Watermark]]]:
    """One-off :class:`Router` call (tests, tools); the flow builds its router once."""
    return Router(pairs, windows)(item)


@dataclass(frozen=True)
class PairAnalyticsOut:
    """Output streams of :func:`pair_analytics_op`.

    Attributes:
        rows: ``analytics`` rows.
        stats: ``late_bars_total``, ``amended_points_total``, ``recomputed_rows_total``
            counters (for ``pipeline_stats``).
    """

    rows: Stream[AnalyticsRow]
    stats: Stream[Stat]


@operator
def pair_analytics_op(
    step_id: str,
    bars: Stream[Bar | Watermark],
    pairs: tuple[tuple[str, str], ...],
    windows: dict[str, int],
    pvalue_every: int = 1,
    kalman_delta: float | None = 0.01,
    compiled: str = "auto",
) -> PairAnalyticsOut:
    """Rolling pair analytics as a bytewax operator, with a second stream of Stats.

    Args:
        step_id: Unique step id.
        bars: Closed bars and watermarks of every symbol and timeframe; per symbol
            and tf in increasing open time; legs may interleave arbitrarily.
        pairs: ``(Y, X)`` pairs to analyse.
        windows: Window ``W`` per timeframe; other timeframes are ignored.
        pvalue_every: Compute p-values every this many grid points.
        kalman_delta: ``PAIRFLOW_KALMAN_DELTA``; ``None`` = no Kalman columns.
        compiled: ``PAIRFLOW_COMPILED`` (see :func:`pairflow.stats.fastrow.use_compiled`).

    Returns:
        The ``rows`` and ``stats`` streams.

    Raises:
        ValueError: on a bad window, ``pvalue_every``, ``kalman_delta`` or ``compiled``
            (here, while the flow is built; no state is made, nothing imports numpy).
    """
    from pairflow.config import parse_compiled  # the one parser of PAIRFLOW_COMPILED

    for tf, w in windows.items():  # validate early
        check_params(tf, w, pvalue_every, kalman_delta)
    mode = parse_compiled(compiled)
    keys = len(pairs) * len(windows)

    def make(key: str) -> PairState:
        from pairflow.stats.fastrow import use_compiled

        tf = parse_pair_key(key)[2]
        return new_state(
            key, windows[tf], pvalue_every, kalman_delta, compiled=use_compiled(keys, mode)
        )

    keyed = op.flat_map_batch("route", bars, Router(pairs, windows).batch)
    logic = op.stateful_batch("analytics", keyed, lambda resume: PairAnalyticsLogic(resume, make))
    flat = op.key_rm("unkey", logic)
    rows_b = op.branch("is_row", flat, _is_row)
    stats = cast(Stream[Stat], rows_b.falses)  # all that is not a row
    return PairAnalyticsOut(rows=rows_b.trues, stats=stats)


def _is_row(v: Output) -> TypeGuard[AnalyticsRow]:
    return isinstance(v, AnalyticsRow)
