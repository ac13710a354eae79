"""The DuckDB writer thread against a busy flow thread, per interpreter switch interval.

    uv run python benchmarks/gil_switch.py            # 1000-row flushes of 7 tables
    uv run python benchmarks/gil_switch.py --rows 5000 --loops 60

The DuckDB sink writes on its own thread (``sinks/duckdb_sink.py``) while the flow's
thread runs Python. Every call into DuckDB's Python API takes the GIL back on its way
out, and a thread that waits for the GIL gets it when the running thread drops it:
after ``sys.getswitchinterval()`` (Python's default 5 ms). Per interval, in one process
(alternating, ``--repeat`` times, median), the main thread runs a fixed Python loop
(``--loops`` million iterations) while a writer thread writes flushes back to back as
the sink does (``write_frames``: a transaction, one registered NumPy batch and one
``INSERT`` per table; seven tables of ``--rows`` new rows, ``bars`` and ``analytics``
among them):

* **flush ms**: a flush's wall time meanwhile (idle: the same flush, nothing else running);
* **flushes/s**: how many the writer completed while the loop ran;
* **main thread s**: the loop's wall time, and the same loop with no writer (after a
  warm-up; the faster of a run before and one after): the flow's thread's loss to the
  writer's GIL time and the switches; per flush written meanwhile, the main
  thread's ms lost a flush (the cost of the writer's progress to the flow).

Prints a Markdown table; never asserts timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pairflow.testing.bench import machine, md_table  # noqa: E402
from sinks.duckdb_sink import Frames, _columns, connect_rw, write_frames  # noqa: E402
from sinks.schema import TABLES, create_all  # noqa: E402

BASE_MS = 1_723_075_200_000
TABLES_WRITTEN = (
    "bars", "analytics", "strategy_equity", "signals", "scan", "strategy_trades", "gaps",
)  # fmt: skip


def _value(col_type: str, i: int, j: int) -> object:
    if col_type == "TIMESTAMPTZ":
        return BASE_MS + 1000 * i
    if col_type in ("BIGINT", "INTEGER"):
        return i + j
    if col_type == "BOOLEAN":
        return i % 2 == 0
    if col_type == "VARCHAR":
        return f"S{j % 14:02d}USDT"
    return 1.0 + 1e-3 * i


def flush_frames(rows: int, offset: int) -> Frames:
    """One flush: ``rows`` new rows (keys from ``offset``) of each table, as NumPy columns."""
    frames = Frames()
    for name in TABLES_WRITTEN:
        table = TABLES[name]
        batch = [
            tuple(_value(c.type, offset + i, j) for j, c in enumerate(table.columns))
            for i in range(rows)
        ]
        frames.appends[name] = _columns(table, table.names, batch)
    return frames


def busy_loop(millions: int) -> float:
    """Wall seconds of ``millions`` M iterations of a Python loop."""
    t0 = time.perf_counter()
    n = 0
    for _ in range(millions):
        for _ in range(1_000_000):
            n += 1
    return time.perf_counter() - t0


def measure(interval_s: float, rows: int, millions: int, db: Path) -> dict[str, float]:
    """Flush ms (busy, idle), flushes/s and the loop's seconds at ``interval_s``."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    con = connect_rw(db)
    for _ in create_all(con, new_file=True):
        pass
    frames = flush_frames(rows, 0)
    times: list[float] = []
    stop = threading.Event()

    def shift() -> None:  # new keys for the next flush: every key has an integer column
        for batch in frames.appends.values():
            for name, col in batch.items():
                if col.dtype.kind == "i":
                    batch[name] = col + 10 * rows * 1000

    def writer() -> None:
        f = frames
        while not stop.is_set():
            shift()
            t = time.perf_counter()
            write_frames(con, f)
            times.append(time.perf_counter() - t)

    try:
        busy_loop(millions // 4 or 1)  # warm-up
        alone_s = busy_loop(millions)
        th = threading.Thread(target=writer)
        th.start()
        loop_s = busy_loop(millions)
        stop.set()
        th.join()
        alone_s = min(alone_s, busy_loop(millions))  # alone: before and after
        flushes = len(times)
        busy_ms = statistics.median(times) * 1000
        shift()
        t = time.perf_counter()
        write_frames(con, frames)
        idle_ms = (time.perf_counter() - t) * 1000
    finally:
        con.close()
        db.unlink(missing_ok=True)
        sys.setswitchinterval(old)
    return {
        "busy_ms": busy_ms,
        "idle_ms": idle_ms,
        "flushes_s": flushes / loop_s,
        "loop_s": loop_s,
        "alone_s": alone_s,
        "lost_ms": (loop_s - alone_s) / max(flushes, 1) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows per table and flush")
    parser.add_argument("--loops", type=int, default=30, help="million loop iterations")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--intervals-ms", default="5,2,1,0.5")
    args = parser.parse_args(argv)
    intervals = [float(x) for x in args.intervals_ms.split(",")]
    res: dict[float, list[dict[str, float]]] = {ms: [] for ms in intervals}
    with tempfile.TemporaryDirectory(prefix="pairflow-gil-") as tmp:
        for r in range(args.repeat):
            for ms in intervals:
                db = Path(tmp) / f"g{r}-{ms}.db"
                res[ms].append(measure(ms / 1000, args.rows, args.loops, db))
    print(machine(), "\n")
    print(
        f"{len(TABLES_WRITTEN)} tables x {args.rows:,} rows a flush; main thread: "
        f"{args.loops} M loop iterations; median of {args.repeat} runs\n"
    )

    def med(ms: float, k: str) -> float:
        return statistics.median(r[k] for r in res[ms])

    rows = [
        [
            f"{ms:g}" + (" (Python's default)" if ms == 5 else ""),  # noqa: PLR2004
            f"{med(ms, 'busy_ms'):.0f}",
            f"{med(ms, 'idle_ms'):.0f}",
            f"{med(ms, 'flushes_s'):.1f}",
            f"{med(ms, 'loop_s'):.2f}",
            f"{med(ms, 'alone_s'):.2f}",
            f"{med(ms, 'lost_ms'):.0f}",
        ]
        for ms in intervals
    ]
    print(
        md_table(
            [
                "switch interval ms",
                "flush ms (main busy)",
                "flush ms (idle)",
                "flushes/s",
                "main loop s, with writer",
                "main loop s, alone",
                "main ms lost a flush",
            ],
            rows,
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
