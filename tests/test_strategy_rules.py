"""Strategy state machine (pairflow.strategies.rules) on hand-made paths and vs the reference.

The reference (pairflow.testing.strategy_reference) is an independent, column-wise
implementation of docs/design.md "Strategies and paper PnL"; hand-made cases pin each rule
with numbers worked out here.
"""

from __future__ import annotations

import copy
import math
import pickle
import statistics
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairflow.stats.kalman import kalman_run
from pairflow.strategies.params import StrategyParams
from pairflow.strategies.rules import (
    EquityPoint,
    StepResult,
    StrategyState,
    new_state,
    step,
    step_row,
)
from pairflow.testing import RECORDING
from pairflow.testing.oracle import one_second_closes
from pairflow.testing.strategy_reference import STATS_COLUMNS, TRADE_COLUMNS, reference_run

TF_MS = 1000
P0 = StrategyParams(name="t", entry=2.0, exit=0.5, stop=4.0, max_hold=0, fee_bps=0.0)


def run(
    zs: list[float | None],
    params: StrategyParams = P0,
    ys: list[float] | None = None,
    xs: list[float] | None = None,
    betas: list[float | None] | None = None,
) -> list[StepResult]:
    n = len(zs)
    ys = ys or [100.0 + i for i in range(n)]
    xs = xs or [50.0 + 0.5 * i for i in range(n)]
    betas = betas or [1.0] * n
    state = new_state(params, "Y/X", "1s")
    return [step(state, i * TF_MS, ys[i], xs[i], zs[i], betas[i]) for i in range(n)]


def kinds(results: list[StepResult]) -> list[tuple[int, str]]:
    return [(s.ts_ms // TF_MS, s.kind) for r in results for s in r.signals]


def positions(results: list[StepResult]) -> list[int]:
    return [r.equity.position for r in results]


def closed(results: list[StepResult]) -> list:
    return [t for r in results for t in r.trades]


def test_entry_short_when_z_above_entry_fills_next_row() -> None:
    res = run([0.0, 2.5, 1.0, 1.0])
    assert kinds(res) == [(1, "short_spread")]
    assert positions(res) == [0, 0, -1, -1]
    assert res[1].signals[0].zscore == 2.5


def test_entry_long_when_z_below_minus_entry() -> None:
    res = run([0.0, -2.1, -1.0])
    assert kinds(res) == [(1, "long_spread")]
    assert positions(res) == [0, 0, 1]


def test_z_equal_to_entry_does_not_enter() -> None:
    assert kinds(run([2.0, -2.0, 0.0])) == []


def test_exit_short_when_z_falls_below_exit() -> None:
    ys = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    xs = [50.0, 50.0, 51.0, 51.0, 50.0, 50.0]
    res = run([0.0, 2.5, 1.0, 0.3, 0.1, 0.1], ys=ys, xs=xs, betas=[1.0, 1.5, 9.0, 9.0, 9.0, 9.0])
    assert kinds(res) == [(1, "short_spread"), (3, "exit")]
    assert positions(res) == [0, 0, -1, -1, 0, 0]
    (t,) = closed(res)
    assert res[4].trades == (t,)
    q_y = -10_000 / 102.0
    q_x = 1.5 * 10_000 / 51.0
    assert (t.entry_ts_ms, t.exit_ts_ms, t.side, t.reason) == (2000, 4000, -1, "exit")
    assert (t.entry_z, t.exit_z, t.beta, t.bars_held) == (2.5, 0.3, 1.5, 2)
    assert (t.entry_y, t.entry_x, t.exit_y, t.exit_x) == (102.0, 51.0, 104.0, 50.0)
    assert t.q_y == pytest.approx(q_y, rel=1e-15)
    assert t.q_x == pytest.approx(q_x, rel=1e-15)
    assert t.fees == 0.0
    assert t.pnl == pytest.approx(q_y * 2.0 + q_x * -1.0, rel=1e-12)
    assert res[3].equity.equity == pytest.approx(q_y * 1.0 + q_x * 0.0, rel=1e-12)
    assert res[5].equity.equity == pytest.approx(t.pnl, rel=1e-15)


def test_exit_long_when_z_rises_above_minus_exit() -> None:
    res = run([-2.5, -1.0, -0.4, 0.0])
    assert kinds(res) == [(0, "long_spread"), (2, "exit")]
    assert positions(res) == [0, 1, 1, 0]


def test_stop_then_rearm_only_after_abs_z_below_entry() -> None:
    zs = [0.0, 2.5, 3.0, 4.5, 3.0, 2.5, 1.9, 2.5, 2.5]
    res = run(zs)
    assert kinds(res) == [(1, "short_spread"), (3, "stop"), (7, "short_spread")]
    assert positions(res) == [0, 0, -1, -1, 0, 0, 0, 0, -1]
    (t,) = closed(res)
    assert (t.reason, t.exit_z, t.bars_held) == ("stop", 4.5, 2)


def test_stop_of_a_long_and_stop_zero_is_off() -> None:
    res = run([-2.5, -3.0, -4.1, -5.0])
    assert kinds(res) == [(0, "long_spread"), (2, "stop")]
    off = run([-2.5, -3.0, -4.1, -9.0], params=replace(P0, stop=0.0))
    assert kinds(off) == [(0, "long_spread")]
    assert positions(off) == [0, 1, 1, 1]


def test_rearm_on_the_stop_side_needs_abs_z_below_entry_too() -> None:
    # After a long is stopped, z coming back to -2.5 (still beyond entry) must not re-enter.
    res = run([-2.5, -4.5, -2.5, -2.5, -1.0, -2.5])
    assert kinds(res) == [(0, "long_spread"), (1, "stop"), (5, "long_spread")]


def test_flip_short_to_long_at_one_fill_exit_reason_exit() -> None:
    res = run([0.0, 2.5, -2.5, -1.0, -1.0])
    assert kinds(res) == [(1, "short_spread"), (2, "exit"), (2, "long_spread")]
    assert positions(res) == [0, 0, -1, 1, 1]
    (t,) = res[3].trades
    assert (t.side, t.reason, t.exit_ts_ms, t.exit_z, t.bars_held) == (-1, "exit", 3000, -2.5, 1)
    # The new long opened at the same fill (row 3), sized at row 2's decision.
    flip = run([0.0, 2.5, -2.5, 0.0, 0.0])
    (t1, t2) = closed(flip)
    assert (t2.side, t2.entry_ts_ms, t2.entry_z, t2.exit_ts_ms) == (1, 3000, -2.5, 4000)
    assert t1.exit_ts_ms == t2.entry_ts_ms


def test_flip_long_to_short() -> None:
    res = run([-2.5, 3.0, 0.0, 0.0])
    assert kinds(res) == [(0, "long_spread"), (1, "exit"), (1, "short_spread"), (2, "exit")]
    assert positions(res) == [0, 1, -1, 0]


def test_time_stop_after_max_hold_then_disarmed() -> None:
    params = replace(P0, max_hold=2)
    zs = [0.0, 2.5, 2.2, 2.2, 2.2, 2.2, 2.2, 1.0, 2.5, 2.2]
    res = run(zs, params=params)
    # entry fills at 2 (held 0), held 2 at row 4 → time; fill at 5; re-arm at 7; enter at 8.
    assert kinds(res) == [(1, "short_spread"), (4, "time"), (8, "short_spread")]
    (t,) = closed(res)
    assert (t.reason, t.entry_ts_ms, t.exit_ts_ms, t.bars_held) == ("time", 2000, 5000, 3)
    assert positions(res) == [0, 0, -1, -1, -1, 0, 0, 0, 0, -1]


def test_exit_has_priority_over_time_and_stop_over_exit() -> None:
    params = replace(P0, max_hold=1)
    assert kinds(run([2.5, 2.4, 0.1], params=params))[-1] == (2, "exit")
    assert kinds(run([2.5, 2.4, 2.4], params=params))[-1] == (2, "time")
    assert kinds(run([2.5, 5.0], params=params))[-1] == (1, "stop")


def test_null_z_decides_nothing_but_fills_and_marks() -> None:
    ys = [100.0, 100.0, 101.0, 103.0, 104.0, 104.0]
    res = run([0.0, 2.5, None, math.nan, 0.1, None], ys=ys)
    assert kinds(res) == [(1, "short_spread"), (4, "exit")]
    assert positions(res) == [0, 0, -1, -1, -1, 0]
    q_y = -10_000 / 101.0
    q_x = 10_000 / 51.0  # beta 1, X = 50 + 0.5 i
    assert res[3].equity.equity == pytest.approx(q_y * 2.0 + q_x * 0.5, rel=1e-12)
    assert [r.signals for r in res[2:4]] == [(), ()]


def test_null_beta_decides_nothing() -> None:
    res = run([2.5, 2.5, 0.0], betas=[None, 1.0, 1.0])
    assert kinds(res) == [(1, "short_spread"), (2, "exit")]


def test_entry_on_last_row_is_pending_not_a_trade() -> None:
    res = run([0.0, 0.0, 2.5])
    assert kinds(res) == [(2, "short_spread")]
    assert positions(res) == [0, 0, 0]
    assert closed(res) == []
    s = res[-1].stats
    assert (s.trades, s.win_rate, s.mean_bars_held, s.sharpe) == (0, None, None, None)
    assert (s.pnl, s.return_pct, s.max_drawdown, s.exposure) == (0.0, 0.0, 0.0, 0.0)
    assert res[-1].equity == EquityPoint("t", "Y/X", "1s", 2000, 0, 0.0)


def test_fees_and_stats_arithmetic() -> None:
    params = replace(P0, fee_bps=10.0, notional=10_000.0)
    res = run(
        [-2.5, 0.0, 0.0],
        params=params,
        ys=[100.0, 100.0, 110.0],
        xs=[50.0, 50.0, 52.0],
        betas=[2.0, 2.0, 2.0],
    )
    (t,) = closed(res)
    # q_y = 100, q_x = -400; entry fee 0.001 (100*100 + 400*50) = 30;
    # exit fee 0.001 (100*110 + 400*52) = 31.8; gross 100*10 - 400*2 = 200.
    assert (t.q_y, t.q_x) == (100.0, -400.0)
    assert t.fees == pytest.approx(61.8, rel=1e-12)
    assert t.pnl == pytest.approx(138.2, rel=1e-12)
    assert [r.equity.equity for r in res] == pytest.approx([0.0, -30.0, 138.2], rel=1e-12)
    s = res[-1].stats
    d = [0.0, -30.0, 168.2]
    want_sharpe = statistics.mean(d) / statistics.stdev(d) * math.sqrt(365 * 86400)
    assert s.sharpe == pytest.approx(want_sharpe, rel=1e-12)
    assert (s.trades, s.win_rate, s.mean_bars_held) == (1, 1.0, 1.0)
    assert s.pnl == pytest.approx(138.2, rel=1e-12)
    assert s.return_pct == pytest.approx(1.382, rel=1e-12)
    assert s.max_drawdown == pytest.approx(30.0, rel=1e-12)
    assert s.exposure == pytest.approx(1 / 3, rel=1e-15)


def test_losing_trade_win_rate_and_drawdown_from_e_minus_1_zero() -> None:
    params = replace(P0, fee_bps=5.0)
    res = run([-2.5, 0.0, 0.0, 0.0], params=params, ys=[100.0, 100.0, 90.0, 90.0])
    s = res[-1].stats
    assert (s.trades, s.win_rate) == (1, 0.0)
    assert s.max_drawdown == pytest.approx(-min(r.equity.equity for r in res), rel=1e-12)


def test_sharpe_annualisation_uses_the_timeframe() -> None:
    params = replace(P0, fee_bps=10.0)
    zs: list[float | None] = [-2.5, 0.0, 0.0]
    a = run(zs, params=params)
    state = new_state(params, "Y/X", "1m")
    b = [step(state, i * 60_000, 100.0 + i, 50.0 + 0.5 * i, zs[i], 1.0) for i in range(3)]
    assert a[-1].stats.sharpe is not None and b[-1].stats.sharpe is not None
    assert a[-1].stats.sharpe / b[-1].stats.sharpe == pytest.approx(math.sqrt(60), rel=1e-12)


def test_snapshot_by_copy_resumes_identically_and_pickles() -> None:
    rng = np.random.default_rng(5)
    zs = rng.normal(0, 2.5, 200).tolist()
    state = new_state(replace(P0, max_hold=7, fee_bps=3.0), "Y/X", "1s")
    out_a: list[StepResult] = []
    snap: StrategyState | None = None
    for i, z in enumerate(zs):
        if i == 120:
            snap = copy.copy(state)
        out_a.append(step(state, i * TF_MS, 100.0 + i * 0.1, 50.0, z, 1.1))
    assert snap is not None
    snap = pickle.loads(pickle.dumps(snap))
    out_b = [step(snap, i * TF_MS, 100.0 + i * 0.1, 50.0, zs[i], 1.1) for i in range(120, 200)]
    assert out_b == out_a[120:]
    assert snap == state


def test_rows_out_of_order_or_bad_closes_raise() -> None:
    state = new_state(P0, "Y/X", "1s")
    step(state, 1000, 1.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="grid order"):
        step(state, 1000, 1.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        step(state, 2000, 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="timeframe"):
        new_state(P0, "Y/X", "2s")


def test_step_row_picks_the_models_columns() -> None:
    class Row:
        def __init__(self, ts_ms: int, z: float, kz: float) -> None:
            self.ts_ms, self.y_close, self.x_close = ts_ms, 10.0, 5.0
            self.zscore, self.beta, self.kalman_zscore, self.kalman_beta = z, 1.0, kz, 2.0

    ols = new_state(P0, "Y/X", "1s")
    kal = new_state(replace(P0, model="kalman"), "Y/X", "1s")
    a = step_row(ols, Row(0, 3.0, 0.0))
    b = step_row(kal, Row(0, 3.0, -3.0))
    assert [s.kind for s in a.signals] == ["short_spread"]
    assert [s.kind for s in b.signals] == ["long_spread"]


# --- the state machine equals the independent reference -------------------------------


def machine_frames(
    df: pd.DataFrame, params: StrategyParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    state = new_state(params, "Y/X", "1s")
    trades, equity, stats, signals = [], [], [], []
    for row in df.itertuples(index=False):
        z = getattr(row, params.z_column)
        b = getattr(row, params.beta_column)
        z = None if z is None or (isinstance(z, float) and math.isnan(z)) else z
        b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
        r = step(state, int(row.ts), float(row.y_close), float(row.x_close), z, b)
        trades += [
            (t.entry_ts_ms, t.exit_ts_ms, t.side, t.entry_z, t.exit_z, t.beta, t.q_y, t.q_x,
             t.entry_y, t.entry_x, t.exit_y, t.exit_x, t.fees, t.pnl, t.bars_held, t.reason)
            for t in r.trades
        ]  # fmt: skip
        equity.append((r.equity.ts_ms, r.equity.position, r.equity.equity))
        s = r.stats
        stats.append(
            (s.ts_ms, s.trades, s.win_rate, s.pnl, s.return_pct, s.sharpe, s.max_drawdown,
             s.exposure, s.mean_bars_held)
        )  # fmt: skip
        signals += [(g.ts_ms, g.kind, g.zscore) for g in r.signals]
    return (
        pd.DataFrame(trades, columns=TRADE_COLUMNS),
        pd.DataFrame(equity, columns=["ts", "position", "equity"]),
        pd.DataFrame(stats, columns=STATS_COLUMNS).astype(
            {"win_rate": float, "sharpe": float, "mean_bars_held": float}
        ),
        pd.DataFrame(signals, columns=["ts", "kind", "zscore"]),
    )


def assert_frames_close(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want), f"{what}: {len(got)} rows vs {len(want)}"
    for col in got.columns:
        g, w = got[col], want[col]
        numeric = pd.api.types.is_numeric_dtype
        if not (numeric(g.dtype) and numeric(w.dtype)):
            assert g.tolist() == w.tolist(), f"{what}.{col} differs"
            continue
        ga = g.to_numpy(dtype=float)
        wa = w.to_numpy(dtype=float)
        assert (np.isnan(ga) == np.isnan(wa)).all(), f"{what}.{col}: NULLs differ"
        ok = ~np.isnan(wa)
        scale = np.maximum(1.0, np.abs(wa[ok]))
        err = np.abs(ga[ok] - wa[ok]) / scale
        assert err.size == 0 or err.max() <= 1e-9, f"{what}.{col}: worst {err.max():.3e}"


def assert_same_as_reference(df: pd.DataFrame, params: StrategyParams) -> None:
    got = machine_frames(df, params)
    want = reference_run(df, params, TF_MS)
    for g, w, what in zip(got, want, ("trades", "equity", "stats", "signals"), strict=True):
        assert_frames_close(g, w.reset_index(drop=True), what)


z_values = st.one_of(
    st.none(),
    st.floats(-6.0, 6.0, allow_nan=False),
    st.sampled_from([0.0, 0.5, -0.5, 2.0, -2.0, 4.0, -4.0]),
)


@st.composite
def params_strategy(draw: st.DrawFn) -> StrategyParams:
    entry = draw(st.floats(0.5, 3.0))
    exit_ = draw(st.floats(0.0, entry * 0.99))
    stop = draw(st.one_of(st.just(0.0), st.floats(entry + 0.05, entry + 3.0)))
    return StrategyParams(
        name="h",
        model=draw(st.sampled_from(["ols", "kalman"])),
        entry=entry,
        exit=exit_,
        stop=stop,
        max_hold=draw(st.integers(0, 6)),
        fee_bps=draw(st.sampled_from([0.0, 1.0, 10.0, 25.0])),
        notional=draw(st.sampled_from([1.0, 10_000.0, 123_456.0])),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zs=st.lists(z_values, min_size=0, max_size=80),
    params=params_strategy(),
    seed=st.integers(0, 2**32 - 1),
)
def test_machine_equals_reference_on_random_paths(
    zs: list[float | None], params: StrategyParams, seed: int
) -> None:
    n = len(zs)
    rng = np.random.default_rng(seed)
    y = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    x = 40.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    beta = rng.uniform(0.2, 2.5, n)
    z = np.array([np.nan if v is None else v for v in zs], dtype=float)
    df = pd.DataFrame(
        {
            "ts": np.arange(n, dtype=np.int64) * TF_MS + 1_700_000_000_000,
            "y_close": y,
            "x_close": x,
            "zscore": z,
            "beta": beta,
            "kalman_zscore": z[::-1].copy(),
            "kalman_beta": beta[::-1].copy(),
        }
    )
    assert_same_as_reference(df, params)


def rolling_ols_z(y: np.ndarray, x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling OLS beta and z = residual_t / std(window residuals, ddof=1), via pandas."""
    ys, xs = pd.Series(y), pd.Series(x)
    var_x = xs.rolling(window).var()
    cov = ys.rolling(window).cov(xs)
    beta = cov / var_x
    alpha = ys.rolling(window).mean() - beta * xs.rolling(window).mean()
    rss_per = ys.rolling(window).var() - beta * cov  # RSS / (W - 1)
    z = (ys - alpha - beta * xs) / np.sqrt(rss_per)
    return beta.to_numpy(), z.to_numpy()


@pytest.mark.parametrize("model", ["ols", "kalman"])
def test_machine_equals_reference_on_the_recording(model: str) -> None:
    closes = one_second_closes(RECORDING)
    ly = np.log(closes["BTCUSDT"].to_numpy())
    lx = np.log(closes["ETHUSDT"].to_numpy())
    window = 60
    beta, z = rolling_ols_z(ly, lx, window)
    _, kout = kalman_run(ly, lx, window, 0.01)
    k = slice(window - 1, None)
    df = pd.DataFrame(
        {
            "ts": closes.index.to_numpy(dtype=np.int64)[k],
            "y_close": closes["BTCUSDT"].to_numpy()[k],
            "x_close": closes["ETHUSDT"].to_numpy()[k],
            "zscore": z[k],
            "beta": beta[k],
            "kalman_zscore": [np.nan if o is None or o.zscore is None else o.zscore for o in kout],
            "kalman_beta": [np.nan if o is None else o.beta for o in kout],
        }
    )
    for params in (
        StrategyParams(name="r", model=model, entry=1.5, exit=0.3, stop=3.0, fee_bps=1.0),
        StrategyParams(name="r", model=model, entry=1.0, exit=0.0, stop=0.0, max_hold=20),
    ):
        trades, _, _, _ = reference_run(df, params, TF_MS)
        assert len(trades) >= 3  # a realistic path with several round trips
        assert_same_as_reference(df, params)


def test_stepping_without_stats_changes_nothing_but_the_stats_record() -> None:
    """The flow steps with ``with_stats=False`` and calls ``stats`` once per batch."""
    from pairflow.strategies.rules import stats

    zs = [0.0, 2.5, 1.0, 0.2, -2.5, -2.4, 0.0, 3.0, 5.0, 0.0]
    params = replace(P0, fee_bps=5.0)
    with_stats = new_state(params, "Y/X", "1s")
    without = new_state(params, "Y/X", "1s")
    for i, z in enumerate(zs):
        a = step(with_stats, i * TF_MS, 100.0 + i, 50.0 - 0.3 * i, z, 1.5)
        b = step(without, i * TF_MS, 100.0 + i, 50.0 - 0.3 * i, z, 1.5, with_stats=False)
        assert b.stats is None
        assert (a.signals, a.trades, a.equity) == (b.signals, b.trades, b.equity)
        assert stats(without) == a.stats
    assert stats(with_stats).trades >= 2
