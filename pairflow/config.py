"""Typed settings from ``PAIRFLOW_*`` environment variables and ``pairflow.toml``.

Precedence: environment variable > ``pairflow.toml`` > default. The TOML file is
``$PAIRFLOW_CONFIG`` if set, else ``./pairflow.toml`` if it exists; it may use the
environment names (``PAIRFLOW_SOURCE = "synthetic"``) or the short lower-case ones
(``source = "synthetic"``). Everything is validated once, at start-up, and a bad
value raises :class:`ConfigError` with a message that says what to do.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from pairflow.errors import ConfigError
from pairflow.parsing import parse_assignments, parse_number, parse_url
from pairflow.strategies.params import StrategyParams, parse_strategies
from pairflow.timeutil import TF_MS
from sources.registry import (
    BINANCE_REST_DEFAULT,
    BINANCE_REST_MARKET_DATA_ONLY,
    BINANCE_WS_DEFAULT,
    BINANCE_WS_MARKET_DATA_ONLY,
    BinanceConfig,
    SourceConfig,
    parse_source,
    source_keys,
)

__all__ = [
    "BINANCE_REST_DEFAULT",
    "BINANCE_REST_MARKET_DATA_ONLY",
    "BINANCE_WS_DEFAULT",
    "BINANCE_WS_MARKET_DATA_ONLY",
    "DEFAULTS",
    "SYMBOL_RE",
    "ConfigError",
    "Settings",
    "load_settings",
    "redact_url",
]

SYMBOL_RE = re.compile(r"^[A-Z0-9_]{2,32}$")
"""Binance symbol names: A-Z, 0-9 and ``_`` (e.g. ``BTCUSD_PERP``)."""

COMMON_DEFAULTS: dict[str, str] = {
    "SOURCE": "binance",
    "SYMBOLS": "BTCUSDT,ETHUSDT",
    "PAIRS": "",
    "DB": "data/quant_data.db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_MAXLEN": "1000000",
    "REDIS_PREFIX": "",
    "WINDOWS": "1s=300,1m=120,5m=60",
    "SCAN_EVERY": "1s=60,1m=1,5m=1",
    "ENTRY_Z": "2.0",
    "EXIT_Z": "0.5",
    "PVALUE_EVERY": "1",
    "BAR_GRACE_MS": "300",
    "DB_FLUSH_MS": "750",
    "DB_BATCH_ROWS": "5000",
    "EPOCH_MS": "200",
    "STATS_EVERY_S": "5",
    "STRATEGIES": "",
    "KALMAN_DELTA": "0.01",
    "COMPILED": "auto",
    "GC_THRESHOLDS": "50000,20,100",
    "SWITCH_INTERVAL_MS": "1",
}
"""Defaults of the settings every run has, by name without the ``PAIRFLOW_`` prefix."""

DEFAULTS: dict[str, str] = {**COMMON_DEFAULTS, **source_keys()}
"""Default of every setting (common and per source kind), without the prefix."""


@dataclass(frozen=True)
class Settings:
    """Validated pairflow configuration. Build with :func:`load_settings`.

    Attributes:
        source: The typed settings of the input (see :mod:`sources.registry`).
        symbols: Upper-case symbols to accept; anything else is rejected.
        pairs: ``(Y, X)`` pairs to analyse.
        db_path: DuckDB file.
        redis_url: Redis URL for the tick tee, or ``None`` for no tee.
        redis_maxlen: Approximate cap of each ``ticks:{SYMBOL}`` stream.
        redis_prefix: Prefix of every Redis key (isolates test runs).
        windows: Window ``W`` in bars per analysed timeframe.
        entry_z: |z| above which a signal opens.
        exit_z: |z| below which an open signal exits (always ``< entry_z``).
        pvalue_every: Compute ADF/EG p-values every k bars (1 = every bar).
        bar_grace_ms: Wall-clock grace after an interval ends before its bar
            closes without a newer tick (live and real-time replay).
        db_flush_ms: The DuckDB sink flushes at least this often.
        db_batch_rows: ... or when this many rows are waiting.
        epoch_ms: Bytewax epoch length for ``python dataflow.py``.
        stats_every_s: How often components report ``pipeline_stats``.
        scan_every: Scan every k-th grid time per timeframe (``ts_ms // tf_ms % k == 0``).
        strategies: Paper strategies (``PAIRFLOW_STRATEGIES``; empty = the one
            ``default`` strategy on ``entry_z``/``exit_z``), run on every (pair, tf).
        compiled: ``PAIRFLOW_COMPILED`` (``auto``/``on``/``off``): the compiled
            analytics kernel (``auto``: the C kernel if the machine can build it, else
            numba from 8 (pair, tf) keys on; :mod:`pairflow.stats.fastrow`).
        kalman_delta: ``PAIRFLOW_KALMAN_DELTA``, the Kalman hedge model's state noise
            ``Vw = delta * C`` (a number >= 0; docs/design.md "Hedge models").
        gc_thresholds: ``PAIRFLOW_GC_THRESHOLDS``: the ``gc.set_threshold`` the flow's
            process runs with (:mod:`pairflow.gc_tuning`); ``None`` keeps Python's.
        switch_interval_ms: ``PAIRFLOW_SWITCH_INTERVAL_MS``: the interpreter's thread
            switch interval in the flow's process (``sys.setswitchinterval``, in ms;
            :mod:`pairflow.gc_tuning`); ``None`` keeps Python's (5 ms).
    """

    source: SourceConfig = field(default_factory=BinanceConfig)
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    pairs: tuple[tuple[str, str], ...] = (("BTCUSDT", "ETHUSDT"),)
    db_path: Path = Path(COMMON_DEFAULTS["DB"])
    redis_url: str | None = COMMON_DEFAULTS["REDIS_URL"]
    redis_maxlen: int = int(COMMON_DEFAULTS["REDIS_MAXLEN"])
    redis_prefix: str = ""
    windows: dict[str, int] = field(default_factory=lambda: {"1s": 300, "1m": 120, "5m": 60})
    entry_z: float = float(COMMON_DEFAULTS["ENTRY_Z"])
    exit_z: float = float(COMMON_DEFAULTS["EXIT_Z"])
    pvalue_every: int = 1
    bar_grace_ms: int = int(COMMON_DEFAULTS["BAR_GRACE_MS"])
    db_flush_ms: int = int(COMMON_DEFAULTS["DB_FLUSH_MS"])
    db_batch_rows: int = int(COMMON_DEFAULTS["DB_BATCH_ROWS"])
    epoch_ms: int = int(COMMON_DEFAULTS["EPOCH_MS"])
    stats_every_s: float = float(COMMON_DEFAULTS["STATS_EVERY_S"])
    scan_every: dict[str, int] = field(default_factory=lambda: {"1s": 60, "1m": 1, "5m": 1})
    strategies: tuple[StrategyParams, ...] = field(
        default_factory=lambda: parse_strategies(
            None,
            entry_z=float(COMMON_DEFAULTS["ENTRY_Z"]),
            exit_z=float(COMMON_DEFAULTS["EXIT_Z"]),
        )
    )
    kalman_delta: float = float(COMMON_DEFAULTS["KALMAN_DELTA"])
    compiled: str = COMMON_DEFAULTS["COMPILED"]
    gc_thresholds: tuple[int, int, int] | None = field(
        default_factory=lambda: parse_gc_thresholds(COMMON_DEFAULTS["GC_THRESHOLDS"])
    )
    switch_interval_ms: float | None = field(
        default_factory=lambda: parse_switch_interval(COMMON_DEFAULTS["SWITCH_INTERVAL_MS"])
    )

    @property
    def source_kind(self) -> str:
        """``binance``, ``replay`` or ``synthetic``."""
        return self.source.kind

    @property
    def source_name(self) -> str:
        """Short name of the source, used in ``rejects.source`` and stats."""
        return self.source.kind

    @property
    def event_time_only(self) -> bool:
        """True when bars close only on event time (max-speed replay, simulated time).

        Then the result is deterministic whatever the machine's speed; otherwise
        bars also close on the wall clock so a quiet symbol still gets its bar.
        """
        return self.source.event_time_only


def _read_toml(env: Mapping[str, str]) -> dict[str, str]:
    path_s = env.get("PAIRFLOW_CONFIG")
    path = Path(path_s) if path_s else Path("pairflow.toml")
    if not path.exists():
        if path_s:
            msg = f"PAIRFLOW_CONFIG={path_s}: no such file; fix the path or unset it"
            raise ConfigError(msg)
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot read it as TOML ({exc}); fix the file or remove it"
        raise ConfigError(msg) from exc
    out: dict[str, str] = {}
    for key, value in data.items():
        name = key.upper().removeprefix("PAIRFLOW_")
        if name not in DEFAULTS:
            msg = f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}"
            raise ConfigError(msg)
        out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def parse_symbols(text: str) -> tuple[str, ...]:
    """Parse a comma-separated symbol list (case-insensitive) into upper-case names.

    Raises:
        ConfigError: on an empty list, a malformed name or a duplicate.
    """
    if not text.strip():
        msg = "PAIRFLOW_SYMBOLS is empty; give e.g. PAIRFLOW_SYMBOLS=BTCUSDT,ETHUSDT"
        raise ConfigError(msg)
    symbols = [s.strip().upper() for s in text.strip().strip(",").split(",")]
    if "" in symbols:
        msg = (
            f"PAIRFLOW_SYMBOLS={text!r} has an empty item (two commas in a row?); "
            "write e.g. PAIRFLOW_SYMBOLS=BTCUSDT,ETHUSDT"
        )
        raise ConfigError(msg)
    for sym in symbols:
        if not SYMBOL_RE.match(sym):
            msg = (
                f"PAIRFLOW_SYMBOLS: {sym!r} is not a Binance symbol "
                "(2-32 characters of A-Z, 0-9 and _, e.g. BTCUSDT or BTCUSD_PERP)"
            )
            raise ConfigError(msg)
    if len(set(symbols)) != len(symbols):
        msg = f"PAIRFLOW_SYMBOLS lists a symbol twice: {text!r}"
        raise ConfigError(msg)
    return tuple(symbols)


def parse_pairs(text: str, symbols: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Parse ``Y/X,Y/X`` pairs; empty means the first symbol against each other one.

    ``all`` (any case) means every unordered pair of ``symbols`` (N(N-1)/2), Y being
    the symbol listed first: ``A,B,C`` -> ``A/B, A/C, B/C``.

    Raises:
        ConfigError: on a malformed pair or a leg not in ``symbols``.
    """
    if not text.strip():
        return tuple((symbols[0], other) for other in symbols[1:])
    if text.strip().lower() == "all":
        return tuple(combinations(symbols, 2))
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        legs = [leg.strip().upper() for leg in item.split("/")]
        if len(legs) != 2 or legs[0] == legs[1]:
            msg = f"PAIRFLOW_PAIRS: {item!r} is not a pair; write Y/X, e.g. BTCUSDT/ETHUSDT"
            raise ConfigError(msg)
        for leg in legs:
            if leg not in symbols:
                msg = (
                    f"PAIRFLOW_PAIRS: {leg} (in {item.strip()}) is not in "
                    f"PAIRFLOW_SYMBOLS={','.join(symbols)}; add it there"
                )
                raise ConfigError(msg)
        pair = (legs[0], legs[1])
        if pair not in pairs:
            pairs.append(pair)
    return tuple(pairs)


def parse_windows(text: str) -> dict[str, int]:
    """Parse ``1s=300,1m=120`` into ``{tf: W}``; a timeframe left out gets no analytics.

    Raises:
        ConfigError: on an unknown timeframe or a window below 20 bars.
    """
    return _parse_tf_counts(
        "WINDOWS", text, "W", "1s=300,1m=120,5m=60", "window", 20, " bars (the ADF test needs them)"
    )


def parse_scan_every(text: str) -> dict[str, int]:
    """Parse ``1s=60,1m=1,5m=1`` into ``{tf: k}``: scan every k-th grid time of tf.

    A timeframe left out is scanned at every grid time (k = 1).

    Raises:
        ConfigError: on an unknown timeframe or a k that is not a whole number >= 1.
    """
    every: dict[str, int] = dict.fromkeys(TF_MS, 1)
    every.update(
        _parse_tf_counts(
            "SCAN_EVERY", text, "K", "1s=60,1m=1,5m=1", "k", 1, " (scan every k-th grid time)"
        )
    )
    return every


def _parse_tf_counts(
    name: str, text: str, letter: str, example: str, what: str, minimum: int, detail: str
) -> dict[str, int]:
    """Parse ``TF=N,...`` into ``{tf: N}`` with every ``N`` a whole number ``>= minimum``.

    Args:
        name: The setting without ``PAIRFLOW_``.
        text: The setting's value.
        letter: What ``N`` is called in the error (``TF=W``).
        example: A valid value for the error.
        what: What ``N`` is called in the error about its value (``window for 1s``).
        minimum: The smallest ``N`` accepted.
        detail: Said after the minimum (unit, reason).

    Raises:
        ConfigError: on an unknown timeframe or an ``N`` below ``minimum``.
    """
    counts: dict[str, int] = {}
    for tf, value in parse_assignments(name, text, TF_MS, ("TF", letter), example):
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            msg = (
                f"PAIRFLOW_{name}: {what} for {tf} must be a whole number >= {minimum}{detail}, "
                f"got {value.strip()!r}"
            )
            raise ConfigError(msg)
        counts[tf] = n
    return counts


RENAMED = {"NUMBA": "COMPILED"}
"""Settings renamed (old name -> new, without ``PAIRFLOW_``): the old one is an error."""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings.

    Args:
        env: Environment to read (default ``os.environ``).

    Raises:
        ConfigError: with a message naming the setting and how to fix it.
    """
    env = os.environ if env is None else env
    for old, new in RENAMED.items():
        if f"PAIRFLOW_{old}" in env:
            msg = f"PAIRFLOW_{old} is now PAIRFLOW_{new}: rename it (same values)"
            raise ConfigError(msg)
    raw = dict(DEFAULTS)
    raw.update(_read_toml(env))
    for name in DEFAULTS:
        if f"PAIRFLOW_{name}" in env:
            raw[name] = env[f"PAIRFLOW_{name}"]

    source = parse_source(raw["SOURCE"], raw)
    symbols = parse_symbols(raw["SYMBOLS"])
    pairs = parse_pairs(raw["PAIRS"], symbols)
    redis_url = raw["REDIS_URL"].strip() or None
    if redis_url is not None:
        parse_url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))
    entry_z = parse_number("ENTRY_Z", raw["ENTRY_Z"], minimum=0.0)
    exit_z = parse_number("EXIT_Z", raw["EXIT_Z"], minimum=0.0)
    if exit_z >= entry_z:
        msg = f"PAIRFLOW_EXIT_Z ({exit_z}) must be below PAIRFLOW_ENTRY_Z ({entry_z})"
        raise ConfigError(msg)

    try:
        strategies = parse_strategies(raw["STRATEGIES"], entry_z=entry_z, exit_z=exit_z)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    def whole(name: str, minimum: int) -> int:
        return int(parse_number(name, raw[name], minimum=minimum, integer=True))

    return Settings(
        source=source,
        symbols=symbols,
        pairs=pairs,
        db_path=Path(raw["DB"].strip() or DEFAULTS["DB"]),
        redis_url=redis_url,
        redis_maxlen=whole("REDIS_MAXLEN", 1),
        redis_prefix=raw["REDIS_PREFIX"].strip(),
        windows=parse_windows(raw["WINDOWS"]),
        entry_z=entry_z,
        exit_z=exit_z,
        pvalue_every=whole("PVALUE_EVERY", 1),
        bar_grace_ms=whole("BAR_GRACE_MS", 0),
        db_flush_ms=whole("DB_FLUSH_MS", 1),
        db_batch_rows=whole("DB_BATCH_ROWS", 1),
        epoch_ms=whole("EPOCH_MS", 10),
        stats_every_s=parse_number("STATS_EVERY_S", raw["STATS_EVERY_S"], minimum=0.1),
        scan_every=parse_scan_every(raw["SCAN_EVERY"]),
        strategies=strategies,
        kalman_delta=parse_number("KALMAN_DELTA", raw["KALMAN_DELTA"], minimum=0.0),
        compiled=parse_compiled(raw["COMPILED"]),
        gc_thresholds=parse_gc_thresholds(raw["GC_THRESHOLDS"]),
        switch_interval_ms=parse_switch_interval(raw["SWITCH_INTERVAL_MS"]),
    )


def parse_compiled(text: str) -> str:
    """``PAIRFLOW_COMPILED``: ``auto``, ``on`` or ``off`` (also 1/0, true/false, yes/no).

    Raises:
        ConfigError: for anything else.
    """
    low = text.strip().lower()
    aliases = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}
    low = aliases.get(low, low)
    if low not in ("auto", "on", "off"):
        msg = f"PAIRFLOW_COMPILED must be auto, on or off, got {text!r}"
        raise ConfigError(msg)
    return low


def parse_gc_thresholds(text: str) -> tuple[int, int, int] | None:
    """``PAIRFLOW_GC_THRESHOLDS``: ``g0,g1,g2`` for ``gc.set_threshold``; empty/``default``: None.

    ``g0`` (allocations minus frees that start a young collection) must be >= 1;
    ``g1``/``g2`` (younger collections per older one) >= 1 as well.

    Raises:
        ConfigError: on anything else.
    """
    low = text.strip().lower()
    if low in ("", "default"):
        return None
    parts = [p.strip() for p in low.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):  # noqa: PLR2004
        msg = (
            "PAIRFLOW_GC_THRESHOLDS must be three whole numbers >= 1 (g0,g1,g2, "
            f"e.g. 50000,20,100) or 'default' for Python's own, got {text!r}"
        )
        raise ConfigError(msg)
    g0, g1, g2 = (int(p) for p in parts)
    return g0, g1, g2


SWITCH_INTERVAL_MAX_MS = 1000.0
"""The largest ``PAIRFLOW_SWITCH_INTERVAL_MS`` accepted (a second)."""


def parse_switch_interval(text: str) -> float | None:
    """``PAIRFLOW_SWITCH_INTERVAL_MS``: milliseconds in (0, 1000]; empty/``default``: None.

    Raises:
        ConfigError: on anything else.
    """
    low = text.strip().lower()
    if low in ("", "default"):
        return None
    try:
        ms = float(low)
    except ValueError:
        ms = math.nan
    if not 0.0 < ms <= SWITCH_INTERVAL_MAX_MS:
        msg = (
            "PAIRFLOW_SWITCH_INTERVAL_MS must be a number of milliseconds in (0, 1000] "
            f"(e.g. 1) or 'default' for Python's own 5 ms, got {text!r}"
        )
        raise ConfigError(msg)
    return ms


def redact_url(url: str | None) -> str:
    """A URL safe for logs: any password in it is replaced by ``***``."""
    if not url:
        return "(off)"
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://***@{host}"
