"""Rolling pair analytics: closed bars of two legs in, ``analytics`` rows and signals out.

Pure stream logic (no I/O). :func:`pair_analytics` wires it into a dataflow:

```
Bar | Watermark ──flat_map: re-key to every (pair, tf) holding the symbol──►
    stateful_batch(PairAnalyticsLogic) ──► AnalyticsRow | Signal | Stat ──► split
```

Each ``(pair, tf)`` key (``"Y/X|tf"``, e.g. ``"BTCUSDT/ETHUSDT|1s"``) owns one
:class:`PairState`. The definitions are those of DESIGN.md, "Analytics definitions":

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
* **Undefined values** (a constant leg, zero spread variance...) are ``None``,
  never NaN or inf.
* **Signals.** A position state per key: flat → ``short_spread`` when z > entry,
  ``long_spread`` when z < -entry; an open short exits (``exit``) when z falls
  below +exit, an open long when z rises above -exit; a jump straight across to
  the other entry level flips the position (a single ``long_spread`` /
  ``short_spread``). A ``None`` z-score changes nothing.
* **Late bars.** A bar for an interval already placed on the grid (a late
  amendment) is ignored and counted (``late_bars``; a :class:`~pairflow.records.Stat`
  ``late_bars_total`` is emitted when it changes). A bar with a non-positive or
  non-finite close, or an open time not aligned to the timeframe, is ignored and
  counted as ``bad_bars``.
* **EOF.** ``on_eof`` flushes every interval up to the last one in which either
  leg traded (forward-filling the other leg).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeGuard, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from pairflow.records import AnalyticsRow, Bar, Signal, Stat, Watermark
from pairflow.stats.cointegration import spread_tests
from pairflow.stats.rolling import RollingPair
from pairflow.timeutil import TF_MS, now_ms

SHORT_SPREAD = "short_spread"
LONG_SPREAD = "long_spread"
EXIT = "exit"

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
    """

    symbol: str
    pending: dict[int, float] = field(default_factory=dict)
    through_ms: int | None = None
    first_open_ms: int | None = None
    last_open_ms: int | None = None
    close: float | None = None

    def take(self, t: int) -> tuple[float, bool]:
        """Close of the leg at grid interval ``t`` and whether it was forward-filled."""
        close = self.pending.pop(t, None)
        if close is None:
            if self.close is None:  # pragma: no cover - t0 guarantees a close
                msg = f"{self.symbol}: no close at or before {t}"
                raise RuntimeError(msg)
            return self.close, True
        self.close = close
        return close, False


@dataclass
class PairState:
    """State of one ``(pair, tf)`` key. Picklable; see :class:`PairAnalyticsLogic`.

    Attributes:
        key: ``"Y/X|tf"``.
        tf: Timeframe name.
        tf_ms: Timeframe length (ms).
        window: Window length ``W`` in grid points.
        entry_z: Entry threshold.
        exit_z: Exit threshold.
        pvalue_every: p-values every this many grid points.
        y: Leg Y.
        x: Leg X.
        next_ms: Next grid interval to place (``None`` until both legs traded).
        grid_points: Grid points placed so far.
        levels: Rolling (y, x) log prices, ``W`` long.
        rets: Rolling log returns, ``W - 1`` long.
        prev_log: Last (y, x) log prices placed.
        position: +1 long spread, -1 short spread, 0 flat.
        late_bars: Bars ignored because their interval was already placed.
        bad_bars: Bars ignored because their close was not a positive finite number.
        reported_late: ``late_bars`` value last reported as a Stat.
    """

    key: str
    tf: str
    tf_ms: int
    window: int
    entry_z: float
    exit_z: float
    pvalue_every: int
    y: LegState
    x: LegState
    levels: RollingPair
    rets: RollingPair
    next_ms: int | None = None
    grid_points: int = 0
    prev_log: tuple[float, float] | None = None
    position: int = 0
    late_bars: int = 0
    bad_bars: int = 0
    reported_late: int = 0

    @property
    def pair(self) -> str:
        """``"Y/X"``."""
        return f"{self.y.symbol}/{self.x.symbol}"


def new_state(
    key: str,
    window: int,
    entry_z: float = 2.0,
    exit_z: float = 0.5,
    pvalue_every: int = 1,
) -> PairState:
    """Fresh state for ``key`` (``"Y/X|tf"``).

    Raises:
        ValueError: on an unknown timeframe, ``window < 3``, ``pvalue_every < 1`` or
            ``exit_z > entry_z``.
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
    if exit_z > entry_z:
        msg = f"exit_z ({exit_z}) must not exceed entry_z ({entry_z})"
        raise ValueError(msg)
    return PairState(
        key=key,
        tf=tf,
        tf_ms=TF_MS[tf],
        window=window,
        entry_z=float(entry_z),
        exit_z=float(exit_z),
        pvalue_every=pvalue_every,
        y=LegState(y),
        x=LegState(x),
        levels=RollingPair.create(window),
        rets=RollingPair.create(window - 1),
    )


Output = AnalyticsRow | Signal | Stat


def ingest(state: PairState, item: Bar | Watermark) -> None:
    """Record one bar or watermark of either leg (no grid work; see :func:`advance`).

    Bars of another symbol or timeframe are ignored. A bar for an interval already
    on the grid is counted in ``late_bars`` and dropped; a second bar for a pending
    interval replaces the first (an amendment that arrived in time).
    """
    if item.tf != state.tf:
        return
    if item.symbol == state.y.symbol:
        leg = state.y
    elif item.symbol == state.x.symbol:
        leg = state.x
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
        state.late_bars += 1
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
            leg.close = leg.pending.pop(t)
    state.next_ms = t0
    return True


def advance(state: PairState, *, eof: bool = False) -> list[Output]:
    """Place every interval both legs have passed; return the rows and signals made.

    Args:
        state: The key's state (mutated).
        eof: Upstream ended: also place every interval up to the last one in which
            either leg traded.
    """
    out: list[Output] = []
    if not _start_grid(state):
        return out
    assert state.next_ms is not None
    ready = min(state.y.through_ms or 0, state.x.through_ms or 0)
    stop = ready - state.tf_ms  # last placeable interval
    if eof:
        last = max(state.y.last_open_ms or 0, state.x.last_open_ms or 0)
        stop = max(stop, last)
    while state.next_ms <= stop:
        t = state.next_ms
        y_close, y_filled = state.y.take(t)
        x_close, x_filled = state.x.take(t)
        state.next_ms = t + state.tf_ms
        row = place(state, t, y_close, x_close, y_filled, x_filled)
        if row is not None:
            out.append(row)
            out.extend(signals_for(state, row))
    if state.late_bars != state.reported_late:
        state.reported_late = state.late_bars
        out.append(Stat(now_ms(), f"analytics:{state.key}", "late_bars_total", state.late_bars))
    return out


def place(
    state: PairState,
    t: int,
    y_close: float,
    x_close: float,
    y_filled: bool,
    x_filled: bool,
) -> AnalyticsRow | None:
    """Add grid point ``t`` to the rolling windows; the row once ``W`` points exist."""
    ly = math.log(y_close)
    lx = math.log(x_close)
    state.levels.push(ly, lx)
    if state.prev_log is not None:
        state.rets.push(ly - state.prev_log[0], lx - state.prev_log[1])
    state.prev_log = (ly, lx)
    state.grid_points += 1
    if state.grid_points < state.window:
        return None
    with_p = (state.grid_points - state.window) % state.pvalue_every == 0
    stats = window_stats(state.levels, state.rets, with_pvalues=with_p)
    return AnalyticsRow(
        pair=state.pair,
        tf=state.tf,
        ts_ms=t,
        window=state.window,
        y_close=float(y_close),
        x_close=float(x_close),
        y_filled=y_filled,
        x_filled=x_filled,
        **stats,
    )


def window_stats(
    levels: RollingPair, rets: RollingPair, *, with_pvalues: bool = True
) -> dict[str, float | None]:
    """Statistics of the current window (DESIGN "Analytics definitions").

    Args:
        levels: Rolling (y, x) log prices; the newest pair is the row's.
        rets: Rolling (dy, dx) log returns of the same window.
        with_pvalues: Compute ``adf_pvalue``/``eg_pvalue`` (else ``None``).

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
    lam = float(lc @ d) / sxx
    if not (lam < 0.0 and 1.0 + lam > 0.0):
        return None
    return finite_or_none(-math.log(2.0) / math.log1p(lam))


def signals_for(state: PairState, row: AnalyticsRow) -> list[Signal]:
    """Update the key's position with ``row.zscore``; the signals it fires (0 or 1)."""
    z = row.zscore
    if z is None:
        return []
    kind = None
    if z > state.entry_z and state.position != -1:
        kind, state.position = SHORT_SPREAD, -1
    elif z < -state.entry_z and state.position != 1:
        kind, state.position = LONG_SPREAD, 1
    elif (state.position == -1 and z < state.exit_z) or (state.position == 1 and z > -state.exit_z):
        kind, state.position = EXIT, 0
    if kind is None:
        return []
    return [Signal(row.pair, row.tf, row.ts_ms, kind, z)]


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
        """A deep copy of the state (the live one keeps mutating)."""
        return copy.deepcopy(self.state)


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
        signals: ``signals`` rows.
        stats: ``late_bars_total`` counters (for ``pipeline_stats``).
    """

    rows: Stream[AnalyticsRow]
    signals: Stream[Signal]
    stats: Stream[Stat]


@operator
def pair_analytics_op(
    step_id: str,
    bars: Stream[Bar | Watermark],
    pairs: tuple[tuple[str, str], ...],
    windows: dict[str, int],
    entry_z: float = 2.0,
    exit_z: float = 0.5,
    pvalue_every: int = 1,
) -> PairAnalyticsOut:
    """Rolling pair analytics as a bytewax operator, with a third stream of Stats.

    Args:
        step_id: Unique step id.
        bars: Closed bars and watermarks of every symbol and timeframe; per symbol
            and tf in increasing open time; legs may interleave arbitrarily.
        pairs: ``(Y, X)`` pairs to analyse.
        windows: Window ``W`` per timeframe; other timeframes are ignored.
        entry_z: |z| above which a position opens.
        exit_z: |z| inside which an open position exits.
        pvalue_every: Compute p-values every this many grid points.

    Returns:
        The ``rows``, ``signals`` and ``stats`` streams.
    """
    for tf, w in windows.items():
        new_state(pair_key("A", "B", tf), w, entry_z, exit_z, pvalue_every)  # validate early

    def make(key: str) -> PairState:
        tf = parse_pair_key(key)[2]
        return new_state(key, windows[tf], entry_z, exit_z, pvalue_every)

    keyed = op.flat_map("route", bars, lambda item: route(item, pairs, windows))
    logic = op.stateful_batch("analytics", keyed, lambda resume: PairAnalyticsLogic(resume, make))
    flat = op.key_rm("unkey", logic)
    rows_b = op.branch("is_row", flat, _is_row)
    sig_b = op.branch("is_signal", rows_b.falses, _is_signal)
    stats = cast(Stream[Stat], sig_b.falses)  # all that is neither a row nor a signal
    return PairAnalyticsOut(rows=rows_b.trues, signals=sig_b.trues, stats=stats)


def _is_row(v: Output) -> TypeGuard[AnalyticsRow]:
    return isinstance(v, AnalyticsRow)


def _is_signal(v: Output) -> TypeGuard[Signal]:
    return isinstance(v, Signal)


def pair_analytics(
    step_id: str,
    bars: Stream[Bar | Watermark],
    pairs: tuple[tuple[str, str], ...],
    windows: dict[str, int],
    entry_z: float = 2.0,
    exit_z: float = 0.5,
    pvalue_every: int = 1,
) -> tuple[Stream[AnalyticsRow], Stream[Signal]]:
    """Rolling pair analytics: ``(rows, signals)``. See :func:`pair_analytics_op`.

    Use :func:`pair_analytics_op` directly to also get the ``stats`` stream.
    """
    out = pair_analytics_op(step_id, bars, pairs, windows, entry_z, exit_z, pvalue_every)
    return out.rows, out.signals
