"""Dashboard refresh time: queries + figures on a generated 7-day DuckDB file.

One refresh = open the file read-only, read the pair view and the health panel,
close it (``query ms``), then build every Plotly figure and serialise it to JSON as
``st.plotly_chart`` does (``figure ms``). The target is <= 150 ms per refresh. Live
refreshes reuse the complete buckets of a downsampled view (``BucketCache``); the
``cold`` column is the first view after clearing that cache.

A second table measures lock contention: a writer process that behaves like the
flow's DuckDB sink (open read-write, upsert a few rows, close, every 250 ms) runs
while the dashboard refreshes back to back.

    uv run python benchmarks/dashboard_refresh.py            # 7 days of 1s bars, 2 symbols
    uv run python benchmarks/dashboard_refresh.py --quick    # 1 day
    uv run python benchmarks/dashboard_refresh.py --db FILE  # an existing database
    uv run python benchmarks/dashboard_refresh.py --scan-symbols 80
        # a scanner database: the real flow, N synthetic symbols, all pairs

``--scan-symbols N`` first writes a database with the real flow (``python -m
bytewax.run dataflow``: synthetic ``clusters`` universe, ``PAIRFLOW_PAIRS=all``,
windows ``1s=300,1m=120,5m=60``, ``--scan-duration-s`` simulated seconds at max
speed), then times the Scanner tab's refresh per timeframe (open read-only, newest
scan, filter, heat map + table serialised as Streamlit sends them: Plotly JSON, Arrow
IPC) and the pair view of the top-ranked pair on that file.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import plotly.io as pio

from benchmarks.scan import symbols as scan_symbols
from dashboard import cache, health_charts, pair_charts, pair_view, pipeline_health, snapshot
from dashboard import db as dbio
from pairflow.testing.bench import DEFAULT_WINDOWS, flow_env, run_timed
from pairflow.testing.dbgen import GenSpec, generate_db


def refresh(
    db: Path, req: pair_view.ViewRequest, health_max_age_s: float = 0.0
) -> tuple[float, float, int]:
    """One dashboard refresh; returns (query ms, figure ms, max points per trace).

    The benchmark reads the health panel on every refresh (the app re-reads it at
    most every 4.5 s), so its numbers are an upper bound.
    """
    t0 = time.perf_counter()
    with dbio.open_readonly(db) as con:
        view, health = snapshot.load_snapshot(con, req, db, health_max_age_s=health_max_age_s)
    t1 = time.perf_counter()
    figs = {
        **pair_charts.pair_figures(view, req.y, 2.0, 0.5),
        **health_charts.health_figures(health),
    }
    points = 0
    for fig in figs.values():
        pio.to_json(fig, validate=False)
        for trace in fig.data:
            x = getattr(trace, "x", None)
            points = max(points, 0 if x is None else len(x))
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, points


def bench_lookbacks(db: Path, repeat: int, tfs: tuple[str, ...]) -> list[dict[str, object]]:
    """Per view: steady-state refreshes (complete buckets cached) and cold ones."""
    rows: list[dict[str, object]] = []
    for tf in tfs:
        for label, lookback in pair_view.LOOKBACKS.items():
            req = pair_view.ViewRequest("BTCUSDT", "ETHUSDT", tf, lookback)
            refresh(db, req)  # warm-up (imports, OS page cache)
            cold = []
            for _ in range(3):
                cache.BUCKETS.clear()
                q, f, _ = refresh(db, req)
                cold.append(q + f)
            q_ms, f_ms, tot = [], [], []
            points = 0
            for _ in range(repeat):
                q, f, points = refresh(db, req)
                q_ms.append(q)
                f_ms.append(f)
                tot.append(q + f)
            rows.append(
                {
                    "tf": tf,
                    "lookback": label,
                    "bucket": pair_view.choose_bucket_s(lookback, tf),
                    "points": points,
                    "query": statistics.median(q_ms),
                    "figure": statistics.median(f_ms),
                    "total": statistics.median(tot),
                    "max": max(tot),
                    "cold": statistics.median(cold),
                }
            )
    return rows


def scanner_refresh(db: Path, tf: str) -> tuple[float, float, int]:
    """One Scanner-tab refresh of ``tf``; returns (query ms, figure + table ms, pairs)."""
    import pyarrow as pa  # Streamlit's own dependency: st.dataframe sends Arrow IPC

    from dashboard import scanner

    t0 = time.perf_counter()
    with dbio.open_readonly(db) as con:
        scanner.scan_times(con)
        df = scanner.latest_scan(con, tf)
    t1 = time.perf_counter()
    shown = scanner.filter_scan(df, scanner.ScanFilter())
    pio.to_json(scanner.heatmap_figure(df), validate=False)
    data, _ = scanner.table_spec(shown)
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(data)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, len(df)


def make_scan_db(db: Path, n: int, duration_s: float) -> float:
    """Write a scanner database with the real flow; returns the wall seconds it took."""
    import sys

    env = flow_env(
        source="synthetic",
        synthetic_universe="clusters",
        synthetic_duration_s=str(duration_s),
        symbols=scan_symbols(n),
        pairs="all",
        windows=DEFAULT_WINDOWS,
        redis_url="",
        db=str(db),
    )
    return run_timed([sys.executable, "-m", "bytewax.run", "dataflow"], env)


def bench_scan(db: Path, n: int, duration_s: float, repeat: int) -> None:
    """``--scan-symbols``: write the scanner database, time both views, print the table."""
    wall = make_scan_db(db, n, duration_s)
    with dbio.open_readonly(db) as con:
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in ("bars", "analytics", "scan")
        }
        tfs = [r[0] for r in con.execute("SELECT DISTINCT tf FROM scan ORDER BY tf").fetchall()]
        top = con.execute(
            "SELECT pair FROM scan WHERE tf = '1s' ORDER BY ts DESC, rank LIMIT 1"
        ).fetchone()
    size_mb = pipeline_health.db_size_bytes(db) / 1e6
    print(
        f"scanner database: N = {n} ({n * (n - 1) // 2:,} pairs), {duration_s:.0f} s simulated, "
        f"written in {wall:.1f} s; {size_mb:.0f} MB, bars {counts['bars']:,}, analytics "
        f"{counts['analytics']:,}, scan {counts['scan']:,}; median of {repeat} refreshes\n"
    )
    print("| view | pairs / points | query ms | figures + table ms | total ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for tf in tfs:
        scanner_refresh(db, tf)  # warm-up
        _print_row(f"Scanner tab, {tf}", [scanner_refresh(db, tf) for _ in range(repeat)])
    if top is not None:
        y, _, x = top[0].partition("/")
        req = pair_view.ViewRequest(y, x, "1s", pair_view.LOOKBACKS["15 min"])
        refresh(db, req)
        _print_row(f"pair view {top[0]}, 1s, 15 min", [refresh(db, req) for _ in range(repeat)])


def _print_row(view: str, runs: list[tuple[float, float, int]]) -> None:
    """One table row: medians of (query ms, figure ms) and their sum over ``runs``."""
    tot = [q + f for q, f, _ in runs]
    print(
        f"| {view} | {runs[0][2]:,} | {statistics.median(r[0] for r in runs):.1f} "
        f"| {statistics.median(r[1] for r in runs):.1f} | **{statistics.median(tot):.1f}** "
        f"| {max(tot):.1f} |"
    )


def _writer(db: str, stop: mp.synchronize.Event, period_s: float, out: mp.Queue) -> None:
    """Behave like the flow's sink: every period, open RW, upsert the next second, close.

    Each flush appends one new 1s bar per leg and one analytics row (copies of the
    newest ones, one second later), so the dashboard sees a live, growing view.
    """
    import duckdb

    con = duckdb.connect(db)
    bar_t = con.execute("SELECT max(open_time) FROM bars WHERE tf = '1s'").fetchone()[0]
    ana_t = con.execute("SELECT max(ts) FROM analytics WHERE tf = '1s'").fetchone()[0]
    con.close()
    holds: list[float] = []
    waits: list[float] = []
    k = 1
    while not stop.is_set():
        t0 = time.perf_counter()
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(db)
                break
            except duckdb.IOException:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        t1 = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT OR REPLACE INTO bars SELECT * REPLACE (open_time + to_seconds(?) AS "
            "open_time) FROM bars WHERE tf = '1s' AND open_time = ?",
            [k, bar_t],
        )
        con.execute(
            "INSERT OR REPLACE INTO analytics SELECT * REPLACE (ts + to_seconds(?) AS ts) "
            "FROM analytics WHERE tf = '1s' AND ts = ?",
            [k, ana_t],
        )
        con.execute("COMMIT")
        con.close()
        t2 = time.perf_counter()
        waits.append((t1 - t0) * 1000)
        holds.append((t2 - t1) * 1000)
        k += 1
        time.sleep(period_s)
    out.put((holds, waits))


def bench_lock(
    db: Path, seconds: float, writer_period_s: float, reader_period_s: float
) -> dict[str, float]:
    """Refresh every ``reader_period_s`` (0 = back to back) while a writer flushes."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_writer, args=(str(db), stop, writer_period_s, out))
    proc.start()
    time.sleep(1.5)  # let the writer start flushing
    req = pair_view.ViewRequest("BTCUSDT", "ETHUSDT", "1s", timedelta(hours=1))
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            with dbio.open_readonly(db) as con:
                snapshot.load_snapshot(con, req, db)
        except dbio.DatabaseLockedError:
            failed += 1
        took = time.perf_counter() - t0
        latencies.append(took * 1000)
        if reader_period_s > took:
            time.sleep(reader_period_s - took)
    stop.set()
    holds, waits = out.get(timeout=30)
    proc.join(timeout=30)
    latencies.sort()
    waits.sort()
    return {
        "refreshes": len(latencies),
        "failed": failed,
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "max": latencies[-1],
        "writer_flushes": len(holds),
        "writer_hold_p50": statistics.median(holds),
        "writer_wait_p95": waits[int(0.95 * (len(waits) - 1))],
        "writer_wait_max": waits[-1],
    }


LOCK_HEADER = (
    "| dashboard refreshes | refreshes | gave up (locked > 2 s) | refresh p50 ms | p95 ms "
    "| max ms | writer flushes | writer hold p50 ms | writer wait p95 ms | writer wait max ms |"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 day instead of 7")
    ap.add_argument("--db", type=Path, help="benchmark this file instead of a generated one")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--all-tf", action="store_true", help="also 1m and 5m views")
    ap.add_argument("--no-lock", action="store_true", help="skip the lock-contention run")
    ap.add_argument("--scan-symbols", type=int, default=0, help="a scanner DB of N symbols")
    ap.add_argument("--scan-duration-s", type=float, default=930.0, help="with --scan-symbols")
    args = ap.parse_args()
    if args.scan_symbols:
        with tempfile.TemporaryDirectory(prefix="pairflow-bench-") as tmp:
            bench_scan(Path(tmp) / "scan.db", args.scan_symbols, args.scan_duration_s, args.repeat)
        return

    with tempfile.TemporaryDirectory(prefix="pairflow-bench-") as tmp:
        db = args.db
        if db is None:
            days = 1 if args.quick else 7
            db = Path(tmp) / "bench.db"
            t0 = time.perf_counter()
            generate_db(db, GenSpec(seconds=days * 86_400))
            size_mb = pipeline_health.db_size_bytes(db) / 1e6
            print(
                f"generated {db.name}: {days} day(s) of 1s bars for 2 symbols, "
                f"{size_mb:.0f} MB in {time.perf_counter() - t0:.1f} s"
            )
        with dbio.open_readonly(db) as con:
            counts = {
                t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("bars", "analytics", "signals")
            }
        print(
            f"rows: bars {counts['bars']:,}, analytics {counts['analytics']:,}, "
            f"signals {counts['signals']:,}; median of {args.repeat} refreshes\n"
        )
        tfs = ("1s", "1m", "5m") if args.all_tf else ("1s",)
        rows = bench_lookbacks(db, args.repeat, tfs)
        print(
            "| tf | lookback | bucket | max points/trace | query ms | figure ms | total ms "
            "| cold total ms |"
        )
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['tf']} | {r['lookback']} | {r['bucket']} s | {r['points']:,} "
                f"| {r['query']:.1f} | {r['figure']:.1f} | **{r['total']:.1f}** "
                f"| {r['cold']:.1f} |"
            )
        worst = max(float(r["total"]) for r in rows)  # type: ignore[arg-type]
        worst_cold = max(float(r["cold"]) for r in rows)  # type: ignore[arg-type]
        verdict = "meets" if worst <= 150 else "MISSES"
        print(
            f"\nquery = open read-only + every SQL of one refresh + close; figure = build all "
            f"9 figures + JSON as st.plotly_chart does.\ntotal = median of {args.repeat} live "
            "refreshes (complete buckets of a downsampled view are reused); cold = first "
            f"view after a cache clear.\nworst median refresh {worst:.1f} ms ({verdict} the "
            f"150 ms target); worst cold {worst_cold:.1f} ms"
        )

        if not args.no_lock:
            lock_db = Path(tmp) / "lock.db"  # the writer adds rows: work on a copy
            shutil.copyfile(db, lock_db)
            print("\nLock contention: a sink-like writer opens the file read-write, upserts,")
            print("closes, every 250 ms (as the flow's DuckDB sink does); 10 s per row.\n")
            print(LOCK_HEADER)
            print("|---|" + "---:|" * 9)
            for label, period in (("every 2 s (one viewer)", 2.0), ("back to back", 0.0)):
                st = bench_lock(lock_db, 10.0, 0.25, period)
                print(
                    f"| {label} | {st['refreshes']:.0f} | {st['failed']:.0f} "
                    f"| {st['p50']:.1f} | {st['p95']:.1f} | {st['max']:.1f} "
                    f"| {st['writer_flushes']:.0f} | {st['writer_hold_p50']:.1f} "
                    f"| {st['writer_wait_p95']:.1f} | {st['writer_wait_max']:.1f} |"
                )


if __name__ == "__main__":
    main()
