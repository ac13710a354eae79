"""Errors a user can hit, each with a message that says what to do."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says how to fix it."""
