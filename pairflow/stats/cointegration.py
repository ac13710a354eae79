"""Fast ADF and Engle-Granger tests that reproduce statsmodels to rounding error.

``statsmodels.tsa.stattools.adfuller(x, autolag="AIC")`` fits one OLS per candidate
lag (``maxlag + 1`` fits, each with SVDs and rank checks), which costs milliseconds
per call. The same numbers come out of one cross-product matrix:

* Build the ADF design once for the largest lag ``P``: columns ``[1, x_{t-1},
  dx_{t-1} .. dx_{t-P}, dx_t]`` for every ``t`` (rows ``t < j`` of lag ``j`` are
  never used). With a constant the level is centred first (the fit is the same,
  the Gram matrix far better conditioned).
* The lag search fits nested column sets on the common sample of ``nobs - 1 - p``
  rows. With the Gram matrix ``G = Z'Z`` of that sample ordered as
  ``[deterministic, level, lag 1 .. lag p, target]``, one Cholesky factor ``L``
  gives every nested residual sum of squares: ``ssr_k = sum_{j >= k} L[-1, j]^2``.
  The AIC is then evaluated with statsmodels' exact formula and the first minimum
  is taken, as statsmodels does.
* The chosen lag is refitted on its own (longer) sample. Its Gram matrix is the
  search Gram's sub-matrix plus the Gram of the few extra leading rows. With the
  level column ordered last, its t-statistic is ``L[-1, -2] / sigma``.
* ``adf_pvalue`` (``regression="c"``) and ``coint`` (residual ADF with
  ``regression="n"``) share one Gram matrix when their maximum lags agree
  (``nobs >= 36``).
* :func:`spread_tests` runs both through :func:`_adf_pair_fast`, the same
  computation with as few array operations as possible (per-call Python and
  numpy overhead dominates at these sizes): the design is built transposed, the two
  search Grams are the blocks of one block-diagonal matrix (one ``dpotrf`` call
  and one pivot check), both AIC searches are evaluated at once, and both refits
  share a second block-diagonal factorisation. Anything it declines takes the
  general path below.

The p-values are statsmodels' :func:`~statsmodels.tsa.adfvalues.mackinnonp` (``N=1``
for ADF, ``N=2`` for the two-variable Engle-Granger test), computed from a generated
copy of its tables (:mod:`pairflow.stats.mackinnon_tables`, tested equal) so that
importing this module loads neither statsmodels nor ``scipy.stats`` (~2.4 s of
start-up). The normal CDF at their end is :func:`ndtr` (``math.erf``/``erfc``, within
2.3e-16 of scipy's), so no p-value loads ``scipy.special``; ``scipy.linalg`` loads at
the first test that takes the numpy path.

A Cholesky of a Gram matrix squares the condition number, so every pivot is
checked: if any regressor (or the target) is nearly in the span of the previous
columns (relative pivot below :data:`PIVOT_REL`), or the design leaves no residual
degrees of freedom, the call falls back to statsmodels itself. Those windows are
degenerate (long runs of identical prices, tiny windows) and rare.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pairflow.stats import mackinnon_tables as _tables


def _first_dpotrf(*args: Any, **kwargs: Any) -> Any:
    """LAPACK ``dpotrf``; imports ``scipy.linalg`` at the first call (start-up cost).

    The first call rebinds this module's ``dpotrf`` to scipy's function itself, so
    later calls go straight to LAPACK.
    """
    from scipy.linalg.lapack import dpotrf as real

    globals()["dpotrf"] = real
    return real(*args, **kwargs)


_SQRT1_2 = math.sqrt(0.5)


def ndtr(a: float) -> float:
    """Standard normal CDF (``scipy.stats.norm.cdf``), from ``math.erf``/``erfc``.

    The branches of cephes' ``ndtr`` (scipy's): ``0.5 + 0.5 erf(a/sqrt 2)`` near 0,
    ``0.5 erfc(|a|/sqrt 2)`` (reflected for ``a > 0``) in the tails, so the tails keep
    their relative precision. Only libm's ``erf``/``erfc`` differ from cephes': at most
    2.3e-16 from ``scipy.special.ndtr`` on [-38, 9] (measured on 300 k points; equal
    in ~23 %), 10 orders below the 1e-6 agreement of the p-values, and no
    ``scipy.special`` import (~0.27 s of start-up here). NaN gives NaN.
    """
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


dpotrf: Callable[..., Any] = _first_dpotrf

PIVOT_REL = 1e-8
"""Smallest accepted ``L[j, j]**2 / G[j, j]`` (1 - R^2 of column j on the previous ones)."""

SQRTEPS = math.sqrt(np.finfo(np.double).eps)
"""As in statsmodels: ``coint`` reports ``-inf`` when ``R^2 >= 1 - 100 * SQRTEPS``."""

_REG_TREND = {"c": 1, "n": 0}


@dataclass(frozen=True, slots=True)
class AdfResult:
    """Result of an augmented Dickey-Fuller test with AIC lag selection.

    Attributes:
        stat: The t-statistic of the lagged level (``adfuller(...)[0]``).
        pvalue: MacKinnon p-value for it (``N=1`` for ADF; ``N=2`` when it is the
            residual test of Engle-Granger).
        usedlag: Number of lagged differences chosen by AIC.
        nobs: Observations in the final regression.
        icbest: The minimum AIC of the lag search.
        fast: False when the statsmodels fallback produced it.
    """

    stat: float
    pvalue: float
    usedlag: int
    nobs: int
    icbest: float
    fast: bool = True


def adf_maxlag(nobs: int, regression: str = "c") -> int:
    """``adfuller``'s default maximum lag: ``min(nobs//2 - ntrend - 1, ceil(12 (nobs/100)^0.25))``.

    Args:
        nobs: Length of the series.
        regression: ``"c"`` (constant) or ``"n"`` (none).

    Returns:
        The maximum lag; negative means the series is too short for the test.
    """
    key = (nobs, regression)
    lag = _MAXLAG.get(key)
    if lag is None:
        ntrend = _REG_TREND[regression]
        maxlag = int(np.ceil(12.0 * np.power(nobs / 100.0, 1 / 4.0)))
        lag = _MAXLAG[key] = min(nobs // 2 - ntrend - 1, maxlag)
    return lag


_MAXLAG: dict[tuple[int, str], int] = {}


def _design(x: np.ndarray, p: int) -> np.ndarray:
    """ADF design for every ``t``: ``n-1`` rows, ``p+4`` columns.

    Columns: ``[1, x_{t-1} - mean(x), x_{t-1}, dx_{t-1} .. dx_{t-p}, dx_t]``.

    Row ``i`` is the equation for ``dx[i]``; lag-``j`` entries of rows ``i < j`` are
    zero placeholders (never used by a regression with ``j`` lags or more). The
    centred level is used with a constant (same fit, far better conditioned: log
    prices sit near 11 and move by 1e-4); the raw level without one.
    """
    n = x.shape[0]
    dx = np.diff(x)
    z = np.empty((n - 1, p + 4))
    z[:, 0] = 1.0
    z[:, 2] = x[:-1]
    z[:, 1] = z[:, 2] - x.mean()
    for j in range(1, p + 1):
        z[:j, 2 + j] = 0.0
        z[j:, 2 + j] = dx[:-j]
    z[:, -1] = dx
    return z


def _chol(g: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of ``g`` if every pivot is well conditioned, else ``None``.

    A pivot ``L[j, j]**2 / G[j, j]`` is ``1 - R^2`` of column ``j`` on the columns
    before it; below :data:`PIVOT_REL` the Gram route would lose too many digits.
    LAPACK ``dpotrf`` is called directly: ``np.linalg.cholesky``'s wrapper costs
    more than the factorisation of these small matrices.
    """
    low, info = dpotrf(g, lower=1, clean=1, overwrite_a=0)
    if info != 0:
        return None  # not positive definite
    d = np.diagonal(low)
    # A successful Cholesky means g is positive definite: its diagonal is > 0.
    if not (d * d / np.diagonal(g)).min() >= PIVOT_REL:
        return None
    return low


def _aic(ssr: np.ndarray, nobs: int, k: np.ndarray) -> np.ndarray:
    """The OLS AIC of statsmodels, ``-2 llf + 2 k``, with its exact llf expression."""
    nobs2 = nobs / 2.0
    llf = -np.log(ssr) * nobs2  # ssr > 0: the target's pivot was checked
    llf -= (1 + np.log(np.pi / nobs2)) * nobs2
    return -2 * llf + 2 * k


_AIC_CONST: dict[int, float] = {}
"""``(1 + log(pi / (nobs / 2))) * nobs / 2`` of :func:`_aic`, per ``nobs``."""


def _adf_from_design(
    z: np.ndarray, g_big: np.ndarray, big_p: int, p: int, regression: str
) -> tuple[float, int, int, float] | None:
    """ADF t-statistic from the shared design and its Gram over rows ``big_p..``.

    Args:
        z: :func:`_design` output for ``big_p`` lags.
        g_big: ``z[big_p:].T @ z[big_p:]``.
        big_p: Largest lag in ``z``.
        p: This test's maximum lag (``<= big_p``).
        regression: ``"c"`` or ``"n"``.

    Returns:
        ``(stat, usedlag, nobs, icbest)`` or ``None`` when the fast path is not
        numerically safe (the caller falls back to statsmodels).
    """
    rows = z.shape[0]
    det = [0] if regression == "c" else []
    level = 1 if regression == "c" else 2
    base = len(det) + 1  # deterministic terms + level
    tgt = big_p + 3

    def gram(first_row: int, cols: list[int]) -> np.ndarray:
        g = g_big[cols][:, cols]
        if first_row < big_p:
            extra = z[first_row:big_p][:, cols]
            g = g + extra.T @ extra
        return g

    # Lag search on the common sample (rows p..), nested columns.
    search_cols = [*det, level, *range(3, 3 + p), tgt]
    nobs = rows - p
    low = _chol(gram(p, search_cols))
    if low is None:
        return None
    last = low[-1, :] ** 2
    ssr = np.cumsum(last[::-1])[::-1]  # ssr[k] = sum_{j>=k} L[-1, j]^2
    ks = np.arange(base, base + p + 1)
    if nobs - ks[-1] <= 0:
        return None
    aic = _aic(ssr[ks], nobs, ks)
    best = int(np.argmin(aic))  # first minimum, like min((aic, lag), ...)
    icbest = float(aic[best])
    lag = best

    # Refit the chosen lag on its own sample, level column last.
    fit_cols = [*det, *range(3, 3 + lag), level, tgt]
    nobs_fit = rows - lag
    k = base + lag
    if nobs_fit - k <= 0:
        return None
    low = _chol(gram(lag, fit_cols))
    if low is None:
        return None
    sigma = math.sqrt(low[-1, -1] ** 2 / (nobs_fit - k))
    if not sigma > 0.0:
        return None
    stat = float(low[-1, -2] / sigma)
    return stat, lag, nobs_fit, icbest


def _adf_statsmodels(x: np.ndarray, regression: str) -> tuple[float, int, int, float] | None:
    """Run statsmodels ``adfuller`` (the fallback); ``None`` where it raises or returns NaN."""
    from statsmodels.tsa.stattools import adfuller

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = adfuller(x, regression=regression, autolag="AIC", result_object=True)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if math.isnan(res.statistic):
        return None
    return float(res.statistic), int(res.lags), int(res.nobs), float(res.icbest)


def _prepare(x: np.ndarray) -> np.ndarray | None:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.shape[0] < 3 or not np.all(np.isfinite(x)):
        return None
    if x.max() == x.min():
        return None  # adfuller: "Invalid input, x is constant"
    return x


_AdfTuple = tuple[float, int, int, float]


@dataclass(frozen=True, slots=True)
class _PairLayout:
    """Cached index arrays of :func:`_adf_pair_fast` for one ``(nobs, maxlag)``.

    The pair design has ``p + 5`` columns: :func:`_design`'s ``p + 4`` and a zero
    column (index ``p + 4``), whose Gram row and column are exactly zero and fill
    the off-diagonal blocks of the block-diagonal gathers below.

    Attributes:
        search_ix: Flat index into the Gram giving the block-diagonal matrix of both
            search Grams (``"c"`` block, then ``"n"`` block).
        last_ix: The target rows' entries of that Cholesky factor that make up the
            nested residual sums, in reverse column order (shape ``(2, p + 1)``).
        ks2: Twice the matching AIC parameter counts, also reversed.
    """

    search_ix: np.ndarray
    last_ix: tuple[np.ndarray, np.ndarray]
    ks2: np.ndarray


_LAYOUTS: dict[tuple[int, int], _PairLayout] = {}
_FIT_IX: dict[tuple[int, int, int], np.ndarray] = {}


def _block_ix(blocks: list[tuple[int, np.ndarray]], zero: int, width: int) -> np.ndarray:
    """Flat index of a block-diagonal gather from raveled ``width``-square matrices.

    ``blocks`` holds ``(off, cols)`` pairs: entry ``(i, j)`` of that block is
    ``off + cols[i] * width + cols[j]``; off-block entries point at ``zero`` (the
    flat position of an entry known to be 0).
    """
    m = sum(b[1].shape[0] for b in blocks)
    ix = np.full((m, m), zero, dtype=np.intp)
    at = 0
    for off, cols in blocks:
        k = cols.shape[0]
        ix[at : at + k, at : at + k] = off + cols[:, None] * width + cols[None, :]
        at += k
    return ix


def _layout(n: int, p: int) -> _PairLayout:
    """The cached :class:`_PairLayout` for ``n`` points and maximum lag ``p``."""
    lay = _LAYOUTS.get((n, p))
    if lay is None:
        w = p + 5
        tgt, zero = p + 3, p + 4
        c_cols = np.array([0, 1, *range(3, 3 + p), tgt])
        n_cols = np.array([2, *range(3, 3 + p), tgt])
        search_ix = _block_ix([(0, c_cols), (0, n_cols)], zero * w + zero, w)
        r_c, r_n = p + 2, 2 * p + 4  # target rows of the two blocks
        last_r = np.array([[r_c], [r_n]]).repeat(p + 1, axis=1)
        last_c = np.stack([np.arange(p + 2, 1, -1), np.arange(2 * p + 4, p + 3, -1)])
        ks2 = 2.0 * np.stack([np.arange(p + 2, 1, -1), np.arange(p + 1, 0, -1)])
        lay = _PairLayout(search_ix, (last_r, last_c), ks2)
        _LAYOUTS[(n, p)] = lay
    return lay


def _fit_ix(p: int, lag_c: int, lag_n: int) -> np.ndarray:
    """Flat index of the block-diagonal refit Gram of both regressions.

    The source is the refit Gram of ``lag_c`` (``(p + 5)``-square, raveled), followed
    by that of ``lag_n`` when the lags differ. The blocks have columns ``[1, lags
    1..lag_c, centred level, target]`` and ``[lags 1..lag_n, raw level, target]``.
    """
    key = (p, lag_c, lag_n)
    ix = _FIT_IX.get(key)
    if ix is None:
        w = p + 5
        zero = (p + 4) * w + p + 4
        c_cols = np.array([0, *range(3, 3 + lag_c), 1, p + 3])
        n_cols = np.array([*range(3, 3 + lag_n), 2, p + 3])
        n_off = 0 if lag_c == lag_n else w * w
        ix = _FIT_IX[key] = _block_ix([(0, c_cols), (n_off, n_cols)], zero, w)
    return ix


def _chol_ok(g: np.ndarray) -> np.ndarray | None:
    """:func:`_chol` without the keyword-argument overhead (same checks)."""
    low, info = dpotrf(g, 1, 1)
    if info != 0:
        return None
    d = low.diagonal()
    d = d * d
    d /= g.diagonal()
    if not _MIN(d) >= PIVOT_REL:
        return None
    return low


_MIN = np.minimum.reduce
_SUM = np.add.reduce


def _adf_pair_fast(x: np.ndarray, p: int, total: float) -> tuple[_AdfTuple, _AdfTuple] | None:
    """``"c"`` and ``"n"`` ADF statistics of ``x`` when both have maximum lag ``p``.

    The computation of :func:`_adf_from_design` for both regressions at once, in
    fewer array operations: the design is built transposed from slices; both search Grams are the
    blocks of one block-diagonal matrix (its Cholesky factor is the two factors,
    with the same pivots), so one ``dpotrf`` call and one pivot check serve both;
    the AIC of both searches is evaluated at once; and both refits again share one
    block-diagonal factorisation.

    Args:
        x: The series (1-d float64).
        p: The common maximum lag.
        total: ``x.sum()`` (``total / n`` is exactly ``x.mean()``: the same sum,
            one division).

    Returns:
        ``((stat, lag, nobs, icbest) for "c", the same for "n")``, or ``None``
        when any step is not numerically safe (the caller takes the general path).
    """
    n = x.shape[0]
    rows = n - 1
    nobs = rows - p
    if nobs - (p + 2) <= 0:
        return None
    lay = _layout(n, p)
    # The design transposed, one row per column of _design (plus the zero column):
    # each row is contiguous, the lag rows are copied from a strided view of the
    # zero-padded differences.
    xl = x[:-1]
    zt = np.empty((p + 5, rows))
    zt[0] = 1.0
    np.subtract(xl, total / n, out=zt[1])
    zt[2] = xl
    pad = np.zeros(p + rows)
    dx = pad[p:]
    np.subtract(x[1:], xl, out=dx)
    if p > 0:  # row 3 + j - 1 is dx shifted by j: pad[p - j : p - j + rows]
        zt[3 : p + 3] = np.ndarray((p, rows), np.float64, pad, (p - 1) * 8, (-8, 8))
    zt[p + 3] = dx
    zt[p + 4] = 0.0
    zs = zt[:, p:]
    gv = zs @ zs.T
    low = _chol_ok(gv.ravel()[lay.search_ix])
    if low is None:
        return None
    last = low[lay.last_ix]
    last *= last
    ssr = last.cumsum(axis=1)  # reversed: ssr[:, i] is the sum over columns >= k_i
    # _aic's operations, in place (the same numbers).
    nobs2 = nobs / 2.0
    const = _AIC_CONST.get(nobs)
    if const is None:
        const = _AIC_CONST[nobs] = float((1 + np.log(np.pi / nobs2)) * nobs2)
    aic = np.log(ssr)
    aic *= -nobs2
    aic -= const
    aic *= -2
    aic += lay.ks2
    aic = aic[:, ::-1]
    lag_c, lag_n = aic.argmin(axis=1).tolist()  # first minimum, in increasing lag order
    nobs_c, nobs_n = rows - lag_c, rows - lag_n
    k_c, k_n = 2 + lag_c, 1 + lag_n
    if nobs_c - k_c <= 0 or nobs_n - k_n <= 0:
        return None
    if lag_c < p:
        ze = zt[:, lag_c:p]
        src = (gv + ze @ ze.T).ravel()
    else:
        src = gv.ravel()
    if lag_n != lag_c:
        if lag_n < p:
            ze = zt[:, lag_n:p]
            src = np.concatenate((src, (gv + ze @ ze.T).ravel()))
        else:
            src = np.concatenate((src, gv.ravel()))
    low = _chol_ok(src[_fit_ix(p, lag_c, lag_n)])
    if low is None:
        return None
    r_c, r_n = lag_c + 2, lag_c + lag_n + 4
    sig_c = math.sqrt(low[r_c, r_c] ** 2 / (nobs_c - k_c))
    sig_n = math.sqrt(low[r_n, r_n] ** 2 / (nobs_n - k_n))
    if not (sig_c > 0.0 and sig_n > 0.0):
        return None
    return (
        (float(low[r_c, r_c - 1] / sig_c), lag_c, nobs_c, float(aic[0, lag_c])),
        (float(low[r_n, r_n - 1] / sig_n), lag_n, nobs_n, float(aic[1, lag_n])),
    )


def _adf_stats(
    x: np.ndarray, regressions: tuple[str, ...]
) -> dict[str, tuple[float, int, int, float, bool] | None]:
    """ADF statistics of ``x`` for several ``regression`` values, sharing one Gram."""
    out: dict[str, tuple[float, int, int, float, bool] | None] = {}
    lags = {r: adf_maxlag(x.shape[0], r) for r in regressions}
    valid = [lags[r] for r in regressions if lags[r] >= 0]
    if not valid:
        return dict.fromkeys(regressions)
    big_p = max(valid)
    z = _design(x, big_p)
    zs = z[big_p:]
    g_big = zs.T @ zs
    for r in regressions:
        if lags[r] < 0:
            out[r] = None
            continue
        res = _adf_from_design(z, g_big, big_p, lags[r], r)
        if res is None:
            slow = _adf_statsmodels(x, r)
            out[r] = None if slow is None else (*slow, False)
        else:
            out[r] = (*res, True)
    return out


def adf_test(x: np.ndarray, regression: str = "c") -> AdfResult | None:
    """Augmented Dickey-Fuller test, equal to ``adfuller(x, regression, autolag="AIC")``.

    Args:
        x: The series (1-d, finite).
        regression: ``"c"`` (constant) or ``"n"`` (no deterministic term).

    Returns:
        The result, or ``None`` where statsmodels raises or returns NaN (constant
        series, too short a series, a perfect fit).
    """
    xs = _prepare(x)
    if xs is None:
        return None
    res = _adf_stats(xs, (regression,))[regression]
    if res is None:
        return None
    stat, lag, nobs, ic, fast = res
    return AdfResult(
        stat, _pvalue(stat, regression="c" if regression == "c" else "n", n=1), lag, nobs, ic, fast
    )


def _pvalue(stat: float, regression: str, n: int) -> float:
    """MacKinnon p-value as ``mackinnonp`` computes it (to 2.3e-16), ~20x cheaper.

    The same table lookup and Horner polynomial; ``mackinnonp`` ends in
    ``scipy.stats.norm.cdf`` (~50 µs of argument checking per call), this in
    :func:`ndtr`. The tables are a generated copy of statsmodels'
    (``tests/test_cointegration.py`` holds them equal).
    """
    hi, lo, star, small_c, large_c = pvalue_table(regression, n)
    if stat > hi:
        return 1.0
    if stat < lo:
        return 0.0
    # numpy.polyval's Horner loop, in Python floats: the same IEEE operations.
    acc = 0.0
    for c in small_c if stat <= star else large_c:
        acc = acc * stat + c
    return ndtr(acc)


_PvTable = tuple[float, float, float, tuple[float, ...], tuple[float, ...]]
"""``(tau_max, tau_min, tau_star, small, large)``: the polynomials in Horner order."""
_PV_CACHE: dict[tuple[str, int], _PvTable] = {}


def pvalue_table(regression: str, n: int) -> _PvTable:
    """The MacKinnon table :func:`_pvalue` uses for ``(regression, n)`` (made once).

    ``mackinnonp``'s ``tau_max``, ``tau_min``, ``tau_star`` and its small-p and
    large-p polynomial coefficients, reversed for Horner's rule (``numpy.polyval``'s
    order). The compiled row (``operators/pair_row.py``) gets the same numbers.
    """
    key = (regression, n)
    tab = _PV_CACHE.get(key)
    if tab is None:
        maxs, mins, stars, small, large = _TABLES
        i = n - 1
        tab = _PV_CACHE[key] = (
            float(maxs[regression][i]),
            float(mins[regression][i]),
            float(stars[regression][i]),
            tuple(float(c) for c in small[regression][i][::-1]),
            tuple(float(c) for c in large[regression][i][::-1]),
        )
    return tab


_TABLES: tuple[dict[str, tuple[Any, ...]], ...] = (
    _tables.TAU_MAXS,
    _tables.TAU_MINS,
    _tables.TAU_STARS,
    _tables.TAU_SMALLPS,
    _tables.TAU_LARGEPS,
)


def eg_stat_from_residuals(resid: np.ndarray, rsquared: float) -> AdfResult | None:
    """Engle-Granger test from the residuals of the cointegrating OLS ``y ~ 1 + x``.

    Equals ``coint(y, x, trend="c", autolag="aic")``: ADF with ``regression="n"`` on
    the residuals and MacKinnon's ``N=2``, ``"c"`` p-value; ``-inf``/``0.0`` when the
    first stage is (almost) perfectly collinear, exactly like statsmodels.

    Args:
        resid: Residuals of OLS of y on ``[1, x]``.
        rsquared: That regression's R^2.

    Returns:
        The result (``pvalue`` is the EG p-value) or ``None`` when undefined.
    """
    if not math.isfinite(rsquared):
        return None
    if rsquared >= 1 - 100 * SQRTEPS:
        return AdfResult(-math.inf, _pvalue(-math.inf, "c", 2), 0, resid.shape[0], math.nan)
    xs = _prepare(resid)
    if xs is None:
        return None
    res = _adf_stats(xs, ("n",))["n"]
    if res is None:
        return None
    stat, lag, nobs, ic, fast = res
    return AdfResult(stat, _pvalue(stat, "c", 2), lag, nobs, ic, fast)


@dataclass(frozen=True, slots=True)
class SpreadTests:
    """ADF (``regression="c"``) and Engle-Granger results for one window.

    Attributes:
        adf: ``adfuller(spreads, regression="c", autolag="AIC")`` equivalent.
        eg: ``coint(y, x, trend="c", autolag="aic")`` equivalent.
    """

    adf: AdfResult | None
    eg: AdfResult | None


def spread_tests(spreads: np.ndarray, rsquared: float | None) -> SpreadTests:
    """Both unit-root tests of one window's OLS spreads, sharing the lag design.

    The Engle-Granger first stage is the same OLS of y on ``[1, x]`` that defines
    the spreads, so its residuals *are* the window spreads.

    Args:
        spreads: Residuals ``y - alpha - beta x`` of the window's OLS fit.
        rsquared: R^2 of that fit (``None`` if y is constant: EG undefined).

    Returns:
        Both results; each is ``None`` where undefined.
    """
    collinear = rsquared is not None and rsquared >= 1 - 100 * SQRTEPS
    if (
        rsquared is not None
        and not collinear
        and type(spreads) is np.ndarray
        and spreads.dtype == np.float64
        and spreads.ndim == 1
    ):
        fast = _spread_tests_fast(spreads)
        if fast is not None:
            return fast
    xs = _prepare(spreads)
    if xs is None:
        if rsquared is not None and collinear:
            return SpreadTests(None, eg_stat_from_residuals(spreads, rsquared))
        return SpreadTests(None, None)
    regs = ("c",) if (rsquared is None or collinear) else ("c", "n")
    stats = _adf_stats(xs, regs)
    adf = None
    c = stats["c"]
    if c is not None:
        adf = AdfResult(c[0], _pvalue(c[0], "c", 1), c[1], c[2], c[3], c[4])
    eg = None
    if rsquared is not None and collinear:
        eg = eg_stat_from_residuals(spreads, rsquared)
    elif rsquared is not None and stats["n"] is not None:
        s = stats["n"]
        eg = AdfResult(s[0], _pvalue(s[0], "c", 2), s[1], s[2], s[3], s[4])
    return SpreadTests(adf, eg)


def _spread_tests_fast(x: np.ndarray) -> SpreadTests | None:
    """Both tests through :func:`_adf_pair_fast`, or ``None`` (take the general path).

    A finite sum means every value is finite; a constant series has no variation in
    the target column, fails the pivot check and so also ends up on the general path.
    """
    n = x.shape[0]
    p = adf_maxlag(n, "c")
    if p < 0 or p != adf_maxlag(n, "n"):
        return None
    total = float(_SUM(x))  # == x.sum(), without the method's Python wrapper
    if not math.isfinite(total):
        return None
    pair = _adf_pair_fast(x, p, total)
    if pair is None:
        return None
    c, e = pair
    return SpreadTests(
        AdfResult(c[0], _pvalue(c[0], "c", 1), c[1], c[2], c[3]),
        AdfResult(e[0], _pvalue(e[0], "c", 2), e[1], e[2], e[3]),
    )


def coint_test(y: np.ndarray, x: np.ndarray) -> AdfResult | None:
    """Engle-Granger test of ``y`` on ``x``, equal to ``coint(y, x, trend="c", autolag="aic")``.

    Args:
        y: Dependent series (1-d, finite).
        x: Regressor series, same length.

    Returns:
        The result (``stat`` = ``coint(...)[0]``, ``pvalue`` = ``coint(...)[1]``) or
        ``None`` where undefined (a constant leg, too short).
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if y.shape != x.shape or y.ndim != 1 or y.shape[0] < 3:
        return None
    yc = y - y.mean()
    xc = x - x.mean()
    sxx = float(xc @ xc)
    syy = float(yc @ yc)
    if sxx == 0.0 or syy == 0.0:
        return None
    beta = float(xc @ yc) / sxx
    resid = yc - beta * xc
    ssr = float(resid @ resid)
    return eg_stat_from_residuals(resid, 1.0 - ssr / syy)
