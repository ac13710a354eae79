"""The pair view: what one refresh of the pair charts reads (parameterised SQL only).

Nothing here computes a statistic: the queries read the columns the flow wrote and,
for long ranges, downsample them per time bucket (first/max/min/last/sum), so that
no chart trace has more than about ``max_points`` points. Table and column names
come from :mod:`sinks.schema`, timeframes from :mod:`pairflow.timeutil`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from dashboard import cache
from dashboard.db import existing_tables, has_column, ms_to_time
from pairflow.config import SYMBOL_RE
from pairflow.timeutil import TF_MS, TIMEFRAMES, UTC, dt_to_ms, ms_to_dt
from sinks.schema import ANALYTICS

LOOKBACKS: dict[str, timedelta] = {
    "15 min": timedelta(minutes=15),
    "30 min": timedelta(minutes=30),
    "1 h": timedelta(hours=1),
    "3 h": timedelta(hours=3),
    "6 h": timedelta(hours=6),
    "12 h": timedelta(hours=12),
    "1 day": timedelta(days=1),
    "3 days": timedelta(days=3),
    "7 days": timedelta(days=7),
}
"""Lookback choices, measured back from the newest bar in the database."""

MAX_POINTS = 2_000
"""Default cap of points per chart trace (buckets per view)."""

CANDLE_POINTS = 240
"""Default cap of candles per view (more are unreadable at chart width)."""

NICE_BUCKETS_S: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 14_400, 21_600,
    43_200, 86_400,
)  # fmt: skip
"""Bucket lengths used for downsampling; each divides a day, so buckets align to UTC."""

MAX_SIGNALS = 2_000
"""Most recent signal markers shown in one view."""

DEFAULT_STRATEGY = "default"
"""Whose ``signals`` the pair view marks."""


def parse_pair(text: str) -> tuple[str, str]:
    """Split and validate a ``Y/X`` pair name.

    Args:
        text: A pair such as ``BTCUSDT/ETHUSDT``.

    Returns:
        ``(Y, X)``, both matching :data:`pairflow.config.SYMBOL_RE`.

    Raises:
        ValueError: if ``text`` is not two distinct valid symbols joined by ``/``.
    """
    legs = text.split("/")
    if len(legs) != 2 or legs[0] == legs[1] or not all(SYMBOL_RE.match(leg) for leg in legs):
        msg = f"{text!r} is not a pair of Binance symbols like BTCUSDT/ETHUSDT"
        raise ValueError(msg)
    return legs[0], legs[1]


def is_valid_symbol(text: str) -> bool:
    """Whether ``text`` is a Binance symbol (``pairflow.config.SYMBOL_RE``)."""
    return bool(SYMBOL_RE.match(text))


def choose_bucket_s(lookback: timedelta, tf: str, max_points: int = MAX_POINTS) -> int:
    """Pick the bucket length that keeps a view under ``max_points`` points.

    Args:
        lookback: Length of the view.
        tf: Bar timeframe; the bucket is never shorter than one bar.
        max_points: Cap of buckets in the view.

    Returns:
        Bucket length in seconds: ``tf`` itself when no downsampling is needed,
        else the smallest "nice" multiple of ``tf`` that fits.
    """
    tf_s = TF_MS[tf] // 1000
    need = lookback.total_seconds() / max(1, max_points)
    for bucket in NICE_BUCKETS_S:
        if bucket >= tf_s and bucket % tf_s == 0 and bucket >= need:
            return bucket
    return NICE_BUCKETS_S[-1]


# --------------------------------------------------------------------------- pairs


def list_pairs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Pairs to offer: those in ``analytics``, else every pair of the bars' symbols.

    Only names whose legs match ``SYMBOL_RE`` are returned.
    """
    tables = existing_tables(con)
    pairs: list[str] = []
    if "analytics" in tables:
        rows = con.execute("SELECT DISTINCT pair FROM analytics ORDER BY pair").fetchall()
        for (name,) in rows:
            try:
                parse_pair(name)
            except ValueError:
                continue
            pairs.append(name)
    if pairs or "bars" not in tables:
        return pairs
    symbols = [
        s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY symbol").fetchall()
    ]
    symbols = [s for s in symbols if is_valid_symbol(s)]
    return [f"{y}/{x}" for i, y in enumerate(symbols) for x in symbols[i + 1 :]]


# --------------------------------------------------------------------------- pair view


@dataclass(frozen=True)
class ViewRequest:
    """What one refresh of the pair view shows.

    Attributes:
        y: Y leg (validated).
        x: X leg (validated).
        tf: Bar timeframe.
        lookback: Length of the view, back from the newest bar of the pair.
        max_points: Cap of points per line trace.
        candle_points: Cap of candles.
    """

    y: str
    x: str
    tf: str
    lookback: timedelta
    max_points: int = MAX_POINTS
    candle_points: int = CANDLE_POINTS
    strategy: str = DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        """Validate every field that reaches SQL."""
        for leg in (self.y, self.x):
            if not is_valid_symbol(leg):
                msg = f"{leg!r} is not a Binance symbol"
                raise ValueError(msg)
        if self.tf not in TF_MS:
            msg = f"unknown timeframe {self.tf!r}; use one of {', '.join(TF_MS)}"
            raise ValueError(msg)
        if self.lookback <= timedelta(0) or min(self.max_points, self.candle_points) < 10:
            msg = "lookback must be positive and max_points, candle_points >= 10"
            raise ValueError(msg)

    @property
    def pair(self) -> str:
        """``Y/X``."""
        return f"{self.y}/{self.x}"


@dataclass
class ViewData:
    """Everything the pair view draws, as read at ``read_at``.

    Attributes:
        request: The request it answers.
        read_at: Wall-clock time of the read.
        end: Open time of the newest bar of either leg at ``request.tf`` (the anchor).
        start: First bucket of the view (the first bucket boundary after
            ``end - lookback``; see :func:`view_start`).
        bucket_s: Downsampling bucket in seconds (``tf`` itself = not downsampled).
        bars: Per-bucket OHLCV of both legs: ``symbol, t, open, high, low, close,
            volume, trades``.
        candle_bucket_s: Bucket of ``candles`` in seconds.
        candles: Like ``bars``, in (usually coarser) candle buckets.
        analytics: Per-bucket analytics: ``t, z_min, z_max, rows`` (the bucket's
            z-score range and row count) and the bucket's last row, every column of
            :data:`sinks.schema.ANALYTICS` but the key (``ts`` = time of that row;
            ``spread_std`` is the flow's σ of the window spreads, which have mean 0,
            so the bands are 0 ± k·σ).
        signals: ``ts, kind, zscore`` of ``request.strategy`` in the view (newest
            ``MAX_SIGNALS``).
        last_close: Newest close of each leg (from its finest timeframe).
        newest_bar_end: End of the newest bar of either leg, in the finest timeframe
            that has bars (coarser bars may be partial ones closed at end of input).
        latest: The newest analytics row of the pair/timeframe (column -> value).
    """

    request: ViewRequest
    read_at: datetime
    end: datetime | None = None
    start: datetime | None = None
    bucket_s: int = 1
    bars: pd.DataFrame = field(default_factory=pd.DataFrame)
    candle_bucket_s: int = 1
    candles: pd.DataFrame = field(default_factory=pd.DataFrame)
    analytics: pd.DataFrame = field(default_factory=pd.DataFrame)
    signals: pd.DataFrame = field(default_factory=pd.DataFrame)
    last_close: dict[str, float] = field(default_factory=dict)
    newest_bar_end: datetime | None = None
    latest: dict[str, Any] = field(default_factory=dict)

    @property
    def downsampled(self) -> bool:
        """True when buckets hold more than one bar."""
        return self.bucket_s * 1000 > TF_MS[self.request.tf]

    @property
    def has_bars(self) -> bool:
        """True when either leg has bars in the view."""
        return not self.bars.empty

    @property
    def has_analytics(self) -> bool:
        """True when the pair has analytics rows in the view."""
        return not self.analytics.empty

    def leg(self, symbol: str) -> pd.DataFrame:
        """The bars of one leg."""
        return _only(self.bars, symbol)

    def leg_candles(self, symbol: str) -> pd.DataFrame:
        """The candles of one leg."""
        return _only(self.candles, symbol)


def _only(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


_NEWEST_SQL = """
    SELECT symbol, tf, max(open_time) AS open_time, arg_max(close, open_time) AS close
    FROM bars
    WHERE symbol IN (?, ?) AND open_time >= ?
    GROUP BY ALL
"""

_BARS_PART_SQL = """
    SELECT symbol, open_time, open, high, low, close, volume, trades
    FROM bars
    WHERE symbol = ? AND tf = ? AND open_time >= ? AND open_time < ?
"""

_BARS_SQL = f"""
    WITH src AS (
        {_BARS_PART_SQL}
        UNION ALL {_BARS_PART_SQL}
        UNION ALL {_BARS_PART_SQL}
        UNION ALL {_BARS_PART_SQL}
    )
    SELECT symbol,
           (epoch_ms(open_time) // ?) * ? AS t_ms,
           arg_min(open, open_time) AS open,
           max(high) AS high,
           min(low) AS low,
           arg_max(close, open_time) AS close,
           sum(volume) AS volume,
           sum(trades) AS trades
    FROM src
    GROUP BY ALL
    ORDER BY symbol, t_ms
"""

_LAST_ROW = ", ".join(f"'{c}': \"{c}\"" for c in ANALYTICS.names if c not in ("pair", "tf"))

_ANALYTICS_SQL = f"""
    SELECT t_ms, z_min, z_max, "rows", UNNEST(last_row)
    FROM (
        SELECT (epoch_ms(ts) // ?) * ? AS t_ms,
               arg_max({{{_LAST_ROW}}}, ts) AS last_row,
               min(zscore) AS z_min,
               max(zscore) AS z_max,
               count(*) AS "rows"
        FROM analytics
        WHERE pair = ? AND tf = ? AND ts >= ? AND ts <= ?
        GROUP BY t_ms
    )
    ORDER BY t_ms
"""
"""Per bucket: the last analytics row (every column of the schema but the key),
and the bucket's z-score range and row count."""

_SIGNALS_SQL = """
    SELECT ts, kind, zscore
    FROM signals
    WHERE pair = ? AND tf = ? AND ts >= ? AND ts <= ? AND strategy = ?
    ORDER BY ts DESC
    LIMIT ?
"""

_SIGNALS_SQL_OLD = """
    SELECT ts, kind, zscore
    FROM signals
    WHERE pair = ? AND tf = ? AND ts >= ? AND ts <= ?
    ORDER BY ts DESC
    LIMIT ?
"""
"""For a file the flow has not migrated yet (signals without ``strategy``)."""


def _newest(con: duckdb.DuckDBPyConnection, y: str, x: str) -> pd.DataFrame:
    """Newest bar per leg and timeframe (cheap: tries the last 30 minutes first)."""
    top = con.execute("SELECT max(open_time) FROM bars").fetchone()
    if top is None or top[0] is None:
        return pd.DataFrame(columns=["symbol", "tf", "open_time", "close", "bar_end"])
    recent = top[0] - timedelta(minutes=30)
    df = con.execute(_NEWEST_SQL, [y, x, recent]).df()
    if set(df["symbol"]) != {y, x}:
        df = con.execute(_NEWEST_SQL, [y, x, datetime(1970, 1, 1, tzinfo=UTC)]).df()
    tf_ms = df["tf"].map(TF_MS).astype("int64")
    df["bar_end"] = df["open_time"] + pd.to_timedelta(tf_ms, unit="ms")
    return df


def source_tf(tf: str, bucket_s: int) -> str:
    """The coarsest timeframe whose bars can be merged into ``bucket_s`` buckets.

    A bucket that is a whole number of 1m (5m) bars gets the same first/max/min/last/
    sum from the flow's 1m (5m) bars as from its 1s bars, at a 60th (300th) of the rows.
    """
    best = tf
    for cand in TIMEFRAMES:
        cand_s = TF_MS[cand] // 1000
        if TF_MS[tf] <= TF_MS[cand] and bucket_s % cand_s == 0:
            best = cand if TF_MS[cand] > TF_MS[best] else best
    return best


def _leg_bar_parts(
    newest: pd.DataFrame, leg: str, tf: str, bucket_s: int, lo: datetime, end: datetime
) -> list[Any]:
    """Parameters of two ``_BARS_PART_SQL`` selects for one leg, covering ``[lo, end]``.

    Coarse bars cover ``[lo, upto)``, where ``upto`` ends the leg's newest coarse bar;
    bars of ``tf`` itself cover ``[upto, end]``.
    """
    coarse = source_tf(tf, bucket_s)
    upto = lo
    if coarse != tf:
        rows = newest[(newest["symbol"] == leg) & (newest["tf"] == coarse)]
        if not rows.empty:
            last_open = pd.Timestamp(rows["open_time"].iloc[0]).to_pydatetime()
            upto = max(lo, last_open + timedelta(milliseconds=TF_MS[coarse]))
    return [
        leg, coarse, lo, upto,
        leg, tf, upto, end + timedelta(microseconds=1),
    ]  # fmt: skip


LATEST_COLUMNS: tuple[str, ...] = tuple(c for c in ANALYTICS.names if c not in ("pair", "tf"))
"""Columns of :attr:`ViewData.latest` (the newest analytics row; from the schema)."""


@dataclass(frozen=True)
class _Reader:
    """The bucketed reads of one refresh: the connection, request, view end and cache key."""

    con: duckdb.DuckDBPyConnection
    req: ViewRequest
    end: datetime
    file_id: tuple[int, int] | None

    def _bucketed(
        self,
        key: tuple[str, ...],
        bucket_s: int,
        lo: datetime,
        query: Callable[[datetime], pd.DataFrame],
        order: list[str],
    ) -> pd.DataFrame:
        """``query``'s rows for ``[lo, end]`` through the bucket cache, sorted by ``order``.

        The bucket times ``t_ms`` become a time column ``t`` in their place.
        """
        downsampled = bucket_s * 1000 > TF_MS[self.req.tf]
        frame = cache.bucketed(self.file_id, key, lo, self.end, bucket_s, downsampled, query)
        if not frame.empty:
            frame = frame.sort_values(order, ignore_index=True)
            at = frame.columns.get_loc("t_ms")
            frame.insert(at, "t", ms_to_time(frame.pop("t_ms")))
        return frame

    def bars(self, newest: pd.DataFrame, bucket_s: int, lo: datetime) -> pd.DataFrame:
        """Both legs' bars in buckets of ``bucket_s`` from ``lo`` (coarser bars where kept)."""
        req, bucket_ms = self.req, bucket_s * 1000

        def query(from_: datetime) -> pd.DataFrame:
            params: list[Any] = []
            for leg in (req.y, req.x):
                params += _leg_bar_parts(newest, leg, req.tf, bucket_s, from_, self.end)
            return self.con.execute(_BARS_SQL, [*params, bucket_ms, bucket_ms]).df()

        key = ("bars", req.y, req.x, req.tf)
        return self._bucketed(key, bucket_s, lo, query, ["symbol", "t_ms"])

    def analytics(self, bucket_s: int, lo: datetime) -> pd.DataFrame:
        """The pair's analytics rows in buckets of ``bucket_s`` from ``lo``."""
        req, bucket_ms = self.req, bucket_s * 1000

        def query(from_: datetime) -> pd.DataFrame:
            params = [bucket_ms, bucket_ms, req.pair, req.tf, from_, self.end]
            return self.con.execute(_ANALYTICS_SQL, params).df()

        return self._bucketed(("analytics", req.pair, req.tf), bucket_s, lo, query, ["t_ms"])


def view_start(end: datetime, lookback: timedelta, bucket_s: int) -> datetime:
    """First bucket of a view: the first bucket boundary after ``end - lookback``.

    Whole buckets only, so a bucket never mixes rows inside and outside the view
    (and cached buckets stay valid as the view slides).
    """
    start_ms = dt_to_ms(end - lookback) + 1
    bucket_ms = bucket_s * 1000
    return ms_to_dt(-(-start_ms // bucket_ms) * bucket_ms)


def load_view(
    con: duckdb.DuckDBPyConnection,
    req: ViewRequest,
    tables: set[str] | None = None,
    *,
    use_cache: bool = True,
) -> ViewData:
    """Read one refresh of the pair view.

    The view ends at the newest bar of either leg at ``req.tf`` (not at wall-clock
    now, so a replayed database shows its data) and spans ``req.lookback`` in whole
    buckets. Downsampled views reuse complete buckets of earlier refreshes
    (:class:`BucketCache`), so a 7-day view re-reads only its last minutes.

    Args:
        con: An open (read-only) connection.
        req: What to read.
        tables: The pairflow tables present (read if not given).
        use_cache: Reuse complete buckets between refreshes.

    Returns:
        The data; empty frames where there is nothing yet.
    """
    view = ViewData(request=req, read_at=datetime.now(tz=UTC))
    tables = existing_tables(con) if tables is None else tables
    if "bars" not in tables:
        return view
    newest = _newest(con, req.y, req.x)
    for tf in TIMEFRAMES:  # the finest timeframe present is the freshest
        rows = newest[newest["tf"] == tf]
        if rows.empty:
            continue
        if view.newest_bar_end is None:
            view.newest_bar_end = pd.Timestamp(rows["bar_end"].max()).to_pydatetime()
        for sym, close in zip(rows["symbol"], rows["close"], strict=True):
            view.last_close.setdefault(str(sym), float(close))
    at_tf = newest[newest["tf"] == req.tf]
    if at_tf.empty:
        return view
    end = pd.Timestamp(at_tf["open_time"].max()).to_pydatetime()
    bucket_s = choose_bucket_s(req.lookback, req.tf, req.max_points)
    view.candle_bucket_s = choose_bucket_s(req.lookback, req.tf, req.candle_points)
    lo = view_start(end, req.lookback, bucket_s)
    view.end, view.start, view.bucket_s = end, lo, bucket_s

    read = _Reader(con, req, end, cache.file_id(con) if use_cache else None)
    view.bars = read.bars(newest, bucket_s, lo)
    if view.candle_bucket_s == bucket_s:
        view.candles = view.bars
    else:
        candle_lo = view_start(end, req.lookback, view.candle_bucket_s)
        view.candles = read.bars(newest, view.candle_bucket_s, candle_lo)

    if "analytics" in tables:
        view.analytics = read.analytics(bucket_s, lo)
        if not view.analytics.empty:  # the last bucket ends with the newest row
            last = view.analytics.iloc[-1].to_dict()
            view.latest = {k: (None if _is_missing(last[k]) else last[k]) for k in LATEST_COLUMNS}
    if "signals" in tables:
        if has_column(con, "signals", "strategy"):
            params = [req.pair, req.tf, lo, end, req.strategy, MAX_SIGNALS]
            view.signals = con.execute(_SIGNALS_SQL, params).df()
        else:
            params = [req.pair, req.tf, lo, end, MAX_SIGNALS]
            view.signals = con.execute(_SIGNALS_SQL_OLD, params).df()
    return view


_GRID_SQL = """
    SELECT symbol, min(open_time) AS first_open, max(open_time) AS last_open
    FROM bars
    WHERE symbol IN (?, ?) AND tf = ?
    GROUP BY symbol
"""


def grid_points(con: duckdb.DuckDBPyConnection, y: str, x: str, tf: str) -> int | None:
    """Grid points of a pair at ``tf`` so far (how full its analytics window is).

    The grid starts at the first interval where both legs have a bar and has one
    point per interval up to the newest bar of either leg (a quiet leg is carried
    forward), so the flow emits its first analytics row at ``W`` points. A count of
    intervals, not a statistic; ``None`` when a leg has no bar at ``tf`` yet.

    Raises:
        ValueError: invalid symbol or timeframe (nothing unvalidated reaches SQL).
    """
    if not (is_valid_symbol(y) and is_valid_symbol(x)) or tf not in TF_MS:
        msg = f"bad pair/timeframe {y!r}/{x!r} {tf!r}"
        raise ValueError(msg)
    rows = con.execute(_GRID_SQL, [y, x, tf]).fetchall()
    if len(rows) < 2:  # noqa: PLR2004 - both legs
        return None
    start = max(dt_to_ms(r[1]) for r in rows)
    last = max(dt_to_ms(r[2]) for r in rows)
    return max(0, (last - start) // TF_MS[tf] + 1)


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
