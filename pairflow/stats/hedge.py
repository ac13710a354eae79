"""Hedge-ratio models behind one small interface (Bytewax ``Clock``/``Windower`` style).

A :class:`HedgeModel` is a picklable *description* (its parameters); the state it
works on is a separate value it returns, so the pair operator can keep one state per
grid point and restart the model from any of them after an amendment (docs/design.md
"Amendments"). Two calls:

* ``init(y_window, x_window)`` at the first analytics row (grid index ``W - 1``),
  with that window's log closes: ``(state, out)``. A ``None`` state means the window
  cannot start the model (e.g. a constant leg); the operator calls ``init`` again at
  the next row.
* ``update(state, y, x)`` at each later grid point (log closes): ``(new_state, out)``.
  ``update`` must not mutate ``state``.

``out`` is a :class:`HedgeOut` ``(alpha, beta, spread, zscore)``, each a finite float
or ``None``. The analytics row writes a model's outputs as ``{name}_alpha`` ... columns.

:class:`KalmanHedge` wraps :mod:`pairflow.stats.kalman`; :class:`OlsHedge` is the
rolling-window OLS of docs/design.md "Analytics definitions" behind the same interface (the
analytics operator computes its own OLS columns together with the tests from one
:class:`~pairflow.stats.rolling.RollingPair`; ``OlsHedge`` is for strategies, tools
and tests that want "a hedge model").

Importing this module, and making a model, imports no numpy (a pair state holds its
models from its first bar on; numpy loads with the first window, :func:`~pairflow.
stats.kalman.kalman_init`).
"""

from __future__ import annotations

import copy
import math
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pairflow.stats.kalman import KalmanState, kalman_first_out, kalman_init, kalman_step
from pairflow.stats.rolling import RollingPair

if TYPE_CHECKING:
    import numpy as np


class HedgeOut(NamedTuple):
    """One grid point's outputs of a hedge model (``None`` = undefined)."""

    alpha: float | None
    beta: float | None
    spread: float | None
    zscore: float | None


NO_OUT = HedgeOut(None, None, None, None)
"""What a model that has not started reports."""


class HedgeModel(Protocol):
    """A hedge-ratio model: parameters here, state passed in and out (see module doc)."""

    @property
    def name(self) -> str:
        """Column prefix in ``analytics`` (``kalman`` → ``kalman_alpha`` ...)."""
        ...

    def init(self, y_window: np.ndarray, x_window: np.ndarray) -> tuple[Any | None, HedgeOut]:
        """Start on the first window (log closes, oldest first)."""
        ...

    def update(self, state: Any, y: float, x: float) -> tuple[Any, HedgeOut]:
        """Add one grid point (log closes) to ``state`` (not mutated)."""
        ...


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class KalmanHedge:
    """docs/design.md "Hedge models: rolling OLS and Kalman" (random-walk ``[beta, alpha]``).

    Attributes:
        delta: ``PAIRFLOW_KALMAN_DELTA``: state noise ``Vw = delta * C``.
        name: Column prefix.
    """

    delta: float = 0.01
    name: str = "kalman"

    def init(
        self, y_window: np.ndarray, x_window: np.ndarray
    ) -> tuple[KalmanState | None, HedgeOut]:
        """:func:`~pairflow.stats.kalman.kalman_init`; the row reports the OLS beta/alpha."""
        state = kalman_init(y_window, x_window, self.delta)
        if state is None:
            return None, NO_OUT
        out = kalman_first_out(state)
        return state, HedgeOut(_finite(out.alpha), _finite(out.beta), None, None)

    def update(self, state: KalmanState, y: float, x: float) -> tuple[KalmanState, HedgeOut]:
        """:func:`~pairflow.stats.kalman.kalman_step` (O(1), the state is immutable)."""
        new, out = kalman_step(state, y, x)
        return new, HedgeOut(
            _finite(out.alpha), _finite(out.beta), _finite(out.spread), _finite(out.zscore)
        )


@dataclass(frozen=True)
class OlsHedge:
    """Rolling OLS of ``y`` on ``[1, x]`` over the last ``window`` points.

    ``spread`` = the newest residual, ``zscore`` = it over the residuals' std (ddof=1),
    as in docs/design.md "Analytics definitions". The state is a
    :class:`~pairflow.stats.rolling.RollingPair`; ``update`` copies it (O(W) memory
    copy, a few µs) so that states stay values.

    Attributes:
        window: ``W``.
        name: Column prefix.
    """

    window: int
    name: str = "ols"

    def init(self, y_window: np.ndarray, x_window: np.ndarray) -> tuple[RollingPair, HedgeOut]:
        """Fill a fresh window with the points."""
        import numpy as np

        roll = RollingPair.create(self.window)
        for a, b in zip(np.asarray(y_window).tolist(), np.asarray(x_window).tolist(), strict=True):
            roll.push(a, b)
        return roll, self._out(roll)

    def update(self, state: RollingPair, y: float, x: float) -> tuple[RollingPair, HedgeOut]:
        """Push one point into a copy of the window."""
        roll = copy.copy(state)
        roll.buf_a = array("d", state.buf_a)
        roll.buf_b = array("d", state.buf_b)
        roll.push(y, x)
        return roll, self._out(roll)

    @staticmethod
    def _out(roll: RollingPair) -> HedgeOut:
        fit = roll.ols()
        if fit is None:
            return NO_OUT
        dy, dx = roll.last_deviation()
        spread = dy - fit.beta * dx
        z = None
        if fit.n > 1 and fit.ssr > 0.0:
            z = spread / math.sqrt(fit.ssr / (fit.n - 1))
        return HedgeOut(_finite(fit.alpha), _finite(fit.beta), _finite(spread), _finite(z))
