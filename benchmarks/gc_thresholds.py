"""Time in Python's cyclic garbage collector, default thresholds vs ``PAIRFLOW_GC_THRESHOLDS``.

    uv run python benchmarks/gc_thresholds.py             # recording x20 + N=14 scan, 3 runs
    uv run python benchmarks/gc_thresholds.py --quick     # 200 k ticks, 600 s scan, 1 run

Each run is a whole process that builds the flow the way ``bytewax.run dataflow`` does
(``dataflow.flow``, which applies ``PAIRFLOW_GC_THRESHOLDS``) and runs it with
``run_main``; ``gc.callbacks`` time every collection. Two workloads, alternating the
settings' order in each repetition (after one untimed warm-up run of each workload, which
fills the byte-code and kernel caches):

* **e2e**: the shipped recording repeated x20 (688 k ticks), Redis tee + DuckDB +
  analytics with the default windows (``benchmarks/e2e.py``'s full flow);
* **scan**: synthetic ``clusters`` universe, N = 14 symbols, all 91 pairs, 1s bars,
  W = 300 (``benchmarks/scan.py``'s per-row workload).

Prints a Markdown table: wall s, GC s, collections per generation, peak RSS. Never
asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.scan import symbols
from pairflow.config import COMMON_DEFAULTS
from pairflow.testing import ROOT
from pairflow.testing.bench import (
    DEFAULT_WINDOWS,
    RECORDING,
    delete_prefix,
    machine,
    make_recording,
    md_table,
    new_prefix,
    replay_settings,
    settings_env,
)

CHILD = r"""
import gc, json, resource, time
t0 = time.perf_counter()
spent = [0.0, 0.0, 0.0]
runs = [0, 0, 0]
mark = [0.0]
def _cb(phase, info):
    if phase == "start":
        mark[0] = time.perf_counter()
    else:
        spent[info["generation"]] += time.perf_counter() - mark[0]
        runs[info["generation"]] += 1
gc.callbacks.append(_cb)
from bytewax.testing import run_main
import dataflow
flow = dataflow.flow  # as bytewax.run dataflow: applies PAIRFLOW_GC_THRESHOLDS
run_main(flow)
print(json.dumps({"wall_s": time.perf_counter() - t0, "gc_s": sum(spent), "runs": runs,
                  "thresholds": gc.get_threshold(),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SETTINGS = {"default": "default", "pairflow": COMMON_DEFAULTS["GC_THRESHOLDS"]}


def workload_env(name: str, tmp: Path, recording: Path, scan_s: float) -> tuple[dict, str]:
    """``PAIRFLOW_*`` settings of one workload and the Redis prefix to delete after it."""
    db = tmp / f"{name}-{os.getpid()}-{new_prefix('x').split(':')[1]}.db"
    if name == "e2e":
        prefix = new_prefix("gcbench")
        return settings_env(**replay_settings(recording, db, prefix, DEFAULT_WINDOWS)), prefix
    env = settings_env(
        source="synthetic",
        synthetic_universe="clusters",
        synthetic_duration_s=str(scan_s),
        synthetic_rate="5",
        symbols=symbols(14),
        pairs="all",
        windows="1s=300",
        redis_url="",
        db=str(db),
    )
    return env, ""


def run_workload(
    work: str, base: dict[str, str], tmp: Path, recording: Path, scan_s: float, **extra: str
) -> dict:
    """One whole process of workload ``work`` (``extra``: more env); its JSON line."""
    env, prefix = workload_env(work, tmp, recording, scan_s)
    try:
        return run_child({**base, **env, **extra})
    finally:
        if prefix:
            delete_prefix(prefix)


def run_child(env: dict[str, str]) -> dict:
    """One whole process; its JSON line."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run both workloads under both settings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 k ticks, 600 s scan, 1 run")
    args = parser.parse_args()
    ticks, scan_s = (200_000, 600.0) if args.quick else (688_000, 900.0)
    repeat = 1 if args.quick else args.repeat
    base = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PAIRFLOW_CONFIG": ""}
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="pairflow-gc-") as tmp_s:
        tmp = Path(tmp_s)
        base["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        recording = tmp / "ticks.ndjson.gz"
        make_recording(recording, ticks, RECORDING)
        for work in ("e2e", "scan"):  # warm-up, not timed: byte-code and kernel caches
            run_workload(work, base, tmp, recording, 400.0)
        for i in range(repeat):
            for work in ("e2e", "scan"):
                order = list(SETTINGS.items())
                for label, value in order if i % 2 == 0 else order[::-1]:
                    res = run_workload(
                        work, base, tmp, recording, scan_s, PAIRFLOW_GC_THRESHOLDS=value
                    )
                    results.setdefault((work, label), []).append(res)
    rows = []
    for (work, label), res in results.items():
        res.sort(key=lambda r: r["wall_s"])
        med = res[len(res) // 2]
        default_wall = sorted(r["wall_s"] for r in results[(work, "default")])
        rows.append([
            work, f"{label} {tuple(med['thresholds'])}", f"{med['wall_s']:.2f}",
            f"{default_wall[len(default_wall) // 2] / med['wall_s']:.2f}x",
            f"{med['gc_s']:.2f}", "/".join(str(n) for n in med["runs"]),
            f"{med['rss_mb']:.0f}", " ".join(f"{r['wall_s']:.1f}" for r in res),
        ])  # fmt: skip
    print(machine() + "\n")
    print(
        md_table(
            [
                "workload",
                "thresholds",
                "wall s (median)",
                "speed-up",
                "GC s",
                "collections gen0/1/2",
                "peak RSS MB",
                "runs",
            ],
            rows,
        )  # fmt: skip
    )
    print(
        f"\ne2e: recording x20 ({ticks:,} ticks), Redis + DuckDB + analytics "
        f"{DEFAULT_WINDOWS}; scan: N=14, 91 pairs, 1s W=300, {scan_s:.0f} s synthetic; "
        f"whole processes, median of {repeat}"
    )


if __name__ == "__main__":
    main()
