"""The source kinds pairflow knows, each with its own typed settings.

``PAIRFLOW_SOURCE`` is ``KIND`` or ``KIND:ARG`` (``binance``, ``replay:PATHS``,
``synthetic``). Each kind registers a :class:`SourceKind`: the ``PAIRFLOW_*`` keys it
owns (with defaults), how to parse them into its frozen settings dataclass, and how
to build the Bytewax source from them. :mod:`pairflow.config` parses the settings
common to every run and hands the rest to the kind; :func:`make_source` builds it.

Adding an exchange or a file format = one settings dataclass + one
:class:`SourceKind` entry in :data:`KINDS` (see ``docs/architecture.md``).

This module is imported at start-up: it must stay light (heavy source modules are
imported inside the ``build`` functions only).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairflow.errors import ConfigError
from pairflow.parsing import parse_flag, parse_number, parse_url

if TYPE_CHECKING:
    from bytewax.inputs import Source

    from pairflow.config import Settings

BINANCE_WS_DEFAULT = "wss://stream.binance.com:9443"
BINANCE_REST_DEFAULT = "https://api.binance.com"
BINANCE_WS_MARKET_DATA_ONLY = "wss://data-stream.binance.vision"
BINANCE_REST_MARKET_DATA_ONLY = "https://data-api.binance.vision"


@dataclass(frozen=True)
class BinanceConfig:
    """Settings of the live Binance source (``PAIRFLOW_SOURCE=binance``).

    Attributes:
        ws: Base WebSocket URL (no path).
        rest: Base REST URL (no path).
        streams_per_connection: Most streams per combined-stream connection.
        tuning: ``key=value,...`` overrides of the source's timeouts and limits
            (see ``sources.binance.tuning.BinanceTuning``).
        api_key: Optional API key sent on REST calls (never logged or shown).
        warmup: ``auto`` (W+1 intervals per analysed timeframe), ``off``, or a span
            in seconds (``PAIRFLOW_WARMUP=6h`` -> ``"21600"``) of history fetched
            from REST on a start without a recovery snapshot.
        record: ``PAIRFLOW_RECORD``: path of an NDJSON(.gz) file the live source
            writes every trade it emits to (empty: no recording).
    """

    ws: str = BINANCE_WS_DEFAULT
    rest: str = BINANCE_REST_DEFAULT
    streams_per_connection: int = 1024
    tuning: str = ""
    api_key: str | None = field(default=None, repr=False)
    warmup: str = "auto"
    record: str = ""

    kind = "binance"

    @property
    def event_time_only(self) -> bool:
        """Live trades: bars also close on the (extrapolated) exchange clock."""
        return False

    def describe(self) -> str:
        """One-line summary for logs (no secrets)."""
        return f"binance ws={self.ws} rest={self.rest}"


@dataclass(frozen=True)
class ReplayConfig:
    """Settings of a replay of recorded or downloaded history (``replay:PATHS``).

    Attributes:
        paths: The files to replay, globs expanded, in the order given.
        speed: ``None`` = as fast as possible (the flow ends at end of input),
            else that many times real time.
        loop: Replay forever, shifting times and ids so bars keep arriving "now".
    """

    paths: tuple[Path, ...] = ()
    speed: float | None = None
    loop: bool = False

    kind = "replay"

    @property
    def event_time_only(self) -> bool:
        """A max-speed, non-looping replay closes bars on event time only."""
        return self.speed is None and not self.loop

    def describe(self) -> str:
        """One-line summary for logs."""
        names = ",".join(str(p) for p in self.paths)
        speed = "max" if self.speed is None else f"{self.speed:g}x"
        return f"replay:{names} speed={speed}" + (" loop" if self.loop else "")


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic source (``PAIRFLOW_SOURCE=synthetic``).

    Attributes:
        rate: Trades per second per symbol.
        beta: True hedge ratio of the cointegrated pair (first two symbols).
        duration_s: If > 0, that many simulated seconds as fast as possible, then
            the source ends; 0 = real time, forever.
        seed: Random seed (runs with the same seed are identical).
        universe: ``pair`` (one cointegrated pair + independent walks) or
            ``clusters`` (clusters of cointegrated symbols + independent walks; see
            ``sources.synthetic.planted_pairs``).
        history_s: Real time only: seconds of simulated history before ``t5`` emitted
            as bars at start (warm start, like the live source's); 0 = none.
    """

    rate: float = 50.0
    beta: float = 1.5
    duration_s: float = 0.0
    seed: int = 7
    universe: str = "pair"
    history_s: float = 0.0

    kind = "synthetic"

    @property
    def event_time_only(self) -> bool:
        """Simulated time (``duration_s > 0``) closes bars on event time only."""
        return self.duration_s > 0

    def describe(self) -> str:
        """One-line summary for logs (says it is synthetic)."""
        return (
            f"synthetic (simulated data) universe={self.universe} rate={self.rate:g}/s "
            f"seed={self.seed}" + (f" history={self.history_s:g}s" if self.history_s else "")
        )


SourceConfig = BinanceConfig | ReplayConfig | SyntheticConfig
"""The typed settings of whichever source a run uses."""


@dataclass(frozen=True)
class SourceKind:
    """One entry of the registry.

    Attributes:
        name: The ``PAIRFLOW_SOURCE`` kind (before any ``:``).
        keys: The ``PAIRFLOW_*`` keys (without the prefix) this kind owns, with
            their defaults.
        parse: ``(arg after ':', raw settings by key) -> config``; raises
            :class:`ConfigError` with an actionable message.
        build: ``(config, settings) -> Source``.
        usage: How to write it, for error messages.
    """

    name: str
    keys: Mapping[str, str]
    parse: Callable[[str, Mapping[str, str]], SourceConfig]
    build: Callable[[Any, Settings], Source[Any]]
    usage: str


def _parse_binance(arg: str, raw: Mapping[str, str]) -> BinanceConfig:
    if arg:
        msg = f"PAIRFLOW_SOURCE=binance takes no argument, got binance:{arg}"
        raise ConfigError(msg)
    return BinanceConfig(
        ws=parse_url("BINANCE_WS", raw["BINANCE_WS"], ("ws", "wss")),
        rest=parse_url("BINANCE_REST", raw["BINANCE_REST"], ("http", "https")),
        streams_per_connection=int(
            parse_number(
                "STREAMS_PER_CONNECTION", raw["STREAMS_PER_CONNECTION"], minimum=1, integer=True
            )
        ),
        tuning=raw["BINANCE_TUNING"].strip(),
        api_key=raw["BINANCE_API_KEY"].strip() or None,
        warmup=parse_warmup(raw.get("WARMUP", "auto")),
        record=raw.get("RECORD", "").strip(),
    )


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_warmup(text: str) -> str:
    """``PAIRFLOW_WARMUP``: ``auto``, ``off`` or a duration (``90s``, ``30m``, ``6h``, ``2d``).

    Returns:
        ``auto``, ``off`` or the duration in whole seconds as text.
    """
    value = text.strip().lower()
    if value in ("auto", "off"):
        return value
    unit = _DURATION_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if not (0 < seconds <= 366 * 86400):
        msg = (
            f"PAIRFLOW_WARMUP: {text!r} is not auto, off or a duration like 90s, 30m, 6h, 2d "
            "(at most a year)"
        )
        raise ConfigError(msg)
    return str(int(seconds))


def _build_binance(config: BinanceConfig, settings: Settings) -> Source[Any]:
    from sources.binance import BinanceSource

    return BinanceSource(settings)


def expand_paths(text: str) -> tuple[Path, ...]:
    """``a.zip,dir/*.csv`` -> existing, readable files in the order given (globs sorted).

    Raises:
        ConfigError: on an empty list, a glob matching nothing or an unreadable file.
    """
    out: list[Path] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                msg = f"PAIRFLOW_SOURCE: replay pattern {item} matches no file"
                raise ConfigError(msg)
            candidates = [Path(m) for m in matches]
        else:
            candidates = [Path(item)]
        for path in candidates:
            if not path.is_file() or not os.access(path, os.R_OK):
                msg = f"PAIRFLOW_SOURCE: replay file {path} does not exist or is not readable"
                raise ConfigError(msg)
            if path not in out:
                out.append(path)
    if not out:
        msg = "PAIRFLOW_SOURCE=replay needs a file: PAIRFLOW_SOURCE=replay:PATH.ndjson.gz"
        raise ConfigError(msg)
    return tuple(out)


def _parse_replay(arg: str, raw: Mapping[str, str]) -> ReplayConfig:
    speed_s = raw["REPLAY_SPEED"].strip().lower()
    if speed_s == "max":
        speed = None
    else:
        try:
            speed = float(speed_s)
        except ValueError:
            speed = float("nan")
        if not (speed >= 1e-3) or speed == float("inf"):
            msg = (
                "PAIRFLOW_REPLAY_SPEED must be max (as fast as possible) or a number "
                f">= 0.001 (times real time), got {speed_s!r}"
            )
            raise ConfigError(msg)
    return ReplayConfig(
        paths=expand_paths(arg),
        speed=speed,
        loop=parse_flag("REPLAY_LOOP", raw["REPLAY_LOOP"]),
    )


def _build_replay(config: ReplayConfig, settings: Settings) -> Source[Any]:
    from sources.replay import ReplaySource

    return ReplaySource(
        config.paths[0] if len(config.paths) == 1 else config.paths,
        config.speed,
        config.loop,
        symbols=frozenset(settings.symbols),
    )


SYNTHETIC_MIN_SYMBOLS = 2
SYNTHETIC_UNIVERSES = ("pair", "clusters")


def _parse_synthetic(arg: str, raw: Mapping[str, str]) -> SyntheticConfig:
    if arg:
        msg = f"PAIRFLOW_SOURCE=synthetic takes no argument, got synthetic:{arg}"
        raise ConfigError(msg)
    return SyntheticConfig(
        rate=parse_number("SYNTHETIC_RATE", raw["SYNTHETIC_RATE"], minimum=0.01),
        beta=parse_number("SYNTHETIC_BETA", raw["SYNTHETIC_BETA"], minimum=-1e6),
        duration_s=parse_number("SYNTHETIC_DURATION_S", raw["SYNTHETIC_DURATION_S"], minimum=0.0),
        seed=int(parse_number("SEED", raw["SEED"], minimum=0, integer=True)),
        universe=_parse_universe(raw["SYNTHETIC_UNIVERSE"]),
        history_s=_parse_history(raw),
    )


def _parse_history(raw: Mapping[str, str]) -> float:
    history = parse_number("SYNTHETIC_HISTORY_S", raw["SYNTHETIC_HISTORY_S"], minimum=0.0)
    if history and parse_number("SYNTHETIC_DURATION_S", raw["SYNTHETIC_DURATION_S"], minimum=0.0):
        msg = (
            "PAIRFLOW_SYNTHETIC_HISTORY_S is a real-time warm start: it needs "
            "PAIRFLOW_SYNTHETIC_DURATION_S=0"
        )
        raise ConfigError(msg)
    return history


def _parse_universe(text: str) -> str:
    universe = text.strip().lower() or "pair"
    if universe not in SYNTHETIC_UNIVERSES:
        msg = (
            f"PAIRFLOW_SYNTHETIC_UNIVERSE must be one of {', '.join(SYNTHETIC_UNIVERSES)}, "
            f"got {text!r}"
        )
        raise ConfigError(msg)
    return universe


def _build_synthetic(config: SyntheticConfig, settings: Settings) -> Source[Any]:
    from sources.synthetic import SyntheticParams, SyntheticSource

    if len(settings.symbols) < SYNTHETIC_MIN_SYMBOLS:
        msg = (
            "PAIRFLOW_SOURCE=synthetic simulates a pair: give at least two symbols, "
            "e.g. PAIRFLOW_SYMBOLS=BTCUSDT,ETHUSDT"
        )
        raise ConfigError(msg)
    params = SyntheticParams(beta=config.beta, rate=config.rate, universe=config.universe)
    # like the live warm-up: W + 1 bars of each analysed timeframe (charts get the
    # whole history of 1m/5m otherwise, no 1s)
    tf_s = {"1s": 1, "1m": 60, "5m": 300}
    spans = {tf: config.history_s for tf in ("1m", "5m")}
    spans.update({tf: (w + 1) * tf_s[tf] for tf, w in settings.windows.items() if tf in tf_s})
    return SyntheticSource(
        settings.symbols,
        config.seed,
        config.duration_s,
        params,
        history_s=config.history_s,
        history_spans_s=spans,
    )


KINDS: dict[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind(
            "binance",
            {
                "BINANCE_WS": BINANCE_WS_DEFAULT,
                "BINANCE_REST": BINANCE_REST_DEFAULT,
                "STREAMS_PER_CONNECTION": "1024",
                "BINANCE_TUNING": "",
                "BINANCE_API_KEY": "",
                "WARMUP": "auto",
                "RECORD": "",
            },
            _parse_binance,
            _build_binance,
            "binance (live)",
        ),
        SourceKind(
            "replay",
            {"REPLAY_SPEED": "max", "REPLAY_LOOP": "0"},
            _parse_replay,
            _build_replay,
            "replay:PATHS (NDJSON(.gz) recordings or Binance public-data files; "
            "comma-separated, globs allowed)",
        ),
        SourceKind(
            "synthetic",
            {
                "SYNTHETIC_RATE": "50",
                "SYNTHETIC_BETA": "1.5",
                "SYNTHETIC_DURATION_S": "0",
                "SEED": "7",
                "SYNTHETIC_UNIVERSE": "pair",
                "SYNTHETIC_HISTORY_S": "0",
            },
            _parse_synthetic,
            _build_synthetic,
            "synthetic (simulated data)",
        ),
    )
}
"""Every source kind, by name."""


def source_keys() -> dict[str, str]:
    """The ``PAIRFLOW_*`` keys (no prefix) of every source kind, with defaults."""
    out: dict[str, str] = {}
    for kind in KINDS.values():
        out.update(kind.keys)
    return out


def parse_source(text: str, raw: Mapping[str, str]) -> SourceConfig:
    """Parse ``PAIRFLOW_SOURCE`` (``KIND[:ARG]``) and that kind's keys.

    Raises:
        ConfigError: on an unknown kind or a bad value of one of its keys.
    """
    name, _, arg = text.strip().partition(":")
    kind = KINDS.get(name.strip().lower())
    if kind is None:
        usages = "; ".join(k.usage for k in KINDS.values())
        msg = f"PAIRFLOW_SOURCE={text.strip()!r} is not a source; use one of: {usages}"
        raise ConfigError(msg)
    return kind.parse(arg.strip(), raw)


def make_source(settings: Settings) -> Source[Any]:
    """Build the Bytewax source that ``settings.source`` describes."""
    return KINDS[settings.source.kind].build(settings.source, settings)
