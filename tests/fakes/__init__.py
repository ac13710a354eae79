"""Fakes of external services for tests and local demos (never the real network).

``fake_binance`` is the fake exchange; :func:`run_live` drives the real
:class:`sources.binance.BinanceSource` against it inside a Bytewax flow
(``op.input → TestingSink``) and returns what came out.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from pairflow.records import Bar, Gap, Reject, Stat, Tick

__all__ = ["LiveRun", "binance_settings", "run_live", "split_items"]


@dataclass
class LiveRun:
    """Everything a live-source run emitted, split by kind.

    Attributes:
        items: All items in emission order.
        trades: Per symbol, the ``data`` of every trade frame, in emission order.
        passed: Raw text of the frames rejected by the source (malformed...).
        rejects: Those ``Reject`` records.
        bars: ``Bar`` records (warm-up klines).
        stats: ``Stat`` records.
        gaps: ``Gap`` records.
        elapsed_s: Wall time of the run.
    """

    items: list[Any]
    trades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    passed: list[str | bytes] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    stats: list[Stat] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    elapsed_s: float = 0.0

    def ids(self, symbol: str) -> list[int]:
        """Emitted trade ids of ``symbol`` in order."""
        return [d["t"] for d in self.trades.get(symbol, [])]

    def final(self, metric: str, component: str = "binance") -> float:
        """Last reported value of a metric."""
        values = [s.value for s in self.stats if s.metric == metric and s.component == component]
        assert values, f"no {component}/{metric} stat emitted"
        return values[-1]

    def final_gaps(self) -> list[Gap]:
        """The last record of every gap (status ``filled`` or ``unfilled``)."""
        last: dict[tuple[str, int], Gap] = {}
        for gap in self.gaps:
            last[(gap.symbol, gap.from_trade_id)] = gap
        return sorted(last.values(), key=lambda g: (g.symbol, g.from_trade_id))


def _tick_data(tick: Tick) -> dict[str, Any]:
    from sources.binance.wire import tick_frame

    data: dict[str, Any] = orjson.loads(tick_frame(tick))["data"]  # "n" for aggregates
    return data


def split_items(items: list[Any], symbols: Sequence[str]) -> LiveRun:
    """Sort emitted records into a :class:`LiveRun` (trades as frame ``data`` dicts)."""
    run = LiveRun(items=list(items))
    wanted = set(symbols)
    for item in run.items:
        if isinstance(item, Stat):
            run.stats.append(item)
        elif isinstance(item, Gap):
            run.gaps.append(item)
        elif isinstance(item, Bar):
            run.bars.append(item)
        elif isinstance(item, Reject):
            run.rejects.append(item)
            run.passed.append(item.raw)
        elif isinstance(item, Tick) and item.symbol in wanted:
            run.trades.setdefault(item.symbol, []).append(_tick_data(item))
        else:
            run.passed.append(str(item))
    return run


def _last_ids(items: list[Any], upto: int, last: dict[str, int]) -> None:
    for item in items[:upto]:
        if isinstance(item, Tick):
            last[item.symbol] = max(last.get(item.symbol, 0), item.trade_id)


def binance_settings(
    ws_url: str,
    rest_url: str,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    *,
    tuning: Any = None,
    warmup: str = "off",
    record: str = "",
    streams_per_connection: int = 1024,
    stats_every_s: float = 0.5,
    **settings: Any,
) -> Any:
    """``Settings`` of a live source pointed at a fake (a ``BinanceTuning`` as text)."""
    from pairflow.config import Settings
    from sources.registry import BinanceConfig

    cfg = BinanceConfig(
        ws=ws_url,
        rest=rest_url,
        streams_per_connection=streams_per_connection,
        tuning=tuning.overrides() if tuning is not None else "",
        warmup=warmup,
        record=record,
    )
    return Settings(
        source=cfg,
        symbols=tuple(s.upper() for s in symbols),
        stats_every_s=stats_every_s,
        **settings,
    )


def run_live(
    fake: Any,
    *,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    tuning: Any = None,
    timeout_s: float = 60.0,
    settle_s: float = 0.3,
    until: Callable[[Any, list[Any]], bool] | None = None,
    seed: int = 7,
    slow_batch_s: float = 0.0,
    **source_kwargs: Any,
) -> LiveRun:
    """Run ``op.input(BinanceSource) → TestingSink`` against ``fake`` until caught up.

    The flow stops (through the source's stop event) once the fake has broadcast its
    whole recording and every symbol's last trade was emitted (or ``until`` says
    so, or ``timeout_s`` passed), plus ``settle_s``. ``slow_batch_s`` makes the
    flow a slow consumer (each batch the input hands over waits that long), so the
    source's buffer fills while the socket keeps being read.
    """
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, run_main

    from sources.binance import BinanceSource

    stop = threading.Event()
    hooks = {k: source_kwargs.pop(k) for k in ("clock", "wall_ms", "sleep") if k in source_kwargs}
    source = BinanceSource(
        binance_settings(fake.ws_url, fake.rest_url, symbols, tuning=tuning, **source_kwargs),
        rng=random.Random(seed),
        stop_event=stop,
        **hooks,
    )
    out: list[Any] = []
    flow = Dataflow("binance_live_test")
    stream = op.input("in", flow, source)
    if slow_batch_s > 0:

        def slow(batch: list[Any]) -> list[Any]:
            time.sleep(slow_batch_s)
            return batch

        stream = op.flat_map_batch("slow", stream, slow)
    op.output("out", stream, TestingSink(out))

    def caught_up(fake: Any, items: list[Any]) -> bool:
        if not fake.done.is_set():
            return False
        last: dict[str, int] = {}
        _last_ids(items, len(items), last)
        return all(
            fake.happened_ids(s) and last.get(s, 0) >= fake.happened_ids(s)[-1] for s in symbols
        )

    done = until or caught_up

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done(fake, out):
            time.sleep(0.05)
        time.sleep(settle_s)
        stop.set()

    watcher = threading.Thread(target=watch, name="live-test-watch", daemon=True)
    started = time.monotonic()
    watcher.start()
    run_main(flow, epoch_interval=timedelta(milliseconds=50))
    watcher.join(5)
    run = split_items(out, symbols)
    run.elapsed_s = time.monotonic() - started
    return run
