"""The pairflow dataflow: trades -> Redis tee, OHLCV bars, pair analytics -> DuckDB.

Two ways to run it::

    python -m bytewax.run dataflow            # bytewax's CLI (10 s epochs, fine for replays)
    python dataflow.py [-w N] [-r DIR]        # short epochs for live use, graceful SIGTERM

Configuration comes from ``PAIRFLOW_*`` environment variables or ``pairflow.toml``
(see README). ``build(settings)`` makes the flow for tests and tools; the
module attribute ``flow`` is built from the environment on first access.

Flow (records, see ``docs/architecture.md``)::

    source (own wire format -> Tick | Bar | Reject | Gap | Stat)
      -> ingest (group ticks by symbol; unknown symbol / future time) -> rejects ---+
           |-> key by symbol -> sequence (dup/backwards ids) -> rejects ------------+
                                  |-> Redis tee (XADD ticks:{SYMBOL})                |
                                  |-> bars (1s/1m/5m, stateful) + source bars ------+-> DuckDB
                                          |-> pair analytics ------------------------+
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

# Only light imports at module level: ``python dataflow.py`` installs its signal
# handlers before the heavy ones (bytewax, DuckDB, Redis, numpy) load in build().
from pairflow.config import ConfigError, Settings, load_settings, redact_url
from pairflow.gc_tuning import apply_gc_thresholds, apply_switch_interval

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import Source

log = logging.getLogger("pairflow")


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
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow, Stream

    from operators import ingest as ingest_stage
    from operators.bars import BarIn, BarLogic, BarState
    from operators.sequence import SequenceLogic, SequenceState
    from pairflow.records import Bar, Reject, Tick, Watermark
    from sinks.duckdb_sink import DuckDBSink
    from sources.registry import make_source

    flow = Dataflow("pairflow")
    inp = op.input("input", flow, source if source is not None else make_source(settings))
    ingest = ingest_stage.Ingest(
        frozenset(settings.symbols), settings.source_name, int(settings.stats_every_s * 1000)
    )
    grouped = op.flat_map_batch("ingest", inp, ingest)
    split = op.branch("split_ingested", grouped, ingest_stage.is_chunk)
    # op.branch cannot narrow by a predicate's TypeGuard: the casts say what it split
    chunks = cast("Stream[ingest_stage.Chunk]", split.trues)
    rec_split = op.branch("source_bars", split.falses, lambda x: isinstance(x, (Bar, Watermark)))
    # klines (warm start, kline files) and the warm start's Watermark(t5) per symbol/tf
    source_bars = cast("Stream[Bar | Watermark]", rec_split.trues)
    records = rec_split.falses  # Reject | Stat | Gap

    def seq_builder(resume: SequenceState | None) -> SequenceLogic:
        return SequenceLogic(settings.source_name, resume)

    checked = op.stateful_batch("sequence", chunks, seq_builder)
    seq_split = op.branch("split_sequence", checked, lambda kv: not isinstance(kv[1], Reject))
    # (symbol, [Tick]) and (symbol, SourceClock)
    sequenced = cast("Stream[tuple[str, BarIn]]", seq_split.trues)
    seq_rejects = op.map("sequence_rejects", seq_split.falses, lambda kv: kv[1])

    if with_redis and settings.redis_url:
        from sinks.redis_sink import RedisTeeSink

        ticks_only = op.filter("ticks_only", sequenced, lambda kv: isinstance(kv[1], list))
        tick_lists = cast("Stream[list[Tick]]", op.map("tee_values", ticks_only, lambda kv: kv[1]))
        op.output(
            "redis_tee",
            tick_lists,
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

    built = op.stateful_batch("bars", sequenced, bar_builder)
    bar_out = op.map("bar_values", built, lambda kv: kv[1])
    bar_split = op.branch("split_bars", bar_out, lambda x: isinstance(x, (Bar, Watermark)))
    bars_and_marks = op.merge(
        "all_bars", source_bars, cast("Stream[Bar | Watermark]", bar_split.trues)
    )
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
            pvalue_every=settings.pvalue_every,
            kalman_delta=settings.kalman_delta,
            compiled=settings.compiled,
        )
        # the signals table is the strategies' (keyed by strategy, docs/design.md "Strategies")
        to_db += [analytics.rows, analytics.stats]
        if settings.strategies:  # paper strategies (operators/strategies.py)
            from operators.strategies import reset_changed_strategies, strategies_op

            reset_changed_strategies(settings.db_path, settings.strategies)
            to_db.append(strategies_op("strategies", analytics.rows, settings.strategies))
        if len(settings.pairs) > 1:  # the pair scanner (docs/design.md "Pair scanner")
            from operators.scan import pair_scan

            to_db.append(pair_scan("scan", analytics.rows, settings.scan_every))
    merged = op.merge("to_db", *to_db)
    op.output(
        "duckdb",
        # One ("db", [records...]) item per batch: the sink takes lists, and a record
        # passed on its own costs Bytewax and the key step ~2 us each.
        op.flat_map_batch("db_batch", merged, _db_batch),
        DuckDBSink(settings.db_path, settings.db_batch_rows, settings.db_flush_ms),
    )
    return flow


def _db_batch(records: list[object]) -> list[tuple[str, list[object]]]:
    """A batch of records for the DuckDB sink as one keyed item (its one partition)."""
    return [("db", records)]


def _describe(settings: Settings) -> str:
    return (
        f"pairflow: source={settings.source.describe()} symbols={','.join(settings.symbols)} "
        f"pairs={','.join('/'.join(p) for p in settings.pairs)} db={settings.db_path} "
        f"redis={redact_url(settings.redis_url)}"
    )


CONFIG_ERROR_EXIT = 2
"""Exit status of a configuration error, under ``bytewax.run`` and ``dataflow.py`` alike."""


def _build_from_env() -> Dataflow:
    from pairflow.summary import print_at_exit

    try:
        settings = load_settings()
        apply_gc_thresholds(settings.gc_thresholds)
        apply_switch_interval(settings.switch_interval_ms)
        built = build(settings)
    except ConfigError as exc:
        print(f"pairflow: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    log.info(_describe(settings))
    print_at_exit(settings.db_path)
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
    from pairflow.shutdown import install_signal_handlers

    install_signal_handlers()  # first thing: a stop during start-up is graceful too
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from pairflow.summary import print_at_exit

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
        apply_gc_thresholds(settings.gc_thresholds)
        apply_switch_interval(settings.switch_interval_ms)
        built = build(settings)
    except ConfigError as exc:
        print(f"pairflow: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    log.info(_describe(settings))
    print_at_exit(settings.db_path)
    recovery = None
    if args.recovery_directory is not None:
        from pairflow.recovery import ensure_recovery_dir

        ensure_recovery_dir(args.recovery_directory, args.workers_per_process, args.addresses)
        recovery = RecoveryConfig(
            str(args.recovery_directory), timedelta(seconds=args.backup_interval_s)
        )
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
