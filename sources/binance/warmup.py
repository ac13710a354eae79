"""Warm start: history before the live stream, so every window is full at once.

On a start without a recovery snapshot (``PAIRFLOW_WARMUP`` = ``auto`` | duration):

1. ``t5`` = start of the 5m interval the flow starts in. Every symbol of the shard is
   claimed first (its live trades are held while the warm-up runs).
2. Closed intervals before ``t5``: ``GET /api/v3/klines`` (weight 2, 1000 rows a page,
   paged by ``startTime``) for each timeframe -> ``Bar`` records (0-trade klines are
   no bar; ids ``None``), emitted per symbol and timeframe in time order, for all
   symbols of the shard before any trade; each complete symbol/timeframe is followed
   by ``Watermark(symbol, tf, t5)`` (no more bars before ``t5``), so the analytics
   can forward-fill a leg that had no trade in the interval(s) just before ``t5``
   instead of waiting for its first live bar to close (up to 5 min for 5m).
3. From ``t5`` on, exact trades with ids: the first trade id at/after ``t5`` from
   ``GET /api/v3/aggTrades?startTime=t5&limit=1`` (its ``f``), then the backfill path
   (``historicalTrades?fromId=``, or ``aggTrades`` on market-data-only hosts) up to
   where the live stream joins, by trade id.

REST down or banned: the flow still starts live; ``Stat`` records (component as the
shard) say how complete the warm-up is: ``warmup_complete`` (0/1),
``warmup_missing_intervals`` (kline intervals not fetched) and
``warmup_missing_symbols`` (symbols without trades since ``t5``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from pairflow.records import Stat, Watermark
from sources.binance.backfill import Backfiller
from sources.binance.rest import TF_MS, RestBanned, RestClient, RestUnavailable
from sources.binance.runtime import ShardRuntime

__all__ = ["WarmupPlan", "WarmupReport", "plan_warmup", "run_warmup"]

logger = logging.getLogger("sources.binance")

FIVE_MIN_MS = 300_000


@dataclass(frozen=True)
class WarmupPlan:
    """What a warm start fetches.

    Attributes:
        t5_ms: Start of the current 5m interval; trades from here, klines before.
        start_ms: Per timeframe, the first kline open time fetched.
    """

    t5_ms: int
    start_ms: dict[str, int]

    def intervals(self, tf: str) -> int:
        """Kline intervals of ``tf`` the plan covers."""
        return (self.t5_ms - self.start_ms[tf]) // TF_MS[tf]


def plan_warmup(warmup: str, windows: Mapping[str, int], now_ms: int) -> WarmupPlan | None:
    """The plan for ``PAIRFLOW_WARMUP`` (``auto``, ``off`` or a duration in seconds).

    Args:
        warmup: ``auto`` (W+1 intervals per analysed timeframe), ``off``, or a
            number of seconds (as normalised by the config: ``6h`` -> ``21600``).
        windows: Analysed timeframes and their window W.
        now_ms: Wall-clock start time.

    Returns:
        The plan, or ``None`` when nothing is to be fetched.
    """
    if warmup == "off":
        return None
    t5 = now_ms - now_ms % FIVE_MIN_MS
    if warmup == "auto":
        starts = {tf: t5 - (w + 1) * TF_MS[tf] for tf, w in windows.items() if tf in TF_MS}
    else:
        span_ms = int(float(warmup) * 1000)
        starts = {tf: t5 - (span_ms // ms) * ms for tf, ms in TF_MS.items()}
    starts = {tf: s for tf, s in starts.items() if s < t5}
    return WarmupPlan(t5, starts)


@dataclass
class WarmupReport:
    """How the warm start went (feeds the ``Stat`` records)."""

    done: bool = False
    missing_intervals: int = 0
    missing_symbols: int = 0
    bars: int = 0
    trades: int = 0
    requests: int = 0
    weight: int = 0
    problems: list[str] = field(default_factory=list)

    def stats(self, ts_ms: int, component: str) -> list[Stat]:
        """The warm-up ``Stat`` records."""
        complete = self.done and not self.missing_intervals and not self.missing_symbols
        return [
            Stat(ts_ms, component, "warmup_complete", 1.0 if complete else 0.0),
            Stat(ts_ms, component, "warmup_missing_intervals", float(self.missing_intervals)),
            Stat(ts_ms, component, "warmup_missing_symbols", float(self.missing_symbols)),
        ]


async def _klines(
    rt: ShardRuntime, rest: RestClient, plan: WarmupPlan, report: WarmupReport
) -> None:
    for symbol in rt.symbols:
        for tf in ("1s", "1m", "5m"):
            if tf not in plan.start_ms:
                continue
            tf_ms = TF_MS[tf]
            cur = plan.start_ms[tf]
            end = plan.t5_ms - 1
            try:
                while cur < plan.t5_ms and not rt.stopping():
                    bars, rows, last = await rest.klines(symbol, tf, cur, end, 1000)
                    for bar in bars:
                        if cur <= bar.open_time_ms < plan.t5_ms:
                            rt.emit(bar, None, None)
                            report.bars += 1
                    if rows < 1000 or last < 0:
                        break
                    cur = last + tf_ms
                    await rt.room()
                if not rt.stopping():
                    # no bar of symbol/tf opens before t5 any more: the analytics may
                    # forward-fill a leg that was quiet in the last interval(s) now
                    rt.emit(Watermark(symbol, tf, plan.t5_ms), None, None)
            except RestUnavailable as exc:
                missing = (plan.t5_ms - cur) // tf_ms
                report.missing_intervals += missing
                report.problems.append(f"{symbol} {tf} klines: {exc}")
                logger.warning(
                    "%s: warm-up: %s %s klines incomplete, %d intervals missing (%s)",
                    rt.name,
                    symbol,
                    tf,
                    missing,
                    exc,
                )
                if isinstance(exc, RestBanned):
                    return


async def _trades(
    rt: ShardRuntime,
    rest: RestClient,
    backfiller: Backfiller,
    plan: WarmupPlan,
    report: WarmupReport,
) -> None:
    seq = rt.seq
    for symbol in rt.symbols:
        st = seq.states[symbol]
        try:
            first = await rest.first_trade_at(symbol, plan.t5_ms)
        except RestUnavailable as exc:
            report.missing_symbols += 1
            report.problems.append(f"{symbol} trades: {exc}")
            logger.warning(
                "%s: warm-up: %s trades since t5 not available (%s); starting live",
                rt.name,
                symbol,
                exc,
            )
            seq.release(symbol)  # live from the first trade that arrives
            continue
        if first is None:  # no trade since t5 yet
            seq.release(symbol)
            continue
        before = seq.counters.trades_backfilled_total
        st.last_id = first[0] - 1
        st.last_time_ms = plan.t5_ms
        await backfiller.run(symbol, open_ended=True, record_gaps=False)
        report.trades += seq.counters.trades_backfilled_total - before


async def run_warmup(
    rt: ShardRuntime, rest: RestClient, backfiller: Backfiller, plan: WarmupPlan
) -> WarmupReport:
    """Fetch the plan's history and emit it ahead of the live trades.

    The caller has claimed every symbol (``seq.claim(symbol, fresh=True)``); this
    releases each one when its trades from ``t5`` are out.
    """
    report = WarmupReport()
    req0, weight0 = rest.requests_total, rest.weight_total
    started = rt.clock()
    try:
        await _klines(rt, rest, plan, report)
        await _trades(rt, rest, backfiller, plan, report)
    finally:
        for symbol in rt.symbols:
            if rt.seq.states[symbol].busy:
                rt.seq.release(symbol)
    report.done = not rt.stopping()
    report.requests = rest.requests_total - req0
    report.weight = rest.weight_total - weight0
    logger.info(
        "%s: warm-up from t5=%d: %d kline bars, %d trades, %d REST requests (weight %d) "
        "in %.1f s%s",
        rt.name,
        plan.t5_ms,
        report.bars,
        report.trades,
        report.requests,
        report.weight,
        rt.clock() - started,
        "" if not report.problems else f"; PARTIAL: {'; '.join(report.problems)[:500]}",
    )
    return report
