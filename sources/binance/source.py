"""Live Binance spot trades as a Bytewax input (:class:`BinanceSource`).

:class:`BinanceSource` is a :class:`~bytewax.inputs.FixedPartitionedSource` over
Binance *combined streams* (``{ws}/stream?streams=btcusdt@trade/ethusdt@trade``).
The symbols are cut into shards of at most ``streams_per_connection`` streams
(Binance allows 1024 per connection); each shard is one partition, served by a
:class:`~sources.binance.runner.ShardRunner` (a background thread with its own
asyncio loop). ``next_batch`` only drains an in-memory buffer, so it never blocks;
``next_awake`` paces polling of an idle shard (no busy loop).

Records emitted (typed, see ``docs/live-mode.md``): ``Tick`` (live, backfilled and
warm-up trades, strictly increasing ids per symbol), ``Bar`` (warm-up klines before
``t5``, ids ``None``), ``Reject`` (frames that are not trades, with the raw text),
``Gap`` (``open`` -> ``filled`` / ``unfilled``) and ``Stat`` (component ``binance``,
or ``binance-<shard>``).

Where the jobs live: :mod:`.tuning`, :mod:`.connection` (connect, rotate, watchdog,
pump), :mod:`.backfill`, :mod:`.warmup`, :mod:`.sequencer`, :mod:`.rest`,
:mod:`.recorder`, :mod:`.runner` (the shard's loop and stats), :mod:`.wire`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pairflow.config import ConfigError, Settings
from pairflow.records import SourceItem
from pairflow.timeutil import now_ms
from sources.binance.connection import stream_url
from sources.binance.recorder import TradeRecorder
from sources.binance.runner import ShardRunner
from sources.binance.tuning import MAX_STREAMS_PER_CONNECTION, BinanceTuning
from sources.binance.warmup import plan_warmup
from sources.registry import BinanceConfig

__all__ = ["MAX_STREAMS_PER_CONNECTION", "BinanceSource", "BinanceTuning", "stream_url"]


logger = logging.getLogger("sources.binance")


class _BinancePartition(StatefulSourcePartition[SourceItem, dict[str, int]]):
    """Bytewax side of a shard: drains the runner's buffer without blocking."""

    def __init__(self, runner: ShardRunner, resume: Mapping[str, int] | None) -> None:
        self._runner = runner
        self._symbols = frozenset(runner.symbols)
        self._last: dict[str, int] = dict(resume or {})
        self._poll = timedelta(seconds=runner.t.poll_interval_s)
        self._max_batch = runner.t.max_batch
        self._idle = False

    def next_batch(self) -> list[SourceItem]:
        """Return what arrived since the last call (possibly nothing)."""
        runner = self._runner
        finished = runner.finished.is_set()
        out = runner.out
        batch: list[SourceItem] = []
        last = self._last
        for _ in range(min(len(out), self._max_batch)):
            item, sym, tid = out.popleft()
            batch.append(item)
            if sym is not None and tid is not None:
                last[sym] = tid
        if not batch and finished:
            if isinstance(runner.error, ConfigError):
                raise runner.error
            if runner.error is not None:
                msg = f"{runner.name}: live input crashed"
                raise RuntimeError(msg) from runner.error
            raise StopIteration
        self._idle = not batch
        return batch

    def next_awake(self) -> datetime | None:
        """Poll again at once while data flows, else after ``poll_interval_s``."""
        if self._idle:
            return datetime.now(timezone.utc) + self._poll
        return None

    def snapshot(self) -> dict[str, int]:
        """Last trade id emitted per symbol (a resumed flow backfills after it)."""
        return dict(self._last)

    def close(self) -> None:
        """Stop the shard's thread."""
        self._runner.request_stop()
        self._runner.join(10.0)


class BinanceSource(FixedPartitionedSource[SourceItem, dict[str, int]]):
    """Live Binance spot ``@trade`` streams; one partition per connection shard.

    Everything comes from ``settings`` (``settings.source`` a :class:`BinanceConfig`:
    URLs, ``streams_per_connection``, tuning, API key, warm-up, recording; plus
    ``symbols``, ``windows`` and ``stats_every_s``). The keyword arguments are test
    hooks only.

    Args:
        settings: The validated configuration.
        clock: Monotonic clock in seconds (policy timing).
        wall_ms: Wall clock in epoch ms (stamps ``Stat``/``Gap``, lag, warm-up ``t5``).
        sleep: Async sleep used for backoff waits (inject a fake to test the
            reconnect loop without waiting; default: an interruptible sleep).
        rng: Randomness of the backoff jitter.
        stop_event: When set, every partition ends (Bytewax then sees EOF). The
            process-wide :func:`pairflow.shutdown.request_stop` (SIGTERM in
            ``python dataflow.py``) does the same.
        check_symbols: Check the symbols against ``exchangeInfo`` at start.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        rng: random.Random | None = None,
        stop_event: threading.Event | None = None,
        check_symbols: bool = True,
    ) -> None:
        cfg = settings.source
        if not isinstance(cfg, BinanceConfig):
            msg = f"BinanceSource needs PAIRFLOW_SOURCE=binance settings, got {cfg.kind}"
            raise ConfigError(msg)
        syms = tuple(s.strip().upper() for s in settings.symbols if s.strip())
        if not syms:
            msg = "BinanceSource needs at least one symbol"
            raise ConfigError(msg)
        self.settings = settings
        self.config = cfg
        self.symbols = syms
        self.ws_url = cfg.ws.rstrip("/")
        self.rest_url = cfg.rest.rstrip("/")
        self.streams_per_connection = max(
            1, min(int(cfg.streams_per_connection), MAX_STREAMS_PER_CONNECTION)
        )
        self.stats_every_s = float(settings.stats_every_s)
        self.tuning = BinanceTuning.parse(cfg.tuning)
        self._api_key = cfg.api_key
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._stop_event = stop_event or threading.Event()
        self._check_symbols = check_symbols
        self._recorder: TradeRecorder | None = None
        n = self.streams_per_connection
        self.shards: list[tuple[str, ...]] = [syms[i : i + n] for i in range(0, len(syms), n)]
        self._runners: list[ShardRunner] = []

    def __repr__(self) -> str:
        return f"BinanceSource(ws={self.ws_url!r}, rest={self.rest_url!r}, symbols={self.symbols})"

    def _part_name(self, index: int) -> str:
        return "binance" if len(self.shards) == 1 else f"binance-{index}"

    def list_parts(self) -> list[str]:
        """One partition per connection shard: ``binance-0``, ``binance-1``..."""
        return [f"binance-{i}" for i in range(len(self.shards))]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, int] | None
    ) -> _BinancePartition:
        """Start the shard's connection thread (resuming after ``resume_state``)."""
        index = int(for_part.rsplit("-", 1)[1])
        resume = {
            s: int(v)
            for s, v in (resume_state or {}).items()
            if s in self.shards[index] and isinstance(v, int)
        }
        plan = None
        if not resume:
            plan = plan_warmup(self.config.warmup, self.settings.windows, self._wall_ms())
        recorder = None
        if self.config.record:
            if self._recorder is None:
                self._recorder = TradeRecorder(self.config.record)
            recorder = self._recorder
            recorder.attach()
        runner = ShardRunner(
            name=self._part_name(index),
            symbols=self.shards[index],
            ws_base=self.ws_url,
            rest_base=self.rest_url,
            tuning=self.tuning,
            stats_every_s=self.stats_every_s,
            resume=resume or None,
            clock=self._clock,
            wall_ms=self._wall_ms,
            sleep=self._sleep,
            rng=self._rng,
            api_key=self._api_key,
            stop_event=self._stop_event,
            warmup=plan,
            recorder=recorder,
            check_symbols=self._check_symbols,
        )
        if resume:
            logger.info(
                "%s: resuming after trade ids %s; backfilling what was missed (no warm-up)",
                runner.name,
                resume,
            )
        self._runners.append(runner)
        runner.start()
        return _BinancePartition(runner, resume)

    def stop(self) -> None:
        """End the input gracefully: partitions drain their buffers, then EOF.

        Safe to call from any thread or a signal handler.
        """
        self._stop_event.set()
