"""Rolling pair analytics: closed bars of two legs in, ``analytics`` rows out.

Pure stream logic (no I/O). :func:`pair_analytics_op` wires it into a dataflow:

```
Bar | Watermark ──flat_map: re-key to every (pair, tf) holding the symbol──►
    stateful_batch(PairAnalyticsLogic) ──► AnalyticsRow | Stat ──► split
```

Each ``(pair, tf)`` key (``"Y/X|tf"``, e.g. ``"BTCUSDT/ETHUSDT|1s"``) owns one
:class:`PairState`. The definitions are those of docs/design.md, "Analytics definitions":

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
* **Window.** y = ln(close_Y), x = ln(close_X) on the last ``W`` grid points; no
  row until ``W`` grid points exist, so the first row of a key comes ``W - 1``
  intervals after ``t0`` (defaults: 1s W=300 → 5 min, 1m W=120 → 2 h,
  5m W=60 → 5 h of data; a restart without a recovery snapshot starts over).
* **Statistics.** alpha, beta: OLS of y on [1, x]; spread = y - alpha - beta x
  under the current fit (evaluated as ``(y - mean y) - beta (x - mean x)``, the
  same number in exact arithmetic, without the rounding of the float alpha);
  zscore = (spread_t - mean(spreads)) / std(spreads, ddof=1),
  with mean(spreads) = 0 and std from the residual sum of squares, all O(1) from the
  rolling sums (:class:`pairflow.stats.rolling.RollingPair`); corr = Pearson of the
  ``W - 1`` log returns (O(1)); adf_pvalue and eg_pvalue equal statsmodels'
  ``adfuller(spreads, "c", autolag="AIC")`` and ``coint(y, x, "c", autolag="aic")``
  (:mod:`pairflow.stats.cointegration`, O(W) vectorised); half_life =
  -ln 2 / ln(1 + lambda) in *bars of the timeframe* from OLS of dspread on
  [1, spread_{t-1}] (O(W) vectorised), ``None`` if lambda >= 0 or 1 + lambda <= 0.
  With ``PAIRFLOW_NUMBA`` (``auto``: from 8 keys on) spreads, half-life and both
  tests are one compiled call per row (:mod:`pairflow.stats.fastrow`; same agreement).
* **Undefined values** (a constant leg, zero spread variance...) are ``None``,
  never NaN or inf.
* **Hedge models.** Each :class:`~pairflow.stats.hedge.HedgeModel` (the Kalman filter
  of docs/design.md "Hedge models" by default, ``PAIRFLOW_KALMAN_DELTA``) starts at the first
  row (grid index ``W - 1``) from that window and steps once per later grid point;
  its outputs fill ``{name}_alpha, _beta, _spread, _zscore``. If the first window
  cannot start it (a constant leg), it tries again at the next row.
* **Signals** are not made here: the strategies (:mod:`operators.strategies`) run on
  the ``analytics`` rows.
* **Amendments** (docs/design.md "Amendments: outputs follow the final bars"). The key keeps
  its last ``W + horizon + 1`` grid points (horizon = the bar amendment limit, 5 min,
  in grid points of the tf, at least 1) with what a restart needs: each leg's own bar
  close (``None`` = forward-filled), the rolling sums after the point
  (:func:`pairflow.stats.rolling.scalars`) and the hedge-model states. A bar for an
  interval already on the grid whose close differs from the kept one restarts the key
  at that point: the rolling state is restored exactly from the kept window, and the
  forward fill, every row from there on (every row whose window holds it, and the
  Kalman filter) are recomputed and re-emitted (upserts). The result is bit-identical
  to an in-order run over the final bars. Bars older than the kept history are
  ignored and counted (``late_bars``; Stat ``late_bars_total``), as are bars with a
  non-positive or non-finite close or a misaligned open time (``bad_bars``). Stats
  ``amended_points_total`` and ``recomputed_rows_total`` report the amendments. A
  late bar before the grid start that moves ``t0`` earlier rebuilds the whole grid if
  every point is still kept (else it is counted late).
* **EOF.** ``on_eof`` flushes every interval up to the last one in which either
  leg traded (forward-filling the other leg).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from pairflow.records import AnalyticsRow, Bar, Stat, Watermark
from pairflow.stats.cointegration import SQRTEPS, adf_maxlag, spread_tests
from pairflow.stats.cointegration import _pvalue as pvalue
from pairflow.stats.fastrow import N_OUT, OK_HALF_LIFE, OK_TESTS, kernel, use_compiled
from pairflow.stats.hedge import NO_OUT, HedgeModel, KalmanHedge
from pairflow.stats.rolling import OlsFit, RollingPair, RollingScalars, restore, scalars
from pairflow.timeutil import TF_MS, now_ms

__all__ = [
    "AMEND_HORIZON_MS",
    "GridPoint",
    "PairAnalyticsLogic",
    "PairState",
    "advance",
    "ingest",
    "new_state",
    "pair_analytics_op",
    "pair_key",
    "route",
]

AMEND_HORIZON_MS = 300_000
"""How far back an amended bar may still arrive (``operators.bars.AMEND_HORIZON_MS``)."""

_SUM = np.add.reduce  # ndarray.sum without its Python wrapper (the same pairwise sum)

_TINY_SPREAD_REL = 1e3 * float(np.finfo(np.double).eps)
"""Spreads below this times the log-price level are rounding noise: treated as zero."""


def pair_key(y: str, x: str, tf: str) -> str:
    """Key of one analysed pair and timeframe, e.g. ``"BTCUSDT/ETHUSDT|1s"``."""
    return f"{y}/{x}|{tf}"


def parse_pair_key(key: str) -> tuple[str, str, str]:
    """Inverse of :func:`pair_key`: ``"Y/X|tf"`` → ``(Y, X, tf)``.

    Raises:
        ValueError: if ``key`` is not of that form.
    """
    pair, sep, tf = key.partition("|")
    y, sep2, x = pair.partition("/")
    if not (sep and sep2 and y and x and tf):
        msg = f"not a pair key 'Y/X|tf': {key!r}"
        raise ValueError(msg)
    return y, x, tf


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a Python float, or ``None`` if it is ``None``, NaN or infinite."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class LegState:
    """What the pair operator knows about one leg.

    Attributes:
        symbol: The leg's symbol.
        pending: Closes of bars not yet placed on the grid, by open time (ms).
        through_ms: The leg has no new bar opening before this time (ms).
        first_open_ms: Open time of its first bar seen.
        last_open_ms: Open time of its latest bar seen.
        close: The close carried forward (last placed, or the pre-grid bar).
        carried_ms: Open time of the pre-grid bar carried into ``t0`` (``None``: none).
        carried_close: Its close.
    """

    symbol: str
    pending: dict[int, float] = field(default_factory=dict)
    through_ms: int | None = None
    first_open_ms: int | None = None
    last_open_ms: int | None = None
    close: float | None = None
    carried_ms: int | None = None
    carried_close: float | None = None

    def take(self, t: int) -> float | None:
        """The leg's own bar close at grid interval ``t`` (``None``: forward-fill)."""
        return self.pending.pop(t, None)


@dataclass(slots=True)
class GridPoint:
    """One placed grid point and what a restart from it needs (kept per key).

    Attributes:
        t: Interval open time (ms).
        y_bar: Leg Y's own bar close there (``None``: no bar, forward-filled).
        x_bar: The same for leg X.
        y_close: Close used (``y_bar`` or carried forward).
        x_close: The same for X.
        ly: ``ln(y_close)``.
        lx: ``ln(x_close)``.
        levels: Rolling level sums after this point.
        rets: Rolling return sums after this point.
        hedge: Hedge-model states after this point.
    """

    t: int
    y_bar: float | None
    x_bar: float | None
    y_close: float = 0.0
    x_close: float = 0.0
    ly: float = 0.0
    lx: float = 0.0
    levels: RollingScalars | None = None
    rets: RollingScalars | None = None
    hedge: tuple[Any, ...] = ()


@dataclass
class PairState:
    """State of one ``(pair, tf)`` key. Picklable; see :class:`PairAnalyticsLogic`.

    Attributes:
        key: ``"Y/X|tf"``.
        tf: Timeframe name.
        tf_ms: Timeframe length (ms).
        window: Window length ``W`` in grid points.
        pvalue_every: p-values every this many grid points.
        models: Extra hedge models (their columns in the row).
        horizon: Amendment horizon in grid points.
        y: Leg Y.
        x: Leg X.
        levels: Rolling (y, x) log prices, ``W`` long.
        rets: Rolling log returns, ``W - 1`` long.
        history: The last ``W + horizon + 1`` grid points.
        next_ms: Next grid interval to place (``None`` until both legs traded).
        t0_ms: First grid interval.
        grid_points: Grid points placed so far.
        prev_log: Last (y, x) log prices placed.
        hedge_states: Current state per model (``None``: not started).
        amend: Amended bars waiting for :func:`advance`, by ``(leg 0|1, open ms)``.
        late_bars: Bars ignored because their interval is older than the history.
        bad_bars: Bars ignored because their close was not a positive finite number.
        amended_points: Grid points whose bar changed after they were placed.
        recomputed_rows: Rows re-emitted because of amendments.
        reported: Counter values last reported as Stats.
        compiled: Use the compiled row kernel (:mod:`pairflow.stats.fastrow`).
    """

    key: str
    tf: str
    tf_ms: int
    window: int
    pvalue_every: int
    models: tuple[HedgeModel, ...]
    horizon: int
    y: LegState
    x: LegState
    levels: RollingPair
    rets: RollingPair
    history: deque[GridPoint]
    next_ms: int | None = None
    t0_ms: int | None = None
    grid_points: int = 0
    prev_log: tuple[float, float] | None = None
    hedge_states: tuple[Any, ...] = ()
    amend: dict[tuple[int, int], float] = field(default_factory=dict)
    late_bars: int = 0
    bad_bars: int = 0
    amended_points: int = 0
    recomputed_rows: int = 0
    reported: dict[str, int] = field(default_factory=dict)
    compiled: bool = False

    @property
    def pair(self) -> str:
        """``"Y/X"``."""
        return f"{self.y.symbol}/{self.x.symbol}"


_ROW_FIELDS = frozenset(AnalyticsRow.__dataclass_fields__)


def new_state(
    key: str,
    window: int,
    pvalue_every: int = 1,
    kalman_delta: float | None = 0.01,
    horizon_ms: int = AMEND_HORIZON_MS,
    compiled: bool | None = None,
) -> PairState:
    """Fresh state for ``key`` (``"Y/X|tf"``).

    Args:
        key: ``"Y/X|tf"``.
        window: ``W``.
        pvalue_every: p-values every this many grid points.
        kalman_delta: The Kalman model's ``delta``; ``None`` = no Kalman columns.
        horizon_ms: How far back amendments are followed (``horizon_ms // tf_ms``
            grid points, at least 1).
        compiled: Use the numba row kernel (same numbers to ~1e-15; needs numba,
            else the numpy path); ``None``: ``PAIRFLOW_NUMBA`` for a single key
            (:func:`pairflow.stats.fastrow.use_compiled`).

    Raises:
        ValueError: on an unknown timeframe, ``window < 3``, ``pvalue_every < 1``
            or a negative ``kalman_delta``.
    """
    y, x, tf = parse_pair_key(key)
    if tf not in TF_MS:
        msg = f"unknown timeframe {tf!r} in {key!r}; use one of {', '.join(TF_MS)}"
        raise ValueError(msg)
    if window < 3:
        msg = f"window must be >= 3 grid points, got {window}"
        raise ValueError(msg)
    if pvalue_every < 1:
        msg = f"pvalue_every must be >= 1, got {pvalue_every}"
        raise ValueError(msg)
    models: tuple[HedgeModel, ...] = ()
    if kalman_delta is not None:
        if not (math.isfinite(kalman_delta) and kalman_delta >= 0.0):
            msg = f"kalman_delta must be a finite number >= 0, got {kalman_delta}"
            raise ValueError(msg)
        models = (KalmanHedge(float(kalman_delta)),)
    for m in models:
        missing = {f"{m.name}_{c}" for c in ("alpha", "beta", "spread", "zscore")} - _ROW_FIELDS
        if missing:  # pragma: no cover - a model without its AnalyticsRow columns
            msg = f"hedge model {m.name!r}: AnalyticsRow has no {sorted(missing)}"
            raise ValueError(msg)
    tf_ms = TF_MS[tf]
    horizon = max(1, horizon_ms // tf_ms)
    return PairState(
        key=key,
        tf=tf,
        tf_ms=tf_ms,
        window=window,
        pvalue_every=pvalue_every,
        models=models,
        horizon=horizon,
        y=LegState(y),
        x=LegState(x),
        levels=RollingPair.create(window),
        rets=RollingPair.create(window - 1),
        history=deque(maxlen=window + horizon + 1),
        hedge_states=(None,) * len(models),
        compiled=use_compiled(1) if compiled is None else compiled,  # auto: off for one
    )


Output = AnalyticsRow | Stat


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


PRE_GRID_MAX_BARS = 10_000
"""Before the grid starts, at most this many bars are kept per leg (bounded memory
when the other leg never trades: a grid that starts later needs only the newest)."""


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
            _fill(state, p)
            state.history.append(p)
            row = _compute(state, p)
            if row is not None:
                out.append(row)
    _report(state, out)
    return out


def _fill(state: PairState, p: GridPoint) -> None:
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


def _compute(state: PairState, p: GridPoint) -> AnalyticsRow | None:
    """Add grid point ``p`` to the rolling windows and models; the row once ``W`` points exist.

    Also saves in ``p`` what a restart after it needs.
    """
    ly, lx = p.ly, p.lx
    state.levels.push(ly, lx)
    if state.prev_log is not None:
        state.rets.push(ly - state.prev_log[0], lx - state.prev_log[1])
    state.prev_log = (ly, lx)
    state.grid_points += 1
    row = None
    if state.grid_points >= state.window:
        with_p = (state.grid_points - state.window) % state.pvalue_every == 0
        stats = window_stats(state.levels, state.rets, with_pvalues=with_p, compiled=state.compiled)
        for i, model in enumerate(state.models):
            hs = state.hedge_states[i]
            if hs is None:
                wy, wx = state.levels.window()
                hs, ho = model.init(wy, wx)
            else:
                hs, ho = model.update(hs, ly, lx)
            if hs is not state.hedge_states[i]:
                states = list(state.hedge_states)
                states[i] = hs
                state.hedge_states = tuple(states)
            if ho is not NO_OUT:
                n = model.name
                stats[f"{n}_alpha"], stats[f"{n}_beta"] = ho.alpha, ho.beta
                stats[f"{n}_spread"], stats[f"{n}_zscore"] = ho.spread, ho.zscore
        row = AnalyticsRow(
            pair=state.pair,
            tf=state.tf,
            ts_ms=p.t,
            window=state.window,
            y_close=p.y_close,
            x_close=p.x_close,
            y_filled=p.y_bar is None,
            x_filled=p.x_bar is None,
            **stats,
        )
    p.levels = scalars(state.levels)
    p.rets = scalars(state.rets)
    p.hedge = state.hedge_states
    return row


def _first_kept(state: PairState) -> int:
    """Grid index of ``history[0]``."""
    return state.grid_points - len(state.history)


def _restartable(state: PairState, i: int) -> bool:
    """Whether the kept history can restart the key at grid index ``i`` exactly."""
    first = _first_kept(state)
    return 0 <= i < state.grid_points and (first == 0 or i - first >= state.window)


def _apply_amendments(state: PairState) -> list[Output]:
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
    w = state.window
    if i == 0:
        state.levels = RollingPair.create(w)
        state.rets = RollingPair.create(w - 1)
        state.prev_log = None
        state.hedge_states = (None,) * len(state.models)
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
        _fill(state, p)
        row = _compute(state, p)
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
    state.levels = RollingPair.create(state.window)
    state.rets = RollingPair.create(state.window - 1)
    state.history.clear()
    state.next_ms = state.t0_ms = None
    state.grid_points = 0
    state.prev_log = None
    state.hedge_states = (None,) * len(state.models)


def _report(state: PairState, out: list[Output]) -> None:
    """Append a Stat for each counter that changed since it was last reported."""
    for metric, value in (
        ("late_bars_total", state.late_bars),
        ("amended_points_total", state.amended_points),
        ("recomputed_rows_total", state.recomputed_rows),
    ):
        if value != state.reported.get(metric, 0):
            state.reported[metric] = value
            out.append(Stat(now_ms(), f"analytics:{state.key}", metric, value))


def window_stats(
    levels: RollingPair, rets: RollingPair, *, with_pvalues: bool = True, compiled: bool = False
) -> dict[str, float | None]:
    """Statistics of the current window (docs/design.md "Analytics definitions").

    Args:
        levels: Rolling (y, x) log prices; the newest pair is the row's.
        rets: Rolling (dy, dx) log returns of the same window.
        with_pvalues: Compute ``adf_pvalue``/``eg_pvalue`` (else ``None``).
        compiled: Half-life and tests through the compiled row kernel if numba is
            installed (:mod:`pairflow.stats.fastrow`).

    Returns:
        ``alpha, beta, spread, zscore, corr, adf_pvalue, eg_pvalue, half_life,
        spread_std`` (the window spreads' standard deviation, ddof=1, the z-score's
        denominator), each a finite float or ``None``.
    """
    res: dict[str, float | None] = dict.fromkeys(
        (
            "alpha", "beta", "spread", "zscore", "corr", "adf_pvalue", "eg_pvalue",
            "half_life", "spread_std",
        )
    )  # fmt: skip
    res["corr"] = finite_or_none(rets.corr())
    fit = levels.ols()
    if fit is None:  # x constant (or < 2 points): hedge ratio undefined
        return res
    dy_t, dx_t = levels.last_deviation()
    res["alpha"] = finite_or_none(fit.alpha)
    res["beta"] = finite_or_none(fit.beta)
    # spread_t = y_t - alpha - beta x_t = (y_t - mean y) - beta (x_t - mean x) exactly;
    # it is also spread_t - mean(spreads), as OLS residuals with an intercept sum to 0.
    centred = dy_t - fit.beta * dx_t
    res["spread"] = finite_or_none(centred)
    n = fit.n
    res["spread_std"] = finite_or_none(math.sqrt(max(fit.ssr, 0.0) / (n - 1)))
    tiny = (_TINY_SPREAD_REL * max(1.0, abs(fit.mean_a))) ** 2 * n
    if fit.ssr <= tiny:
        return res  # spreads are (numerically) constant: z, tests, half-life undefined
    res["zscore"] = finite_or_none(centred / math.sqrt(fit.ssr / (n - 1)))
    kern = kernel() if compiled else None
    if kern is not None:
        return _compiled_tail(kern, levels, fit, res, with_pvalues)
    spreads = levels.residuals(fit.beta)
    res["half_life"] = half_life(spreads)
    if with_pvalues:
        tests = spread_tests(spreads, fit.rsquared)
        if tests.adf is not None:
            res["adf_pvalue"] = finite_or_none(tests.adf.pvalue)
        if tests.eg is not None:
            res["eg_pvalue"] = finite_or_none(tests.eg.pvalue)
    return res


def half_life(spreads: np.ndarray) -> float | None:
    """Mean-reversion half-life in grid intervals: -ln 2 / ln(1 + lambda).

    ``lambda`` is the slope of OLS of ``dspread_t`` on ``[1, spread_{t-1}]``.

    Returns:
        The half-life, or ``None`` if lambda >= 0 (no mean reversion), 1 + lambda <= 0,
        or ``spread_{t-1}`` is constant.
    """
    m = spreads.shape[0] - 1
    if m < 2:
        return None
    lag = spreads[:-1]
    d = spreads[1:] - lag  # np.diff
    # sum(a) / m is exactly a.mean() (the same pairwise sum, one division), cheaper.
    lc = lag - _SUM(lag) / m
    sxx = float(lc @ lc)
    if not sxx > 0.0:
        return None
    d -= _SUM(d) / m
    return _half_life_from(float(lc @ d) / sxx)


def _half_life_from(lam: float) -> float | None:
    """``-ln 2 / ln(1 + lam)``; ``None`` unless ``-1 < lam < 0``."""
    if not (lam < 0.0 and 1.0 + lam > 0.0):
        return None
    return finite_or_none(-math.log(2.0) / math.log1p(lam))


def _compiled_tail(
    kern: Callable[..., int],
    levels: RollingPair,
    fit: OlsFit,
    res: dict[str, float | None],
    with_pvalues: bool,
) -> dict[str, float | None]:
    """Half-life and p-values of :func:`window_stats` through the compiled row kernel.

    Windows the kernel declines (a failed pivot check, R^2 ~ 1, a short window) take
    the numpy path of :func:`~pairflow.stats.cointegration.spread_tests`.
    """
    n = fit.n
    rsq = fit.rsquared
    p = adf_maxlag(n, "c")
    fast = (
        with_pvalues
        and rsq is not None
        and rsq < 1 - 100 * SQRTEPS
        and p >= 0
        and p == adf_maxlag(n, "n")
    )
    out = _KERNEL_OUT
    status = kern(
        levels.buf_a, levels.buf_b, levels.head, n, levels.anchor_a, levels.anchor_b,
        levels.s_a, levels.s_b, fit.beta, p if fast else -1, out,
    )  # fmt: skip
    if status & OK_HALF_LIFE:
        res["half_life"] = _half_life_from(float(out[0]))
    if not with_pvalues:
        return res
    if status & OK_TESTS:
        res["adf_pvalue"] = finite_or_none(pvalue(float(out[1]), "c", 1))
        res["eg_pvalue"] = finite_or_none(pvalue(float(out[5]), "c", 2))
        return res
    tests = spread_tests(levels.residuals(fit.beta), rsq)
    if tests.adf is not None:
        res["adf_pvalue"] = finite_or_none(tests.adf.pvalue)
    if tests.eg is not None:
        res["eg_pvalue"] = finite_or_none(tests.eg.pvalue)
    return res


_KERNEL_OUT = np.empty(N_OUT)
"""The kernel's output buffer (a worker is one thread; read right after each call)."""


class PairAnalyticsLogic(StatefulBatchLogic[tuple[str, Bar | Watermark], Output, PairState | None]):
    """Bytewax logic for one ``(pair, tf)`` key: wraps :func:`ingest` / :func:`advance`.

    ``stateful_batch`` does not tell a builder its key, so :func:`route` sends
    ``(key, item)`` values and the state is made from the first one.

    Args:
        resume: State restored from a snapshot, or ``None`` for a new key.
        make: Builds a fresh state for a key.
    """

    def __init__(self, resume: PairState | None, make: Callable[[str], PairState]) -> None:
        self.state = resume
        self._make = make

    def on_batch(self, values: list[tuple[str, Bar | Watermark]]) -> tuple[Iterable[Output], bool]:
        """Ingest a batch (legs interleaved arbitrarily), then emit what became ready."""
        if self.state is None:
            self.state = self._make(values[0][0])
        state = self.state
        for _, item in values:
            ingest(state, item)
        return advance(state), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        """No timers: nothing to do."""
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        """Flush up to the last interval in which either leg traded."""
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        return advance(self.state, eof=True), StatefulBatchLogic.RETAIN

    def snapshot(self) -> PairState | None:
        """A copy of the state that later batches cannot change (:func:`snapshot_state`)."""
        return None if self.state is None else snapshot_state(self.state)


def _copy_leg(leg: LegState) -> LegState:
    c = copy.copy(leg)
    c.pending = dict(leg.pending)
    return c


def _copy_rolling(roll: RollingPair) -> RollingPair:
    c = copy.copy(roll)
    c.buf_a = roll.buf_a.copy()
    c.buf_b = roll.buf_b.copy()
    return c


def snapshot_state(state: PairState) -> PairState:
    """A copy of ``state`` that shares only what is never mutated. O(W) but cheap.

    Bytewax asks every key touched in an epoch for a snapshot at the epoch's end,
    recovery or not (at 200 ms epochs that is 5 times a second per key), so a
    ``deepcopy`` of the kept grid points (``W + horizon`` objects) was the largest cost
    of the whole flow. Placed :class:`GridPoint` objects are never mutated (an
    amendment or a restart replaces them), hedge states are immutable values and the
    models are frozen, so a copy of the containers is a snapshot: the deque of points
    (references), each leg's pending bars, the two rolling windows' buffers and the
    small dicts.
    """
    c = copy.copy(state)
    c.y = _copy_leg(state.y)
    c.x = _copy_leg(state.x)
    c.levels = _copy_rolling(state.levels)
    c.rets = _copy_rolling(state.rets)
    c.history = deque(state.history, maxlen=state.history.maxlen)
    c.amend = dict(state.amend)
    c.reported = dict(state.reported)
    return c


def route(
    item: Bar | Watermark,
    pairs: tuple[tuple[str, str], ...],
    windows: dict[str, int],
) -> list[tuple[str, tuple[str, Bar | Watermark]]]:
    """Re-key a bar/watermark to every ``(pair, tf)`` key whose pair holds its symbol.

    Returns:
        ``(key, (key, item))`` tuples: keyed for ``stateful_batch``, and the value
        repeats the key so that a new key's logic knows which pair it serves.
    """
    if item.tf not in windows:
        return []
    out = []
    for y, x in pairs:
        if item.symbol in (y, x):
            key = pair_key(y, x, item.tf)
            out.append((key, (key, item)))
    return out


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
    numba: str = "auto",
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
        numba: ``PAIRFLOW_NUMBA`` (see :func:`pairflow.stats.fastrow.use_compiled`).

    Returns:
        The ``rows`` and ``stats`` streams.
    """
    for tf, w in windows.items():  # validate early
        new_state(pair_key("A", "B", tf), w, pvalue_every, kalman_delta)

    compiled = use_compiled(len(pairs) * len(windows), numba)

    def make(key: str) -> PairState:
        tf = parse_pair_key(key)[2]
        return new_state(key, windows[tf], pvalue_every, kalman_delta, compiled=compiled)

    keyed = op.flat_map("route", bars, lambda item: route(item, pairs, windows))
    logic = op.stateful_batch("analytics", keyed, lambda resume: PairAnalyticsLogic(resume, make))
    flat = op.key_rm("unkey", logic)
    rows_b = op.branch("is_row", flat, _is_row)
    stats = cast(Stream[Stat], rows_b.falses)  # all that is not a row
    return PairAnalyticsOut(rows=rows_b.trues, stats=stats)


def _is_row(v: Output) -> TypeGuard[AnalyticsRow]:
    return isinstance(v, AnalyticsRow)
