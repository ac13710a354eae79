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
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from pairflow.timeutil import TF_MS

SYMBOL_RE = re.compile(r"^[A-Z0-9_]{2,32}$")
"""Binance symbol names: A-Z, 0-9 and ``_`` (e.g. ``BTCUSD_PERP``)."""

BINANCE_WS_DEFAULT = "wss://stream.binance.com:9443"
BINANCE_REST_DEFAULT = "https://api.binance.com"
BINANCE_WS_MARKET_DATA_ONLY = "wss://data-stream.binance.vision"
BINANCE_REST_MARKET_DATA_ONLY = "https://data-api.binance.vision"

DEFAULTS: dict[str, str] = {
    "SOURCE": "binance",
    "SYMBOLS": "BTCUSDT,ETHUSDT",
    "PAIRS": "",
    "DB": "data/quant_data.db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_MAXLEN": "1000000",
    "REDIS_PREFIX": "",
    "WINDOWS": "1s=300,1m=120,5m=60",
    "BINANCE_WS": BINANCE_WS_DEFAULT,
    "BINANCE_REST": BINANCE_REST_DEFAULT,
    "STREAMS_PER_CONNECTION": "1024",
    "BINANCE_TUNING": "",
    "BINANCE_API_KEY": "",
    "REPLAY_SPEED": "max",
    "REPLAY_LOOP": "0",
    "SYNTHETIC_RATE": "50",
    "SYNTHETIC_BETA": "1.5",
    "SYNTHETIC_DURATION_S": "0",
    "SEED": "7",
    "ENTRY_Z": "2.0",
    "EXIT_Z": "0.5",
    "PVALUE_EVERY": "1",
    "BAR_GRACE_MS": "300",
    "DB_FLUSH_MS": "750",
    "DB_BATCH_ROWS": "5000",
    "EPOCH_MS": "200",
    "STATS_EVERY_S": "5",
}
"""Default of every setting, by name without the ``PAIRFLOW_`` prefix."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Validated pairflow configuration. Build with :func:`load_settings`.

    Attributes:
        source_kind: ``binance``, ``replay`` or ``synthetic``.
        replay_path: The recording to replay (``replay`` only).
        symbols: Upper-case symbols to accept; anything else is rejected.
        pairs: ``(Y, X)`` pairs to analyse.
        db_path: DuckDB file.
        redis_url: Redis URL for the tick tee, or ``None`` for no tee.
        redis_maxlen: Approximate cap of each ``ticks:{SYMBOL}`` stream.
        redis_prefix: Prefix of every Redis key (isolates test runs).
        windows: Window ``W`` in bars per analysed timeframe.
        binance_ws: Base WebSocket URL (no path).
        binance_rest: Base REST URL (no path).
        streams_per_connection: Max streams per combined-stream connection.
        binance_tuning: ``key=value,...`` overrides of the live source's timeouts and
            limits (see ``sources.binance.BinanceTuning``).
        binance_api_key: Optional API key sent on REST backfill calls (never logged).
        replay_speed: ``None`` for as fast as possible, else a real-time factor.
        replay_loop: Replay forever, shifting times so bars arrive "now".
        synthetic_rate: Trades per second per symbol of the synthetic source.
        synthetic_beta: True hedge ratio of the synthetic pair.
        synthetic_duration_s: If > 0, generate that many simulated seconds as fast
            as possible, then end; 0 = real time, forever.
        seed: Seed of the synthetic source.
        entry_z: |z| above which a signal opens.
        exit_z: |z| below which an open signal exits.
        pvalue_every: Compute ADF/EG p-values every k bars (1 = every bar).
        bar_grace_ms: Wall-clock grace after an interval ends before its bar
            closes without a newer tick (live and real-time replay).
        db_flush_ms: The DuckDB sink flushes at least this often.
        db_batch_rows: ... or when this many rows are waiting.
        epoch_ms: Bytewax epoch length for ``python dataflow.py``.
        stats_every_s: How often components report ``pipeline_stats``.
    """

    source_kind: str = "binance"
    replay_path: Path | None = None
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    pairs: tuple[tuple[str, str], ...] = (("BTCUSDT", "ETHUSDT"),)
    db_path: Path = Path("data/quant_data.db")
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    redis_maxlen: int = 1_000_000
    redis_prefix: str = ""
    windows: dict[str, int] = field(default_factory=lambda: {"1s": 300, "1m": 120, "5m": 60})
    binance_ws: str = BINANCE_WS_DEFAULT
    binance_rest: str = BINANCE_REST_DEFAULT
    streams_per_connection: int = 1024
    binance_tuning: str = ""
    binance_api_key: str | None = field(default=None, repr=False)
    replay_speed: float | None = None
    replay_loop: bool = False
    synthetic_rate: float = 50.0
    synthetic_beta: float = 1.5
    synthetic_duration_s: float = 0.0
    seed: int = 7
    entry_z: float = 2.0
    exit_z: float = 0.5
    pvalue_every: int = 1
    bar_grace_ms: int = 300
    db_flush_ms: int = 750
    db_batch_rows: int = 5000
    epoch_ms: int = 200
    stats_every_s: float = 5.0

    @property
    def source_name(self) -> str:
        """Short name of the source, used in ``rejects.source`` and stats."""
        return self.source_kind

    @property
    def event_time_only(self) -> bool:
        """True when bars close only on event time (max-speed, non-looping replay).

        Then the result is deterministic whatever the machine's speed; otherwise
        bars also close on the wall clock so a quiet symbol still gets its bar.
        """
        if self.source_kind == "synthetic":
            return self.synthetic_duration_s > 0
        return self.source_kind == "replay" and self.replay_speed is None and not self.replay_loop


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
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        msg = "PAIRFLOW_SYMBOLS is empty; give e.g. PAIRFLOW_SYMBOLS=BTCUSDT,ETHUSDT"
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

    Raises:
        ConfigError: on a malformed pair or a leg not in ``symbols``.
    """
    if not text.strip():
        return tuple((symbols[0], other) for other in symbols[1:])
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
    windows: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        tf, sep, w_s = item.partition("=")
        tf = tf.strip()
        if not sep or tf not in TF_MS:
            msg = (
                f"PAIRFLOW_WINDOWS: {item!r} is not TF=W with TF one of "
                f"{', '.join(TF_MS)} (e.g. 1s=300,1m=120,5m=60)"
            )
            raise ConfigError(msg)
        try:
            w = int(w_s)
        except ValueError:
            w = 0
        if w < 20:
            msg = (
                f"PAIRFLOW_WINDOWS: window for {tf} must be a whole number >= 20 bars "
                f"(the ADF test needs them), got {w_s.strip()!r}"
            )
            raise ConfigError(msg)
        windows[tf] = w
    return windows


def _number(name: str, text: str, *, minimum: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = math.nan
    if not (value >= minimum) or math.isinf(value):
        kind = "a whole number" if integer else "a number"
        msg = f"PAIRFLOW_{name} must be {kind} >= {minimum}, got {text!r}"
        raise ConfigError(msg)
    return value


def _flag(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    msg = f"PAIRFLOW_{name} must be 1 or 0 (true/false), got {text!r}"
    raise ConfigError(msg)


def _base_url(name: str, text: str, schemes: tuple[str, ...]) -> str:
    url = text.strip().rstrip("/")
    if not url.startswith(tuple(f"{s}://" for s in schemes)):
        msg = f"PAIRFLOW_{name} must start with {' or '.join(schemes)}://, got {text!r}"
        raise ConfigError(msg)
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings.

    Args:
        env: Environment to read (default ``os.environ``).

    Raises:
        ConfigError: with a message naming the setting and how to fix it.
    """
    env = os.environ if env is None else env
    raw = dict(DEFAULTS)
    raw.update(_read_toml(env))
    for name in DEFAULTS:
        if f"PAIRFLOW_{name}" in env:
            raw[name] = env[f"PAIRFLOW_{name}"]

    source = raw["SOURCE"].strip()
    kind, _, arg = source.partition(":")
    replay_path: Path | None = None
    if kind == "replay":
        if not arg:
            msg = "PAIRFLOW_SOURCE=replay needs a file: PAIRFLOW_SOURCE=replay:PATH.ndjson.gz"
            raise ConfigError(msg)
        replay_path = Path(arg)
        if not replay_path.is_file() or not os.access(replay_path, os.R_OK):
            msg = f"PAIRFLOW_SOURCE: replay file {arg} does not exist or is not readable"
            raise ConfigError(msg)
    elif kind not in {"binance", "synthetic"} or arg:
        msg = (
            f"PAIRFLOW_SOURCE={source!r} is not a source; use binance (live), "
            "replay:PATH (an NDJSON(.gz) recording) or synthetic"
        )
        raise ConfigError(msg)

    symbols = parse_symbols(raw["SYMBOLS"])
    pairs = parse_pairs(raw["PAIRS"], symbols)
    speed_s = raw["REPLAY_SPEED"].strip().lower()
    speed = None if speed_s == "max" else _number("REPLAY_SPEED", speed_s, minimum=1e-3)
    redis_url = raw["REDIS_URL"].strip() or None
    if redis_url is not None:
        _base_url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))
    entry_z = _number("ENTRY_Z", raw["ENTRY_Z"], minimum=0.0)
    exit_z = _number("EXIT_Z", raw["EXIT_Z"], minimum=0.0)
    if exit_z >= entry_z:
        msg = f"PAIRFLOW_EXIT_Z ({exit_z}) must be below PAIRFLOW_ENTRY_Z ({entry_z})"
        raise ConfigError(msg)
    return Settings(
        source_kind=kind,
        replay_path=replay_path,
        symbols=symbols,
        pairs=pairs,
        db_path=Path(raw["DB"].strip() or DEFAULTS["DB"]),
        redis_url=redis_url,
        redis_maxlen=int(_number("REDIS_MAXLEN", raw["REDIS_MAXLEN"], minimum=1, integer=True)),
        redis_prefix=raw["REDIS_PREFIX"].strip(),
        windows=parse_windows(raw["WINDOWS"]),
        binance_ws=_base_url("BINANCE_WS", raw["BINANCE_WS"], ("ws", "wss")),
        binance_rest=_base_url("BINANCE_REST", raw["BINANCE_REST"], ("http", "https")),
        streams_per_connection=int(
            _number(
                "STREAMS_PER_CONNECTION", raw["STREAMS_PER_CONNECTION"], minimum=1, integer=True
            )
        ),
        binance_tuning=raw["BINANCE_TUNING"].strip(),
        binance_api_key=raw["BINANCE_API_KEY"].strip() or None,
        replay_speed=speed,
        replay_loop=_flag("REPLAY_LOOP", raw["REPLAY_LOOP"]),
        synthetic_rate=_number("SYNTHETIC_RATE", raw["SYNTHETIC_RATE"], minimum=0.01),
        synthetic_beta=_number("SYNTHETIC_BETA", raw["SYNTHETIC_BETA"], minimum=-1e6),
        synthetic_duration_s=_number(
            "SYNTHETIC_DURATION_S", raw["SYNTHETIC_DURATION_S"], minimum=0.0
        ),
        seed=int(_number("SEED", raw["SEED"], minimum=0, integer=True)),
        entry_z=entry_z,
        exit_z=exit_z,
        pvalue_every=int(_number("PVALUE_EVERY", raw["PVALUE_EVERY"], minimum=1, integer=True)),
        bar_grace_ms=int(_number("BAR_GRACE_MS", raw["BAR_GRACE_MS"], minimum=0, integer=True)),
        db_flush_ms=int(_number("DB_FLUSH_MS", raw["DB_FLUSH_MS"], minimum=1, integer=True)),
        db_batch_rows=int(_number("DB_BATCH_ROWS", raw["DB_BATCH_ROWS"], minimum=1, integer=True)),
        epoch_ms=int(_number("EPOCH_MS", raw["EPOCH_MS"], minimum=10, integer=True)),
        stats_every_s=_number("STATS_EVERY_S", raw["STATS_EVERY_S"], minimum=0.1),
    )


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
