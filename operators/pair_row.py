"""One ``analytics`` row: a grid point into the rolling windows and hedge models, the row out.

The definitions are those of docs/design.md, "Analytics definitions":

* **Window.** y = ln(close_Y), x = ln(close_X) on the last ``W`` grid points; no
  row until ``W`` grid points exist, so the first row of a key comes ``W - 1``
  intervals after ``t0`` (defaults: 1s W=300 → 5 min, 1m W=120 → 2 h,
  5m W=60 → 5 h of data; a restart without a recovery snapshot starts over).
* **Statistics.** alpha, beta: OLS of y on [1, x]; spread = y - alpha - beta x
  under the current fit (evaluated as ``(y - mean y) - beta (x - mean x)``, the
  same number in exact arithmetic, without the rounding of the float alpha);
  zscore = (spread_t - mean(spreads)) / std(spreads, ddof=1),
  with mean(spreads) = 0 and std from the residual sum of squares, all O(1) from the
  rolling sums (:class:`pairflow.stats.rolling.RollingPair`); corr = Pearson of the
  ``W - 1`` log returns (O(1)); adf_pvalue and eg_pvalue equal statsmodels'
  ``adfuller(spreads, "c", autolag="AIC")`` and ``coint(y, x, "c", autolag="aic")``
  (:mod:`pairflow.stats.cointegration`, O(W) vectorised); half_life =
  -ln 2 / ln(1 + lambda) in *bars of the timeframe* from OLS of dspread on
  [1, spread_{t-1}] (O(W) vectorised), ``None`` if lambda >= 0 or 1 + lambda <= 0.
  With ``PAIRFLOW_COMPILED`` (``auto``: the C kernel if the machine can build it)
  spreads, half-life and both tests are one compiled call per row
  (:mod:`pairflow.stats.fastrow`; the same numbers).
* **Undefined values** (a constant leg, zero spread variance...) are ``None``,
  never NaN or inf.
* **Hedge models.** Each :class:`~pairflow.stats.hedge.HedgeModel` (the Kalman filter
  of docs/design.md "Hedge models" by default, ``PAIRFLOW_KALMAN_DELTA``) starts at the first
  row (grid index ``W - 1``) from that window and steps once per later grid point;
  its outputs fill ``{name}_alpha, _beta, _spread, _zscore``. If the first window
  cannot start it (a constant leg), it tries again at the next row.

This module imports numpy and the statistics; :mod:`operators.pair_grid` imports it
when a key makes its first row (:func:`row`), so a run whose keys have not filled a
window yet (a short one) never loads them.
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from operators.pair_state import GridPoint, PairState
from pairflow.records import AnalyticsRow
from pairflow.stats.cointegration import _SQRT1_2, SQRTEPS, adf_maxlag, pvalue_table, spread_tests
from pairflow.stats.cointegration import _pvalue as pvalue
from pairflow.stats.fastrow import (
    N_OUT,
    N_ROW_OUT,
    OK_HALF_LIFE,
    OK_TESTS,
    ROW_DECLINED,
    ROW_KERNEL,
    Compiled,
    kernel,
)
from pairflow.stats.hedge import NO_OUT
from pairflow.stats.rolling import SSR_GUARD_REL, OlsFit, RollingPair

_SUM = np.add.reduce  # ndarray.sum without its Python wrapper (the same pairwise sum)

_TINY_SPREAD_REL = 1e3 * sys.float_info.epsilon
"""Spreads below this times the log-price level are rounding noise: treated as zero."""

_OUT = threading.local()
"""Each thread's kernel output buffers (:func:`_out_buffers`, :func:`_row_buffer`).

Per thread, not per process: the numba kernel releases the GIL while it runs (the C
build keeps it), so two workers' rows in one process may be computed at once."""


def _out_buffers() -> tuple[array[float], int, np.ndarray]:
    """This thread's C output buffer, its address, and the numba one (made once)."""
    try:
        return _OUT.buffers  # type: ignore[no-any-return]
    except AttributeError:
        c_out = array("d", bytes(8 * N_OUT))  # items read as Python floats, no numpy scalars
        _OUT.buffers = (c_out, c_out.buffer_info()[0], np.empty(N_OUT))
        return _OUT.buffers  # type: ignore[no-any-return]


def _row_buffer() -> tuple[array[float], int]:
    """This thread's ``pf_row_stats`` output buffer and its address (made once)."""
    try:
        return _OUT.row  # type: ignore[no-any-return]
    except AttributeError:
        out = array("d", bytes(8 * N_ROW_OUT))
        _OUT.row = (out, out.buffer_info()[0])
        return _OUT.row  # type: ignore[no-any-return]


def _row_params() -> array[float]:
    """``pf_row_stats``' constants, from the Python that defines them (fastrow.c ``P_*``).

    The guards of :meth:`RollingPair.ols` and :func:`window_stats`, ``coint``'s R^2
    limit, ``sqrt(0.5)`` of :func:`~pairflow.stats.cointegration.ndtr`, then the
    MacKinnon tables of the ADF (``"c"``, N=1) and Engle-Granger (``"c"``, N=2) p-values.
    """
    vals = [SSR_GUARD_REL, _TINY_SPREAD_REL, 1 - 100 * SQRTEPS, _SQRT1_2]
    for n in (1, 2):
        hi, lo, star, small, large = pvalue_table("c", n)
        vals += [hi, lo, star, len(small), *small, len(large), *large]
    return array("d", vals)


_ROW_PARAMS = _row_params()
_ROW_PARAMS_ADDRESS = _ROW_PARAMS.buffer_info()[0]
_STAT_NAMES = (
    "alpha", "beta", "spread", "zscore", "corr", "adf_pvalue", "eg_pvalue", "half_life",
    "spread_std",
)  # fmt: skip
"""The statistics of :func:`window_stats`, in ``pf_row_stats``' ``out`` order."""
_N_STATS = len(_STAT_NAMES)
_ADF_AT = _STAT_NAMES.index("adf_pvalue")
_EG_AT = _STAT_NAMES.index("eg_pvalue")
_FAST_LAG: dict[int, int] = {}
"""Window length -> the ADF maximum lag when ``"c"`` and ``"n"`` agree, else -1."""
_isfinite = math.isfinite


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a Python float, or ``None`` if it is ``None``, NaN or infinite."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def row(state: PairState, p: GridPoint) -> AnalyticsRow:
    """The row of grid point ``p``: statistics and hedge models (from the ``W``-th point on).

    :func:`operators.pair_grid.compute` has pushed ``p`` into the rolling windows;
    this advances the hedge models (``state.hedge_states``) and makes the row
    (positionally, in :class:`~pairflow.records.AnalyticsRow`'s field order: a
    keyword call from a dict costs ~1 µs more a row).
    """
    ly, lx = p.ly, p.lx
    with_p = (state.grid_points - state.window) % state.pvalue_every == 0
    vals = _stat_values(state.levels, state.rets, with_p, state.compiled)
    kalman: tuple[float | None, ...] = _NO_MODEL
    extra: dict[str, Any] | None = None  # replace() checks the names at run time
    for i, model in enumerate(state.models):
        hs = state.hedge_states[i]
        if hs is None:
            wy, wx = state.levels.window()
            hs, ho = model.init(wy, wx)
        else:
            hs, ho = model.update(hs, ly, lx)
        if hs is not state.hedge_states[i]:
            states = list(state.hedge_states)
            states[i] = hs
            state.hedge_states = tuple(states)
        if ho is not NO_OUT:
            if model.name == "kalman":
                kalman = (ho.alpha, ho.beta, ho.spread, ho.zscore)
            else:  # another model's columns, by name (AnalyticsRow has only kalman_*)
                n = model.name
                extra = extra or {}
                extra |= {f"{n}_alpha": ho.alpha, f"{n}_beta": ho.beta}
                extra |= {f"{n}_spread": ho.spread, f"{n}_zscore": ho.zscore}
    a, b, sp, z, c, adf, eg, hl, sd = vals
    out = AnalyticsRow(
        state.pair, state.tf, p.t, state.window, p.y_close, p.x_close,
        a, b, sp, z, c, adf, eg, hl, p.y_bar is None, p.x_bar is None, sd, *kalman,
    )  # fmt: skip
    return out if extra is None else replace(out, **extra)


_NO_MODEL: tuple[None, ...] = (None,) * 4
"""The hedge-model columns of a row the model has not started on."""


def _stat_values(
    levels: RollingPair, rets: RollingPair, with_pvalues: bool, compiled: bool
) -> tuple[float | None, ...] | list[float | None]:
    """:func:`window_stats`' values in ``_STAT_NAMES`` order (the C row without a dict)."""
    kern = kernel() if compiled else None
    if kern is not None and kern.stats is not None:
        fast = _c_row(kern.stats, levels, rets, with_pvalues)
        if fast is not None:
            return fast
    res = _python_stats(levels, rets, with_pvalues, kern)
    return tuple(res[k] for k in _STAT_NAMES)


def window_stats(
    levels: RollingPair, rets: RollingPair, *, with_pvalues: bool = True, compiled: bool = False
) -> dict[str, float | None]:
    """Statistics of the current window (docs/design.md "Analytics definitions").

    Args:
        levels: Rolling (y, x) log prices; the newest pair is the row's.
        rets: Rolling (dy, dx) log returns of the same window.
        with_pvalues: Compute ``adf_pvalue``/``eg_pvalue`` (else ``None``).
        compiled: Half-life and tests through the compiled row kernel if there is
            one (:func:`pairflow.stats.fastrow.kernel`).

    Returns:
        ``alpha, beta, spread, zscore, corr, adf_pvalue, eg_pvalue, half_life,
        spread_std`` (the window spreads' standard deviation, ddof=1, the z-score's
        denominator), each a finite float or ``None``.
    """
    vals = _stat_values(levels, rets, with_pvalues, compiled)
    return dict(zip(_STAT_NAMES, vals, strict=True))


def _python_stats(
    levels: RollingPair, rets: RollingPair, with_pvalues: bool, kern: Compiled | None
) -> dict[str, float | None]:
    """:func:`window_stats` without ``pf_row_stats``: the O(1) fits in Python.

    Then ``kern``'s half-life and tests (the numpy path where ``kern`` is ``None`` or
    declines the window).
    """
    res: dict[str, float | None] = dict.fromkeys(_STAT_NAMES)
    res["corr"] = finite_or_none(rets.corr())
    fit = levels.ols()
    if fit is None:  # x constant (or < 2 points): hedge ratio undefined
        return res
    dy_t, dx_t = levels.last_deviation()
    res["alpha"] = finite_or_none(fit.alpha)
    res["beta"] = finite_or_none(fit.beta)
    # spread_t = y_t - alpha - beta x_t = (y_t - mean y) - beta (x_t - mean x) exactly;
    # it is also spread_t - mean(spreads), as OLS residuals with an intercept sum to 0.
    centred = dy_t - fit.beta * dx_t
    res["spread"] = finite_or_none(centred)
    n = fit.n
    res["spread_std"] = finite_or_none(math.sqrt(max(fit.ssr, 0.0) / (n - 1)))
    tiny = (_TINY_SPREAD_REL * max(1.0, abs(fit.mean_a))) ** 2 * n
    if fit.ssr <= tiny:
        return res  # spreads are (numerically) constant: z, tests, half-life undefined
    res["zscore"] = finite_or_none(centred / math.sqrt(fit.ssr / (n - 1)))
    if kern is not None:
        return _compiled_tail(kern, levels, fit, res, with_pvalues)
    spreads = levels.residuals(fit.beta)
    res["half_life"] = half_life(spreads)
    if with_pvalues:
        _test_pvalues(res, spreads, fit.rsquared)
    return res


def _c_row(
    fn: Callable[..., int], levels: RollingPair, rets: RollingPair, with_pvalues: bool
) -> list[float | None] | None:
    """:func:`window_stats`' values in one C call (``pf_row_stats``: the same numbers).

    Returns them in ``_STAT_NAMES`` order, or ``None`` where the C code declines the
    row (the R^2 ~ 1 guard of :meth:`RollingPair.ols`, which recomputes the residual
    sum of squares with numpy): the caller's Python path makes it. Tests the kernel
    declines take the numpy path here, as in :func:`_compiled_tail`.
    """
    out, address = _row_buffer()
    n = levels.n
    p = _FAST_LAG.get(n)
    if p is None:
        p = adf_maxlag(n, "c")
        p = _FAST_LAG[n] = p if p >= 0 and p == adf_maxlag(n, "n") else -1
    status = fn(
        levels.buf_a.buffer_info()[0], levels.buf_b.buffer_info()[0], levels.head, n,
        levels.anchor_a, levels.anchor_b, levels.s_a, levels.s_b, levels.s_aa, levels.s_bb,
        levels.s_ab, rets.n, rets.s_a, rets.s_b, rets.s_aa, rets.s_bb, rets.s_ab, p,
        with_pvalues, _ROW_PARAMS_ADDRESS, address,
    )  # fmt: skip
    if status < 0:
        msg = "the C analytics kernel could not allocate its work arrays (out of memory)"
        raise MemoryError(msg)
    if status & ROW_DECLINED:
        return None
    vals = out.tolist()
    isfinite = _isfinite
    res: list[float | None] = [v if isfinite(v) else None for v in vals[:_N_STATS]]
    if with_pvalues and status & ROW_KERNEL and not status & OK_TESTS:
        rsq = vals[18]
        tests = dict(zip(_STAT_NAMES, res, strict=True))
        _test_pvalues(tests, levels.residuals(vals[1]), rsq if isfinite(rsq) else None)
        res[_ADF_AT] = tests["adf_pvalue"]
        res[_EG_AT] = tests["eg_pvalue"]
    return res


def _test_pvalues(res: dict[str, float | None], spreads: np.ndarray, rsq: float | None) -> None:
    """``adf_pvalue`` and ``eg_pvalue`` of ``spreads`` into ``res`` (numpy path)."""
    tests = spread_tests(spreads, rsq)
    if tests.adf is not None:
        res["adf_pvalue"] = finite_or_none(tests.adf.pvalue)
    if tests.eg is not None:
        res["eg_pvalue"] = finite_or_none(tests.eg.pvalue)


def half_life(spreads: np.ndarray) -> float | None:
    """Mean-reversion half-life in grid intervals: -ln 2 / ln(1 + lambda).

    ``lambda`` is the slope of OLS of ``dspread_t`` on ``[1, spread_{t-1}]``.

    Returns:
        The half-life, or ``None`` if lambda >= 0 (no mean reversion), 1 + lambda <= 0,
        or ``spread_{t-1}`` is constant.
    """
    m = spreads.shape[0] - 1
    if m < 2:
        return None
    lag = spreads[:-1]
    d = spreads[1:] - lag  # np.diff
    # sum(a) / m is exactly a.mean() (the same pairwise sum, one division), cheaper.
    lc = lag - _SUM(lag) / m
    sxx = float(lc @ lc)
    if not sxx > 0.0:
        return None
    d -= _SUM(d) / m
    return _half_life_from(float(lc @ d) / sxx)


def _half_life_from(lam: float) -> float | None:
    """``-ln 2 / ln(1 + lam)``; ``None`` unless ``-1 < lam < 0``."""
    if not (lam < 0.0 and 1.0 + lam > 0.0):
        return None
    return finite_or_none(-math.log(2.0) / math.log1p(lam))


def _compiled_tail(
    kern: Compiled,
    levels: RollingPair,
    fit: OlsFit,
    res: dict[str, float | None],
    with_pvalues: bool,
) -> dict[str, float | None]:
    """Half-life and p-values of :func:`window_stats` through the compiled row kernel.

    Windows the kernel declines (a failed pivot check, R^2 ~ 1, a short window) take
    the numpy path of :func:`~pairflow.stats.cointegration.spread_tests`.
    """
    n = fit.n
    rsq = fit.rsquared
    p = adf_maxlag(n, "c")
    fast = (
        with_pvalues
        and rsq is not None
        and rsq < 1 - 100 * SQRTEPS
        and p >= 0
        and p == adf_maxlag(n, "n")
    )
    c_out, c_address, np_out = _out_buffers()
    out: array[float] | np.ndarray
    a: int | np.ndarray  # the buffers and the output as the kernel takes them
    b: int | np.ndarray
    out_arg: int | np.ndarray
    if kern.by_address:  # C: the ring buffers' addresses, no numpy
        a, b = levels.buf_a.buffer_info()[0], levels.buf_b.buffer_info()[0]
        out, out_arg = c_out, c_address
    else:  # numba takes ndarrays (cached zero-copy views)
        a, b = levels.views()
        out = out_arg = np_out
    status = kern.fn(
        a, b, levels.head, n, levels.anchor_a, levels.anchor_b,
        levels.s_a, levels.s_b, fit.beta, p if fast else -1, out_arg,
    )  # fmt: skip
    if status < 0:
        msg = "the C analytics kernel could not allocate its work arrays (out of memory)"
        raise MemoryError(msg)
    if status & OK_HALF_LIFE:
        res["half_life"] = _half_life_from(float(out[0]))
    if not with_pvalues:
        return res
    if status & OK_TESTS:
        res["adf_pvalue"] = finite_or_none(pvalue(float(out[1]), "c", 1))
        res["eg_pvalue"] = finite_or_none(pvalue(float(out[5]), "c", 2))
        return res
    _test_pvalues(res, levels.residuals(fit.beta), rsq)
    return res
