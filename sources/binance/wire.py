"""Binance's wire format: combined-stream ``trade`` frames <-> typed records.

The Binance package owns its payload format (so does the replay of recordings of
it): :func:`decode_frames` turns raw frames into :class:`Tick` records or
:class:`Reject` records that keep the raw frame and a reason; :func:`tick_frame`
writes a tick back as a frame (recording live runs). Pure functions, no state:
stateful checks (duplicate or backwards trade ids) live in :mod:`operators.sequence`.
Nothing here raises on bad data: every failure is a reason string, so the flow
never crashes on input.

Reasons (the part before ``:`` is stable, the rest names the field):
``empty_frame``, ``frame_too_large``, ``not_json``, ``not_object``,
``missing_envelope``, ``bad_stream_name``, ``not_a_trade``, ``missing_field:F``,
``field_type:F``, ``bad_symbol``, ``unknown_symbol``, ``stream_symbol_mismatch``,
``trade_id_negative``, ``count_not_positive`` (an aggregate's ``n``: an integer
>= 1 covering ids ``t - n + 1 .. t``, all >= 0), ``price_not_numeric``, ``price_not_finite``,
``price_not_positive``, ``qty_not_numeric``, ``qty_not_finite``,
``qty_not_positive``, ``trade_time_out_of_range``, ``event_time_out_of_range``,
``trade_time_in_future`` (more than a minute ahead of the wall clock; see
:func:`parse_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

from pairflow.config import SYMBOL_RE
from pairflow.records import Reject, SourceItem, Tick

MAX_FRAME_BYTES = 65_536
"""Frames longer than this are rejected unparsed (a trade frame is ~200 bytes)."""

RAW_KEEP_CHARS = 4_096
"""How much of a rejected input is kept in ``rejects.raw``."""

MIN_TIME_MS = 1_483_228_800_000  # 2017-01-01, before Binance existed
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01

_new_tick = tuple.__new__
"""``_new_tick(Tick, fields)``: a tick without the NamedTuple's generated ``__new__``
(a Python-level function; half the cost per tick on the parse path, same object)."""

_STR_FIELDS = ("s", "p", "q")
_INT_FIELDS = ("t", "T", "E")


def _is_int(value: object) -> bool:
    # bool is a subclass of int; JSON true is not a trade id.
    return type(value) is int


def plain_decimal(text: str) -> bool:
    """True for Binance's number format: ASCII digits with at most one ``.``.

    ``float()`` also takes ``" 1.5"``, ``"1e3"``, ``"1_000"``, ``"nan"``; this does not.
    """
    return text.isascii() and text.replace(".", "", 1).isdigit()


def number_reason(text: str, name: str, allow_zero: bool = False) -> str | None:
    """Why ``text`` is not a positive Binance decimal, or ``None`` if it is one.

    Args:
        text: The number as sent (a JSON string or a CSV field).
        name: Prefix of the reason (``price`` -> ``price_not_numeric``).
        allow_zero: Accept ``0`` (a volume may be zero, a price may not).

    Returns:
        ``{name}_not_numeric``, ``{name}_not_finite``, ``{name}_not_positive`` or ``None``.
    """
    try:
        value = float(text)
    except ValueError:
        return f"{name}_not_numeric"
    if not math.isfinite(value):
        return f"{name}_not_finite"
    if value < 0.0 or (value == 0.0 and not allow_zero):
        return f"{name}_not_positive"
    if not plain_decimal(text):
        return f"{name}_not_numeric"
    return None


def parse_frame(raw: str | bytes | bytearray, symbols: frozenset[str]) -> Tick | str:
    """Parse one combined-stream ``trade`` frame.

    A fast path handles well-formed trades with one pass of checks; anything it does
    not accept goes through :func:`reject_reason`, which names the first problem.

    Args:
        raw: The frame text exactly as received.
        symbols: Upper-case symbols the flow accepts.

    Returns:
        A :class:`Tick`, or the reject reason (a ``str``) when the frame is unusable.
    """
    try:
        if len(raw) > MAX_FRAME_BYTES:
            return "frame_too_large"
        msg = orjson.loads(raw)
        data = msg["data"]
        symbol = data["s"]
        trade_id = data["t"]
        p = data["p"]
        q = data["q"]
        trade_time = data["T"]
        event_time = data["E"]
        maker = data["m"]
        count = data.get("n", 1)
        if (
            type(trade_id) is int
            and type(count) is int
            and 1 <= count <= trade_id + 1
            and type(trade_time) is int
            and type(event_time) is int
            and type(maker) is bool
            and type(p) is str
            and type(q) is str
            and symbol in symbols
            and data["e"] == "trade"
            and msg["stream"] == _STREAM_OF[symbol]
            and trade_id >= 0
            and MIN_TIME_MS <= trade_time < MAX_TIME_MS
            and MIN_TIME_MS <= event_time < MAX_TIME_MS
        ):
            price = float(p)
            qty = float(q)
            if (
                0.0 < price < math.inf
                and 0.0 < qty < math.inf
                and plain_decimal(p)
                and plain_decimal(q)
            ):
                return _new_tick(
                    Tick, (symbol, trade_id, price, qty, trade_time, event_time, maker, p, q, count)
                )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    return reject_reason(raw, symbols)


class _StreamNames(dict):  # type: ignore[type-arg]
    """``BTCUSDT`` -> ``btcusdt@trade``, computed once per symbol."""

    def __missing__(self, symbol: object) -> str | None:
        if type(symbol) is not str:
            return None
        name = f"{symbol.lower()}@trade"
        if len(self) < 100_000:
            self[symbol] = name
        return name


_STREAM_OF = _StreamNames()


def reject_reason(raw: str | bytes | bytearray, symbols: frozenset[str]) -> str:  # noqa: C901
    """Why a frame is not a usable trade (the first problem found, in a fixed order).

    Returns ``"ok"`` for a frame that is in fact valid (the fast path never calls it
    for one).
    """
    if not raw or not raw.strip():
        return "empty_frame"
    if len(raw) > MAX_FRAME_BYTES:
        return "frame_too_large"
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not_json"
    if type(msg) is not dict:
        return "not_object"
    data = msg.get("data")
    stream = msg.get("stream")
    if type(data) is not dict or type(stream) is not str:
        return "missing_envelope"
    if not stream.endswith("@trade"):
        return "bad_stream_name"
    if data.get("e") != "trade":
        return "not_a_trade"
    for name in ("s", "t", "p", "q", "T", "E", "m"):
        if name not in data:
            return f"missing_field:{name}"
    for name in _STR_FIELDS:
        if type(data[name]) is not str:
            return f"field_type:{name}"
    for name in _INT_FIELDS:
        if not _is_int(data[name]):
            return f"field_type:{name}"
    if type(data["m"]) is not bool:
        return "field_type:m"
    symbol: str = data["s"]
    if not SYMBOL_RE.match(symbol):
        return "bad_symbol"
    if symbol not in symbols:
        return "unknown_symbol"
    if stream[:-6] != symbol.lower():
        return "stream_symbol_mismatch"
    if data["t"] < 0:
        return "trade_id_negative"
    if "n" in data:
        if not _is_int(data["n"]):
            return "field_type:n"
        if not 1 <= data["n"] <= data["t"] + 1:
            return "count_not_positive"
    for field, name in (("p", "price"), ("q", "qty")):
        reason = number_reason(data[field], name)
        if reason is not None:
            return reason
    if not MIN_TIME_MS <= data["T"] < MAX_TIME_MS:
        return "trade_time_out_of_range"
    if not MIN_TIME_MS <= data["E"] < MAX_TIME_MS:
        return "event_time_out_of_range"
    return "ok"


def raw_text(raw: str | bytes | bytearray) -> str:
    """The raw input as text for ``rejects.raw``: decoded leniently and truncated."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else raw
    return text[:RAW_KEEP_CHARS]


def tick_frame(tick: Tick) -> str:
    """Encode a tick as the combined-stream frame Binance sends (for recordings).

    An aggregate (``count > 1``, from the ``aggTrades`` fallback) also carries
    ``"n": count`` (ids ``t - n + 1 .. t``), which :func:`parse_frame` reads back.
    """
    data: dict[str, object] = {
        "e": "trade",
        "E": tick.event_time_ms,
        "s": tick.symbol,
        "t": tick.trade_id,
        "p": tick.p,
        "q": tick.q,
        "T": tick.trade_time_ms,
        "m": tick.buyer_is_maker,
    }
    if tick.count != 1:
        data["n"] = tick.count
    return orjson.dumps({"stream": f"{tick.symbol.lower()}@trade", "data": data}).decode()


def parse_batch(
    raws: Iterable[object],
    symbols: frozenset[str],
    source: str,
    received_at_ms: int,
    max_trade_time_ms: int | None = None,
) -> tuple[dict[str, list[Tick]], list[Reject], list[object]]:
    """Parse a batch of source items, grouping good ticks by symbol (in input order).

    Args:
        raws: Source items: frames (``str``/``bytes``) or pass-through records
            (``Stat``, ``Gap``...).
        symbols: Accepted symbols.
        source: Source name written into ``rejects.source``.
        received_at_ms: Wall-clock time stamped on rejects.
        max_trade_time_ms: Reject ticks whose trade time is later than this as
            ``trade_time_in_future`` (the flow passes now + 60 s: one bogus far-future
            ``T`` would otherwise close every bar and make later trades late).

    Returns:
        ``(ticks by symbol, rejects, pass-through records)``.
    """
    by_symbol: dict[str, list[Tick]] = {}
    rejects: list[Reject] = []
    other: list[object] = []
    for raw in raws:
        if not isinstance(raw, (str, bytes, bytearray)):
            other.append(raw)
            continue
        out = parse_frame(raw, symbols)
        if type(out) is str:
            rejects.append(Reject(received_at_ms, source, out, raw_text(raw)))
        else:
            tick: Tick = out  # type: ignore[assignment]
            if max_trade_time_ms is not None and tick.trade_time_ms > max_trade_time_ms:
                rejects.append(
                    Reject(received_at_ms, source, "trade_time_in_future", raw_text(raw))
                )
                continue
            lst = by_symbol.get(tick.symbol)
            if lst is None:
                by_symbol[tick.symbol] = [tick]
            else:
                lst.append(tick)
    return by_symbol, rejects, other


def decode_frames(
    items: Iterable[object], symbols: frozenset[str], source: str, received_at_ms: int
) -> list[SourceItem]:
    """Frames -> records, in input order: a ``Tick`` or a ``Reject`` per frame.

    Args:
        items: Raw frames (``str``/``bytes``); anything else (records a source made
            itself: ``Gap``, ``Stat``...) passes through unchanged.
        symbols: Accepted symbols.
        source: Source name written into ``rejects.source``.
        received_at_ms: Wall-clock time stamped on rejects.
    """
    out: list[SourceItem] = []
    append = out.append
    for raw in items:
        if not isinstance(raw, (str, bytes, bytearray)):
            append(raw)  # type: ignore[arg-type]
            continue
        parsed = parse_frame(raw, symbols)
        if type(parsed) is str:
            append(Reject(received_at_ms, source, parsed, raw_text(raw)))
        else:
            append(parsed)  # type: ignore[arg-type]
    return out
