"""Shared helpers of the benchmarks: big recordings, Redis cleanup, tables, processes.

Benchmarks print Markdown tables and never assert timings. Everything they touch is
local: the real Redis on 127.0.0.1 (under a unique key prefix that is deleted
afterwards) and temporary DuckDB files.
"""

from __future__ import annotations

import gzip
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import redis

from pairflow.config import COMMON_DEFAULTS
from pairflow.testing import RECORDING, REDIS_URL, ROOT

DEFAULT_WINDOWS = COMMON_DEFAULTS["WINDOWS"]
"""The flow's default analytics windows (``1s=300,1m=120,5m=60``)."""

PASS_PAUSE_MS = 1_000
"""Trade-time pause between two copies of the recording in a repeated file."""


def read_lines(path: Path) -> list[bytes]:
    """Non-blank lines of an NDJSON(.gz) file, without line ends."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        return [s for s in (line.rstrip(b"\r\n") for line in fh) if s]


def count_lines(path: Path) -> int:
    """Number of non-blank lines of an NDJSON(.gz) file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        return sum(1 for line in fh if line.strip())


def make_recording(dest: Path, min_ticks: int, source: Path = RECORDING) -> int:
    """Write ``source`` repeated to at least ``min_ticks`` lines; returns the line count.

    Copy ``n`` has every ``T``/``E`` moved by ``n * (span + 1 s)`` and every trade id
    by ``n * id span`` of its symbol (``sources.replay.write_repeated``), so times and
    ids keep increasing: what a longer recording of the same market would look like.
    Whole copies only; ``.gz`` names are gzipped.
    """
    from sources.replay import write_repeated

    passes = max(1, -(-min_ticks // count_lines(source)))
    return write_repeated(source, dest, passes)


def git_commit() -> str:
    """Short commit of the working tree (``+dirty`` when it has local changes)."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return run.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_stamp() -> str:
    """``<machine>, commit <hash>, <date time>``: where and when a report was measured."""
    return f"{machine()}, commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M')}"


def new_prefix(kind: str = "bench") -> str:
    """A unique Redis key prefix for one run."""
    return f"{kind}:{uuid.uuid4().hex[:10]}:"


def delete_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every Redis key under ``prefix``; returns how many."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def flow_env(**settings: str) -> dict[str, str]:
    """A process environment without the caller's ``PAIRFLOW_*`` plus these settings.

    Keys are setting names without the prefix (``db``, ``replay_speed``...).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env.update({f"PAIRFLOW_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def replay_settings(
    recording: Path, db: Path, prefix: str, windows: str, **extra: str
) -> dict[str, str]:
    """Settings (names without ``PAIRFLOW_``) of a max-speed replay of ``recording``.

    Into the DuckDB file ``db``, with the Redis tee on the real Redis under ``prefix``
    and analytics at ``windows``; ``extra`` adds or overrides settings
    (``replay_speed="1"``, ``replay_loop="1"``...).
    """
    return {
        "source": f"replay:{recording}",
        "replay_speed": "max",
        "db": str(db),
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "windows": windows,
        **extra,
    }


def settings_env(**settings: str) -> dict[str, str]:
    """Only the ``PAIRFLOW_*`` settings, for ``load_settings(env)`` in-process."""
    return {f"PAIRFLOW_{k.upper()}": v for k, v in settings.items()}


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    """Wall seconds from ``Popen`` to exit of ``cmd`` (fails loudly on a non-zero exit)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = f"{cmd} exited {proc.returncode}: {proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return dt


@contextmanager
def flow_process(
    env: dict[str, str], log: IO[str], prefix: str, stop_timeout_s: float
) -> Iterator[subprocess.Popen[bytes]]:
    """``python dataflow.py`` as a user runs it, with ``env``, output to ``log``.

    On leaving: SIGTERM (the flow's graceful stop), a kill if it has not exited within
    ``stop_timeout_s``, and the run's Redis keys under ``prefix`` deleted.
    """
    proc = subprocess.Popen(  # noqa: S603 - fixed command line
        [sys.executable, str(ROOT / "dataflow.py")], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        delete_prefix(prefix)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned (first column left)."""
    head = "| " + " | ".join(headers) + " |"
    sep = "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


def machine() -> str:
    """One line about this machine (CPU count, model, Python, load average now).

    The load average matters: other processes on a 2-core machine move every number.
    """
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}, load avg {load}"
