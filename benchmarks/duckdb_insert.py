"""DuckDB write cost per row: plain ``INSERT`` vs ``INSERT OR REPLACE``, and the sink.

    uv run python benchmarks/duckdb_insert.py [--flushes 30] [--repeat 3]

Writes ``--flushes`` flushes of 2,002 ``analytics`` rows (91 pairs x 22 seconds, new
keys, the scanner's shape) into a fresh file with the schema's DDL, alternating, in
one run:

* ``INSERT OR REPLACE`` (what every keyed table used) and plain ``INSERT``, through
  the sink's own ``_insert`` on one open connection (one transaction per flush);
* the same with the connection closed and reopened every 3 flushes (what
  :class:`sinks.duckdb_sink.HeldConnection` does at a replay's pace: each close is a
  checkpoint);
* the sink itself (``DuckDBPartition``: buffering, routing, NumPy columns), records
  in, one flush per batch: with :class:`~sinks.duckdb_sink.InsertPlan` (plain
  inserts first) and with every keyed table upserted (as before the plan).

Prints µs per row (median of ``--repeat``) and the ratio to ``INSERT OR REPLACE``.
Never asserts timings.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from pairflow.records import AnalyticsRow
from pairflow.testing.bench import machine, md_table
from sinks import duckdb_sink
from sinks.duckdb_sink import DuckDBPartition, Frames, InsertPlan, _columns, _insert
from sinks.schema import TABLES

PAIRS = [f"S{i:02d}USDT/S{j:02d}USDT" for i in range(14) for j in range(i + 1, 14)]
SECONDS = 22
BASE_MS = 1_700_000_000_000


def records(flush: int, rng: random.Random) -> list[object]:
    """One flush of new analytics rows (every pair, ``SECONDS`` grid times)."""
    out: list[object] = []
    for s in range(SECONDS):
        ts = BASE_MS + (flush * SECONDS + s) * 1000
        for pair in PAIRS:
            v = [rng.random() for _ in range(15)]
            out.append(
                AnalyticsRow(
                    pair,
                    "1s",
                    ts,
                    300,
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    v[5],
                    v[6],
                    v[7],
                    v[8],
                    v[9],
                    False,
                    True,
                    v[10],
                    v[11],
                    v[12],
                    v[13],
                    v[14],
                )  # fmt: skip
            )
    return out


def raw(path: Path, batches: list, verb: str, reopen_every: int) -> float:
    """Seconds to write ``batches`` with ``verb`` through ``_insert``."""
    table = TABLES["analytics"]
    con = duckdb_sink.duckdb.connect(str(path))
    con.execute(table.ddl())
    t0 = time.perf_counter()
    for i, cols in enumerate(batches):
        con.execute("BEGIN TRANSACTION")
        _insert(con, verb, table, cols)
        con.execute("COMMIT")
        if reopen_every and (i + 1) % reopen_every == 0:
            con.close()
            con = duckdb_sink.duckdb.connect(str(path))
    con.close()
    return time.perf_counter() - t0


class _AlwaysReplace(InsertPlan):
    """The sink as before :class:`InsertPlan`: every keyed table upserted."""

    def plain(self, frames: Frames) -> set[str]:
        return set()


def sink(path: Path, flushes: list[list[object]], plan: bool = True) -> float:
    """Seconds for the sink to take and write ``flushes`` (one flush each)."""
    part = DuckDBPartition(path, batch_rows=10**9, flush_ms=10**9, resume=None)
    if not plan:
        part.plan = _AlwaysReplace()
    t0 = time.perf_counter()
    for recs in flushes:
        part.write_batch(recs)
        part.flush()
    part.close()
    return time.perf_counter() - t0


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flushes", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    flushes = [records(k, rng) for k in range(args.flushes)]
    table = TABLES["analytics"]
    route = duckdb_sink._route(AnalyticsRow)
    batches = [_columns(table, table.names, [route.row(r) for r in f]) for f in flushes]
    n_rows = sum(len(f) for f in flushes)
    cases = {
        "INSERT OR REPLACE, connection held": lambda p: raw(
            p, batches, "INSERT OR REPLACE INTO", 0
        ),
        "plain INSERT, connection held": lambda p: raw(p, batches, "INSERT INTO", 0),
        "INSERT OR REPLACE, reopened every 3 flushes": lambda p: raw(
            p, batches, "INSERT OR REPLACE INTO", 3
        ),
        "plain INSERT, reopened every 3 flushes": lambda p: raw(p, batches, "INSERT INTO", 3),
        "the sink, every keyed table upserted": lambda p: sink(p, flushes, plan=False),
        "the sink (records in, InsertPlan)": lambda p: sink(p, flushes),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            for k, (name, fn) in enumerate(cases.items()):
                times[name].append(fn(Path(tmp) / f"{rep}-{k}.db"))
    base = statistics.median(times["INSERT OR REPLACE, connection held"])
    rows = [
        [name, f"{1e6 * statistics.median(t) / n_rows:.1f}", f"{statistics.median(t) / base:.2f}x"]
        for name, t in times.items()
    ]
    print(f"{machine()}; {n_rows:,} analytics rows in {args.flushes} flushes, "
          f"median of {args.repeat}\n")  # fmt: skip
    print(md_table(["write", "µs per row", "time vs INSERT OR REPLACE"], rows))


if __name__ == "__main__":
    main()
