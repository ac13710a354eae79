"""Kalman-filter hedge ratio of one pair: a random-walk [beta, alpha] state (docs/design.md).

Pure functions on a small immutable state (no Bytewax, no I/O). docs/design.md "Hedge models:
rolling OLS and Kalman" is the contract:

* :func:`kalman_init` starts the filter from the first analytics window (the ``W`` log
  closes ``y``, ``x`` ending at grid index ``W - 1``): ``theta = [beta, alpha]`` of the
  OLS of ``y`` on ``[x, 1]``, ``P = C = s^2 (X'X)^-1`` with ``s^2 = RSS / (W - 2)``,
  ``Ve = s^2`` and ``Vw = delta * C``. That first row reports ``beta``/``alpha`` =
  the OLS values and a NULL spread and z-score.
* :func:`kalman_step` adds one later grid point ``(y, x)`` (log closes)::

      R = P + Vw;  h = [x, 1];  e = y - h.theta;  Q = h R h' + Ve;  K = R h' / Q
      theta += K e;  P = R - K h R

  and reports ``beta = theta[0]``, ``alpha = theta[1]``, ``spread = e`` and
  ``zscore = e / sqrt(Q)``. This is statsmodels' ``tsa.statespace`` Kalman filter with
  design ``[x_t, 1]``, identity transition, ``state_cov = Vw``, ``obs_cov = Ve`` and a
  known initialisation ``a1 = theta``, ``P1 = (1 + delta) C`` (statsmodels' ``a1, P1``
  are the *predicted* state of the first later point, i.e. ``R`` above); the tests
  hold the two equal to 1e-8 (statsmodels run in the centred coordinates of
  :class:`KalmanState`, an exact reparametrisation) and to a 60-digit decimal run of
  the literal recursion to 1e-9.

The 2x2 algebra is written out on plain Python floats (``P`` and ``Vw`` are symmetric,
so three numbers each) and the state is a ``NamedTuple``: measured with ``timeit`` on
the development machine, one :func:`kalman_step` takes ~2.8 µs against ~20 µs for the
same update on 2x2 numpy arrays (numpy's per-call overhead dominates at this size).
O(1) per grid point. Internally the state is centred at the first window's mean
``x`` for accuracy (see :class:`KalmanState`); outputs are docs/design.md's ``theta`` values.

Restartability: a :class:`KalmanState` is an immutable value. Keep the state of grid
point ``t - 1`` and re-running :func:`kalman_step` from it over amended points gives
exactly what a fresh run over the amended series gives.

Edge cases (never NaN or inf):

* :func:`kalman_init` returns ``None`` when the window has fewer than 3 points, any
  non-finite value, a (numerically) constant ``x``, or ``s^2 = 0`` (``y`` exactly linear
  in ``x``: ``Ve = 0`` and ``C = 0`` leave nothing to filter). The caller writes NULL
  Kalman columns and may try again from a later window.
* :func:`kalman_step` on a non-finite ``y``/``x``, or if ``Q`` is not a positive finite
  number (only possible through overflow), returns the state unchanged and a
  :class:`KalmanOut` with the current ``beta``/``alpha`` and NULL ``spread``/``zscore``.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

_TINY_REL = 1e3 * sys.float_info.epsilon  # np.finfo(np.double).eps, without numpy
"""A centred sum of squares below ``n * (this * level)^2`` is rounding noise: zero."""


class KalmanState(NamedTuple):
    """Filtered state after one grid point; an immutable, picklable value.

    A ``NamedTuple`` rather than a frozen dataclass: one is made per grid point and
    tuple construction is ~2x cheaper than a frozen dataclass's ``__init__``
    (measured: it is most of the cost of :func:`kalman_step`).

    Stored in *centred* coordinates ``phi = [beta, level]`` with
    ``level = alpha + beta * c`` and ``c`` the mean ``x`` of the first window, i.e. the
    same filter with design ``[x - c, 1]``. That is an exact linear change of state
    (``phi = A theta``, ``A = [[1, 0], [c, 1]]``), so in exact arithmetic every output
    equals the ``theta = [beta, alpha]`` filter of docs/design.md; but log prices sit far from
    0 and move little (``x ~ 7.8 +- 0.001``), which makes ``P`` in ``theta``
    coordinates nearly singular (``beta`` and ``alpha`` almost perfectly
    correlated) and costs float64 ~6 digits per step there. Centred, ``C`` is
    diagonal and the filter stays accurate to ~1e-12 of a 60-digit reference.
    :attr:`alpha`, :attr:`p` and :attr:`vw` give the ``theta``-coordinate values.

    Attributes:
        beta: ``theta[0] = phi[0]``, the hedge ratio (d log Y / d log X).
        level: ``phi[1] = alpha + beta * c`` (log units).
        c: The centring constant (mean log X of the first window).
        p00: ``P_phi[0, 0]``, variance of ``beta``.
        p01: ``P_phi[0, 1] = P_phi[1, 0]``.
        p11: ``P_phi[1, 1]``, variance of ``level``.
        ve: Observation noise variance ``Ve`` (log units squared).
        w00: ``Vw_phi[0, 0]`` (state noise per grid step, ``A delta C A'``).
        w01: ``Vw_phi[0, 1] = Vw_phi[1, 0]``.
        w11: ``Vw_phi[1, 1]``.
    """

    beta: float
    level: float
    c: float
    p00: float
    p01: float
    p11: float
    ve: float
    w00: float
    w01: float
    w11: float

    @property
    def alpha(self) -> float:
        """``theta[1]``, the intercept of ``y = alpha + beta x`` (log units)."""
        return self.level - self.c * self.beta

    @property
    def p(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``P`` in ``theta = [beta, alpha]`` coordinates, a nested 2x2 tuple."""
        return _to_theta(self.c, self.p00, self.p01, self.p11)

    @property
    def vw(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``Vw = delta C`` in ``theta`` coordinates, a nested 2x2 tuple."""
        return _to_theta(self.c, self.w00, self.w01, self.w11)


def _to_theta(
    c: float, m00: float, m01: float, m11: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``A^-1 M A^-T`` for ``A^-1 = [[1, 0], [-c, 1]]`` (centred → ``theta`` coordinates)."""
    t01 = m01 - c * m00
    t11 = m11 - 2.0 * c * m01 + c * c * m00
    return ((m00, t01), (t01, t11))


class KalmanOut(NamedTuple):
    """What one grid point reports (the ``analytics.kalman_*`` columns).

    A ``NamedTuple`` for the same reason as :class:`KalmanState`.

    Attributes:
        beta: ``kalman_beta``, filtered hedge ratio after the point.
        alpha: ``kalman_alpha``, filtered intercept after the point.
        spread: ``kalman_spread``, the one-step prediction error ``e`` (log units);
            ``None`` on the first row and on a skipped point.
        zscore: ``kalman_zscore = e / sqrt(Q)``; ``None`` where ``spread`` is.
    """

    beta: float
    alpha: float
    spread: float | None
    zscore: float | None


def kalman_init(y_window: np.ndarray, x_window: np.ndarray, delta: float) -> KalmanState | None:
    """State at the first analytics row from that window's OLS (docs/design.md).

    Args:
        y_window: The window's ``W`` log closes of leg Y, oldest first.
        x_window: The window's ``W`` log closes of leg X, oldest first.
        delta: ``PAIRFLOW_KALMAN_DELTA``: ``Vw = delta * C`` (>= 0, finite).

    Returns:
        The state (``theta`` = OLS ``[beta, alpha]``, ``P = C``, ``Ve = s^2``,
        ``Vw = delta C``), or ``None`` if the window has fewer than 3 points, a
        non-finite value, a constant ``x`` or ``s^2 = 0`` (see the module docstring).

    Raises:
        ValueError: if the windows differ in length or ``delta`` is negative or not
            finite.
    """
    if not (math.isfinite(delta) and delta >= 0.0):
        msg = f"kalman delta must be a finite number >= 0, got {delta}"
        raise ValueError(msg)
    import numpy as np  # here, not at the top: making a KalmanHedge needs no numpy

    y = np.asarray(y_window, dtype=np.float64)
    x = np.asarray(x_window, dtype=np.float64)
    if y.shape != x.shape or y.ndim != 1:
        msg = f"y and x windows must be 1-d and equally long, got {y.shape} and {x.shape}"
        raise ValueError(msg)
    n = y.shape[0]
    if n < 3 or not (np.isfinite(y).all() and np.isfinite(x).all()):
        return None
    xm = float(x.mean())
    ym = float(y.mean())
    xc = x - xm
    yc = y - ym
    sxx = float(xc @ xc)
    if not sxx > n * (_TINY_REL * max(abs(xm), 1.0)) ** 2:
        return None
    beta = float(xc @ yc) / sxx
    resid = yc - beta * xc
    s2 = float(resid @ resid) / (n - 2)
    if not s2 > (_TINY_REL * max(abs(ym), 1.0)) ** 2:
        return None
    # Centred at c = xm: (X'X)^-1 with X rows [x - c, 1] is diag(1/sxx, 1/n), so
    # C_phi = s2 diag(1/sxx, 1/n); theta-coordinate C = A^-1 C_phi A^-T (see KalmanState).
    c00 = s2 / sxx
    c11 = s2 / n
    return KalmanState(
        beta=beta,
        level=ym,
        c=xm,
        p00=c00,
        p01=0.0,
        p11=c11,
        ve=s2,
        w00=delta * c00,
        w01=0.0,
        w11=delta * c11,
    )


def kalman_first_out(state: KalmanState) -> KalmanOut:
    """The first row's outputs: the OLS ``beta``/``alpha``, NULL spread and z-score."""
    return KalmanOut(state.beta, state.alpha, None, None)


def kalman_step(state: KalmanState, y: float, x: float) -> tuple[KalmanState, KalmanOut]:
    """Filter one later grid point; O(1) on Python floats.

    Args:
        state: The state after the previous grid point (not modified).
        y: Log close of leg Y at this point.
        x: Log close of leg X at this point.

    Returns:
        ``(new_state, out)``. On a non-finite input or a non-positive/non-finite ``Q``
        the state is returned unchanged with NULL ``spread``/``zscore``.
    """
    beta = state.beta
    level = state.level
    c = state.c
    r00 = state.p00 + state.w00
    r01 = state.p01 + state.w01
    r11 = state.p11 + state.w11
    xc = x - c  # h = [x - c, 1] in centred coordinates
    e = y - (beta * xc + level)
    rh0 = r00 * xc + r01  # R h'
    rh1 = r01 * xc + r11
    q = xc * rh0 + rh1 + state.ve
    if not (q > 0.0 and math.isfinite(q) and math.isfinite(e)):
        return state, KalmanOut(beta, level - c * beta, None, None)
    k0 = rh0 / q
    k1 = rh1 / q
    beta += k0 * e
    level += k1 * e
    new = KalmanState(  # positional: the fields' order
        beta,
        level,
        c,
        r00 - k0 * rh0,
        r01 - k0 * rh1,
        r11 - k1 * rh1,
        state.ve,
        state.w00,
        state.w01,
        state.w11,
    )
    return new, KalmanOut(beta, level - c * beta, e, e / math.sqrt(q))


def kalman_run(
    y: np.ndarray, x: np.ndarray, window: int, delta: float
) -> tuple[KalmanState | None, list[KalmanOut | None]]:
    """Run the filter over whole series the way the flow does (a convenience for tests/tools).

    Args:
        y: Log closes of leg Y on the grid, oldest first.
        x: Log closes of leg X on the grid.
        window: ``W``; the filter starts at index ``W - 1`` from the first window.
        delta: ``Vw = delta * C``.

    Returns:
        ``(last_state, outs)`` with one entry per index ``>= W - 1`` (``None`` entries,
        and a ``None`` state, when :func:`kalman_init` declined the first window).
    """
    n = len(y)
    if n < window:
        return None, []
    state = kalman_init(y[:window], x[:window], delta)
    if state is None:
        return None, [None] * (n - window + 1)
    outs: list[KalmanOut | None] = [kalman_first_out(state)]
    for yi, xi in zip(y[window:].tolist(), x[window:].tolist(), strict=True):
        state, out = kalman_step(state, yi, xi)
        outs.append(out)
    return state, outs
