"""Bytewax recovery store helpers.

A recovery directory holds a fixed number of SQLite partitions created once with
``python -m bytewax.recovery DIR N``. pairflow creates them on first use, one per
worker of the whole cluster (bytewax's recommendation), so restarting with the same
``-r DIR`` resumes from the last snapshot.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bytewax.recovery import init_db_dir

log = logging.getLogger(__name__)


def ensure_recovery_dir(path: Path, workers_per_process: int, addresses: str | None) -> None:
    """Create the recovery partitions in ``path`` if it holds none yet.

    Args:
        path: Recovery directory (created if missing).
        workers_per_process: ``-w`` of the run.
        addresses: ``-a`` of the run (``host:port;host:port``), or None for one process.
    """
    if path.is_dir() and any(path.glob("part-*.sqlite3")):
        return
    processes = len(addresses.split(";")) if addresses else 1
    count = max(1, workers_per_process * processes)
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, count)
    log.info("created recovery store %s with %d partitions", path, count)
