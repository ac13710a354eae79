"""Strategy parameters: parse ``PAIRFLOW_STRATEGIES`` (docs/design.md "Strategies and paper PnL").

Text form: ``;``-separated ``name:key=value,...``, e.g.
``default:model=ols,entry=2,exit=0.5,stop=4,max_hold=0,fee_bps=10,notional=10000;k:model=kalman``.
Missing keys take their defaults (``entry``/``exit`` from the caller's
``PAIRFLOW_ENTRY_Z``/``PAIRFLOW_EXIT_Z``); empty text means the one ``default``
strategy. Every mistake raises :class:`ValueError` whose message names the strategy,
the key and what would be accepted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

MODELS = ("ols", "kalman")
"""Hedge models a strategy can trade on."""

KEYS = ("model", "entry", "exit", "stop", "max_hold", "fee_bps", "notional")
"""Keys of one strategy's ``key=value`` list."""

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""A strategy name: 1-32 of ``A-Z a-z 0-9 _ -``."""

DEFAULT_NAME = "default"
ENV = "PAIRFLOW_STRATEGIES"


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """One validated strategy.

    Attributes:
        name: Strategy name (``[A-Za-z0-9_-]{1,32}``), the key of its table rows.
        model: ``ols`` (trades ``zscore``/``beta``) or ``kalman``
            (``kalman_zscore``/``kalman_beta``).
        entry: Enter when ``|z|`` exceeds this (> 0).
        exit: Exit when ``z`` crosses back inside ``+-exit`` (``0 <= exit < entry``).
        stop: Stop out when ``|z|`` exceeds this against the position; 0 = off, else
            ``> entry``.
        max_hold: Exit (``time``) after this many grid steps held; 0 = off.
        fee_bps: Fee per fill in basis points of the traded gross notional (>= 0).
        notional: Quote notional of the Y leg per trade (> 0).
    """

    name: str
    model: str = "ols"
    entry: float = 2.0
    exit: float = 0.5
    stop: float = 4.0
    max_hold: int = 0
    fee_bps: float = 10.0
    notional: float = 10_000.0

    @property
    def z_column(self) -> str:
        """The ``analytics`` column of the model's z-score."""
        return "zscore" if self.model == "ols" else "kalman_zscore"

    @property
    def beta_column(self) -> str:
        """The ``analytics`` column of the model's hedge ratio."""
        return "beta" if self.model == "ols" else "kalman_beta"

    def params_json(self) -> str:
        """Canonical JSON of the parameters (not the name) for ``strategies.params``.

        Keys sorted, no spaces, floats as floats and ``max_hold`` as an int, so equal
        parameters always give the same text.
        """
        return json.dumps(
            {
                "model": self.model,
                "entry": float(self.entry),
                "exit": float(self.exit),
                "stop": float(self.stop),
                "max_hold": int(self.max_hold),
                "fee_bps": float(self.fee_bps),
                "notional": float(self.notional),
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def _fail(name: str | None, text: str) -> ValueError:
    where = f"strategy {name!r}: " if name is not None else ""
    return ValueError(f"{ENV}: {where}{text}")


def _float(name: str, key: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _fail(name, f"{key}={text!r} is not a number") from None
    if not math.isfinite(v):
        raise _fail(name, f"{key}={text!r} must be a finite number")
    return v


def validate(p: StrategyParams) -> StrategyParams:
    """Check one strategy's values; return it unchanged.

    Raises:
        ValueError: naming the offending key and the accepted range.
    """
    n = p.name
    if not NAME_RE.fullmatch(n):
        raise _fail(None, f"bad strategy name {n!r}: use 1-32 of A-Z a-z 0-9 _ -")
    if p.model not in MODELS:
        raise _fail(n, f"model={p.model!r} is unknown; use one of {', '.join(MODELS)}")
    for key in ("entry", "exit", "stop", "fee_bps", "notional"):
        v = getattr(p, key)
        if not math.isfinite(v):
            raise _fail(n, f"{key}={v} must be a finite number")
    if not p.entry > 0:
        raise _fail(n, f"entry={p.entry} must be > 0")
    if p.exit < 0:
        raise _fail(n, f"exit={p.exit} must be >= 0")
    if p.exit >= p.entry:
        raise _fail(n, f"exit ({p.exit}) must be below entry ({p.entry})")
    if p.stop != 0 and not p.stop > p.entry:
        raise _fail(n, f"stop={p.stop} must be 0 (off) or above entry ({p.entry})")
    if p.max_hold < 0:
        raise _fail(n, f"max_hold={p.max_hold} must be a whole number of grid steps >= 0")
    if p.fee_bps < 0:
        raise _fail(n, f"fee_bps={p.fee_bps} must be >= 0")
    if not p.notional > 0:
        raise _fail(n, f"notional={p.notional} must be > 0")
    return p


def _parse_one(part: str, entry_z: float, exit_z: float) -> StrategyParams:
    name, sep, body = part.partition(":")
    name = name.strip()
    if not sep and "=" in name:
        raise _fail(None, f"{part!r} has no name; write name:key=value,...")
    if not NAME_RE.fullmatch(name):
        raise _fail(None, f"bad strategy name {name!r}: use 1-32 of A-Z a-z 0-9 _ -")
    values: dict[str, str] = {}
    for raw in body.split(","):
        item = raw.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key:
            raise _fail(name, f"{item!r} is not key=value")
        if key not in KEYS:
            raise _fail(name, f"unknown key {key!r}; keys are {', '.join(KEYS)}")
        if key in values:
            raise _fail(name, f"{key} is given twice")
        values[key] = value
    max_hold_text = values.get("max_hold", "0")
    try:
        max_hold = int(max_hold_text)
    except ValueError:
        raise _fail(
            name, f"max_hold={max_hold_text!r} must be a whole number of grid steps >= 0"
        ) from None
    params = StrategyParams(
        name=name,
        model=values.get("model", "ols").lower(),
        entry=_float(name, "entry", values["entry"]) if "entry" in values else float(entry_z),
        exit=_float(name, "exit", values["exit"]) if "exit" in values else float(exit_z),
        stop=_float(name, "stop", values.get("stop", "4")),
        max_hold=max_hold,
        fee_bps=_float(name, "fee_bps", values.get("fee_bps", "10")),
        notional=_float(name, "notional", values.get("notional", "10000")),
    )
    return validate(params)


def parse_strategies(
    text: str | None, *, entry_z: float = 2.0, exit_z: float = 0.5
) -> tuple[StrategyParams, ...]:
    """Parse ``PAIRFLOW_STRATEGIES``.

    Args:
        text: The setting; ``None``/blank (or only ``;``) means the one ``default``
            strategy. Empty
            ``;`` parts (a trailing ``;``) are ignored; a part may be a bare name
            (all defaults). Keys and ``model`` values are case-insensitive.
        entry_z: ``PAIRFLOW_ENTRY_Z``, the default ``entry``.
        exit_z: ``PAIRFLOW_EXIT_Z``, the default ``exit``.

    Returns:
        The strategies in the order given.

    Raises:
        ValueError: on a bad name, a duplicate name, an unknown or repeated key, a
            value that is not a number, an unknown model, ``exit >= entry``, a
            ``stop`` that is neither 0 nor above ``entry``, a negative ``max_hold``
            or ``fee_bps``, or a non-positive ``notional``.
    """
    if text is None or not text.strip():
        return (_parse_one(DEFAULT_NAME, entry_z, exit_z),)
    out: list[StrategyParams] = []
    seen: set[str] = set()
    for part in text.split(";"):
        if not part.strip():
            continue
        p = _parse_one(part, entry_z, exit_z)
        if p.name in seen:
            raise _fail(None, f"strategy name {p.name!r} appears twice; names must be unique")
        seen.add(p.name)
        out.append(p)
    if not out:  # only separators
        return (_parse_one(DEFAULT_NAME, entry_z, exit_z),)
    return tuple(out)
