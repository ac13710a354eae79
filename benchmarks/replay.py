"""Max-speed replay of a recording through the whole flow, Redis tee on and off.

    uv run python benchmarks/replay.py [--file PATH] [--repeat N]

Prints a Markdown table: wall time and ticks/s per configuration, measured side by
side in this one run (in-process ``run_main``; interpreter start-up excluded).
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
import uuid
from pathlib import Path

import redis
from bytewax.testing import run_main

import dataflow
from pairflow.config import load_settings

ROOT = Path(__file__).resolve().parent.parent

DEFAULT = ROOT / "data/recordings/binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"


def count_lines(path: Path) -> int:
    with gzip.open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def run_once(path: Path, redis_url: str, windows: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        env = {
            "PAIRFLOW_SOURCE": f"replay:{path}",
            "PAIRFLOW_REPLAY_SPEED": "max",
            "PAIRFLOW_DB": f"{tmp}/bench.db",
            "PAIRFLOW_REDIS_URL": redis_url,
            "PAIRFLOW_REDIS_PREFIX": prefix,
            "PAIRFLOW_WINDOWS": windows,
        }
        flow = dataflow.build(load_settings(env))
        started = time.perf_counter()
        run_main(flow)
        elapsed = time.perf_counter() - started
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ticks = count_lines(args.file)
    configs = [
        ("bars only (Redis off, no analytics)", "", ""),
        ("bars + Redis tee", "redis://127.0.0.1:6379/0", ""),
    ]
    print(f"{ticks} ticks from {args.file.name}, best of {args.repeat}\n")
    print("| configuration | wall s | ticks/s |")
    print("|---|---:|---:|")
    for name, url, windows in configs:
        best = min(run_once(args.file, url, windows) for _ in range(args.repeat))
        print(f"| {name} | {best:.2f} | {ticks / best:,.0f} |")


if __name__ == "__main__":
    main()
