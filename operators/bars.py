"""Event-time tumbling OHLCV bars (1s, 1m, 5m) per symbol, in one stateful step.

Every tick updates the bar of its interval in each timeframe directly (no 1s -> 1m
chaining, so no window can see an upstream bar "late"). Intervals are epoch-aligned
and keyed by the trade time ``T``.

When does a bar close?

* **Event time** (always): a tick in a later interval closes the open one; end of
  input (EOF) closes everything. With a max-speed replay this is the only rule, so
  the result is deterministic whatever the machine's speed.
* **Wall clock** (live and real-time replay): the symbol's event clock is
  extrapolated as ``last T + (now - arrival of last T)``; an interval closes once
  that clock passes its end plus ``grace_ms``. A quiet symbol thus still gets its
  bar (and :class:`Watermark` records) about ``grace_ms`` after the interval ends.
  This does not depend on the local clock agreeing with Binance's.

After a restart from a recovery snapshot the extrapolated clock resumes where it
stopped (downtime does not count), so trades backfilled for the gap are on time.

Late ticks (a trade for an interval already closed, e.g. backfilled after a
reconnect): if the interval ended at most ``amend_horizon_ms`` before the close
frontier, the bar is amended and emitted again (the DuckDB sink upserts, so the row
is corrected in place); older ones become ``late_tick`` rejects — counted and kept.
``open``/``close`` are the prices of the lowest/highest trade id, so amending is
order-independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bytewax.operators import StatefulBatchLogic

from pairflow.records import Bar, Reject, SourceClock, Stat, Tick, Watermark, tick_raw
from pairflow.timeutil import TF_MS, TIMEFRAMES, ms_to_dt, now_ms

AMEND_HORIZON_MS = 300_000
"""How far behind the close frontier a late tick may still amend its bar (5 min)."""


class BarAcc:
    """Mutable accumulator of one bar (internal to the bar operator)."""

    __slots__ = (
        "close",
        "first_id",
        "high",
        "last_id",
        "low",
        "open",
        "quote_volume",
        "taker_buy",
        "trades",
        "volume",
    )

    def __init__(self, tick: Tick) -> None:
        p = tick.price
        q = tick.qty
        self.open = self.high = self.low = self.close = p
        self.volume = q
        self.quote_volume = p * q
        self.taker_buy = 0.0 if tick.buyer_is_maker else q
        self.trades = tick.count
        self.first_id = tick.trade_id - tick.count + 1
        self.last_id = tick.trade_id

    def add(self, tick: Tick) -> None:
        """Fold one more tick in (any order)."""
        p = tick.price
        q = tick.qty
        tid = tick.trade_id
        n = tick.count
        if tid > self.last_id:
            self.close = p
            self.last_id = tid
        first = tid - n + 1
        if first < self.first_id:
            self.open = p
            self.first_id = first
        if p > self.high:
            self.high = p
        elif p < self.low:
            self.low = p
        self.volume += q
        self.quote_volume += p * q
        if not tick.buyer_is_maker:
            self.taker_buy += q
        self.trades += n

    def copy(self) -> BarAcc:
        """An independent copy (for snapshots)."""
        new = BarAcc.__new__(BarAcc)
        for name in BarAcc.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def to_bar(self, symbol: str, tf: str, open_time_ms: int) -> Bar:
        """Freeze into a :class:`Bar` record."""
        return Bar(
            symbol,
            tf,
            open_time_ms,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy,
            self.first_id,
            self.last_id,
        )


@dataclass
class BarState:
    """Bar-building state of one symbol.

    Attributes:
        symbol: The symbol (known from the first tick; bytewax builders get no key).
        open_time: Per tf, start of the open interval (``-1`` if none is open).
        open_acc: Per tf, the open interval's accumulator.
        closed_through: Per tf, every interval starting before this is closed.
        recent: Per tf, closed bars still amendable, by open time.
        last_event_ms: Highest trade time seen.
        last_arrival_ms: Wall-clock time when ``last_event_ms`` was seen.
        late_total: Ticks rejected as too late.
        amended_total: Bars re-emitted because of a late tick.
        source_clock_ms: Latest :class:`~pairflow.records.SourceClock` of a paced
            source (``-1``: none; the clock is extrapolated from trade times).
    """

    symbol: str = ""
    open_time: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMEFRAMES, -1))
    open_acc: dict[str, BarAcc | None] = field(
        default_factory=lambda: dict.fromkeys(TIMEFRAMES, None)
    )
    closed_through: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMEFRAMES, -1))
    recent: dict[str, dict[int, BarAcc]] = field(
        default_factory=lambda: {tf: {} for tf in TIMEFRAMES}
    )
    last_event_ms: int = -1
    last_arrival_ms: int = -1
    late_total: int = 0
    amended_total: int = 0
    source_clock_ms: int = -1

    def copy(self) -> BarState:
        """Deep copy (accumulators are mutable)."""
        return BarState(
            symbol=self.symbol,
            open_time=dict(self.open_time),
            open_acc={tf: (a.copy() if a else None) for tf, a in self.open_acc.items()},
            closed_through=dict(self.closed_through),
            recent={tf: {o: a.copy() for o, a in d.items()} for tf, d in self.recent.items()},
            last_event_ms=self.last_event_ms,
            last_arrival_ms=self.last_arrival_ms,
            late_total=self.late_total,
            amended_total=self.amended_total,
            source_clock_ms=self.source_clock_ms,
        )


BarOut = Bar | Watermark | Reject | Stat


BarIn = list[Tick] | SourceClock
"""A chunk of one symbol's ticks, or the source's clock."""


class BarLogic(StatefulBatchLogic[BarIn, BarOut, BarState]):
    """Bar builder for one symbol (input: lists of ticks; output: bars and friends).

    Args:
        source: Source name for ``late_tick`` rejects.
        wall_clock: Also close bars on the (extrapolated) wall clock.
        grace_ms: Wall-clock mode: how long after an interval's end to wait.
        amend_horizon_ms: How far behind the close frontier a late tick may amend.
        state: Resume state, or ``None`` for a fresh symbol.
        clock_ms: Wall clock (injectable for tests).
    """

    def __init__(
        self,
        source: str,
        *,
        wall_clock: bool,
        grace_ms: int,
        amend_horizon_ms: int = AMEND_HORIZON_MS,
        state: BarState | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.source = source
        self.wall_clock = wall_clock
        self.grace_ms = grace_ms
        self.amend_horizon_ms = amend_horizon_ms
        self.state = state if state is not None else BarState()
        self.clock_ms = clock_ms
        if state is not None and wall_clock and state.last_event_ms >= 0:
            # Resumed after a restart: the event clock was paused while we were down.
            # Without this the downtime would close every bar at once and the
            # backfilled trades of the gap would all arrive "late".
            state.last_arrival_ms = clock_ms()

    @property
    def symbol(self) -> str:
        """The symbol this logic builds bars for."""
        return self.state.symbol

    # -- helpers -------------------------------------------------------------------
    def _close_open(self, tf: str, out: list[BarOut]) -> None:
        st = self.state
        o = st.open_time[tf]
        acc = st.open_acc[tf]
        if acc is None:
            return
        out.append(acc.to_bar(self.symbol, tf, o))
        st.recent[tf][o] = acc
        st.open_acc[tf] = None
        st.open_time[tf] = -1
        st.closed_through[tf] = max(st.closed_through[tf], o + TF_MS[tf])

    def _advance(self, tf: str, through_ms: int, out: list[BarOut]) -> None:
        """Close everything before ``through_ms`` in ``tf`` and say so downstream."""
        st = self.state
        if st.open_acc[tf] is not None and st.open_time[tf] + TF_MS[tf] <= through_ms:
            self._close_open(tf, out)
        if through_ms > st.closed_through[tf]:
            st.closed_through[tf] = through_ms
            out.append(Watermark(self.symbol, tf, through_ms))
        self._prune(tf)

    def _prune(self, tf: str) -> None:
        st = self.state
        recent = st.recent[tf]
        cutoff = st.closed_through[tf] - self.amend_horizon_ms - TF_MS[tf]
        # closed bars are inserted in time order (amendments of empty intervals aside,
        # which linger at most until an older key is popped): pop from the front
        while recent:
            oldest = next(iter(recent))
            if oldest >= cutoff:
                break
            del recent[oldest]

    def _amend(self, tick: Tick, tf: str, o: int, amended: dict[tuple[str, int], BarAcc]) -> None:
        """Fold a late tick into the closed bar of interval ``o`` (made if it was empty)."""
        st = self.state
        acc = st.recent[tf].get(o)
        if acc is None:
            acc = BarAcc(tick)
            st.recent[tf][o] = acc
        else:
            acc.add(tick)
        amended[(tf, o)] = acc

    # -- bytewax callbacks ----------------------------------------------------------
    def on_batch(self, values: list[BarIn]) -> tuple[list[BarOut], bool]:
        """Fold ticks into bars, closing intervals that a newer tick proves finished.

        A :class:`SourceClock` value (a paced source's clock) moves the close frontier
        instead of the wall-clock extrapolation, so bars close on source time.
        """
        st = self.state
        out: list[BarOut] = []
        amended: dict[tuple[str, int], BarAcc] = {}
        open_time = st.open_time
        open_acc = st.open_acc
        last_event = st.last_event_ms
        for chunk in values:
            if isinstance(chunk, SourceClock):
                st.source_clock_ms = max(st.source_clock_ms, chunk.now_ms)
                continue
            if not st.symbol and chunk:
                st.symbol = chunk[0].symbol
            for tick in chunk:
                t_ms = tick.trade_time_ms
                if t_ms > last_event:  # noqa: PLR1730 - faster than max() per tick
                    last_event = t_ms
                # Fast path (most ticks): inside the open 1s bar, hence inside the open
                # 1m and 5m bars too (they close no earlier than the 1s bar they contain).
                if t_ms - t_ms % 1000 == open_time["1s"]:
                    open_acc["1s"].add(tick)  # type: ignore[union-attr]
                    open_acc["1m"].add(tick)  # type: ignore[union-attr]
                    open_acc["5m"].add(tick)  # type: ignore[union-attr]
                    continue
                # One decision per tick for all timeframes: the 1s frontier closes
                # first, so a tick within the horizon of it is amendable in every tf
                # (their kept bars reach at least as far back); beyond it, it is a
                # ``late_tick`` reject for all three.
                o_1s = t_ms - t_ms % 1000
                if o_1s < st.closed_through["1s"] - self.amend_horizon_ms:
                    st.late_total += 1
                    out.append(Reject(self.clock_ms(), self.source, "late_tick", tick_raw(tick)))
                    continue
                for tf in TIMEFRAMES:
                    o = t_ms - t_ms % TF_MS[tf]
                    cur = open_time[tf]
                    if o == cur:
                        open_acc[tf].add(tick)  # type: ignore[union-attr]
                    elif o > cur and o >= st.closed_through[tf]:
                        if cur >= 0:
                            self._close_open(tf, out)
                        if o > st.closed_through[tf] >= 0:
                            out.append(Watermark(self.symbol, tf, o))
                        st.closed_through[tf] = max(st.closed_through[tf], o)
                        open_time[tf] = o
                        open_acc[tf] = BarAcc(tick)
                        self._prune(tf)
                    else:
                        self._amend(tick, tf, o, amended)
        if last_event > st.last_event_ms:
            st.last_event_ms = last_event
            st.last_arrival_ms = self.clock_ms()
        if amended:
            st.amended_total += len(amended)
            for (tf, o), acc in amended.items():
                out.append(acc.to_bar(self.symbol, tf, o))
            out.append(
                Stat(self.clock_ms(), f"bars:{self.symbol}", "amended_bars_total", st.amended_total)
            )
        if self.wall_clock:
            out.extend(self._close_by_clock())
        return out, StatefulBatchLogic.RETAIN

    def _event_clock_ms(self) -> int:
        """The symbol's event clock in ms.

        The source's own clock if it sends one, else the last trade time
        extrapolated by the wall time since it arrived.
        """
        st = self.state
        if st.source_clock_ms >= 0:
            return max(st.source_clock_ms, st.last_event_ms)
        return st.last_event_ms + (self.clock_ms() - st.last_arrival_ms)

    def _close_by_clock(self) -> list[BarOut]:
        out: list[BarOut] = []
        if self.state.last_event_ms < 0:
            return out
        frontier = self._event_clock_ms() - self.grace_ms
        for tf in TIMEFRAMES:
            through = frontier - frontier % TF_MS[tf]
            if through > self.state.closed_through[tf] or (
                self.state.open_acc[tf] is not None
                and self.state.open_time[tf] + TF_MS[tf] <= through
            ):
                self._advance(tf, through, out)
        return out

    def on_notify(self) -> tuple[list[BarOut], bool]:
        """Wall-clock mode: close intervals the extrapolated event clock has passed."""
        return self._close_by_clock(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[BarOut], bool]:
        """End of input: every open interval is complete, emit it."""
        out: list[BarOut] = []
        for tf in TIMEFRAMES:
            if self.state.open_acc[tf] is not None:
                self._close_open(tf, out)
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """Wall-clock mode: when the next 1s interval should close (None otherwise)."""
        st = self.state
        if not self.wall_clock or st.last_event_ms < 0 or st.source_clock_ms >= 0:
            return None  # event time only, nothing yet, or the source's clock drives
        tf_ms = TF_MS["1s"]
        next_end = max(st.closed_through["1s"], st.open_time["1s"]) + tf_ms
        due_event_ms = next_end + self.grace_ms
        due_wall_ms = st.last_arrival_ms + (due_event_ms - st.last_event_ms)
        return ms_to_dt(due_wall_ms)

    def snapshot(self) -> BarState:
        """Deep copy of the state for recovery."""
        return self.state.copy()
