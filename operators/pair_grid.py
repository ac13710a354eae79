"""The grid of one ``(pair, tf)`` key: bars and watermarks in, placed grid points and rows out.

docs/design.md, "Analytics definitions":

* **Grid and alignment.** The grid is every interval of the timeframe from ``t0``,
  the first interval by which both legs have traded (``max`` of their first bar
  open times). A leg without a bar in an interval carries its last close forward
  (``y_filled`` / ``x_filled``). Interval ``t`` is placed on the grid once *both*
  legs are known to have passed it: a bar of that leg opening at ``t`` or later, or a
  :class:`~pairflow.records.Watermark` with ``through_ms >= t + tf``.
* **Latency.** A row is therefore emitted as soon as the *slower* leg's bar for
  that interval (or its watermark, for a quiet leg) reaches the operator: the bar
  operator's close delay (end of interval + its grace) plus at most one epoch, and
  no more. If one leg's bars and watermarks stop entirely, rows stop too (they
  cannot be computed without knowing whether that leg traded) until its next bar or
  watermark, or EOF. Before the grid starts only the bars that can still be
  carried into ``t0`` are kept.
* **Bad bars.** Bars with a non-positive or non-finite close or a misaligned open
  time are ignored and counted (``bad_bars``). A bar for an interval already placed
  is an amendment (:mod:`operators.pair_amend`).
* **EOF.** ``advance(eof=True)`` flushes every interval up to the last one in which
  either leg traded (forward-filling the other leg).

Each placed point goes through :func:`fill` and :func:`compute` (the rolling windows;
from the ``W``-th point on, the row: :func:`operators.pair_row.row`).

numpy and the statistics load when a key makes its first row (:mod:`operators.
pair_row`) and the amendment code when a key first has an amended bar (:mod:`operators.
pair_amend`; numpy only if that recomputes a row): until then (a short run) a key
needs neither. Each is imported once and bound into this module (``_row``,
``_apply_amendments``), so later calls pay no import.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from operators.pair_state import GridPoint, Output, PairState
from pairflow.records import AnalyticsRow, Bar, Stat, Watermark
from pairflow.stats.rolling import scalars
from pairflow.timeutil import now_ms

PRE_GRID_MAX_BARS = 10_000
"""Before the grid starts, at most this many bars are kept per leg (bounded memory
when the other leg never trades: a grid that starts later needs only the newest)."""


def ingest(state: PairState, item: Bar | Watermark) -> None:
    """Record one bar or watermark of either leg (no grid work; see :func:`advance`).

    Bars of another symbol or timeframe are ignored. A bar for an interval already
    on the grid (or before it) is kept as an amendment for :func:`advance`; a second
    bar for a pending interval replaces the first (an amendment that arrived in time).
    """
    if item.tf != state.tf:
        return
    if item.symbol == state.y.symbol:
        leg, li = state.y, 0
    elif item.symbol == state.x.symbol:
        leg, li = state.x, 1
    else:
        return
    if isinstance(item, Watermark):
        if leg.through_ms is None or item.through_ms > leg.through_ms:
            leg.through_ms = item.through_ms
            if state.next_ms is None:
                _compact_pre_grid(state)
        return
    t = item.open_time_ms
    close = item.close
    finite = isinstance(close, (int, float)) and math.isfinite(close) and close > 0
    if not finite or t % state.tf_ms != 0:
        state.bad_bars += 1
        return
    if state.next_ms is not None and t < state.next_ms:
        state.amend[(li, t)] = float(close)
        return
    leg.pending[t] = float(close)
    if leg.first_open_ms is None or t < leg.first_open_ms:
        leg.first_open_ms = t
    if leg.last_open_ms is None or t > leg.last_open_ms:
        leg.last_open_ms = t
    end = t + state.tf_ms
    if leg.through_ms is None or end > leg.through_ms:
        leg.through_ms = end
    if state.next_ms is None:
        _compact_pre_grid(state)


def _compact_pre_grid(state: PairState) -> None:
    """Before the grid starts, keep per leg only the bars that can still matter.

    ``t0 >= lower`` where ``lower`` is, per leg, its first bar or (if none yet) its
    watermark. Of the bars opening at or before ``lower`` only the latest can be
    carried into ``t0``. While the other leg has said nothing at all, a leg keeps its
    newest :data:`PRE_GRID_MAX_BARS` bars.
    """
    for leg in (state.y, state.x):
        if len(leg.pending) > PRE_GRID_MAX_BARS:
            for t in sorted(leg.pending)[: len(leg.pending) - PRE_GRID_MAX_BARS]:
                del leg.pending[t]
    bounds = []
    for leg in (state.y, state.x):
        if leg.first_open_ms is not None:
            bounds.append(leg.first_open_ms)
        elif leg.through_ms is not None:
            bounds.append(leg.through_ms)
    if not bounds:
        return
    lower = max(bounds)
    for leg in (state.y, state.x):
        old = sorted(t for t in leg.pending if t <= lower)
        for t in old[:-1]:
            del leg.pending[t]


def _start_grid(state: PairState) -> bool:
    """Fix ``t0`` once both legs have a first bar; carry pre-``t0`` closes. True if started."""
    if state.next_ms is not None:
        return True
    if state.y.first_open_ms is None or state.x.first_open_ms is None:
        return False
    t0 = max(state.y.first_open_ms, state.x.first_open_ms)
    for leg in (state.y, state.x):
        for t in sorted(t for t in leg.pending if t < t0):
            leg.close = leg.carried_close = leg.pending.pop(t)
            leg.carried_ms = t
    state.next_ms = state.t0_ms = t0
    return True


def fill(state: PairState, p: GridPoint) -> None:
    """Close of each leg at ``p`` (own bar or carried forward); updates the legs' carry."""
    y_close = p.y_bar if p.y_bar is not None else state.y.close
    x_close = p.x_bar if p.x_bar is not None else state.x.close
    if y_close is None or x_close is None:  # pragma: no cover - t0 guarantees a close
        msg = f"{state.key}: no close at or before {p.t}"
        raise RuntimeError(msg)
    state.y.close = p.y_close = y_close
    state.x.close = p.x_close = x_close
    p.ly = math.log(y_close)
    p.lx = math.log(x_close)


def _first_row(state: PairState, p: GridPoint) -> AnalyticsRow:
    """:func:`operators.pair_row.row`, imported (numpy, the statistics) at the first row.

    Rebinds this module's ``_row`` to it, so later rows call it directly.
    """
    from operators.pair_row import row

    globals()["_row"] = row
    return row(state, p)


def _first_amendments(state: PairState) -> list[Output]:
    """:func:`operators.pair_amend.apply_amendments`, imported at the first amendment.

    Rebinds this module's ``_apply_amendments`` to it.
    """
    from operators.pair_amend import apply_amendments

    globals()["_apply_amendments"] = apply_amendments
    return apply_amendments(state)


_row: Callable[[PairState, GridPoint], AnalyticsRow] = _first_row
_apply_amendments: Callable[[PairState], list[Output]] = _first_amendments


def compute(state: PairState, p: GridPoint) -> AnalyticsRow | None:
    """Add grid point ``p`` to the rolling windows and models; the row once ``W`` points exist.

    Also saves in ``p`` what a restart after it needs. Before the ``W``-th point this
    is plain Python (no numpy); the row is :func:`operators.pair_row.row`.
    """
    ly, lx = p.ly, p.lx
    state.levels.push(ly, lx)
    if state.prev_log is not None:
        state.rets.push(ly - state.prev_log[0], lx - state.prev_log[1])
    state.prev_log = (ly, lx)
    state.grid_points += 1
    row = _row(state, p) if state.grid_points >= state.window else None
    p.levels = scalars(state.levels)
    p.rets = scalars(state.rets)
    p.hedge = state.hedge_states
    return row


def advance(state: PairState, *, eof: bool = False) -> list[Output]:
    """Apply amendments, place every interval both legs have passed; return the outputs.

    Args:
        state: The key's state (mutated).
        eof: Upstream ended: also place every interval up to the last one in which
            either leg traded.
    """
    out: list[Output] = []
    if state.amend:
        out.extend(_apply_amendments(state))
    if _start_grid(state):
        assert state.next_ms is not None
        ready = min(state.y.through_ms or 0, state.x.through_ms or 0)
        stop = ready - state.tf_ms  # last placeable interval
        if eof:
            last = max(state.y.last_open_ms or 0, state.x.last_open_ms or 0)
            stop = max(stop, last)
        while state.next_ms <= stop:
            t = state.next_ms
            state.next_ms = t + state.tf_ms
            p = GridPoint(t, state.y.take(t), state.x.take(t))
            fill(state, p)
            state.history.append(p)
            row = compute(state, p)
            if row is not None:
                out.append(row)
    _report(state, out)
    return out


def _report(state: PairState, out: list[Output]) -> None:
    """Append a Stat for each counter that changed since it was last reported."""
    if not (state.late_bars or state.amended_points or state.recomputed_rows):
        return  # nothing ever counted (the common case): nothing changed since
    for metric, value in (
        ("late_bars_total", state.late_bars),
        ("amended_points_total", state.amended_points),
        ("recomputed_rows_total", state.recomputed_rows),
    ):
        if value != state.reported.get(metric, 0):
            state.reported[metric] = value
            out.append(Stat(now_ms(), f"analytics:{state.key}", metric, value))
