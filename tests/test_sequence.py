"""operators.sequence: duplicate and backwards trade ids become rejects, in a real flow."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.sequence import SequenceLogic
from pairflow.records import Reject, Tick
from pairflow.testing.ticks import tick


def run_sequence(chunks: list[list[Tick]]) -> list[object]:
    flow = Dataflow("seq_test")
    inp = op.input("inp", flow, TestingSource([(c[0].symbol, c) for c in chunks]))
    out = op.stateful_batch("seq", inp, lambda resume: SequenceLogic("test", resume))
    got: list[object] = []
    op.output("out", op.map("values", out, lambda kv: kv[1]), TestingSink(got))
    run_main(flow)
    return got


def test_sequence_passes_increasing_ids_and_allows_gaps():
    out = run_sequence([[tick(1, 0), tick(2, 1)], [tick(5, 2)]])
    assert [[t.trade_id for t in c] for c in out] == [[1, 2], [5]]


def test_sequence_rejects_duplicate_and_backwards_ids_with_reasons():
    out = run_sequence([[tick(1, 0), tick(2, 1), tick(2, 1)], [tick(1, 0), tick(3, 2)]])
    accepted = [t.trade_id for c in out if isinstance(c, list) for t in c]
    rejects = [r for r in out if isinstance(r, Reject)]
    assert accepted == [1, 2, 3]
    assert [r.reason for r in rejects] == ["duplicate_trade_id", "backwards_trade_id"]
    assert all('"s":"BTCUSDT"' in r.raw for r in rejects)


def test_sequence_keeps_symbols_independent():
    out = run_sequence([[tick(10, 0)], [tick(1, 0, symbol="ETHUSDT")], [tick(11, 1)]])
    accepted = sorted((t.symbol, t.trade_id) for c in out if isinstance(c, list) for t in c)
    assert accepted == [("BTCUSDT", 10), ("BTCUSDT", 11), ("ETHUSDT", 1)]
