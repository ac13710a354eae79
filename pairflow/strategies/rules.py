"""Strategy rules and paper PnL, an incremental state machine (docs/design.md "Strategies").

Pure logic (no Bytewax, no I/O). One :class:`StrategyState` per (strategy, pair, tf);
feed it the analytics rows in grid order with :func:`step` (the model's z and beta
chosen by the caller, or :func:`step_row` to pick them from a row). Each call returns a
:class:`StepResult`: the signals decided at the row, the trades closed at the row, its
equity point and the stats so far (``with_stats=False`` leaves them out: a caller that
keeps only the latest stats calls :func:`stats` once). Per row, in this order:

1. **Fills.** A decision of the previous row fills at this row's ``y_close``,
   ``x_close``: an exit closes the open trade (a :class:`StrategyTrade`), then an entry
   opens ``q_y = p notional / Y``, ``q_x = -p beta notional / X`` with ``beta`` the
   model's beta at the decision. Fee per fill = ``fee_bps / 1e4 * (|q_y| Y + |q_x| X)``.
   A flip is an exit and an entry at the same fill.
2. **Equity mark.** ``E = closed PnL + open trade's q_y (Y - Y_entry) + q_x (X - X_entry)
   - its entry fee``; :class:`EquityPoint.position` is the position after the fills.
3. **Decision** on ``z`` (``None`` decides nothing): flat & armed → enter -1 if
   ``z > entry`` (``short_spread``), +1 if ``z < -entry`` (``long_spread``); flat & not
   armed → re-arm when ``|z| < entry``. Short: ``stop > 0 and z > stop`` → ``stop``
   (disarm); else ``z < exit`` → ``exit``, plus ``long_spread`` if also ``z < -entry``
   (flip); else ``max_hold > 0`` and held ``>= max_hold`` → ``time`` (disarm). Long
   mirrors. ``held`` = grid steps ``(t - entry fill time) // tf`` .

A decision on the latest row stays pending (not filled, not in the equity) until the
next row arrives. Stats are running sums (Welford mean/M2 of ``dE`` with ``E_-1 = 0``,
running peak with ``E_-1 = 0``...), so a row is O(1) and the state is a handful of
scalars: ``copy.copy(state)`` is a full snapshot (the lead's "re-run amendments from
interval t": keep the copy made before ``t``, restore it, feed the amended rows).

Edge cases: a non-finite ``z`` is treated as ``None``; a row whose model ``beta`` is
``None``/non-finite also decides nothing (an entry could not be sized; analytics never
produces a z without its beta). ``win_rate`` and ``mean_bars_held`` are ``None``
without closed trades; ``sharpe`` is ``None`` with fewer than 2 rows or zero variance
of ``dE`` (never NaN/inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pairflow.strategies.params import StrategyParams
from pairflow.timeutil import TF_MS

SHORT_SPREAD = "short_spread"
LONG_SPREAD = "long_spread"
EXIT = "exit"
STOP = "stop"
TIME = "time"
SIGNAL_KINDS = (SHORT_SPREAD, LONG_SPREAD, EXIT, STOP, TIME)

_SECONDS_PER_YEAR = 365 * 86400


@dataclass(frozen=True, slots=True)
class StrategySignal:
    """A decision at grid time ``ts_ms`` (a ``signals`` row).

    Attributes:
        strategy: Strategy name.
        pair: ``"Y/X"``.
        tf: Timeframe.
        ts_ms: Decision time (the row's interval start, epoch ms).
        kind: One of :data:`SIGNAL_KINDS`.
        zscore: The model z that decided it.
    """

    strategy: str
    pair: str
    tf: str
    ts_ms: int
    kind: str
    zscore: float


@dataclass(frozen=True, slots=True)
class StrategyTrade:
    """A closed paper trade (a ``strategy_trades`` row); prices in quote currency.

    Attributes:
        strategy: Strategy name.
        pair: ``"Y/X"``.
        tf: Timeframe.
        entry_ts_ms: Entry fill time (epoch ms).
        exit_ts_ms: Exit fill time (epoch ms).
        side: +1 long spread (long Y, short beta X), -1 short spread.
        entry_z: z at the entry decision.
        exit_z: z at the exit decision.
        beta: Model beta at the entry decision.
        q_y: Units of Y held (signed).
        q_x: Units of X held (signed).
        entry_y: Y fill price at entry.
        entry_x: X fill price at entry.
        exit_y: Y fill price at exit.
        exit_x: X fill price at exit.
        fees: Entry fee + exit fee.
        pnl: Net PnL (after both fees).
        bars_held: Grid steps between the fills.
        reason: ``exit``, ``stop`` or ``time`` (a flip's exit is ``exit``).
    """

    strategy: str
    pair: str
    tf: str
    entry_ts_ms: int
    exit_ts_ms: int
    side: int
    entry_z: float
    exit_z: float
    beta: float
    q_y: float
    q_x: float
    entry_y: float
    entry_x: float
    exit_y: float
    exit_x: float
    fees: float
    pnl: float
    bars_held: int
    reason: str


@dataclass(slots=True)  # not frozen: made every row (see AnalyticsRow)
class EquityPoint:
    """A ``strategy_equity`` row: position after the row's fills and equity at its closes."""

    strategy: str
    pair: str
    tf: str
    ts_ms: int
    position: int
    equity: float


@dataclass(frozen=True, slots=True)
class StrategyStats:
    """A ``strategy_stats`` row: statistics over all rows up to ``ts_ms``.

    Attributes:
        strategy: Strategy name.
        pair: ``"Y/X"``.
        tf: Timeframe.
        ts_ms: Latest row's time.
        trades: Closed trades.
        win_rate: Share of closed trades with ``pnl > 0``; ``None`` without trades.
        pnl: Equity at the latest row (quote currency).
        return_pct: ``100 * pnl / notional``.
        sharpe: ``mean(dE) / std(dE, ddof=1) * sqrt(365 * 86400 / tf_s)``; ``None``
            with fewer than 2 rows or ``std = 0``.
        max_drawdown: Max over rows of (running max of E, ``E_-1 = 0`` included) - E.
        exposure: Share of rows whose position after the fills is not 0.
        mean_bars_held: Mean ``bars_held`` of closed trades; ``None`` without trades.
    """

    strategy: str
    pair: str
    tf: str
    ts_ms: int
    trades: int
    win_rate: float | None
    pnl: float
    return_pct: float
    sharpe: float | None
    max_drawdown: float
    exposure: float
    mean_bars_held: float | None


@dataclass(slots=True)  # not frozen: made every row (see AnalyticsRow)
class StepResult:
    """What one analytics row produced."""

    signals: tuple[StrategySignal, ...]
    trades: tuple[StrategyTrade, ...]
    equity: EquityPoint
    stats: StrategyStats | None
    """The stats after this row; ``None`` when stepped with ``with_stats=False``."""


@dataclass(slots=True)
class StrategyState:
    """Mutable state of one (strategy, pair, tf): scalars only, ``copy.copy`` snapshots it.

    Attributes:
        params: The strategy.
        pair: ``"Y/X"``.
        tf: Timeframe.
        tf_ms: Timeframe length (ms).
        annualise: ``sqrt(365 * 86400 / tf_s)``.
        last_ts_ms: Latest row fed (``None`` before the first).
        position: Position after the latest row's fills (-1, 0, +1).
        armed: Entries allowed (false after a stop or time exit until ``|z| < entry``).
        pend_exit: Reason of an exit decided at the latest row, to fill next row.
        pend_exit_z: Its z.
        pend_side: Side of an entry decided at the latest row (0 = none).
        pend_entry_z: Its z.
        pend_beta: Model beta at that entry decision.
        entry_ts_ms: Open trade's entry fill time.
        entry_z: Open trade's entry decision z.
        beta: Open trade's beta.
        q_y: Open trade's Y quantity.
        q_x: Open trade's X quantity.
        entry_y: Open trade's Y fill price.
        entry_x: Open trade's X fill price.
        entry_fee: Open trade's entry fee.
        closed_pnl: Sum of closed trades' PnL.
        trades: Closed trades.
        wins: Closed trades with ``pnl > 0``.
        bars_held_sum: Sum of closed trades' ``bars_held``.
        rows: Rows fed.
        exposed_rows: Rows with a non-zero position after the fills.
        prev_equity: E of the latest row (0 before the first).
        d_mean: Running mean of dE.
        d_m2: Running sum of squared deviations of dE (Welford).
        peak: Running max of E (starting at ``E_-1 = 0``).
        max_drawdown: Running max of ``peak - E``.
    """

    params: StrategyParams
    pair: str
    tf: str
    tf_ms: int
    annualise: float
    last_ts_ms: int | None = None
    position: int = 0
    armed: bool = True
    pend_exit: str | None = None
    pend_exit_z: float = 0.0
    pend_side: int = 0
    pend_entry_z: float = 0.0
    pend_beta: float = 0.0
    entry_ts_ms: int = 0
    entry_z: float = 0.0
    beta: float = 0.0
    q_y: float = 0.0
    q_x: float = 0.0
    entry_y: float = 0.0
    entry_x: float = 0.0
    entry_fee: float = 0.0
    closed_pnl: float = 0.0
    trades: int = 0
    wins: int = 0
    bars_held_sum: int = 0
    rows: int = 0
    exposed_rows: int = 0
    prev_equity: float = 0.0
    d_mean: float = 0.0
    d_m2: float = 0.0
    peak: float = 0.0
    max_drawdown: float = 0.0


def new_state(params: StrategyParams, pair: str, tf: str) -> StrategyState:
    """Fresh state of ``params`` on ``pair`` (``"Y/X"``) and timeframe ``tf``.

    Raises:
        ValueError: on an unknown timeframe.
    """
    if tf not in TF_MS:
        msg = f"unknown timeframe {tf!r}; use one of {', '.join(TF_MS)}"
        raise ValueError(msg)
    tf_ms = TF_MS[tf]
    return StrategyState(
        params=params,
        pair=pair,
        tf=tf,
        tf_ms=tf_ms,
        annualise=math.sqrt(_SECONDS_PER_YEAR / (tf_ms / 1000.0)),
    )


def _usable(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def step(
    state: StrategyState,
    ts_ms: int,
    y_close: float,
    x_close: float,
    z: float | None,
    beta: float | None,
    *,
    with_stats: bool = True,
) -> StepResult:
    """Feed one analytics row (mutates ``state``); see the module docstring for the order.

    Args:
        state: The (strategy, pair, tf) state.
        ts_ms: The row's grid time (epoch ms), later than the previous row's.
        y_close: Y close at this grid point (quote currency, > 0).
        x_close: X close at this grid point (> 0).
        z: The model's z-score (``zscore`` or ``kalman_zscore``), or ``None``.
        beta: The model's beta (``beta`` or ``kalman_beta``), or ``None``.
        with_stats: Also build the :class:`StrategyStats` (a record per row; the
            flow writes only each batch's last one).

    Returns:
        The row's signals, closed trades, equity point and stats.

    Raises:
        ValueError: if ``ts_ms`` is not after the previous row's or a close is not a
            positive finite number (upstream guarantees both).
    """
    if state.last_ts_ms is not None and ts_ms <= state.last_ts_ms:
        msg = f"rows must be fed in grid order: {ts_ms} after {state.last_ts_ms}"
        raise ValueError(msg)
    if not (y_close > 0 and x_close > 0 and math.isfinite(y_close) and math.isfinite(x_close)):
        msg = f"closes must be positive finite numbers, got {y_close}, {x_close}"
        raise ValueError(msg)
    state.last_ts_ms = ts_ms
    p = state.params
    fee_rate = p.fee_bps / 1e4
    name, pair, tf = p.name, state.pair, state.tf

    # 1. Fills of the previous row's decision.
    trades: tuple[StrategyTrade, ...] = ()
    if state.pend_exit is not None:
        q_y, q_x = state.q_y, state.q_x
        exit_fee = fee_rate * (abs(q_y) * y_close + abs(q_x) * x_close)
        pnl = (
            q_y * (y_close - state.entry_y)
            + q_x * (x_close - state.entry_x)
            - state.entry_fee
            - exit_fee
        )
        bars = (ts_ms - state.entry_ts_ms) // state.tf_ms
        trades = (
            StrategyTrade(
                strategy=name,
                pair=pair,
                tf=tf,
                entry_ts_ms=state.entry_ts_ms,
                exit_ts_ms=ts_ms,
                side=state.position,
                entry_z=state.entry_z,
                exit_z=state.pend_exit_z,
                beta=state.beta,
                q_y=q_y,
                q_x=q_x,
                entry_y=state.entry_y,
                entry_x=state.entry_x,
                exit_y=y_close,
                exit_x=x_close,
                fees=state.entry_fee + exit_fee,
                pnl=pnl,
                bars_held=bars,
                reason=state.pend_exit,
            ),
        )
        state.closed_pnl += pnl
        state.trades += 1
        state.wins += pnl > 0
        state.bars_held_sum += bars
        state.position = 0
        state.pend_exit = None
    if state.pend_side:
        side = state.pend_side
        q_y = side * p.notional / y_close
        q_x = -side * state.pend_beta * p.notional / x_close
        state.q_y, state.q_x = q_y, q_x
        state.entry_fee = fee_rate * (abs(q_y) * y_close + abs(q_x) * x_close)
        state.entry_ts_ms = ts_ms
        state.entry_y, state.entry_x = y_close, x_close
        state.entry_z, state.beta = state.pend_entry_z, state.pend_beta
        state.position = side
        state.pend_side = 0

    # 2. Equity mark and running stats.
    position = state.position
    equity = state.closed_pnl
    if position:
        equity += (
            state.q_y * (y_close - state.entry_y)
            + state.q_x * (x_close - state.entry_x)
            - state.entry_fee
        )
        state.exposed_rows += 1
    state.rows += 1
    d = equity - state.prev_equity
    dev = d - state.d_mean
    state.d_mean += dev / state.rows
    state.d_m2 += dev * (d - state.d_mean)
    state.prev_equity = equity
    state.peak = max(state.peak, equity)
    state.max_drawdown = max(state.max_drawdown, state.peak - equity)

    # 3. Decision at this row (fills at the next one).
    signals: tuple[StrategySignal, ...] = ()
    if _usable(z) and _usable(beta):
        assert z is not None and beta is not None
        kinds: list[str] = []
        entry = p.entry
        if position == 0:
            if state.armed:
                if z > entry:
                    state.pend_side = -1
                    kinds.append(SHORT_SPREAD)
                elif z < -entry:
                    state.pend_side = 1
                    kinds.append(LONG_SPREAD)
            elif abs(z) < entry:
                state.armed = True
        else:
            s = position  # -1 short: adverse is z up; +1 long: adverse is z down
            held = (ts_ms - state.entry_ts_ms) // state.tf_ms
            if p.stop > 0 and -s * z > p.stop:
                state.pend_exit = STOP
                state.armed = False
            elif -s * z < p.exit:
                state.pend_exit = EXIT
                if -s * z < -entry:
                    state.pend_side = -s
                    kinds.append(EXIT)
                    kinds.append(LONG_SPREAD if s < 0 else SHORT_SPREAD)
            elif p.max_hold > 0 and held >= p.max_hold:
                state.pend_exit = TIME
                state.armed = False
            if state.pend_exit is not None:
                if not kinds:
                    kinds.append(state.pend_exit)
                state.pend_exit_z = z
        if state.pend_side:
            state.pend_entry_z = z
            state.pend_beta = beta
        if kinds:
            signals = tuple([StrategySignal(name, pair, tf, ts_ms, k, z) for k in kinds])

    return StepResult(
        signals,
        trades,
        EquityPoint(name, pair, tf, ts_ms, position, equity),
        stats(state) if with_stats else None,
    )


def stats(state: StrategyState) -> StrategyStats:
    """The stats so far (over every row fed); see :class:`StrategyStats`."""
    n = state.trades
    rows = state.rows
    sharpe = None
    if rows >= 2 and state.d_m2 > 0:
        sharpe = state.d_mean / math.sqrt(state.d_m2 / (rows - 1)) * state.annualise
    pnl = state.prev_equity
    return StrategyStats(
        strategy=state.params.name,
        pair=state.pair,
        tf=state.tf,
        ts_ms=state.last_ts_ms if state.last_ts_ms is not None else 0,
        trades=n,
        win_rate=state.wins / n if n else None,
        pnl=pnl,
        return_pct=100.0 * pnl / state.params.notional,
        sharpe=sharpe,
        max_drawdown=state.max_drawdown,
        exposure=state.exposed_rows / rows if rows else 0.0,
        mean_bars_held=state.bars_held_sum / n if n else None,
    )


def step_row(state: StrategyState, row: Any, *, with_stats: bool = True) -> StepResult:
    """:func:`step` on an analytics row object, picking the strategy model's z and beta.

    ``row`` needs ``ts_ms``, ``y_close``, ``x_close`` and the attributes named by
    ``params.z_column``/``params.beta_column`` (a missing Kalman column reads as ``None``).
    """
    p = state.params
    return step(
        state,
        row.ts_ms,
        row.y_close,
        row.x_close,
        getattr(row, p.z_column, None),
        getattr(row, p.beta_column, None),
        with_stats=with_stats,
    )
