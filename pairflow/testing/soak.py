"""Soak: loop replay at max speed for a while; memory and operator state must plateau.

    uv run python benchmarks/soak.py                      # 60 s, both parts below
    uv run python benchmarks/soak.py --seconds 3600       # the long run, by hand
    uv run python benchmarks/soak.py --part process       # only the `python dataflow.py` run

Two parts, each printing a table sampled every ``--every`` seconds:

1. **process**: ``python dataflow.py`` (short epochs, graceful SIGTERM) as a user runs
   it, with ``PAIRFLOW_REPLAY_LOOP=1`` and ``PAIRFLOW_REPLAY_SPEED=max`` over the
   shipped recording, Redis tee on (unique prefix, ``MAXLEN`` capped) and a DuckDB file;
   samples the flow process's RSS, the ticks teed so far (Redis stats hash) and the
   DuckDB file size. Prints start (first sample), end, peak and the growth after
   warm-up.
2. **state**: the same flow in this process (``run_main`` in a thread). Every
   ``op.stateful_batch`` step is wrapped in a probe that, from the flow's own thread,
   pickles each key's snapshot once a second: the sum per step is the operator state
   a recovery snapshot would hold. Also samples this process's RSS and the number of
   gc-tracked objects. Bounded state = flat columns after warm-up; a per-bar or
   per-tick leak shows as a column growing with the ticks.

``tests/test_soak.py`` runs part 2 for ~25 s and asserts the bounds. Never asserts here.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import bytewax.operators as op
import psutil
import redis
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import run_main

import dataflow
from operators import ingest as ingest_stage
from pairflow import shutdown
from pairflow.config import load_settings
from pairflow.testing.bench import (
    DEFAULT_WINDOWS,
    RECORDING,
    REDIS_URL,
    delete_prefix,
    flow_env,
    flow_process,
    md_table,
    new_prefix,
    replay_settings,
    run_stamp,
    settings_env,
)

MB = 2**20


@dataclass
class Sample:
    """One observation of a soaking flow.

    Attributes:
        t_s: Seconds since the flow started.
        rss_mb: Resident set size of the process running the flow.
        ticks: Ticks processed so far.
        db_mb: Size of the DuckDB file.
        state_bytes: Per stateful step, pickled size of all its keys' state.
        gc_objects: gc-tracked objects in the process (in-process part only).
    """

    t_s: float
    rss_mb: float
    ticks: int
    db_mb: float
    state_bytes: dict[str, int] = field(default_factory=dict)
    gc_objects: int | None = None


def soak_settings(db: Path, prefix: str, windows: str, maxlen: int) -> dict[str, str]:
    """Settings (names without ``PAIRFLOW_``) of a max-speed loop replay."""
    return replay_settings(
        RECORDING, db, prefix, windows, replay_loop="1", redis_maxlen=str(maxlen)
    )


def _db_mb(db: Path) -> float:
    size = 0
    for p in (db, db.with_name(db.name + ".wal")):
        try:
            size += p.stat().st_size
        except OSError:
            pass
    return size / MB


def _teed(client: redis.Redis, prefix: str) -> int:
    try:
        return int(client.hget(f"{prefix}pairflow:stats:tee", "written_total") or 0)
    except redis.RedisError:
        return -1


# -- part 1: the real command as a subprocess --------------------------------------------
def run_process_soak(
    seconds: float, every: float, windows: str, maxlen: int, tmp: Path
) -> list[Sample]:
    """``python dataflow.py`` in loop mode for ``seconds``; RSS etc. every ``every`` s."""
    prefix = new_prefix("soak")
    db = tmp / "soak-process.db"
    env = flow_env(**soak_settings(db, prefix, windows, maxlen))
    samples: list[Sample] = []
    with (
        (tmp / "soak-process.log").open("w") as log,
        flow_process(env, log, prefix, stop_timeout_s=120) as proc,
    ):
        client = redis.Redis.from_url(REDIS_URL)
        ps = psutil.Process(proc.pid)
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < seconds and proc.poll() is None:
                time.sleep(min(every, max(0.0, seconds - elapsed)))
                rss = ps.memory_info().rss / MB
                t = time.monotonic() - started
                samples.append(Sample(t, rss, _teed(client, prefix), _db_mb(db)))
                print(f"  process t={t:6.1f}s rss={rss:7.1f} MB", file=sys.stderr)
        finally:
            client.close()
    if proc.returncode not in (0, None):
        print((tmp / "soak-process.log").read_text()[-3000:], file=sys.stderr)
    return samples


# -- part 2: in-process, with operator state probes ---------------------------------------
class StateProbe(StatefulBatchLogic[Any, Any, Any]):
    """Wraps a stateful step's logic; measures its pickled snapshot from the flow thread.

    Args:
        inner: The real logic.
        sizes: Shared ``{(step_id, probe id): bytes}`` the probe writes into.
        step_id: Name of the step.
        every_s: Measure at most this often (pickling costs time).
    """

    def __init__(
        self, inner: StatefulBatchLogic, sizes: dict[tuple[str, int], int], step_id: str,
        every_s: float,
    ) -> None:  # fmt: skip
        self.inner = inner
        self.sizes = sizes
        self.step_id = step_id
        self.every_s = every_s
        self.last = 0.0

    def _measure(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.sizes[(self.step_id, id(self))] = len(pickle.dumps(self.inner.snapshot()))

    def on_batch(self, values: list[Any]) -> tuple[Any, bool]:
        """Delegate, then maybe measure."""
        out = self.inner.on_batch(values)
        self._measure()
        return out

    def on_notify(self) -> tuple[Any, bool]:
        """Delegate, then maybe measure."""
        out = self.inner.on_notify()
        self._measure()
        return out

    def on_eof(self) -> tuple[Any, bool]:
        """Delegate."""
        return self.inner.on_eof()

    def notify_at(self) -> Any:
        """Delegate."""
        return self.inner.notify_at()

    def snapshot(self) -> Any:
        """Delegate."""
        return self.inner.snapshot()


@contextmanager
def probed_stateful_steps(every_s: float = 1.0) -> Iterator[dict[tuple[str, int], int]]:
    """While active, flows built get a :class:`StateProbe` around every stateful step.

    Yields:
        The shared sizes dict, ``{(step_id, probe id): pickled state bytes}``.
    """
    sizes: dict[tuple[str, int], int] = {}
    original = op.stateful_batch

    def wrapped(step_id: str, up: Any, builder: Callable[[Any], Any]) -> Any:
        return original(
            step_id, up, lambda resume: StateProbe(builder(resume), sizes, step_id, every_s)
        )

    op.stateful_batch = wrapped  # type: ignore[assignment]
    try:
        yield sizes
    finally:
        op.stateful_batch = original  # type: ignore[assignment]


class _CountingIngest(ingest_stage.Ingest):
    """The ingest stage, remembered so the soak can read its tick counter."""

    instances: ClassVar[list[ingest_stage.Ingest]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _CountingIngest.instances.append(self)


def run_in_process_soak(
    seconds: float,
    every: float,
    windows: str,
    tmp: Path,
    prefix: str,
    maxlen: int = 200_000,
    on_sample: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """The flow in a thread of this process for ``seconds``; samples every ``every`` s.

    Stops the flow gracefully (``pairflow.shutdown.request_stop``) and waits for it.

    Raises:
        RuntimeError: if the flow failed or did not stop.
    """
    db = tmp / "soak-inproc.db"
    settings = load_settings(settings_env(**soak_settings(db, prefix, windows, maxlen)))
    original_ingest = ingest_stage.Ingest
    _CountingIngest.instances = []
    ingest_stage.Ingest = _CountingIngest  # type: ignore[misc]
    try:
        with probed_stateful_steps() as sizes:
            flow = dataflow.build(settings)
    finally:
        ingest_stage.Ingest = original_ingest  # type: ignore[misc]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_main(flow)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    shutdown.STOP.clear()
    me = psutil.Process(os.getpid())
    thread = threading.Thread(target=run, name="soak-flow", daemon=True)
    samples: list[Sample] = []
    started = time.monotonic()
    thread.start()
    try:
        while (elapsed := time.monotonic() - started) < seconds and thread.is_alive():
            time.sleep(min(every, max(0.0, seconds - elapsed)))
            per_step: dict[str, int] = {}
            for (step, _), size in list(sizes.items()):
                per_step[step] = per_step.get(step, 0) + size
            ticks = sum(p.ticks_total for p in _CountingIngest.instances)
            sample = Sample(
                time.monotonic() - started,
                me.memory_info().rss / MB,
                ticks,
                _db_mb(db),
                per_step,
                len(gc.get_objects()),
            )
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
    finally:
        shutdown.request_stop()
        thread.join(120)
        shutdown.STOP.clear()
    if errors:
        msg = f"the soaked flow failed: {errors[0]!r}"
        raise RuntimeError(msg) from errors[0]
    if thread.is_alive():
        msg = "the soaked flow did not stop within 120 s of request_stop()"
        raise RuntimeError(msg)
    return samples


# -- reporting -------------------------------------------------------------------------
@dataclass
class Summary:
    """Start/end/peak of a metric and its growth after warm-up.

    Attributes:
        start: First sample.
        end: Last sample.
        peak: Largest sample.
        warm: Median of the first three samples at or after warm-up.
        growth: Median of the last three samples minus ``warm``.
    """

    start: float
    end: float
    peak: float
    warm: float
    growth: float


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2]


def summarize(samples: list[Sample], metric: Callable[[Sample], float], warmup_s: float) -> Summary:
    """Summary of ``metric`` over ``samples`` (warm-up = samples before ``warmup_s``)."""
    values = [metric(s) for s in samples]
    after = [metric(s) for s in samples if s.t_s >= warmup_s] or values
    warm = _median(after[:3])
    return Summary(values[0], values[-1], max(values), warm, _median(after[-3:]) - warm)


def _state_kb(step: str, sample: Sample) -> float:
    """A step's pickled state in KB (0 if not probed in that sample)."""
    return sample.state_bytes.get(step, 0) / 1024


def sample_table(samples: list[Sample]) -> str:
    """The curve as a Markdown table."""
    steps = sorted({k for s in samples for k in s.state_bytes})
    heads = ["t s", "RSS MB", "ticks", "ticks/s", "DuckDB MB"]
    heads += [f"state {k} KB" for k in steps]
    if any(s.gc_objects is not None for s in samples):
        heads.append("gc objects")
    rows = []
    prev_t, prev_n = 0.0, 0
    for s in samples:
        rate = (s.ticks - prev_n) / (s.t_s - prev_t) if s.t_s > prev_t else 0.0
        prev_t, prev_n = s.t_s, s.ticks
        row = [f"{s.t_s:.0f}", f"{s.rss_mb:.1f}", f"{s.ticks:,}", f"{rate:,.0f}", f"{s.db_mb:.1f}"]
        row += [f"{s.state_bytes.get(k, 0) / 1024:.1f}" for k in steps]
        if s.gc_objects is not None:
            row.append(f"{s.gc_objects:,}")
        rows.append(row)
    return md_table(heads, rows)


def summary_table(samples: list[Sample], warmup_s: float) -> str:
    """Start/end/peak/growth of RSS (and state, gc objects when sampled)."""
    metrics: list[tuple[str, Callable[[Sample], float], str]] = [
        ("RSS MB", lambda s: s.rss_mb, "{:.1f}")
    ]
    for step in sorted({k for s in samples for k in s.state_bytes}):
        metrics.append((f"state {step} KB", partial(_state_kb, step), "{:.1f}"))
    if samples and samples[0].gc_objects is not None:
        metrics.append(("gc objects", lambda s: float(s.gc_objects or 0), "{:,.0f}"))
    rows = []
    for name, fn, fmt in metrics:
        sm = summarize(samples, fn, warmup_s)
        rows.append(
            [name] + [fmt.format(v) for v in (sm.start, sm.end, sm.peak, sm.warm, sm.growth)]
        )
    return md_table(["metric", "start", "end", "peak", "after warm-up", "growth since"], rows)


def main() -> None:
    """Command-line entry point (``python benchmarks/soak.py``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="sampling interval, s")
    parser.add_argument("--warmup", type=float, default=None, help="default: 20%% of --seconds")
    parser.add_argument("--windows", default=DEFAULT_WINDOWS)
    parser.add_argument("--maxlen", type=int, default=200_000, help="Redis MAXLEN per stream")
    parser.add_argument("--part", choices=["both", "process", "state"], default="both")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else 0.2 * args.seconds
    print(
        f"soak {args.seconds:.0f} s, loop replay at max speed, windows {args.windows}, "
        f"{run_stamp()}\n"
    )
    with tempfile.TemporaryDirectory(prefix="pairflow-soak-") as tmp_s:
        tmp = Path(tmp_s)
        if args.part in ("both", "process"):
            samples = run_process_soak(args.seconds, args.every, args.windows, args.maxlen, tmp)
            print("### `python dataflow.py` (subprocess)\n")
            print(sample_table(samples) + "\n")
            print(summary_table(samples, warmup) + "\n")
        if args.part in ("both", "state"):
            prefix = new_prefix("soak")
            try:
                samples = run_in_process_soak(
                    args.seconds, args.every, args.windows, tmp, prefix, args.maxlen
                )
            finally:
                delete_prefix(prefix)
            print("### in-process, with operator state probes\n")
            print(sample_table(samples) + "\n")
            print(summary_table(samples, warmup))


if __name__ == "__main__":
    main()
