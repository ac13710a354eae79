"""The z-score signal state machine, pure: analytics rows in, signals out.

One position per ``(pair, tf)``: flat → ``short_spread`` when z > entry, ``long_spread``
when z < -entry; an open short exits (``exit``) when z falls below +exit, an open
long when z rises above -exit; a jump straight across to the other entry level flips
the position (a single ``long_spread`` / ``short_spread``). A ``None`` z-score changes
nothing. ``pairflow.strategies`` will replace it; the interface stays "a position in,
a row in → the new position and the signal it fires".

The position is a plain ``int``, so the pair operator keeps it per grid point and
re-runs the machine from any point after an amendment (:func:`retract_from` is the
record that removes the signals that no longer hold).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pairflow.records import AnalyticsRow, RetractFrom, Signal

SHORT_SPREAD = "short_spread"
LONG_SPREAD = "long_spread"
EXIT = "exit"

DEFAULT_STRATEGY = "default"
"""``signals.strategy`` of these signals (docs/design.md "Strategies": the default strategy)."""


@dataclass(frozen=True)
class SignalRule:
    """Entry/exit thresholds of the state machine.

    Attributes:
        entry_z: |z| above which a position opens.
        exit_z: |z| inside which an open position exits (``<= entry_z``).
        strategy: Strategy name written with the signals.

    Raises:
        ValueError: if ``exit_z > entry_z``.
    """

    entry_z: float = 2.0
    exit_z: float = 0.5
    strategy: str = DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        """Validate the thresholds."""
        if self.exit_z > self.entry_z:
            msg = f"exit_z ({self.exit_z}) must not exceed entry_z ({self.entry_z})"
            raise ValueError(msg)

    def step(self, position: int, z: float | None) -> tuple[int, str | None]:
        """One decision: ``(new position, signal kind or None)``."""
        if z is None:
            return position, None
        if z > self.entry_z and position != -1:
            return -1, SHORT_SPREAD
        if z < -self.entry_z and position != 1:
            return 1, LONG_SPREAD
        if (position == -1 and z < self.exit_z) or (position == 1 and z > -self.exit_z):
            return 0, EXIT
        return position, None

    def signal(self, row: AnalyticsRow, kind: str) -> Signal:
        """The ``signals`` record of ``kind`` fired at ``row``."""
        assert row.zscore is not None
        return Signal(row.pair, row.tf, row.ts_ms, kind, row.zscore, self.strategy)


def run_signals(
    rule: SignalRule, rows: Iterable[AnalyticsRow], position: int = 0
) -> tuple[list[Signal], int]:
    """Run the machine over ``rows`` in grid order from ``position``.

    Returns:
        The signals fired and the final position.
    """
    out: list[Signal] = []
    for row in rows:
        position, kind = rule.step(position, row.zscore)
        if kind is not None:
            out.append(rule.signal(row, kind))
    return out, position


def retract_from(rule: SignalRule, pair: str, tf: str, from_ms: int) -> RetractFrom:
    """Delete this rule's signals of ``(pair, tf)`` at or after ``from_ms`` (before re-emitting)."""
    return RetractFrom("signals", (rule.strategy, pair, tf), from_ms)
