"""Amendments propagate (issue 11, docs/design.md "Amendments: outputs follow the final bars").

Late bars within the horizon, in any order, must leave the same final ``analytics``
rows (upsert: last write per key wins) as an in-order run over the final bars, and
every row must equal statsmodels recomputed on those final bars. The old operator
dropped late bars, so both tests fail on it.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.analytics import PairAnalyticsLogic, new_state, pair_key
from pairflow.records import AnalyticsRow, Bar
from pairflow.stats.kalman import kalman_run
from tests.test_analytics import assert_row_matches, oracle, synthetic_pair

Y, X = "BTCUSDT", "ETHUSDT"
KEY = pair_key(Y, X, "1s")
T0 = 1_723_161_255_000
TF = 1000
N = 70
W = 20


def bar(symbol: str, i: int, close: float) -> Bar:
    return Bar(symbol, "1s", T0 + i * TF, close, close, close, close, 1.0, close, 1, 0.5, 1, 1)


def run(stream: list[list[Bar]], *, compiled: bool | None = None) -> tuple[list[AnalyticsRow], int]:
    """Batches through the logic; the final rows under upsert semantics, rows emitted."""
    logic = PairAnalyticsLogic(None, lambda k: new_state(k, W, compiled=compiled))
    out: list[object] = []
    for batch in stream:
        out += logic.on_batch([(KEY, b) for b in batch])[0]
    out += logic.on_eof()[0]
    rows: dict[int, AnalyticsRow] = {}
    emitted = 0
    for o in out:
        if isinstance(o, AnalyticsRow):
            rows[o.ts_ms] = o
            emitted += 1
    return [rows[t] for t in sorted(rows)], emitted


def in_order(yc: np.ndarray, xc: np.ndarray) -> list[list[Bar]]:
    """One batch per interval, both legs; NaN = no bar."""
    return [
        [bar(s, i, float(c[i])) for s, c in ((Y, yc), (X, xc)) if not math.isnan(c[i])]
        for i in range(len(yc))
    ]


@st.composite
def late_scenarios(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[list[Bar]]]:
    """A pair, its final bars, and a delivery where some bars arrive late.

    A late bar is either a changed close of a bar first delivered on time (an
    amendment: the first version is the "early" close) or a bar of an interval that
    first looked empty (forward-filled). It arrives after any later interval.
    """
    seed = draw(st.integers(0, 10_000))
    yc, xc = synthetic_pair(N, seed, theta=0.3)
    n_late = draw(st.integers(1, 8))
    early: dict[tuple[int, int], float | None] = {}
    late_at: dict[int, list[tuple[int, int]]] = {}
    for _ in range(n_late):
        leg = draw(st.integers(0, 1))
        i = draw(st.integers(1, N - 2))  # interval 0 stays (t0 fixed; see unit tests)
        if (leg, i) in early:
            continue
        kind = draw(st.sampled_from(["changed", "was_empty"]))
        c = (yc, xc)[leg]
        early[(leg, i)] = None if kind == "was_empty" else float(c[i]) * draw(st.floats(0.98, 1.02))
        arrive = draw(st.integers(i + 1, N))  # after interval `arrive - 1` was delivered
        late_at.setdefault(arrive, []).append((leg, i))
    stream: list[list[Bar]] = []
    for i in range(N + 1):
        batch: list[Bar] = []
        if i < N:
            for leg, (s, c) in enumerate(((Y, yc), (X, xc))):
                first = early.get((leg, i), float(c[i])) if (leg, i) in early else float(c[i])
                if first is not None:
                    batch.append(bar(s, i, first))
        for leg, j in late_at.get(i, []):
            s, c = ((Y, yc), (X, xc))[leg]
            batch.append(bar(s, j, float(c[j])))
        draw(st.randoms()).shuffle(batch)
        stream.append(batch)
    return yc, xc, stream


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(late_scenarios())
def test_any_order_of_late_bars_gives_the_in_order_rows(scenario) -> None:
    yc, xc, stream = scenario
    want_rows, _ = run(in_order(yc, xc))
    got_rows, _ = run(stream)
    assert got_rows == want_rows  # bit-identical, Kalman columns included


def test_rows_after_amendments_equal_statsmodels_on_the_final_bars() -> None:
    yc, xc = synthetic_pair(N, 21, theta=0.3)
    early_x = xc.copy()
    early_x[[25, 40, 41]] *= [1.01, 0.99, 1.015]
    early_y = yc.copy()
    early_y[33] = np.nan  # Y's bar of 33 arrives only later (the interval looked empty)
    stream = in_order(early_y, early_x)
    stream[50] += [bar(X, 25, float(xc[25])), bar(Y, 33, float(yc[33]))]
    stream[55] += [bar(X, 41, float(xc[41])), bar(X, 40, float(xc[40]))]
    rows, emitted = run(stream)
    assert emitted > len(rows)  # rows were recomputed
    assert [r.ts_ms for r in rows] == [T0 + i * TF for i in range(W - 1, N)]
    for k, row in enumerate(rows):
        end = W + k
        assert row.y_close == yc[end - 1] and row.x_close == xc[end - 1]
        assert_row_matches(row, oracle(yc[end - W : end], xc[end - W : end]))
    # Kalman columns: the filter over the final grid (kalman_run, tested vs statsmodels)
    _, outs = kalman_run(np.log(yc), np.log(xc), W, 0.01)
    for row, ref in zip(rows, outs, strict=True):
        assert ref is not None
        assert row.kalman_beta == ref.beta and row.kalman_alpha == ref.alpha
        assert row.kalman_spread == ref.spread and row.kalman_zscore == ref.zscore


@pytest.mark.parametrize("i", [1, 2, W - 2, W - 1, W, W + 1, 2 * W - 1, 2 * W, 2 * W + 1, N - 2])
@pytest.mark.parametrize("delay", [1, 3, W])
def test_an_amendment_at_any_ring_position_gives_the_in_order_rows(i: int, delay: int) -> None:
    """One changed X bar at grid index ``i``, arriving ``delay`` intervals later.

    Before the first row (``i + delay < W``) the restart restores windows that are not
    full yet; later ones restore them at every head position of the rings (the
    plain-Python :func:`~pairflow.stats.rolling.restore`).
    """
    yc, xc = synthetic_pair(N, 8, theta=0.3)
    early_x = xc.copy()
    early_x[i] *= 1.01
    stream = in_order(yc, early_x)
    arrive = min(i + delay, N)
    stream.append([])
    stream[arrive] = [*stream[arrive], bar(X, i, float(xc[i]))]
    want_rows, _ = run(in_order(yc, xc))
    got_rows, emitted = run(stream)
    assert got_rows == want_rows  # bit-identical
    # Rows are re-emitted iff some existed: the amendment goes before interval `arrive`.
    assert (emitted > len(got_rows)) == (arrive > W - 1)


@given(late_scenarios())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_snapshots_are_not_changed_by_later_batches(scenario) -> None:
    """``snapshot()`` shares the placed grid points: later batches (amendments, restarts)
    must leave every earlier snapshot as it was (compared with a deep copy's pickle)."""
    _, _, delivery = scenario
    logic = PairAnalyticsLogic(None, lambda k: new_state(k, W))
    taken: list[tuple[object, bytes]] = []
    for batch in delivery:
        logic.on_batch([(KEY, b) for b in batch])
        taken.append((logic.snapshot(), pickle.dumps(copy.deepcopy(logic.state))))
    logic.on_eof()
    for snap, frozen in taken:
        assert pickle.dumps(snap) == frozen
