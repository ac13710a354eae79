"""Re-keying a stream one batch at a time: one ``(key, [items...])`` per key and batch.

``op.key_on`` makes one Bytewax item per record, and every item costs the runtime and
each later Python step ~1-2 µs; a batch of a replay holds many records per key. These
helpers group a batch by key instead (order kept within a key), for steps whose logic
takes lists (:func:`flatten`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

X = TypeVar("X")


def by_key(key: Callable[[X], str]) -> Callable[[list[X]], list[tuple[str, list[X]]]]:
    """A ``flat_map_batch`` mapper: a batch -> one ``(key(item), [items...])`` per key.

    Keys come in the order of their first item; each list keeps the batch's order.
    """

    def group(items: list[X]) -> list[tuple[str, list[X]]]:
        out: dict[str, list[X]] = {}
        for item in items:
            k = key(item)
            lst = out.get(k)
            if lst is None:
                out[k] = [item]
            else:
                lst.append(item)
        return list(out.items())

    return group


def flatten(values: Sequence[X | list[X]]) -> list[X]:
    """A logic's batch as items: lists (from :func:`by_key`) are spliced in order."""
    out: list[X] = []
    for v in values:
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out
