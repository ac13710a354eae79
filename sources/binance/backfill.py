"""REST backfill of one shard: gaps in the trade-id sequence and catch-ups.

A gap (``last + 1 .. first held - 1``) is fetched by trade id from
``historicalTrades`` (exact trades). Where the host does not serve it (market-data
only, ``data-api.binance.vision``), from ``aggTrades``: pages by aggregate id from
the last emitted trade's time, each aggregate a ``Tick(count = l - f + 1)`` with
exact ids and counts. An aggregate straddling the gap's first id (some of its trades
already emitted live) cannot be split: it is skipped and its unemitted trades count
as not recovered (the gap is ``unfilled`` by that many, never double counted); an
aggregate straddling the gap's end is emitted whole and the live trades it covers
are dropped as duplicates (same price and taker, so the bars are unchanged).

Every gap is a :class:`~pairflow.records.Gap` record: ``open`` when found, then
``filled`` or ``unfilled``. A REST ban longer than the give-up time is said loudly:
a warning with what to do, and the ``rest_banned_s`` stat.
"""

from __future__ import annotations

import logging

from pairflow.records import Gap, Tick
from sources.binance.rest import EndpointNotServed, RestBanned, RestClient, RestUnavailable
from sources.binance.runtime import ShardRuntime

__all__ = ["Backfiller"]

logger = logging.getLogger("sources.binance")


class Backfiller:
    """Fills a shard's gaps from REST.

    Args:
        rt: The shard's runtime.
        rest: The REST client (set once the loop runs).
    """

    def __init__(self, rt: ShardRuntime, rest: RestClient | None = None) -> None:
        self.rt = rt
        self.rest = rest
        self.catchup_waiting: set[str] = set()
        self.banned_until_wall_ms = 0
        self._overflow_watch: set[str] = set()

    # ----- scheduling ---------------------------------------------------------------------

    def start(self, symbol: str, *, open_ended: bool = False) -> None:
        """Start a backfill task owning ``symbol`` (the sequencer already holds it)."""
        self.rt.spawn(self.run(symbol, open_ended=open_ended), self.rt.backfills)

    def schedule_catchup(self) -> None:
        """After a (re)connect: catch up symbols that stay silent (see ``catchup_delay_s``)."""
        self.catchup_waiting.clear()
        for st in self.rt.seq.states.values():
            if st.last_id is not None:
                st.catchup_due = True
        self.rt.spawn(self._catchup_later(), self.rt.helpers)

    def after_overflow(self, symbol: str) -> None:
        """A live trade of ``symbol`` was dropped (full buffer): fetch the tail later.

        Normally the symbol's next accepted trade reveals the hole by id. If none
        comes (the dropped trades were its last ones for a while), a catch-up asks
        REST once the buffer has room and ``catchup_delay_s`` passed without one.
        """
        if symbol in self._overflow_watch:
            return
        self._overflow_watch.add(symbol)
        self.rt.spawn(self._overflow_catchup(symbol), self.rt.helpers)

    async def _overflow_catchup(self, symbol: str) -> None:
        rt = self.rt
        st = rt.seq.states[symbol]
        try:
            while not rt.stopping():
                await rt.pause(rt.t.catchup_delay_s)
                if rt.stopping() or not st.catchup_due:
                    return  # a later trade was accepted: it showed the gap
                if rt.full():
                    continue  # still overloaded: later drops keep catchup_due set
                if rt.seq.claim(symbol):
                    st.catchup_due = False
                    self.start(symbol, open_ended=True)
                else:
                    self.catchup_waiting.add(symbol)  # the owning backfill catches up
                return
        finally:
            self._overflow_watch.discard(symbol)

    async def _catchup_later(self) -> None:
        rt = self.rt
        await rt.pause(rt.t.catchup_delay_s)
        if rt.stopping():
            return
        for sym, st in rt.seq.states.items():
            if not st.catchup_due:
                continue
            if rt.seq.claim(sym):
                st.catchup_due = False
                self.start(sym, open_ended=True)
            else:
                # a backfill owns it: that task catches up when its gaps are done
                self.catchup_waiting.add(sym)

    async def run(self, symbol: str, *, open_ended: bool, record_gaps: bool = True) -> None:
        """Own ``symbol`` until its held ticks are contiguous again."""
        rt = self.rt
        seq = rt.seq
        try:
            while not rt.stopping():
                seq.drain(symbol)
                gap = seq.next_gap(symbol)
                if gap is not None:
                    await self.fill_gap(symbol, *gap, record=record_gaps)
                elif open_ended or (
                    symbol in self.catchup_waiting and seq.states[symbol].catchup_due
                ):
                    open_ended = False
                    self.catchup_waiting.discard(symbol)
                    seq.states[symbol].catchup_due = False
                    await self.catch_up(symbol, record=record_gaps)
                else:
                    break
        finally:
            seq.release(symbol)

    # ----- fetching -----------------------------------------------------------------------

    async def _page(self, symbol: str, from_id: int, limit: int) -> list[Tick]:
        """One page of trades (or aggregates) with ids from ``from_id``, oldest first."""
        assert self.rest is not None
        if self.rest.serves("historicalTrades"):
            try:
                return await self.rest.historical_trades(symbol, from_id, limit)
            except EndpointNotServed:
                logger.warning(
                    "%s: %s does not serve historicalTrades; backfilling from aggTrades "
                    "(exact ids and counts; see docs/live-mode.md)",
                    self.rt.name,
                    self.rest.base_url,
                )
        st = self.rt.seq.states[symbol]
        start = (st.last_time_ms or 0) if st.last_id is not None and st.last_id < from_id else 0
        pairs = await self.rest.agg_trades(symbol, start_time_ms=start or None, limit=limit)
        # page on by aggregate id until the page reaches from_id (or runs dry)
        while pairs and pairs[-1][1].trade_id < from_id and len(pairs) >= limit:
            pairs = await self.rest.agg_trades(symbol, from_id=pairs[-1][0] + 1, limit=limit)
        return [t for _, t in pairs if t.trade_id >= from_id]

    async def _fetch_nonempty(self, symbol: str, from_id: int, limit: int) -> list[Tick]:
        """Fetch a page, re-asking a few times if REST does not have it yet."""
        rt = self.rt
        for attempt in range(rt.t.rest_empty_retries + 1):
            rows = await self._page(symbol, from_id, limit)
            if any(r.trade_id >= from_id for r in rows) or rt.stopping():
                return rows
            if attempt < rt.t.rest_empty_retries:
                await rt.pause(0.5)
        return []

    def _banned(self, exc: RestBanned) -> str:
        rt = self.rt
        self.banned_until_wall_ms = max(
            self.banned_until_wall_ms, rt.wall_ms() + int(exc.seconds * 1000)
        )
        logger.error(
            "%s: REST host BANNED this IP for %.0f s more (HTTP 418/429): gaps stay unfilled "
            "until then. Stop other processes using this IP's Binance budget, lower "
            "rest_weight_per_min in PAIRFLOW_BINANCE_TUNING, or point PAIRFLOW_BINANCE_REST "
            "at another host; the health tab shows rest_banned_s",
            rt.name,
            exc.seconds,
        )
        return f"banned for {exc.seconds:.0f} s: {exc}"

    async def fill_range(self, symbol: str, lo: int, hi: int) -> tuple[int, str]:
        """Emit trades ``lo..hi`` from REST (stops early when stopping).

        Returns:
            ``(trades emitted, problem or "")``.
        """
        rt = self.rt
        filled = 0
        cur = lo
        try:
            while cur <= hi and not rt.stopping():
                rows = await self._fetch_nonempty(symbol, cur, min(rt.t.rest_limit, hi - cur + 1))
                rows = [r for r in rows if r.trade_id >= cur and r.first_trade_id <= hi]
                if not rows:
                    return filled, f"REST has no trades from id {cur}"
                for row in rows:
                    filled += rt.seq.emit_backfilled(row)
                cur = rows[-1].trade_id + 1
                await rt.room()
        except RestBanned as exc:
            return filled, self._banned(exc)
        except RestUnavailable as exc:
            return filled, str(exc)
        return filled, ""

    async def fill_gap(self, symbol: str, lo: int, hi: int, *, record: bool = True) -> None:
        """Backfill a gap, reporting it as ``Gap`` records (unless ``record`` is off)."""
        rt = self.rt
        size = hi - lo + 1
        counters = rt.seq.counters
        detected = rt.wall_ms()
        if record:
            counters.gaps_found_total += 1
            rt.emit(Gap(symbol, lo, hi, detected, "open", 0), None, None)
            logger.info("%s: %s gap %d..%d (%d trades); backfilling", rt.name, symbol, lo, hi, size)
        started = rt.clock()
        if size > rt.t.max_backfill_trades:
            filled, problem = 0, f"larger than max_backfill_trades={rt.t.max_backfill_trades}"
        else:
            filled, problem = await self.fill_range(symbol, lo, hi)
            if rt.stopping() and (rt.seq.states[symbol].last_id or 0) < hi:
                # not a loss: the snapshot holds the last id emitted, a resumed flow
                # backfills from there; the gap row stays "open"
                logger.info(
                    "%s: %s gap %d..%d left open at stop (%d trades recovered)",
                    rt.name,
                    symbol,
                    lo,
                    hi,
                    filled,
                )
                return
        rt.seq.skip_to(symbol, hi)
        status = "filled" if filled == size else "unfilled"
        if status == "filled":
            logger.info(
                "%s: %s gap %d..%d filled (%d trades in %.2f s)",
                rt.name,
                symbol,
                lo,
                hi,
                filled,
                rt.clock() - started,
            )
        else:
            logger.warning(
                "%s: %s gap %d..%d NOT filled: %d of %d trades recovered (%s)",
                rt.name,
                symbol,
                lo,
                hi,
                filled,
                size,
                problem or "incomplete REST answer",
            )
        if record:
            if status == "filled":
                counters.gaps_filled_total += 1
            else:
                counters.gaps_unfilled_total += 1
            rt.emit(Gap(symbol, lo, hi, detected, status, filled), None, None)

    async def catch_up(self, symbol: str, *, record: bool = True) -> None:
        """Ask REST what happened since the last trade (open-ended, after a reconnect)."""
        assert self.rest is not None
        rt = self.rt
        seq = rt.seq
        st = seq.states[symbol]
        if st.last_id is None:
            return
        lo = st.last_id + 1
        cur = lo
        got = 0
        detected = rt.wall_ms()
        try:
            while not rt.stopping() and got < rt.t.max_backfill_trades:
                rows = await self._page(symbol, cur, rt.t.rest_limit)
                bound = seq.upper_bound(symbol)
                fresh = [
                    r for r in rows if r.trade_id >= cur and (bound is None or r.trade_id <= bound)
                ]
                for row in fresh:
                    got += seq.emit_backfilled(row)
                if fresh:
                    cur = fresh[-1].trade_id + 1
                if len(rows) < rt.t.rest_limit or not fresh:
                    break
                await rt.room()
        except RestBanned as exc:
            self._banned(exc)
        except RestUnavailable as exc:
            logger.warning(
                "%s: %s catch-up after reconnect failed (%s); its next trade will show the gap",
                rt.name,
                symbol,
                exc,
            )
        if got and record:
            counters = seq.counters
            counters.gaps_found_total += 1
            status = "filled" if got == cur - lo else "unfilled"
            if status == "filled":
                counters.gaps_filled_total += 1
            else:
                counters.gaps_unfilled_total += 1
            logger.info(
                "%s: %s caught up %d..%d from REST (%d trades)", rt.name, symbol, lo, cur - 1, got
            )
            rt.emit(Gap(symbol, lo, cur - 1, detected, status, got), None, None)
