"""The one-line summary a run prints when it ends (ticks in, rows out, rejects, time).

Stages add to :data:`COUNTS` (process-wide; the counters are plain ints updated by
one thread per worker, and a summary is informational, so no lock).
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import Counter
from pathlib import Path

COUNTS: Counter[str] = Counter()
"""``ticks`` (accepted at ingest) and ``rows:TABLE`` (rows written per table)."""

_STARTED = time.monotonic()


def summary_line(db_path: Path, seconds: float) -> str:
    """What the run did, e.g. ``pairflow: 34,419 ticks -> 2,574 bars ... in 1.9 s``."""
    tables = ", ".join(
        f"{COUNTS[k]:,} {k.removeprefix('rows:')}"
        for k in sorted(COUNTS)
        if k.startswith("rows:") and k != "rows:rejects"
    )
    return (
        f"pairflow: {COUNTS['ticks']:,} ticks in, {COUNTS['rows:rejects']:,} rejects; "
        f"rows written: {tables or 'none'} -> {db_path} in {seconds:.1f} s"
    )


def print_at_exit(db_path: Path) -> None:
    """Print :func:`summary_line` to stderr when the process exits."""

    def _print() -> None:
        print(summary_line(db_path, time.monotonic() - _STARTED), file=sys.stderr)

    atexit.register(_print)
