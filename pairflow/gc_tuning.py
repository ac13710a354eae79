"""Interpreter settings of a flow process: GC thresholds and the thread switch interval.

``PAIRFLOW_GC_THRESHOLDS`` (:func:`apply_gc_thresholds`):

The flow allocates millions of short-lived objects (ticks, bars, rows) that reference
counting frees at once, and keeps a growing set of long-lived ones (window state,
Bytewax's structures). Python's default thresholds ``(700, 10, 10)`` run a young
collection every 700 net allocations and, every 100 of those, a full one that walks
every live object; in the flow that is work without garbage to find. Measured in a
900 s all-pairs scan (N = 14, ``benchmarks/gc_thresholds.py``): 1.28 s of 5.23 s in the
collector with the defaults, 0.31 s of 4.23 s with ``(50000, 20, 100)``, peak memory
within a few MB (``docs/design.md``, "Garbage collection"). Cycles are still
collected, only less often.

``PAIRFLOW_SWITCH_INTERVAL_MS`` (:func:`apply_switch_interval`): the DuckDB sink writes
on its own thread, and every call into DuckDB's Python API (``register``, ``execute``)
takes the GIL back on its way out. While the flow's thread runs Python, each take waits
for that thread to drop the GIL, which it does after the switch interval: Python's 5 ms
made a flush of seven tables (~20 calls) cost ~0.5 s against a busy thread instead of
~45 ms idle, and ~0.1 s of the busy thread's time; at 1 ms ~0.15 s and ~20 ms
(``benchmarks/gil_switch.py``). The interval only matters when a thread waits for the
GIL; a flow thread without a waiting writer runs as before.

Only process entry points (``python dataflow.py``, ``bytewax.run dataflow``, the
benchmarks' flow children) call these; ``dataflow.build`` does not, so a test or
notebook that builds a flow keeps its own interpreter's settings.
"""

from __future__ import annotations

import gc
import logging
import sys

log = logging.getLogger("pairflow")


def apply_gc_thresholds(thresholds: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """Set ``gc.set_threshold(*thresholds)`` unless ``None``; returns the previous ones.

    Args:
        thresholds: ``(g0, g1, g2)`` as parsed by ``pairflow.config.parse_gc_thresholds``,
            or ``None`` to keep what the interpreter has.
    """
    g0, g1, g2 = gc.get_threshold()
    if thresholds is not None and thresholds != (g0, g1, g2):
        gc.set_threshold(*thresholds)
        log.debug("gc thresholds %s -> %s", (g0, g1, g2), thresholds)
    return g0, g1, g2


def apply_switch_interval(interval_ms: float | None) -> float:
    """Set ``sys.setswitchinterval(interval_ms / 1000)`` unless ``None``; returns the old (s).

    Args:
        interval_ms: Milliseconds as parsed by ``pairflow.config.parse_switch_interval``,
            or ``None`` to keep what the interpreter has.
    """
    old = sys.getswitchinterval()
    if interval_ms is not None and interval_ms / 1000 != old:
        sys.setswitchinterval(interval_ms / 1000)
        log.debug("switch interval %.4f s -> %.4f s", old, interval_ms / 1000)
    return old
