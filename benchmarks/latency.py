"""Latency at real time: tick -> Redis entry, 1s bar close -> row visible in DuckDB.

    uv run python benchmarks/latency.py                  # 60 s
    uv run python benchmarks/latency.py --seconds 300

Runs ``python dataflow.py`` (short epochs, ``PAIRFLOW_EPOCH_MS`` default 200) as a
subprocess replaying the shipped recording in loop mode at real time
(``PAIRFLOW_REPLAY_SPEED=1``, ``PAIRFLOW_REPLAY_LOOP=1``: the first pass is shifted so
that its trades happen "now"), with the Redis tee (unique key prefix), analytics
(1s window of 30 bars instead of 300, so that 1s analytics rows start within the
first minute) and a temporary DuckDB file. Meanwhile, from this process:

* **DuckDB poller** (every ``--db-poll-ms``, default 50): opens the file read-only,
  reads the 1s ``bars`` and 1s ``analytics`` rows of the last minute, closes. A row's
  latency is the wall time it was first seen minus the end of its interval
  (``open_time + 1 s``). The writer and this reader contend for the file lock: the
  poller counts its refused opens, and the flow's log says how often the writer waited.
* **Redis poller** (every ``--redis-poll-ms``, default 10): ``XRANGE ticks:SYM (last +``
  per symbol; each new entry's latency is the wall time it was first seen minus its
  trade time ``T`` (the entry ID). This includes the replay's pacing granularity
  (``MIN_WAKE_MS`` = 50 ms), like a live feed's network delay would.

The first ``--warmup`` seconds are ignored. Prints p50/p90/p99/max per metric.
Never asserts. Latencies include up to one poll interval of measurement delay.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import redis

from pairflow.testing.bench import (
    RECORDING,
    REDIS_URL,
    flow_env,
    flow_process,
    md_table,
    new_prefix,
    percentile,
    replay_settings,
    run_stamp,
)
from pairflow.timeutil import now_ms

DEFAULT_WINDOWS = "1s=30,1m=120,5m=60"
"""1s analytics need W grid points before the first row: 30 s here (300 s by default)."""
SYMBOLS = ("BTCUSDT", "ETHUSDT")
_UNLOCKED = re.compile(r"unlocked after ([0-9.]+) s")


@dataclass
class DbPoll:
    """What the DuckDB poller saw.

    Attributes:
        first_seen: ``(table, key) -> wall ms`` a row was first visible.
        attempts: Opens tried.
        refused: Opens refused because the writer held the lock.
        errors: Other errors (with a few messages).
        poll_ms: Duration of successful polls.
    """

    first_seen: dict[tuple[str, tuple[str, int]], int] = field(default_factory=dict)
    attempts: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)


@dataclass
class RedisPoll:
    """What the Redis poller saw: per new entry, (first seen wall ms, trade time ms)."""

    seen: list[tuple[int, int]] = field(default_factory=list)


_BARS_SQL = (
    "SELECT symbol, epoch_ms(open_time) FROM bars "
    "WHERE tf = '1s' AND open_time >= make_timestamptz(? * 1000)"
)
_ANALYTICS_SQL = (
    "SELECT pair, epoch_ms(ts) FROM analytics WHERE tf = '1s' AND ts >= make_timestamptz(? * 1000)"
)


def poll_db(db: Path, stop: threading.Event, every_ms: float, out: DbPoll) -> None:
    """Poll ``db`` read-only until ``stop``; records first-seen times of 1s rows."""
    while not stop.is_set():
        tick = time.perf_counter()
        if db.exists():
            out.attempts += 1
            since = now_ms() - 60_000
            try:
                con = duckdb.connect(str(db), read_only=True)
                try:
                    bars = con.execute(_BARS_SQL, [since]).fetchall()
                    rows = con.execute(_ANALYTICS_SQL, [since]).fetchall()
                finally:
                    con.close()
            except duckdb.Error as exc:
                text = str(exc)
                if "lock" in text.lower():
                    out.refused += 1
                elif "does not exist" in text or "Catalog" in type(exc).__name__:
                    out.refused += 1  # tables not created yet
                elif len(out.errors) < 5:
                    out.errors.append(text[:200])
            else:
                seen = now_ms()
                out.poll_ms.append((time.perf_counter() - tick) * 1000)
                for table, result in (("bars", bars), ("analytics", rows)):
                    for key, open_ms in result:
                        out.first_seen.setdefault((table, (key, int(open_ms))), seen)
        stop.wait(max(0.0, every_ms / 1000 - (time.perf_counter() - tick)))


def poll_redis(prefix: str, stop: threading.Event, every_ms: float, out: RedisPoll) -> None:
    """Poll the tick streams until ``stop``; records (first seen, T) of every new entry."""
    client = redis.Redis.from_url(REDIS_URL)
    last: dict[str, bytes] = {}
    try:
        while not stop.is_set():
            tick = time.perf_counter()
            for sym in SYMBOLS:
                key = f"{prefix}ticks:{sym}"
                start = b"(" + last[sym] if sym in last else b"-"
                entries = client.xrange(key, min=start, max="+", count=10_000)
                seen = now_ms()
                if entries:
                    last[sym] = entries[-1][0]
                    out.seen.extend((seen, int(eid.split(b"-")[0])) for eid, _ in entries)
            stop.wait(max(0.0, every_ms / 1000 - (time.perf_counter() - tick)))
    finally:
        client.close()


def stats_row(name: str, values: list[float]) -> list[str]:
    """A table row of latency percentiles (ms)."""
    if not values:
        return [name, "0", "-", "-", "-", "-"]
    return [
        name,
        f"{len(values):,}",
        *(f"{percentile(values, q):.0f}" for q in (50, 90, 99)),
        f"{max(values):.0f}",
    ]


def run(
    seconds: float, warmup: float, db_poll_ms: float, redis_poll_ms: float, windows: str, tmp: Path
) -> str:
    """Run the flow and both pollers; returns the report."""
    prefix = new_prefix("lat")
    db = tmp / "latency.db"
    env = flow_env(
        **replay_settings(RECORDING, db, prefix, windows, replay_speed="1", replay_loop="1")
    )
    log_path = tmp / "flow.log"
    dbp, rp = DbPoll(), RedisPoll()
    stop = threading.Event()
    with log_path.open("w") as log, flow_process(env, log, prefix, stop_timeout_s=60) as proc:
        started_ms = now_ms()
        threads = [
            threading.Thread(target=poll_db, args=(db, stop, db_poll_ms, dbp), daemon=True),
            threading.Thread(
                target=poll_redis, args=(prefix, stop, redis_poll_ms, rp), daemon=True
            ),
        ]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    log_text = log_path.read_text()
    if proc.returncode not in (0, None) or "Traceback" in log_text:
        print(log_text[-3000:], file=sys.stderr)

    cutoff = started_ms + int(warmup * 1000)
    bar_lat, ana_lat = [], []
    for (table, (_key, open_ms)), seen in dbp.first_seen.items():
        if open_ms < cutoff:
            continue
        (bar_lat if table == "bars" else ana_lat).append(seen - (open_ms + 1000))
    tick_lat = [seen - t_ms for seen, t_ms in rp.seen if t_ms >= cutoff]
    waits = [float(x) for x in _UNLOCKED.findall(log_text)]
    table = md_table(
        ["latency", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            stats_row("tick -> Redis entry visible (now - T)", tick_lat),
            stats_row("1s bar -> row visible in DuckDB (seen - (open + 1 s))", bar_lat),
            stats_row("1s analytics row -> visible in DuckDB", ana_lat),
        ],
    )
    contention = md_table(
        ["DuckDB lock contention", "value"],
        [
            ["reader polls (open read-only, 2 queries, close)", f"{dbp.attempts:,}"],
            ["reader refused (writer held the lock)",
             f"{dbp.refused:,} ({100 * dbp.refused / max(1, dbp.attempts):.1f}%)"],
            ["reader other errors", f"{len(dbp.errors)} {dbp.errors[:2] or ''}"],
            ["reader poll p50 / p99 ms",
             f"{percentile(dbp.poll_ms, 50):.1f} / {percentile(dbp.poll_ms, 99):.1f}"],
            ["writer flushes that waited for the lock (flow log)",
             f"{len(waits)} (total {sum(waits):.2f} s, max {max(waits, default=0):.2f} s)"],
        ],
    )  # fmt: skip
    return f"{table}\n\n{contention}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--db-poll-ms", type=float, default=50.0)
    parser.add_argument("--redis-poll-ms", type=float, default=10.0)
    parser.add_argument("--windows", default=DEFAULT_WINDOWS)
    args = parser.parse_args()
    print(
        f"latency: {args.seconds:.0f} s real-time loop replay ({args.warmup:.0f} s warm-up), "
        f"python dataflow.py with default PAIRFLOW_EPOCH_MS/BAR_GRACE_MS/DB_FLUSH_MS, "
        f"{run_stamp()}\n"
    )
    with tempfile.TemporaryDirectory(prefix="pairflow-latency-") as tmp:
        print(
            run(
                args.seconds,
                args.warmup,
                args.db_poll_ms,
                args.redis_poll_ms,
                args.windows,
                Path(tmp),
            )
        )


if __name__ == "__main__":
    main()
