"""Validators for ``PAIRFLOW_*`` values shared by the common and the per-source settings.

Each raises :class:`~pairflow.errors.ConfigError` naming the setting and the fix.
"""

from __future__ import annotations

import math

from pairflow.errors import ConfigError


def parse_number(name: str, text: str, *, minimum: float, integer: bool = False) -> float:
    """``text`` as a finite number ``>= minimum`` (a whole number if ``integer``).

    Raises:
        ConfigError: naming ``PAIRFLOW_{name}``, the expected kind and the value.
    """
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = math.nan
    if not (value >= minimum) or math.isinf(value):
        kind = "a whole number" if integer else "a number"
        msg = f"PAIRFLOW_{name} must be {kind} >= {minimum}, got {text!r}"
        raise ConfigError(msg)
    return value


def parse_flag(name: str, text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off/''`` (any case).

    Raises:
        ConfigError: for anything else.
    """
    low = text.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    msg = f"PAIRFLOW_{name} must be 1 or 0 (true/false), got {text!r}"
    raise ConfigError(msg)


def parse_url(name: str, text: str, schemes: tuple[str, ...]) -> str:
    """A base URL with one of ``schemes``, without a trailing ``/``.

    Raises:
        ConfigError: when the scheme is not one of ``schemes``.
    """
    url = text.strip().rstrip("/")
    if not url.startswith(tuple(f"{s}://" for s in schemes)):
        msg = f"PAIRFLOW_{name} must start with {' or '.join(schemes)}://, got {text!r}"
        raise ConfigError(msg)
    return url
