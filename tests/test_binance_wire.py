"""sources.binance.wire: every kind of bad frame has its reason; good frames become Ticks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairflow.records import Reject, Stat, Tick
from sources.binance.wire import parse_batch, parse_frame, tick_frame

SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
GOOD = {
    "e": "trade",
    "E": 1723161255343,
    "s": "BTCUSDT",
    "t": 3735683259,
    "p": "61837.63000000",
    "q": "0.02000000",
    "T": 1723161255342,
    "m": True,
    "M": True,
}


def frame(stream: str = "btcusdt@trade", **changes: object) -> str:
    data = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return json.dumps({"stream": stream, "data": data})


BAD_FRAMES: list[tuple[str, str | bytes, str]] = [
    ("empty", "", "empty_frame"),
    ("whitespace", "  \n", "empty_frame"),
    ("too_large", "x" * 70_000, "frame_too_large"),
    ("not_json", "{not json", "not_json"),
    ("truncated_json", frame()[:-10], "not_json"),
    ("invalid_utf8", b'{"stream":"\xff\xfe"}', "not_json"),
    ("json_array", "[1, 2, 3]", "not_object"),
    ("json_number", "42", "not_object"),
    ("bare_event_no_envelope", json.dumps(GOOD), "missing_envelope"),
    ("data_not_object", json.dumps({"stream": "btcusdt@trade", "data": [1]}), "missing_envelope"),
    ("depth_stream", frame(stream="btcusdt@depth"), "bad_stream_name"),
    ("agg_trade_event", frame(stream="btcusdt@trade", e="aggTrade"), "not_a_trade"),
    ("missing_price", frame(p=...), "missing_field:p"),
    ("missing_qty", frame(q=...), "missing_field:q"),
    ("missing_trade_time", frame(T=...), "missing_field:T"),
    ("missing_trade_id", frame(t=...), "missing_field:t"),
    ("missing_maker_flag", frame(m=...), "missing_field:m"),
    ("price_as_number", frame(p=61837.63), "field_type:p"),
    ("trade_id_as_string", frame(t="3735683259"), "field_type:t"),
    ("trade_id_as_bool", frame(t=True), "field_type:t"),
    ("trade_time_as_float", frame(T=1723161255342.5), "field_type:T"),
    ("maker_flag_as_string", frame(m="true"), "field_type:m"),
    ("symbol_as_number", frame(s=1), "field_type:s"),
    ("lowercase_symbol", frame(s="btcusdt"), "bad_symbol"),
    ("unknown_symbol", frame(stream="solusdt@trade", s="SOLUSDT"), "unknown_symbol"),
    ("stream_symbol_mismatch", frame(stream="ethusdt@trade"), "stream_symbol_mismatch"),
    ("negative_trade_id", frame(t=-5), "trade_id_negative"),
    ("price_not_numeric", frame(p="abc"), "price_not_numeric"),
    ("price_with_spaces", frame(p=" 61837.63 "), "price_not_numeric"),
    ("price_in_exponent_form", frame(p="6.1e4"), "price_not_numeric"),
    ("qty_with_underscore", frame(q="1_000"), "qty_not_numeric"),
    ("price_nan", frame(p="NaN"), "price_not_finite"),
    ("price_inf", frame(p="inf"), "price_not_finite"),
    ("price_zero", frame(p="0.00000000"), "price_not_positive"),
    ("price_negative", frame(p="-1.5"), "price_not_positive"),
    ("qty_not_numeric", frame(q=""), "qty_not_numeric"),
    ("qty_nan", frame(q="nan"), "qty_not_finite"),
    ("qty_zero", frame(q="0"), "qty_not_positive"),
    ("qty_negative", frame(q="-0.1"), "qty_not_positive"),
    ("trade_time_zero", frame(T=0), "trade_time_out_of_range"),
    ("trade_time_in_seconds", frame(T=1723161255), "trade_time_out_of_range"),
    ("trade_time_in_microseconds", frame(T=1723161255342000), "trade_time_out_of_range"),
    ("event_time_negative", frame(E=-1), "event_time_out_of_range"),
    ("aggregate_count_zero", frame(n=0), "count_not_positive"),
    ("aggregate_count_negative", frame(n=-3), "count_not_positive"),
    ("aggregate_count_below_id_zero", frame(t=4, n=6), "count_not_positive"),
    ("aggregate_count_as_string", frame(n="3"), "field_type:n"),
    ("aggregate_count_as_float", frame(n=2.0), "field_type:n"),
    ("aggregate_count_as_bool", frame(n=True), "field_type:n"),
]


def test_parse_bad_frames_cover_at_least_twenty_distinct_reasons():
    assert len({reason for _, _, reason in BAD_FRAMES}) >= 20


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_parse_when_frame_is_bad_returns_its_reason(name: str, raw: str, reason: str):
    assert parse_frame(raw, SYMBOLS) == reason


def test_parse_when_frame_is_good_returns_tick_with_exact_fields():
    tick = parse_frame(frame(), SYMBOLS)
    assert type(tick) is Tick  # built with tuple.__new__: a Tick, not a bare tuple
    assert (tick.symbol, tick.count, tick.first_trade_id) == ("BTCUSDT", 1, 3735683259)
    assert tick == Tick(
        symbol="BTCUSDT",
        trade_id=3735683259,
        price=61837.63,
        qty=0.02,
        trade_time_ms=1723161255342,
        event_time_ms=1723161255343,
        buyer_is_maker=True,
        p="61837.63000000",
        q="0.02000000",
    )


def test_parse_accepts_bytes_and_extra_fields():
    raw = frame(extra="ignored").encode()
    assert isinstance(parse_frame(raw, SYMBOLS), Tick)


def test_parse_batch_groups_ticks_by_symbol_and_keeps_rejects_and_records():
    stat = Stat(1, "binance", "ticks_total", 3.0)
    items = [
        frame(t=1),
        frame(stream="ethusdt@trade", s="ETHUSDT", t=7),
        "garbage",
        stat,
        frame(t=2),
    ]
    by_symbol, rejects, other = parse_batch(items, SYMBOLS, "replay", 123)
    assert [t.trade_id for t in by_symbol["BTCUSDT"]] == [1, 2]
    assert [t.trade_id for t in by_symbol["ETHUSDT"]] == [7]
    assert rejects == [Reject(123, "replay", "not_json", "garbage")]
    assert other == [stat]


def test_parse_reject_keeps_raw_text_truncated():
    raw = "{" + "a" * 10_000
    _, rejects, _ = parse_batch([raw], SYMBOLS, "replay", 0)
    assert rejects[0].raw == raw[:4096]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_parse_never_raises_on_arbitrary_input(raw: bytes | str):
    out = parse_frame(raw, SYMBOLS)
    assert isinstance(out, (Tick, str))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["e", "E", "s", "t", "p", "q", "T", "m"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    )
)
def test_parse_never_raises_on_mutated_trade_fields(changes: dict[str, object]):
    out = parse_frame(frame(**changes), SYMBOLS)
    if isinstance(out, Tick):
        assert out.price > 0 and out.qty > 0


def test_parse_batch_rejects_trade_time_beyond_the_limit_as_in_future():
    now = 1_723_161_255_342
    items = [frame(T=now), frame(t=3735683260, T=now + 61_000)]
    by_symbol, rejects, _ = parse_batch(items, SYMBOLS, "binance", now, now + 60_000)
    assert [t.trade_time_ms for t in by_symbol["BTCUSDT"]] == [now]
    assert [r.reason for r in rejects] == ["trade_time_in_future"]


def test_parse_aggregate_frame_keeps_its_count_and_round_trips_through_tick_frame():
    tick = parse_frame(frame(n=4), SYMBOLS)
    assert isinstance(tick, Tick)
    assert tick.count == 4 and tick.first_trade_id == GOOD["t"] - 3
    assert parse_frame(tick_frame(tick), SYMBOLS) == tick
    assert parse_frame(frame(n=1), SYMBOLS) == parse_frame(frame(), SYMBOLS)
    assert '"n"' not in tick_frame(parse_frame(frame(), SYMBOLS))  # type: ignore[arg-type]
