"""Amended bars: fold them into a key's kept grid and recompute from the earliest one.

docs/design.md "Amendments: outputs follow the final bars". The key keeps its last
``W + horizon + 1`` grid points (horizon = the bar amendment limit, 5 min, in grid
points of the tf, at least 1) with what a restart needs: each leg's own bar close
(``None`` = forward-filled), the rolling sums after the point
(:func:`pairflow.stats.rolling.scalars`) and the hedge-model states. A bar for an
interval already on the grid whose close differs from the kept one restarts the key
at that point: the rolling state is restored exactly from the kept window, and the
forward fill, every row from there on (every row whose window holds it, and the
Kalman filter) are recomputed and re-emitted (upserts). The result is bit-identical
to an in-order run over the final bars. Bars older than the kept history are ignored
and counted (``late_bars``; Stat ``late_bars_total``). Stats
``amended_points_total`` and ``recomputed_rows_total`` report the amendments. A late
bar before the grid start that moves ``t0`` earlier rebuilds the whole grid if every
point is still kept (else it is counted late).

:mod:`operators.pair_grid` imports this module at a key's first amended bar. It
imports no numpy itself (:func:`~pairflow.stats.rolling.restore` is plain Python):
only recomputing a row does (:func:`operators.pair_grid.compute`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from operators.pair_grid import compute, fill
from operators.pair_state import GridPoint, Output, PairState
from pairflow.stats.rolling import RollingPair, restore


def _first_kept(state: PairState) -> int:
    """Grid index of ``history[0]``."""
    return state.grid_points - len(state.history)


def _restartable(state: PairState, i: int) -> bool:
    """Whether the kept history can restart the key at grid index ``i`` exactly."""
    first = _first_kept(state)
    return 0 <= i < state.grid_points and (first == 0 or i - first >= state.window)


def _reset_rolling(state: PairState) -> None:
    """Empty rolling windows and hedge models, as at the grid's first point."""
    state.levels = RollingPair.create(state.window)
    state.rets = RollingPair.create(state.window - 1)
    state.prev_log = None
    state.hedge_states = (None,) * len(state.models)


def apply_amendments(state: PairState) -> list[Output]:
    """Fold the waiting amended bars into the history and recompute from the earliest."""
    amends = sorted(state.amend.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    state.amend = {}
    assert state.t0_ms is not None
    t0 = state.t0_ms
    legs = (state.y, state.x)
    # A bar before t0 that is earlier than the leg's first bar moves t0 earlier.
    new_first = [leg.first_open_ms for leg in legs]
    for (li, t), _ in amends:
        f = new_first[li]
        if f is None or t < f:
            new_first[li] = t
    new_t0 = max(cast(int, new_first[0]), cast(int, new_first[1]))
    if new_t0 < t0:
        if _first_kept(state) == 0:
            _regrid(state, amends)
            return []
        kept = []
        for (li, t), close in amends:
            if t < t0:
                state.late_bars += 1
            else:
                kept.append(((li, t), close))
        amends = kept
    start: int | None = None
    first = _first_kept(state)
    for (li, t), close in amends:
        leg = legs[li]
        if t < t0:
            # Only the bar carried into t0 (the latest before it) can matter.
            if leg.carried_ms is not None and t < leg.carried_ms:
                continue
            if leg.carried_ms == t and leg.carried_close == close:
                continue
            if not _restartable(state, 0):
                state.late_bars += 1
                continue
            leg.carried_ms, leg.carried_close = t, close
            if leg.first_open_ms is None or t < leg.first_open_ms:
                leg.first_open_ms = t
            i = 0
        else:
            i = (t - t0) // state.tf_ms
            if not _restartable(state, i):
                state.late_bars += 1
                continue
            p = state.history[i - first]
            if (p.y_bar if li == 0 else p.x_bar) == close:
                continue  # e.g. a late trade that does not change the close
            # Placed points are never mutated (snapshots share them): a new point with
            # the new bar replaces it; _restart recomputes it from there.
            state.history[i - first] = (
                replace(p, y_bar=close) if li == 0 else replace(p, x_bar=close)
            )
        state.amended_points += 1
        start = i if start is None else min(start, i)
    if start is None:
        return []
    return _restart(state, start)


def _restart(state: PairState, i: int) -> list[Output]:
    """Recompute every kept point from grid index ``i`` on (their bars may have changed)."""
    hist = state.history
    h = i - _first_kept(state)
    if i == 0:
        _reset_rolling(state)
        state.y.close = state.y.carried_close
        state.x.close = state.x.carried_close
    else:
        prev = hist[h - 1]
        assert prev.levels is not None and prev.rets is not None
        n = prev.levels[1]
        pts = [hist[j] for j in range(h - n, h)]
        restore(state.levels, prev.levels, [q.ly for q in pts], [q.lx for q in pts])
        nr = prev.rets[1]
        ry = [hist[j].ly - hist[j - 1].ly for j in range(h - nr, h)]
        rx = [hist[j].lx - hist[j - 1].lx for j in range(h - nr, h)]
        restore(state.rets, prev.rets, ry, rx)
        state.prev_log = (prev.ly, prev.lx)
        state.hedge_states = prev.hedge
        state.y.close = prev.y_close
        state.x.close = prev.x_close
    state.grid_points = i
    out: list[Output] = []
    for j in range(h, len(hist)):
        q = hist[j]
        p = hist[j] = GridPoint(q.t, q.y_bar, q.x_bar)  # never mutate a placed point
        fill(state, p)
        row = compute(state, p)
        if row is not None:
            out.append(row)
    state.recomputed_rows += len(out)
    return out


def _regrid(state: PairState, amends: list[tuple[tuple[int, int], float]]) -> None:
    """``t0`` moved earlier and every point is kept: rebuild the grid from its bars.

    Nothing is emitted here: the next placement re-emits every row (upserts; the new
    grid holds every interval of the old one).
    """
    legs = (state.y, state.x)
    bars: list[dict[int, float]] = [dict(leg.pending) for leg in legs]
    for p in state.history:
        for li, b in enumerate((p.y_bar, p.x_bar)):
            if b is not None:
                bars[li].setdefault(p.t, b)
    for li, leg in enumerate(legs):
        if leg.carried_ms is not None and leg.carried_close is not None:
            bars[li].setdefault(leg.carried_ms, leg.carried_close)
    for (li, t), close in amends:
        bars[li][t] = close
    state.amended_points += len(amends)
    state.recomputed_rows += max(0, state.grid_points - state.window + 1)
    for li, leg in enumerate(legs):
        leg.pending = bars[li]
        leg.first_open_ms = min(bars[li]) if bars[li] else None
        leg.close = leg.carried_ms = leg.carried_close = None
    _reset_rolling(state)
    state.history.clear()
    state.next_ms = state.t0_ms = None
    state.grid_points = 0
