"""The dashboard's reads, cached by Streamlit.

Pair and strategy discovery, the shared per-view snapshot, Redis stream lengths
and the "is this synthetic data" check.

Every read opens the DuckDB file read-only and closes it at once (:mod:`dashboard.db`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import duckdb
import streamlit as st

from dashboard import db as dbio
from dashboard import pair_view, pipeline_health, redis_streams, snapshot
from dashboard import strategy_view as sv
from dashboard.app_config import AppConfig

HEALTH_EVERY_S = 4.5  # the flow reports pipeline stats every 5 s
SYNTHETIC_DB_NAMES = ("demo-scan.db",)  # the scan demo's file (pairflow.demo)


@st.cache_data(ttl=15, show_spinner=False)
def discover_pairs(db_path: str) -> list[str]:
    """Pairs with data in the database (empty when it cannot be read right now)."""
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            return pair_view.list_pairs(con)
    except (dbio.DashboardDataError, duckdb.Error):
        return []


@st.cache_data(ttl=5, show_spinner=False)
def redis_lengths(
    url: str, symbols: tuple[str, ...], prefix: str
) -> tuple[dict[str, int], str | None]:
    """Stream lengths, or an error message (cached briefly so a dead Redis costs once)."""
    try:
        return redis_streams.redis_stream_lengths(url, symbols, prefix), None
    except dbio.DashboardDataError as exc:
        return {}, str(exc)


@st.cache_data(ttl=15, show_spinner=False)
def discover_strategies(db_path: str) -> dict[str, dict[str, Any]]:
    """Strategies in the database (name -> params); empty when it cannot be read."""
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            return sv.list_strategies(con)
    except (dbio.DashboardDataError, duckdb.Error):
        return {}


_SYNTHETIC_SQL = {
    "rejects": "SELECT 1 FROM rejects WHERE source = 'synthetic' LIMIT 1",
    "pipeline_stats": (
        "SELECT 1 FROM pipeline_stats WHERE component = 'source' AND metric = 'synthetic' LIMIT 1"
    ),
}


@st.cache_data(ttl=30, show_spinner=False)
def db_says_synthetic(db_path: str) -> bool:
    """Whether the database itself says its data came from the synthetic source.

    (``rejects.source = 'synthetic'``, or the flow's ``source``/``synthetic`` stat.)
    """
    try:
        with dbio.open_readonly(db_path, timeout_s=0.5) as con:
            tables = dbio.existing_tables(con)
            return any(
                con.execute(sql).fetchone() is not None
                for table, sql in _SYNTHETIC_SQL.items()
                if table in tables
            )
    except (dbio.DashboardDataError, duckdb.Error):
        return False


def is_synthetic(cfg: AppConfig) -> bool:
    """Whether the data shown is synthetic.

    Any of: ``PAIRFLOW_SOURCE=synthetic``, the scan demo's file name, or the
    database's own record of its source.
    """
    return (
        cfg.source_kind == "synthetic"
        or cfg.db_path.name in SYNTHETIC_DB_NAMES
        or "synthetic" in cfg.db_path.name.lower()
        or db_says_synthetic(str(cfg.db_path))
    )


class Snapshot(NamedTuple):
    """One read of everything the selected view shows.

    Attributes:
        view: The pair view's data.
        health: The pipeline health data.
        strategy: The selected strategy's data.
        grid_points: Grid points of the pair at the view's tf when it has no analytics yet.
    """

    view: pair_view.ViewData
    health: pipeline_health.HealthData
    strategy: sv.StrategyData
    grid_points: int | None


@st.cache_resource(ttl=1.0, max_entries=32, show_spinner=False)
def shared_snapshot(db_path: str, req: pair_view.ViewRequest) -> Snapshot:
    """One read of the database, shared by every viewer of the same view for 1 s.

    Several browser tabs then cost one read-only open per second, not one each,
    which keeps the flow's writer from waiting on readers. Errors are not cached.
    """
    with dbio.open_readonly(db_path) as con:
        tables = dbio.existing_tables(con)
        view, health = snapshot.load_snapshot(con, req, db_path, health_max_age_s=HEALTH_EVERY_S)
        strategy = sv.load_strategy(
            con, req.strategy, req.pair, req.tf, view.start, view.end, view.bucket_s, tables=tables
        )
        grid = None
        if not view.has_analytics and "bars" in tables:
            grid = pair_view.grid_points(con, req.y, req.x, req.tf)
        return Snapshot(view, health, strategy, grid)
