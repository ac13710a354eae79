"""Paper strategies on the analytics rows: one stateful step keyed by ``"pair|tf"``.

docs/design.md, "Strategies and paper PnL" and "Amendments"::

    AnalyticsRow ──key_on(pair|tf)──► stateful_batch(StrategiesLogic)
        ──► Signal | StrategyTrade | EquityPoint | StrategyStats | StrategyDef
            | Retract | RetractFrom | Stat

* **Per key** one :class:`pairflow.strategies.rules.StrategyState` per configured
  strategy, fed the rows in grid order (:func:`pairflow.strategies.rules.step_row`).
  A row yields ``signals`` (as :class:`~pairflow.records.Signal` keyed by strategy),
  closed ``strategy_trades``, one ``strategy_equity`` point per strategy, and the
  latest ``strategy_stats`` per strategy (one per batch: the table keeps the latest).
  A key's first batch also emits one ``strategies(name, params)`` row per strategy.
* **Amendments.** The analytics operator re-emits rows from an amended interval on
  (same ``(pair, tf, ts)``, new values). A row whose ``ts`` is not after the latest
  row processed restores every strategy's state from just before ``ts`` and re-runs
  the kept rows from ``ts`` with the new values (all rows of one batch at once: a
  burst of re-emitted rows costs one re-run). Before the recomputed records it emits
  retractions: ``signals``, ``strategy_equity`` and ``strategy_trades`` (by entry
  time) of that (strategy, pair, tf) from ``ts`` on, plus the trade that was open
  just before ``ts`` (its exit may no longer hold). The final tables therefore equal
  the state machine run on the final analytics rows. Kept per key: the rows of the
  last :data:`AMEND_HORIZON_MS` (the bar amendment limit) plus one interval, each
  with the strategies' states from just before it (tuples of scalars). A row older
  than that can no longer be re-run: it is dropped and counted
  (``Stat`` ``strategies/late_rows_total``); re-runs are counted in
  ``strategies/amendments_total``.
* **A strategy re-run with other parameters** replaces its rows: see
  :func:`reset_changed_strategies`, run once at flow start (by ``dataflow.build``)
  before any record of this step reaches the sink.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

if TYPE_CHECKING:
    from bytewax.operators import KeyedStream

from operators.keyed_batches import by_key, flatten
from pairflow.records import AnalyticsRow, Retract, RetractFrom, Signal, Stat
from pairflow.strategies.params import DEFAULT_NAME, StrategyParams
from pairflow.strategies.rules import (
    EquityPoint,
    StrategyState,
    StrategyStats,
    StrategyTrade,
    new_state,
    stats,
    step_row,
)
from pairflow.timeutil import TF_MS, now_ms
from sinks.schema import register_record

log = logging.getLogger(__name__)

AMEND_HORIZON_MS = 5 * 60_000
"""How far back an amended analytics row can still re-run the strategies (bar amendment limit)."""

STRATEGY_TABLES: tuple[str, ...] = (
    "signals",
    "strategy_trades",
    "strategy_equity",
    "strategy_stats",
)
"""Tables whose rows belong to a strategy (first key column ``strategy``)."""

_RETRACT_FROM_TABLES: tuple[str, ...] = ("signals", "strategy_equity", "strategy_trades")


@dataclass(frozen=True, slots=True)
class StrategyDef:
    """A ``strategies`` row: a strategy's name and its canonical parameters (JSON)."""

    name: str
    params: str


StrategyOutput: TypeAlias = (
    Signal
    | StrategyTrade
    | EquityPoint
    | StrategyStats
    | StrategyDef
    | Retract
    | RetractFrom
    | Stat
)

# this module's records, in the sink's table spec
for _cls, _table in (
    (StrategyDef, "strategies"),
    (StrategyTrade, "strategy_trades"),
    (EquityPoint, "strategy_equity"),
    (StrategyStats, "strategy_stats"),
):
    register_record(_cls, _table)

_FIELDS = tuple(StrategyState.__dataclass_fields__)
_snap = attrgetter(*_FIELDS)


def snapshot_state(state: StrategyState) -> tuple[Any, ...]:
    """The state's field values (all immutable scalars and the frozen params)."""
    return _snap(state)


def restore_state(values: tuple[Any, ...]) -> StrategyState:
    """A fresh :class:`StrategyState` from :func:`snapshot_state` values."""
    return StrategyState(*values)


@dataclass
class KeyState:
    """Strategies of one (pair, tf) (picklable; the recovery snapshot).

    Attributes:
        pair: ``"Y/X"``.
        tf: Timeframe.
        tf_ms: Its length (ms).
        states: One rule state per strategy, in configuration order.
        kept_ts: Grid times of the kept rows (ascending).
        kept_rows: The kept rows, aligned with ``kept_ts``.
        kept_before: Per kept row, every strategy's state just before it
            (:func:`snapshot_state` tuples).
        late_rows: Rows dropped because they were older than the kept rows.
        amendments: Re-runs done.
        reported: ``(late_rows, amendments)`` last reported as Stats.
    """

    pair: str
    tf: str
    tf_ms: int
    states: list[StrategyState]
    kept_ts: list[int] = field(default_factory=list)
    kept_rows: list[AnalyticsRow] = field(default_factory=list)
    kept_before: list[tuple[tuple[Any, ...], ...]] = field(default_factory=list)
    late_rows: int = 0
    amendments: int = 0
    reported: tuple[int, int] = (0, 0)

    @property
    def last_ts(self) -> int | None:
        """Grid time of the latest row processed (``None`` before the first)."""
        return self.states[0].last_ts_ms if self.states else None

    def copy(self) -> KeyState:
        """An independent copy (kept rows and snapshots are immutable, so shared)."""
        return KeyState(
            self.pair,
            self.tf,
            self.tf_ms,
            [restore_state(snapshot_state(s)) for s in self.states],
            list(self.kept_ts),
            list(self.kept_rows),
            list(self.kept_before),
            self.late_rows,
            self.amendments,
            self.reported,
        )


def new_key_state(pair: str, tf: str, strategies: Sequence[StrategyParams]) -> KeyState:
    """Fresh state of every strategy on ``pair`` and ``tf``."""
    return KeyState(pair, tf, TF_MS[tf], [new_state(p, pair, tf) for p in strategies])


def _run(state: KeyState, rows: Iterable[AnalyticsRow], out: list[StrategyOutput]) -> None:
    """Feed rows (ascending ts, all after ``state.last_ts``) to every strategy."""
    fed = False
    for row in rows:
        fed = True
        state.kept_ts.append(row.ts_ms)
        state.kept_rows.append(row)
        state.kept_before.append(tuple([snapshot_state(s) for s in state.states]))
        for s in state.states:
            res = step_row(s, row, with_stats=False)
            for sig in res.signals:
                out.append(Signal(sig.pair, sig.tf, sig.ts_ms, sig.kind, sig.zscore, sig.strategy))
            out.extend(res.trades)
            out.append(res.equity)
    if fed:  # the table keeps the latest stats: one record per strategy and batch
        out.extend([stats(s) for s in state.states])


def _retract_from(state: KeyState, from_ms: int, out: list[StrategyOutput]) -> None:
    """Retract the outputs of every strategy from ``from_ms`` on (states already restored)."""
    for s in state.states:
        prefix = (s.params.name, state.pair, state.tf)
        for table in _RETRACT_FROM_TABLES:
            out.append(RetractFrom(table, prefix, from_ms))
        if s.position != 0 and s.entry_ts_ms < from_ms:
            # the trade open before from_ms may have closed at or after it
            out.append(Retract("strategy_trades", (*prefix, s.entry_ts_ms)))


def _prune(state: KeyState, horizon_ms: int) -> None:
    last = state.last_ts
    if last is None:
        return
    cut = bisect.bisect_left(state.kept_ts, last - horizon_ms - state.tf_ms)
    if cut:
        del state.kept_ts[:cut]
        del state.kept_rows[:cut]
        del state.kept_before[:cut]


def process(
    state: KeyState, rows: Sequence[AnalyticsRow], horizon_ms: int = AMEND_HORIZON_MS
) -> list[StrategyOutput]:
    """Process one batch of a key's analytics rows (new ones and amendments).

    Args:
        state: The key's state (mutated).
        rows: Rows of this (pair, tf), in any order; a later row with the same ``ts``
            wins.
        horizon_ms: Rows are kept (re-runnable) this long behind the newest, plus
            one interval.

    Returns:
        Retractions first (if an amendment re-runs), then signals, trades and equity
        points in grid order, then the latest stats of each strategy.
    """
    out: list[StrategyOutput] = []
    if not rows or not state.states:
        return out
    incoming: dict[int, AnalyticsRow] = {}
    for r in rows:
        incoming[r.ts_ms] = r
    last = state.last_ts
    floor = state.kept_ts[0] if state.kept_ts else None
    if last is not None:
        old = [ts for ts in incoming if ts <= last and (floor is None or ts < floor)]
        for ts in old:
            del incoming[ts]
        state.late_rows += len(old)
    amended = [ts for ts in incoming if last is not None and ts <= last]
    if amended:
        start = min(amended)
        i = bisect.bisect_left(state.kept_ts, start)
        rerun = {r.ts_ms: r for r in state.kept_rows[i:]}
        rerun.update(incoming)
        state.states = [restore_state(v) for v in state.kept_before[i]]
        del state.kept_ts[i:]
        del state.kept_rows[i:]
        del state.kept_before[i:]
        state.amendments += 1
        _retract_from(state, start, out)
        _run(state, (rerun[ts] for ts in sorted(rerun)), out)
    else:
        _run(state, (incoming[ts] for ts in sorted(incoming)), out)
    _prune(state, horizon_ms)
    if (state.late_rows, state.amendments) != state.reported:
        state.reported = (state.late_rows, state.amendments)
        t = now_ms()
        out.append(Stat(t, "strategies", "late_rows_total", float(state.late_rows)))
        out.append(Stat(t, "strategies", "amendments_total", float(state.amendments)))
    return out


def _reconfigure(state: KeyState, strategies: Sequence[StrategyParams]) -> KeyState:
    """Adapt a resumed state to the configured strategies (changed ones start fresh)."""
    have = [s.params for s in state.states]
    if have == list(strategies):
        return state
    by_name = {s.params.name: s for s in state.states}
    states = []
    for p in strategies:
        old = by_name.get(p.name)
        states.append(
            old if old is not None and old.params == p else new_state(p, state.pair, state.tf)
        )
    # snapshots were taken for the old list: amendments before now can no longer re-run
    return KeyState(state.pair, state.tf, state.tf_ms, states, late_rows=state.late_rows)


class StrategiesLogic(
    StatefulBatchLogic[AnalyticsRow | list[AnalyticsRow], StrategyOutput, KeyState | None]
):
    """Bytewax logic of one ``"pair|tf"`` key (see the module docstring).

    Args:
        resume: State from a recovery snapshot, or ``None`` for a new key.
        strategies: The configured strategies.
        horizon_ms: How long rows stay re-runnable behind the newest.
    """

    def __init__(
        self,
        resume: KeyState | None,
        strategies: Sequence[StrategyParams],
        horizon_ms: int = AMEND_HORIZON_MS,
    ) -> None:
        self.strategies = tuple(strategies)
        self.horizon_ms = horizon_ms
        self.state = _reconfigure(resume, self.strategies) if resume is not None else None

    def on_batch(
        self, values: list[AnalyticsRow | list[AnalyticsRow]]
    ) -> tuple[Iterable[StrategyOutput], bool]:
        """Run the strategies over a batch of this key's rows (or lists of them, in order)."""
        rows = flatten(values)
        head: list[StrategyOutput] = []
        if self.state is None:
            first = rows[0]
            self.state = new_key_state(first.pair, first.tf, self.strategies)
            head = [StrategyDef(p.name, p.params_json()) for p in self.strategies]
        return head + process(self.state, rows, self.horizon_ms), StatefulBatchLogic.RETAIN

    def snapshot(self) -> KeyState | None:
        """An independent copy of the state (cheap: kept rows are shared immutables)."""
        return None if self.state is None else self.state.copy()


def strategy_key(row: AnalyticsRow) -> str:
    """The step key of a row: ``"pair|tf"``."""
    return f"{row.pair}|{row.tf}"


@operator
def strategies_op(
    step_id: str,
    rows: Stream[AnalyticsRow],
    strategies: Sequence[StrategyParams],
    horizon_ms: int = AMEND_HORIZON_MS,
) -> Stream[StrategyOutput]:
    """Paper strategies as a Bytewax operator.

    Args:
        step_id: Unique step id.
        rows: Analytics rows of every (pair, tf); per key in grid order, apart from
            re-emitted (amended) rows.
        strategies: The strategies to run on every key.
        horizon_ms: How long rows stay re-runnable behind the newest.

    Returns:
        Records for the DuckDB sink (upserts, retractions and ``Stat`` counters).
    """
    strategies = tuple(strategies)
    keyed = cast(
        "KeyedStream[AnalyticsRow | list[AnalyticsRow]]",
        op.flat_map_batch("key", rows, by_key(strategy_key)),
    )
    logic = op.stateful_batch(
        "strategies", keyed, lambda resume: StrategiesLogic(resume, strategies, horizon_ms)
    )
    return op.key_rm("unkey", logic)


def reset_changed_strategies(db_path: Path, strategies: Sequence[StrategyParams]) -> list[str]:
    """Make the DB ready for ``strategies``: a name re-run with other params loses its rows.

    For each configured strategy whose stored ``strategies.params`` differ from its
    :meth:`~pairflow.strategies.params.StrategyParams.params_json` (or that has rows
    in a strategy table but no stored params, e.g. a file from before strategies),
    its rows in :data:`STRATEGY_TABLES` are deleted; then every configured strategy's
    ``strategies`` row is upserted. One transaction; a file that does not exist yet
    is left alone (the sink creates it). Run before the flow starts.

    Args:
        db_path: The DuckDB file.
        strategies: The configured strategies.

    Returns:
        Names of the strategies whose rows were deleted.
    """
    if not strategies or not Path(db_path).exists():
        return []
    from sinks.duckdb_sink import connect_rw

    con = connect_rw(Path(db_path))
    try:
        columns: dict[str, set[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main'"
        ).fetchall():
            columns.setdefault(table, set()).add(column)
        tables = set(columns)
        stored: dict[str, str] = {}
        if "strategies" in tables:
            stored = dict(con.execute("SELECT name, params FROM strategies").fetchall())
        changed: list[str] = []
        con.execute("BEGIN TRANSACTION")
        for p in strategies:
            if stored.get(p.name) == p.params_json():
                continue
            deleted = False
            for table in STRATEGY_TABLES:
                if table not in tables:
                    continue
                if "strategy" in columns[table]:
                    where, args = "WHERE strategy = ?", [p.name]
                elif p.name == DEFAULT_NAME:  # a file from before strategies: all 'default'
                    where, args = "", []
                else:
                    continue
                n = con.execute(f"SELECT count(*) FROM {table} {where}", args).fetchone()  # noqa: S608
                if n and n[0]:
                    con.execute(f"DELETE FROM {table} {where}", args)  # noqa: S608
                    deleted = True
            if deleted or p.name in stored:
                changed.append(p.name)
        if "strategies" in tables:
            con.executemany(
                "INSERT OR REPLACE INTO strategies (name, params) VALUES (?, ?)",
                [(p.name, p.params_json()) for p in strategies],
            )
        con.execute("COMMIT")
    finally:
        con.close()
    if changed:
        log.info("strategies re-run with other parameters, old rows removed: %s", changed)
    return changed
