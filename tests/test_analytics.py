"""Pair analytics operator: alignment, statistics vs statsmodels, amendments, dataflow."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pandas as pd
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import input as op_input
from bytewax.operators import output as op_output
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.analytics import (
    PairAnalyticsLogic,
    Router,
    new_state,
    pair_analytics_op,
    pair_key,
    route,
)
from operators.pair_grid import PRE_GRID_MAX_BARS, advance, ingest
from pairflow.records import AnalyticsRow, Bar, Stat, Watermark
from pairflow.testing import RECORDING
from pairflow.testing.analytics_oracle import expected_row
from pairflow.testing.oracle import one_second_closes

Y, X = "BTCUSDT", "ETHUSDT"
KEY = pair_key(Y, X, "1s")
T0 = 1_723_161_255_000
TF = 1000
TRADES = RECORDING
STAT_COLS = ("alpha", "beta", "spread", "zscore", "corr", "adf_pvalue", "eg_pvalue", "half_life")


# ---------------------------------------------------------------- helpers


def final_rows(rows: list[AnalyticsRow]) -> list[AnalyticsRow]:
    """Upsert semantics: the last row written per ``ts`` wins, in ts order."""
    return [r for _, r in sorted({r.ts_ms: r for r in rows}.items())]


def bar(symbol: str, t: int, close: float, tf: str = "1s") -> Bar:
    return Bar(symbol, tf, t, close, close, close, close, 1.0, close, 1, 0.5, 1, 1)


def bars_for(symbol: str, closes: np.ndarray, t0: int = T0) -> list[Bar]:
    """A bar per grid interval where ``closes`` is not NaN (NaN = no trade)."""
    return [bar(symbol, t0 + i * TF, float(c)) for i, c in enumerate(closes) if not math.isnan(c)]


def merge_by_time(*legs: list[Bar | Watermark]) -> list[Bar | Watermark]:
    items = [it for leg in legs for it in leg]
    return sorted(items, key=lambda it: it.open_time_ms if isinstance(it, Bar) else it.through_ms)


def run_logic(
    items: list[Bar | Watermark],
    window: int,
    batches: list[int] | None = None,
    eof: bool = True,
    **kw: float,
) -> tuple[list[AnalyticsRow], list[Stat], PairAnalyticsLogic]:
    """Feed items through :class:`PairAnalyticsLogic` (as bytewax would), split outputs."""
    logic = PairAnalyticsLogic(None, lambda key: new_state(key, window, **kw))
    out: list = []
    sizes = batches or [1] * len(items)
    i = 0
    for size in sizes:
        chunk = items[i : i + size]
        i += size
        if chunk:
            out.extend(logic.on_batch([(KEY, it) for it in chunk])[0])
    if i < len(items):
        out.extend(logic.on_batch([(KEY, it) for it in items[i:]])[0])
    if eof:
        out.extend(logic.on_eof()[0])
    rows = [o for o in out if isinstance(o, AnalyticsRow)]
    stats = [o for o in out if isinstance(o, Stat)]
    return rows, stats, logic


def oracle(y_close: np.ndarray, x_close: np.ndarray) -> dict[str, float | None]:
    """Independent statsmodels computation of one window's statistics (the shared oracle)."""
    return expected_row(pd.DataFrame({"y": y_close, "x": x_close}))


TOL = {  # (rel, abs)
    "alpha": (1e-6, 1e-9),
    "beta": (1e-6, 1e-9),
    "spread": (1e-6, 1e-9),
    "zscore": (1e-6, 1e-6),
    "corr": (1e-6, 1e-9),
    "adf_pvalue": (0.0, 1e-6),
    "eg_pvalue": (0.0, 1e-6),
    "half_life": (1e-6, 1e-9),
}


def assert_row_matches(row: AnalyticsRow, ref: dict[str, float | None]) -> None:
    for col in STAT_COLS:
        got, want = getattr(row, col), ref[col]
        if want is None:
            assert got is None, col
            continue
        rel, abs_ = TOL[col]
        assert got == pytest.approx(want, rel=rel, abs=abs_), (col, row.ts_ms)


def assert_no_nan(row: AnalyticsRow) -> None:
    for col in ("y_close", "x_close", *STAT_COLS):
        v = getattr(row, col)
        assert v is None or (isinstance(v, float) and math.isfinite(v)), (col, v)


def trades_closes() -> pd.DataFrame:
    """Last price per (symbol, 1s interval) of the real trades; NaN = no trade."""
    return one_second_closes(TRADES, ffill=False)


@pytest.fixture(scope="module")
def real_closes() -> pd.DataFrame:
    return trades_closes()


def synthetic_pair(
    n: int, seed: int, beta: float = 1.5, theta: float = 0.2, coint_: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Closes of x: a log random walk; y = a + b x + OU noise (or an independent walk)."""
    rng = np.random.default_rng(seed)
    lx = math.log(2600.0) + np.cumsum(rng.normal(0, 1e-3, n))
    if coint_:
        u = np.zeros(n)
        for t in range(1, n):
            u[t] = (1 - theta) * u[t - 1] + rng.normal(0, 5e-4)
        ly = 11.0 - beta * math.log(2600.0) + beta * lx + u
    else:
        ly = 11.0 + np.cumsum(rng.normal(0, 1e-3, n))
    return np.exp(ly), np.exp(lx)


# ---------------------------------------------------------------- oracle tests


def test_analytics_equals_statsmodels_on_real_btc_eth_1s_closes(real_closes: pd.DataFrame) -> None:
    raw = real_closes
    items = merge_by_time(
        bars_for(Y, raw[Y].to_numpy(), int(raw.index[0])),
        bars_for(X, raw[X].to_numpy(), int(raw.index[0])),
    )
    w = 300
    rows, _, _ = run_logic(items, w)
    # Oracle grid: from the first second where both have traded, forward-filled.
    start = max(raw[Y].first_valid_index(), raw[X].first_valid_index())
    grid = raw.loc[start:]
    filled = grid.isna()
    grid = grid.ffill()
    assert len(rows) == len(grid) - w + 1
    for i, row in enumerate(rows):
        end = i + w
        assert row.ts_ms == grid.index[end - 1]
        assert row.y_close == grid[Y].iloc[end - 1]
        assert row.y_filled == bool(filled[Y].iloc[end - 1])
        assert row.x_filled == bool(filled[X].iloc[end - 1])
        assert_no_nan(row)
        if i % 3 == 0 or i == len(rows) - 1:
            assert_row_matches(
                row, oracle(grid[Y].iloc[i:end].to_numpy(), grid[X].iloc[i:end].to_numpy())
            )
    assert any(r.x_filled for r in rows)


@pytest.mark.parametrize(("w", "seed"), [(20, 1), (37, 2), (64, 3)])
def test_analytics_equals_statsmodels_on_random_windows_with_gaps(w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = w + 60
    yc, xc = synthetic_pair(n, seed, beta=rng.uniform(0.5, 2.0))
    # Quiet intervals (no bar) on each leg, never the first one.
    yq = rng.random(n) < 0.3
    xq = rng.random(n) < 0.3
    yq[0] = xq[0] = False
    y_bars = bars_for(Y, np.where(yq, np.nan, yc))
    x_bars = bars_for(X, np.where(xq, np.nan, xc))
    rows, _, _ = run_logic(merge_by_time(y_bars, x_bars), w)
    y_grid = pd.Series(np.where(yq, np.nan, yc)).ffill().to_numpy()
    x_grid = pd.Series(np.where(xq, np.nan, xc)).ffill().to_numpy()
    last_trade = max(np.flatnonzero(~yq).max(), np.flatnonzero(~xq).max())
    assert len(rows) == last_trade + 1 - w + 1
    for i, row in enumerate(rows):
        assert row.y_filled == bool(yq[i + w - 1])
        assert_row_matches(row, oracle(y_grid[i : i + w], x_grid[i : i + w]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_synthetic_cointegrated_pair_recovers_beta_and_gives_eg_below_5pct(seed: int) -> None:
    beta = 1.5
    yc, xc = synthetic_pair(700, seed, beta=beta)
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 300)
    betas = np.array([r.beta for r in rows])
    assert abs(np.median(betas) - beta) < 0.05 * beta
    eg = np.array([r.eg_pvalue for r in rows])
    assert np.mean(eg < 0.05) > 0.95
    assert rows[-1].eg_pvalue < 0.05
    hl = [r.half_life for r in rows if r.half_life is not None]
    # OU with theta=0.2: half-life ln2/-ln(0.8) ~ 3.1 bars
    assert 1.5 < float(np.median(hl)) < 6.0


def test_independent_random_walks_mostly_give_eg_above_5pct() -> None:
    above = 0
    seeds = range(20)
    for seed in seeds:
        yc, xc = synthetic_pair(320, 100 + seed, coint_=False)
        rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 300)
        above += rows[-1].eg_pvalue > 0.05
    assert above >= 16


# ---------------------------------------------------------------- edge cases


def test_analytics_when_window_longer_than_data_emits_nothing() -> None:
    yc, xc = synthetic_pair(50, 0)
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 51)
    assert rows == []
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 50)
    assert len(rows) == 1


def test_analytics_constant_x_leg_gives_none_where_undefined_without_crash() -> None:
    yc, _ = synthetic_pair(80, 1)
    xc = np.full(80, 2600.0)
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 30)
    assert len(rows) == 51
    for row in rows:
        assert_no_nan(row)
        for col in STAT_COLS:
            assert getattr(row, col) is None, col


def test_analytics_constant_y_leg_gives_zero_beta_and_none_for_z_tests_and_corr() -> None:
    _, xc = synthetic_pair(80, 2)
    yc = np.full(80, 61000.0)
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 30)
    for row in rows:
        assert_no_nan(row)
        assert row.beta == 0.0
        assert row.alpha == pytest.approx(math.log(61000.0), rel=1e-15)
        assert row.spread == 0.0
        for col in ("zscore", "corr", "adf_pvalue", "eg_pvalue", "half_life"):
            assert getattr(row, col) is None, col


def test_analytics_leg_constant_then_moving_becomes_defined_again() -> None:
    yc, xc = synthetic_pair(120, 3)
    xc[20:70] = xc[20]  # X flat for 50 intervals (> W): stats undefined, then back
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xc)), 30)
    by_t = {r.ts_ms: r for r in rows}
    assert by_t[T0 + 69 * TF].beta is None
    assert by_t[T0 + 75 * TF].beta is not None
    for r in rows:
        assert_no_nan(r)
        if r.beta is not None:
            i = (r.ts_ms - T0) // TF
            assert_row_matches(r, oracle(yc[i - 29 : i + 1], xc[i - 29 : i + 1]))


def test_analytics_one_leg_silent_for_many_intervals_is_forward_filled_via_watermarks() -> None:
    n, w = 120, 30
    yc, xc = synthetic_pair(n, 4)
    silent = range(40, 90)
    x_items: list[Bar | Watermark] = []
    for i in range(n):
        if i in silent:
            x_items.append(Watermark(X, "1s", T0 + (i + 1) * TF))  # no bar, interval closed
        else:
            x_items.append(bar(X, T0 + i * TF, float(xc[i])))
    items = merge_by_time(bars_for(Y, yc), x_items)
    # Stop before X's first bar after the silence: rows must already cover it.
    cut = next(
        k
        for k, it in enumerate(items)
        if isinstance(it, Bar) and it.symbol == X and it.open_time_ms == T0 + 90 * TF
    )
    rows, _, _ = run_logic(items[:cut], w, eof=False)
    by_t = {r.ts_ms: r for r in rows}
    for i in silent:
        r = by_t[T0 + i * TF]
        assert r.x_filled
        assert not r.y_filled
        assert r.x_close == xc[39]
        assert_no_nan(r)
    x_grid = xc.copy()
    x_grid[40:90] = xc[39]
    # Window ending at 55: X moves until 39, then carried: equal to the oracle.
    assert_row_matches(by_t[T0 + 55 * TF], oracle(yc[26:56], x_grid[26:56]))
    # Window ending at 89 lies inside the silence: X constant, stats undefined.
    assert by_t[T0 + 89 * TF].beta is None


def test_rows_wait_for_the_slower_leg_until_its_bar_or_watermark() -> None:
    yc, xc = synthetic_pair(60, 5)
    w = 10
    items = bars_for(Y, yc) + bars_for(X, xc[:20])  # X stops reporting after 20
    rows, _, logic = run_logic(items, w, eof=False)
    assert max(r.ts_ms for r in rows) == T0 + 19 * TF
    out, _ = logic.on_batch([(KEY, Watermark(X, "1s", T0 + 35 * TF))])
    new_rows = [o for o in out if isinstance(o, AnalyticsRow)]
    assert [r.ts_ms for r in new_rows] == [T0 + i * TF for i in range(20, 35)]
    assert all(r.x_filled for r in new_rows)


def test_grid_starts_at_first_interval_where_both_legs_have_traded() -> None:
    n, w = 60, 20
    yc, xc = synthetic_pair(n, 6)
    y_bars = bars_for(Y, yc)  # Y trades from interval 0 ...
    y_bars = [b for b in y_bars if b.open_time_ms != T0 + 7 * TF]  # ... but not at 7
    x_bars = bars_for(X, np.where(np.arange(n) < 7, np.nan, xc))  # X from interval 7
    rows, _, logic = run_logic(merge_by_time(y_bars, x_bars), w)
    assert logic.state.grid_points == n - 7  # grid = intervals 7 .. 59
    assert len(rows) == n - 7 - w + 1
    first = rows[0]
    assert first.ts_ms == T0 + (7 + w - 1) * TF
    # The grid's first point carries Y's close of interval 6 into interval 7.
    y_grid = yc[7 : 7 + w].copy()
    y_grid[0] = yc[6]
    assert_row_matches(first, oracle(y_grid, xc[7 : 7 + w]))
    assert rows[1].ts_ms == first.ts_ms + TF


def test_eof_flushes_up_to_the_last_interval_either_leg_traded() -> None:
    yc, xc = synthetic_pair(50, 7)
    items = merge_by_time(bars_for(Y, yc[:50]), bars_for(X, xc[:30]))
    rows, _, _ = run_logic(items, 10, eof=False)
    # Without EOF, X has only passed interval 29.
    assert max(r.ts_ms for r in rows) == T0 + 29 * TF
    rows, _, _ = run_logic(items, 10, eof=True)
    assert max(r.ts_ms for r in rows) == T0 + 49 * TF
    assert all(r.x_filled for r in rows if r.ts_ms > T0 + 29 * TF)


def test_late_bar_for_an_emitted_interval_amends_every_row_from_there() -> None:
    yc, xc = synthetic_pair(60, 8)
    xa = xc.copy()
    xa[30] *= 1.5
    items = merge_by_time(bars_for(Y, yc), bars_for(X, xc))
    want, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xa)), 20)
    late = bar(X, T0 + 30 * TF, float(xa[30]))
    k = next(i for i, it in enumerate(items) if it.open_time_ms == T0 + 45 * TF)
    rows, stats, logic = run_logic([*items[:k], late, *items[k:]], 20)
    assert final_rows(rows) == want  # bit-identical to the in-order run on the final bars
    assert logic.state.late_bars == 0
    got = {(s.metric, s.value) for s in stats}
    assert ("amended_points_total", 1) in got
    # rows 19..44 were placed when the bar came: 30..44 (15 rows) recomputed
    assert ("recomputed_rows_total", 15) in got


def test_bar_older_than_the_kept_history_is_ignored_and_counted() -> None:
    yc, xc = synthetic_pair(80, 8)
    items = merge_by_time(bars_for(Y, yc), bars_for(X, xc))
    clean, _, _ = run_logic(items, 20, horizon_ms=5_000)
    late = bar(X, T0 + 30 * TF, float(xc[30]) * 1.5)  # 70 - 30 > W + 5 + 1 points back
    k = next(i for i, it in enumerate(items) if it.open_time_ms == T0 + 70 * TF)
    rows, stats, logic = run_logic([*items[:k], late, *items[k:]], 20, horizon_ms=5_000)
    assert rows == clean
    assert logic.state.late_bars == 1
    assert [(s.metric, s.value) for s in stats] == [("late_bars_total", 1)]


def test_amended_bar_before_its_interval_is_placed_replaces_the_first() -> None:
    yc, xc = synthetic_pair(40, 9)
    items = merge_by_time(bars_for(Y, yc[:29]), bars_for(X, xc[:29]))
    # X's interval-29 bar arrives twice before Y has passed 29: the second one wins.
    amended = float(xc[29]) * 1.01
    items += [bar(X, T0 + 29 * TF, float(xc[29])), bar(X, T0 + 29 * TF, amended)]
    items += [bar(Y, T0 + 29 * TF, float(yc[29]))]
    rows, _, logic = run_logic(items, 10, eof=True)
    assert rows[-1].ts_ms == T0 + 29 * TF
    assert rows[-1].x_close == amended
    assert logic.state.late_bars == 0


def test_bar_with_bad_close_or_misaligned_open_is_ignored_and_counted() -> None:
    state = new_state(KEY, 5)
    ingest(state, bar(Y, T0, float("nan")))
    ingest(state, bar(Y, T0, -1.0))
    ingest(state, bar(Y, T0 + 1, 100.0))  # not aligned to the 1s grid
    assert state.bad_bars == 3
    assert state.y.pending == {}


def test_pvalue_every_k_computes_pvalues_every_k_grid_points() -> None:
    yc, xc = synthetic_pair(100, 10)
    items = merge_by_time(bars_for(Y, yc), bars_for(X, xc))
    every1, _, _ = run_logic(items, 40)
    every5, _, _ = run_logic(items, 40, pvalue_every=5)
    assert len(every1) == len(every5)
    for i, (a, b) in enumerate(zip(every1, every5, strict=True)):
        if i % 5 == 0:
            assert (b.adf_pvalue, b.eg_pvalue) == (a.adf_pvalue, a.eg_pvalue)
            assert b.adf_pvalue is not None
        else:
            assert b.adf_pvalue is None
            assert b.eg_pvalue is None
        assert (b.zscore, b.beta, b.half_life) == (a.zscore, a.beta, a.half_life)


@st.composite
def messy_legs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(5, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    legs = []
    for _ in range(2):
        kind = draw(st.sampled_from(["walk", "constant", "steps", "huge", "tiny"]))
        if kind == "walk":
            c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        elif kind == "constant":
            c = np.full(n, 3.0)
        elif kind == "steps":
            c = np.repeat(rng.uniform(1, 2, n // 10 + 1), 10)[:n]
        elif kind == "huge":
            c = 1e12 * np.exp(np.cumsum(rng.normal(0, 1e-6, n)))
        else:
            c = 1e-8 * np.exp(np.cumsum(rng.normal(0, 1e-2, n)))
        quiet = rng.random(n) < draw(st.sampled_from([0.0, 0.5, 0.9]))
        quiet[0] = False
        legs.append(np.where(quiet, np.nan, c))
    return legs[0], legs[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_legs(), st.integers(3, 25))
def test_analytics_never_emits_nan_or_inf(legs: tuple[np.ndarray, np.ndarray], w: int) -> None:
    yb, xb = legs
    rows, _, _ = run_logic(merge_by_time(bars_for(Y, yb), bars_for(X, xb)), w)
    for row in rows:
        assert_no_nan(row)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.data())
def test_batching_and_leg_interleaving_do_not_change_rows(seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    n = 45
    yc, xc = synthetic_pair(n, seed % 1000)
    yc = np.where(rng.random(n) < 0.3, np.nan, yc)
    xc = np.where(rng.random(n) < 0.3, np.nan, xc)
    yc[0] = 61000.0
    xc[0] = 2600.0
    y_items: list[Bar | Watermark] = []
    for i, c in enumerate(yc):
        y_items.append(
            Watermark(Y, "1s", T0 + (i + 1) * TF)
            if math.isnan(c)
            else bar(Y, T0 + i * TF, float(c))
        )
    x_items = bars_for(X, xc)  # X: bars only, no watermarks
    reference, _, _ = run_logic(merge_by_time(y_items, x_items), 12)
    # Random interleaving that keeps each leg's own order, random batch sizes.
    order = data.draw(st.permutations([0] * len(y_items) + [1] * len(x_items)))
    qs = [list(y_items), list(x_items)]
    mixed = [qs[leg].pop(0) for leg in order]
    sizes = data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=40))
    rows, _, _ = run_logic(mixed, 12, batches=sizes)
    assert rows == reference


def test_state_snapshot_pickles_and_resumes_identically() -> None:
    yc, xc = synthetic_pair(120, 11)
    items = merge_by_time(bars_for(Y, yc), bars_for(X, xc))
    full, _, _ = run_logic(items, 30)
    logic = PairAnalyticsLogic(None, lambda key: new_state(key, 30))
    out = list(logic.on_batch([(KEY, it) for it in items[:150]])[0])
    snap = pickle.loads(pickle.dumps(logic.snapshot()))
    resumed = PairAnalyticsLogic(snap, lambda key: new_state(key, 30))
    out += resumed.on_batch([(KEY, it) for it in items[150:]])[0]
    out += resumed.on_eof()[0]
    assert [o for o in out if isinstance(o, AnalyticsRow)] == full


# ---------------------------------------------------------------- wiring


def test_route_sends_each_item_to_every_pair_and_tf_holding_its_symbol() -> None:
    pairs = (("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "SOLUSDT"), ("ETHUSDT", "SOLUSDT"))
    windows = {"1s": 300, "1m": 120}
    b = bar("BTCUSDT", T0, 1.0)
    assert [k for k, _ in route(b, pairs, windows)] == [
        "BTCUSDT/ETHUSDT|1s",
        "BTCUSDT/SOLUSDT|1s",
    ]
    wm = Watermark("SOLUSDT", "1m", T0)
    assert [v for _, v in route(wm, pairs, windows)] == [
        ("BTCUSDT/SOLUSDT|1m", wm),
        ("ETHUSDT/SOLUSDT|1m", wm),
    ]
    assert route(bar("BTCUSDT", T0, 1.0, tf="5m"), pairs, windows) == []


def test_router_lists_exactly_the_pairs_of_a_symbol_in_pair_order_for_a_full_scan() -> None:
    from itertools import combinations

    symbols = [f"S{i}USDT" for i in range(6)]
    pairs = tuple(combinations(symbols, 2))
    windows = {"1s": 300, "5m": 60}
    router = Router(pairs, windows)
    for sym in symbols:
        for tf in ("1s", "1m", "5m"):
            want = [pair_key(y, x, tf) for y, x in pairs if sym in (y, x)] if tf in windows else []
            assert [k for k, _ in router(bar(sym, T0, 1.0, tf=tf))] == want
    assert sum(len(v) for v in router.keys.values()) == 2 * len(pairs) * len(windows)


def test_router_batch_gives_each_key_its_items_in_order_once() -> None:
    pairs = (("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "SOLUSDT"), ("ETHUSDT", "SOLUSDT"))
    windows = {"1s": 300, "1m": 120}
    router = Router(pairs, windows)
    items = [
        bar("BTCUSDT", T0, 1.0),
        bar("ETHUSDT", T0, 2.0),
        Watermark("SOLUSDT", "1s", T0),
        bar("BTCUSDT", T0 + 1000, 1.5),
        bar("SOLUSDT", T0, 3.0, tf="1m"),
        bar("BTCUSDT", T0, 1.0, tf="5m"),  # no 5m window: goes nowhere
    ]
    per_item: dict[str, list[object]] = {}
    for item in items:
        for key, (key_again, value) in router(item):
            assert key_again == key
            per_item.setdefault(key, []).append(value)
    batched = router.batch(items)
    assert [k for k, _ in batched] == list(per_item)  # one item per key
    assert {k: v for k, (k2, v) in batched if k2 == k} == per_item
    assert router.batch([]) == []


def test_logic_takes_a_routed_list_as_its_items_one_by_one() -> None:
    """What the flow sends (``Router.batch``) gives the rows of items sent one by one."""
    pairs = (("BTCUSDT", "ETHUSDT"),)
    windows = {"1s": 5}
    router = Router(pairs, windows)
    rng = random.Random(3)
    items = []
    for i in range(40):
        items.append(bar("BTCUSDT", T0 + 1000 * i, 100.0 + rng.gauss(0, 1)))
        items.append(bar("ETHUSDT", T0 + 1000 * i, 50.0 + rng.gauss(0, 1)))

    def rows(values: list) -> list:
        logic = PairAnalyticsLogic(None, lambda key: new_state(key, 5))
        out, _ = logic.on_batch(values)
        return list(out)

    one_by_one = rows([v for item in items for _, v in router(item)])
    listed = rows([v for _, v in router.batch(items)])
    assert len(one_by_one) > 20
    assert listed == one_by_one


def test_new_state_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="timeframe"):
        new_state("A/B|2s", 30)
    with pytest.raises(ValueError, match="window"):
        new_state(KEY, 2)
    with pytest.raises(ValueError, match="pvalue_every"):
        new_state(KEY, 30, pvalue_every=0)
    with pytest.raises(ValueError, match="kalman_delta"):
        new_state(KEY, 30, kalman_delta=-1.0)


def test_building_the_operator_imports_neither_numpy_nor_the_statistics() -> None:
    """A flow builds without numpy (start-up); making a key's logic loads none either."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import bytewax.operators as op\n"
        "from bytewax.dataflow import Dataflow\n"
        "from bytewax.testing import TestingSource\n"
        "from operators.analytics import PairAnalyticsLogic, pair_analytics_op\n"
        "flow = Dataflow('f')\n"
        "pair_analytics_op('pa', op.input('in', flow, TestingSource([])), (('A', 'B'),),"
        " {'1s': 30, '1m': 20}, compiled='auto')\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.partition('.')[0] == 'numpy'"
        " or m.startswith('pairflow.stats'))\n"
        "print(loaded())\n"
        "PairAnalyticsLogic(None, lambda k: None)\n"
        "print('numpy' in loaded(), 'pairflow.stats.cointegration' in loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "False False"]


# A key before its W-th grid point (a short run) needs no numpy: a subprocess feeds
# PairAnalyticsLogic (W = 30) 2 * 10 bars, an amended bar and a watermark, then the
# rest of 40 intervals, printing what was loaded after each step.
_LOGIC_STEPS = """
import json, sys
from operators.analytics import PairAnalyticsLogic, new_state
from pairflow.records import AnalyticsRow, Bar, Watermark
T0, KEY = 1_723_161_255_000, "BTCUSDT/ETHUSDT|1s"
def bar(sym, i, close):
    return Bar(sym, "1s", T0 + i * 1000, close, close, close, close, 1.0, close, 1, 0.5, 1, 1)
def closes(i):
    return 61000.0 * (1 + 1e-4 * ((i * 7) % 11)), 2600.0 * (1 + 1e-4 * ((i * 5) % 13))
def batch(i):
    y, x = closes(i)
    return [(KEY, bar("BTCUSDT", i, y)), (KEY, bar("ETHUSDT", i, x))]
logic = PairAnalyticsLogic(None, lambda k: new_state(k, 30))
steps, rows = {}, 0
def step(name, out):
    global rows
    rows += sum(isinstance(o, AnalyticsRow) for o in out)
    steps[name] = ["numpy" in sys.modules, "pairflow.stats.cointegration" in sys.modules, rows]
for i in range(10):
    step("bars", logic.on_batch(batch(i))[0])
step("amend", logic.on_batch([(KEY, bar("ETHUSDT", 3, 2601.5))])[0])
step("watermark", logic.on_batch([(KEY, Watermark("ETHUSDT", "1s", T0 + 11_000))])[0])
step("snapshot", [logic.snapshot()])
for i in range(10, 40):
    step("rows", logic.on_batch(batch(i))[0])
step("eof", logic.on_eof()[0])
steps["amended"] = logic.state.amended_points
print(json.dumps(steps))
"""


def test_a_key_before_its_first_row_imports_no_numpy_even_with_an_amendment() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _LOGIC_STEPS], capture_output=True, text=True, check=True
    )
    steps = json.loads(out.stdout)
    assert steps["amended"] == 1
    # (numpy loaded, the statistics loaded, rows so far)
    assert steps["bars"] == [False, False, 0]
    assert steps["amend"] == [False, False, 0]
    assert steps["watermark"] == [False, False, 0]
    assert steps["snapshot"] == [False, False, 0]
    assert steps["rows"] == [True, True, 40 - 30 + 1]  # grid points 30..40: the W-th on
    assert steps["eof"] == [True, True, 40 - 30 + 1]


# The whole flow (dataflow.build) over a TestingSource of ticks of two symbols, 10
# per symbol and second; prints what was loaded at the end and what reached DuckDB
# (read after the check). Few seconds keep the sink's batches small (no numpy there).
_FLOW_RUN = """
import json, sys
from bytewax.testing import TestingSource, run_main
import dataflow
from pairflow.config import load_settings
from pairflow.records import Tick
db, seconds, windows = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = load_settings({
    "PAIRFLOW_SOURCE": "binance", "PAIRFLOW_SYMBOLS": "BTCUSDT,ETHUSDT",
    "PAIRFLOW_WINDOWS": windows, "PAIRFLOW_DB": db, "PAIRFLOW_REDIS_URL": "",
})
t0 = 1_723_161_255_000
ticks = []
for k in range(seconds * 10):
    t = t0 + k * 100
    for j, (sym, base) in enumerate((("BTCUSDT", 61000.0), ("ETHUSDT", 2600.0))):
        price = round(base * (1 + 1e-4 * ((k * (3 + j)) % 17)), 2)
        ticks.append(Tick(sym, 1000 + k, price, 0.01, t + j, t + j + 5, k % 2 == 0,
                          str(price), "0.01"))
run_main(dataflow.build(settings, source=TestingSource(ticks, batch_size=10), with_redis=False))
loaded = {m: m in sys.modules for m in ("numpy", "operators.pair_row")}
import duckdb
con = duckdb.connect(db, read_only=True)
count = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("bars", "analytics")}
print(json.dumps({"ticks": len(ticks), **loaded, **count}))
"""


def _run_flow(tmp_path, seconds: int, windows: str) -> dict[str, int | bool]:
    import json
    import subprocess
    import sys
    from pathlib import Path

    db = tmp_path / "flow.db"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _FLOW_RUN, str(db), str(seconds), windows],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_a_short_run_of_the_whole_flow_imports_no_numpy(tmp_path) -> None:
    """100 ticks over 5 s: every key has fewer grid points than W, so no numpy."""
    got = _run_flow(tmp_path, 5, "1s=300,1m=120,5m=60")
    assert got["ticks"] == 100
    assert got["bars"] > 0
    assert got["analytics"] == 0
    assert got["operators.pair_row"] is False
    assert got["numpy"] is False


def test_a_run_of_the_whole_flow_past_w_grid_points_imports_numpy_and_makes_rows(
    tmp_path,
) -> None:
    got = _run_flow(tmp_path, 40, "1s=20")
    assert got["analytics"] >= 40 - 20
    assert got["operators.pair_row"] is True
    assert got["numpy"] is True


def test_operator_rejects_bad_parameters_while_the_flow_is_built() -> None:
    flow = Dataflow("bad_params")
    inp = op_input("inp", flow, TestingSource([]))
    with pytest.raises(ValueError, match="window"):
        pair_analytics_op("pa", inp, ((Y, X),), {"1s": 2})
    with pytest.raises(ValueError, match="PAIRFLOW_COMPILED"):
        pair_analytics_op("pb", inp, ((Y, X),), {"1s": 30}, compiled="maybe")


def test_dataflow_pair_analytics_end_to_end_with_testing_source() -> None:
    n = 90
    yc, xc = synthetic_pair(n, 13)
    # 1s bars for both legs, X quiet at some intervals (watermarks instead), plus
    # 1m bars (ignored for a 1s-only config) and a third symbol (ignored).
    x_items: list[Bar | Watermark] = []
    for i in range(n):
        if i % 7 == 3:
            x_items.append(Watermark(X, "1s", T0 + (i + 1) * TF))
        else:
            x_items.append(bar(X, T0 + i * TF, float(xc[i])))
    noise = [bar("SOLUSDT", T0 + i * TF, 150.0) for i in range(n)]
    minute = [bar(Y, T0, 61000.0, tf="1m")]
    items = merge_by_time(bars_for(Y, yc), x_items, noise, minute)
    expected, _, _ = run_logic([it for it in items if it.tf == "1s"], 40)

    flow = Dataflow("pair_analytics_test")
    inp = op_input("inp", flow, TestingSource(items, batch_size=7))
    out = pair_analytics_op("pa", inp, ((Y, X),), {"1s": 40})
    rows_out: list[AnalyticsRow] = []
    op_output("rows", out.rows, TestingSink(rows_out))
    run_main(flow)

    assert rows_out == expected
    assert len(rows_out) == n - 40 + 1
    assert any(r.x_filled for r in rows_out)
    x_grid = pd.Series([np.nan if i % 7 == 3 else xc[i] for i in range(n)]).ffill().to_numpy()
    assert_row_matches(rows_out[-1], oracle(yc[-40:], x_grid[-40:]))


def test_dataflow_operator_exposes_amendment_stats() -> None:
    yc, xc = synthetic_pair(30, 14)
    items = merge_by_time(bars_for(Y, yc), bars_for(X, xc))
    items.append(bar(X, T0 + 2 * TF, 1.0))  # interval 2 is long placed: an amendment
    flow = Dataflow("pair_analytics_stats")
    inp = op_input("inp", flow, TestingSource(items))
    out = pair_analytics_op("pa", inp, ((Y, X),), {"1s": 10})
    stats: list[Stat] = []
    rows: list[AnalyticsRow] = []
    op_output("stats", out.stats, TestingSink(stats))
    op_output("rows", out.rows, TestingSink(rows))
    run_main(flow)
    assert len(final_rows(rows)) == 21
    xa = xc.copy()
    xa[2] = 1.0
    want, _, _ = run_logic(merge_by_time(bars_for(Y, yc), bars_for(X, xa)), 10)
    assert final_rows(rows) == want
    got = {(s.component, s.metric, s.value) for s in stats}
    assert (f"analytics:{KEY}", "amended_points_total", 1) in got
    assert (f"analytics:{KEY}", "recomputed_rows_total", 21) in got


def test_advance_before_both_legs_traded_emits_nothing() -> None:
    state = new_state(KEY, 3)
    for i in range(10):
        ingest(state, bar(Y, T0 + i * TF, 1.0 + i))
    ingest(state, Watermark(X, "1s", T0 + 10 * TF))
    assert advance(state, eof=True) == []
    assert state.next_ms is None
    # Pre-grid Y bars were compacted to the one that can still be carried.
    assert list(state.y.pending) == [T0 + 9 * TF]


def test_analytics_pre_grid_buffer_is_bounded_when_one_leg_never_trades():
    state = new_state("BTCUSDT/ETHUSDT|1s", 20)
    base = 1_723_161_600_000
    for i in range(PRE_GRID_MAX_BARS + 500):
        bar = Bar("BTCUSDT", "1s", base + i * 1000, 1.0, 1.0, 1.0, 1.0 + i, 1.0, 1.0, 1, 0.0, i, i)
        ingest(state, bar)
        advance(state)
    assert len(state.y.pending) <= PRE_GRID_MAX_BARS
    assert max(state.y.pending) == base + (PRE_GRID_MAX_BARS + 499) * 1000
