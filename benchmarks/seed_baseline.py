"""A seed-style baseline: how a naive first version would do the same job.

    uv run python benchmarks/seed_baseline.py [--ticks 50000]

What it does per tick and per batch (deliberately the obvious way, for comparison
with the Bytewax flow in ``benchmarks/e2e.py``):

* one ``XADD ticks:{SYMBOL}`` per tick with redis-py (``json.loads`` per line, no
  pipeline, one round trip each), ``MAXLEN ~`` capped like the flow's tee;
* every ``batch`` ticks, pull the new entries back from Redis (``XRANGE`` per
  symbol) into pandas and ``resample`` them into 1s/1m/5m OHLCV bars;
* write the bars with ``executemany("INSERT OR REPLACE INTO bars ...")`` on one
  long-lived DuckDB connection.

It keeps none of the flow's guarantees: a bar cut by a batch boundary is overwritten
by its second half (wrong bars), and there is no validation, no rejects table and no
analytics. It is a speed reference only: ``ticks/s`` of the real thing must beat it
by a wide margin. Only a subset of ticks is run (per-tick round trips are slow); the
rate is extrapolated by the caller.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
import redis

from pairflow.testing.bench import (
    RECORDING,
    REDIS_URL,
    delete_prefix,
    make_recording,
    md_table,
    new_prefix,
    read_lines,
)
from pairflow.testing.oracle import resample_bars
from sinks.schema import TABLES, create_all

BAR_COLUMNS = TABLES["bars"].names

ROOT = Path(__file__).resolve().parent.parent

INSERT_SQL = (
    f"INSERT OR REPLACE INTO bars ({', '.join(BAR_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(BAR_COLUMNS))})"
)


def resample_rows(entries: dict[str, list[tuple[bytes, dict[bytes, bytes]]]]) -> list[tuple]:
    """Stream entries ``{symbol: [(id, fields)]}`` -> ``bars`` rows (pandas ``resample``)."""
    frames = []
    for symbol, items in entries.items():
        if not items:
            continue
        ids = [eid.decode().split("-") for eid, _ in items]
        frames.append(
            pd.DataFrame(
                {
                    "s": symbol,
                    "T": [int(t) for t, _ in ids],
                    "t": [int(i) for _, i in ids],
                    "p": [float(f[b"p"]) for _, f in items],
                    "q": [float(f[b"q"]) for _, f in items],
                    "m": [f[b"m"] == b"true" for _, f in items],
                }
            )
        )
    if not frames:
        return []
    bars = resample_bars(pd.concat(frames, ignore_index=True))
    return list(bars[list(BAR_COLUMNS)].itertuples(index=False, name=None))


def run_seed_baseline(
    lines: Sequence[bytes],
    db_path: Path,
    *,
    redis_url: str = REDIS_URL,
    prefix: str = "",
    batch: int = 1000,
    maxlen: int = 1_000_000,
) -> float:
    """Run the naive pipeline over ``lines``; returns the wall time in seconds."""
    client = redis.Redis.from_url(redis_url)
    con = duckdb.connect(str(db_path))
    create_all(con)
    last_id: dict[str, bytes] = {}
    started = time.perf_counter()
    try:
        pending = 0
        symbols: set[str] = set()
        for i, line in enumerate(lines, 1):
            d = json.loads(line)["data"]
            fields = {"p": d["p"], "q": d["q"], "m": "true" if d["m"] else "false"}
            key = f"{prefix}ticks:{d['s']}"
            client.xadd(key, fields, id=f"{d['T']}-{d['t']}", maxlen=maxlen, approximate=True)
            symbols.add(d["s"])
            pending += 1
            if pending >= batch or i == len(lines):
                pulled = {}
                for sym in symbols:
                    start = b"(" + last_id[sym] if sym in last_id else b"-"
                    items = client.xrange(f"{prefix}ticks:{sym}", min=start, max="+")
                    if items:
                        last_id[sym] = items[-1][0]
                    pulled[sym] = items
                rows = resample_rows(pulled)
                if rows:
                    con.executemany(INSERT_SQL, rows)
                pending = 0
    finally:
        elapsed = time.perf_counter() - started
        con.close()
        client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    prefix = new_prefix("seed")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            make_recording(Path(tmp) / "ticks.ndjson", args.ticks, RECORDING)
            lines = read_lines(Path(tmp) / "ticks.ndjson")[: args.ticks]
            wall = run_seed_baseline(lines, Path(tmp) / "seed.db", prefix=prefix, batch=args.batch)
    finally:
        delete_prefix(prefix)
    print(md_table(["run", "ticks", "wall s", "ticks/s"], [
        ["seed-style baseline", f"{len(lines):,}", f"{wall:.2f}", f"{len(lines) / wall:,.0f}"]
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
