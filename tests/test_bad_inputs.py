"""The bad-input corpus mixed into the real recording, through the whole flow.

Real parts: the shipped recording, every file of ``tests/data/bad_inputs/``, a real
DuckDB file, the real Redis server (unique key prefix), default analytics windows.
Each bad line must be in ``rejects`` with its reason; every good tick in ``bars``
(pandas oracle) and in Redis.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest
import redis

from pairflow.testing import REDIS_URL, ROOT
from pairflow.testing.oracle import (
    compare_bars,
    read_table,
    redis_entries,
    resample_bars,
    trades_from_lines,
)
from sources.binance.wire import parse_frame
from tests.data.bad_inputs.make_corpus import AFTER_ORIGINAL, END, KINDS, RANDOM
from tests.flowutil import run_flow, settings_for

CORPUS = ROOT / "tests" / "data" / "bad_inputs"
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
POST_PARSE = {"duplicate_trade_id", "backwards_trade_id", "late_tick"}
"""Reasons given after parsing; their ``raw`` is the re-encoded tick, not the line."""
SEED = 20240808
RAW_KEEP_CHARS = 4096


def corpus_lines(name: str) -> list[bytes]:
    """The lines of one corpus file (without line ends)."""
    data = (CORPUS / name).read_bytes()
    assert data.endswith(b"\n"), name
    return data[:-1].split(b"\n")


def recording_lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def identity(frame: str | bytes) -> tuple[object, ...]:
    """What identifies a trade independently of field order, extra fields and envelope.

    A frame refused after parsing (duplicate, backwards, late) is stored as the tick's
    fields (``pairflow.records.tick_raw``: no combined-stream envelope).
    """
    obj = json.loads(frame)
    d = obj.get("data", obj)
    return (d["s"], d["t"], d["T"], d["p"], d["q"], d["m"])


def expected_key(reason: str, line: bytes) -> tuple[str, object]:
    """How a bad line shows up in ``rejects``: (reason, raw text or trade identity)."""
    if reason in POST_PARSE:
        return reason, identity(line)
    return reason, line.decode("utf-8", errors="replace")[:RAW_KEEP_CHARS]


def mix(good: list[bytes], seed: int = SEED) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """Insert every corpus line into ``good``; returns (mixed lines, [(reason, line)])."""
    rng = random.Random(seed)
    after: dict[int, list[bytes]] = {}
    bad: list[tuple[str, bytes]] = []
    index = {line: i for i, line in enumerate(good)}
    for name, (reason, placement) in sorted(KINDS.items()):
        for line in corpus_lines(name):
            if placement == RANDOM:
                pos = rng.randrange(1, len(good))
            elif placement == AFTER_ORIGINAL:
                pos = index[line]
            else:
                assert placement == END
                pos = len(good) - 1
            after.setdefault(pos, []).append(line)
            bad.append((reason, line))
    for lines in after.values():
        rng.shuffle(lines)
    mixed: list[bytes] = []
    for i, line in enumerate(good):
        mixed.append(line)
        mixed.extend(after.get(i, []))
    return mixed, bad


def test_corpus_files_are_the_documented_kinds():
    files = {p.name for p in CORPUS.glob("*.ndjson")}
    assert files == set(KINDS)
    readme = (CORPUS / "README.md").read_text()
    for name, (reason, _placement) in KINDS.items():
        assert f"`{name}`" in readme and f"`{reason}`" in readme, name
    reasons = {reason for reason, _ in KINDS.values()}
    assert len(KINDS) >= 20 and len(reasons) >= 20


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_corpus_line_parses_to_its_reason(name):
    reason, _ = KINDS[name]
    for line in corpus_lines(name):
        got = parse_frame(line, SYMBOLS)
        if reason in POST_PARSE:  # a well-formed tick: the sequence/bars steps reject it
            assert not isinstance(got, str), (line[:120], got)
        else:
            assert got == reason, line[:120]


def test_bad_lines_mixed_into_the_recording_are_all_rejected_and_good_ticks_all_kept(
    recording, tmp_path, redis_prefix
):
    good = recording_lines(recording)
    mixed, bad = mix(good)
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"".join(line + b"\n" for line in mixed))
    db = tmp_path / "bad.db"
    settings = settings_for(
        db,
        source=f"replay:{path}",
        replay_speed="max",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        windows="1s=300,1m=120,5m=60",
    )

    run_flow(settings)

    # every bad line is a reject with the right reason, and nothing else is
    rejects = read_table(db, "rejects", "received_at")
    assert set(rejects["source"]) == {"replay"}
    got = Counter(
        (reason, identity(raw) if reason in POST_PARSE else raw)
        for reason, raw in zip(rejects["reason"], rejects["raw"], strict=True)
    )
    want = Counter(expected_key(reason, line) for reason, line in bad)
    assert Counter(r for r, _ in got.elements()) == Counter(r for r, _ in bad)
    missing = want - got
    unexpected = got - want
    assert not missing and not unexpected, (list(missing)[:3], list(unexpected)[:3])
    assert len(rejects) == len(bad) == sum(len(corpus_lines(n)) for n in KINDS)

    # every good tick is in the bars (pandas oracle on the recording alone) ...
    bars = read_table(db, "bars", "symbol, tf, open_time")
    want_bars = resample_bars(trades_from_lines(good))
    compare_bars(bars, want_bars)
    assert int(want_bars.loc[want_bars["tf"] == "1m", "trades"].sum()) == len(good)
    assert not read_table(db, "analytics", "pair, tf, ts").empty

    # ... and in Redis, exactly
    want_redis = redis_entries(good)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for symbol, entries in want_redis.items():
            assert client.xrange(f"{redis_prefix}ticks:{symbol}") == entries, symbol
        assert set(client.scan_iter(match=f"{redis_prefix}ticks:*")) == {
            f"{redis_prefix}ticks:{s}" for s in want_redis
        }
    finally:
        client.close()
