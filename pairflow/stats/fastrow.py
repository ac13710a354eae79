"""One compiled call per analytics row: spreads, half-life, ADF and Engle-Granger statistics.

:func:`row_kernel` is the computation of :func:`pairflow.stats.cointegration.
_adf_pair_fast` (both unit-root tests of one window's spreads from one Gram matrix
and Cholesky factors, docs/design.md "Analytics definitions") plus the spreads and the
half-life slope, written as loops for a compiler: the numpy version spends most of its
~30 array operations per row in call overhead, not arithmetic.

The Gram matrix of the ADF design is also cheaper than ``Z'Z``: the lagged
differences ``dx_{t-j}`` (``j = 0..p``, lag 0 being the target) are shifted copies of
one series, so only their products with the newest lag are summed (``O(p n)``); the
rest follow from ``G[j+1, k+1] = G[j, k] + dx[s-1-j] dx[s-1-k] - dx[e-1-j] dx[e-1-k]``
(``O(p^2)``; the sample is rows ``s..e-1``). Every Cholesky pivot is checked as in
:func:`pairflow.stats.cointegration._chol` (:data:`~pairflow.stats.cointegration.
PIVOT_REL`); where a check fails the kernel returns a status without the tests and
the caller takes the numpy path (which falls back to statsmodels).

Two compiled builds of these loops, tested bit-identical to the Python source:

* **C** (:data:`C_SOURCE`, ``fastrow.c``): built on first use with the machine's C
  compiler (``$CC``, cc, gcc or clang; < 1 s, once per machine, cached next to this
  module or in ``~/.cache/pairflow``) and loaded with ctypes in milliseconds. The
  default: faster than numba here (1.16-1.50x per call, ``benchmarks/scan.py``) and
  without numba's ~1 s load, so even one pair's rows pay for it.
* **numba** (``cache=True``), where no C compiler is found.

:func:`kernel` returns the C build, else numba's, else ``None`` (the caller then uses
the numpy path: tests hold all of them equal, and equal to statsmodels);
:func:`use_compiled` (``PAIRFLOW_COMPILED=auto|on|off``) decides per flow
(``benchmarks/scan.py`` reports how long loading takes).

Importing this module imports no numpy (a pair state asks :func:`use_compiled` when
it is made, before its first row): the kernel's module global ``np`` is bound by
:func:`kernel` / :func:`python_kernel`, the only ways to get the kernel.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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

ROW_DECLINED = 4
"""``pf_row_stats`` status bit: the Python path makes this row (the R^2 ~ 1 guard)."""
ROW_KERNEL = 8
"""``pf_row_stats`` status bit: the row kernel ran (without ``OK_TESTS``: no tests)."""
N_ROW_OUT = 19
"""Length of ``pf_row_stats``' ``out``: 9 statistics, the kernel's ``N_OUT``, R^2."""


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
    # The first row of the lag family, lg[0, k] = sum dx[t] dx[t-k]: the one O(nobs) loop
    # per lag (the C build runs four lags per pass, each sum in this order).
    for k in range(p + 1):
        s0 = 0.0
        for t in range(p, rows):
            s0 += dx[t] * dx[t - k]
        lg[0, k] = lg[k, 0] = s0
    s_x = 0.0
    for t in range(p, rows):
        s_x += x[t] * dx[t]
    # Level x lag sums from the lag-0 one, O(1) a lag, since x[u + 1] = x[u] + dx[u]:
    # sum x[t] dx[t-k-1] = (sum x[t] dx[t-k] + sum dx[t] dx[t-k]) over t - 1, i.e. with
    # the window's first term added and last removed; sum dx[t-k] telescopes; the centred
    # level's sum is sum x dx - mean sum dx.
    for k in range(p + 1):
        ck = p + 3 if k == 0 else 2 + k
        s1 = x[rows - k] - x[p - k]
        g[0, ck] = g[ck, 0] = s1
        g[1, ck] = g[ck, 1] = s_x - mean * s1
        g[2, ck] = g[ck, 2] = s_x
        if k < p:
            s_x = (s_x + x[p - 1] * dx[p - 1 - k] - x[rows - 1] * dx[rows - 1 - k]) + (
                lg[0, k] + dx[p - 1] * dx[p - 1 - k] - dx[rows - 1] * dx[rows - 1 - k]
            )
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


@dataclass(frozen=True)
class Compiled:
    """A compiled :func:`row_kernel`: the C build or the numba one.

    Attributes:
        name: ``"c"`` or ``"numba"``.
        fn: The compiled function. The C kernel (``by_address``) takes the buffers'
            addresses (``array.buffer_info()[0]``) where :func:`row_kernel` takes arrays.
        by_address: Whether ``fn`` takes addresses.
        stats: The C build only: ``pf_row_stats``, the whole statistics row (this
            kernel, the O(1) fits and the p-values) in one call, by address
            (:func:`operators.pair_row.window_stats`).
    """

    name: str
    fn: Callable[..., int]
    by_address: bool
    stats: Callable[..., int] | None = None

    def __call__(
        self, buf_a: Any, buf_b: Any, head: int, n: int, anchor_a: float, anchor_b: float,
        s_a: float, s_b: float, beta: float, p: int, out: Any,
    ) -> int:  # fmt: skip
        """:func:`row_kernel`'s arguments (float64 arrays) for either kernel (tests, tools)."""
        if not self.by_address:
            return self.fn(buf_a, buf_b, head, n, anchor_a, anchor_b, s_a, s_b, beta, p, out)
        a, b, o = (_address(v) for v in (buf_a, buf_b, out))
        return self.fn(a, b, head, n, anchor_a, anchor_b, s_a, s_b, beta, p, o)


def _address(buf: Any) -> int:
    """Address of a C-contiguous float64 numpy array or an ``array('d')``."""
    if isinstance(buf, array):
        if buf.typecode != "d":
            msg = f"expected array('d'), got typecode {buf.typecode!r}"
            raise TypeError(msg)
        return int(buf.buffer_info()[0])
    face = buf.__array_interface__
    if face["typestr"] != "<f8" or not buf.flags.c_contiguous:
        msg = "expected a C-contiguous float64 array"
        raise TypeError(msg)
    return int(face["data"][0])


C_SOURCE = Path(__file__).with_name("fastrow.c")
"""The C kernel's source (the loops of :func:`row_kernel`, the same order)."""

C_FLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math")
"""No fused multiply-add, no fast-math: results bit-identical to :func:`row_kernel`."""

_log = logging.getLogger(__name__)


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, else Python's own build compiler, cc, gcc or clang."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    words = shlex.split(cc)
    if words and shutil.which(words[0]):
        return words
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _cache_dirs() -> list[Path]:
    """Where built kernels are kept: next to this module, else the user's cache."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path(__file__).parent / "__pycache__", home / "pairflow"]


def c_library(cc: list[str] | None = None) -> Path | None:
    """Path of the built C kernel, building it first if needed; ``None`` if it cannot be.

    The file name holds a hash of the source, the flags, the compiler and the
    platform, so an edited source is rebuilt. Built into a temporary name and
    renamed: processes that build at once do not see a half-written file.
    """
    cc = cc if cc is not None else _compiler()
    if cc is None:
        _log.warning(
            "no C compiler found (cc, gcc or clang; or set CC): the analytics kernel "
            "falls back to numba or numpy (slower). Install one, e.g. apt-get install gcc."
        )
        return None
    src = C_SOURCE.read_bytes()
    ident = "\0".join([*cc, *C_FLAGS, sys.platform, platform.machine()]).encode()
    tag = hashlib.sha256(src + b"\0" + ident).hexdigest()[:16]
    name = f"fastrow-{tag}.so"
    dirs = _cache_dirs()
    for d in dirs:
        if (d / name).is_file():
            return d / name
    errors = []
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            cmd = [*cc, *C_FLAGS, "-o", str(tmp), str(C_SOURCE), "-lm"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
            if proc.returncode != 0:
                errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-500:]}")
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, d / name)
            return d / name
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{d}: {exc}")
    _log.warning(
        "could not build the C analytics kernel (falling back to numba or numpy, slower): %s",
        "; ".join(errors),
    )
    return None


def _load_c() -> Compiled | None:
    """Build (once per machine) and load the C kernel; ``None`` if it cannot be."""
    path = c_library()
    if path is None:
        return None
    try:
        # PyDLL: the calls keep the GIL. Each call that dropped it (CDLL) handed the GIL
        # to any thread waiting for it (the DuckDB writer) and waited to get it back:
        # in a 91-pair scan flow that doubled the calls' time (0.39 -> 0.80 s for 54,704
        # rows, benchmarks/scan.py); a call lasts microseconds, so holding it costs the
        # writer nothing measurable. Worker threads of one process thus run the kernel
        # one at a time, as they run the rest of the step (processes scale, threads do
        # not: README "Scanner scale").
        lib = ctypes.PyDLL(str(path))
    except OSError as exc:
        _log.warning("could not load the C analytics kernel %s: %s", path, exc)
        return None
    fn = lib.pf_row_kernel
    fn.restype = ctypes.c_long
    c_long, c_double, c_void_p = ctypes.c_long, ctypes.c_double, ctypes.c_void_p
    fn.argtypes = [c_void_p, c_void_p, c_long, c_long, *[c_double] * 5, c_long, c_void_p]
    stats = lib.pf_row_stats
    stats.restype = c_long
    stats.argtypes = [
        c_void_p, c_void_p, c_long, c_long, *[c_double] * 7, c_long, *[c_double] * 5,
        c_long, c_long, c_void_p, c_void_p,
    ]  # fmt: skip
    return Compiled("c", fn, by_address=True, stats=stats)


def _load_numba() -> Compiled | None:
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
    return Compiled("numba", fn, by_address=False)


AUTO_MIN_KEYS = 8
"""Without the C kernel, ``PAIRFLOW_COMPILED=auto`` (the default) takes numba from this
many ``(pair, tf)`` keys on: loading numba costs about a second of start-up here
(import ~0.55 s and cached code ~0.5 s on a fast day, more on a slow one) that one
pair's rows never win back, while the pair scanner's do within minutes. The C kernel
loads in milliseconds, so ``auto`` takes it for any number of keys."""


def use_compiled(keys: int, mode: str = "auto") -> bool:
    """Whether a flow with ``keys`` ``(pair, tf)`` keys uses a compiled kernel.

    Args:
        keys: How many ``(pair, tf)`` keys the flow analyses.
        mode: ``PAIRFLOW_COMPILED`` (``Settings.compiled``, read by
            :func:`pairflow.config.parse_compiled`): ``on`` always, ``off`` never,
            ``auto``: the C kernel whenever it can be built (:func:`c_kernel`; the
            first call may build it), else numba from :data:`AUTO_MIN_KEYS` keys on.

    Raises:
        ValueError: on another value (a :class:`~pairflow.errors.ConfigError`).
    """
    from pairflow.config import parse_compiled  # the one parser of PAIRFLOW_COMPILED

    raw = parse_compiled(mode)
    if raw == "auto":
        return c_kernel() is not None or keys >= AUTO_MIN_KEYS
    return raw == "on"


_LOADED: dict[str, Compiled | None] = {}
"""``c`` / ``numba``: each loaded kernel, or ``None`` where it cannot be."""
_LOCK = threading.Lock()


def _once(name: str, load: Callable[[], Compiled | None]) -> Compiled | None:
    """``load()`` once per process (under a lock: workers are threads); then a dict lookup."""
    try:
        return _LOADED[name]  # every row asks: no lock
    except KeyError:
        pass
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = load()
        return _LOADED[name]


def c_kernel() -> Compiled | None:
    """The C kernel, built on first use (once per machine, < 1 s) and loaded.

    ``None`` when no C compiler can build it (a warning says so).
    """
    return _once("c", _load_c)


def numba_kernel() -> Compiled | None:
    """The numba kernel (loading it costs about a second); ``None`` without numba."""
    return _once("numba", _load_numba)


def kernel() -> Compiled | None:
    """The compiled kernel a flow uses: the C one, else numba's, else ``None`` (numpy)."""
    return c_kernel() or numba_kernel()


def python_kernel() -> Callable[..., Any]:
    """The uncompiled :func:`row_kernel` (tests; slow)."""
    _bind_numpy()
    return row_kernel
