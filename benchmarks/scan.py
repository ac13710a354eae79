"""Scanner speed: µs per analytics row (kernel and whole flow) against statsmodels, in one run.

    uv run python benchmarks/scan.py                 # N=14 (91 pairs), 1s W=300, ~10 min
    uv run python benchmarks/scan.py --quick         # shorter flows, fewer repeats
    uv run python benchmarks/scan.py --keep-up 40,60,80 [--workers 2 | --processes 2]
        # all-pairs 1s/1m/5m scans: which N keeps up with real time

Measures, in the same run (the machine is shared: ratios, not absolute numbers):

1. **statsmodels** µs per row: OLS + ``adfuller`` + ``coint`` (+ z, corr, half-life
   OLS) recomputed on a sample of windows (``benchmarks/analytics.py``'s
   ``statsmodels_row``), at W=100/300/1000.
2. **kernel** µs per row: :class:`operators.analytics.PairAnalyticsLogic` per bar at
   the same W, with the C kernel, the numba kernel and the numpy path; and the
   kernel call alone, C vs numba (:func:`kernel_calls`).
3. **whole flow** µs per row: the real ``dataflow.build`` (synthetic ``clusters``
   universe, ``PAIRFLOW_PAIRS=all``, DuckDB sink, scan, no Redis) as a child process,
   analytics on vs off (alternating, ``--repeat`` times, median):
   ``(wall_on - wall_off - kernel load) / analytics rows``. The kernel load (the C
   build's ``dlopen``, milliseconds; numba's import and cached code ~1 s, where there
   is no C compiler), paid once per process, is reported and not counted per row.
4. ``--keep-up``: for each N, all pairs at ``1s=300,1m=120,5m=60``, run twice: over
   ``W + 30`` and ``W + 30 + --keep-up-s`` simulated seconds (W = 300 s: the first
   1s rows come at 300 s). The difference is the steady-state cost of
   ``--keep-up-s`` seconds of market time with every pair's 1s row (and the 1m/5m
   rows and scans) computed: it keeps up if that costs less wall time than the
   market time (speed > 1×). The table also extrapolates the largest N at that
   per-row cost (pairs × rows/s ≤ 1 / cost) and the DuckDB rows written per second of
   wall time in the longer run. ``--workers`` runs one process with that many workers;
   ``--processes 2`` runs two processes of one worker each on loopback
   (``cluster_main``), the DuckDB sink in process 0.

Children write byte-code under a temporary ``PYTHONPYCACHEPREFIX`` (this environment
sets ``PYTHONDONTWRITEBYTECODE``; a user's installation has byte-code), BLAS runs one
thread. Prints Markdown tables; never asserts timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

CHILD = r"""
import json, os, sys, time
t_start = time.perf_counter()
from bytewax.testing import run_main
import dataflow
from pairflow.config import load_settings
from pairflow.gc_tuning import apply_gc_thresholds, apply_switch_interval
s = load_settings()
apply_gc_thresholds(s.gc_thresholds)  # as dataflow.py / bytewax.run dataflow do
apply_switch_interval(s.switch_interval_ms)
f = dataflow.build(s, with_analytics=os.environ["BENCH_ANALYTICS"] == "1")
warm = 0.0
if os.environ["BENCH_ANALYTICS"] == "1" and os.environ.get("PAIRFLOW_COMPILED") != "off":
    from pairflow.stats import fastrow
    t = time.perf_counter(); fastrow.kernel(); warm = time.perf_counter() - t
t_build = time.perf_counter()
workers = int(os.environ.get("BENCH_WORKERS", "1"))
addresses = [a for a in os.environ.get("BENCH_ADDRESSES", "").split(",") if a]
if addresses:
    from bytewax.testing import cluster_main
    cluster_main(f, addresses, int(os.environ["BENCH_PROC_ID"]), worker_count_per_proc=workers)
elif workers > 1:
    from bytewax.testing import cluster_main
    cluster_main(f, [], 0, worker_count_per_proc=workers)
else:
    run_main(f)
if os.environ.get("BENCH_PROC_ID", "0") != "0":
    print(json.dumps({"run_s": time.perf_counter() - t_build}))
    sys.exit(0)
t_run = time.perf_counter() - t_build
import duckdb
con = duckdb.connect(s.db_path, read_only=True)
counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0]
          for t in ("analytics", "scan", "bars")}
print(json.dumps({"run_s": t_run, "startup_s": t_build - t_start, "warm_s": warm,
                  "counts": counts}))
"""


def _load_analytics_bench():  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(
        "_bench_analytics", ROOT / "benchmarks/analytics.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def symbols(n: int) -> str:
    """``n`` synthetic symbol names."""
    return ",".join(f"S{i:02d}USDT" for i in range(n))


def free_port() -> int:
    """A TCP port free on loopback right now (for the cluster's addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_flow(
    n: int, duration_s: float, windows: str, analytics: bool, tmp: Path, workers: int = 1,
    rate: float = 5.0, processes: int = 1,
) -> dict:  # fmt: skip
    """One run of the whole flow (``processes`` child processes); timings and table counts."""
    db = tmp / f"f{time.monotonic_ns()}.db"
    env = {
        **os.environ,
        "PAIRFLOW_SOURCE": "synthetic",
        "PAIRFLOW_SYNTHETIC_UNIVERSE": "clusters",
        "PAIRFLOW_SYNTHETIC_DURATION_S": str(duration_s),
        "PAIRFLOW_SYNTHETIC_RATE": str(rate),
        "PAIRFLOW_SYMBOLS": symbols(n),
        "PAIRFLOW_PAIRS": "all",
        "PAIRFLOW_WINDOWS": windows,
        "PAIRFLOW_REDIS_URL": "",
        "PAIRFLOW_DB": str(db),
        "BENCH_ANALYTICS": "1" if analytics else "0",
        "BENCH_WORKERS": str(workers),
        "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if processes > 1:
        env["BENCH_ADDRESSES"] = ",".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    procs = []
    for proc_id in range(processes):
        penv = {**env, "BENCH_PROC_ID": str(proc_id)} if processes > 1 else env
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD],
                cwd=ROOT,
                env=penv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])
    res = json.loads(outs[0][0].strip().splitlines()[-1])
    res["run_s"] = max(json.loads(o.strip().splitlines()[-1])["run_s"] for o, _ in outs)
    db.unlink(missing_ok=True)
    return res


def kernel_calls(calls: int = 2000, best_of: int = 5) -> str:
    """The row kernel call alone, C vs numba, per W: best of ``best_of`` x ``calls`` calls.

    One window of a cointegrated random walk, the flow's maximum ADF lag; the C kernel
    called as the flow calls it (addresses), numba with arrays.
    """
    import numpy as np

    from pairflow.stats import fastrow
    from pairflow.stats.cointegration import adf_maxlag
    from pairflow.testing.bench import md_table

    c, nb = fastrow.c_kernel(), fastrow.numba_kernel()
    if c is None or nb is None:
        return "(kernel calls: the C or the numba kernel is not available here)"
    rng = np.random.default_rng(7)
    rows = []
    for n in (100, 300, 1000):
        a = np.cumsum(rng.normal(size=2 * n)) * 0.01 + 10.0
        b = 0.7 * a + rng.normal(size=2 * n) * 0.01
        sa, sb = float((a[:n] - a[0]).sum()), float((b[:n] - b[0]).sum())
        out = np.empty(fastrow.N_OUT)
        args = (0, n, float(a[0]), float(b[0]), sa, sb, 0.7, adf_maxlag(n))
        cases = {
            "c": (c.fn, (a.ctypes.data, b.ctypes.data, *args, out.ctypes.data)),
            "numba": (nb.fn, (a, b, *args, out)),
        }
        best = {}
        for name, (fn, fargs) in cases.items():
            times = []
            for _ in range(best_of):
                t = time.perf_counter()
                for _ in range(calls):
                    fn(*fargs)
                times.append((time.perf_counter() - t) / calls * 1e6)
            best[name] = min(times)
        rows.append(
            [n, f"{best['c']:.1f}", f"{best['numba']:.1f}", f"{best['numba'] / best['c']:.2f}x"]
        )
    return md_table(["W", "C kernel µs/call", "numba kernel µs/call", "C faster by"], rows)


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print the tables."""
    from pairflow.testing.bench import machine, md_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--symbols", type=int, default=14, help="N for the whole-flow rows")
    parser.add_argument("--duration-s", type=float, default=1800.0, help="simulated seconds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-up", default="", help="comma-separated N to test for real time")
    parser.add_argument(
        "--keep-up-s", type=float, default=150.0, help="market seconds with every row"
    )
    parser.add_argument("--workers", type=int, default=1, help="with --keep-up: per process")
    parser.add_argument("--processes", type=int, default=1, help="with --keep-up")
    parser.add_argument("--skip-flow", action="store_true", help="kernel and statsmodels only")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration_s, args.repeat = min(args.duration_s, 900.0), 1

    print(machine(), "\n")
    with tempfile.TemporaryDirectory(prefix="pairflow-scan-") as tmp_s:
        tmp = Path(tmp_s)
        if args.keep_up:
            keep_up(args, tmp)
            return
        bench = _load_analytics_bench()
        sm: dict[int, float] = {}
        ours: dict[tuple[int, str], float] = {}
        bars, sm_bars = (300, 10) if args.quick else (1500, 40)
        from operators import pair_row
        from pairflow.stats import fastrow

        warm, builds = {}, {}
        for name, load in (("c", fastrow.c_kernel), ("numba", fastrow.numba_kernel)):
            t = time.perf_counter()
            builds[name] = load()
            warm[name] = time.perf_counter() - t
        wy, wx = bench.closes(200, "synthetic")
        flows: list[tuple[float, float, dict]] = []
        for w in (100, 300, 1000):
            yc, xc = bench.closes(w + bars + 2, "real")
            for mode in ("c", "numba", "numpy"):  # the rows' kernel, as the flow calls it
                if mode != "numpy":
                    pair_row.kernel = lambda kern=builds[mode]: kern
                    bench.time_ours(wy, wx, 100, 50, 1, compiled=True)  # warm
                ours[(w, mode)] = statistics.median(
                    bench.time_ours(yc, xc, w, bars, 1, compiled=mode != "numpy")
                    for _ in range(max(1, args.repeat))
                )
            pair_row.kernel = fastrow.kernel
            sm[w] = statistics.median(
                bench.time_statsmodels(yc, xc, w, sm_bars) for _ in range(max(1, args.repeat))
            )
        if not args.skip_flow:
            for _ in range(args.repeat):
                off = run_flow(args.symbols, args.duration_s, "1s=300", False, tmp)
                on = run_flow(args.symbols, args.duration_s, "1s=300", True, tmp)
                flows.append((off["run_s"], on["run_s"], on))
        print(kernel_calls(), "\n")
        print(
            f"kernel load in this process: C {warm['c']:.3f} s (build on a new machine, else "
            f"dlopen), numba {warm['numba']:.2f} s (import + cached code)\n"
        )
        rows = []
        for w in (100, 300, 1000):
            row = [w, f"{sm[w]:,.0f}"]
            for mode in ("c", "numba", "numpy"):
                row += [f"{ours[(w, mode)]:,.1f}", f"{sm[w] / ours[(w, mode)]:,.0f}x"]
            rows.append(row)
        print(
            md_table(
                [
                    "W",
                    "statsmodels µs/row",
                    "ours, C µs/row",
                    "ratio",
                    "ours, numba µs/row",
                    "ratio",
                    "ours, numpy µs/row",
                    "ratio",
                ],
                rows,
            )  # fmt: skip
        )
        if flows:
            n_pairs = args.symbols * (args.symbols - 1) // 2
            off_s = statistics.median(f[0] for f in flows)
            on_s = statistics.median(f[1] for f in flows)
            last = flows[-1][2]
            nrows = last["counts"]["analytics"]
            warm_s = statistics.median(f[2]["warm_s"] for f in flows)
            per_row = (on_s - off_s) / nrows * 1e6
            print(
                f"\nwhole flow: N={args.symbols} ({n_pairs} pairs), 1s W=300, "
                f"{args.duration_s:.0f} s simulated, {nrows:,} analytics rows, "
                f"{last['counts']['scan']:,} scan rows; median of {len(flows)} alternating runs\n"
            )
            print(
                md_table(
                    [
                        "flow",
                        "run s (median)",
                        "µs per analytics row",
                        "statsmodels W=300 µs/row",
                        "ratio",
                        "goal",
                    ],
                    [
                        ["analytics off", f"{off_s:.1f}", "", "", "", ""],
                        [
                            "analytics on",
                            f"{on_s:.1f}",
                            f"{per_row:,.0f}",
                            f"{sm[300]:,.0f}",
                            f"{sm[300] / per_row:,.0f}x",
                            ">= 300x",
                        ],
                    ],
                )  # fmt: skip
            )
            print(
                f"\n(kernel load {warm_s:.3f} s per process, before the run, not in run s; "
                f"start-up of the on run {last['startup_s']:.2f} s)"
            )


def keep_up(args: argparse.Namespace, tmp: Path) -> None:
    """The ``--keep-up`` table: does each N's all-pairs 1s/1m/5m flow keep real time."""
    from pairflow.testing.bench import md_table

    windows = "1s=300,1m=120,5m=60"
    warm_s = 300.0 + 30.0  # W of 1s bars, then rows from every pair
    rows = []
    for n in (int(v) for v in args.keep_up.split(",")):
        runs = [
            run_flow(n, d, windows, True, tmp, workers=args.workers, processes=args.processes)
            for d in (warm_s, warm_s + args.keep_up_s)
        ]
        extra_s = runs[1]["run_s"] - runs[0]["run_s"]
        extra_rows = runs[1]["counts"]["analytics"] - runs[0]["counts"]["analytics"]
        speed = args.keep_up_s / extra_s
        pairs = n * (n - 1) // 2
        per_row_us = extra_s / extra_rows * 1e6
        rows_per_market_s = extra_rows / args.keep_up_s
        max_pairs = 1e6 / per_row_us / (rows_per_market_s / pairs)
        max_n = int((1 + (1 + 8 * max_pairs) ** 0.5) / 2)
        c = runs[1]["counts"]
        db_rows = c["analytics"] + c["scan"] + c["bars"]
        rows.append(
            [n, pairs, f"{args.processes}x{args.workers}", f"{extra_s:.1f}",
             f"{speed:.2f}x", "yes" if speed > 1 else "no", f"{per_row_us:,.0f}",
             f"~{max_n}", f"{db_rows / runs[1]['run_s']:,.0f}"]
        )  # fmt: skip
        print(rows[-1], flush=True)
    print(
        f"\nsteady state: {args.keep_up_s:.0f} s of market time with every pair's 1s row "
        "(+ 1m/5m rows, scans at the default PAIRFLOW_SCAN_EVERY), the difference of two runs\n"
    )
    print(
        md_table(
            [
                "N",
                "pairs",
                "processes x workers",
                "wall s",
                "speed vs real time",
                "keeps up",
                "µs per row",
                "largest N at that cost",
                "DuckDB rows/s",
            ],
            rows,
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
