"""Progress of a long replay: a bar on a terminal, a log line every few seconds otherwise.

A month of dumps is hours of work; the user should see how far it is. On a terminal
(``stderr.isatty()``) a ``tqdm`` bar shows files done, ticks, ticks/s and the ETA
(it appears after :data:`BAR_DELAY_S`, so short replays stay quiet). Otherwise (logs,
CI, a service) one line every ``every_s`` seconds::

    replay progress: 2/31 files, 1,234,567 ticks, 251,234 ticks/s, ~7% done, ETA 1:02:11

The total is an estimate (file sizes over the mean line length of each file's first
rows), so the ETA is too. "Ticks" counts what the replay emitted: ticks, kline bars and
rejects. When no logging handler is configured (``python -m bytewax.run``), the line
goes to stderr directly, so it is never lost.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pairflow.replay")

BAR_DELAY_S = 2.0
"""The terminal bar appears only once a replay has run this long."""

DEFAULT_EVERY_S = 5.0
"""Seconds between two progress log lines (non-terminal)."""


def _eta(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Reports a replay's progress (see the module docstring).

    Args:
        files: Number of files in the replay.
        est_total: Estimated rows in all files (0 = unknown).
        every_s: Seconds between log lines; ``None`` turns reporting off.
        tty: Force terminal (bar) or log mode; default ``sys.stderr.isatty()``.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        files: int,
        est_total: int,
        every_s: float | None = DEFAULT_EVERY_S,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self.est_total = est_total
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.last_log = self.started
        self.items = 0
        self.files_done = 0
        self.logged = False
        self.bar: Any = None
        if every_s is not None and (sys.stderr.isatty() if tty is None else tty):
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=est_total or None,
                    unit=" ticks",
                    unit_scale=True,
                    delay=BAR_DELAY_S,
                    desc=self._desc(),
                    file=sys.stderr,
                    dynamic_ncols=True,
                    leave=True,
                )

    def _desc(self) -> str:
        return f"replay {self.files_done}/{self.files} files"

    def update(self, items: int, files_done: int) -> None:
        """Count ``items`` more emitted records; ``files_done`` files are finished."""
        if self.every_s is None:
            return
        self.items += items
        if files_done != self.files_done:
            self.files_done = files_done
            if self.bar is not None:
                self.bar.set_description_str(self._desc(), refresh=False)
        if self.bar is not None:
            self.bar.update(items)
            return
        now = self.clock()
        if now - self.last_log >= self.every_s:
            self.last_log = now
            self._emit(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress line as it is logged."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.items / elapsed
        text = (
            f"replay progress: {self.files_done}/{self.files} files, {self.items:,} ticks, "
            f"{rate:,.0f} ticks/s"
        )
        if self.est_total > 0 and rate > 0:
            share = min(self.items / self.est_total, 1.0)
            left = max(self.est_total - self.items, 0) / rate
            text += f", ~{share:.0%} done, ETA {_eta(left)}"
        return text

    def _emit(self, text: str) -> None:
        self.logged = True
        if log.hasHandlers():
            log.info(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        """The replay ended: close the bar, or log a last line if lines were logged."""
        if self.every_s is None:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            return
        if self.logged:
            now = self.clock()
            elapsed = max(now - self.started, 1e-9)
            self._emit(
                f"replay done: {self.files} files, {self.items:,} ticks in {elapsed:,.1f} s "
                f"({self.items / elapsed:,.0f} ticks/s)"
            )
        self.every_s = None
