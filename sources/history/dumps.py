"""Binance public-data dumps (data.binance.vision): detect a file's layout, parse its rows.

Accepted files (docs/design.md "Historical files"), ``.csv`` or ``.zip`` holding one ``.csv``,
named as Binance names them (the symbol comes from the name):

* ``SYMBOL-trades-DATE``: spot ``id,price,qty,quote_qty,time,is_buyer_maker,is_best_match``
  (no header); USD-M ``id,price,qty,quote_qty,time,is_buyer_maker`` and COIN-M
  ``id,price,qty,base_qty,time,is_buyer_maker`` (with a header; COIN-M ``qty`` counts
  contracts, so the tick's quantity is ``base_qty``, the base-asset amount).
* ``SYMBOL-aggTrades-DATE``: spot
  ``agg_id,price,qty,first_trade_id,last_trade_id,time,is_buyer_maker,is_best_match``
  (no header); USD-M with the header
  ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker``.
  One row -> one :class:`Tick` with ``trade_id = l`` and ``count = l - f + 1``.
* ``SYMBOL-{1s,1m,5m}-DATE``: klines
  ``open_time,open,high,low,close,volume,close_time,quote_volume,count,
  taker_buy_volume,taker_buy_quote_volume,ignore`` (futures with a header) -> one
  :class:`Bar` per kline with trades (a 0-trade kline is no bar; trade ids ``None``).

Headerless 6-column trades / 7-column aggTrades files (older futures dumps) are read
like the futures layouts. COIN-M aggTrades and klines count volume in contracts, not
in the base asset: they are refused at start-up (use the COIN-M trades dump).

Times are ms or µs (spot dumps from 2025-01-01 on), detected per file from its first
row; µs are floored to ms. A file whose name or content fits none of these fails at
start-up (:func:`inspect_file` raises :class:`ConfigError` naming the file and the
accepted formats). A malformed row is a :class:`Reject` with the CSV line as ``raw``
and a reason: ``csv_columns``, ``csv_bad_id``, ``csv_bad_trade_range``,
``csv_price_not_numeric|finite|positive``, ``csv_qty_not_numeric|finite|positive``,
``csv_bad_time``, ``csv_bad_flag``, ``csv_bad_count``, ``csv_bad_ohlc``,
``csv_volume_not_numeric|finite|positive``, ``csv_not_text``.

Rows are parsed by hand (``str.split`` and ``int``/``float``; no pandas, no ``csv``
module: Binance writes no quotes, and the split is ~1.4x faster than ``csv.reader``
here, see ``benchmarks/history.py``).
"""

from __future__ import annotations

import io
import math
import operator
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pairflow.errors import ConfigError
from pairflow.records import Bar, Reject, Tick
from pairflow.timeutil import now_ms
from sources.binance.wire import MAX_TIME_MS, MIN_TIME_MS, RAW_KEEP_CHARS, number_reason

US_THRESHOLD = 10**14
"""A time at or above this is in µs (ms times stay below ~4.1e12 until 2100)."""

KLINE_TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
"""Kline intervals the flow has bars for."""

NAME_RE = re.compile(
    r"^(?P<symbol>[A-Z0-9_]+)-(?P<kind>trades|aggTrades|\d+[smhdwM])-"
    r"(?P<date>\d{4}-\d{2}(?:-\d{2})?)\.(?P<ext>csv|zip)$"
)

FORMATS = (
    "accepted formats: NDJSON recordings of combined-stream trade frames (*.ndjson, "
    "*.ndjson.gz, *.jsonl, *.jsonl.gz) and Binance public-data dumps named as on "
    "data.binance.vision, .csv or .zip holding one .csv: SYMBOL-trades-DATE (spot 7 "
    "columns, no header; USD-M/COIN-M 6 columns with header), SYMBOL-aggTrades-DATE "
    "(spot 8 columns, no header; USD-M 7 columns with header), SYMBOL-1s|1m|5m-DATE "
    "klines (12 columns; futures with header); times in ms or µs"
)

TRADES_HEADERS = {
    "id,price,qty,quote_qty,time,is_buyer_maker": 2,  # USD-M: qty is the base amount
    "id,price,qty,base_qty,time,is_buyer_maker": 3,  # COIN-M: qty is contracts
}
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
COLUMNS = {"trades": (7, 6), "aggTrades": (8, 7), "klines": (12,)}
"""Accepted column counts per kind (spot first)."""

TIME_COLUMN = {"trades": 4, "aggTrades": 5, "klines": 0}
FLAGS = {"True": True, "False": False, "true": True, "false": False}
SNIFF_LINES = 64


@dataclass(frozen=True)
class DumpSpec:
    """What :func:`inspect_file` found out about one dump file.

    Attributes:
        path: The file.
        symbol: Binance symbol from the file name.
        kind: ``trades``, ``aggTrades`` or ``klines``.
        tf: Kline interval (``1s``/``1m``/``5m``), ``None`` for trades.
        header: The first line is a header (futures dumps).
        columns: Columns per row.
        time_div: 1 for ms times, 1000 for µs.
        qty_col: Column holding the base-asset quantity (trades: 2, COIN-M: 3).
        est_lines: Estimated data rows (for progress: size / mean line length).
    """

    path: Path
    symbol: str
    kind: str
    tf: str | None
    header: bool
    columns: int
    time_div: int
    qty_col: int
    est_lines: int

    @property
    def unit(self) -> str:
        """``ms`` or ``us``."""
        return "ms" if self.time_div == 1 else "us"


def is_dump_name(path: Path) -> bool:
    """True if the file name looks like a public-data dump (``.csv``/``.zip``)."""
    return path.suffix.lower() in (".csv", ".zip")


def _fail(path: Path, why: str) -> ConfigError:
    return ConfigError(f"replay file {path}: {why}; {FORMATS}")


def _open_binary(path: Path) -> tuple[IO[bytes], int]:
    """The CSV inside ``path`` as a binary stream, and its uncompressed size."""
    if path.suffix.lower() == ".csv":
        return open(path, "rb"), path.stat().st_size  # noqa: SIM115
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _fail(path, f"not a readable zip ({exc})") from None
    members = [i for i in zf.infolist() if not i.is_dir()]
    if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
        names = ", ".join(i.filename for i in members) or "nothing"
        zf.close()
        raise _fail(path, f"a dump zip holds exactly one .csv, this one holds {names}")
    stream = zf.open(members[0])
    stream._pairflow_zip = zf  # type: ignore[attr-defined]  # keep the archive open
    return stream, members[0].file_size


def open_text(path: Path) -> IO[str]:
    """The dump's CSV text (line by line; invalid UTF-8 becomes U+FFFD, then a reject)."""
    stream, _ = _open_binary(path)
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def inspect_file(path: Path) -> DumpSpec:
    """Detect a dump's kind, layout and time unit from its name and first rows.

    Raises:
        ConfigError: naming the file and the accepted formats, when the name or the
            content (header, column count, time column, kline interval) fits none.
    """
    m = NAME_RE.match(path.name)
    if m is None:
        raise _fail(path, "the name is not SYMBOL-trades|aggTrades|INTERVAL-DATE.csv|zip")
    symbol, kind = m["symbol"], m["kind"]
    tf: str | None = None
    if kind not in ("trades", "aggTrades"):
        if kind not in KLINE_TF_MS:
            raise _fail(path, f"kline interval {kind} has no bars here (1s, 1m, 5m only)")
        tf, kind = kind, "klines"
    coin_m = "_" in symbol
    if coin_m and kind != "trades":
        raise _fail(
            path,
            f"COIN-M {kind} count volume in contracts, not in the base asset; "
            "replay the COIN-M trades dump instead",
        )
    stream, size = _open_binary(path)
    with io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="") as fh:
        sample = []
        for line in fh:
            text = line.strip()
            if text:
                sample.append(text)
            if len(sample) >= SNIFF_LINES:
                break
    if not sample:
        raise _fail(path, "the file is empty")
    header = not sample[0][:1].isdigit()
    qty_col = 2
    if header:
        got = sample[0].lower().replace(" ", "")
        want = {
            "trades": list(TRADES_HEADERS),
            "aggTrades": [AGG_HEADER],
            "klines": [KLINE_HEADER],
        }[kind]
        if got not in want:
            raise _fail(path, f"header {sample[0][:200]!r} is not a {kind} header ({want[0]})")
        qty_col = TRADES_HEADERS.get(got, 2)
        columns = got.count(",") + 1
    rows = sample[1:] if header else sample
    if not rows:  # a header-only file: a day without trades
        return DumpSpec(path, symbol, kind, tf, header, len(sample[0].split(",")), 1, qty_col, 0)
    fields = rows[0].split(",")
    if not header:
        columns = len(fields)
        if columns not in COLUMNS[kind]:
            other = [k for k, v in COLUMNS.items() if columns in v and k != kind]
            hint = f" (that is the {other[0]} layout)" if other else ""
            raise _fail(
                path,
                f"{kind} rows have {' or '.join(map(str, COLUMNS[kind]))} columns, "
                f"the first row has {columns}{hint}",
            )
    elif len(fields) != columns:
        raise _fail(path, f"the header has {columns} columns, the first row {len(fields)}")
    time_text = fields[TIME_COLUMN[kind]]
    if not time_text.isdigit():
        raise _fail(path, f"the first row's time {time_text[:40]!r} is not an integer")
    raw_time = int(time_text)
    if raw_time >= US_THRESHOLD:
        time_div = 1000
    elif MIN_TIME_MS <= raw_time < MAX_TIME_MS:
        time_div = 1
    else:
        raise _fail(path, f"the first row's time {raw_time} is neither epoch ms nor µs")
    if tf is not None:
        close_text = fields[6]
        step = KLINE_TF_MS[tf] * time_div
        if not close_text.isdigit() or int(close_text) - raw_time + 1 != step:
            raise _fail(
                path, f"the first kline does not span {tf} (open {raw_time}, close {close_text})"
            )
    elif fields[5 if kind == "trades" else 6] not in FLAGS:
        raise _fail(path, "the is_buyer_maker column holds no true/false")
    mean_len = sum(len(r) + 1 for r in rows) / len(rows)
    return DumpSpec(
        path, symbol, kind, tf, header, columns, time_div, qty_col, int(size / mean_len)
    )


def _time_reason(text: str, div: int) -> str | None:
    if not text.isdigit() or not MIN_TIME_MS <= int(text) // div < MAX_TIME_MS:
        return "csv_bad_time"
    return None


def trade_reason(fields: list[str], spec: DumpSpec) -> str:
    """Why a trades/aggTrades row is unusable (the first problem, in column order)."""
    if len(fields) != spec.columns:
        return "csv_columns"
    agg = spec.kind == "aggTrades"
    if not fields[0].isdigit():
        return "csv_bad_id"
    reason = number_reason(fields[1], "csv_price") or number_reason(
        fields[2 if agg else spec.qty_col], "csv_qty"
    )
    if reason:
        return reason
    if agg:
        if not (fields[3].isdigit() and fields[4].isdigit()):
            return "csv_bad_id"
        if int(fields[4]) < int(fields[3]):
            return "csv_bad_trade_range"
    reason = _time_reason(fields[5 if agg else 4], spec.time_div)
    if reason:
        return reason
    if fields[6 if agg else 5] not in FLAGS:
        return "csv_bad_flag"
    return "ok"


def kline_reason(fields: list[str], spec: DumpSpec) -> str:
    """Why a kline row is unusable (the first problem found)."""
    if len(fields) != spec.columns:
        return "csv_columns"
    div = spec.time_div
    reason = _time_reason(fields[0], div) or _time_reason(fields[6], div)
    if reason:
        return reason
    tf_ms = KLINE_TF_MS[spec.tf or "1s"]
    open_raw = int(fields[0])
    if open_raw % (tf_ms * div) or int(fields[6]) != open_raw + tf_ms * div - 1:
        return "csv_bad_time"
    for col in (1, 2, 3, 4):
        reason = number_reason(fields[col], "csv_price")
        if reason:
            return reason
    if not fields[8].isdigit():
        return "csv_bad_count"
    for col in (5, 7, 9):
        reason = number_reason(fields[col], "csv_volume", allow_zero=True)
        if reason:
            return reason
    o, h, lo, c = (float(fields[i]) for i in (1, 2, 3, 4))
    if not (lo <= min(o, c) and h >= max(o, c)):
        return "csv_bad_ohlc"
    if int(fields[8]) > 0 and float(fields[5]) <= 0.0:
        return "csv_volume_not_positive"
    return "ok"


Entry = tuple[int, str, int, int, int, "Tick | Bar | Reject"]
"""``(time_ms, symbol, id, file index, rows done, record)``: one replayed row.

Sorted by time, symbol and id (then file and position, so records never compare).
``rows done`` counts the file's non-blank data rows up to and including this one
(the file's resume position). Rejects carry the key of the row before them.
"""


def _raw(line: str) -> str:
    return line[:RAW_KEEP_CHARS]


_strip_line_end = operator.methodcaller("rstrip", "\r\n")


def _data_lines(fh: IO[str]) -> Iterator[str]:
    """The non-empty lines of ``fh`` without their line ends (in C: no Python call a line)."""
    return filter(None, map(_strip_line_end, fh))


def _open_rows(spec: DumpSpec, skip: int) -> IO[str]:
    """The dump's text, positioned after the header and ``skip`` non-empty data rows.

    Empty lines are skipped by the parsers too, so they never count as rows.
    """
    fh = open_text(spec.path)
    if spec.header:
        fh.readline()
    skipped = 0
    while skipped < skip:
        line = fh.readline()
        if not line:
            break
        if line.rstrip("\r\n"):
            skipped += 1
    return fh


def dump_entries(spec: DumpSpec, index: int, skip: int = 0) -> Iterator[Entry]:
    """The file's rows as replay entries, from data row ``skip`` on.

    Args:
        spec: From :func:`inspect_file`.
        index: This file's position in the replay (part of each entry's key).
        skip: Data rows already replayed (resume position).
    """
    if spec.kind == "klines":
        return _kline_entries(spec, index, skip)
    return _tick_entries(spec, index, skip)


_new_tick = tuple.__new__
"""``Tick`` built from a tuple in C (skips the NamedTuple's Python ``__new__``)."""


def _tick_entries(spec: DumpSpec, index: int, skip: int) -> Iterator[Entry]:
    """Rows of a trades or aggTrades dump; the hot loop of a dump replay (see module docstring).

    A trades row is one ``Tick(count=1)``; an aggTrades row ``a,p,q,f,l,T,m`` is one
    ``Tick(trade_id=l, count=l-f+1)``.
    """
    symbol = spec.symbol
    div = spec.time_div
    ncol = spec.columns
    qc = spec.qty_col
    agg = spec.kind == "aggTrades"
    flags = FLAGS
    inf = math.inf
    lo_t, hi_t = MIN_TIME_MS, MAX_TIME_MS
    new, tick_cls = _new_tick, Tick
    pos = skip
    last_t, last_id = 0, -1
    with _open_rows(spec, skip) as fh:
        for text in _data_lines(fh):
            fields = text.split(",")
            pos += 1
            try:
                if len(fields) == ncol:
                    if agg:
                        p, q, f_s, id_s, t_s = fields[1], fields[2], fields[3], fields[4], fields[5]
                        m_s, ids = fields[6], fields[0] + f_s + id_s
                        first, tid = int(f_s), int(id_s)
                    else:
                        id_s, p, t_s, m_s = fields[0], fields[1], fields[4], fields[5]
                        q = fields[qc]
                        ids = id_s
                        first = tid = int(id_s)
                    price = float(p)
                    qty = float(q)
                    t = int(t_s) // div
                    # float/int also take " 1", "1e3", "1_0", "+1", non-ASCII digits:
                    digits = (ids + t_s + p + q).replace(".", "")
                    if (
                        tid >= first
                        and lo_t <= t < hi_t
                        and 0.0 < price < inf
                        and 0.0 < qty < inf
                        and digits.isdigit()
                        and digits.isascii()
                    ):
                        last_t, last_id = t, tid
                        m = flags[m_s]
                        tick = new(
                            tick_cls, (symbol, tid, price, qty, t, t, m, p, q, tid - first + 1)
                        )
                        yield (t, symbol, tid, index, pos, tick)
                        continue
            except (ValueError, KeyError):
                pass
            reason = trade_reason(fields, spec)
            rej = Reject(now_ms(), "replay", reason, _raw(text))
            yield (last_t, symbol, last_id, index, pos, rej)


def _kline_entries(spec: DumpSpec, index: int, skip: int) -> Iterator[Entry]:
    """Rows of a klines dump: one ``Bar`` per kline with trades (klines are few)."""
    with _open_rows(spec, skip) as fh:
        yield from _klines(fh, spec, index, skip)


def _klines(fh: IO[str], spec: DumpSpec, index: int, pos: int) -> Iterator[Entry]:
    symbol = spec.symbol
    tf = spec.tf or "1s"
    tf_ms = KLINE_TF_MS[tf]
    div = spec.time_div
    last_t, last_id = 0, -1
    for text in _data_lines(fh):
        fields = text.split(",")
        pos += 1
        reason = kline_reason(fields, spec)
        if reason != "ok":
            rej = Reject(now_ms(), "replay", reason, _raw(text))
            yield (last_t, symbol, last_id, index, pos, rej)
            continue
        trades = int(fields[8])
        if trades == 0:
            continue  # Binance writes a 0-trade kline at the previous close: no bar
        open_ms = int(fields[0]) // div
        bar = Bar(
            symbol,
            tf,
            open_ms,
            float(fields[1]),
            float(fields[2]),
            float(fields[3]),
            float(fields[4]),
            float(fields[5]),
            float(fields[7]),
            trades,
            float(fields[9]),
            None,
            None,
        )
        last_t, last_id = open_ms + tf_ms - 1, open_ms
        yield (last_t, symbol, last_id, index, pos, bar)
