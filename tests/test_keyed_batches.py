"""operators.keyed_batches: a batch grouped by key, and a logic's lists spliced back."""

from __future__ import annotations

from operators.keyed_batches import by_key, flatten


def test_by_key_gives_one_list_per_key_in_first_seen_order_with_the_batch_order_kept() -> None:
    items = ["b1", "a1", "b2", "c1", "a2", "b3"]
    assert by_key(lambda s: s[0])(items) == [
        ("b", ["b1", "b2", "b3"]),
        ("a", ["a1", "a2"]),
        ("c", ["c1"]),
    ]
    assert by_key(lambda s: s[0])([]) == []


def test_flatten_splices_lists_and_keeps_single_items() -> None:
    assert flatten([["b1", "b2"], "x", ["b3"], []]) == ["b1", "b2", "x", "b3"]
    grouped = by_key(lambda s: s[0])(["b1", "a1", "b2"])
    assert flatten([lst for _, lst in grouped]) == ["b1", "b2", "a1"]
