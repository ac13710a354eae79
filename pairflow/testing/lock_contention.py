"""DuckDB lock contention: a read-only reader in a tight loop while the flow writes.

    uv run python benchmarks/lock_contention.py                 # 5 copies (~172 k ticks)
    uv run python benchmarks/lock_contention.py --copies 1      # the shipped file only

DuckDB allows one read-write process or many read-only ones, never both: the flow's
sink opens the file for each flush and retries (capped exponential backoff) while a
reader holds it; a reader that finds the writer in gets a lock error. This replays
a recording at max speed through the whole flow (Redis tee, analytics with the
default windows) twice, without and then with a reader **process** that loops
``connect(read_only=True)`` -> ``SELECT count(*) FROM bars`` -> ``close()`` as fast
as it can (``--reader-pause-ms`` to slow it down). Prints:

* the writer's delay: flow wall time with vs without the reader, how many flushes had
  to wait for the lock and for how long (from the sink's log records);
* the reader's attempts, successes, lock errors, other errors, and whether the
  ``count(*)`` it saw ever went down (it must not: readers see whole transactions);
* whether the final ``bars`` table equals the pandas oracle (no lost rows).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pairflow.testing import ROOT
from pairflow.testing.bench import (
    DEFAULT_WINDOWS,
    RECORDING,
    delete_prefix,
    git_commit,
    machine,
    make_recording,
    md_table,
    new_prefix,
    percentile,
    replay_settings,
    settings_env,
)

_UNLOCKED = re.compile(r"unlocked after ([0-9.]+) s")


# -- the reader process --------------------------------------------------------------------
@dataclass
class ReaderStats:
    """What the reader process saw.

    Attributes:
        attempts: Connect attempts.
        ok: Attempts that connected and counted.
        locked: Attempts refused because the writer held the file.
        other_errors: Any other error (must be 0), with a few messages.
        went_down: Times ``count(*)`` was lower than the previous successful one.
        last_count: Rows in ``bars`` at the last success.
        ok_ms: Duration of successful connect+count+close, in ms.
        samples: A few error messages.
    """

    attempts: int = 0
    ok: int = 0
    locked: int = 0
    other_errors: int = 0
    went_down: int = 0
    last_count: int = 0
    ok_ms: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """Share of attempts that succeeded."""
        return self.ok / self.attempts if self.attempts else float("nan")


def reader_loop(db: Path, stop_file: Path, pause_ms: float = 0.0) -> ReaderStats:
    """Open ``db`` read-only, count ``bars``, close; repeat until ``stop_file`` exists."""
    stats = ReaderStats()
    while not db.exists() and not stop_file.exists():
        time.sleep(0.005)
    while not stop_file.exists():
        stats.attempts += 1
        started = time.perf_counter()
        try:
            con = duckdb.connect(str(db), read_only=True)
            try:
                n = int(con.execute("SELECT count(*) FROM bars").fetchone()[0])  # type: ignore[index]
            finally:
                con.close()
        except (duckdb.IOException, duckdb.CatalogException) as exc:
            text = str(exc)
            if "lock" in text.lower():
                stats.locked += 1
            elif isinstance(exc, duckdb.CatalogException) and stats.ok == 0:
                stats.locked += 1  # the writer has not created the table yet
            else:
                stats.other_errors += 1
                if len(stats.samples) < 3:
                    stats.samples.append(text[:200])
        except duckdb.Error as exc:
            stats.other_errors += 1
            if len(stats.samples) < 3:
                stats.samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            stats.ok += 1
            stats.ok_ms.append((time.perf_counter() - started) * 1000)
            if n < stats.last_count:
                stats.went_down += 1
            stats.last_count = n
        if pause_ms:
            time.sleep(pause_ms / 1000)
    return stats


class Reader:
    """A :func:`reader_loop` in a separate process (what a dashboard process is)."""

    def __init__(self, db: Path, pause_ms: float = 0.0) -> None:
        self.db = db
        self.stop_file = db.with_name(db.name + ".stop-reader")
        self.stop_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable, str(Path(__file__).resolve()), "--reader-only",
                "--db", str(db), "--reader-pause-ms", str(pause_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def stop(self) -> ReaderStats:
        """Stop the loop and collect its statistics."""
        self.stop_file.touch()
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            raise
        finally:
            self.stop_file.unlink(missing_ok=True)
        return ReaderStats(**json.loads(out.strip().splitlines()[-1]))


# -- the writer (the flow, in this process) ----------------------------------------------
class _LockLog(logging.Handler):
    """Collects the DuckDB sink's lock-wait log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.waits: list[float] = []
        self.warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "locked by another process" in msg:
            self.warnings += 1
        m = _UNLOCKED.search(msg)
        if m:
            self.waits.append(float(m.group(1)))


@dataclass
class WriterRun:
    """One flow run.

    Attributes:
        wall_s: Flow wall time.
        lock_waits: Flushes that found the file locked.
        waited_s: Per waiting flush, how long it waited (the sink's own sum of sleeps).
        flushes: Connections the sink opened (``connect_rw`` calls).
        connect_s: Total time in ``connect_rw`` (opening the file, lock retries included).
        write_s: Total time in ``write_frames`` (the upsert transaction).
    """

    wall_s: float
    lock_waits: int
    waited_s: list[float]
    flushes: int = 0
    connect_s: float = 0.0
    write_s: float = 0.0


def run_writer(recording: Path, db: Path, prefix: str, windows: str) -> WriterRun:
    """Replay ``recording`` at max speed through the whole flow into ``db``."""
    from bytewax.testing import run_main

    import dataflow
    from pairflow.config import load_settings
    from sinks import duckdb_sink

    settings = load_settings(settings_env(**replay_settings(recording, db, prefix, windows)))
    handler = _LockLog()
    logger = logging.getLogger("sinks.duckdb_sink")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)  # short lock waits are DEBUG records
    logger.addHandler(handler)
    timings = {"connect": [0, 0.0], "write": [0, 0.0]}
    originals: dict[str, Callable[..., Any]] = {
        "connect": duckdb_sink.connect_rw,
        "write": duckdb_sink.write_frames,
    }

    def timed(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                timings[name][0] += 1
                timings[name][1] += time.perf_counter() - started

        return call

    duckdb_sink.connect_rw = timed("connect")  # type: ignore[assignment]
    duckdb_sink.write_frames = timed("write")  # type: ignore[assignment]
    try:
        flow = dataflow.build(settings)
        started = time.perf_counter()
        run_main(flow)
        wall = time.perf_counter() - started
    finally:
        duckdb_sink.connect_rw = originals["connect"]  # type: ignore[assignment]
        duckdb_sink.write_frames = originals["write"]  # type: ignore[assignment]
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return WriterRun(
        wall,
        handler.warnings,
        handler.waits,
        int(timings["connect"][0]),
        float(timings["connect"][1]),
        float(timings["write"][1]),
    )


@dataclass
class ContentionResult:
    """Everything one contention run measured.

    Attributes:
        ticks: Ticks in the recording.
        contended: The flow with the reader looping on its file.
        reader: What that reader saw.
        alone: The flow with no reader (None if not run).
        control: The flow with the same reader looping on *another* DuckDB file: the
            same CPU load without lock contention (None if not run).
        control_reader: What the control reader saw.
        bars_match_oracle: Final ``bars`` of the contended run equal the pandas oracle.
        oracle_message: Why not, if not.
    """

    ticks: int
    contended: WriterRun
    reader: ReaderStats
    alone: WriterRun | None = None
    control: WriterRun | None = None
    control_reader: ReaderStats | None = None
    bars_match_oracle: bool | None = None
    oracle_message: str = ""


def _with_reader(
    recording: Path, db: Path, read_db: Path, prefix: str, windows: str, pause_ms: float
) -> tuple[WriterRun, ReaderStats]:
    reader = Reader(read_db, pause_ms)
    try:
        run = run_writer(recording, db, prefix, windows)
    finally:
        stats = reader.stop()
    return run, stats


def run_contention(
    recording: Path, tmp: Path, *, windows: str = DEFAULT_WINDOWS, pause_ms: float = 0.0,
    check_oracle: bool = True, baselines: bool = True,
) -> ContentionResult:  # fmt: skip
    """The flow with a reader process looping on its file; final bars vs the oracle.

    With ``baselines`` the flow also runs alone and with the reader looping on another
    file (same CPU load, no lock), so the writer's delay can be split in two.
    """
    from pairflow.testing.oracle import compare_bars, read_table, resample_bars, trades_from_file

    prefix = new_prefix("lock")
    db = tmp / "contended.db"
    alone = control = control_reader = None
    try:
        if baselines:
            alone = run_writer(recording, tmp / "alone.db", prefix + "a:", windows)
            control, control_reader = _with_reader(
                recording, tmp / "control.db", tmp / "alone.db", prefix + "c:", windows, pause_ms
            )
        contended, stats = _with_reader(recording, db, db, prefix + "b:", windows, pause_ms)
    finally:
        delete_prefix(prefix)
    trades = trades_from_file(recording)
    result = ContentionResult(len(trades), contended, stats, alone, control, control_reader)
    if check_oracle:
        try:
            compare_bars(read_table(db, "bars", "symbol, tf, open_time"), resample_bars(trades))
            result.bars_match_oracle = True
        except AssertionError as exc:
            result.bars_match_oracle = False
            result.oracle_message = str(exc)[:500]
    return result


def report(r: ContentionResult) -> str:
    """Markdown tables of a contention run."""

    def waits(w: WriterRun) -> str:
        if not w.waited_s:
            return "0"
        return f"{len(w.waited_s)} (total {sum(w.waited_s):.2f} s, max {max(w.waited_s):.2f} s)"

    runs = [
        ("alone", r.alone),
        ("reader looping on another DuckDB file (CPU load only)", r.control),
        ("reader looping on the flow's file", r.contended),
    ]
    writer = md_table(
        [
            "writer (the flow)", "wall s", "ticks/s", "connects", "in connect_rw s",
            "in write_frames s", "connects that waited (sink log)",
        ],
        [
            [
                name, f"{w.wall_s:.2f}", f"{r.ticks / w.wall_s:,.0f}", str(w.flushes),
                f"{w.connect_s:.2f}", f"{w.write_s:.2f}", waits(w),
            ]
            for name, w in runs
            if w is not None
        ],
    )  # fmt: skip
    readers = [("reader on the flow's file", r.reader), ("control reader", r.control_reader)]
    cols = [(n, s) for n, s in readers if s is not None]
    rows = [
        ["attempts", *(f"{s.attempts:,}" for _, s in cols)],
        ["succeeded", *(f"{s.ok:,} ({100 * s.success_rate:.1f}%)" for _, s in cols)],
        ["refused: writer holds the lock", *(f"{s.locked:,}" for _, s in cols)],
        ["other errors", *(f"{s.other_errors} {s.samples or ''}" for _, s in cols)],
        ["count(*) went down", *(str(s.went_down) for _, s in cols)],
        [
            "connect+count+close p50 / p99 ms",
            *(f"{percentile(s.ok_ms, 50):.1f} / {percentile(s.ok_ms, 99):.1f}" for _, s in cols),
        ],
        ["bars seen at the last read", *(f"{s.last_count:,}" for _, s in cols)],
    ]
    reader = md_table(["reader process", *(n for n, _ in cols)], rows)
    lines = [writer, ""]
    if r.alone is not None and r.control is not None:
        total = r.contended.wall_s - r.alone.wall_s
        cpu = r.control.wall_s - r.alone.wall_s
        lock = r.contended.connect_s - r.alone.connect_s
        lines.append(
            f"writer delay vs alone: {total:+.2f} s ({100 * total / r.alone.wall_s:+.0f}%) with "
            f"the reader on the flow's file, {cpu:+.2f} s with it on another file (its CPU "
            f"load only; it is never refused there, so it loads the CPU more). Direct lock "
            f"cost: {lock:+.2f} s more in connect_rw, {sum(r.contended.waited_s):.2f} s of "
            "it in lock-retry sleeps.\n"
        )
    verdict = {
        True: "equal to the pandas oracle (no lost rows)",
        False: "DIFFERENT from the oracle",
    }
    verdict_text = "not checked" if r.bars_match_oracle is None else verdict[r.bars_match_oracle]
    lines += [reader, "", f"final bars: {verdict_text} "
              f"{r.oracle_message}"]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point (``python benchmarks/lock_contention.py``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=5, help="copies of the shipped recording")
    parser.add_argument("--windows", default=DEFAULT_WINDOWS)
    parser.add_argument("--reader-pause-ms", type=float, default=0.0)
    parser.add_argument("--reader-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader_only:
        stats = reader_loop(args.db, args.db.with_name(args.db.name + ".stop-reader"),
                            args.reader_pause_ms)  # fmt: skip
        print(json.dumps(stats.__dict__))
        return
    with tempfile.TemporaryDirectory(prefix="pairflow-lock-") as tmp_s:
        tmp = Path(tmp_s)
        recording = RECORDING
        if args.copies > 1:
            recording = tmp / "ticks.ndjson.gz"
            make_recording(recording, args.copies * 34_419)
        print(
            f"lock contention: {recording.name} x{args.copies}, reader pause "
            f"{args.reader_pause_ms} ms, {machine()}, commit {git_commit()}, "
            f"{time.strftime('%Y-%m-%d')}, pid {os.getpid()}\n"
        )
        print(report(run_contention(recording, tmp, windows=args.windows,
                                    pause_ms=args.reader_pause_ms)))  # fmt: skip


if __name__ == "__main__":
    main()
