"""Independent reference of docs/design.md "Strategies and paper PnL", for tests only.

Written from the docs/design.md text, not from :mod:`pairflow.strategies.rules`, and shaped
differently on purpose: one plain loop produces only the *decided target position*
after each row's decision (the rules are path dependent, so some loop is needed);
everything else -- fills (target shifted by one row), trades (runs of the filled
position), quantities, fees, PnL, the equity curve and every statistic -- is computed
with whole-column numpy/pandas operations.

Input: a DataFrame shaped like the ``analytics`` table of one (pair, tf), in grid
order, with columns ``ts`` (epoch ms ints or datetimes), ``y_close``, ``x_close``,
``zscore``, ``beta``, ``kalman_zscore``, ``kalman_beta`` (NaN/None = NULL).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pairflow.strategies.params import StrategyParams

TRADE_COLUMNS = [
    "entry_ts",
    "exit_ts",
    "side",
    "entry_z",
    "exit_z",
    "beta",
    "q_y",
    "q_x",
    "entry_y",
    "entry_x",
    "exit_y",
    "exit_x",
    "fees",
    "pnl",
    "bars_held",
    "reason",
]
STATS_COLUMNS = [
    "ts",
    "trades",
    "win_rate",
    "pnl",
    "return_pct",
    "sharpe",
    "max_drawdown",
    "exposure",
    "mean_bars_held",
]


def _ts_ms(ts: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(ts):
        return (ts.astype("datetime64[ms]").astype("int64")).to_numpy()
    return ts.astype("int64").to_numpy()


def _decisions(
    z: np.ndarray, ts: np.ndarray, tf_ms: int, p: StrategyParams
) -> tuple[np.ndarray, list[str | None], list[tuple[str, ...]]]:
    """Target position after each row's decision, the exit reason decided, the signal kinds.

    ``z`` is NaN where the row decides nothing.
    """
    n = len(z)
    target = np.zeros(n, dtype=np.int64)
    reasons: list[str | None] = [None] * n
    kinds: list[tuple[str, ...]] = [()] * n
    pos = 0  # the decided position; it is the filled one at the next decision
    armed = True
    entry_fill_ts = 0
    for i in range(n):
        zi = z[i]
        new = pos
        if not math.isnan(zi):
            if pos == 0:
                if not armed:
                    if abs(zi) < p.entry:
                        armed = True
                elif zi > p.entry:
                    new, kinds[i] = -1, ("short_spread",)
                elif zi < -p.entry:
                    new, kinds[i] = 1, ("long_spread",)
            else:
                held = (ts[i] - entry_fill_ts) // tf_ms
                # distance of z on the adverse side for the position
                against = zi if pos == -1 else -zi
                if p.stop > 0 and against > p.stop:
                    new, reasons[i], kinds[i], armed = 0, "stop", ("stop",), False
                elif against < p.exit:
                    new, reasons[i], kinds[i] = 0, "exit", ("exit",)
                    if against < -p.entry:
                        new = -pos
                        kinds[i] = ("exit", "long_spread" if pos == -1 else "short_spread")
                elif p.max_hold > 0 and held >= p.max_hold:
                    new, reasons[i], kinds[i], armed = 0, "time", ("time",), False
        if new not in (0, pos) and i + 1 < n:
            entry_fill_ts = ts[i + 1]
        target[i] = new
        pos = new
    return target, reasons, kinds


def reference_run(
    analytics: pd.DataFrame, params: StrategyParams, tf_ms: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run one strategy over one (pair, tf)'s analytics rows.

    Args:
        analytics: The rows in grid order (see the module docstring).
        params: The strategy (its ``model`` picks the z/beta columns).
        tf_ms: Timeframe length (ms), for ``held``/``bars_held`` and the Sharpe scale.

    Returns:
        ``(trades, equity, stats, signals)``: closed trades (:data:`TRADE_COLUMNS`,
        times in epoch ms), equity per row (``ts, position, equity``), stats per row
        as of that row (:data:`STATS_COLUMNS`; the last row is ``strategy_stats``) and
        signals (``ts, kind, zscore``).
    """
    df = analytics.reset_index(drop=True)
    ts = _ts_ms(df["ts"])
    y = df["y_close"].to_numpy(dtype=float)
    x = df["x_close"].to_numpy(dtype=float)
    zcol, bcol = ("zscore", "beta") if params.model == "ols" else ("kalman_zscore", "kalman_beta")
    z = pd.to_numeric(df[zcol], errors="coerce").to_numpy(dtype=float)
    beta = pd.to_numeric(df[bcol], errors="coerce").to_numpy(dtype=float)
    z = np.where(np.isfinite(z) & np.isfinite(beta), z, np.nan)  # no beta: no decision
    n = len(df)
    target, reasons, kinds = _decisions(z, ts, tf_ms, params)

    signals = pd.DataFrame(
        [(ts[i], k, z[i]) for i in range(n) for k in kinds[i]],
        columns=["ts", "kind", "zscore"],
    )

    # Position after each row's fills: the previous row's decision.
    filled = np.concatenate([[0], target[:-1]]) if n else np.zeros(0, dtype=np.int64)
    prev = np.concatenate([[0], filled[:-1]]) if n else filled
    entry_rows = np.flatnonzero((filled != 0) & (filled != prev))
    exit_rows = np.flatnonzero((prev != 0) & (filled != prev))
    # The k-th exit closes the k-th entry (runs of a constant non-zero position).
    closed = entry_rows[: len(exit_rows)]
    rate = params.fee_bps / 1e4
    side = filled[entry_rows]
    dec = entry_rows - 1  # the entry decision row
    q_y = side * params.notional / y[entry_rows]
    q_x = -side * beta[dec] * params.notional / x[entry_rows]
    entry_fee = rate * (np.abs(q_y) * y[entry_rows] + np.abs(q_x) * x[entry_rows])
    m = len(exit_rows)
    exit_fee = rate * (np.abs(q_y[:m]) * y[exit_rows] + np.abs(q_x[:m]) * x[exit_rows])
    gross = q_y[:m] * (y[exit_rows] - y[closed]) + q_x[:m] * (x[exit_rows] - x[closed])
    pnl = gross - entry_fee[:m] - exit_fee
    trades = pd.DataFrame(
        {
            "entry_ts": ts[closed],
            "exit_ts": ts[exit_rows],
            "side": side[:m],
            "entry_z": z[dec[:m]],
            "exit_z": z[exit_rows - 1],
            "beta": beta[dec[:m]],
            "q_y": q_y[:m],
            "q_x": q_x[:m],
            "entry_y": y[closed],
            "entry_x": x[closed],
            "exit_y": y[exit_rows],
            "exit_x": x[exit_rows],
            "fees": entry_fee[:m] + exit_fee,
            "pnl": pnl,
            "bars_held": (ts[exit_rows] - ts[closed]) // tf_ms,
            "reason": [reasons[r - 1] for r in exit_rows],
        },
        columns=TRADE_COLUMNS,
    )

    # Equity: realised PnL booked at exit rows + mark of the trade open after the fills.
    realised = np.zeros(n)
    np.add.at(realised, exit_rows, pnl)
    trade_of_row = np.cumsum(np.isin(np.arange(n), entry_rows)) - 1
    open_ = filled != 0
    k = np.where(open_, trade_of_row, 0)
    if len(entry_rows):
        e_rows = entry_rows[k]
        mark = q_y[k] * (y - y[e_rows]) + q_x[k] * (x - x[e_rows]) - entry_fee[k]
    else:
        mark = np.zeros(n)
    equity_values = np.cumsum(realised) + np.where(open_, mark, 0.0)
    equity = pd.DataFrame({"ts": ts, "position": filled, "equity": equity_values})

    # Stats as of each row.
    e = pd.Series(equity_values)
    d = e.diff().fillna(e)  # dE with E_-1 = 0
    rows = np.arange(1, n + 1)
    sd = d.expanding(min_periods=2).std(ddof=1)
    mean = d.expanding().mean()
    ann = math.sqrt(365 * 86400 / (tf_ms / 1000.0))
    sharpe = (mean / sd * ann).where(sd > 0)
    peak = e.cummax().clip(lower=0.0)
    n_closed = pd.Series(np.isin(np.arange(n), exit_rows).cumsum())
    won = np.zeros(n)
    np.add.at(won, exit_rows, (pnl > 0).astype(float))
    held = np.zeros(n)
    np.add.at(held, exit_rows, trades["bars_held"].to_numpy(dtype=float))
    stats = pd.DataFrame(
        {
            "ts": ts,
            "trades": n_closed.to_numpy(),
            "win_rate": (pd.Series(won.cumsum()) / n_closed).where(n_closed > 0),
            "pnl": equity_values,
            "return_pct": 100.0 * equity_values / params.notional,
            "sharpe": sharpe,
            "max_drawdown": (peak - e).cummax(),
            "exposure": np.cumsum(open_) / rows,
            "mean_bars_held": (pd.Series(held.cumsum()) / n_closed).where(n_closed > 0),
        },
        columns=STATS_COLUMNS,
    )
    return trades, equity, stats, signals
