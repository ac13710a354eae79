"""O(1) rolling moments/OLS/corr against statsmodels and numpy oracles."""

from __future__ import annotations

import copy
import math
import pickle
from array import array
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairflow.stats.rolling import RollingPair, restore, scalars

RTOL = 1e-6
EPS = float(np.finfo(float).eps)


def sm_fit(y: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Reference: statsmodels OLS of y on [1, x] -> (alpha, beta, residuals)."""
    res = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()
    return float(res.params[0]), float(res.params[1]), np.asarray(res.resid)


def sm_rounding(y: np.ndarray, x: np.ndarray, beta: float) -> float:
    """Per-element rounding error bound of statsmodels' residuals.

    statsmodels solves the uncentred design ``[1, x]`` with a pseudo-inverse, so its
    residuals carry an error of about ``eps * cond([1, x]) * |level|``. For log
    prices (x ~ 8, moves ~1e-4) that is ~1e-11, far below our 1e-6 tolerance; for
    near-constant series it is larger than the spread itself. Tolerances therefore
    use ``max(1e-6 relative, statsmodels' own error)``.
    """
    cond = float(np.linalg.cond(sm.add_constant(x, has_constant="add")))
    level = abs(float(y.mean())) + abs(beta * float(x.mean())) + float(np.ptp(y))
    return 10 * EPS * cond * level


def assert_fit_matches(rp: RollingPair) -> None:
    """The rolling fit of the current window equals statsmodels OLS.

    Tolerance: 1e-6 relative, or statsmodels' own rounding (see :func:`sm_rounding`)
    where that is larger.
    """
    yw, xw = (np.array(v) for v in rp.window())
    alpha_ref, beta_ref, resid = sm_fit(yw, xw)
    fit = rp.ols()
    assert fit is not None
    n = len(yw)
    delta = sm_rounding(yw, xw, beta_ref)
    sxx = float(np.sum((xw - xw.mean()) ** 2))
    tol_beta = delta * math.sqrt(n / sxx)
    assert fit.beta == pytest.approx(beta_ref, rel=RTOL, abs=tol_beta)
    tol_alpha = tol_beta * abs(float(xw.mean())) + delta
    assert fit.alpha == pytest.approx(alpha_ref, rel=RTOL, abs=tol_alpha)
    ssr_ref = float(resid @ resid)
    tol_ssr = 2 * math.sqrt(ssr_ref * n) * delta + n * delta**2
    assert fit.ssr == pytest.approx(ssr_ref, rel=RTOL, abs=tol_ssr)
    # zscore from the sums (mean of spreads = 0, std from ssr) vs the direct
    # computation on statsmodels' residuals, where those are above its rounding.
    if resid.std() > 1e4 * delta:
        z_ref = (resid[-1] - resid.mean()) / resid.std(ddof=1)
        y_t, x_t = rp.last()
        z = ((y_t - fit.mean_a) - fit.beta * (x_t - fit.mean_b)) / math.sqrt(fit.ssr / (fit.n - 1))
        # statsmodels' residual rounding moves its z by up to ~delta / std.
        tol_z = 1e-9 + 10 * delta / float(resid.std(ddof=1))
        assert z == pytest.approx(z_ref, rel=RTOL, abs=tol_z)
        assert abs(resid.mean()) < 1e-6 * resid.std() + delta  # OLS residuals sum to 0


def assert_fit_exact(rp: RollingPair) -> None:
    """The rolling fit equals exact rational arithmetic on the window's floats."""
    yw, xw = rp.window()
    ys = [Fraction(float(v)) for v in yw]
    xs = [Fraction(float(v)) for v in xw]
    n = len(ys)
    my, mx = sum(ys) / n, sum(xs) / n
    sxy = sum((a - my) * (b - mx) for a, b in zip(ys, xs, strict=True))
    sxx = sum((b - mx) ** 2 for b in xs)
    syy = sum((a - my) ** 2 for a in ys)
    fit = rp.ols()
    assert fit is not None
    beta = sxy / sxx
    assert fit.beta == pytest.approx(float(beta), rel=1e-9, abs=1e-300)
    assert fit.alpha == pytest.approx(float(my - beta * mx), rel=1e-9, abs=1e-12)
    ssr = syy - beta * sxy
    assert fit.ssr == pytest.approx(float(ssr), rel=1e-6, abs=1e-300)
    if ssr > 0:
        spread_t = (ys[-1] - my) - beta * (xs[-1] - mx)
        z_exact = float(spread_t) / math.sqrt(float(ssr) / (n - 1))
        dy_t, dx_t = rp.last_deviation()
        z = (dy_t - fit.beta * dx_t) / math.sqrt(fit.ssr / (fit.n - 1))
        assert z == pytest.approx(z_exact, rel=1e-6, abs=1e-9)


def series(draw: st.DrawFn, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (y, x) log-price-like series: big offset, tiny moves, optional cointegration."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    off_y = draw(st.sampled_from([0.0, 1.0, 8.0, 11.0, -5.0, 1e3]))
    off_x = draw(st.sampled_from([0.0, 7.9, 11.0, 3.0]))
    step = draw(st.sampled_from([1e-6, 1e-4, 1e-2, 1.0]))
    x = off_x + np.cumsum(rng.normal(0, step, n))
    beta = draw(st.floats(-3, 3, allow_nan=False))
    noise = draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0]))
    y = (
        off_y
        + beta * (x - off_x)
        + np.cumsum(rng.normal(0, step * noise, n)) * draw(st.sampled_from([0.0, 1.0]))
    )
    y = y + rng.normal(0, step * noise, n)
    return y, x


@st.composite
def pair_series(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    w = draw(st.integers(3, 60))
    n = draw(st.integers(w, 4 * w + 10))
    y, x = series(draw, n)
    return w, y, x


def pushes(w: int, y: np.ndarray, x: np.ndarray) -> Iterator[tuple[int, RollingPair]]:
    """Feed ``(y[i], x[i])`` to a new window of length ``w``; yield ``(i, window)`` after each."""
    rp = RollingPair.create(w)
    for i in range(len(y)):
        rp.push(y[i], x[i])
        yield i, rp


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_series())
def test_rolling_ols_equals_statsmodels_on_random_log_price_windows(
    case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    w, y, x = case
    for i, rp in pushes(w, y, x):
        if rp.n >= 3 and (i % 7 == 0 or i == len(y) - 1):
            assert_fit_matches(rp)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([11.0, 11.03, 7.9, -11.0]),
    st.sampled_from([1e-9, 1e-7, 1e-5]),
)
def test_rolling_ols_near_constant_series_with_large_offset(
    seed: int, level: float, rel: float
) -> None:
    # log BTC ~ 11 with moves of 1e-9..1e-5: naive sums would cancel all digits.
    rng = np.random.default_rng(seed)
    n, w = 400, 100
    x = level - 3.1 + np.cumsum(rng.normal(0, rel, n))
    y = level + 0.8 * (x - x[0]) + rng.normal(0, rel, n)
    for i, rp in pushes(w, y, x):
        if rp.full and i % 13 == 0:
            assert_fit_matches(rp)


@settings(max_examples=60, deadline=None)
@given(pair_series())
def test_rolling_ols_equals_exact_rational_arithmetic(
    case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    w, y, x = case
    rp = RollingPair.create(w)
    for i in range(len(y)):
        rp.push(y[i], x[i])
    if rp.centred()[1] > 0:
        assert_fit_exact(rp)


def test_naive_sums_fail_where_shifted_sums_do_not() -> None:
    # Demonstrates why the anchoring matters: var of log prices near 11.
    rng = np.random.default_rng(3)
    x = 11.0 + np.cumsum(rng.normal(0, 1e-6, 5000))
    w = 300
    naive_s = naive_ss = 0.0
    rp = RollingPair.create(w)
    for i, v in enumerate(x):
        naive_s += v
        naive_ss += v * v
        if i >= w:
            naive_s -= x[i - w]
            naive_ss -= x[i - w] * x[i - w]
        rp.push(v, v)
    ref = float(np.var(x[-w:]) * w)
    naive = naive_ss - naive_s * naive_s / w
    ours = rp.centred()[0]
    assert abs(naive - ref) / ref > 1e-3  # naive is garbage
    assert ours == pytest.approx(ref, rel=1e-9)


def test_rolling_constant_leg_has_exact_zero_variance_and_no_fit() -> None:
    rp = RollingPair.create(20)
    rng = np.random.default_rng(0)
    for v in rng.normal(11, 1e-3, 50):
        rp.push(v, 7.9)
    c_aa, c_bb, c_ab = rp.centred()
    assert c_bb == 0.0
    assert c_ab == 0.0
    assert rp.ols() is None
    assert rp.corr() is None


def test_rolling_series_that_becomes_constant_gets_exact_zero_after_it_settles() -> None:
    rp = RollingPair.create(30)
    rng = np.random.default_rng(1)
    for v in 11 + np.cumsum(rng.normal(0, 1e-4, 100)):
        rp.push(v, v * 0.5)
    for _ in range(30):
        rp.push(11.2, 5.6)
    assert rp.centred() == (0.0, 0.0, 0.0)
    assert rp.ols() is None
    # and becomes defined again as soon as it moves
    rp.push(11.2001, 5.6002)
    fit = rp.ols()
    assert fit is not None
    assert_fit_matches(rp)


def test_rolling_constant_y_gives_zero_beta_and_zero_ssr() -> None:
    rp = RollingPair.create(10)
    for i in range(15):
        rp.push(3.0, 1.0 + 0.01 * i)
    fit = rp.ols()
    assert fit is not None
    assert fit.beta == 0.0
    assert fit.ssr == 0.0
    assert fit.rsquared is None


@settings(max_examples=80, deadline=None)
@given(pair_series())
def test_rolling_corr_equals_numpy_corrcoef(case: tuple[int, np.ndarray, np.ndarray]) -> None:
    w, y, x = case
    ry, rx = np.diff(y), np.diff(x)
    rp = RollingPair.create(w)
    for i in range(len(ry)):
        rp.push(ry[i], rx[i])
        if rp.n >= 3:
            a, b = (np.array(v) for v in rp.window())
            got = rp.corr()
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                assert got is None
                continue
            ref = float(np.corrcoef(a, b)[0, 1])
            assert got == pytest.approx(ref, rel=RTOL, abs=1e-9)


def test_rolling_window_view_is_in_order_and_matches_last_w() -> None:
    rp = RollingPair.create(5)
    for i in range(12):
        rp.push(float(i), float(-i))
        a, b = rp.window()
        lo = max(0, i - 4)
        assert list(a) == [float(v) for v in range(lo, i + 1)]
        assert list(b) == [-float(v) for v in range(lo, i + 1)]
        assert rp.last() == (float(i), float(-i))


def test_rolling_state_pickles_and_continues_identically() -> None:
    rng = np.random.default_rng(5)
    y = 11 + np.cumsum(rng.normal(0, 1e-4, 200))
    x = 8 + np.cumsum(rng.normal(0, 1e-4, 200))
    a = RollingPair.create(50)
    for i in range(120):
        a.push(y[i], x[i])
    b = pickle.loads(pickle.dumps(a))
    for i in range(120, 200):
        a.push(y[i], x[i])
        b.push(y[i], x[i])
    assert a.ols() == b.ols()


def test_rolling_buffers_are_arrays_and_the_cached_views_alias_them() -> None:
    rp = RollingPair.create(4)
    assert type(rp.buf_a) is array and rp.buf_a.typecode == "d"
    assert list(rp.buf_a) == list(rp.buf_b) == [0.0] * 8
    va, vb = rp.views()
    assert rp.views()[0] is va and rp.views()[1] is vb  # made once
    for i in range(6):
        rp.push(1.0 + i, -1.0 - i)
        assert list(va) == list(rp.buf_a) and list(vb) == list(rp.buf_b)
    rp.buf_a = array("d", rp.buf_a)  # a replaced buffer gets a new view
    assert rp.views()[0] is not va and list(rp.views()[0]) == list(va)


def test_rolling_copies_and_pickles_leave_the_cached_views_out() -> None:
    rp = RollingPair.create(5)
    for i in range(7):
        rp.push(1.0 + 0.1 * i, 2.0 - 0.05 * i)
    rp.views()
    assert "_views" in vars(rp)
    assert "_views" not in rp.__getstate__()
    c = copy.copy(rp)
    assert "_views" not in vars(c)
    assert c._views is None
    for other in (c, pickle.loads(pickle.dumps(rp))):
        assert other == rp
        assert [list(v) for v in other.window()] == [list(v) for v in rp.window()]
    # A copy with its own buffers (what snapshots do) is independent of the original.
    c.buf_a, c.buf_b = array("d", rp.buf_a), array("d", rp.buf_b)
    c.push(9.0, 9.0)
    assert rp.last() != (9.0, 9.0) and c.last() == (9.0, 9.0)
    assert c.views()[0][c.head + c.n - 1] == 9.0


@pytest.mark.parametrize("pushed", [0, 1, 3, 6, 7, 8, 11, 13, 20])
def test_restore_rebuilds_the_window_exactly_at_any_ring_position(pushed: int) -> None:
    rng = np.random.default_rng(pushed)
    vals = (11 + np.cumsum(rng.normal(0, 1e-4, pushed + 10))).tolist()
    a = RollingPair.create(7)
    for v in vals[:pushed]:
        a.push(v, 2 * v)
    wa, wb = (list(map(float, v)) for v in a.window())
    b = RollingPair.create(7)
    b.push(5.0, 5.0)  # restore overwrites whatever was there
    view_a, _ = b.views()  # ... in place, while numpy views export the buffers
    restore(b, scalars(a), wa, wb)
    assert b.views()[0] is view_a
    assert scalars(b) == scalars(a)
    for k in range(a.n):  # value k at (head + k) % cap and cap further
        pos = (a.head + k) % 7
        for buf, ref in ((b.buf_a, a.buf_a), (b.buf_b, a.buf_b)):
            assert buf[pos] == buf[pos + 7] == ref[pos]
    assert len(b.buf_a) == len(b.buf_b) == 14
    for v in vals[pushed:]:
        a.push(v, 2 * v)
        b.push(v, 2 * v)
        assert scalars(b) == scalars(a)
        assert [list(x) for x in b.window()] == [list(x) for x in a.window()]


def test_restore_rejects_a_window_of_the_wrong_length() -> None:
    a = RollingPair.create(5)
    for i in range(3):
        a.push(float(i), float(i))
    with pytest.raises(ValueError, match="window"):
        restore(RollingPair.create(5), scalars(a), [0.0, 1.0], [0.0, 1.0])


def test_rolling_window_before_it_fills_needs_no_numpy() -> None:
    """Pushes, sums, OLS and correlation of a window not yet full import no numpy."""
    import subprocess
    import sys

    code = (
        "import sys, copy, pickle\n"
        "from pairflow.stats.rolling import RollingPair, restore, scalars\n"
        "rp = RollingPair.create(50)\n"
        "for i in range(49):\n"
        "    rp.push(11.0 + 1e-4 * ((i * 7) % 13), 8.0 + 1e-4 * ((i * 5) % 11))\n"
        "fit = rp.ols()\n"
        "rp.corr(), rp.var(), rp.means(), rp.last_deviation(), copy.copy(rp)\n"
        "r2 = pickle.loads(pickle.dumps(rp))\n"
        "restore(RollingPair.create(50), scalars(rp), list(rp.buf_a[:49]), list(rp.buf_b[:49]))\n"
        "ok = fit is not None and fit.rsquared is not None\n"
        "print(ok, rp.recomputes, 'numpy' in sys.modules)\n"
        "rp.push(11.0, 8.0)\n"  # the W-th push: the periodic exact recompute (numpy)
        "print(rp.recomputes, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["True 0 False", "1 True"]


def run_long(n_updates: int, w: int, check_every: int) -> None:
    rng = np.random.default_rng(11)
    # Random-walk log prices near 11 with regime changes in volatility.
    vol = np.repeat(rng.choice([1e-7, 1e-5, 1e-3], size=n_updates // 1000 + 1), 1000)
    x = 11.0 + np.cumsum(rng.normal(0, 1, n_updates) * vol[:n_updates])
    y = 7.9 + 1.3 * (x - 11.0) + np.cumsum(rng.normal(0, 1, n_updates) * vol[:n_updates] * 0.1)
    for i, rp in pushes(w, y, x):
        if i >= w and i % check_every == 0:
            assert_fit_matches(rp)
    assert_fit_matches(rp)
    # O(1) amortised: exact recomputes about once per window, few extra guard hits
    # (they happen when the volatility regime collapses by 1e4).
    print(f"recomputes={rp.recomputes} for {n_updates} updates, W={w}")
    assert rp.recomputes <= 1.5 * n_updates / w


def test_rolling_long_run_of_one_million_updates_stays_exact() -> None:
    run_long(1_000_000, 300, 49_999)


def test_rolling_rejects_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RollingPair.create(0)
