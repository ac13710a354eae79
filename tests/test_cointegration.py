"""Fast ADF / Engle-Granger against statsmodels' adfuller and coint."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import adfuller, coint

from pairflow.stats.cointegration import (
    adf_maxlag,
    adf_test,
    coint_test,
    eg_stat_from_residuals,
    spread_tests,
)
from pairflow.testing import RECORDING
from pairflow.testing.oracle import one_second_closes as closes_of

P_ATOL = 1e-6
STAT_RTOL = 1e-6
STAT_ATOL = 1e-6
TRADES = RECORDING


def sm_adf(x: np.ndarray, regression: str = "c"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return adfuller(x, regression=regression, autolag="AIC", result_object=True)


def sm_coint(y: np.ndarray, x: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return coint(y, x, trend="c", autolag="aic")


def assert_adf_equal(x: np.ndarray, regression: str) -> None:
    ref = sm_adf(x, regression)
    got = adf_test(x, regression)
    assert got is not None
    assert got.usedlag == ref.lags
    assert got.nobs == ref.nobs
    assert got.stat == pytest.approx(ref.statistic, rel=STAT_RTOL, abs=STAT_ATOL)
    assert got.pvalue == pytest.approx(ref.pvalue, abs=P_ATOL)
    # The AIC moves by nobs times the residual sum of squares' relative error: short
    # series of repeated tiny values (hypothesis found n=20, ~1e-5, half of them
    # forward-filled) lose ~1e-8 of it in either implementation. Not a product column.
    assert got.icbest == pytest.approx(ref.icbest, rel=1e-7, abs=1e-6)


@st.composite
def random_series(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(20, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["rw", "ar1", "noise", "ar2", "ffill"]))
    e = rng.normal(0, draw(st.sampled_from([1e-5, 1e-2, 1.0, 100.0])), n)
    if kind == "rw":
        x = np.cumsum(e)
    elif kind == "ar1":
        phi = draw(st.floats(-0.9, 0.99))
        x = np.zeros(n)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + e[t]
    elif kind == "ar2":
        x = np.zeros(n)
        for t in range(2, n):
            x[t] = 0.5 * x[t - 1] + 0.3 * x[t - 2] + e[t]
    elif kind == "ffill":
        # prices that repeat (forward-filled quiet seconds)
        keep = rng.random(n) < 0.4
        keep[0] = True
        x = pd.Series(np.where(keep, np.cumsum(e), np.nan)).ffill().to_numpy()
    else:
        x = e
    return x + draw(st.sampled_from([0.0, 11.0, -3.0]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_series(), st.sampled_from(["c", "n"]))
def test_adf_equals_statsmodels_adfuller_on_random_series(x: np.ndarray, regression: str) -> None:
    if x.max() == x.min():
        assert adf_test(x, regression) is None
        return
    assert_adf_equal(x, regression)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_series(), st.integers(0, 2**32 - 1), st.floats(-2, 2))
def test_coint_equals_statsmodels_coint_on_random_pairs(x: np.ndarray, seed: int, b: float) -> None:
    rng = np.random.default_rng(seed)
    n = len(x)
    scale = float(np.std(np.diff(x))) or 1.0
    y = 0.3 + b * x + np.cumsum(rng.normal(0, scale, n)) * rng.integers(0, 2)
    y = y + rng.normal(0, scale, n)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert coint_test(y, x) is None
        return
    # The oracle is statsmodels' coint on centred inputs: the test is invariant to
    # shifting y or x (the first stage has a constant), and statsmodels solves the
    # uncentred design [x, 1], whose rounding error on a series near 11 moving by
    # 1e-5 (cond ~1e7) exceeds our tolerance; centred, it is well conditioned.
    ref = sm_coint(y - y.mean(), x - x.mean())
    got = coint_test(y, x)
    assert got is not None
    assert got.stat == pytest.approx(ref[0], rel=STAT_RTOL, abs=STAT_ATOL)
    assert got.pvalue == pytest.approx(ref[1], abs=P_ATOL)
    if abs(x.mean()) < 1e-6 * np.ptp(x) * len(x) and abs(y.mean()) < 1e-6 * np.ptp(y) * len(y):
        raw = sm_coint(y, x)
        assert got.pvalue == pytest.approx(raw[1], abs=P_ATOL)


@pytest.mark.parametrize("nobs", [3, 5, 10, 19, 20, 21, 35, 36, 37, 60, 100, 300, 1000, 5000])
@pytest.mark.parametrize("regression", ["c", "n"])
def test_adf_maxlag_follows_statsmodels_rule(nobs: int, regression: str) -> None:
    rng = np.random.default_rng(nobs)
    x = np.cumsum(rng.normal(size=nobs))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = adfuller(x, regression=regression, autolag="AIC", store=True)
    except ValueError:
        assert adf_maxlag(nobs, regression) < 0
        assert adf_test(x, regression) is None
        return
    assert adf_maxlag(nobs, regression) == res[-1].maxlag


def test_adf_of_a_constant_series_is_none_like_statsmodels_raising() -> None:
    x = np.full(100, 11.0)
    with pytest.raises(ValueError, match="constant"):
        adfuller(x)
    assert adf_test(x) is None
    assert spread_tests(x - 11.0, None).adf is None


def test_coint_of_collinear_pair_is_zero_like_statsmodels() -> None:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=200))
    y = 2.0 + 0.5 * x + rng.normal(0, 1e-9, 200)  # R^2 ~ 1
    ref = sm_coint(y, x)
    got = coint_test(y, x)
    assert got is not None
    assert got.stat == ref[0] == -np.inf
    assert got.pvalue == ref[1] == 0.0


def test_spread_tests_equal_separate_adf_and_coint_calls() -> None:
    rng = np.random.default_rng(4)
    for n in (20, 25, 35, 36, 37, 100, 300):
        x = 8 + np.cumsum(rng.normal(0, 1e-3, n))
        y = 11 + 1.2 * (x - 8) + rng.normal(0, 5e-4, n)
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        got = spread_tests(np.asarray(fit.resid), float(fit.rsquared))
        ref_adf = sm_adf(np.asarray(fit.resid), "c")
        ref_eg = sm_coint(y, x)
        assert got.adf is not None
        assert got.adf.stat == pytest.approx(ref_adf.statistic, rel=STAT_RTOL, abs=STAT_ATOL)
        assert got.adf.pvalue == pytest.approx(ref_adf.pvalue, abs=P_ATOL)
        if np.isnan(ref_eg[0]):  # W=20: the 'n' ADF has no residual dof
            assert got.eg is None or got.eg.pvalue == pytest.approx(ref_eg[1], abs=P_ATOL)
            continue
        assert got.eg is not None
        assert got.eg.stat == pytest.approx(ref_eg[0], rel=STAT_RTOL, abs=STAT_ATOL)
        assert got.eg.pvalue == pytest.approx(ref_eg[1], abs=P_ATOL)


def test_eg_from_residuals_is_none_for_nan_rsquared() -> None:
    assert eg_stat_from_residuals(np.arange(10.0), float("nan")) is None


def test_degenerate_windows_fall_back_to_statsmodels_and_still_agree() -> None:
    # Moves only in the first 11 steps and the last one: in the lag search's common
    # sample the first lagged-difference column is all zero (singular design).
    d = np.zeros(99)
    d[:11] = np.arange(1, 12) * 0.01 * np.array([1, -1] * 5 + [1])
    d[98] = 0.05
    x = np.concatenate([[1.0], 1.0 + np.cumsum(d)])
    got = adf_test(x, "c")
    ref = sm_adf(x, "c")
    assert got is not None
    assert not got.fast
    assert got.stat == pytest.approx(ref.statistic, rel=STAT_RTOL, abs=STAT_ATOL)
    assert got.pvalue == pytest.approx(ref.pvalue, abs=P_ATOL)


def one_second_closes() -> pd.DataFrame:
    """Last trade price per (symbol, second), forward-filled on the common 1s grid."""
    return closes_of(TRADES)


def test_adf_and_coint_equal_statsmodels_on_real_btc_eth_windows() -> None:
    closes = one_second_closes()
    y = np.log(closes["BTCUSDT"].to_numpy())
    x = np.log(closes["ETHUSDT"].to_numpy())
    w = 300
    for end in range(w, len(y) + 1, 7):
        yw, xw = y[end - w : end], x[end - w : end]
        fit = sm.OLS(yw, sm.add_constant(xw)).fit()
        resid = np.asarray(fit.resid)
        got = spread_tests(resid, float(fit.rsquared))
        ref_adf = sm_adf(resid, "c")
        assert got.adf is not None
        assert got.adf.stat == pytest.approx(ref_adf.statistic, rel=STAT_RTOL, abs=STAT_ATOL)
        assert got.adf.pvalue == pytest.approx(ref_adf.pvalue, abs=P_ATOL)
        # coint on centred logs: statsmodels is better conditioned there, and the
        # test is invariant to the shift.
        ref_eg = sm_coint(yw - yw.mean(), xw - xw.mean())
        assert got.eg is not None
        assert got.eg.stat == pytest.approx(ref_eg[0], rel=STAT_RTOL, abs=STAT_ATOL)
        assert got.eg.pvalue == pytest.approx(ref_eg[1], abs=P_ATOL)
        assert coint_test(yw, xw).pvalue == pytest.approx(sm_coint(yw, xw)[1], abs=P_ATOL)


NDTR_ATOL = 2.5e-16
"""Our ``ndtr`` (libm's erf/erfc) against scipy's (cephes'): two ulps at 1 at most."""


def test_ndtr_matches_scipy_to_two_ulps_and_keeps_tail_precision() -> None:
    from scipy.special import ndtr as scipy_ndtr

    from pairflow.stats.cointegration import ndtr

    rng = np.random.default_rng(3)
    points = np.concatenate([rng.uniform(-38, 9, 100_000), rng.normal(0, 1, 20_000)])
    points = np.concatenate([points, [0.0, -0.0, 0.7071067811865476, -0.70710678118654757]])
    same = 0
    for a in points.tolist():
        got, want = ndtr(a), float(scipy_ndtr(a))
        assert abs(got - want) <= NDTR_ATOL, (a, got, want)
        if want > 0.0:  # the lower tail keeps its relative precision (no 1 - y there)
            assert abs(got - want) <= 1e-12 * want, (a, got, want)
        same += got == want
    assert same > 0.1 * len(points)  # mostly equal: a broken branch would not be
    assert math.isnan(ndtr(math.nan))
    assert (ndtr(-math.inf), ndtr(math.inf)) == (0.0, 1.0)


def test_fast_mackinnon_pvalue_matches_statsmodels_to_two_ulps() -> None:
    from statsmodels.tsa.adfvalues import mackinnonp

    from pairflow.stats.cointegration import _pvalue

    rng = np.random.default_rng(5)
    stats = np.concatenate([rng.uniform(-25, 5, 20_000), [-30.0, 10.0, -1.6, -3.2]])
    for regression, n in (("c", 1), ("c", 2), ("n", 1)):
        for stat in stats:
            want = float(mackinnonp(float(stat), regression=regression, N=n))
            assert abs(_pvalue(float(stat), regression, n) - want) <= NDTR_ATOL


def test_pvalue_matches_mackinnonp_for_every_table() -> None:
    from statsmodels.tsa.adfvalues import mackinnonp

    from pairflow.stats.cointegration import _pvalue

    rng = np.random.default_rng(9)
    stats = np.concatenate([rng.uniform(-30, 6, 3_000), rng.normal(-2.5, 1.0, 3_000)])
    for regression in ("n", "c", "ct", "ctt"):
        for n in range(1, 7):
            for stat in [*stats.tolist(), -math.inf, math.inf]:
                want = float(mackinnonp(stat, regression=regression, N=n))
                got = _pvalue(stat, regression, n)
                close = abs(got - want) <= NDTR_ATOL or (math.isnan(got) and math.isnan(want))
                assert close, (regression, n, stat, got, want)


def test_generated_mackinnon_tables_equal_statsmodels_exactly() -> None:
    from statsmodels.tsa import adfvalues

    from pairflow.stats import mackinnon_tables as tables
    from pairflow.stats.gen_mackinnon_tables import TABLE_NAMES, render

    for name in TABLE_NAMES:
        ours = getattr(tables, name.lstrip("_").upper())
        theirs = getattr(adfvalues, name)
        assert set(ours) == set(theirs), name
        for reg, rows in theirs.items():
            want = np.asarray(rows, dtype=float)
            got = np.asarray(ours[reg], dtype=float)
            assert got.shape == want.shape, (name, reg)
            assert np.array_equal(got, want), (name, reg)  # bit-equal floats, infs too
    # and the checked-in file is what the generator writes today
    from pathlib import Path

    assert Path(tables.__file__).read_text(encoding="utf-8") == render()


def test_importing_the_statistics_loads_neither_statsmodels_nor_scipy_stats() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pairflow.stats.cointegration, pairflow.stats.rolling, operators.analytics;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('statsmodels', 'pandas')"
        " or m.startswith('scipy.stats')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_pair_fast_path_equals_general_path_and_statsmodels() -> None:
    # spread_tests takes _adf_pair_fast (both regressions, block-diagonal Cholesky);
    # it must agree with the per-regression Gram path and with statsmodels, also when
    # the two tests pick different lags or the largest lag.
    from pairflow.stats import cointegration as ci

    rng = np.random.default_rng(11)
    seen = {"lags_differ": 0, "max_lag": 0}
    for trial in range(120):
        n = int(rng.choice([36, 37, 60, 100, 300, 700]))
        phi = rng.uniform(0.3, 1.0)
        e = rng.normal(0, 1e-4, n)
        if trial % 3 == 0:  # MA component: long lags get chosen
            e[1:] += 0.9 * e[:-1]
        u = np.zeros(n)
        for t in range(1, n):
            u[t] = phi * u[t - 1] + e[t]
        s = u - u.mean()
        p = adf_maxlag(n, "c")
        fast = ci._adf_pair_fast(s, p, float(s.sum()))
        assert fast is not None
        for got, reg in zip(fast, ("c", "n"), strict=True):
            ref = ci._adf_stats(s, (reg,))[reg]
            assert ref is not None
            assert got[1:3] == ref[1:3]
            assert got[0] == pytest.approx(ref[0], rel=1e-12)
            assert got[3] == pytest.approx(ref[3], rel=1e-12)
        seen["lags_differ"] += fast[0][1] != fast[1][1]
        seen["max_lag"] += p in (fast[0][1], fast[1][1])
        if trial % 10 == 0:
            res = spread_tests(s, 0.5)
            ref_adf = sm_adf(s, "c")
            ref_n = sm_adf(s, "n")
            assert res.adf is not None and res.eg is not None
            assert res.adf.usedlag == ref_adf.lags
            assert res.adf.pvalue == pytest.approx(ref_adf.pvalue, abs=P_ATOL)
            assert res.eg.usedlag == ref_n.lags
            assert res.eg.stat == pytest.approx(ref_n.statistic, rel=STAT_RTOL, abs=STAT_ATOL)
    assert seen["lags_differ"] > 0
    assert seen["max_lag"] > 0


def test_pair_fast_path_declines_degenerate_windows() -> None:
    from pairflow.stats import cointegration as ci

    d = np.zeros(99)
    d[:11] = np.arange(1, 12) * 0.01 * np.array([1, -1] * 5 + [1])
    d[98] = 0.05
    s = np.concatenate([[0.0], np.cumsum(d)])
    s -= s.mean()
    p = adf_maxlag(s.shape[0], "c")
    assert ci._adf_pair_fast(s, p, float(s.sum())) is None
    assert ci._adf_pair_fast(np.zeros(100), p, 0.0) is None
    got = spread_tests(s, 0.5)  # general path / statsmodels fallback
    ref = sm_adf(s, "c")
    assert got.adf is not None
    assert got.adf.pvalue == pytest.approx(ref.pvalue, abs=P_ATOL)
    assert spread_tests(np.zeros(100), 0.5).adf is None
    bad = s.copy()
    bad[5] = np.nan
    assert spread_tests(bad, 0.5) == ci.SpreadTests(None, None)  # general path
