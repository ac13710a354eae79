"""The compiled row kernel (pairflow.stats.fastrow) equals the numpy path and statsmodels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from statsmodels.tsa.stattools import adfuller, coint

from operators.analytics import PairAnalyticsLogic, new_state
from operators.pair_row import half_life
from pairflow.config import ConfigError, load_settings
from pairflow.records import AnalyticsRow
from pairflow.stats import cointegration, fastrow
from pairflow.stats.cointegration import adf_maxlag, spread_tests
from pairflow.stats.rolling import RollingPair
from tests.test_analytics import (
    KEY,
    STAT_COLS,
    assert_row_matches,
    bars_for,
    merge_by_time,
    oracle,
    synthetic_pair,
)
from tests.test_analytics_amend import in_order, late_scenarios, run

pytestmark = pytest.mark.skipif(fastrow.kernel() is None, reason="numba not installed")


def window(w: int, seed: int, phi: tuple[float, ...]) -> RollingPair:
    """A rolling window of a cointegrated pair whose spread is AR(len(phi))."""
    rng = np.random.default_rng(seed)
    m = w + 40
    lx = math.log(2600.0) + np.cumsum(rng.normal(0, 2e-4, m))
    u = np.zeros(m)
    for t in range(len(phi), m):
        u[t] = sum(c * u[t - 1 - i] for i, c in enumerate(phi)) + rng.normal(0, 1e-4)
    ly = math.log(61000.0) + 1.5 * (lx - math.log(2600.0)) + u
    roll = RollingPair.create(w)
    for a, b in zip(ly, lx, strict=True):
        roll.push(a, b)
    return roll


CASES = [
    (w, seed, phi)
    for w in (36, 60, 100, 300, 1000)
    for seed, phi in ((1, (0.9,)), (2, (0.5, 0.3)), (3, (0.2, 0.1, 0.3, 0.2)), (4, (1.0,)))
]


@pytest.mark.parametrize(("w", "seed", "phi"), CASES)
def test_kernel_equals_numpy_path_and_statsmodels(
    w: int, seed: int, phi: tuple[float, ...]
) -> None:
    roll = window(w, seed, phi)
    fit = roll.ols()
    assert fit is not None and fit.rsquared is not None
    p = adf_maxlag(w)
    out = np.empty(fastrow.N_OUT)
    kern = fastrow.kernel()
    assert kern is not None
    buf_a, buf_b = roll.views()  # ndarray views of the array.array buffers
    status = kern(
        buf_a, buf_b, roll.head, roll.n, roll.anchor_a, roll.anchor_b,
        roll.s_a, roll.s_b, fit.beta, p, out,
    )  # fmt: skip
    assert status == fastrow.OK_HALF_LIFE | fastrow.OK_TESTS
    spreads = roll.residuals(fit.beta)
    tests = spread_tests(spreads, fit.rsquared)
    assert tests.adf is not None and tests.eg is not None
    assert (int(out[2]), int(out[3])) == (tests.adf.usedlag, tests.adf.nobs)
    assert (int(out[6]), int(out[7])) == (tests.eg.usedlag, tests.eg.nobs)
    assert out[1] == pytest.approx(tests.adf.stat, rel=1e-10, abs=1e-12)
    assert out[5] == pytest.approx(tests.eg.stat, rel=1e-10, abs=1e-12)
    assert out[4] == pytest.approx(tests.adf.icbest, rel=1e-12)
    assert out[8] == pytest.approx(tests.eg.icbest, rel=1e-12)
    hl = half_life(spreads)
    lam_hl = None if not out[0] < 0 else -math.log(2.0) / math.log1p(out[0])
    assert (hl is None) == (lam_hl is None)
    if hl is not None:
        assert lam_hl == pytest.approx(hl, rel=1e-9)
    # ... and statsmodels itself (p-values to 1e-6, as docs/design.md asks).
    wy, wx = roll.window()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adf_p = adfuller(spreads, regression="c", autolag="AIC")[1]
        eg_p = coint(np.asarray(wy), np.asarray(wx), trend="c", autolag="aic")[1]
    assert abs(cointegration._pvalue(out[1], "c", 1) - adf_p) <= 1e-6
    assert abs(cointegration._pvalue(out[5], "c", 2) - eg_p) <= 1e-6


def test_python_kernel_is_the_compiled_one() -> None:
    """The uncompiled source (what numba compiles) gives the same numbers."""
    roll = window(100, 2, (0.5, 0.3))
    fit = roll.ols()
    assert fit is not None
    args = (*roll.views(), roll.head, roll.n, roll.anchor_a, roll.anchor_b)
    a, b = np.empty(fastrow.N_OUT), np.empty(fastrow.N_OUT)
    kern = fastrow.kernel()
    assert kern is not None
    sa = kern(*args, roll.s_a, roll.s_b, fit.beta, adf_maxlag(100), a)
    sb = fastrow.python_kernel()(*args, roll.s_a, roll.s_b, fit.beta, adf_maxlag(100), b)
    assert sa == sb
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def run_rows(compiled: bool, w: int = 60, n: int = 260, seed: int = 5) -> list[AnalyticsRow]:
    yc, xc = synthetic_pair(n, seed)
    items = merge_by_time(bars_for("BTCUSDT", yc), bars_for("ETHUSDT", xc))
    logic = PairAnalyticsLogic(None, lambda k: new_state(k, w, compiled=compiled))
    out = list(logic.on_batch([(KEY, it) for it in items])[0]) + list(logic.on_eof()[0])
    return [o for o in out if isinstance(o, AnalyticsRow)]


def test_compiled_rows_equal_numpy_rows_and_statsmodels() -> None:
    yc, xc = synthetic_pair(260, 5)
    fast, slow = run_rows(True), run_rows(False)
    assert len(fast) == len(slow) > 100
    for f, s in zip(fast, slow, strict=True):
        for col in STAT_COLS:
            a, b = getattr(f, col), getattr(s, col)
            assert (a is None) == (b is None), col
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), col
    for i in range(0, len(fast), 25):
        end = 60 + i
        assert_row_matches(fast[i], oracle(yc[end - 60 : end], xc[end - 60 : end]))


@given(late_scenarios())
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_compiled_amendments_are_bit_identical_to_in_order(scenario) -> None:
    yc, xc, stream = scenario
    want_rows, _ = run(in_order(yc, xc), compiled=True)
    got_rows, _ = run(stream, compiled=True)
    assert got_rows == want_rows


def test_use_compiled_modes() -> None:
    assert not fastrow.use_compiled(fastrow.AUTO_MIN_KEYS - 1)
    assert fastrow.use_compiled(fastrow.AUTO_MIN_KEYS)
    assert not fastrow.use_compiled(1000, "off")
    assert fastrow.use_compiled(1, "on")
    assert not new_state(KEY, 30).compiled  # one key, auto: numpy
    assert new_state(KEY, 30, compiled=True).compiled
    with pytest.raises(ValueError, match="PAIRFLOW_NUMBA"):
        fastrow.use_compiled(1, "maybe")
    assert load_settings({"PAIRFLOW_NUMBA": "ON", "PAIRFLOW_CONFIG": ""}).numba == "on"
    with pytest.raises(ConfigError, match="PAIRFLOW_NUMBA"):
        load_settings({"PAIRFLOW_NUMBA": "maybe", "PAIRFLOW_CONFIG": ""})
    assert fastrow.PIVOT_REL == cointegration.PIVOT_REL


def test_use_compiled_and_a_fresh_module_import_no_numpy_or_numba() -> None:
    """A pair state asks use_compiled when it is made, before any row: no numpy yet."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pairflow.stats import fastrow\n"
        "print(fastrow.use_compiled(1), fastrow.use_compiled(1, 'auto'),"
        " fastrow.use_compiled(fastrow.AUTO_MIN_KEYS))\n"
        "print('numpy' in sys.modules, 'numba' in sys.modules)\n"
        "fastrow.python_kernel()\n"
        "print('numpy' in sys.modules, 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["False False True", "False False", "True False"]
