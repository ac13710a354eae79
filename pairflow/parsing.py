"""Validators for ``PAIRFLOW_*`` values shared by the common and the per-source settings.

Each raises :class:`~pairflow.errors.ConfigError` naming the setting and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Collection

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


def parse_assignments(
    name: str, text: str, keys: Collection[str], form: tuple[str, str], example: str = ""
) -> list[tuple[str, str]]:
    """Split ``key=value,key=value`` into ``(key, value)`` pairs; empty items are skipped.

    Args:
        name: The setting without ``PAIRFLOW_`` (named in the error).
        text: The setting's value.
        keys: The accepted keys, in the order the error lists them.
        form: What a key and a value stand for in the error (``("TF", "W")``).
        example: A valid value, shown in the error when given.

    Returns:
        The pairs in the order given, keys stripped, values as written.

    Raises:
        ConfigError: on an item that is not ``key=value`` with a known key.
    """
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            hint = f" (e.g. {example})" if example else ""
            msg = (
                f"PAIRFLOW_{name}: {item.strip()!r} is not {form[0]}={form[1]} with {form[0]} "
                f"one of {', '.join(keys)}{hint}"
            )
            raise ConfigError(msg)
        pairs.append((key, value))
    return pairs
