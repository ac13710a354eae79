"""One compiled call per analytics row: spreads, half-life, ADF and Engle-Granger statistics.

:func:`row_kernel` is the computation of :func:`pairflow.stats.cointegration.
_adf_pair_fast` (both unit-root tests of one window's spreads from one Gram matrix
and Cholesky factors, docs/design.md "Analytics definitions") plus the spreads and the
half-life slope, written as loops for numba: the numpy version spends most of its
~30 array operations per row in call overhead, not arithmetic.

The Gram matrix of the ADF design is also cheaper than ``Z'Z``: the lagged
differences ``dx_{t-j}`` (``j = 0..p``, lag 0 being the target) are shifted copies of
one series, so only their products with the newest lag are summed (``O(p n)``); the
rest follow from ``G[j+1, k+1] = G[j, k] + dx[s-1-j] dx[s-1-k] - dx[e-1-j] dx[e-1-k]``
(``O(p^2)``; the sample is rows ``s..e-1``). Every Cholesky pivot is checked as in
:func:`pairflow.stats.cointegration._chol` (:data:`~pairflow.stats.cointegration.
PIVOT_REL`); where a check fails the kernel returns a status without the tests and
the caller takes the numpy path (which falls back to statsmodels).

numba is optional: :func:`kernel` returns ``None`` when it is not installed, and
:func:`use_compiled` (``PAIRFLOW_NUMBA=auto|on|off``) decides per flow; otherwise the
caller uses the numpy path (tests hold both equal, and both equal to statsmodels).

Compiled code is cached on disk (``cache=True``); the
first call in a process loads it (or compiles it, ~seconds, once per machine);
:func:`warm_up_s` reports how long that took.

Importing this module imports no numpy (a pair state asks :func:`use_compiled` when
it is made, before its first row): the kernel's module global ``np`` is bound by
:func:`kernel` / :func:`python_kernel`, the only ways to get the kernel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PIVOT_REL = 1e-8
"""The same as :data:`pairflow.stats.cointegration.PIVOT_REL` (tested equal)."""

OK_HALF_LIFE = 1
"""Status bit: ``out[0]`` holds the half-life slope ``lambda`` (``spread_{t-1}`` varies)."""
OK_TESTS = 2
"""Status bit: ``out[1:9]`` hold both tests' ``(stat, lag, nobs, icbest)``."""

N_OUT = 9
"""Length of the ``out`` array: ``lambda``, ADF ``(stat, lag, nobs, ic)``, EG the same."""


def _chol(a: np.ndarray, m: int, low: np.ndarray) -> bool:
    """Lower Cholesky factor of ``a[:m, :m]`` into ``low``; False if a pivot fails.

    A pivot fails when it is not positive (not positive definite) or its
    ``L[j, j]**2 / A[j, j]`` (``1 - R^2`` of column ``j`` on the previous ones) is
    below :data:`PIVOT_REL`.
    """
    for j in range(m):
        s = a[j, j]
        for k in range(j):
            s -= low[j, k] * low[j, k]
        if not s > 0.0:
            return False
        if not s / a[j, j] >= PIVOT_REL:
            return False
        d = math.sqrt(s)
        low[j, j] = d
        for i in range(j + 1, m):
            t = a[i, j]
            for k in range(j):
                t -= low[i, k] * low[j, k]
            low[i, j] = t / d
    return True


def _gather(g: np.ndarray, cols: np.ndarray, m: int, out: np.ndarray) -> None:
    for i in range(m):
        ci = cols[i]
        for j in range(m):
            out[i, j] = g[ci, cols[j]]


def _search(
    g: np.ndarray, cols: np.ndarray, m: int, base: int, p: int, nobs: int, work: np.ndarray,
    low: np.ndarray, aic_out: np.ndarray,
) -> int:  # fmt: skip
    """AIC lag search on the common sample; the first minimising lag, or -1."""
    _gather(g, cols, m, work)
    if not _chol(work, m, low):
        return -1
    nobs2 = nobs / 2.0
    const = (1 + math.log(math.pi / nobs2)) * nobs2
    r = m - 1
    best = -1
    best_aic = 0.0
    for lag in range(p + 1):
        k = base + lag
        ssr = 0.0
        for j in range(m - 1, k - 1, -1):  # the same order as the reversed cumsum
            ssr += low[r, j] * low[r, j]
        aic = math.log(ssr)
        aic *= -nobs2
        aic -= const
        aic *= -2.0
        aic += 2.0 * k
        aic_out[lag] = aic
        if best < 0 or aic < best_aic:
            best, best_aic = lag, aic
    return best


def _refit(
    g: np.ndarray, zrows: np.ndarray, cols: np.ndarray, m: int, lag: int, p: int,
    nobs_fit: int, k: int, work: np.ndarray, low: np.ndarray,
) -> float:  # fmt: skip
    """t-statistic of the level (last column before the target), rows ``lag..``; NaN: unsafe."""
    _gather(g, cols, m, work)
    for t in range(lag, p):  # rows before the search sample
        for i in range(m):
            vi = zrows[t, cols[i]]
            for j in range(m):
                work[i, j] += vi * zrows[t, cols[j]]
    if not _chol(work, m, low):
        return math.nan
    r = m - 1
    sigma = math.sqrt(low[r, r] * low[r, r] / (nobs_fit - k))
    if not sigma > 0.0:
        return math.nan
    return low[r, r - 1] / sigma


def row_kernel(
    buf_a: np.ndarray, buf_b: np.ndarray, head: int, n: int, anchor_a: float, anchor_b: float,
    s_a: float, s_b: float, beta: float, p: int, out: np.ndarray,
) -> int:  # fmt: skip
    """Spreads of the window, their half-life slope and both unit-root tests.

    Args:
        buf_a: :class:`~pairflow.stats.rolling.RollingPair` ``buf_a`` (y log prices).
        buf_b: Its ``buf_b`` (x log prices).
        head: Its ``head``; the window is ``buf[head : head + n]``.
        n: Window length.
        anchor_a: Its ``anchor_a``.
        anchor_b: Its ``anchor_b``.
        s_a: Its ``s_a``.
        s_b: Its ``s_b``.
        beta: The window's OLS slope.
        p: ADF maximum lag (``adf_maxlag(n)``, the same for ``"c"`` and ``"n"``).
        out: ``N_OUT`` floats, filled as the status says.

    Returns:
        Status bits :data:`OK_HALF_LIFE` | :data:`OK_TESTS`.
    """
    status = 0
    # Spreads exactly as RollingPair.residuals computes them.
    x = np.empty(n)
    ma = s_a / n
    mb = s_b / n
    for i in range(n):
        x[i] = ((buf_a[head + i] - anchor_a) - ma) - ((buf_b[head + i] - anchor_b) - mb) * beta
    # Half-life slope: OLS of dspread on [1, spread_{t-1}].
    m1 = n - 1
    if m1 >= 2:
        sl = 0.0
        sd = 0.0
        for i in range(m1):
            sl += x[i]
            sd += x[i + 1] - x[i]
        ml = sl / m1
        md = sd / m1
        sxx = 0.0
        sxd = 0.0
        for i in range(m1):
            lc = x[i] - ml
            sxx += lc * lc
            sxd += lc * ((x[i + 1] - x[i]) - md)
        if sxx > 0.0:
            out[0] = sxd / sxx
            status |= OK_HALF_LIFE
    rows = n - 1
    nobs = rows - p
    if p < 0 or nobs - (p + 2) <= 0:
        return status
    total = 0.0
    for i in range(n):
        total += x[i]
    if not math.isfinite(total):
        return status
    mean = total / n
    w = p + 4  # columns: 0 const, 1 centred level, 2 level, 3..p+2 lags 1..p, p+3 target
    dx = np.empty(rows)
    for t in range(rows):
        dx[t] = x[t + 1] - x[t]
    # Full design rows (only rows < p are read, for the refits' extra rows).
    zrows = np.zeros((max(p, 1), w))
    for t in range(p):
        zrows[t, 0] = 1.0
        zrows[t, 1] = x[t] - mean
        zrows[t, 2] = x[t]
        for j in range(1, t + 1):
            zrows[t, 2 + j] = dx[t - j]
        zrows[t, p + 3] = dx[t]
    g = np.zeros((w, w))
    lg = np.zeros((p + 1, p + 1))  # lag family: lg[j, k] = sum dx[t-j] dx[t-k], t = p..rows-1
    sc = 0.0
    sx = 0.0
    scc = 0.0
    sxx2 = 0.0
    scx = 0.0
    for t in range(p, rows):
        c = x[t] - mean
        v = x[t]
        sc += c
        sx += v
        scc += c * c
        sxx2 += v * v
        scx += c * v
    g[0, 0] = nobs
    g[0, 1] = g[1, 0] = sc
    g[0, 2] = g[2, 0] = sx
    g[1, 1] = scc
    g[2, 2] = sxx2
    g[1, 2] = g[2, 1] = scx
    for k in range(p + 1):
        s1 = 0.0
        s0 = 0.0
        s_c = 0.0
        s_x = 0.0
        for t in range(p, rows):
            d = dx[t - k]
            s1 += d
            s0 += dx[t] * d
            s_c += (x[t] - mean) * d
            s_x += x[t] * d
        lg[0, k] = lg[k, 0] = s0
        ck = p + 3 if k == 0 else 2 + k
        g[0, ck] = g[ck, 0] = s1
        g[1, ck] = g[ck, 1] = s_c
        g[2, ck] = g[ck, 2] = s_x
    for j in range(p):
        for k in range(j, p):
            v = lg[j, k] + dx[p - 1 - j] * dx[p - 1 - k] - dx[rows - 1 - j] * dx[rows - 1 - k]
            lg[j + 1, k + 1] = lg[k + 1, j + 1] = v
    for j in range(p + 1):
        cj = p + 3 if j == 0 else 2 + j
        for k in range(p + 1):
            ck = p + 3 if k == 0 else 2 + k
            g[cj, ck] = lg[j, k]
    work = np.empty((w, w))
    low = np.zeros((w, w))
    aic = np.empty(p + 1)
    # "c": [const, centred level, lags 1..p, target]; "n": [level, lags 1..p, target].
    cols_c = np.empty(p + 3, np.int64)
    cols_c[0] = 0
    cols_c[1] = 1
    cols_n = np.empty(p + 2, np.int64)
    cols_n[0] = 2
    for j in range(1, p + 1):
        cols_c[1 + j] = 2 + j
        cols_n[j] = 2 + j
    cols_c[p + 2] = p + 3
    cols_n[p + 1] = p + 3
    lag_c = _search(g, cols_c, p + 3, 2, p, nobs, work, low, aic)
    if lag_c < 0:
        return status
    ic_c = aic[lag_c]
    lag_n = _search(g, cols_n, p + 2, 1, p, nobs, work, low, aic)
    if lag_n < 0:
        return status
    ic_n = aic[lag_n]
    nobs_c = rows - lag_c
    nobs_n = rows - lag_n
    k_c = 2 + lag_c
    k_n = 1 + lag_n
    if nobs_c - k_c <= 0 or nobs_n - k_n <= 0:
        return status
    # Refits, level column last before the target.
    fc = np.empty(lag_c + 3, np.int64)
    fc[0] = 0
    for j in range(1, lag_c + 1):
        fc[j] = 2 + j
    fc[lag_c + 1] = 1
    fc[lag_c + 2] = p + 3
    stat_c = _refit(g, zrows, fc, lag_c + 3, lag_c, p, nobs_c, k_c, work, low)
    if math.isnan(stat_c):
        return status
    fn = np.empty(lag_n + 2, np.int64)
    for j in range(lag_n):
        fn[j] = 3 + j
    fn[lag_n] = 2
    fn[lag_n + 1] = p + 3
    stat_n = _refit(g, zrows, fn, lag_n + 2, lag_n, p, nobs_n, k_n, work, low)
    if math.isnan(stat_n):
        return status
    out[1] = stat_c
    out[2] = lag_c
    out[3] = nobs_c
    out[4] = ic_c
    out[5] = stat_n
    out[6] = lag_n
    out[7] = nobs_n
    out[8] = ic_n
    return status | OK_TESTS


def _bind_numpy() -> None:
    """Import numpy and bind it as this module's ``np``, which the kernel's code uses."""
    import numpy

    globals()["np"] = numpy


def _compile() -> Callable[..., int] | None:
    """Import numba and jit the kernel (cached on disk); ``None`` if unavailable."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    _bind_numpy()  # numba resolves the kernel's globals when it compiles
    jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
    g = globals()
    for name in ("_chol", "_gather", "_search", "_refit"):
        g[name] = jit(g[name])
    fn = jit(row_kernel)
    # Load (or compile) now, on a tiny window, so the first real row pays nothing.
    buf = np.linspace(0.0, 1.0, 80) ** 2
    fn(buf, buf[::-1].copy(), 0, 40, 0.0, 0.0, 0.0, 0.0, 0.5, 3, np.empty(N_OUT))
    return fn  # type: ignore[no-any-return]


AUTO_MIN_KEYS = 8
"""``PAIRFLOW_NUMBA=auto`` (the default) compiles when a flow analyses this many
``(pair, tf)`` keys or more: loading numba costs seconds of start-up (import ~2.5 s and
cache load ~3 s measured on the shared 2-core machine) that one pair's rows never
win back, while the pair scanner's do within minutes."""


NUMBA_MODES = ("auto", "on", "off")
"""Values of ``PAIRFLOW_NUMBA`` (``Settings.numba``); also 1/0, true/false, yes/no."""


def use_compiled(keys: int, mode: str = "auto") -> bool:
    """Whether a flow with ``keys`` ``(pair, tf)`` keys uses the compiled kernel.

    Args:
        keys: How many ``(pair, tf)`` keys the flow analyses.
        mode: ``PAIRFLOW_NUMBA`` (``Settings.numba``): ``on``/``1`` always,
            ``off``/``0`` never, ``auto`` from :data:`AUTO_MIN_KEYS` keys on.

    Raises:
        ValueError: on another value.
    """
    raw = mode.strip().lower()
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    if raw == "auto":
        return keys >= AUTO_MIN_KEYS
    msg = f"PAIRFLOW_NUMBA must be auto, on or off, got {raw!r}"
    raise ValueError(msg)


_LOADED: dict[str, Any] = {}
"""``kernel``: the compiled function or ``None``; ``warm_up_s``: what loading it took."""


def kernel() -> Callable[..., int] | None:
    """The compiled :func:`row_kernel`, or ``None`` when numba is not installed.

    The first call imports numba and loads the cached machine code (compiles it on a
    machine without the cache); :func:`warm_up_s` says how long that took.
    """
    try:
        return _LOADED["kernel"]  # type: ignore[no-any-return]
    except KeyError:
        t0 = time.perf_counter()
        _LOADED["kernel"] = _compile()
        _LOADED["warm_up_s"] = time.perf_counter() - t0
        return _LOADED["kernel"]  # type: ignore[no-any-return]


def warm_up_s() -> float | None:
    """Seconds the first :func:`kernel` call took; ``None`` before it."""
    return _LOADED.get("warm_up_s")


def python_kernel() -> Callable[..., Any]:
    """The uncompiled :func:`row_kernel` (tests; slow)."""
    _bind_numpy()
    return row_kernel
