"""Replay a recording of Binance combined-stream frames (NDJSON, optionally gzipped).

The file holds one envelope per line in arrival order (the format of
``../shared/data``). Modes:

* ``speed=None`` (``max``): as fast as possible; the partition ends at end of file,
  which ends the flow and closes every window.
* ``speed=k``: paced so that trade time advances ``k`` times faster than wall time.
* ``loop=True``: replay forever. Pass ``n`` shifts every trade time by
  ``n * (span + 1 s)`` and every trade id by ``n * (id span + 1)`` per symbol, so
  times and ids keep increasing. With a ``speed`` the first pass is shifted so that
  it *ends* now: it is replayed at once as recent history (analytics windows are
  warm immediately), and the following passes arrive live, paced (the demo).

The file is Binance's combined-stream format, so lines are decoded by
:mod:`sources.binance.wire` into ``Tick`` records (or ``Reject`` records with the raw
line and a reason) before they leave the source; when pacing, unparseable lines are
emitted right away. Resumable: the snapshot is the position in the
current pass, the pass number and the time shift. A paced loop that resumes after
downtime moves its shift forward so the next trade happens "now": the downtime shows
as a gap in the data, as it would for a live feed (times only ever move forward).
"""

from __future__ import annotations

import gzip
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pairflow.errors import ConfigError
from pairflow.shutdown import stop_requested
from pairflow.timeutil import ms_to_dt, now_ms
from sources.binance.wire import decode_frames

log = logging.getLogger(__name__)

LOOP_PAUSE_MS = 1_000
"""Trade-time pause inserted between two passes of a looped replay."""

MIN_WAKE_MS = 50
"""Paced modes wake at most this often and emit everything due by then (saves CPU)."""


@dataclass(frozen=True)
class ReplayState:
    """Where a replay stands (the partition's recovery snapshot).

    Attributes:
        lines_done: Lines of the current pass already emitted.
        loop: Current pass number (0 for the first).
        base_shift_ms: Shift added to every time in every pass (aligns to "now").
    """

    lines_done: int = 0
    loop: int = 0
    base_shift_ms: int = 0


@dataclass(frozen=True)
class RecordingInfo:
    """What one pass over a recording covers (for shifting looped passes).

    Attributes:
        first_time_ms: Smallest trade time ``T``.
        span_ms: Largest minus smallest trade time.
        id_span: Per symbol, largest minus smallest trade id, plus one.
    """

    first_time_ms: int
    span_ms: int
    id_span: dict[str, int]


def open_lines(path: Path) -> Iterator[bytes]:
    """Lines of a recording without their line ends, skipping blank lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        for line in fh:
            stripped = line.rstrip(b"\r\n")
            if stripped:
                yield stripped


def scan_recording(path: Path) -> RecordingInfo:
    """Read the recording once to find its time span and per-symbol id spans."""
    t_min = t_max = None
    ids: dict[str, list[int]] = {}
    for line in open_lines(path):
        try:
            data = orjson.loads(line)["data"]
            t_ms, sym, tid = int(data["T"]), str(data["s"]), int(data["t"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        t_min = t_ms if t_min is None else min(t_min, t_ms)
        t_max = t_ms if t_max is None else max(t_max, t_ms)
        lo_hi = ids.setdefault(sym, [tid, tid])
        lo_hi[0] = min(lo_hi[0], tid)
        lo_hi[1] = max(lo_hi[1], tid)
    if t_min is None or t_max is None:
        msg = f"{path}: no trade frames in this file; is it a Binance trade recording?"
        raise ValueError(msg)
    return RecordingInfo(t_min, t_max - t_min, {s: hi - lo + 1 for s, (lo, hi) in ids.items()})


def shift_frame(
    line: bytes, time_shift_ms: int, id_shifts: dict[str, int]
) -> tuple[bytes, int | None]:
    """Shift a frame's ``T``/``E`` and trade id; returns ``(frame, shifted T or None)``.

    A line that is not a well-formed trade frame is returned unchanged with ``None``.
    """
    try:
        msg = orjson.loads(line)
        data = msg["data"]
        t_ms = data["T"] + time_shift_ms
        if not (time_shift_ms or id_shifts):
            return line, t_ms
        data["T"] = t_ms
        data["E"] = data["E"] + time_shift_ms
        data["t"] = data["t"] + id_shifts.get(data["s"], 0)
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return line, None
    return orjson.dumps(msg), t_ms


class ReplayPartition(StatefulSourcePartition[bytes, ReplayState]):
    """The single partition of a replay (a recording is one ordered sequence)."""

    def __init__(
        self,
        path: Path,
        speed: float | None,
        loop: bool,
        batch_size: int,
        resume: ReplayState | None,
        symbols: frozenset[str] | None = None,
    ) -> None:
        self.symbols = symbols
        self.path = path
        self.speed = speed
        self.loop = loop
        self.batch_size = batch_size
        self.info = scan_recording(path) if (loop or speed is not None) else None
        state = resume or ReplayState()
        self.anchor: tuple[int, int] | None = None  # (trade time, wall time) pacing anchor
        if resume is None and loop and speed is not None and self.info is not None:
            # The first pass ends "now": it is history, replayed at once (so windows
            # are warm from the start); later passes are paced from now on.
            start = now_ms()
            state = ReplayState(0, 0, start - self.info.first_time_ms - self.info.span_ms)
            self.anchor = (start, start)
        self.state = state
        if resume is not None:
            log.info(
                "replay of %s resumes at line %d of pass %d",
                path.name,
                state.lines_done,
                state.loop,
            )
        self.lines = self._open_pass(state.lines_done)
        self.pending: tuple[bytes, int | None] | None = None
        self.awake_at_ms: int | None = None
        self.rebase = resume is not None and loop and speed is not None

    def _open_pass(self, skip: int) -> Iterator[bytes]:
        return itertools.islice(open_lines(self.path), skip, None)

    def _shifts(self) -> tuple[int, dict[str, int]]:
        st = self.state
        if not self.loop or self.info is None:
            return st.base_shift_ms, {}
        shift = st.base_shift_ms + st.loop * (self.info.span_ms + LOOP_PAUSE_MS)
        return shift, {s: st.loop * span for s, span in self.info.id_span.items()}

    def _next_line(self) -> bytes | None:
        line = next(self.lines, None)
        if line is None and self.loop:
            st = self.state
            self.state = ReplayState(0, st.loop + 1, st.base_shift_ms)
            self.lines = self._open_pass(0)
            line = next(self.lines, None)
        return line

    def next_batch(self) -> list[Any]:
        """The due frames as records (``Tick``/``Reject``); StopIteration at the end.

        Built without ``symbols`` (tests of the pacing), the raw frames are returned.
        """
        frames = self._next_frames()
        if self.symbols is None:
            return frames
        return decode_frames(frames, self.symbols, "replay", now_ms())

    def _next_frames(self) -> list[bytes]:
        """Up to ``batch_size`` frames that are due; raises StopIteration at the end."""
        if stop_requested():
            raise StopIteration
        if self.speed is None and not self.loop:
            batch = list(itertools.islice(self.lines, self.batch_size))
            if not batch:
                raise StopIteration
            self.state = ReplayState(self.state.lines_done + len(batch), 0, 0)
            return batch
        out: list[bytes] = []
        now = now_ms()
        time_shift, id_shifts = self._shifts()
        while len(out) < self.batch_size:
            if self.pending is None:
                line = self._next_line()
                if line is None:
                    if out:
                        return out
                    raise StopIteration
                if self.state.lines_done == 0:
                    time_shift, id_shifts = self._shifts()
                self.pending = shift_frame(line, time_shift, id_shifts)
                if self.rebase and self.pending[1] is not None:
                    self.rebase = False
                    behind = now - self.pending[1]
                    if behind > 0:
                        st = self.state
                        self.state = ReplayState(st.lines_done, st.loop, st.base_shift_ms + behind)
                        time_shift, id_shifts = self._shifts()
                        self.pending = shift_frame(line, time_shift, id_shifts)
                self.state = ReplayState(
                    self.state.lines_done + 1, self.state.loop, self.state.base_shift_ms
                )
            frame, t_ms = self.pending
            if self.speed is not None and t_ms is not None:
                if self.anchor is None:
                    self.anchor = (t_ms, now)
                due = self.anchor[1] + int((t_ms - self.anchor[0]) / self.speed)
                if due > now:
                    self.awake_at_ms = max(due, now + MIN_WAKE_MS)
                    return out
            out.append(frame)
            self.pending = None
        self.awake_at_ms = None
        return out

    def next_awake(self) -> datetime | None:
        """When the next frame is due (paced modes), so an idle replay sleeps."""
        return None if self.awake_at_ms is None else ms_to_dt(self.awake_at_ms)

    def snapshot(self) -> ReplayState:
        """Position to resume from (a pending, not yet emitted frame is re-read)."""
        st = self.state
        done = st.lines_done - (1 if self.pending is not None else 0)
        return ReplayState(done, st.loop, st.base_shift_ms)


class ReplaySource(FixedPartitionedSource[bytes, ReplayState]):
    """Replays a recording file (see module docstring for the modes).

    Args:
        path: NDJSON or NDJSON.gz recording.
        speed: ``None`` = as fast as possible, else real-time factor.
        loop: Replay forever with shifted times and ids.
        batch_size: Most frames per ``next_batch``.
    """

    def __init__(
        self,
        path: Path | str | Sequence[Path],
        speed: float | None = None,
        loop: bool = False,
        batch_size: int = 4096,
        *,
        symbols: frozenset[str] | None = None,
    ) -> None:
        if not isinstance(path, (str, Path)):
            paths = list(path)
            if len(paths) != 1:
                msg = "replay of several files at once is not supported yet; give one file"
                raise ConfigError(msg)
            path = paths[0]
        self.symbols = symbols
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        """One partition: the file is one ordered sequence."""
        return [f"replay:{self.path.name}"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: ReplayState | None
    ) -> ReplayPartition:
        """Open the file, resuming at the snapshot position if any."""
        return ReplayPartition(
            self.path, self.speed, self.loop, self.batch_size, resume_state, self.symbols
        )


def write_repeated(src: Path, dst: Path, passes: int) -> int:
    """Write ``passes`` back-to-back copies of a recording, shifted like a looped replay.

    Times and trade ids keep increasing across copies (see the module docstring), so
    the result is a longer valid recording (for benchmarks, soak and recovery tests).

    Returns:
        Number of lines written.
    """
    info = scan_recording(src)
    opener = gzip.open if dst.suffix == ".gz" else open
    written = 0
    with opener(dst, "wb") as out:  # type: ignore[operator]
        for n in range(passes):
            shift = n * (info.span_ms + LOOP_PAUSE_MS)
            id_shifts = {s: n * span for s, span in info.id_span.items()} if n else {}
            for line in open_lines(src):
                frame, _ = shift_frame(line, shift, id_shifts)
                out.write(frame + b"\n")
                written += 1
    return written
