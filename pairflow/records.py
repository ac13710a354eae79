"""Records that travel through the dataflow.

All are small frozen dataclasses with ``slots``: cheap to create, picklable across
workers and into recovery snapshots. Times are epoch milliseconds (``*_ms``); use
:mod:`pairflow.timeutil` to turn them into datetimes at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import orjson


class Tick(NamedTuple):
    """One validated trade (or an aggregate of consecutive trades at one price).

    Every source turns its own wire format into ticks (Binance frames, public-data
    CSV rows, simulated trades); nothing after the source sees the wire format.

    A ``NamedTuple`` rather than a frozen dataclass: it is created once per trade on
    the hot path, and tuple construction is ~3x cheaper (measured in
    ``benchmarks/``); it is just as immutable and picklable.

    Attributes:
        symbol: Upper-case Binance symbol, e.g. ``BTCUSDT``.
        trade_id: Binance trade id ``t`` (strictly increasing per symbol).
        price: ``p`` as a float (finite, > 0).
        qty: ``q`` as a float (finite, > 0), in base-asset units.
        trade_time_ms: ``T``, the trade time; the event time used for bars.
        event_time_ms: ``E``, when Binance emitted the event.
        buyer_is_maker: ``m``; true means the taker sold.
        p: ``p`` exactly as received (kept for the Redis tee).
        q: ``q`` exactly as received (kept for the Redis tee).
        count: Trades this tick stands for: 1 for a trade; ``l - f + 1`` for an
            aggregate trade (ids ``trade_id - count + 1 .. trade_id``, one price).
    """

    symbol: str
    trade_id: int
    price: float
    qty: float
    trade_time_ms: int
    event_time_ms: int
    buyer_is_maker: bool
    p: str
    q: str
    count: int = 1  # type: ignore[assignment]  # shadows tuple.count, never called on ticks

    @property
    def first_trade_id(self) -> int:
        """Lowest trade id this tick covers (``trade_id`` unless it is an aggregate)."""
        return self.trade_id - self.count + 1


def tick_raw(tick: Tick) -> str:
    """A tick as JSON text for ``rejects.raw`` when a valid tick is refused later.

    Keys are the short trade-field names (``s t p q T E m``; ``n`` for aggregates),
    independent of the source's wire format.
    """
    data: dict[str, object] = {
        "s": tick.symbol,
        "t": tick.trade_id,
        "p": tick.p,
        "q": tick.q,
        "T": tick.trade_time_ms,
        "E": tick.event_time_ms,
        "m": tick.buyer_is_maker,
    }
    if tick.count != 1:
        data["n"] = tick.count
    return orjson.dumps(data).decode()


@dataclass(frozen=True, slots=True)
class Reject:
    """An input that could not be used, kept for the ``rejects`` audit table.

    Attributes:
        received_at_ms: Wall-clock time the flow saw the input.
        source: Which source produced it (``binance``, ``replay``, ``synthetic``...).
        reason: Short machine-readable reason, e.g. ``price_not_positive``; a detail
            may follow after a colon (``missing_field:p``).
        raw: The raw input (truncated to 4096 characters).
    """

    received_at_ms: int
    source: str
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Bar:
    """A closed OHLCV bar of one symbol over one epoch-aligned interval.

    ``open``/``close`` are the prices of the lowest/highest trade id in the interval,
    so a bar does not depend on the order in which its ticks arrived. Bars made from
    exchange klines (warm start, kline dumps) carry no trade ids (``None``).

    Attributes:
        symbol: Binance symbol.
        tf: Timeframe, one of ``1s``, ``1m``, ``5m``.
        open_time_ms: UTC start of the interval (aligned to the Unix epoch).
        open: Price of the first trade.
        high: Highest price.
        low: Lowest price.
        close: Price of the last trade.
        volume: Sum of quantities (base asset).
        quote_volume: Sum of price * quantity (quote asset).
        trades: Number of trades.
        taker_buy_volume: Sum of quantities where the taker bought (``m`` false).
        first_trade_id: Lowest trade id in the interval.
        last_trade_id: Highest trade id in the interval.
    """

    symbol: str
    tf: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_volume: float
    first_trade_id: int | None
    last_trade_id: int | None

    @property
    def vwap(self) -> float:
        """Volume-weighted average price, ``quote_volume / volume``."""
        return self.quote_volume / self.volume


@dataclass(slots=True)
class AnalyticsRow:
    """One row of the ``analytics`` table (see docs/design.md "Analytics definitions").

    Not ``frozen`` (treat it as immutable: ``dataclasses.replace`` for a changed copy):
    a frozen dataclass's ``__init__`` sets each of the 21 fields through
    ``object.__setattr__``, 2.2 µs a row against 0.3 µs, paid on every row of every pair.

    Undefined statistics are ``None`` (written as SQL NULL), never NaN.
    ``spread_std`` (an addition to docs/design.md's columns) is the standard deviation
    (ddof=1) of the window's spreads, the z-score's denominator, so readers can draw
    mean ± k·σ bands without recomputing statistics.
    """

    pair: str
    tf: str
    ts_ms: int
    window: int
    y_close: float
    x_close: float
    alpha: float | None
    beta: float | None
    spread: float | None
    zscore: float | None
    corr: float | None
    adf_pvalue: float | None
    eg_pvalue: float | None
    half_life: float | None
    y_filled: bool
    x_filled: bool
    spread_std: float | None = None
    kalman_alpha: float | None = None
    kalman_beta: float | None = None
    kalman_spread: float | None = None
    kalman_zscore: float | None = None


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One row of the ``scan`` table (see docs/design.md "Pair scanner").

    Attributes:
        tf: Timeframe.
        ts_ms: The scanned grid time (an analytics ``ts``).
        pair: ``"Y/X"``.
        eg_pvalue: Engle-Granger p-value of the pair's analytics row at ``ts``.
        eg_qvalue: Benjamini-Hochberg adjusted ``eg_pvalue`` across the scan's rows
            with a p-value (``None`` where ``eg_pvalue`` is ``None``).
        adf_pvalue: ADF p-value of the spread.
        half_life: Half-life of the spread in bars.
        beta: OLS hedge ratio.
        corr: Correlation of log returns.
        zscore: Spread z-score.
        rank: 1 + position by ascending ``eg_pvalue`` (ties: pair name; ``None`` last).
    """

    tf: str
    ts_ms: int
    pair: str
    eg_pvalue: float | None
    eg_qvalue: float | None
    adf_pvalue: float | None
    half_life: float | None
    beta: float | None
    corr: float | None
    zscore: float | None
    rank: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy decision at ``ts_ms`` (a ``signals`` row; kinds in ``sinks.schema.SIGNAL_KINDS``).

    ``strategy`` is the last field with a default, so ``Signal(pair, tf, ts, kind, z)``
    is a decision of the ``default`` strategy.
    """

    pair: str
    tf: str
    ts_ms: int
    kind: str
    zscore: float
    strategy: str = "default"


@dataclass(frozen=True, slots=True)
class Retract:
    """Delete the row of ``table`` whose primary key is ``key`` (if it exists).

    The DuckDB sink applies it in order with upserts of the same key: an upsert after
    a retraction writes the row again, a retraction after an upsert removes it.

    Attributes:
        table: A keyed table, e.g. ``signals``.
        key: The primary-key values in key order; times as epoch ms.
    """

    table: str
    key: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class RetractFrom:
    """Delete every row of ``table`` whose key starts with ``key_prefix`` from ``from_ms`` on.

    What an amended interval needs: "the signals of (strategy, pair, tf) from t on no
    longer hold" before the recomputed ones are upserted. Rows emitted after it (in
    the same batch or later) are kept.

    Attributes:
        table: A keyed table with a time column.
        key_prefix: Values of the first ``len(key_prefix)`` key columns.
        from_ms: Rows whose time column is ``>= from_ms`` (epoch ms) are deleted.
    """

    table: str
    key_prefix: tuple[object, ...]
    from_ms: int


@dataclass(frozen=True, slots=True)
class Stat:
    """One pipeline health measurement for the ``pipeline_stats`` table.

    Counters are cumulative since the component started and end in ``_total``;
    gauges are instantaneous (``ticks_per_s``, ``lag_p99_ms``...).

    Attributes:
        ts_ms: When it was measured.
        component: Who measured it, e.g. ``binance``, ``bars``, ``parse``.
        metric: Metric name with its unit, e.g. ``lag_p50_ms``.
        value: The value.
    """

    ts_ms: int
    component: str
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in a symbol's trade-id sequence found by a source.

    Attributes:
        symbol: Binance symbol.
        from_trade_id: First missing trade id (inclusive).
        to_trade_id: Last missing trade id (inclusive).
        detected_at_ms: When it was found.
        status: ``open`` (being backfilled), ``filled`` or ``unfilled``.
        filled: How many of the missing trades were recovered.
    """

    symbol: str
    from_trade_id: int
    to_trade_id: int
    detected_at_ms: int
    status: str
    filled: int


@dataclass(frozen=True, slots=True)
class Watermark:
    """A promise from the bar operator: no new bar of ``symbol``/``tf`` opens before ``through_ms``.

    Emitted when an interval closes without a trade (a quiet leg), so that pair
    analytics can forward-fill that leg instead of waiting for its next trade.
    A :class:`Bar` with ``open_time_ms = o`` implies a watermark of ``o + tf``.
    """

    symbol: str
    tf: str
    through_ms: int


@dataclass(frozen=True, slots=True)
class SourceClock:
    """The source's own clock: trades still to come are stamped at or after ``now_ms``.

    A paced replay emits it so bars close on *replay* time at any speed (not on the
    wall clock); the bar step broadcasts it to every symbol. Live sources don't need
    it (bars extrapolate the exchange clock from the last trade time).

    Attributes:
        now_ms: Source time in epoch ms (trade-time scale).
    """

    now_ms: int


SourceItem: TypeAlias = Tick | Bar | Reject | Gap | Stat | SourceClock | Watermark
"""What a source emits: typed records only (each source owns its wire format).

A source that emits bars itself (the live warm start) may follow them with a
:class:`Watermark` per symbol/tf: it goes to the pair analytics only, never to a sink."""
