"""End-to-end throughput: >= 1 M real ticks through the whole flow, against two yardsticks.

    uv run python benchmarks/e2e.py                 # ~1.03 M ticks (about 2 minutes)
    uv run python benchmarks/e2e.py --quick         # ~200 k ticks
    uv run python benchmarks/e2e.py --profile       # + py-spy profile of the full flow
    uv run python benchmarks/e2e.py --whole-process --ticks 688000
        # whole processes (start-up included): bytewax.run dataflow vs a bare flow

The shipped recording (34,419 BTCUSDT/ETHUSDT trades) is repeated with shifted
trade times and ids (``benchmarks/_common.py``) into a temporary ``.ndjson.gz`` (what
a user replays; ``--plain`` for uncompressed) and replayed at max speed, in this
process with ``run_main`` (interpreter start-up and imports excluded), through:

* **pairflow, all sinks**: the real ``dataflow.build`` with the Redis tee (unique
  key prefix, deleted afterwards), a DuckDB file and analytics with the default
  windows ``1s=300,1m=120,5m=60``; then the same without analytics, and without Redis;
* **ceiling**: the same source -> ``sources.binance.wire.parse_batch`` -> our bar step
  (1s/1m/5m event-time bars) -> a null sink: what Bytewax can do with our parsing
  and windowing and no I/O;
* **bytewax fold_window**: source -> parse -> one item per tick ->
  ``bytewax.operators.windowing.fold_window`` (1 s tumbling, ``EventClock``) -> null;
* **source only**: the replay source -> null (file reading and gzip);
* **seed-style baseline** (``benchmarks/seed_baseline.py``): per-tick ``XADD``,
  pandas resample per pulled batch, ``executemany`` upserts. It runs on a subset
  (``--baseline-ticks``) and its rate is extrapolated to the full tick count.

Prints a Markdown table (ticks, wall s, ticks/s, ratio to ours, ratio to ceiling)
plus sanity counts. Never asserts timings.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bytewax.operators as op
import duckdb
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

import dataflow
from benchmarks.e2e_bare import SYMBOLS, NullSink, bare_flow, parse_chunks
from benchmarks.seed_baseline import run_seed_baseline
from operators.bars import BarLogic
from pairflow.config import COMMON_DEFAULTS, load_settings
from pairflow.records import Bar
from pairflow.testing import ROOT
from pairflow.testing.bench import (
    DEFAULT_WINDOWS,
    RECORDING,
    REDIS_URL,
    count_lines,
    delete_prefix,
    machine,
    make_recording,
    md_table,
    new_prefix,
    read_lines,
    replay_settings,
    run_timed,
    settings_env,
)
from sources.replay import ReplaySource


@dataclass
class Row:
    """One measured configuration.

    Attributes:
        name: What ran.
        ticks: Ticks it processed (or the extrapolation target).
        wall_s: Wall time in seconds (extrapolated for the baseline).
        note: Sanity counts or how the number was obtained.
    """

    name: str
    ticks: int
    wall_s: float
    note: str = ""

    @property
    def rate(self) -> float:
        """Ticks per second."""
        return self.ticks / self.wall_s


LAST_CPU_S: list[float] = [0.0]
"""CPU time (all threads of this process) of the last :func:`_timed` run."""


def _timed(flow: Dataflow) -> float:
    cpu = time.process_time()
    started = time.perf_counter()
    run_main(flow)
    wall = time.perf_counter() - started
    LAST_CPU_S[0] = time.process_time() - cpu
    return wall


def run_pairflow(path: Path, tmp: Path, *, redis_on: bool, windows: str) -> tuple[float, str]:
    """The real flow at max speed; returns (wall s, sanity note)."""
    prefix = new_prefix("e2e")
    db = tmp / f"e2e-{prefix.split(':')[1]}.db"
    env = settings_env(
        source=f"replay:{path}",
        replay_speed="max",
        db=str(db),
        redis_url=REDIS_URL if redis_on else "",
        redis_prefix=prefix,
        windows=windows,
    )
    try:
        wall = _timed(dataflow.build(load_settings(env)))
        con = duckdb.connect(str(db), read_only=True)
        try:
            bars = con.execute("SELECT count(*) FROM bars").fetchone()[0]  # type: ignore[index]
            rows = con.execute("SELECT count(*) FROM analytics").fetchone()[0]  # type: ignore[index]
            rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]  # type: ignore[index]
        finally:
            con.close()
        note = f"{bars:,} bars, {rows:,} analytics rows, {rejects} rejects"
        if redis_on:
            client = redis.Redis.from_url(REDIS_URL)
            teed = sum(client.xlen(f"{prefix}ticks:{s}") for s in SYMBOLS)
            client.close()
            note += f", {teed:,} Redis entries"
    finally:
        if redis_on:
            delete_prefix(prefix)
        db.unlink(missing_ok=True)
    return wall, note


def run_ceiling(path: Path) -> tuple[float, str]:
    """Source -> parse -> our 1s/1m/5m bar step -> null sink."""
    flow = Dataflow("ceiling")
    inp = op.input("input", flow, ReplaySource(path))
    chunks = op.flat_map_batch("parse", inp, parse_chunks)
    bars = op.stateful_batch(
        "bars",
        chunks,
        lambda resume: BarLogic("replay", wall_clock=False, grace_ms=300, state=resume),
    )
    sink = NullSink()
    op.output("null", op.filter("bars_only", bars, lambda kv: isinstance(kv[1], Bar)), sink)
    return _timed(flow), f"{sink.counter['items']:,} bars"


def run_bytewax_windowing(path: Path) -> tuple[float, str]:
    """Source -> parse -> per-tick items -> bytewax ``fold_window`` (1 s) -> null sink."""
    flow, sink, late = bare_flow(path)
    wall = _timed(flow)
    return wall, f"{sink.counter['items']:,} 1s bars, {late.counter['items']:,} late ticks"


def run_source_only(path: Path) -> tuple[float, str]:
    """The replay source alone (file reading and gzip) into a null sink."""
    flow = Dataflow("source_only")
    sink = NullSink()
    op.output("null", op.input("input", flow, ReplaySource(path)), sink)
    return _timed(flow), f"{sink.counter['items']:,} lines"


def run_baseline(path: Path, tmp: Path, subset: int, total: int) -> Row:
    """The seed-style baseline on the first ``subset`` ticks, extrapolated to ``total``."""
    lines = list(itertools.islice(read_lines(path), subset))
    prefix = new_prefix("seed")
    try:
        wall = run_seed_baseline(lines, tmp / "seed.db", prefix=prefix)
    finally:
        delete_prefix(prefix)
    rate = len(lines) / wall
    note = f"measured {len(lines):,} ticks in {wall:.1f} s, extrapolated"
    return Row("seed-style baseline (subset)", total, total / rate, note)


def table(rows: list[Row], ours: Row, ceiling: Row) -> str:
    """The Markdown result table."""
    body = [
        [
            r.name,
            f"{r.ticks:,}",
            f"{r.wall_s:.2f}",
            f"{r.rate:,.0f}",
            f"{r.rate / ours.rate:.2f}x",
            f"{r.rate / ceiling.rate:.2f}x",
            r.note,
        ]
        for r in rows
    ]
    heads = ["configuration", "ticks", "wall s", "ticks/s", "vs ours", "vs ceiling", "check"]
    return md_table(heads, body)


def targets(ours: Row, ceiling: Row, seed: Row, no_analytics: Row, bare: Row) -> str:
    """The issue's three targets, met or not.

    The "bare Bytewax parse + 1s window" ceiling is reported two ways: bytewax's own
    ``fold_window`` (the literal reading) and our bar step without I/O (stricter: it
    is faster than bytewax's window and also builds 1m/5m).
    """

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return "\n".join(
        [
            "",
            f"- end to end >= 100,000 ticks/s: {ours.rate:,.0f} ({mark(ours.rate >= 100_000)})",
            f"- >= 0.5x the bare Bytewax ceiling (parse + fold_window 1s): "
            f"{ours.rate / bare.rate:.2f}x ({mark(ours.rate >= 0.5 * bare.rate)})",
            f"- >= 0.5x the stricter ceiling (parse + our 1s/1m/5m bar step): "
            f"{ours.rate / ceiling.rate:.2f}x ({mark(ours.rate >= 0.5 * ceiling.rate)}); "
            f"without analytics {no_analytics.rate / ceiling.rate:.2f}x",
            f"- >= 20x the seed-style baseline: {ours.rate / seed.rate:.1f}x "
            f"({mark(ours.rate >= 20 * seed.rate)}); without analytics (the baseline has "
            f"none) {no_analytics.rate / seed.rate:.1f}x",
        ]
    )


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Top functions (inclusive and self %) of a py-spy ``--format raw`` profile.

    Import-time stacks (``_find_and_load``) and the benchmark's own line counting are
    left out: they are start-up cost, not the flow.
    """
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n_s = line.rpartition(" ")
        if not stack or "_find_and_load" in stack or "count_lines" in stack:
            continue
        n = int(n_s)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    rows = [
        [f"`{f}`", f"{100 * n / total:.1f}%", f"{100 * own[f] / total:.1f}%"]
        for f, n in incl.most_common(top + 3)
        if not f.startswith(("<module>", "main (", "run_pairflow", "_timed"))
    ][:top]
    return f"{total} samples\n\n" + md_table(["function", "inclusive", "self"], rows)


def profile(path: Path, out: Path, windows: str, redis_on: bool, rate: int = 200) -> str:
    """Run the flow once under py-spy (a subprocess) and summarize the profile."""
    spy = Path(sys.executable).parent / "py-spy"
    cmd = [
        str(spy), "record", "-f", "raw", "-r", str(rate), "-o", str(out), "--",
        sys.executable, str(Path(__file__).resolve()), "--only-ours", "--file", str(path),
        "--windows", windows, *([] if redis_on else ["--no-redis"]),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return summarize_profile(out)


def _child_env(tmp: Path) -> dict[str, str]:
    """A child's environment: byte-code cached (this environment disables it), one BLAS thread."""
    import os

    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp / "pycache"), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def whole_process(path: Path, tmp: Path, repeat: int) -> str:
    """Whole processes, start-up included, alternating: the full flow vs a bare Bytewax flow.

    Full: ``python -m bytewax.run dataflow`` with the replay at max speed, Redis tee,
    DuckDB and analytics with the default windows. Also the same without analytics
    (``PAIRFLOW_WINDOWS=`` : bars, Redis, DuckDB), which says how much of the difference
    the analytics rows are. Bare: ``python benchmarks/e2e_bare.py FILE`` (parse + key +
    1s ``fold_window`` -> null, via ``run_main``; it imports only Bytewax and our
    parser and replay source). The yardstick is the bare flow as a user writes it,
    with Python's default GC thresholds; the flow runs with ``PAIRFLOW_GC_THRESHOLDS``
    (``pairflow/gc_tuning.py``), so one more row gives the bare flow the same thresholds.
    """
    env = _child_env(tmp)
    walls: dict[str, list[float]] = {"full": [], "no_analytics": [], "bare": [], "bare_gc": []}
    gc_arg = COMMON_DEFAULTS["GC_THRESHOLDS"]
    for i in range(repeat):
        for name, windows in (("full", DEFAULT_WINDOWS), ("no_analytics", "")):
            prefix = new_prefix("e2e")
            db = tmp / f"wp-{i}-{name}.db"
            run_env = {**env, **settings_env(**replay_settings(path, db, prefix, windows))}
            try:
                walls[name].append(
                    run_timed([sys.executable, "-m", "bytewax.run", "dataflow"], run_env)
                )
            finally:
                delete_prefix(prefix)
                db.unlink(missing_ok=True)
        bare = [sys.executable, str(ROOT / "benchmarks/e2e_bare.py"), str(path)]
        walls["bare"].append(run_timed(bare, env))
        walls["bare_gc"].append(run_timed([*bare, gc_arg], env))
    med = {k: sorted(v)[len(v) // 2] for k, v in walls.items()}
    ticks = count_lines(path)
    names = {
        "full": "pairflow: bytewax.run dataflow (Redis + DuckDB + analytics)",
        "no_analytics": "pairflow without analytics (Redis + DuckDB, PAIRFLOW_WINDOWS=)",
        "bare": "bare Bytewax: parse + key + 1s fold_window",
        "bare_gc": f"the same bare flow with pairflow's gc.set_threshold({gc_arg})",
    }
    rows = [
        [names[k], f"{med[k]:.2f}", f"{ticks / med[k]:,.0f}", f"{med['bare'] / med[k]:.2f}x",
         " ".join(f"{w:.1f}" for w in walls[k])]
        for k in names
    ]  # fmt: skip
    return (
        md_table(
            ["whole process (start-up included)", "wall s (median)", "ticks/s", "vs bare", "runs"],
            rows,
        )
        + f"\n\nratio (bare wall / full wall): **{med['bare'] / med['full']:.2f}x** "
        f"(goal >= 1.0x), {ticks:,} ticks, median of {repeat} alternating runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000, help="at least this many")
    parser.add_argument("--quick", action="store_true", help="200 k ticks, 10 k baseline")
    parser.add_argument("--baseline-ticks", type=int, default=50_000)
    parser.add_argument("--plain", action="store_true", help="uncompressed .ndjson input")
    parser.add_argument("--file", type=Path, default=None, help="use this recording as is")
    parser.add_argument("--profile", action="store_true", help="also profile with py-spy")
    parser.add_argument("--profile-out", type=Path, default=Path("/tmp/pairflow-e2e.pyspy.txt"))
    parser.add_argument(
        "--only-ours", action="store_true", help="only the full flow (for A/B runs, profiles)"
    )
    parser.add_argument("--only-ceiling", action="store_true", help="only the ceiling flow")
    parser.add_argument("--windows", default=DEFAULT_WINDOWS, help="with --only-ours/--profile")
    parser.add_argument("--no-redis", action="store_true", help="with --only-ours/--profile")
    parser.add_argument(
        "--whole-process", action="store_true", help="only the whole-process full vs bare ratio"
    )
    parser.add_argument("--repeat", type=int, default=3, help="with --whole-process")
    args = parser.parse_args()
    if args.quick:
        args.ticks, args.baseline_ticks = 200_000, 10_000

    with tempfile.TemporaryDirectory(prefix="pairflow-e2e-") as tmp_s:
        tmp = Path(tmp_s)
        if args.file is not None:
            path = args.file
        else:
            path = tmp / ("ticks.ndjson" if args.plain else "ticks.ndjson.gz")
            make_recording(path, args.ticks, RECORDING)
        if args.whole_process:
            print(f"{machine()}\n")
            print(whole_process(path, tmp, args.repeat))
            return
        if args.only_ours:
            wall, note = run_pairflow(path, tmp, redis_on=not args.no_redis, windows=args.windows)
            ticks = count_lines(path)
            print(
                f"pairflow: {wall:.2f} s, {ticks / wall:,.0f} ticks/s, "
                f"cpu {LAST_CPU_S[0]:.2f} s ({note})"
            )
            return
        if args.only_ceiling:
            wall, note = run_ceiling(path)
            print(
                f"ceiling: {wall:.2f} s, {count_lines(path) / wall:,.0f} ticks/s, "
                f"cpu {LAST_CPU_S[0]:.2f} s ({note})"
            )
            return
        ticks = count_lines(path)
        print(f"{ticks:,} ticks ({path.name}), {machine()}, {time.strftime('%Y-%m-%d')}\n")
        rows: list[Row] = []
        measures: list[tuple[str, Callable[[], tuple[float, str]]]] = [
            (
                "pairflow: Redis tee + DuckDB + analytics (default windows)",
                lambda: run_pairflow(path, tmp, redis_on=True, windows=DEFAULT_WINDOWS),
            ),
            (
                "pairflow: Redis tee + DuckDB, no analytics",
                lambda: run_pairflow(path, tmp, redis_on=True, windows=""),
            ),
            (
                "pairflow: DuckDB only (bars, rejects, stats)",
                lambda: run_pairflow(path, tmp, redis_on=False, windows=""),
            ),
            ("ceiling: source -> parse -> our bar step -> null", lambda: run_ceiling(path)),
            ("bytewax fold_window 1s (EventClock) -> null", lambda: run_bytewax_windowing(path)),
            ("source only (read + decode) -> null", lambda: run_source_only(path)),
        ]
        for name, fn in measures:
            wall, note = fn()
            rows.append(Row(name, ticks, wall, note))
            print(f"  {name}: {wall:.2f} s", file=sys.stderr)
        rows.append(run_baseline(path, tmp, args.baseline_ticks, ticks))
        print(table(rows, rows[0], rows[3]))
        print(targets(rows[0], rows[3], rows[-1], rows[1], rows[4]))
        if args.profile:
            print("\nProfile of the full flow (py-spy, CPU samples):\n")
            print(profile(path, args.profile_out, args.windows, not args.no_redis))
            print(f"\nraw profile: {args.profile_out}")


if __name__ == "__main__":
    main()
