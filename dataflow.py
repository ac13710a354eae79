"""The pairflow dataflow: Binance trades -> Redis tee, OHLCV bars, pair analytics -> DuckDB.

Two ways to run it::

    python -m bytewax.run dataflow            # bytewax's CLI (10 s epochs, fine for replays)
    python dataflow.py [-w N] [-r DIR]        # short epochs for live use, graceful SIGTERM

Configuration comes from ``PAIRFLOW_*`` environment variables or ``pairflow.toml``
(see README). ``build(settings)`` makes the flow for tests and tools; the
module attribute ``flow`` is built from the environment on first access.

Flow::

    source -> parse (flat_map_batch) -> rejects ----------------------------+
                 |-> key by symbol -> sequence (dup/backwards ids) -> rejects -+
                                        |-> Redis tee (XADD ticks:{SYMBOL})   |
                                        |-> bars (1s/1m/5m, stateful) --------+-> DuckDB
                                                |-> pair analytics ----------+
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from operators.bars import BarLogic, BarState
from operators.parse import parse_batch
from operators.sequence import SequenceLogic, SequenceState
from pairflow.config import ConfigError, Settings, load_settings, redact_url
from pairflow.records import Bar, Stat, Tick, Watermark
from pairflow.timeutil import now_ms
from sinks.duckdb_sink import DuckDBSink
from sinks.redis_sink import RedisTeeSink

log = logging.getLogger("pairflow")


def make_source(settings: Settings) -> Source[Any]:
    """The input named by ``settings.source_kind``."""
    if settings.source_kind == "replay":
        from sources.replay import ReplaySource

        assert settings.replay_path is not None
        return ReplaySource(settings.replay_path, settings.replay_speed, settings.replay_loop)
    if settings.source_kind == "synthetic":
        from sources.synthetic import SyntheticParams, SyntheticSource

        params = SyntheticParams(beta=settings.synthetic_beta, rate=settings.synthetic_rate)
        return SyntheticSource(
            settings.symbols, settings.seed, settings.synthetic_duration_s, params
        )
    try:
        from sources.binance import BinanceSource
    except ImportError as exc:  # pragma: no cover - only before the live source exists
        msg = (
            "the live Binance source is not available in this build; "
            "use PAIRFLOW_SOURCE=replay:PATH or PAIRFLOW_SOURCE=synthetic"
        )
        raise ConfigError(msg) from exc
    return BinanceSource(settings)


FUTURE_TOLERANCE_MS = 60_000
"""Trades stamped more than this ahead of the wall clock are rejected (clock skew margin)."""


class _Parser:
    """``flat_map_batch`` body: frames -> ``(symbol, [Tick])`` chunks, rejects, records."""

    def __init__(self, settings: Settings) -> None:
        self.symbols = frozenset(settings.symbols)
        self.source = settings.source_name
        self.every_ms = int(settings.stats_every_s * 1000)
        self.ticks_total = 0
        self.rejects_total = 0
        self.last_stat_ms = now_ms()
        self.ticks_at_last_stat = 0

    def __call__(self, items: list[Any]) -> Iterable[Any]:
        now = now_ms()
        by_symbol, rejects, other = parse_batch(
            items, self.symbols, self.source, now, now + FUTURE_TOLERANCE_MS
        )
        out: list[Any] = list(by_symbol.items())
        out.extend(rejects)
        out.extend(other)
        self.ticks_total += sum(len(v) for v in by_symbol.values())
        self.rejects_total += len(rejects)
        if now - self.last_stat_ms >= self.every_ms:
            rate = (self.ticks_total - self.ticks_at_last_stat) * 1000 / (now - self.last_stat_ms)
            out += [
                Stat(now, "parse", "ticks_total", self.ticks_total),
                Stat(now, "parse", "ticks_per_s", rate),
                Stat(now, "parse", "rejects_total", self.rejects_total),
            ]
            self.last_stat_ms = now
            self.ticks_at_last_stat = self.ticks_total
        return out


def _is_chunk(item: Any) -> bool:
    """``(symbol, [Tick])`` from the parser (records are dataclasses, never plain tuples)."""
    return type(item) is tuple


def build(
    settings: Settings,
    *,
    source: Source[Any] | None = None,
    with_redis: bool = True,
    with_analytics: bool = True,
) -> Dataflow:
    """Build the whole pairflow dataflow.

    Args:
        settings: Validated configuration.
        source: Override the input (tests pass a ``TestingSource``).
        with_redis: Tee ticks into Redis when ``settings.redis_url`` is set.
        with_analytics: Compute pair analytics for ``settings.windows``.
    """
    flow = Dataflow("pairflow")
    inp = op.input("input", flow, source if source is not None else make_source(settings))
    parsed = op.flat_map_batch("parse", inp, _Parser(settings))
    split = op.branch("split_parsed", parsed, _is_chunk)
    chunks: Stream[tuple[str, list[Tick]]] = split.trues
    records = split.falses  # Reject | Stat | Gap

    def seq_builder(resume: SequenceState | None) -> SequenceLogic:
        return SequenceLogic(settings.source_name, resume)

    checked = op.stateful_batch("sequence", chunks, seq_builder)
    seq_split = op.branch("split_sequence", checked, lambda kv: isinstance(kv[1], list))
    valid = seq_split.trues
    seq_rejects = op.map("sequence_rejects", seq_split.falses, lambda kv: kv[1])

    if with_redis and settings.redis_url:
        op.output(
            "redis_tee",
            op.map("tee_values", valid, lambda kv: kv[1]),
            RedisTeeSink(
                settings.redis_url, settings.redis_maxlen, key_prefix=settings.redis_prefix
            ),
        )

    wall_clock = not settings.event_time_only

    def bar_builder(resume: BarState | None) -> BarLogic:
        return BarLogic(
            settings.source_name,
            wall_clock=wall_clock,
            grace_ms=settings.bar_grace_ms,
            state=resume,
        )

    bar_out = op.map("bar_values", op.stateful_batch("bars", valid, bar_builder), lambda kv: kv[1])
    bar_split = op.branch("split_bars", bar_out, lambda x: isinstance(x, (Bar, Watermark)))
    bars_and_marks = bar_split.trues
    bar_records = bar_split.falses  # late-tick Rejects and Stats
    bars = op.filter("bars_only", bars_and_marks, lambda x: isinstance(x, Bar))

    to_db = [records, seq_rejects, bars, bar_records]
    if with_analytics and settings.windows and settings.pairs:
        from operators.analytics import pair_analytics_op

        analytics = pair_analytics_op(
            "analytics",
            bars_and_marks,
            settings.pairs,
            settings.windows,
            entry_z=settings.entry_z,
            exit_z=settings.exit_z,
            pvalue_every=settings.pvalue_every,
        )
        to_db += [analytics.rows, analytics.signals, analytics.stats]
    merged = op.merge("to_db", *to_db)
    op.output(
        "duckdb",
        op.key_on("db_key", merged, lambda _x: "db"),
        DuckDBSink(settings.db_path, settings.db_batch_rows, settings.db_flush_ms),
    )
    return flow


def _describe(settings: Settings) -> str:
    src = settings.source_kind
    if settings.replay_path is not None:
        src += f":{settings.replay_path}"
    return (
        f"pairflow: source={src} symbols={','.join(settings.symbols)} "
        f"pairs={','.join('/'.join(p) for p in settings.pairs)} db={settings.db_path} "
        f"redis={redact_url(settings.redis_url)}"
    )


def _build_from_env() -> Dataflow:
    try:
        settings = load_settings()
        built = build(settings)
    except ConfigError as exc:
        msg = f"pairflow: configuration error: {exc}"
        raise SystemExit(msg) from None
    log.info(_describe(settings))
    return built


def __getattr__(name: str) -> Any:
    """Build ``flow`` lazily, so importing this module for ``build`` needs no config."""
    if name == "flow":
        built = _build_from_env()
        globals()["flow"] = built
        return built
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    """``python dataflow.py``: run with short epochs, optional recovery, graceful stop."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from pairflow.shutdown import install_signal_handlers

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-w", "--workers-per-process", type=int, default=1)
    parser.add_argument("-i", "--process-id", type=int, default=None)
    parser.add_argument("-a", "--addresses", default=None, help="host:port;host:port")
    parser.add_argument("-r", "--recovery-directory", type=Path, default=None)
    parser.add_argument("-b", "--backup-interval-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        built = build(settings)
    except ConfigError as exc:
        print(f"pairflow: configuration error: {exc}", file=sys.stderr)
        return 2
    log.info(_describe(settings))
    recovery = None
    if args.recovery_directory is not None:
        from pairflow.recovery import ensure_recovery_dir

        ensure_recovery_dir(args.recovery_directory, args.workers_per_process, args.addresses)
        recovery = RecoveryConfig(
            str(args.recovery_directory), timedelta(seconds=args.backup_interval_s)
        )
    install_signal_handlers()
    cli_main(
        built,
        workers_per_process=args.workers_per_process,
        process_id=args.process_id,
        addresses=args.addresses.split(";") if args.addresses else None,
        epoch_interval=timedelta(milliseconds=settings.epoch_ms),
        recovery_config=recovery,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
