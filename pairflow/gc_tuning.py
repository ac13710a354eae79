"""The cyclic garbage collector's thresholds for a flow process (``PAIRFLOW_GC_THRESHOLDS``).

The flow allocates millions of short-lived objects (ticks, bars, rows) that reference
counting frees at once, and keeps a growing set of long-lived ones (window state,
Bytewax's structures). Python's default thresholds ``(700, 10, 10)`` run a young
collection every 700 net allocations and, every 100 of those, a full one that walks
every live object; in the flow that is work without garbage to find. Measured in a
900 s all-pairs scan (N = 14, ``benchmarks/gc_thresholds.py``): 1.28 s of 5.23 s in the
collector with the defaults, 0.31 s of 4.23 s with ``(50000, 20, 100)``, peak memory
within a few MB (``docs/design.md``, "Garbage collection"). Cycles are still
collected, only less often.

Only process entry points (``python dataflow.py``, ``bytewax.run dataflow``, the
benchmarks' flow children) call :func:`apply_gc_thresholds`; ``dataflow.build`` does
not, so a test or notebook that builds a flow keeps its own interpreter's settings.
"""

from __future__ import annotations

import gc
import logging

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
