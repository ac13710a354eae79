"""Replay throughput: the same ticks as Binance trades dumps (CSV/ZIP) vs as NDJSON.

    uv run --frozen python benchmarks/history.py [--ticks N] [--repeat R] [--no-process]

The shipped recording is repeated (shifted times and ids) to at least ``--ticks``
trades and written both ways: one NDJSON(.gz) recording of both symbols, and one spot
trades dump per symbol (``BTCUSDT-trades-DATE.csv|zip``, Binance's headerless layout),
which the replay merges by time. Also the BTCUSDT ticks alone (one file each way, no
merge). Measured in this one run, best of ``--repeat``:

* source: the replay partition drained in-process (file reading, decompression,
  parsing to ``Tick`` records; the merge for two dumps);
* flow: the whole dataflow in-process (``run_main``; Redis tee off, no analytics,
  DuckDB on), interpreter start-up excluded;
* process: ``python -m bytewax.run dataflow`` with ``PAIRFLOW_REPLAY_SPEED=max`` as a
  user runs it (start-up included).

Prints Markdown tables; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import orjson
from bytewax.testing import run_main

import dataflow
from pairflow.config import load_settings
from pairflow.testing import RECORDING, ROOT
from pairflow.testing.bench import flow_env, machine, make_recording, md_table, read_lines
from pairflow.testing.oracle import read_table
from sources.replay import ReplaySource

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAY = "2024-08-08"


def write_inputs(tmp: Path, min_ticks: int) -> dict[str, list[Path]]:
    """The same ticks as NDJSON(.gz) and as spot trades dumps (.csv, .zip); by case name."""
    nd_gz = tmp / "both.ndjson.gz"
    make_recording(nd_gz, min_ticks, RECORDING)
    lines = read_lines(nd_gz)
    nd = tmp / "both.ndjson"
    nd.write_bytes(b"".join(x + b"\n" for x in lines))
    rows: dict[str, list[str]] = {s: [] for s in SYMBOLS}
    btc_lines = []
    for line in lines:
        d = orjson.loads(line)["data"]
        quote = format(Decimal(d["p"]) * Decimal(d["q"]), "f")
        maker = "True" if d["m"] else "False"
        rows[d["s"]].append(f"{d['t']},{d['p']},{d['q']},{quote},{d['T']},{maker},True\n")
        if d["s"] == "BTCUSDT":
            btc_lines.append(line)
    btc_nd = tmp / "btc.ndjson.gz"
    import gzip

    with gzip.open(btc_nd, "wb") as fh:
        fh.write(b"".join(x + b"\n" for x in btc_lines))
    out: dict[str, list[Path]] = {
        "NDJSON.gz, 1 file": [nd_gz],
        "NDJSON, 1 file": [nd],
    }
    csvs, zips = [], []
    for sym in SYMBOLS:
        csv_path = tmp / f"{sym}-trades-{DAY}.csv"
        text = "".join(rows[sym])
        csv_path.write_text(text)
        zip_path = tmp / f"{sym}-trades-{DAY}.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(csv_path.name, text)
        csvs.append(csv_path)
        zips.append(zip_path)
    out["trades CSV, 2 files merged"] = csvs
    out["trades ZIP, 2 files merged"] = zips
    out["BTCUSDT NDJSON.gz, 1 file"] = [btc_nd]
    out["BTCUSDT trades CSV, 1 file"] = [csvs[0]]
    out["BTCUSDT trades ZIP, 1 file"] = [zips[0]]
    return out


def time_source(paths: list[Path]) -> tuple[float, float, int]:
    """Wall and CPU seconds to drain the replay partition; records emitted."""
    src = ReplaySource(paths, symbols=frozenset(SYMBOLS), progress_every_s=None)
    part = src.build_part("input", src.list_parts()[0], None)
    n = 0
    started, cpu = time.perf_counter(), time.process_time()
    try:
        while True:
            n += len(part.next_batch())
    except StopIteration:
        pass
    return time.perf_counter() - started, time.process_time() - cpu, n


def _settings(paths: list[Path], db: Path) -> dict[str, str]:
    return {
        "source": "replay:" + ",".join(str(p) for p in paths),
        "replay_speed": "max",
        "db": str(db),
        "redis_url": "",
        "windows": "",
        "config": "",
    }


def time_flow(paths: list[Path], tmp: Path) -> tuple[float, int]:
    """Seconds for the whole flow in-process; 1s bars written."""
    db = tmp / f"flow-{time.monotonic_ns()}.db"
    env = {f"PAIRFLOW_{k.upper()}": v for k, v in _settings(paths, db).items()}
    flow = dataflow.build(load_settings(env))
    started = time.perf_counter()
    run_main(flow)
    wall = time.perf_counter() - started
    bars = read_table(db, "bars", "symbol")
    db.unlink()
    return wall, int(bars[bars.tf == "1s"].trades.sum())


def time_process(paths: list[Path], tmp: Path) -> float:
    """Seconds for ``python -m bytewax.run dataflow`` (start-up included)."""
    db = tmp / f"proc-{time.monotonic_ns()}.db"
    env = flow_env(**_settings(paths, db))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    db.unlink()
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-process", action="store_true", help="skip bytewax.run runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        cases = write_inputs(tmp, args.ticks)
        best: dict[str, dict[str, float]] = {name: {} for name in cases}
        counts: dict[str, int] = {}
        for _ in range(args.repeat):  # cases interleaved: load changes hit all alike
            for name, paths in cases.items():
                got = best[name]
                wall, cpu, n = time_source(paths)
                counts[name] = n
                got["src"] = min(got.get("src", 1e9), wall)
                got["cpu"] = min(got.get("cpu", 1e9), cpu)
                flow_s, traded = time_flow(paths, tmp)
                assert traded == n, (name, traded, n)  # every tick is in the bars
                got["flow"] = min(got.get("flow", 1e9), flow_s)
                if not args.no_process:
                    got["proc"] = min(got.get("proc", 1e9), time_process(paths, tmp))
        rows = []
        for name, paths in cases.items():
            got, n = best[name], counts[name]
            size = sum(p.stat().st_size for p in paths) / 1e6
            proc = f"{got['proc']:.2f} s = {n / got['proc']:,.0f}" if "proc" in got else "-"
            rows.append(
                [
                    name,
                    f"{n:,}",
                    f"{size:.1f}",
                    f"{n / got['src']:,.0f} ({got['cpu'] * 1e6 / n:.2f} µs CPU)",
                    f"{got['flow']:.2f} s = {n / got['flow']:,.0f}",
                    proc,
                ]
            )
    print(f"Replay throughput, best of {args.repeat}; {machine()}\n")
    headers = [
        "input",
        "ticks",
        "MB on disk",
        "source only, ticks/s (CPU per tick)",
        "flow in-process, ticks/s",
        "bytewax.run process, ticks/s",
    ]
    print(md_table(headers, rows))


if __name__ == "__main__":
    main()
