"""The compiled row kernels (C and numba) equal the Python source, the numpy path, statsmodels."""

from __future__ import annotations

import logging
import math
import warnings
from array import array
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from statsmodels.tsa.stattools import adfuller, coint

from operators import pair_row
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

BUILDS = {"c": fastrow.c_kernel, "numba": fastrow.numba_kernel}
"""Both compiled builds; CI has a C compiler and numba, so neither is skipped there."""


@pytest.fixture(params=sorted(BUILDS))
def build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> fastrow.Compiled:
    """Each compiled build, also as the kernel the analytics rows use."""
    kern = BUILDS[request.param]()
    assert kern is not None, f"the {request.param} kernel did not load"
    monkeypatch.setattr(pair_row, "kernel", lambda: kern)
    return kern


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
    build: fastrow.Compiled, w: int, seed: int, phi: tuple[float, ...]
) -> None:
    roll = window(w, seed, phi)
    fit = roll.ols()
    assert fit is not None and fit.rsquared is not None
    p = adf_maxlag(w)
    out = np.empty(fastrow.N_OUT)
    buf_a, buf_b = roll.views()  # ndarray views of the array.array buffers
    status = build(
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


def test_python_kernel_is_the_compiled_one(build: fastrow.Compiled) -> None:
    """The uncompiled source gives the same bits on random windows, rings and lags."""
    py = fastrow.python_kernel()
    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(25, 700))
        cap = n + int(rng.integers(0, 40))
        a = np.cumsum(rng.normal(size=2 * cap)) * 0.01 + 10.0
        b = 0.7 * a + rng.normal(size=2 * cap) * 0.01 * (1 + trial % 3)
        head = int(rng.integers(0, cap - n + 1))
        sums = float((a[head : head + n] - a[0]).sum()), float((b[head : head + n] - b[0]).sum())
        beta = 0.7 + float(rng.normal()) * 0.01
        p = -1 if trial % 7 == 0 else adf_maxlag(n)  # -1: half-life only
        want, got = np.full(fastrow.N_OUT, np.nan), np.full(fastrow.N_OUT, np.nan)
        args = (head, n, float(a[0]), float(b[0]), *sums, beta, p)
        assert build(a, b, *args, got) == py(a, b, *args, want)
        assert want.tobytes() == got.tobytes(), trial  # bit-identical, NaN where unset


def test_c_kernel_takes_array_buffers_and_rejects_other_types() -> None:
    kern = fastrow.c_kernel()
    assert kern is not None
    roll = window(60, 1, (0.9,))
    fit = roll.ols()
    assert fit is not None
    out_np, out_arr = np.empty(fastrow.N_OUT), array("d", bytes(8 * fastrow.N_OUT))
    args = (roll.head, roll.n, roll.anchor_a, roll.anchor_b, roll.s_a, roll.s_b, fit.beta, 3)
    assert kern(roll.buf_a, roll.buf_b, *args, out_arr) == kern(*roll.views(), *args, out_np)
    assert list(out_arr) == out_np.tolist()
    with pytest.raises(TypeError, match="float64"):
        kern(np.asarray(roll.buf_a, dtype=np.float32), roll.buf_b, *args, out_np)
    with pytest.raises(TypeError, match="array"):
        kern(array("f", roll.buf_a), roll.buf_b, *args, out_np)


def test_c_library_without_a_working_compiler_is_none_and_says_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pairflow.stats.fastrow"):
        assert fastrow.c_library(["false"]) is None  # a "compiler" that always fails
    assert "could not build the C analytics kernel" in caplog.text
    caplog.clear()
    monkey = pytest.MonkeyPatch()
    monkey.setattr(fastrow, "_compiler", lambda: None)
    try:
        with caplog.at_level(logging.WARNING, logger="pairflow.stats.fastrow"):
            assert fastrow.c_library() is None
    finally:
        monkey.undo()
    assert "no C compiler found" in caplog.text and "apt-get install gcc" in caplog.text


def test_c_library_is_built_once_and_rebuilt_for_another_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new cache directory gets one build; an edited source gets its own file."""
    monkeypatch.setattr(fastrow, "_cache_dirs", lambda: [tmp_path / "cache"])
    first = fastrow.c_library()
    assert first is not None and first.parent == tmp_path / "cache"
    mtime = first.stat().st_mtime_ns
    assert fastrow.c_library() == first and first.stat().st_mtime_ns == mtime
    edited = tmp_path / "fastrow.c"
    edited.write_text(fastrow.C_SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(fastrow, "C_SOURCE", edited)
    second = fastrow.c_library()
    assert second is not None and second != first
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [first.name, second.name]
    )  # no temporary files left


def run_rows(compiled: bool, w: int = 60, n: int = 260, seed: int = 5) -> list[AnalyticsRow]:
    yc, xc = synthetic_pair(n, seed)
    items = merge_by_time(bars_for("BTCUSDT", yc), bars_for("ETHUSDT", xc))
    logic = PairAnalyticsLogic(None, lambda k: new_state(k, w, compiled=compiled))
    out = list(logic.on_batch([(KEY, it) for it in items])[0]) + list(logic.on_eof()[0])
    return [o for o in out if isinstance(o, AnalyticsRow)]


def test_compiled_rows_equal_numpy_rows_and_statsmodels(build: fastrow.Compiled) -> None:
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
    """With the kernel the flow takes (C here)."""
    yc, xc, stream = scenario
    want_rows, _ = run(in_order(yc, xc), compiled=True)
    got_rows, _ = run(stream, compiled=True)
    assert got_rows == want_rows


def test_use_compiled_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastrow.kernel() is fastrow.c_kernel() is not None  # C first
    assert fastrow.use_compiled(1)  # auto with the C kernel: any number of keys
    assert new_state(KEY, 30).compiled
    assert not fastrow.use_compiled(1000, "off")
    assert fastrow.use_compiled(1, "on")
    assert not new_state(KEY, 30, compiled=False).compiled
    with pytest.raises(ValueError, match="PAIRFLOW_COMPILED"):
        fastrow.use_compiled(1, "maybe")
    assert load_settings({"PAIRFLOW_COMPILED": "ON", "PAIRFLOW_CONFIG": ""}).compiled == "on"
    with pytest.raises(ConfigError, match="PAIRFLOW_COMPILED"):
        load_settings({"PAIRFLOW_COMPILED": "maybe", "PAIRFLOW_CONFIG": ""})
    with pytest.raises(ConfigError, match="PAIRFLOW_NUMBA is now PAIRFLOW_COMPILED"):
        load_settings({"PAIRFLOW_NUMBA": "on", "PAIRFLOW_CONFIG": ""})
    assert fastrow.PIVOT_REL == cointegration.PIVOT_REL
    # Without a C compiler, auto takes numba from AUTO_MIN_KEYS keys on (its load costs ~1 s).
    monkeypatch.setattr(fastrow, "c_kernel", lambda: None)
    assert not fastrow.use_compiled(fastrow.AUTO_MIN_KEYS - 1)
    assert fastrow.use_compiled(fastrow.AUTO_MIN_KEYS)
    assert fastrow.kernel() is fastrow.numba_kernel() is not None


def test_use_compiled_and_a_fresh_module_import_no_numpy_or_numba() -> None:
    """A pair state asks use_compiled when it is made, before any row: no numpy yet.

    (Asking loads the C kernel, which needs neither.)
    """
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
    assert out.stdout.splitlines() == ["True True True", "False False", "True False"]


def test_rows_computed_in_two_threads_at_once_equal_the_serial_rows(
    build: fastrow.Compiled,
) -> None:
    """The numba kernel releases the GIL, so workers' rows overlap: each needs its own buffers.

    (The C build keeps the GIL, ``test_c_build_keeps_the_gil``; both are held to it.)

    Two threads (as two Bytewax workers of one process) run different pairs' rows
    many times over; every row must equal the one computed alone.
    """
    import threading

    seeds = (5, 6)
    want = {seed: run_rows(True, w=100, n=400, seed=seed) for seed in seeds}
    got: dict[int, list[list[AnalyticsRow]]] = {seed: [] for seed in seeds}
    start = threading.Barrier(len(seeds))

    def work(seed: int) -> None:
        start.wait()
        for _ in range(4):
            got[seed].append(run_rows(True, w=100, n=400, seed=seed))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in seeds:
        assert len(got[seed]) == 4
        for rows in got[seed]:
            assert rows == want[seed]


def stats_windows(seed: int = 11) -> list[tuple[str, RollingPair, RollingPair]]:
    """Windows of every kind the C statistics row must handle, as the flow fills them.

    Cointegrated and independent pairs, an R^2 ~ 1 pair (the OLS guard), a constant leg
    (no fit), a constant spread (no z), short windows (no fast tests: ``p`` differs for
    ``"c"`` and ``"n"``); each at several points of its run.
    """
    rng = np.random.default_rng(seed)
    out = []
    for w in (12, 20, 40, 100, 300):
        m = 2 * w
        x = 4.0 + np.cumsum(rng.normal(0, 1e-3, m))
        kinds = {
            "coint": 2.0 + 0.8 * x + rng.normal(0, 3e-4, m),
            "walks": 9.0 + np.cumsum(rng.normal(0, 1e-3, m)),
            "rsq1": 1.0 + x + 1e-12 * rng.normal(size=m),
            "const_spread": 1.0 + x,
        }
        cases = [(kind, y, x) for kind, y in kinds.items()]
        cases.append(("const_x", kinds["walks"], np.full(m, 4.0)))
        for kind, y, xs in cases:
            levels, rets = RollingPair.create(w), RollingPair.create(w - 1)
            prev = None
            for i, (a, b) in enumerate(zip(y.tolist(), xs.tolist(), strict=True)):
                levels.push(a, b)
                if prev is not None:
                    rets.push(a - prev[0], b - prev[1])
                prev = (a, b)
                if i + 1 >= w and (i + 1 - w) % max(1, w // 4) == 0:
                    out.append((f"{kind} W={w} at {i}", copy_rolling(levels), copy_rolling(rets)))
    return out


def copy_rolling(roll: RollingPair) -> RollingPair:
    """An independent copy (buffers included)."""
    import copy

    new = copy.copy(roll)
    new.buf_a, new.buf_b = array("d", roll.buf_a), array("d", roll.buf_b)
    return new


def test_c_row_stats_are_bit_identical_to_the_python_around_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``pf_row_stats`` (fits, z, corr, the kernel, MacKinnon p-values in C) == the Python.

    The reference is :func:`window_stats` with the same C kernel but without its
    ``stats`` function: the O(1) fits, the guards and ``_pvalue``/``ndtr`` in Python.
    Every status the C row can return is met (a broken branch would show).
    """
    import dataclasses

    c = fastrow.c_kernel()
    assert c is not None and c.stats is not None
    statuses: set[int] = set()

    def spy(*args: object) -> int:
        status = c.stats(*args)
        statuses.add(status)
        return status

    with_c = dataclasses.replace(c, stats=spy)
    without = dataclasses.replace(c, stats=None)
    compared = 0
    for label, levels, rets in stats_windows():
        for with_p in (True, False):
            monkeypatch.setattr(pair_row, "kernel", lambda: with_c)
            got = pair_row.window_stats(levels, rets, with_pvalues=with_p, compiled=True)
            monkeypatch.setattr(pair_row, "kernel", lambda: without)
            want = pair_row.window_stats(levels, rets, with_pvalues=with_p, compiled=True)
            assert got.keys() == want.keys()
            for k, v in want.items():
                assert (got[k] is None) == (v is None), (label, with_p, k, got[k], v)
                assert got[k] == v, (label, with_p, k, got[k], v)  # bit for bit
            compared += 1
    assert compared > 100
    ok = fastrow.ROW_KERNEL | fastrow.OK_HALF_LIFE
    assert fastrow.ROW_DECLINED in statuses  # the R^2 ~ 1 guard: the Python path
    assert 0 in statuses  # no fit or a constant spread: no kernel
    assert ok | fastrow.OK_TESTS in statuses  # the fast tests and p-values in C
    assert ok in statuses  # the kernel without tests (no p-values asked, or W < 36)


def test_c_row_stats_out_of_memory_is_a_memory_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    c = fastrow.c_kernel()
    assert c is not None
    failing = dataclasses.replace(c, stats=lambda *args: -1)
    monkeypatch.setattr(pair_row, "kernel", lambda: failing)
    _, levels, rets = next(w for w in stats_windows() if w[0].startswith("coint W=300"))
    with pytest.raises(MemoryError, match="out of memory"):
        pair_row.window_stats(levels, rets, compiled=True)


def test_c_row_params_are_the_python_constants_and_tables() -> None:
    """The constants ``pf_row_stats`` reads (fastrow.c ``P_*``) come from the Python."""
    from pairflow.stats.rolling import SSR_GUARD_REL

    params = pair_row._row_params().tolist()
    assert params[:4] == [
        SSR_GUARD_REL, pair_row._TINY_SPREAD_REL, 1 - 100 * cointegration.SQRTEPS,
        math.sqrt(0.5),
    ]  # fmt: skip
    rest = params[4:]
    for n in (1, 2):
        hi, lo, star, small, large = cointegration.pvalue_table("c", n)
        table = [hi, lo, star, len(small), *small, len(large), *large]
        assert rest[: len(table)] == table
        rest = rest[len(table) :]
    assert rest == []


def test_c_build_keeps_the_gil() -> None:
    """The C calls are PyDLL calls: dropping the GIL for microseconds handed it to the
    DuckDB writer thread at every row and doubled the calls' time in a scan flow."""
    import ctypes

    c = fastrow.c_kernel()
    assert c is not None and c.stats is not None
    python_api = ctypes._FUNCFLAG_PYTHONAPI  # set on PyDLL functions only
    assert c.fn._flags_ & python_api
    assert c.stats._flags_ & python_api
