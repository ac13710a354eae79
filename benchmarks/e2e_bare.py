"""The bare Bytewax yardstick of ``benchmarks/e2e.py``: parse + key + 1 s ``fold_window``.

    python benchmarks/e2e_bare.py FILE.ndjson[.gz]     # one whole process, as timed
    python benchmarks/e2e_bare.py FILE 50000,20,100    # the same with gc.set_threshold

What a user would write with Bytewax alone over the same recording: the replay
source, our frame parser (``sources.binance.wire.parse_batch``), one item per tick,
``bytewax.operators.windowing.fold_window`` (1 s tumbling, ``EventClock``) into a null
sink. This module imports only Bytewax and those two modules, so that its whole-process
time holds no start-up that the flow would not need (``e2e.py`` imports pandas, DuckDB
and Redis for its other measurements).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from pairflow.records import Tick
from sources.binance.wire import parse_batch
from sources.replay import ReplaySource

SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _NullPartition(StatelessSinkPartition[Any]):
    def __init__(self, counter: Counter[str]) -> None:
        self.counter = counter

    def write_batch(self, items: list[Any]) -> None:
        self.counter["items"] += len(items)


class NullSink(DynamicSink[Any]):
    """Counts what it receives and drops it."""

    def __init__(self) -> None:
        self.counter: Counter[str] = Counter()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _NullPartition:
        """A counting partition."""
        return _NullPartition(self.counter)


def parse_chunks(items: list[Any]) -> list[tuple[str, list[Tick]]]:
    """Frames -> ``(symbol, ticks)`` chunks (rejects dropped: the recording has none)."""
    by_symbol, _rejects, _other = parse_batch(items, SYMBOLS, "replay", 0)
    return list(by_symbol.items())


def _fold(acc: list[float] | None, tick: Tick) -> list[float]:
    if acc is None:
        return [tick.price, tick.price, tick.price, tick.price, tick.qty, 1.0]
    p = tick.price
    if p > acc[1]:
        acc[1] = p
    elif p < acc[2]:
        acc[2] = p
    acc[3] = p
    acc[4] += tick.qty
    acc[5] += 1.0
    return acc


def _merge(a: list[float], b: list[float]) -> list[float]:  # sessions only; never called
    return a


def bare_flow(path: Path) -> tuple[Dataflow, NullSink, NullSink]:
    """Source -> parse -> per-tick items -> ``fold_window`` (1 s) -> null (bars, late)."""
    flow = Dataflow("bytewax_window")
    inp = op.input("input", flow, ReplaySource(path))
    chunks = op.flat_map_batch("parse", inp, parse_chunks)
    ticks = op.flat_map("ticks", chunks, lambda kv: ((kv[0], t) for t in kv[1]))
    clock = win.EventClock(
        lambda t: EPOCH + timedelta(milliseconds=t.trade_time_ms),
        wait_for_system_duration=timedelta(seconds=0),
    )
    windower = win.TumblingWindower(length=timedelta(seconds=1), align_to=EPOCH)
    out = win.fold_window("bars_1s", ticks, clock, windower, lambda: None, _fold, _merge)
    sink, late = NullSink(), NullSink()
    op.output("null", out.down, sink)
    op.output("late", out.late, late)
    return flow, sink, late


if __name__ == "__main__":
    if len(sys.argv) > 2:  # noqa: PLR2004 - e2e.py's "bare with pairflow's GC" row
        import gc

        gc.set_threshold(*(int(x) for x in sys.argv[2].split(",")))
    run_main(bare_flow(Path(sys.argv[1]))[0])
