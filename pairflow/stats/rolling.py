"""O(1) rolling moments, OLS and correlation of a pair of series over a fixed window.

Log prices of BTC sit near 11 and move by ~1e-4 inside a window, so the textbook
running sums (``sum(x*x) - sum(x)**2 / n``) cancel catastrophically: the answer is
the difference of two numbers ~1e6 times larger than itself. :class:`RollingPair`
avoids that in three ways:

1. **Shifted sums.** Values are stored raw, but the running sums are kept about an
   *anchor* (a value of the window close to its mean), so the sums are of small
   numbers and ``S_uu - S_u**2 / n`` has at most a few-fold cancellation.
2. **Periodic exact recompute.** Every ``recompute_every`` updates (default: the
   window length, i.e. amortised O(1)) the anchor moves to the current window and
   all sums are recomputed exactly from the buffer, so add/remove rounding never
   accumulates over long runs.
3. **Cancellation guard.** Each sum also tracks its *mass* (the sum of the squared
   terms added and removed since the last recompute), which bounds its absolute
   rounding error. If a centred sum of squares becomes small compared with its mass
   (a nearly constant or freshly constant series) the sums are recomputed at once.
   A constant window therefore ends with centred sums that are exactly ``0.0``, which
   is how callers detect "undefined" (zero-variance) statistics.

The window values live in a doubled ring buffer (each value written at ``i`` and
``i + capacity``), so :meth:`RollingPair.window` returns a contiguous, ordered
numpy view in O(1), ready for vectorised work (ADF, half-life).

The buffers are ``array.array("d")``, not numpy arrays, and this module imports numpy
only where vector maths starts (:meth:`~RollingPair.recompute`, :meth:`~RollingPair.
window`, :meth:`~RollingPair.views` ..., local imports): a key that has not filled its
first window yet (a short run) never loads numpy, and :meth:`~RollingPair.push` is
plain Python (scalar ``array`` indexing is also cheaper than numpy's). The numpy
views of the buffers (``np.frombuffer``, zero-copy) are made once per buffer and
cached on the object, outside its pickled state.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np

GUARD_REL = 1e-4
"""Recompute when a centred sum of squares falls below this fraction of its mass."""

SSR_GUARD_REL = 1e-6
"""Recompute the OLS residual sum of squares directly when it is below this fraction
of the dependent variable's centred sum of squares (R^2 above 1 - 1e-6)."""


def _zeros(size: int) -> array[float]:
    """``size`` zeroed doubles as an ``array.array("d")`` (no numpy)."""
    return array("d", bytes(8 * size))


@dataclass(frozen=True, slots=True)
class OlsFit:
    """OLS of ``a`` on ``[1, b]`` over the window.

    Attributes:
        alpha: Intercept.
        beta: Slope (hedge ratio).
        ssr: Residual sum of squares (>= 0).
        saa: Centred sum of squares of ``a`` (the total sum of squares).
        rsquared: ``1 - ssr / saa``; ``None`` if ``a`` is constant.
        mean_a: Mean of ``a``.
        mean_b: Mean of ``b``.
        n: Number of observations.
    """

    alpha: float
    beta: float
    ssr: float
    saa: float
    rsquared: float | None
    mean_a: float
    mean_b: float
    n: int


@dataclass
class RollingPair:
    """Rolling window of pairs ``(a, b)`` with O(1) moments, OLS and correlation.

    Create with :meth:`create`; feed with :meth:`push`. All fields are plain floats,
    ints and two ``array.array("d")`` buffers, so the object pickles (bytewax
    snapshots). A copy must copy the buffers too (``array("d", buf)``); the numpy
    views of :meth:`views` are not part of the pickled (or ``copy.copy``) state.

    Attributes:
        capacity: Window length ``W`` (number of pairs kept).
        recompute_every: Exact recompute period in updates (default ``capacity``).
        buf_a: Doubled ring buffer of ``a`` (``2 * capacity`` doubles).
        buf_b: The same for ``b``.
        n: Number of pairs currently in the window (``<= capacity``).
    """

    capacity: int
    recompute_every: int
    buf_a: array[float] = field(repr=False)
    buf_b: array[float] = field(repr=False)
    head: int = 0
    n: int = 0
    anchor_a: float = 0.0
    anchor_b: float = 0.0
    s_a: float = 0.0
    s_b: float = 0.0
    s_aa: float = 0.0
    s_bb: float = 0.0
    s_ab: float = 0.0
    mass_a: float = 0.0
    mass_b: float = 0.0
    since: int = 0
    recomputes: int = 0
    _views: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)
    """``(buf_a, buf_b, view_a, view_b)``: the numpy views of :meth:`views` (not pickled)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (and ``copy.copy``) state: every field but the cached numpy views."""
        state = self.__dict__.copy()
        state.pop("_views", None)
        return state

    @classmethod
    def create(cls, capacity: int, recompute_every: int | None = None) -> RollingPair:
        """Make an empty window.

        Args:
            capacity: Window length ``W`` (>= 1).
            recompute_every: Exact recompute period in updates; default ``capacity``.

        Raises:
            ValueError: if ``capacity`` or ``recompute_every`` is below 1.
        """
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        every = capacity if recompute_every is None else recompute_every
        if every < 1:
            msg = f"recompute_every must be >= 1, got {every}"
            raise ValueError(msg)
        return cls(
            capacity=capacity,
            recompute_every=every,
            buf_a=_zeros(2 * capacity),
            buf_b=_zeros(2 * capacity),
        )

    @property
    def full(self) -> bool:
        """True once ``capacity`` pairs are in the window."""
        return self.n == self.capacity

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        """``buf_a`` and ``buf_b`` as numpy arrays (zero-copy views, made once). O(1).

        Writable views of the whole doubled buffers (``2 * capacity``), for the
        vector paths and the compiled row kernel; they see every later :meth:`push`.
        Made again if a buffer was replaced (a copy's new buffers).
        """
        v = self._views
        if v is None or v[0] is not self.buf_a or v[1] is not self.buf_b:
            import numpy as np

            a, b = self.buf_a, self.buf_b
            v = self._views = (a, b, np.frombuffer(a), np.frombuffer(b))
        return v[2], v[3]

    def push(self, a: float, b: float) -> None:
        """Append a pair, evicting the oldest one if the window is full. O(1) amortised.

        Args:
            a: Value of the first series (finite).
            b: Value of the second series (finite).
        """
        a = float(a)
        b = float(b)
        cap = self.capacity
        if self.n == 0:
            # First value: anchor on it so that the sums start exactly at zero.
            self.anchor_a = a
            self.anchor_b = b
        ua = a - self.anchor_a
        ub = b - self.anchor_b
        if self.n < cap:
            pos = (self.head + self.n) % cap
            self.n += 1
        else:
            pos = self.head
            oa = self.buf_a[pos] - self.anchor_a
            ob = self.buf_b[pos] - self.anchor_b
            self.s_a -= oa
            self.s_b -= ob
            self.s_aa -= oa * oa
            self.s_bb -= ob * ob
            self.s_ab -= oa * ob
            self.mass_a += oa * oa
            self.mass_b += ob * ob
            self.head = (self.head + 1) % cap
        self.buf_a[pos] = a
        self.buf_a[pos + cap] = a
        self.buf_b[pos] = b
        self.buf_b[pos + cap] = b
        self.s_a += ua
        self.s_b += ub
        self.s_aa += ua * ua
        self.s_bb += ub * ub
        self.s_ab += ua * ub
        self.mass_a += ua * ua
        self.mass_b += ub * ub
        self.since += 1
        if self.since >= self.recompute_every:
            self.recompute()
            return
        n = self.n
        c_aa = self.s_aa - self.s_a * self.s_a / n
        c_bb = self.s_bb - self.s_b * self.s_b / n
        if c_aa < GUARD_REL * self.mass_a or c_bb < GUARD_REL * self.mass_b:
            self.recompute()

    def recompute(self) -> None:
        """Re-anchor on the window and recompute every sum exactly. O(W).

        The new anchor is the window value nearest to the window mean, so a
        constant window gets exactly-zero sums.
        """
        self.since = 0
        self.recomputes += 1
        if self.n == 0:
            self.s_a = self.s_b = self.s_aa = self.s_bb = self.s_ab = 0.0
            self.mass_a = self.mass_b = 0.0
            return
        import numpy as np

        wa, wb = self.window()
        self.anchor_a = float(wa[np.argmin(np.abs(wa - wa.mean()))])
        self.anchor_b = float(wb[np.argmin(np.abs(wb - wb.mean()))])
        ua = wa - self.anchor_a
        ub = wb - self.anchor_b
        self.s_a = float(ua.sum())
        self.s_b = float(ub.sum())
        self.s_aa = float(ua @ ua)
        self.s_bb = float(ub @ ub)
        self.s_ab = float(ua @ ub)
        self.mass_a = self.s_aa
        self.mass_b = self.s_bb

    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """The window, oldest first, as two read-only contiguous views. O(1).

        The views alias the buffer: copy them before the next :meth:`push` if you
        keep them.
        """
        va, vb = self.views()
        a = va[self.head : self.head + self.n]
        b = vb[self.head : self.head + self.n]
        a.flags.writeable = False
        b.flags.writeable = False
        return a, b

    def last(self) -> tuple[float, float]:
        """The newest pair.

        Raises:
            IndexError: if the window is empty.
        """
        if self.n == 0:
            msg = "empty window"
            raise IndexError(msg)
        pos = (self.head + self.n - 1) % self.capacity
        return self.buf_a[pos], self.buf_b[pos]

    def means(self) -> tuple[float, float]:
        """Means of ``a`` and ``b`` over the window (``nan`` if empty)."""
        if self.n == 0:
            return math.nan, math.nan
        return self.anchor_a + self.s_a / self.n, self.anchor_b + self.s_b / self.n

    def centred(self) -> tuple[float, float, float]:
        """Centred sums ``(S_aa, S_bb, S_ab)`` = ``n`` times the (co)variances.

        ``S_aa`` and ``S_bb`` are clamped at 0 and are exactly 0.0 for a constant
        series.
        """
        n = self.n
        if n == 0:
            return 0.0, 0.0, 0.0
        c_aa = max(self.s_aa - self.s_a * self.s_a / n, 0.0)
        c_bb = max(self.s_bb - self.s_b * self.s_b / n, 0.0)
        c_ab = self.s_ab - self.s_a * self.s_b / n
        if c_aa == 0.0 or c_bb == 0.0:
            c_ab = 0.0
        return c_aa, c_bb, c_ab

    def var(self, ddof: int = 1) -> tuple[float, float]:
        """Variances of ``a`` and ``b`` with ``ddof`` (``nan`` if ``n <= ddof``)."""
        if self.n <= ddof:
            return math.nan, math.nan
        c_aa, c_bb, _ = self.centred()
        return c_aa / (self.n - ddof), c_bb / (self.n - ddof)

    def corr(self) -> float | None:
        """Pearson correlation of ``a`` and ``b``; ``None`` if either is constant or n < 2."""
        if self.n < 2:
            return None
        c_aa, c_bb, c_ab = self.centred()
        if c_aa <= 0.0 or c_bb <= 0.0:
            return None
        r = c_ab / math.sqrt(c_aa * c_bb)
        return min(1.0, max(-1.0, r))

    def ols(self) -> OlsFit | None:
        """OLS of ``a`` on ``[1, b]`` over the window. O(1) (O(W) only when R^2 ~ 1).

        Returns:
            The fit, or ``None`` if ``n < 2`` or ``b`` is constant (slope undefined).
        """
        n = self.n
        if n < 2:
            return None
        c_aa, c_bb, c_ab = self.centred()
        if c_bb <= 0.0:
            return None
        beta = c_ab / c_bb
        mean_a, mean_b = self.means()
        alpha = mean_a - beta * mean_b
        ssr = c_aa - beta * c_ab
        if ssr < SSR_GUARD_REL * c_aa:
            # Near-perfect fit: the subtraction above lost most digits; do it directly.
            import numpy as np

            ssr = float(np.sum(np.square(self.residuals(beta))))
        ssr = max(ssr, 0.0)
        rsq = None if c_aa <= 0.0 else 1.0 - ssr / c_aa
        return OlsFit(alpha, beta, ssr, c_aa, rsq, mean_a, mean_b, n)

    def deviations(self) -> tuple[np.ndarray, np.ndarray]:
        """Window values minus their means, ``(a - mean_a, b - mean_b)`` (new arrays). O(W).

        Computed as ``(value - anchor) - S/n``: the first difference is exact for
        values near the anchor, so small deviations on large levels (log prices ~11
        moving by 1e-7) keep their relative precision.
        """
        wa, wb = self.window()
        n = self.n
        return (wa - self.anchor_a) - self.s_a / n, (wb - self.anchor_b) - self.s_b / n

    def last_deviation(self) -> tuple[float, float]:
        """The newest pair minus the window means, as precise as :meth:`deviations`."""
        a, b = self.last()
        n = self.n
        return (a - self.anchor_a) - self.s_a / n, (b - self.anchor_b) - self.s_b / n

    def residuals(self, beta: float) -> np.ndarray:
        """OLS residuals ``a - alpha - beta * b`` over the window (a new array), O(W).

        Computed as ``(a - mean_a) - beta * (b - mean_b)`` from :meth:`deviations`,
        i.e. with the intercept ``alpha = mean_a - beta * mean_b`` in exact
        arithmetic. Plugging in the rounded float ``alpha`` instead would add a
        constant of up to half an ulp of the level (~1e-15 for log prices ~8), which
        matters when the residuals themselves are that small.
        """
        # deviations(), inlined (the same operations, without its read-only views).
        n = self.n
        h = self.head
        va, vb = self.views()
        da = (va[h : h + n] - self.anchor_a) - self.s_a / n
        db = (vb[h : h + n] - self.anchor_b) - self.s_b / n
        db *= beta
        da -= db
        return da


RollingScalars = tuple[int, int, float, float, float, float, float, float, float, float, float, int]
"""``(head, n, anchor_a, anchor_b, s_a, s_b, s_aa, s_bb, s_ab, mass_a, mass_b, since)``."""


_SCALAR_FIELDS = (
    "head", "n", "anchor_a", "anchor_b", "s_a", "s_b", "s_aa", "s_bb", "s_ab",
    "mass_a", "mass_b", "since",
)  # fmt: skip
"""The fields of a :data:`RollingScalars` tuple, in order."""

_get_scalars = attrgetter(*_SCALAR_FIELDS)


def scalars(roll: RollingPair) -> RollingScalars:
    """Everything of ``roll`` but its buffer (O(1)); see :func:`restore`."""
    return cast("RollingScalars", _get_scalars(roll))


def restore(
    roll: RollingPair, saved: RollingScalars, window_a: list[float], window_b: list[float]
) -> None:
    """Put ``roll`` back in the exact state :func:`scalars` saved. O(W).

    Args:
        roll: The window to overwrite (same ``capacity``/``recompute_every``).
        saved: :func:`scalars` at that time.
        window_a: The window's ``a`` values then, oldest first (``saved`` ``n`` long).
        window_b: The same for ``b``.

    Later pushes then produce bit-identical sums to the original run (the sums, the
    anchor, the recompute counter and the ring layout are all restored).
    """
    for name, value in zip(_SCALAR_FIELDS, saved, strict=True):
        setattr(roll, name, value)
    cap = roll.capacity
    n = roll.n
    if len(window_a) != n or len(window_b) != n:
        msg = f"restore: window of {len(window_a)}/{len(window_b)} values for n={n}"
        raise ValueError(msg)
    # Value k of the window sits at (head + k) % cap and cap further: at most two runs.
    # Only non-empty, equal-length slice assignments: an array exporting its buffer to
    # numpy views (RollingPair.views) refuses any other (even an empty one).
    head = roll.head
    first = min(n, cap - head)
    rest = n - first
    for buf, window in ((roll.buf_a, window_a), (roll.buf_b, window_b)):
        vals = array("d", window)
        if first:
            buf[head : head + first] = buf[head + cap : head + cap + first] = vals[:first]
        if rest:
            buf[:rest] = buf[cap : cap + rest] = vals[first:]
