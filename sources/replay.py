"""Replay history: NDJSON recordings of Binance frames and Binance public-data dumps.

``PAIRFLOW_SOURCE=replay:PATHS`` (comma-separated paths or globs). Per file, by name
and content: ``.ndjson``/``.ndjson.gz`` recordings of combined-stream frames (one
envelope per line in arrival order, the format of ``../shared/data``), or Binance
public-data dumps (trades, aggTrades, 1s/1m/5m klines; ``.csv`` or ``.zip``; see
:mod:`sources.history.dumps`). A file that is neither fails at start-up with a
:class:`ConfigError` naming it and the accepted formats.

Modes:

* ``speed=None`` (``max``): as fast as possible; the partition ends at end of input,
  which ends the flow and closes every window.
* ``speed=k``: paced so that trade time advances ``k`` times faster than wall time.
  The partition then also emits :class:`SourceClock` records with the replay time
  ``anchor trade time + (wall - anchor wall) * k`` (once per batch and on every idle
  wake, at least every :data:`MAX_IDLE_MS`), so bars close on replay time at any
  speed; never one that is later than a record still to come.
* ``loop=True`` (one NDJSON recording only): replay forever. Pass ``n`` shifts every
  trade time by ``n * (span + 1 s)`` and every trade id by ``n * (id span + 1)`` per
  symbol, so times and ids keep increasing. With a ``speed`` the first pass is shifted
  so that it *ends* now: it is replayed at once as recent history (analytics windows
  are warm immediately), and the following passes arrive live, paced (the demo).

One NDJSON file is replayed in file order (:class:`ReplayPartition`), its lines
decoded by :mod:`sources.binance.wire` into ``Tick`` records (or ``Reject`` records
with the raw line and a reason); when pacing, unparseable lines are emitted right
away. Dumps, and several files, go through :class:`MergedPartition`: each file is
read in its own order and the files are merged by ``(time, symbol, trade id)``
(a heap over one pending row per file), so ticks of a symbol stay in id order.

Resumable: the snapshot is the position in the current pass (per file when merging),
the pass number and the time shift. A paced loop that resumes after downtime moves
its shift forward so the next trade happens "now": the downtime shows as a gap in the
data, as it would for a live feed (times only ever move forward).

A long replay reports its progress (:mod:`sources.history.progress`): a bar on a
terminal, a log line every few seconds otherwise.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pairflow.errors import ConfigError
from pairflow.records import Reject, SourceClock
from pairflow.shutdown import stop_requested
from pairflow.timeutil import ms_to_dt, now_ms
from sources.binance.wire import decode_frames, parse_frame, raw_text
from sources.history.dumps import FORMATS, DumpSpec, Entry, dump_entries, inspect_file
from sources.history.progress import DEFAULT_EVERY_S, Progress

log = logging.getLogger(__name__)

LOOP_PAUSE_MS = 1_000
"""Trade-time pause inserted between two passes of a looped replay."""

MIN_WAKE_MS = 50
"""Paced modes wake at most this often and emit everything due by then (saves CPU)."""

MAX_IDLE_MS = 250
"""A paced replay wakes at least this often to report its clock (bars close on time
through a quiet stretch of the file)."""

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class ReplayState:
    """Where a replay stands (the partition's recovery snapshot).

    Attributes:
        lines_done: Lines of the current pass already emitted.
        loop: Current pass number (0 for the first).
        base_shift_ms: Shift added to every time in every pass (aligns to "now").
        per_file: Rows done per file when merging dumps or several files (then
            ``lines_done`` is their sum); empty for one NDJSON recording.
    """

    lines_done: int = 0
    loop: int = 0
    base_shift_ms: int = 0
    per_file: tuple[int, ...] = ()


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


def estimate_lines(path: Path) -> int:
    """Rows of an NDJSON(.gz) file, estimated from its size and its first lines' length.

    The uncompressed size of a ``.gz`` is its trailer's ISIZE (exact below 4 GiB).
    """
    size = path.stat().st_size
    if path.suffix == ".gz":
        with open(path, "rb") as fh:
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
        size = struct.unpack("<I", tail)[0] if len(tail) == 4 else size
    sample = list(itertools.islice(open_lines(path), 64))
    if not sample:
        return 0
    return int(size / (sum(len(x) + 1 for x in sample) / len(sample)))


def check_ndjson(path: Path) -> None:
    """Refuse, at start-up, a file that cannot be an NDJSON recording.

    Only the container is checked (the name, gzip magic): a recording with bad lines is
    valid input whose lines become rejects.

    Raises:
        ConfigError: naming the file and the accepted formats.
    """
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                msg = f"replay file {path}: named .gz but not gzip-compressed; {FORMATS}"
                raise ConfigError(msg)


def _ndjson_feed(path: Path, index: int, symbols: frozenset[str], skip: int) -> Iterator[Entry]:
    """:func:`ndjson_entries` with ``skip`` last (a merge feed: ``rows to skip -> entries``)."""
    return ndjson_entries(path, index, skip, symbols)


def ndjson_entries(path: Path, index: int, skip: int, symbols: frozenset[str]) -> Iterator[Entry]:
    """An NDJSON recording's lines as merge entries (``Tick`` or ``Reject``), from ``skip``."""
    pos = skip
    last_t, last_s, last_id = 0, "", -1
    for line in itertools.islice(open_lines(path), skip, None):
        pos += 1
        out = parse_frame(line, symbols)
        if type(out) is str:
            rej = Reject(now_ms(), "replay", out, raw_text(line))
            yield (last_t, last_s, last_id, index, pos, rej)
        else:
            last_t, last_s, last_id = out.trade_time_ms, out.symbol, out.trade_id  # type: ignore[union-attr]
            yield (last_t, last_s, last_id, index, pos, out)  # type: ignore[misc]


def _replay_clock(
    anchor: tuple[int, int] | None, speed: float, now: int, bound: int | None, last: int
) -> int | None:
    """Replay time ``anchor_t + (now - anchor_wall) * speed``, at most ``bound``, never back."""
    if anchor is None:
        return None
    clock = anchor[0] + int((now - anchor[1]) * speed)
    if bound is not None:
        clock = min(clock, bound)
    return max(clock, last)


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
        progress_every_s: float | None = None,
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
        self.last_t: int | None = None  # shifted trade time of the last emitted frame
        self.last_clock = -(1 << 62)
        self.batch_now = 0
        every = None if loop else progress_every_s
        est = estimate_lines(path) if every is not None else 0
        self.progress = Progress(1, max(est - state.lines_done, 0), every)

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

        Paced, the batch ends with a :class:`SourceClock` (the replay time, never past
        a frame still to come). Built without ``symbols`` (tests of the pacing), the
        raw frames are returned (and the clock).
        """
        try:
            frames = self._next_frames()
        except StopIteration:
            self.progress.update(0, 1)
            self.progress.close()
            raise
        self.progress.update(len(frames), 0)
        out: list[Any] = (
            frames
            if self.symbols is None
            else decode_frames(frames, self.symbols, "replay", now_ms())
        )
        if self.speed is not None:
            if self.pending is not None:
                bound = self.pending[1]  # not due yet: the clock stays before it
            elif len(frames) >= self.batch_size:
                bound = self.last_t  # cut by the batch size: the next may be due
            else:
                bound = None
            clock = _replay_clock(self.anchor, self.speed, self.batch_now, bound, self.last_clock)
            if clock is not None:
                self.last_clock = clock
                out.append(SourceClock(clock))
        return out

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
        now = self.batch_now = now_ms()
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
                    self.awake_at_ms = min(max(due, now + MIN_WAKE_MS), now + MAX_IDLE_MS)
                    return out
            if t_ms is not None:
                self.last_t = t_ms
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


class MergedPartition(StatefulSourcePartition[Any, ReplayState]):
    """Dumps and/or several files replayed as one sequence, merged in time order.

    Every file yields :data:`~sources.history.dumps.Entry` tuples in its own order;
    a heap holding the next entry of each file emits them by ``(time, symbol, id)``
    (one file: no heap at max speed). Kline bars are keyed by their close time (a
    kline is known once its interval has ended).

    Args:
        feeds: Per file, ``rows to skip -> entries`` (see :func:`file_feeds`).
        speed: ``None`` = as fast as possible, else real-time factor.
        batch_size: Most records per ``next_batch``.
        resume: Snapshot to resume from (rows done per file).
        est_rows: Estimated rows in all files (progress).
        progress_every_s: Progress reporting period; ``None`` = off.
    """

    def __init__(
        self,
        feeds: Sequence[Callable[[int], Iterator[Entry]]],
        speed: float | None,
        batch_size: int,
        resume: ReplayState | None,
        est_rows: int = 0,
        progress_every_s: float | None = None,
    ) -> None:
        n = len(feeds)
        done = resume.per_file if resume is not None and resume.per_file else (0,) * n
        if len(done) != n:
            msg = (
                f"the recovery snapshot is of a replay of {len(done)} files, this one has "
                f"{n}: replay the same files or start without the snapshot"
            )
            raise ConfigError(msg)
        if resume is not None:
            log.info("replay of %d file(s) resumes at rows %s", n, list(done))
        self.positions = list(done)
        self.iters = [feed(skip) for feed, skip in zip(feeds, done, strict=True)]
        self.speed = speed
        self.batch_size = batch_size
        self.single = n == 1 and speed is None
        self.heap: list[Entry] = []
        if not self.single:
            for it in self.iters:
                first = next(it, None)
                if first is not None:
                    self.heap.append(first)
            heapq.heapify(self.heap)
        self.files_done = 0 if self.single else n - len(self.heap)
        self.anchor: tuple[int, int] | None = None  # (replay time, wall time)
        self.awake_at_ms: int | None = None
        self.last_clock = -(1 << 62)
        self.progress = Progress(n, max(est_rows - sum(done), 0), progress_every_s)

    def _end(self) -> None:
        self.progress.update(0, len(self.iters))
        self.progress.close()
        raise StopIteration

    def next_batch(self) -> list[Any]:
        """Up to ``batch_size`` records that are due, in merged order (then a clock).

        Raises:
            StopIteration: at the end of every file (or on a stop request).
        """
        if stop_requested():
            raise StopIteration
        if self.single:
            chunk = list(itertools.islice(self.iters[0], self.batch_size))
            if not chunk:
                self._end()
            self.positions[0] = chunk[-1][4]
            self.progress.update(len(chunk), 0)
            return [e[5] for e in chunk]
        heap = self.heap
        if not heap:
            self._end()
        out: list[Any] = []
        append = out.append
        iters, positions = self.iters, self.positions
        speed = self.speed
        now = now_ms()
        limit = 1 << 62
        if speed is not None:
            if self.anchor is None:
                self.anchor = (heap[0][0], now)
            limit = self.anchor[0] + int((now - self.anchor[1]) * speed)
        n = self.batch_size
        while heap and len(out) < n:
            entry = heap[0]
            if entry[0] > limit:
                break
            append(entry[5])
            positions[entry[3]] = entry[4]
            nxt = next(iters[entry[3]], None)
            if nxt is None:
                heapq.heappop(heap)
                self.files_done += 1
            else:
                heapq.heapreplace(heap, nxt)
        self.progress.update(len(out), self.files_done)
        self.awake_at_ms = None
        if speed is not None:
            if heap and heap[0][0] > limit:
                assert self.anchor is not None
                due = self.anchor[1] + int((heap[0][0] - self.anchor[0]) / speed)
                self.awake_at_ms = min(max(due, now + MIN_WAKE_MS), now + MAX_IDLE_MS)
            bound = heap[0][0] if heap else None
            clock = _replay_clock(self.anchor, speed, now, bound, self.last_clock)
            if clock is not None:
                self.last_clock = clock
                append(SourceClock(clock))
        return out

    def next_awake(self) -> datetime | None:
        """When the next row is due (paced), at most :data:`MAX_IDLE_MS` away."""
        return None if self.awake_at_ms is None else ms_to_dt(self.awake_at_ms)

    def snapshot(self) -> ReplayState:
        """Rows done per file (rows held in the heap, not yet emitted, are re-read)."""
        return ReplayState(sum(self.positions), 0, 0, tuple(self.positions))


FileKind = DumpSpec | Path
"""What :func:`inspect_path` found: a dump's spec, or the path of an NDJSON recording."""


def inspect_path(path: Path) -> FileKind:
    """Classify one replay file at start-up.

    Raises:
        ConfigError: the file is neither an NDJSON recording nor a known dump (the
            message names the file and the accepted formats).
    """
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        check_ndjson(path)
        return path
    if name.endswith((".csv", ".zip")):
        return inspect_file(path)
    msg = f"replay file {path}: unknown file type; {FORMATS}"
    raise ConfigError(msg)


def file_feeds(
    kinds: Sequence[FileKind], symbols: frozenset[str]
) -> list[Callable[[int], Iterator[Entry]]]:
    """Per file, a function ``rows to skip -> entries`` (for :class:`MergedPartition`)."""
    feeds: list[Callable[[int], Iterator[Entry]]] = []
    for i, kind in enumerate(kinds):
        if isinstance(kind, DumpSpec):
            feeds.append(partial(dump_entries, kind, i))
        else:
            feeds.append(partial(_ndjson_feed, kind, i, symbols))
    return feeds


class ReplaySource(FixedPartitionedSource[Any, ReplayState]):
    """Replays recordings and/or public-data dumps (see module docstring for the modes).

    Every file is checked when the source is built (start-up): unknown files, dumps
    of a symbol not in ``symbols``, and ``loop`` with anything but one NDJSON
    recording raise :class:`ConfigError`.

    Args:
        path: One file or several (merged in time order).
        speed: ``None`` = as fast as possible, else real-time factor.
        loop: Replay forever with shifted times and ids (one NDJSON recording only).
        batch_size: Most records per ``next_batch``.
        symbols: Accepted symbols; ``None`` (tests, benchmarks): one NDJSON file's
            raw frames are emitted undecoded.
        progress_every_s: Seconds between progress log lines (a bar on a terminal);
            ``None`` = no progress report.
    """

    def __init__(
        self,
        path: Path | str | Sequence[Path | str],
        speed: float | None = None,
        loop: bool = False,
        batch_size: int = 4096,
        *,
        symbols: frozenset[str] | None = None,
        progress_every_s: float | None = DEFAULT_EVERY_S,
    ) -> None:
        paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
        if not paths:
            msg = "replay needs at least one file"
            raise ConfigError(msg)
        self.kinds = [inspect_path(p) for p in paths]
        self.ndjson_only = len(paths) == 1 and isinstance(self.kinds[0], Path)
        if loop and not self.ndjson_only:
            msg = (
                "PAIRFLOW_REPLAY_LOOP=1 replays one NDJSON recording forever, shifting its "
                "times and ids; for public-data dumps or several files it is not "
                "meaningful: set PAIRFLOW_REPLAY_LOOP=0 (dumps replay once, merged in time)"
            )
            raise ConfigError(msg)
        if symbols is not None:
            for kind in self.kinds:
                if isinstance(kind, DumpSpec) and kind.symbol not in symbols:
                    msg = (
                        f"replay file {kind.path} holds {kind.symbol}, which is not in "
                        f"PAIRFLOW_SYMBOLS ({','.join(sorted(symbols))}); add it there"
                    )
                    raise ConfigError(msg)
        elif not self.ndjson_only and not all(isinstance(k, DumpSpec) for k in self.kinds):
            msg = "merging NDJSON recordings needs the accepted symbols (symbols=...)"
            raise ConfigError(msg)
        self.paths = paths
        self.path = paths[0]
        self.symbols = symbols
        self.speed = speed
        self.loop = loop
        self.batch_size = batch_size
        self.progress_every_s = progress_every_s

    def list_parts(self) -> list[str]:
        """One partition: the files are one ordered sequence."""
        if len(self.paths) == 1:
            return [f"replay:{self.path.name}"]
        return [f"replay:{self.path.name}+{len(self.paths) - 1}"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: ReplayState | None
    ) -> StatefulSourcePartition[Any, ReplayState]:
        """Open the file(s), resuming at the snapshot position if any."""
        if self.ndjson_only:
            return ReplayPartition(
                self.path,
                self.speed,
                self.loop,
                self.batch_size,
                resume_state,
                self.symbols,
                self.progress_every_s,
            )
        est = 0
        if self.progress_every_s is not None:
            est = sum(
                k.est_lines if isinstance(k, DumpSpec) else estimate_lines(k) for k in self.kinds
            )
        return MergedPartition(
            file_feeds(self.kinds, self.symbols or frozenset()),
            self.speed,
            self.batch_size,
            resume_state,
            est,
            self.progress_every_s,
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
