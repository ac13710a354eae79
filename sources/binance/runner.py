"""One shard's background thread: its asyncio loop, wiring of the jobs, stats."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from pairflow.backoff import Backoff
from pairflow.config import ConfigError
from pairflow.records import Stat
from sources.binance.backfill import Backfiller
from sources.binance.connection import ConnectionManager
from sources.binance.recorder import TradeRecorder
from sources.binance.rest import RestClient, RestUnavailable, rest_gate
from sources.binance.runtime import ShardRuntime
from sources.binance.tuning import BinanceTuning
from sources.binance.warmup import WarmupPlan, WarmupReport, run_warmup

__all__ = ["ShardRunner"]

logger = logging.getLogger("sources.binance")


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


class ShardRunner(ShardRuntime):
    """Owns one shard: a thread running an asyncio loop with WS + REST clients.

    Args:
        ws_base: WebSocket base URL.
        rest_base: REST base URL.
        stats_every_s: Period of the ``Stat`` records.
        resume: Last trade id per symbol from a recovery snapshot (no warm-up then).
        api_key: Optional REST API key (never logged).
        warmup: The warm-start plan (``None``: none).
        recorder: Where emitted trades are recorded (``None``: not recorded).
        check_symbols: Check the symbols against ``exchangeInfo`` first.
        **kw: :class:`ShardRuntime` arguments.
    """

    def __init__(
        self,
        *,
        name: str,
        symbols: Sequence[str],
        ws_base: str,
        rest_base: str,
        tuning: BinanceTuning,
        stats_every_s: float,
        resume: Mapping[str, int] | None,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[Any]] | None,
        rng: random.Random,
        api_key: str | None,
        stop_event: threading.Event | None,
        warmup: WarmupPlan | None = None,
        recorder: TradeRecorder | None = None,
        check_symbols: bool = True,
    ) -> None:
        super().__init__(
            name=name,
            symbols=symbols,
            tuning=tuning,
            clock=clock,
            wall_ms=wall_ms,
            sleep=sleep,
            rng=rng,
            stop_event=stop_event,
        )
        self.rest_base = rest_base
        self.stats_every_s = stats_every_s
        self.resumed = bool(resume)
        if resume:
            self.seq.resume(resume)
        self.warmup = None if resume else warmup
        self.warmup_report: WarmupReport | None = None
        self.recorder = recorder
        if recorder is not None:
            self.seq.on_tick = recorder.write
        self.check_symbols = check_symbols
        self._api_key = api_key
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._thread_main, name=f"pairflow-{name}", daemon=True
        )
        self.backfiller = Backfiller(self)
        self.conns = ConnectionManager(
            self,
            ws_base,
            on_gap=self.backfiller.start,
            on_reconnect=self.backfiller.schedule_catchup,
            on_overflow=self.backfiller.after_overflow,
        )
        self.url = self.conns.url
        self._rest: RestClient | None = None
        self._stats_at = clock()
        self._ticks_at_stats = 0

    # ----- thread side (called from Bytewax's thread) -----------------------------

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to close connections and finish (returns at once)."""
        self.stop_flag.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to Bytewax by next_batch
            self.error = exc
            logger.exception("%s: live input crashed", self.name)
        finally:
            if self.recorder is not None:
                self.recorder.close()
            self.finished.set()

    # ----- loop side ----------------------------------------------------------------

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        self.spawn(self.watch_stop(), self.helpers)
        self._stats_at = self.clock()
        headers = {"User-Agent": "pairflow-live/0.1"}
        async with aiohttp.ClientSession(headers=headers, trust_env=True) as session:
            self._rest = RestClient(
                self.rest_base,
                session,
                rest_gate(self.rest_base, self.t.rest_weight_per_min),
                give_up_s=self.t.rest_give_up_s,
                timeout_s=self.t.rest_timeout_s,
                ip_weight_cap=int(self.t.rest_ip_weight_cap),
                backoff=Backoff(0.25, 5.0, rng=self.rng),
                clock=self.clock,
                wall_s=lambda: self.wall_ms() / 1000.0,
                sleep=self.rest_sleep,
                api_key=self._api_key,
                name=self.name,
            )
            self.backfiller.rest = self._rest
            if self.check_symbols:  # beside the connection: a slow REST delays nothing
                self.spawn(self._check_task(), self.helpers)
            self.spawn(self._stats_loop(), self.helpers)
            if self.recorder is not None:
                self.spawn(self.recorder.flush_loop(self.t.record_flush_s), self.helpers)
            if self.warmup is not None:
                for sym in self.symbols:
                    self.seq.claim(sym, fresh=True)  # live trades wait for the history
                self.spawn(self._warm(self.warmup), self.backfills)
            try:
                await self.conns.supervise(need_catchup=self.resumed)
            finally:
                await self._shutdown()
                self._emit_stats()
                for task in list(self.helpers):
                    task.cancel()

    async def _check_task(self) -> None:
        try:
            await self._check_symbols()
        except ConfigError as exc:
            self.error = exc
            logger.error("%s: %s", self.name, exc)  # noqa: TRY400 - a user error
            assert self.stop is not None
            self.stop.set()

    async def _check_symbols(self) -> None:
        """Fail clearly on a misspelled or halted symbol (REST down: warn, go on)."""
        assert self._rest is not None
        try:
            status = await self._rest.symbol_status(list(self.symbols))
        except RestUnavailable as exc:
            logger.warning(
                "%s: could not check the symbols against exchangeInfo (%s)", self.name, exc
            )
            return
        unknown = [s for s in self.symbols if s not in status]
        halted = {s: status[s] for s in self.symbols if s in status and status[s] != "TRADING"}
        if unknown or halted:
            parts = []
            if unknown:
                parts.append(f"unknown on {self.rest_base}: {', '.join(unknown)} (misspelled?)")
            if halted:
                parts.append(
                    "not trading: " + ", ".join(f"{s} (status {v})" for s, v in halted.items())
                )
            msg = f"PAIRFLOW_SYMBOLS: {'; '.join(parts)}; fix PAIRFLOW_SYMBOLS"
            raise ConfigError(msg)

    async def _warm(self, plan: WarmupPlan) -> None:
        assert self._rest is not None
        self.warmup_report = await run_warmup(self, self._rest, self.backfiller, plan)
        for stat in self.warmup_report.stats(self.wall_ms(), self.name):
            self.emit(stat, None, None)

    async def _shutdown(self) -> None:
        await self.conns.close_all()
        if self.backfills:
            await asyncio.wait(set(self.backfills), timeout=self.t.stop_grace_s)
        for task in list(self.backfills):
            task.cancel()
        if self.backfills:
            await asyncio.wait(set(self.backfills), timeout=1.0)
        logger.info(
            "%s: stopped (%d trades, %d backfilled, %d reconnects)",
            self.name,
            self.seq.counters.ticks_total,
            self.seq.counters.trades_backfilled_total,
            self.conns.reconnects_total,
        )

    # ----- stats ------------------------------------------------------------------------

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_every_s)
            self._emit_stats()

    def _emit_stats(self) -> None:
        now = self.clock()
        ts = self.wall_ms()
        c = self.seq.counters
        elapsed = now - self._stats_at
        rate = (c.ticks_total - self._ticks_at_stats) / elapsed if elapsed > 0 else 0.0
        self._stats_at = now
        self._ticks_at_stats = c.ticks_total
        rest = self._rest
        banned_s = max(0.0, (self.backfiller.banned_until_wall_ms - ts) / 1000.0)
        metrics: dict[str, float] = {
            "ticks_per_s": rate,
            "ticks_total": c.ticks_total,
            "reconnects_total": self.conns.reconnects_total,
            "gaps_found_total": c.gaps_found_total,
            "gaps_filled_total": c.gaps_filled_total,
            "gaps_unfilled_total": c.gaps_unfilled_total,
            "trades_backfilled_total": c.trades_backfilled_total,
            "duplicates_dropped_total": c.duplicates_dropped_total,
            "frames_passed_through_total": c.passed_through_total,
            "overflow_dropped_total": c.overflow_dropped_total,
            "straddling_aggregates_total": c.straddling_aggregates_total,
            "rotations_total": self.conns.rotations_total,
            "connect_attempts_total": self.conns.connect_attempts_total,
            "rest_requests_total": rest.requests_total if rest else 0,
            "rest_weight_total": rest.weight_total if rest else 0,
            "rest_banned_s": banned_s,
            "held_frames": self.seq.held_count(),
            "connected": 1.0 if self.conns.connected() else 0.0,
        }
        if self.recorder is not None:
            metrics["recorded_total"] = self.recorder.written
        lag_values = self.conns.lag
        if lag_values:
            lag = sorted(lag_values)
            metrics["lag_p50_ms"] = _percentile(lag, 0.50)
            metrics["lag_p99_ms"] = _percentile(lag, 0.99)
            self.conns.lag = []
        for metric, value in metrics.items():
            self.emit(Stat(ts, self.name, metric, float(value)), None, None)
        if self.warmup_report is not None:
            for stat in self.warmup_report.stats(ts, self.name):
                self.emit(stat, None, None)
