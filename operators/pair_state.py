"""State of one ``(pair, tf)`` key of the pair analytics (:mod:`operators.analytics`).

Each key (``"Y/X|tf"``, e.g. ``"BTCUSDT/ETHUSDT|1s"``) owns one :class:`PairState`:
both legs (:class:`LegState`: bars not yet on the grid, how far each leg has
passed), the two rolling windows, the hedge-model states and the last
``W + horizon + 1`` placed grid points (:class:`GridPoint`, what a restart after
an amendment needs, docs/design.md "Amendments: outputs follow the final bars").

Importing this module does not import numpy, and neither does :func:`new_state` nor
anything a key does before its first row: the rolling windows (``array.array``
buffers), the hedge models and :func:`~pairflow.stats.fastrow.use_compiled` are
numpy-free until the statistics start (the first window: :mod:`operators.pair_row`).
They are imported by :func:`new_state`, so building a flow stays cheap.
"""

from __future__ import annotations

import copy
import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pairflow.records import AnalyticsRow, Stat
from pairflow.timeutil import TF_MS

if TYPE_CHECKING:
    from pairflow.stats.hedge import HedgeModel
    from pairflow.stats.rolling import RollingPair, RollingScalars

AMEND_HORIZON_MS = 300_000
"""How far back an amended bar may still arrive (``operators.bars.AMEND_HORIZON_MS``)."""

Output = AnalyticsRow | Stat
"""What a key emits: ``analytics`` rows and its amendment counters."""


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
    """State of one ``(pair, tf)`` key. Picklable; see :func:`snapshot_state`.

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
        amend: Amended bars waiting for ``advance``, by ``(leg 0|1, open ms)``.
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


def check_params(
    tf: str, window: int, pvalue_every: int = 1, kalman_delta: float | None = 0.01
) -> None:
    """Validate the parameters of :func:`new_state` (without making any state).

    Raises:
        ValueError: on an unknown timeframe, ``window < 3``, ``pvalue_every < 1`` or
            a negative or non-finite ``kalman_delta``.
    """
    if tf not in TF_MS:
        msg = f"unknown timeframe {tf!r}; use one of {', '.join(TF_MS)}"
        raise ValueError(msg)
    if window < 3:
        msg = f"window must be >= 3 grid points, got {window}"
        raise ValueError(msg)
    if pvalue_every < 1:
        msg = f"pvalue_every must be >= 1, got {pvalue_every}"
        raise ValueError(msg)
    if kalman_delta is not None and not (math.isfinite(kalman_delta) and kalman_delta >= 0.0):
        msg = f"kalman_delta must be a finite number >= 0, got {kalman_delta}"
        raise ValueError(msg)


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
        compiled: Use the compiled row kernel (the same numbers; needs a C compiler or numba,
            else the numpy path); ``None``: what ``PAIRFLOW_COMPILED=auto`` gives a
            single key (:func:`pairflow.stats.fastrow.use_compiled`).

    Raises:
        ValueError: as :func:`check_params` (the message names ``key``).
    """
    from pairflow.stats.fastrow import use_compiled
    from pairflow.stats.hedge import KalmanHedge
    from pairflow.stats.rolling import RollingPair

    y, x, tf = parse_pair_key(key)
    try:
        check_params(tf, window, pvalue_every, kalman_delta)
    except ValueError as e:
        msg = f"{key}: {e}"
        raise ValueError(msg) from None
    models: tuple[HedgeModel, ...] = ()
    if kalman_delta is not None:
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
        compiled=use_compiled(1) if compiled is None else compiled,
    )


def _copy_leg(leg: LegState) -> LegState:
    c = copy.copy(leg)
    c.pending = dict(leg.pending)
    return c


def _copy_rolling(roll: RollingPair) -> RollingPair:
    c = copy.copy(roll)  # without the numpy views it may cache (RollingPair.__getstate__)
    c.buf_a = array("d", roll.buf_a)
    c.buf_b = array("d", roll.buf_b)
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
