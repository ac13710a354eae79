"""Start-up cost: a 100-tick replay, whole process, pairflow vs a bare Bytewax flow.

Measured side by side in one run (alternating, ``--repeat`` times each, median):

* **pairflow**: ``PAIRFLOW_SOURCE=replay:<100 ticks> PAIRFLOW_REPLAY_SPEED=max
  python -m bytewax.run dataflow`` (Redis tee off, a fresh DuckDB file), wall time
  from ``Popen`` to exit.
* **bare Bytewax**: ``python -m bytewax.run`` of a minimal flow doing the same 100
  ticks: read the lines, parse the JSON, key by symbol, a 1 s tumbling
  ``fold_window`` on event time (OHLC + volume), print nothing.
* **time to the first bar in DuckDB**: the same pairflow command run through a
  wrapper that patches ``sinks.duckdb_sink.DuckDBPartition.flush`` and records when
  the first flush holding a ``Bar`` returned (from ``Popen``).

Then ``python -X importtime -c 'import dataflow'`` and the build of the flow
(``dataflow.flow``), top offenders by cumulative time.

Byte-code: this environment sets ``PYTHONDONTWRITEBYTECODE=1``, so every process
compiles every module from source (~1 s of pairflow's start-up here). By default the
children write byte-code under a temporary ``PYTHONPYCACHEPREFIX`` (what a normal
install sees; one warm-up run each first); ``--no-pycache`` measures the compile-every-
time case.

Usage::

    uv run --frozen python benchmarks/startup.py [--repeat 5] [--top 12]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pairflow.testing import RECORDING, ROOT
from pairflow.testing.bench import flow_env, machine, md_table, run_timed

BARE_FLOW = """
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower
from bytewax.testing import TestingSource

import os

LINES = Path(os.environ["BARE_TICKS"]).read_text().splitlines()
ALIGN = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse(line):
    d = json.loads(line)["data"]
    return d["s"], (int(d["T"]), float(d["p"]), float(d["q"]))


def ts(v):
    return datetime.fromtimestamp(v[0] / 1000, tz=timezone.utc)


def folder(acc, v):
    _, p, q = v
    if acc is None:
        return [p, p, p, p, q]
    acc[1] = max(acc[1], p); acc[2] = min(acc[2], p); acc[3] = p; acc[4] += q
    return acc


flow = Dataflow("bare")
s = op.input("in", flow, TestingSource(LINES))
keyed = op.map("parse", s, parse)
clock = EventClock(ts, wait_for_system_duration=timedelta(0))
bars = win.fold_window("bars", keyed, clock, TumblingWindower(timedelta(seconds=1), ALIGN),
                       lambda: None, folder, lambda a, b: a)
op.output("out", op.filter("none", bars.down, lambda kv: False), StdOutSink())
"""

FIRST_BAR_WRAPPER = """
import os, sys, time
import sinks.duckdb_sink as ds
from pairflow.records import Bar

_write, _flush = ds.DuckDBPartition.write_batch, ds.DuckDBPartition.flush
state = {"bar": False, "done": False}

def write_batch(self, items):
    if not state["bar"] and any(isinstance(i, Bar) for i in items):
        state["bar"] = True
    return _write(self, items)

def flush(self):
    out = _flush(self)
    if state["bar"] and not state["done"]:
        state["done"] = True
        Path = __import__("pathlib").Path
        Path(os.environ["FIRST_BAR_FILE"]).write_text(repr(time.time()))
    return out

ds.DuckDBPartition.write_batch = write_batch
ds.DuckDBPartition.flush = flush
from bytewax.run import cli_main
import dataflow
cli_main(dataflow.flow)
"""


def write_ticks(dest: Path, n: int) -> None:
    """The first ``n`` lines of the shipped recording."""
    with gzip.open(RECORDING, "rt") as fh:
        lines = [next(fh) for _ in range(n)]
    dest.write_text("".join(lines))


def importtime(top: int, code: str) -> list[tuple[str, float, float]]:
    """``python -X importtime -c code``: (module, self s, cumulative s), top by cumulative."""
    env = flow_env(source="synthetic", redis_url="")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        rows.append((name.strip(), int(self_us) / 1e6, int(cum_us) / 1e6))
    rows.sort(key=lambda r: -r[2])
    return rows[:top]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--no-pycache", action="store_true", help="compile from source")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        byte_env: dict[str, str] = {}
        if not args.no_pycache:
            byte_env = {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.update(byte_env)
        ticks = tmp / "ticks.ndjson"
        write_ticks(ticks, args.ticks)
        (tmp / "bare_flow.py").write_text(BARE_FLOW)
        (tmp / "first_bar.py").write_text(FIRST_BAR_WRAPPER)
        ours_t, bare_t, first_t = [], [], []
        for k in range(-1 if byte_env else 0, args.repeat):  # k = -1: warm the byte-code
            db = tmp / f"ours{k}.db"
            env = flow_env(source=f"replay:{ticks}", replay_speed="max", redis_url="", db=str(db))
            cmd = [sys.executable, "-m", "bytewax.run", "dataflow"]
            ours = run_timed(cmd, env, ROOT)
            benv = {**os.environ, "BARE_TICKS": str(ticks), "PYTHONPATH": str(tmp)}
            bare = run_timed([sys.executable, "-m", "bytewax.run", "bare_flow"], benv, tmp)
            if k >= 0:
                ours_t.append(ours)
                bare_t.append(bare)
            fb = tmp / f"first{k}.txt"
            fenv = {**env, "PAIRFLOW_DB": str(tmp / f"fb{k}.db"), "FIRST_BAR_FILE": str(fb)}
            t0 = time.time()
            run_timed([sys.executable, str(tmp / "first_bar.py")], fenv, ROOT)
            if k >= 0:
                first_t.append(float(fb.read_text()) - t0)
        ours, bare, first = (statistics.median(v) for v in (ours_t, bare_t, first_t))
        print(f"machine: {machine()}; byte-code {'cached' if byte_env else 'compiled'}\n")
        print(
            f"{args.ticks}-tick replay, whole process, median of {args.repeat} alternating runs\n"
        )
        print(
            md_table(
                ["process", "median s", "min s", "max s", "vs bare"],
                [
                    ["bare Bytewax (parse + 1s fold_window)", f"{bare:.2f}", f"{min(bare_t):.2f}",
                     f"{max(bare_t):.2f}", "1.00x"],
                    ["pairflow `bytewax.run dataflow`", f"{ours:.2f}", f"{min(ours_t):.2f}",
                     f"{max(ours_t):.2f}", f"{ours / bare:.2f}x"],
                    ["pairflow: first bar in DuckDB (from Popen)", f"{first:.2f}",
                     f"{min(first_t):.2f}", f"{max(first_t):.2f}", f"{first / bare:.2f}x"],
                ],
            )
        )  # fmt: skip
    for code in (
        "import dataflow",
        "import dataflow; dataflow.flow",
    ):
        print(f"\n`python -X importtime -c '{code}'`, top {args.top} by cumulative time\n")
        rows = importtime(args.top, code)
        print(md_table(["module", "self s", "cumulative s"],
                       [[f"`{n}`", f"{s:.3f}", f"{c:.3f}"] for n, s, c in rows]))  # fmt: skip


if __name__ == "__main__":
    main()
