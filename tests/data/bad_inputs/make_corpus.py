"""Regenerate the bad-input corpus (one ``.ndjson`` file per kind of bad line).

    uv run python tests/data/bad_inputs/make_corpus.py

Every bad line is derived from a real trade frame of the shipped recording (line 1,
BTCUSDT, and line 2, ETHUSDT), changed in one way. ``KINDS`` maps each file to the
reason the flow must store in ``rejects`` and to where ``tests/test_bad_inputs.py``
places its lines (see README.md). The files are committed; this script documents how
they were made and rewrites them byte for byte.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORDING = (
    HERE.parents[2] / "data/recordings/binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)

RANDOM = "random"
"""Placement: anywhere after the first two lines (each symbol has traded once)."""
AFTER_ORIGINAL = "after_original"
"""Placement: right after the recording line it copies (same symbol and trade id)."""
END = "end"
"""Placement: after the last line of the recording."""

KINDS: dict[str, tuple[str, str]] = {
    "empty_frame.ndjson": ("empty_frame", RANDOM),
    "frame_too_large.ndjson": ("frame_too_large", RANDOM),
    "not_json.ndjson": ("not_json", RANDOM),
    "invalid_utf8.ndjson": ("not_json", RANDOM),
    "not_object.ndjson": ("not_object", RANDOM),
    "missing_envelope.ndjson": ("missing_envelope", RANDOM),
    "bad_stream_name.ndjson": ("bad_stream_name", RANDOM),
    "not_a_trade.ndjson": ("not_a_trade", RANDOM),
    "missing_field_s.ndjson": ("missing_field:s", RANDOM),
    "missing_field_p.ndjson": ("missing_field:p", RANDOM),
    "missing_field_q.ndjson": ("missing_field:q", RANDOM),
    "missing_trade_id.ndjson": ("missing_field:t", RANDOM),
    "missing_trade_time.ndjson": ("missing_field:T", RANDOM),
    "missing_event_time.ndjson": ("missing_field:E", RANDOM),
    "missing_field_m.ndjson": ("missing_field:m", RANDOM),
    "field_type_s.ndjson": ("field_type:s", RANDOM),
    "field_type_p.ndjson": ("field_type:p", RANDOM),
    "field_type_q.ndjson": ("field_type:q", RANDOM),
    "field_type_t.ndjson": ("field_type:t", RANDOM),
    "field_type_trade_time.ndjson": ("field_type:T", RANDOM),
    "field_type_event_time.ndjson": ("field_type:E", RANDOM),
    "field_type_m.ndjson": ("field_type:m", RANDOM),
    "bad_symbol.ndjson": ("bad_symbol", RANDOM),
    "unknown_symbol.ndjson": ("unknown_symbol", RANDOM),
    "stream_symbol_mismatch.ndjson": ("stream_symbol_mismatch", RANDOM),
    "trade_id_negative.ndjson": ("trade_id_negative", RANDOM),
    "price_not_numeric.ndjson": ("price_not_numeric", RANDOM),
    "price_nan.ndjson": ("price_not_finite", RANDOM),
    "price_inf.ndjson": ("price_not_finite", RANDOM),
    "price_zero.ndjson": ("price_not_positive", RANDOM),
    "price_negative.ndjson": ("price_not_positive", RANDOM),
    "qty_not_numeric.ndjson": ("qty_not_numeric", RANDOM),
    "qty_nan.ndjson": ("qty_not_finite", RANDOM),
    "qty_zero.ndjson": ("qty_not_positive", RANDOM),
    "qty_negative.ndjson": ("qty_not_positive", RANDOM),
    "trade_time_out_of_range.ndjson": ("trade_time_out_of_range", RANDOM),
    "event_time_out_of_range.ndjson": ("event_time_out_of_range", RANDOM),
    "duplicate_trade_id.ndjson": ("duplicate_trade_id", AFTER_ORIGINAL),
    "backwards_trade_id.ndjson": ("backwards_trade_id", RANDOM),
    "late_tick.ndjson": ("late_tick", END),
}
"""File name -> (reason stored in ``rejects``, placement in the test recording)."""

DROP = object()
"""Sentinel: remove the field."""


def _line(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode()


def _frames() -> tuple[list[bytes], dict[str, Any], dict[str, Any]]:
    with gzip.open(RECORDING, "rb") as fh:
        lines = [line.rstrip(b"\n") for line in fh if line.strip()]
    return lines, json.loads(lines[0]), json.loads(lines[1])


def _with(frame: dict[str, Any], stream: str | None = None, **data: Any) -> bytes:
    """``frame`` with fields of ``data`` replaced (``DROP`` removes one)."""
    d = {k: v for k, v in {**frame["data"], **data}.items() if v is not DROP}
    return _line({"stream": stream or frame["stream"], "data": d})


def corpus() -> dict[str, list[bytes]]:
    """The lines of every corpus file."""
    lines, btc, eth = _frames()
    all_frames = [json.loads(x) for x in lines]
    first_id = {
        s: min(f["data"]["t"] for f in all_frames if f["data"]["s"] == s)
        for s in ("BTCUSDT", "ETHUSDT")
    }
    last_id = {
        s: max(f["data"]["t"] for f in all_frames if f["data"]["s"] == s)
        for s in ("BTCUSDT", "ETHUSDT")
    }
    t0 = min(f["data"]["T"] for f in all_frames)
    big = _line({"stream": "btcusdt@trade", "data": {**btc["data"], "pad": "x" * 70_000}})
    return {
        "empty_frame.ndjson": [b"   ", b"\t", b" \t "],
        "frame_too_large.ndjson": [big],
        "not_json.ndjson": [
            b"{not json",
            _with(btc)[:-10],
            b"stream=btcusdt@trade data=...",
            b'{"stream":"btcusdt@trade","data":{"e":"trade",}}',
        ],
        "invalid_utf8.ndjson": [b'{"stream":"btc\xff\xfeusdt@trade"}', b"\xc3\x28\xa0\xa1"],
        "not_object.ndjson": [b"[1,2,3]", b"42", b'"trade"', b"null", b"true"],
        "missing_envelope.ndjson": [
            json.dumps(btc["data"]).encode(),
            b'{"stream":"btcusdt@trade","data":[1]}',
            _line({"data": btc["data"]}),
            _line({"stream": 7, "data": btc["data"]}),
        ],
        "bad_stream_name.ndjson": [
            _with(btc, stream="btcusdt@depth"),
            _with(eth, stream="ethusdt@aggTrade"),
            _with(btc, stream="btcusdt"),
        ],
        "not_a_trade.ndjson": [_with(btc, e="aggTrade"), _with(eth, e=DROP)],
        "missing_field_s.ndjson": [_with(btc, s=DROP)],
        "missing_field_p.ndjson": [_with(btc, p=DROP), _with(eth, p=DROP)],
        "missing_field_q.ndjson": [_with(eth, q=DROP)],
        "missing_trade_id.ndjson": [_with(btc, t=DROP)],
        "missing_trade_time.ndjson": [_with(eth, T=DROP)],
        "missing_event_time.ndjson": [_with(btc, E=DROP)],
        "missing_field_m.ndjson": [_with(eth, m=DROP)],
        "field_type_s.ndjson": [_with(btc, s=1), _with(eth, s=["ETHUSDT"])],
        "field_type_p.ndjson": [_with(btc, p=61837.63), _with(eth, p=None)],
        "field_type_q.ndjson": [_with(btc, q=0.02)],
        "field_type_t.ndjson": [
            _with(btc, t=str(btc["data"]["t"])),
            _with(eth, t=True),
            _with(btc, t=float(btc["data"]["t"])),
        ],
        "field_type_trade_time.ndjson": [_with(btc, T=btc["data"]["T"] + 0.5)],
        "field_type_event_time.ndjson": [_with(eth, E=str(eth["data"]["E"]))],
        "field_type_m.ndjson": [_with(btc, m="true"), _with(eth, m=0)],
        "bad_symbol.ndjson": [_with(btc, s="btcusdt"), _with(btc, s="BTC-USDT")],
        "unknown_symbol.ndjson": [
            _with(btc, stream="solusdt@trade", s="SOLUSDT"),
            _with(eth, stream="bnbusdt@trade", s="BNBUSDT"),
        ],
        "stream_symbol_mismatch.ndjson": [_with(btc, stream="ethusdt@trade")],
        "trade_id_negative.ndjson": [_with(btc, t=-5), _with(eth, t=-1)],
        "price_not_numeric.ndjson": [
            _with(btc, p="abc"),
            _with(eth, p=""),
            _with(btc, p="1e3"),
            _with(eth, p=" 2683.80"),
        ],
        "price_nan.ndjson": [_with(btc, p="NaN"), _with(eth, p="nan")],
        "price_inf.ndjson": [_with(btc, p="inf"), _with(eth, p="-Infinity")],
        "price_zero.ndjson": [_with(btc, p="0.00000000"), _with(eth, p="0")],
        "price_negative.ndjson": [_with(btc, p="-61837.63")],
        "qty_not_numeric.ndjson": [_with(btc, q="zero"), _with(eth, q="0,002")],
        "qty_nan.ndjson": [_with(eth, q="NaN")],
        "qty_zero.ndjson": [_with(btc, q="0.00000000")],
        "qty_negative.ndjson": [_with(eth, q="-0.00200000")],
        "trade_time_out_of_range.ndjson": [
            _with(btc, T=0),
            _with(eth, T=btc["data"]["T"] // 1000),
            _with(btc, T=btc["data"]["T"] * 1000),
        ],
        "event_time_out_of_range.ndjson": [_with(btc, E=-1), _with(eth, E=4_200_000_000_000)],
        # copies of recording lines 100 and 2000 (placed right after their originals)
        "duplicate_trade_id.ndjson": [lines[99], lines[1999]],
        # ids below each symbol's first id (placed anywhere after that first trade)
        "backwards_trade_id.ndjson": [
            _with(btc, t=first_id["BTCUSDT"] - 10),
            _with(eth, t=first_id["ETHUSDT"] - 1),
        ],
        # new ids, but an hour before the recording: older than the 5 min amend horizon
        "late_tick.ndjson": [
            _with(btc, t=last_id["BTCUSDT"] + 1, T=t0 - 3_600_000, E=t0 - 3_600_000),
            _with(eth, t=last_id["ETHUSDT"] + 1, T=t0 - 3_600_000, E=t0 - 3_600_000),
        ],
    }


def main() -> None:
    """Write every corpus file (and check ``KINDS`` names exactly these files)."""
    files = corpus()
    assert set(files) == set(KINDS), set(files) ^ set(KINDS)
    for name, lines in files.items():
        (HERE / name).write_bytes(b"".join(line + b"\n" for line in lines))
    print(f"wrote {len(files)} files, {sum(map(len, files.values()))} lines")


if __name__ == "__main__":
    main()
