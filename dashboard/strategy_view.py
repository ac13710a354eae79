"""The Strategy tab's data: one paper strategy on one pair/timeframe (read only).

Reads the flow's ``strategies``, ``strategy_equity``, ``strategy_trades`` and
``strategy_stats`` tables (docs/design.md "Strategies and paper PnL") with parameterised SQL.
Nothing here computes a statistic: the KPIs are the flow's ``strategy_stats`` row,
the equity is the stored ``strategy_equity.equity``. The only arithmetic is the
drawdown *curve* (running max of the stored equity minus the equity, with the
running max starting at 0 as docs/design.md's ``max_drawdown`` does) — presentation of
stored numbers, like rebasing a price line; the max-DD KPI is the flow's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboard.db import existing_tables, ms_to_time
from pairflow.strategies.params import NAME_RE
from pairflow.timeutil import TF_MS
from sinks.schema import STRATEGY_STATS, STRATEGY_TRADES

DEFAULT_STRATEGY = "default"
"""The strategy shown when the user has not picked one (docs/design.md's default strategy)."""

MAX_TRADES = 1_000
"""Newest closed trades listed."""

STAT_COLUMNS: tuple[str, ...] = tuple(
    c for c in STRATEGY_STATS.names if c not in ("strategy", "pair", "tf")
)
"""Columns of :attr:`StrategyData.stats` (from the schema)."""

TRADE_COLUMNS: tuple[str, ...] = tuple(
    c for c in STRATEGY_TRADES.names if c not in ("strategy", "pair", "tf")
)
"""Columns of :attr:`StrategyData.trades` (from the schema)."""


def is_valid_strategy(name: str) -> bool:
    """Whether ``name`` is a strategy name (``pairflow.strategies.params.NAME_RE``)."""
    return bool(NAME_RE.fullmatch(name))


def list_strategies(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Strategies in the ``strategies`` table: name -> parameters (parsed JSON).

    Names that are not valid strategy names, and parameters that are not a JSON
    object, are skipped / shown as ``{}``. Empty when the table is missing.
    """
    if "strategies" not in existing_tables(con):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, params in con.execute("SELECT name, params FROM strategies ORDER BY name").fetchall():
        if not isinstance(name, str) or not is_valid_strategy(name):
            continue
        try:
            parsed = json.loads(params) if params else {}
        except (TypeError, ValueError):
            parsed = {}
        out[name] = parsed if isinstance(parsed, dict) else {}
    return out


def strategy_order(names: list[str]) -> list[str]:
    """``default`` first (when present), then the others by name."""
    rest = sorted(n for n in names if n != DEFAULT_STRATEGY)
    return ([DEFAULT_STRATEGY] if DEFAULT_STRATEGY in names else []) + rest


@dataclass
class StrategyData:
    """One strategy on one pair/timeframe, as the flow wrote it.

    Attributes:
        strategy: Strategy name.
        pair: ``Y/X``.
        tf: Timeframe.
        params: The strategy's parameters (``strategies.params``), ``{}`` if unknown.
        equity: ``t, equity, position, drawdown`` per bucket of the view (``equity``
            and ``position`` = the bucket's last stored row; ``drawdown`` = running max
            of stored equity, from 0 and including the rows before the view, minus
            ``equity``).
        trades: Closed trades (newest first, at most :data:`MAX_TRADES`), columns
            :data:`TRADE_COLUMNS`.
        trade_count: All closed trades of the strategy on this pair/timeframe.
        stats: The ``strategy_stats`` row (:data:`STAT_COLUMNS`), ``{}`` if none.
    """

    strategy: str
    pair: str
    tf: str
    params: dict[str, Any] = field(default_factory=dict)
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)
    trades: pd.DataFrame = field(default_factory=pd.DataFrame)
    trade_count: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """``ols`` or ``kalman`` (``ols`` when the parameters are unknown)."""
        return "kalman" if self.params.get("model") == "kalman" else "ols"


_EQUITY_SQL = """
    SELECT (epoch_ms(ts) // ?) * ? AS t_ms,
           arg_max(equity, ts) AS equity,
           arg_max(position, ts) AS position,
           max(equity) AS equity_max
    FROM strategy_equity
    WHERE strategy = ? AND pair = ? AND tf = ? AND ts >= ? AND ts <= ?
    GROUP BY t_ms
    ORDER BY t_ms
"""

_PEAK_BEFORE_SQL = """
    SELECT max(equity) FROM strategy_equity
    WHERE strategy = ? AND pair = ? AND tf = ? AND ts < ?
"""

_TRADES_SQL = f"""
    SELECT {STRATEGY_TRADES.quoted(TRADE_COLUMNS)}
    FROM strategy_trades
    WHERE strategy = ? AND pair = ? AND tf = ?
    ORDER BY entry_ts DESC
    LIMIT ?
"""

_TRADE_COUNT_SQL = """
    SELECT count(*) FROM strategy_trades WHERE strategy = ? AND pair = ? AND tf = ?
"""

_STATS_SQL = f"""
    SELECT {STRATEGY_STATS.quoted(STAT_COLUMNS)}
    FROM strategy_stats
    WHERE strategy = ? AND pair = ? AND tf = ?
"""


def drawdown(equity: np.ndarray, peaks: np.ndarray, peak_before: float = 0.0) -> np.ndarray:
    """Running max of equity (from ``peak_before``, at least 0) minus equity.

    Presentation arithmetic on stored equity (no statistic): ``peaks`` are the
    per-bucket maxima, so a peak inside a downsampled bucket is not missed.
    """
    if len(equity) == 0:
        return np.zeros(0)
    running = np.maximum.accumulate(np.maximum(peaks, max(0.0, peak_before)))
    return running - equity


def load_strategy(
    con: duckdb.DuckDBPyConnection,
    strategy: str,
    pair: str,
    tf: str,
    lo: datetime | None,
    end: datetime | None,
    bucket_s: int,
    params: dict[str, Any] | None = None,
    tables: set[str] | None = None,
) -> StrategyData:
    """Read one strategy's equity (in the view), trades and stats.

    Args:
        con: An open (read-only) connection.
        strategy: Strategy name (validated).
        pair: ``Y/X`` (validated by the caller's :class:`~dashboard.pair_view.ViewRequest`).
        tf: Timeframe.
        lo: First bucket of the view (``None``: no view yet, equity not read).
        end: End of the view.
        bucket_s: Downsampling bucket in seconds (the pair view's).
        params: The strategy's parameters if already known.
        tables: The pairflow tables present (read if not given).

    Returns:
        The data; empty frames where the flow has written nothing yet.

    Raises:
        ValueError: ``strategy`` is not a valid strategy name or ``tf`` is unknown.
    """
    if not is_valid_strategy(strategy):
        msg = f"{strategy!r} is not a strategy name"
        raise ValueError(msg)
    if tf not in TF_MS:
        msg = f"unknown timeframe {tf!r}"
        raise ValueError(msg)
    tables = existing_tables(con) if tables is None else tables
    data = StrategyData(strategy=strategy, pair=pair, tf=tf, params=dict(params or {}))
    key = [strategy, pair, tf]
    if params is None and "strategies" in tables:
        data.params = list_strategies(con).get(strategy, {})
    if "strategy_equity" in tables and lo is not None and end is not None:
        bucket_ms = max(bucket_s * 1000, TF_MS[tf])
        eq = con.execute(_EQUITY_SQL, [bucket_ms, bucket_ms, *key, lo, end]).df()
        if not eq.empty:
            row = con.execute(_PEAK_BEFORE_SQL, [*key, lo]).fetchone()
            before = float(row[0]) if row and row[0] is not None else 0.0
            values = eq["equity"].to_numpy(dtype=float)
            eq["drawdown"] = drawdown(values, eq.pop("equity_max").to_numpy(float), before)
            eq.insert(0, "t", ms_to_time(eq.pop("t_ms")))
        data.equity = eq
    if "strategy_trades" in tables:
        data.trades = con.execute(_TRADES_SQL, [*key, MAX_TRADES]).df()
        row = con.execute(_TRADE_COUNT_SQL, key).fetchone()
        data.trade_count = int(row[0]) if row else 0
    if "strategy_stats" in tables:
        cur = con.execute(_STATS_SQL, key)
        row = cur.fetchone()
        if row is not None:
            data.stats = {
                c: (None if _missing(v) else v) for c, v in zip(STAT_COLUMNS, row, strict=True)
            }
    return data


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
