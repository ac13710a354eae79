"""Graceful stop: SIGTERM/SIGINT ask every source to end its input.

Bytewax flows end cleanly when all inputs reach end of stream: every stateful step
gets ``on_eof`` (open bars are emitted) and every sink is closed (the DuckDB sink
flushes). So a stop request makes sources raise ``StopIteration`` at their next
``next_batch`` instead of killing the process. A second SIGINT interrupts hard.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

STOP = threading.Event()
"""Set when a stop was requested; sources poll it in ``next_batch``."""


def stop_requested() -> bool:
    """True once SIGTERM/SIGINT was received (or :func:`request_stop` was called)."""
    return STOP.is_set()


def request_stop() -> None:
    """Ask all sources of this process to end their input."""
    STOP.set()


def _handler(signum: int, frame: FrameType | None) -> None:
    if STOP.is_set() and signum == signal.SIGINT:
        raise KeyboardInterrupt
    log.warning("%s received: ending input, flushing sinks", signal.Signals(signum).name)
    STOP.set()


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGINT into a graceful stop (main thread only)."""
    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
