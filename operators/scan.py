"""The pair scanner: analytics rows of every pair in, one ranked ``scan`` per grid time out.

docs/design.md, "Pair scanner". One stateful step keyed by timeframe receives the
:class:`~pairflow.records.AnalyticsRow` of every pair of that timeframe::

    AnalyticsRow ──key_on(tf)──► stateful_batch(ScanLogic) ──► ScanRow | Stat

* **Scanned grid times.** ``ts`` with ``(ts_ms // tf_ms) % k == 0``, ``k`` from
  ``PAIRFLOW_SCAN_EVERY``. One :class:`~pairflow.records.ScanRow` per pair that has
  an analytics row at ``ts``.
* **q-values.** Benjamini-Hochberg across the scan's rows *with* an EG p-value
  (:func:`pairflow.stats.multitest.bh_qvalues`, equal to statsmodels'
  ``multipletests(p, method="fdr_bh")[1]``). A row whose ``eg_pvalue`` is NULL
  (``PAIRFLOW_PVALUE_EVERY > 1``, an undefined test) gets a NULL q-value and is not
  counted in ``m``: it was not tested, so it cannot be a discovery, and counting it
  would make every other q-value depend on how often p-values are computed.
* **Rank.** 1 + position by ascending ``eg_pvalue``; ties by pair name; NULL
  p-values last (by pair name).
* **When a grid time is complete.** Rows of one ``ts`` arrive in any order, and some
  pairs never have a row at ``ts`` (not warm yet). ``ts`` is scanned once every pair
  that has ever produced a row has produced one for a *later* ts (the analytics
  operator emits each key's rows in time order), or at EOF.
* **Amendments.** A row for an already scanned ``ts`` (the analytics operator
  re-emits rows after a late bar; or a pair whose first row comes late) replaces
  the old one and the whole ``ts`` is scanned again: every row of it is re-emitted
  (the sink upserts them). Scanned grid times are kept for
  :data:`AMEND_HORIZON_MS` (the bar amendment limit) plus one interval behind the
  newest; a row for an older scanned ``ts`` can no longer be re-ranked and is
  dropped and counted (``Stat`` ``scan/late_rows_total``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

if TYPE_CHECKING:
    from bytewax.operators import KeyedStream

from operators.keyed_batches import by_key, flatten
from pairflow.records import AnalyticsRow, ScanRow, Stat
from pairflow.stats.multitest import bh_qvalues
from pairflow.timeutil import TF_MS, now_ms

AMEND_HORIZON_MS = 5 * 60_000
"""How far back an amended analytics row can still re-rank its scan (bar amendment limit)."""

ScanOutput = ScanRow | Stat


def is_scan_time(ts_ms: int, tf_ms: int, every: int) -> bool:
    """True if grid time ``ts_ms`` is scanned: ``(ts_ms // tf_ms) % every == 0``."""
    return (ts_ms // tf_ms) % every == 0


def _rank_key(row: AnalyticsRow) -> tuple[bool, float, str]:
    p = row.eg_pvalue
    return (p is None, 0.0 if p is None else p, row.pair)


def scan_rows(tf: str, ts_ms: int, rows: Iterable[AnalyticsRow]) -> list[ScanRow]:
    """The scan of one grid time: q-values and ranks across ``rows`` (one per pair).

    Args:
        tf: Timeframe.
        ts_ms: The grid time.
        rows: The analytics rows at ``ts_ms`` (distinct pairs).

    Returns:
        One :class:`ScanRow` per row, in rank order.
    """
    ordered = sorted(rows, key=_rank_key)
    tested = [r.eg_pvalue for r in ordered if r.eg_pvalue is not None]
    qs = bh_qvalues(tested).tolist() if tested else []
    out: list[ScanRow] = []
    for i, r in enumerate(ordered):
        q = qs[i] if i < len(qs) else None  # tested rows come first in ``ordered``
        out.append(
            ScanRow(
                tf,
                ts_ms,
                r.pair,
                r.eg_pvalue,
                q,
                r.adf_pvalue,
                r.half_life,
                r.beta,
                r.corr,
                r.zscore,
                i + 1,
            )
        )
    return out


@dataclass
class ScanState:
    """State of one timeframe's scanner (picklable; the recovery snapshot).

    Attributes:
        tf: Timeframe.
        tf_ms: Its length (ms).
        every: Scan every this many grid times.
        latest: Newest ``ts`` seen per pair (every pair that ever produced a row).
        pending: Rows of scan times not scanned yet, by ts then pair.
        scanned: Rows of recently scanned times (for amendments), by ts then pair.
        floor_ms: Scan times below this are forgotten (amendments are dropped).
        late_rows: Rows dropped because their scan time was forgotten.
        reported_late: ``late_rows`` last reported as a Stat.
    """

    tf: str
    tf_ms: int
    every: int
    latest: dict[str, int] = field(default_factory=dict)
    pending: dict[int, dict[str, AnalyticsRow]] = field(default_factory=dict)
    scanned: dict[int, dict[str, AnalyticsRow]] = field(default_factory=dict)
    floor_ms: int | None = None
    late_rows: int = 0
    reported_late: int = 0


def ingest(state: ScanState, row: AnalyticsRow, dirty: set[int]) -> None:
    """Take one analytics row; add already-scanned times it changes to ``dirty``."""
    ts = row.ts_ms
    prev = state.latest.get(row.pair)
    if prev is None or ts > prev:
        state.latest[row.pair] = ts
    if not is_scan_time(ts, state.tf_ms, state.every):
        return
    done = state.scanned.get(ts)
    if done is not None:
        done[row.pair] = row
        dirty.add(ts)
    elif state.floor_ms is not None and ts < state.floor_ms:
        state.late_rows += 1
    else:
        state.pending.setdefault(ts, {})[row.pair] = row


def advance(state: ScanState, dirty: set[int], *, eof: bool = False) -> list[ScanOutput]:
    """Scan every complete pending time (all at EOF) and re-scan the ``dirty`` ones."""
    out: list[ScanOutput] = []
    if state.pending:
        through = None if eof else min(state.latest.values())
        for ts in sorted(state.pending):
            if through is not None and ts >= through:
                break
            state.scanned[ts] = state.pending.pop(ts)
            dirty.add(ts)
    for ts in sorted(dirty):
        out.extend(scan_rows(state.tf, ts, state.scanned[ts].values()))
    if dirty and state.scanned:
        newest = max(state.scanned)
        keep_from = newest - AMEND_HORIZON_MS - state.tf_ms
        for ts in [t for t in state.scanned if t < keep_from]:
            del state.scanned[ts]
        oldest = min(state.scanned)
        state.floor_ms = oldest if state.floor_ms is None else max(state.floor_ms, oldest)
    if state.late_rows != state.reported_late:
        state.reported_late = state.late_rows
        out.append(Stat(now_ms(), "scan", f"late_rows_{state.tf}_total", float(state.late_rows)))
    return out


class ScanLogic(
    StatefulBatchLogic[AnalyticsRow | list[AnalyticsRow], ScanOutput, ScanState | None]
):
    """Bytewax logic of one timeframe's scanner (see the module docstring).

    Args:
        resume: State from a snapshot, or ``None`` for a new timeframe.
        every: Scan every k-th grid time, per timeframe (missing: every one).
    """

    def __init__(self, resume: ScanState | None, every: Mapping[str, int]) -> None:
        self.state = resume
        self._every = every

    def on_batch(
        self, values: list[AnalyticsRow | list[AnalyticsRow]]
    ) -> tuple[Iterable[ScanOutput], bool]:
        """Ingest rows (pairs and times interleaved; or lists of them, in order).

        Then scan what became complete.
        """
        rows = flatten(values)
        if self.state is None:
            tf = rows[0].tf
            self.state = ScanState(tf, TF_MS[tf], self._every.get(tf, 1))
        dirty: set[int] = set()
        for row in rows:
            ingest(self.state, row, dirty)
        return advance(self.state, dirty), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ScanOutput], bool]:
        """Scan every pending time."""
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        return advance(self.state, set(), eof=True), StatefulBatchLogic.RETAIN

    def snapshot(self) -> ScanState | None:
        """A deep copy of the state."""
        return copy.deepcopy(self.state)


@operator
def pair_scan(
    step_id: str, rows: Stream[AnalyticsRow], every: Mapping[str, int]
) -> Stream[ScanOutput]:
    """The pair scanner as a Bytewax operator.

    Args:
        step_id: Unique step id.
        rows: Analytics rows of every pair and timeframe; per (pair, tf) in time order
            apart from amendments.
        every: ``PAIRFLOW_SCAN_EVERY``: scan every k-th grid time per timeframe.

    Returns:
        :class:`ScanRow` records (re-emitted on amendment: upsert them) and the
        ``late_rows`` counters as :class:`Stat`.
    """
    keyed = cast(
        "KeyedStream[AnalyticsRow | list[AnalyticsRow]]",
        op.flat_map_batch("scan_key", rows, by_key(_tf_of)),
    )
    scanned = op.stateful_batch("scan", keyed, lambda resume: ScanLogic(resume, every))
    return op.key_rm("scan_unkey", scanned)


def _tf_of(row: AnalyticsRow) -> str:
    return row.tf
