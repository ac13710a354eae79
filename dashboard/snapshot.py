"""One dashboard refresh: the pair view and the health panel in one read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb

from dashboard.db import existing_tables
from dashboard.pair_view import ViewData, ViewRequest, load_view
from dashboard.pipeline_health import HealthData, load_health

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
