"""Operators: pure stream logic (parsing, bars, pair analytics). No I/O here."""
