"""Every read the dashboard makes: DuckDB SQL (parameterised only) and Redis XLEN.

The database is opened read-only for one refresh and closed at once, so the flow
(the only writer, which opens the file per flush) is never kept out for long. When
the writer holds the lock, :func:`connect_readonly` retries with backoff.

Nothing here computes a statistic: the queries read the columns the flow wrote and,
for long ranges, downsample them per time bucket (first/max/min/last/sum), so that
no chart trace has more than about ``max_points`` points.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pairflow.config import SYMBOL_RE
from pairflow.timeutil import TF_MS, UTC

TIMEFRAMES: tuple[str, ...] = ("1s", "1m", "5m")
"""Bar timeframes the flow writes."""

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

TABLES: tuple[str, ...] = ("bars", "analytics", "signals", "rejects", "pipeline_stats", "gaps")
SIGNAL_KINDS: tuple[str, ...] = ("short_spread", "long_spread", "exit")
MAX_SIGNALS = 2_000
"""Most recent signal markers shown in one view."""

STATS_HORIZON = timedelta(hours=1)
"""How much pipeline-stats history the health charts show."""

LOCK_MARKERS = ("could not set lock", "conflicting lock")


class DashboardDataError(Exception):
    """The data cannot be read right now; ``str(exc)`` is a message for the user."""


class DatabaseMissingError(DashboardDataError):
    """The DuckDB file does not exist yet (the flow has not run)."""


class DatabaseLockedError(DashboardDataError):
    """Another process holds the DuckDB write lock longer than the retry budget."""


class DatabaseUnreadableError(DashboardDataError):
    """The file exists but DuckDB cannot open it (not a DuckDB file, wrong version...)."""


class SchemaMissingError(DashboardDataError):
    """The file has no pairflow tables yet."""


# --------------------------------------------------------------------------- helpers


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


def _ms_to_time(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("int64"), unit="ms", utc=True)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in LOCK_MARKERS)


def _connect_once(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:  # pragma: no cover - ICU is bundled with the wheel
        pass
    return con


def connect_readonly(
    path: str | Path,
    *,
    timeout_s: float = 2.0,
    first_delay_s: float = 0.02,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file read-only, retrying while a writer holds the lock.

    Args:
        path: The DuckDB file.
        timeout_s: Give up after about this long.
        first_delay_s: First backoff; doubles up to 0.25 s (a flush of the flow
            holds the lock for tens of milliseconds, so short retries win).
        sleep: Sleep function (tests pass a fake).

    Returns:
        An open read-only connection with ``TimeZone = 'UTC'``. Close it soon.

    Raises:
        DatabaseMissingError: the file does not exist.
        DatabaseLockedError: still locked after ``timeout_s``.
        DatabaseUnreadableError: DuckDB cannot open the file for another reason.
    """
    path = Path(path)
    if not path.exists():
        msg = f"No database at {path} yet."
        raise DatabaseMissingError(msg)
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return _connect_once(path)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                if not path.exists():
                    msg = f"No database at {path} yet."
                    raise DatabaseMissingError(msg) from exc
                msg = f"Cannot open {path} as a DuckDB database: {exc}"
                raise DatabaseUnreadableError(msg) from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = (
                    f"{path} is locked by another process (the flow writes to it); "
                    f"gave up after {attempts} tries in {timeout_s:.1f} s."
                )
                raise DatabaseLockedError(msg) from exc
            sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)


@contextmanager
def open_readonly(path: str | Path, **kwargs: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`connect_readonly` that always closes.

    Catalog errors (a table missing) become :class:`SchemaMissingError`.
    """
    con = connect_readonly(path, **kwargs)
    try:
        yield con
    except duckdb.CatalogException as exc:
        msg = f"{path} has no pairflow tables yet ({exc})."
        raise SchemaMissingError(msg) from exc
    finally:
        con.close()


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the pairflow tables present in the database."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
    ).fetchall()
    return {r[0] for r in rows} & set(TABLES)


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
        analytics: Per-bucket analytics: the last row of each bucket, the bucket's
            min/max z-score and row count, and ``sigma`` = the flow's ``spread_std``
            (the window spreads have mean 0, so the bands are 0 ± k·σ): ``t, z_min,
            z_max, rows, ts, y_close, x_close, alpha, beta, spread, zscore, sigma,
            corr, adf_pvalue, eg_pvalue, half_life, window, y_filled, x_filled``
            (``ts`` = time of the bucket's last row).
        signals: ``ts, kind, zscore`` in the view (newest ``MAX_SIGNALS``).
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


_TF_INTERVAL_SQL = (
    "CASE tf WHEN '1s' THEN INTERVAL 1 SECOND WHEN '1m' THEN INTERVAL 1 MINUTE "
    "ELSE INTERVAL 5 MINUTE END"
)

_NEWEST_SQL = f"""
    SELECT symbol, tf, max(open_time) AS open_time,
           arg_max(close, open_time) AS close,
           max(open_time + {_TF_INTERVAL_SQL}) AS bar_end
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

_ANALYTICS_SQL = """
    SELECT t_ms, z_min, z_max, "rows", UNNEST(last_row)
    FROM (
        SELECT (epoch_ms(ts) // ?) * ? AS t_ms,
               arg_max({
                   'ts': ts, 'y_close': y_close, 'x_close': x_close, 'alpha': alpha, 'beta': beta,
                   'spread': spread, 'zscore': zscore,
                   'sigma': spread_std,
                   'corr': corr, 'adf_pvalue': adf_pvalue, 'eg_pvalue': eg_pvalue,
                   'half_life': half_life, 'window': "window",
                   'y_filled': y_filled, 'x_filled': x_filled
               }, ts) AS last_row,
               min(zscore) AS z_min,
               max(zscore) AS z_max,
               count(*) AS "rows"
        FROM analytics
        WHERE pair = ? AND tf = ? AND ts >= ? AND ts <= ?
        GROUP BY t_ms
    )
    ORDER BY t_ms
"""

_SIGNALS_SQL = """
    SELECT ts, kind, zscore
    FROM signals
    WHERE pair = ? AND tf = ? AND ts >= ? AND ts <= ?
    ORDER BY ts DESC
    LIMIT ?
"""


def _newest(con: duckdb.DuckDBPyConnection, y: str, x: str) -> pd.DataFrame:
    """Newest bar per leg and timeframe (cheap: tries the last 30 minutes first)."""
    top = con.execute("SELECT max(open_time) FROM bars").fetchone()
    if top is None or top[0] is None:
        return pd.DataFrame(columns=["symbol", "tf", "open_time", "close", "bar_end"])
    recent = top[0] - timedelta(minutes=30)
    df = con.execute(_NEWEST_SQL, [y, x, recent]).df()
    if set(df["symbol"]) != {y, x}:
        df = con.execute(_NEWEST_SQL, [y, x, datetime(1970, 1, 1, tzinfo=UTC)]).df()
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


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# --------------------------------------------------------------------------- bucket cache

CACHE_MAX_AGE_S = 60.0
"""A cached set of buckets is re-read in full after this long (catches REST backfills)."""

CACHE_REQUERY = timedelta(minutes=10)
"""Buckets this close to the newest bar are always re-read (late ticks amend bars up
to 5 minutes back; 5m bars then change too)."""


@dataclass
class _Buckets:
    frame: pd.DataFrame
    through_ms: int
    first_ms: int
    made_at: float
    file_id: tuple[int, int]


class BucketCache:
    """Complete downsampling buckets kept between refreshes (process-wide, thread-safe).

    A long view (7 days in 10-minute buckets) then re-reads only its last few
    buckets on each refresh instead of every row. An entry is re-read in full after
    :data:`CACHE_MAX_AGE_S`, and dropped when the file is replaced.
    """

    def __init__(self, max_age_s: float = CACHE_MAX_AGE_S, max_entries: int = 64) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], _Buckets] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def read(
        self,
        key: tuple[Any, ...],
        file_id: tuple[int, int],
        lo_ms: int,
        end_ms: int,
        bucket_ms: int,
        query: Callable[[int], pd.DataFrame],
    ) -> pd.DataFrame:
        """Buckets ``t_ms`` in ``[lo_ms, end_ms]``: cached ones plus ``query(from_ms)``.

        Args:
            key: What is bucketed (kind, pair or legs, timeframe, bucket).
            file_id: ``(st_dev, st_ino)`` of the database file.
            lo_ms: First bucket of the view (bucket-aligned).
            end_ms: The view's end (the newest bar's open time).
            bucket_ms: Bucket length.
            query: Reads the buckets from ``from_ms`` (aligned) to ``end_ms``; returns a
                frame with a ``t_ms`` column.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        usable = (
            hit is not None
            and hit.file_id == file_id
            and now - hit.made_at < self.max_age_s
            and hit.first_ms <= lo_ms
            and hit.through_ms <= end_ms + bucket_ms
        )
        if usable:
            assert hit is not None
            margin = math.ceil(CACHE_REQUERY.total_seconds() * 1000 / bucket_ms) * bucket_ms
            from_ms = max(lo_ms, hit.through_ms - margin)
            head = hit.frame[(hit.frame["t_ms"] >= lo_ms) & (hit.frame["t_ms"] < from_ms)]
            tail = query(from_ms)
            frame = pd.concat([head, tail], ignore_index=True) if len(head) else tail
            made_at, first_ms = hit.made_at, hit.first_ms
            self.hits += 1
        else:
            frame = query(lo_ms)
            made_at, first_ms = now, lo_ms
            self.misses += 1
        through = (end_ms // bucket_ms) * bucket_ms  # the last bucket may still grow
        entry = _Buckets(frame[frame["t_ms"] < through], through, first_ms, made_at, file_id)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return frame


BUCKETS = BucketCache()
"""The process-wide cache used by :func:`load_view` for downsampled views."""


def _file_id(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the connection's database file, or None (in memory)."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchall()
    for (path,) in rows:
        if path:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_dev, st.st_ino)
    return None


def _bucketed(
    file_id: tuple[int, int] | None,
    key: tuple[Any, ...],
    lo: datetime,
    end: datetime,
    bucket_s: int,
    downsampled: bool,
    query: Callable[[datetime], pd.DataFrame],
) -> pd.DataFrame:
    """Run ``query(from)`` for ``[lo, end]``, through :data:`BUCKETS` when worthwhile.

    ``file_id`` None means no caching (in-memory database or caching off).
    """
    if file_id is None or not downsampled:
        return query(lo)
    return BUCKETS.read(
        (*key, bucket_s),
        file_id,
        _ms(lo),
        _ms(end),
        bucket_s * 1000,
        lambda from_ms: query(_dt(from_ms)),
    )


def _read_bars(
    con: duckdb.DuckDBPyConnection,
    newest: pd.DataFrame,
    req: ViewRequest,
    bucket_s: int,
    lo: datetime,
    end: datetime,
    file_id: tuple[int, int] | None,
) -> pd.DataFrame:
    bucket_ms = bucket_s * 1000

    def query(from_: datetime) -> pd.DataFrame:
        params: list[Any] = []
        for leg in (req.y, req.x):
            params += _leg_bar_parts(newest, leg, req.tf, bucket_s, from_, end)
        return con.execute(_BARS_SQL, [*params, bucket_ms, bucket_ms]).df()

    downsampled = bucket_s * 1000 > TF_MS[req.tf]
    key = ("bars", req.y, req.x, req.tf)
    bars = _bucketed(file_id, key, lo, end, bucket_s, downsampled, query)
    if not bars.empty:
        bars = bars.sort_values(["symbol", "t_ms"], ignore_index=True)
        bars.insert(1, "t", _ms_to_time(bars.pop("t_ms")))
    return bars


LATEST_COLUMNS: tuple[str, ...] = (
    "ts", "window", "y_close", "x_close", "alpha", "beta", "spread", "zscore", "corr",
    "adf_pvalue", "eg_pvalue", "half_life", "y_filled", "x_filled",
)  # fmt: skip
"""Columns of :attr:`ViewData.latest` (the newest analytics row)."""


def _read_analytics(
    con: duckdb.DuckDBPyConnection,
    req: ViewRequest,
    bucket_s: int,
    lo: datetime,
    end: datetime,
    file_id: tuple[int, int] | None,
) -> pd.DataFrame:
    bucket_ms = bucket_s * 1000

    def query(from_: datetime) -> pd.DataFrame:
        params = [bucket_ms, bucket_ms, req.pair, req.tf, from_, end]
        return con.execute(_ANALYTICS_SQL, params).df()

    downsampled = bucket_s * 1000 > TF_MS[req.tf]
    key = ("analytics", req.pair, req.tf)
    ana = _bucketed(file_id, key, lo, end, bucket_s, downsampled, query)
    if not ana.empty:
        ana = ana.sort_values("t_ms", ignore_index=True)
        ana.insert(0, "t", _ms_to_time(ana.pop("t_ms")))
    return ana


def view_start(end: datetime, lookback: timedelta, bucket_s: int) -> datetime:
    """First bucket of a view: the first bucket boundary after ``end - lookback``.

    Whole buckets only, so a bucket never mixes rows inside and outside the view
    (and cached buckets stay valid as the view slides).
    """
    start_ms = _ms(end - lookback) + 1
    bucket_ms = bucket_s * 1000
    return _dt(-(-start_ms // bucket_ms) * bucket_ms)


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

    file_id = _file_id(con) if use_cache else None
    view.bars = _read_bars(con, newest, req, bucket_s, lo, end, file_id)
    if view.candle_bucket_s == bucket_s:
        view.candles = view.bars
    else:
        candle_lo = view_start(end, req.lookback, view.candle_bucket_s)
        view.candles = _read_bars(con, newest, req, view.candle_bucket_s, candle_lo, end, file_id)

    if "analytics" in tables:
        view.analytics = _read_analytics(con, req, bucket_s, lo, end, file_id)
        if not view.analytics.empty:  # the last bucket ends with the newest row
            last = view.analytics.iloc[-1].to_dict()
            view.latest = {k: (None if _is_missing(last[k]) else last[k]) for k in LATEST_COLUMNS}
    if "signals" in tables:
        view.signals = con.execute(_SIGNALS_SQL, [req.pair, req.tf, lo, end, MAX_SIGNALS]).df()
    return view


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def view_table(view: ViewData, last: int | None = None) -> pd.DataFrame:
    """The current view as one wide table (for CSV download): a row per bucket.

    Args:
        view: The view.
        last: Only the newest ``last`` buckets (a preview), or all.

    Returns:
        Columns ``time``, ``{Y}_open/high/low/close/volume/trades``, the same for X,
        then the analytics columns as shown.
    """
    frames: list[pd.DataFrame] = []
    for sym in (view.request.y, view.request.x):
        leg = view.leg(sym)
        if leg.empty:
            continue
        if last is not None:
            leg = leg.tail(last)
        cols = ["t", "open", "high", "low", "close", "volume", "trades"]
        frames.append(
            leg[cols].rename(columns={c: f"{sym}_{c}" for c in cols if c != "t"}).set_index("t")
        )
    if view.has_analytics:
        keep = [
            "t", "alpha", "beta", "spread", "zscore", "z_min", "z_max", "corr", "adf_pvalue",
            "eg_pvalue", "half_life", "window", "y_filled", "x_filled",
        ]  # fmt: skip
        ana = view.analytics if last is None else view.analytics.tail(last)
        frames.append(ana[keep].set_index("t"))
    if not frames:
        return pd.DataFrame(columns=["time"])
    table = pd.concat(frames, axis=1, join="outer", sort=True)
    if last is not None:
        table = table.tail(last)
    table.index.name = "time"
    return table.reset_index()


# --------------------------------------------------------------------------- health


@dataclass
class HealthData:
    """Pipeline health as read at ``read_at``.

    Attributes:
        read_at: Wall-clock time of the read.
        db_bytes: Size of the DuckDB file plus its WAL.
        row_counts: Rows per pairflow table.
        stats_latest: Newest value per ``component, metric`` (last 24 h of stats).
        rate: ``ticks_per_s`` over the last hour of stats: ``t, component, value``;
            if the flow reports none, trades per second of the 1s bars instead.
        rate_source: ``pipeline_stats`` or ``bars`` (which one ``rate`` came from).
        rejects: ``reason, n, last_seen`` (all time).
        gaps_by_status: ``status, n, missing, filled``.
        gaps_recent: The newest 20 gaps.
    """

    read_at: datetime
    db_bytes: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)
    stats_latest: pd.DataFrame = field(default_factory=pd.DataFrame)
    rate: pd.DataFrame = field(default_factory=pd.DataFrame)
    rate_source: str = "pipeline_stats"
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    gaps_by_status: pd.DataFrame = field(default_factory=pd.DataFrame)
    gaps_recent: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def latest_rate(self) -> float | None:
        """Newest ticks/s: the largest of the components' newest values.

        (Several components count the same ticks, e.g. the source and the parser.)
        """
        if self.rate.empty:
            return None
        newest = self.rate.sort_values("t").groupby("component").tail(1)
        return float(newest["value"].max())

    @property
    def late_ticks(self) -> int | None:
        """Ticks rejected as late (``rejects.reason`` starting with ``late``)."""
        if "rejects" not in self.row_counts:
            return None
        if self.rejects.empty:
            return 0
        late = self.rejects["reason"].astype(str).str.startswith("late")
        return int(self.rejects.loc[late, "n"].sum())

    @property
    def reconnects(self) -> int | None:
        """Newest ``*reconnect*`` counters, summed over components."""
        value = self.metric_sum("reconnect")
        return None if value is None else int(value)

    @property
    def open_gaps(self) -> int:
        """Gaps whose status is not ``filled``."""
        if self.gaps_by_status.empty:
            return 0
        gaps = self.gaps_by_status
        return int(gaps.loc[gaps["status"] != "filled", "n"].sum())

    def metric_sum(self, *needles: str) -> float | None:
        """Sum of the newest values of metrics whose name contains any needle."""
        if self.stats_latest.empty:
            return None
        names = self.stats_latest["metric"].str.lower()
        mask = pd.Series(False, index=self.stats_latest.index)
        for needle in needles:
            mask |= names.str.contains(needle, regex=False)
        if not mask.any():
            return None
        return float(self.stats_latest.loc[mask, "value"].sum())


def db_size_bytes(path: str | Path) -> int:
    """Bytes on disk of the DuckDB file and its WAL (0 if absent)."""
    total = 0
    for candidate in (Path(path), Path(f"{path}.wal")):
        try:
            total += os.stat(candidate).st_size
        except OSError:
            continue
    return total


_STATS_LATEST_SQL = """
    SELECT component, metric, arg_max(value, ts) AS value, max(ts) AS ts
    FROM pipeline_stats
    WHERE ts > ?
    GROUP BY ALL
    ORDER BY component, metric
"""

_RATE_SQL = """
    SELECT component, (epoch_ms(ts) // ?) * ? AS t_ms, arg_max(value, ts) AS value
    FROM pipeline_stats
    WHERE metric = 'ticks_per_s' AND ts > ?
    GROUP BY ALL
    ORDER BY component, t_ms
"""

_BAR_RATE_SQL = """
    SELECT 'bars (1s trades)' AS component, epoch_ms(open_time) AS t_ms,
           sum(trades)::DOUBLE AS value
    FROM bars
    WHERE tf = '1s' AND open_time > ?
    GROUP BY ALL
    ORDER BY t_ms
"""

_REJECTS_SQL = """
    SELECT reason, count(*) AS n, max(received_at) AS last_seen
    FROM rejects
    GROUP BY reason
    ORDER BY n DESC, reason
    LIMIT 50
"""

_GAPS_BY_STATUS_SQL = """
    SELECT status, count(*) AS n, sum(to_trade_id - from_trade_id + 1) AS missing,
           sum(filled) AS filled
    FROM gaps
    GROUP BY status
    ORDER BY status
"""

_GAPS_RECENT_SQL = """
    SELECT symbol, from_trade_id, to_trade_id, detected_at, status, filled
    FROM gaps
    ORDER BY detected_at DESC
    LIMIT 20
"""


def _counts_sql(tables: set[str]) -> str:
    """One statement for the row count of every pairflow table present.

    Only the fixed names of :data:`TABLES` are formatted into it, never user input.
    """
    parts = [f"(SELECT count(*) FROM {t}) AS {t}" for t in TABLES if t in tables]
    return "SELECT " + ", ".join(parts)


def _newest_value(con: duckdb.DuckDBPyConnection, sql: str) -> datetime | None:
    """A lone unfiltered ``max`` (answered from DuckDB's statistics, so it is free)."""
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def load_health(
    con: duckdb.DuckDBPyConnection,
    db_path: str | Path,
    max_points: int = MAX_POINTS,
    tables: set[str] | None = None,
) -> HealthData:
    """Read the pipeline-health panel: stats, rejects, gaps, row counts, DB size.

    Args:
        con: An open (read-only) connection.
        db_path: The file (for its size on disk).
        max_points: Cap of points per trace of the rate chart.
        tables: The pairflow tables present (read if not given).

    Returns:
        The health data; empty frames for tables that are missing or empty.
    """
    health = HealthData(read_at=datetime.now(tz=UTC), db_bytes=db_size_bytes(db_path))
    tables = existing_tables(con) if tables is None else tables
    if not tables:
        return health
    cur = con.execute(_counts_sql(tables))
    names = [d[0] for d in cur.description]
    values = dict(zip(names, cur.fetchone() or (), strict=False))
    health.row_counts = {t: int(values[t]) for t in TABLES if t in values}
    newest_stat = None
    if health.row_counts.get("pipeline_stats"):
        newest_stat = _newest_value(con, "SELECT max(ts) FROM pipeline_stats")
    if newest_stat is not None:
        health.stats_latest = con.execute(_STATS_LATEST_SQL, [newest_stat - timedelta(days=1)]).df()
        bucket_ms = max(1, math.ceil(STATS_HORIZON.total_seconds() / max_points)) * 1000
        rate = con.execute(_RATE_SQL, [bucket_ms, bucket_ms, newest_stat - STATS_HORIZON]).df()
        if not rate.empty:
            rate.insert(1, "t", _ms_to_time(rate.pop("t_ms")))
            health.rate = rate
    newest_bar = None
    if health.rate.empty and health.row_counts.get("bars"):
        newest_bar = _newest_value(con, "SELECT max(open_time) FROM bars")
    if newest_bar is not None:
        rate = con.execute(_BAR_RATE_SQL, [newest_bar - timedelta(minutes=15)]).df()
        if not rate.empty:
            rate.insert(1, "t", _ms_to_time(rate.pop("t_ms")))
            health.rate = rate
            health.rate_source = "bars"
    if health.row_counts.get("rejects"):
        health.rejects = con.execute(_REJECTS_SQL).df()
    if health.row_counts.get("gaps"):
        health.gaps_by_status = con.execute(_GAPS_BY_STATUS_SQL).df()
        health.gaps_recent = con.execute(_GAPS_RECENT_SQL).df()
    return health


_HEALTH_LOCK = threading.Lock()
_HEALTH: dict[str, tuple[float, HealthData]] = {}


def load_snapshot(
    con: duckdb.DuckDBPyConnection,
    req: ViewRequest,
    db_path: str | Path,
    *,
    health_max_age_s: float = 0.0,
) -> tuple[ViewData, HealthData]:
    """Everything one dashboard refresh shows (pair view and health), in one read.

    Args:
        con: An open (read-only) connection to ``db_path``.
        req: The pair view to read.
        db_path: The database file.
        health_max_age_s: Reuse a health panel read this recently (process-wide);
            the flow reports its stats every few seconds, so the dashboard need not
            re-read them on every refresh. 0 = always read.

    Returns:
        ``(view, health)``.
    """
    tables = existing_tables(con)
    view = load_view(con, req, tables)
    key = str(Path(db_path).resolve())
    now = time.monotonic()
    with _HEALTH_LOCK:
        cached = _HEALTH.get(key)
    if cached is not None and now - cached[0] < health_max_age_s:
        health = cached[1]
    else:
        health = load_health(con, db_path, req.max_points, tables)
        with _HEALTH_LOCK:
            _HEALTH[key] = (now, health)
    return view, health


# --------------------------------------------------------------------------- redis


def redis_stream_lengths(
    url: str, symbols: Sequence[str], timeout_s: float = 0.3
) -> dict[str, int]:
    """XLEN of ``ticks:{SYMBOL}`` for each symbol.

    Args:
        url: Redis URL.
        symbols: Validated symbols.
        timeout_s: Connect/read timeout.

    Returns:
        Stream length per symbol (0 for a stream that does not exist).

    Raises:
        DashboardDataError: Redis unreachable or erroring.
    """
    import redis  # noqa: PLC0415 - optional at run time

    safe = [s for s in symbols if is_valid_symbol(s)]
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            pipe = client.pipeline(transaction=False)
            for sym in safe:
                pipe.xlen(f"ticks:{sym}")
            lengths = pipe.execute()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        msg = f"Redis at {url} is unreachable ({type(exc).__name__}: {exc})"
        raise DashboardDataError(msg) from exc
    return {sym: int(n) for sym, n in zip(safe, lengths, strict=True)}
