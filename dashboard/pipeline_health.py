"""The pipeline-health panel: stats, rejects, gaps, row counts, file size."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from dashboard.db import existing_tables, ms_to_time
from dashboard.pair_view import MAX_POINTS
from pairflow.timeutil import UTC
from sinks.schema import TABLES

STATS_HORIZON = timedelta(hours=1)
"""How much pipeline-stats history the health charts show."""

REVISION_METRICS: dict[str, str] = {
    "amended_bars_total": "bars amended by late ticks / backfill",
    "recomputed_rows_total": "analytics rows recomputed",
    "amended_points_total": "analytics grid points amended",
    "late_bars_total": "bars that arrived after their grid point",
    "late_rows_total": "late analytics rows (strategies recomputed)",
    "amendments_total": "strategy amendments (recomputed from the amended row)",
}
"""Counters the flow reports when numbers are revised after late data
(``pipeline_stats.metric`` as written by ``operators/bars.py``, ``analytics.py``,
``strategies.py``; the scan's ``late_rows_{tf}_total`` too) -> what they count."""

WARMUP_METRICS: tuple[str, ...] = (
    "warmup_complete",
    "warmup_missing_intervals",
    "warmup_missing_symbols",
)
"""The live source's warm-start report (``sources/binance/warmup.py``)."""


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
        revisions: Amendment counters, newest value per ``component, metric`` over all
            stats: ``component, metric, value, last_at`` (``last_at`` = when the
            counter last changed: the flow reports these only when they change).
        warmup: The live source's warm-up report, one row per source component:
            ``component, complete, missing_intervals, missing_symbols, ts``.
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
    revisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    warmup: pd.DataFrame = field(default_factory=pd.DataFrame)

    def revision_total(self, metric: str, prefix: str = "") -> int | None:
        """Sum of a revision counter over components starting with ``prefix``."""
        rev = self.revisions
        if rev.empty:
            return None
        mask = (rev["metric"] == metric) & rev["component"].str.startswith(prefix)
        if not mask.any():
            return None
        return int(rev.loc[mask, "value"].sum())

    def last_revision(self) -> datetime | None:
        """When any revision counter last changed (``None``: never reported)."""
        if self.revisions.empty:
            return None
        return pd.Timestamp(self.revisions["last_at"].max()).to_pydatetime()

    def amendments_by_symbol(self) -> pd.DataFrame:
        """``symbol, bars_amended, last_at`` from the ``bars:{SYMBOL}`` counters."""
        rev = self.revisions
        cols = ["symbol", "bars_amended", "last_at"]
        if rev.empty:
            return pd.DataFrame(columns=cols)
        rows = rev[
            (rev["metric"] == "amended_bars_total") & rev["component"].str.startswith("bars:")
        ]
        out = pd.DataFrame(
            {
                "symbol": rows["component"].str.removeprefix("bars:"),
                "bars_amended": rows["value"].astype("int64"),
                "last_at": rows["last_at"],
            }
        )
        return out.sort_values("last_at", ascending=False, ignore_index=True)

    def recomputed_by_key(self) -> pd.DataFrame:
        """``pair, tf, rows_recomputed, points_amended, last_at`` per analysed pair/tf."""
        rev = self.revisions
        cols = ["pair", "tf", "rows_recomputed", "points_amended", "last_at"]
        if rev.empty:
            return pd.DataFrame(columns=cols)
        ana = rev[rev["component"].str.startswith("analytics:")]
        if ana.empty:
            return pd.DataFrame(columns=cols)
        wide = ana.pivot_table(
            index="component", columns="metric", values="value", aggfunc="max"
        ).reindex(columns=["recomputed_rows_total", "amended_points_total"])
        last = ana.groupby("component")["last_at"].max()
        keys = [str(c).removeprefix("analytics:").partition("|") for c in wide.index]
        out = pd.DataFrame(
            {
                "pair": [k[0] for k in keys],
                "tf": [k[2] for k in keys],
                "rows_recomputed": wide["recomputed_rows_total"]
                .fillna(0)
                .astype("int64")
                .to_numpy(),
                "points_amended": wide["amended_points_total"].fillna(0).astype("int64").to_numpy(),
                "last_at": last.reindex(wide.index).to_numpy(),
            }
        )
        return out.sort_values("last_at", ascending=False, ignore_index=True)

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


_REVISIONS_SQL = """
    SELECT component, metric, arg_max(value, ts) AS value, max(ts) AS last_at
    FROM pipeline_stats
    WHERE metric IN ({marks}) OR (component = 'scan' AND metric LIKE 'late_rows_%')
    GROUP BY ALL
    ORDER BY component, metric
"""

_WARMUP_SQL = """
    SELECT component, metric, arg_max(value, ts) AS value, max(ts) AS ts
    FROM pipeline_stats
    WHERE metric IN ({marks})
    GROUP BY ALL
"""


def _load_revisions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    names = list(REVISION_METRICS)
    sql = _REVISIONS_SQL.format(marks=", ".join("?" * len(names)))
    return con.execute(sql, names).df()


def _load_warmup(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per source component that reported a warm-up (wide)."""
    names = list(WARMUP_METRICS)
    long = con.execute(_WARMUP_SQL.format(marks=", ".join("?" * len(names))), names).df()
    cols = ["component", "complete", "missing_intervals", "missing_symbols", "ts"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    wide = long.pivot_table(index="component", columns="metric", values="value", aggfunc="max")
    wide = wide.reindex(columns=names)
    out = pd.DataFrame(
        {
            "component": wide.index.to_numpy(),
            "complete": (wide["warmup_complete"] == 1.0).to_numpy(),
            "missing_intervals": wide["warmup_missing_intervals"]
            .fillna(0)
            .astype("int64")
            .to_numpy(),
            "missing_symbols": wide["warmup_missing_symbols"].fillna(0).astype("int64").to_numpy(),
            "ts": long.groupby("component")["ts"].max().reindex(wide.index).to_numpy(),
        }
    )
    return out.reset_index(drop=True)


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
        health.revisions = _load_revisions(con)
        health.warmup = _load_warmup(con)
        rate = con.execute(_RATE_SQL, [bucket_ms, bucket_ms, newest_stat - STATS_HORIZON]).df()
        if not rate.empty:
            rate.insert(1, "t", ms_to_time(rate.pop("t_ms")))
            health.rate = rate
    newest_bar = None
    if health.rate.empty and health.row_counts.get("bars"):
        newest_bar = _newest_value(con, "SELECT max(open_time) FROM bars")
    if newest_bar is not None:
        rate = con.execute(_BAR_RATE_SQL, [newest_bar - timedelta(minutes=15)]).df()
        if not rate.empty:
            rate.insert(1, "t", ms_to_time(rate.pop("t_ms")))
            health.rate = rate
            health.rate_source = "bars"
    if health.row_counts.get("rejects"):
        health.rejects = con.execute(_REJECTS_SQL).df()
    if health.row_counts.get("gaps"):
        health.gaps_by_status = con.execute(_GAPS_BY_STATUS_SQL).df()
        health.gaps_recent = con.execute(_GAPS_RECENT_SQL).df()
    return health
