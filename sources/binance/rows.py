"""Binance REST rows -> records (pure; no I/O).

- ``historicalTrades`` rows -> :class:`~pairflow.records.Tick` (one per trade).
- ``aggTrades`` rows -> ``(aggregate id a, Tick)`` with ``trade_id = l`` and
  ``count = l - f + 1`` (ids ``f..l``, one price, one taker side).
- ``klines`` rows -> :class:`~pairflow.records.Bar` (a 0-trade kline is no bar;
  trade ids ``None``: klines carry none).
- ``exchangeInfo`` -> symbol -> status.

A row that is not what Binance documents raises :class:`MalformedRows` (a
``ValueError``); :mod:`sources.binance.rest` turns it into ``RestUnavailable``.
"""

from __future__ import annotations

from typing import Any

from pairflow.records import Bar, Tick
from sources.binance.wire import plain_decimal

__all__ = [
    "MalformedRows",
    "agg_ticks",
    "kline_bar",
    "kline_bars",
    "statuses",
    "trade_ticks",
]


class MalformedRows(ValueError):  # noqa: N818 - reads better at the raise site
    """A REST answer whose rows are not shaped like Binance's."""


def statuses(info: Any) -> dict[str, str]:
    """``exchangeInfo`` answer -> ``{symbol: status}`` (``TRADING``, ``HALT``...)."""
    rows = info.get("symbols", []) if isinstance(info, dict) else []
    return {
        r["symbol"]: str(r.get("status")) for r in rows if isinstance(r, dict) and "symbol" in r
    }


def kline_bar(symbol: str, tf: str, row: list[Any]) -> Bar | None:
    """One kline row -> a ``Bar`` (``None`` for a 0-trade kline). Ids are ``None``.

    Row layout: ``[open_time, open, high, low, close, volume, close_time,
    quote_volume, trades, taker_buy_volume, taker_buy_quote_volume, ignore]``.
    """
    trades = int(row[8])
    if trades <= 0:
        return None
    return Bar(
        symbol=symbol,
        tf=tf,
        open_time_ms=int(row[0]),
        open=float(row[1]),
        high=float(row[2]),
        low=float(row[3]),
        close=float(row[4]),
        volume=float(row[5]),
        quote_volume=float(row[7]),
        trades=trades,
        taker_buy_volume=float(row[9]),
        first_trade_id=None,
        last_trade_id=None,
    )


def kline_bars(symbol: str, tf: str, rows: Any) -> tuple[list[Bar], int, int]:
    """A klines page -> ``(bars with >= 1 trade, rows received, last open time or -1)``.

    Raises:
        MalformedRows: not a list, or a row that is not a kline.
    """
    bars: list[Bar] = []
    last = -1
    for row in _json_list("klines", rows):
        try:
            bar = kline_bar(symbol, tf, row)
            last = int(row[0])
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            msg = f"malformed kline row {row!r:.200} ({exc})"
            raise MalformedRows(msg) from None
        if bar is not None:
            bars.append(bar)
    return bars, len(rows), last


def _json_list(endpoint: str, rows: Any) -> list[Any]:
    """``rows`` if it is a JSON list.

    Raises:
        MalformedRows: naming ``endpoint`` when it is not.
    """
    if not isinstance(rows, list):
        msg = f"{endpoint}: expected a JSON list, got {str(rows)[:200]}"
        raise MalformedRows(msg)
    return rows


def _plain_positive(text: object) -> float | None:
    """Binance's decimal text (ASCII digits, at most one ``.``) as a float > 0, else None."""
    if not isinstance(text, str) or not plain_decimal(text):
        return None
    value = float(text)
    return value if value > 0 else None


def _trade_row(
    endpoint: str, row: Any, price_qty: tuple[str, str], ints: tuple[str, ...], maker: str
) -> tuple[float, float]:
    """Price and quantity of a REST trade row that has the documented fields.

    Args:
        endpoint: Named in the error.
        row: One row of the answer.
        price_qty: The keys of the price and quantity (Binance decimal text, > 0).
        ints: Keys that must hold integers.
        maker: The key of the buyer-is-maker flag (a bool).

    Raises:
        MalformedRows: when a field is missing or of the wrong type.
    """
    ok = isinstance(row, dict)
    price = _plain_positive(row.get(price_qty[0])) if ok else None
    qty = _plain_positive(row.get(price_qty[1])) if ok else None
    if (
        price is None
        or qty is None
        or any(type(row.get(key)) is not int for key in ints)
        or not isinstance(row.get(maker), bool)
    ):
        msg = f"malformed {endpoint} row {row!r:.200}"
        raise MalformedRows(msg)
    return price, qty


def trade_ticks(symbol: str, rows: Any) -> list[Tick]:
    """``historicalTrades`` rows -> ticks sorted by trade id.

    Raises:
        MalformedRows: not a list, or a row without the documented fields.
    """
    out = []
    for row in _json_list("historicalTrades", rows):
        price, qty = _trade_row(
            "historicalTrades", row, ("price", "qty"), ("id", "time"), "isBuyerMaker"
        )
        t = row["time"]
        maker = row["isBuyerMaker"]
        out.append(Tick(symbol, row["id"], price, qty, t, t, maker, row["price"], row["qty"]))
    out.sort(key=lambda k: k.trade_id)
    return out


def agg_ticks(symbol: str, rows: Any) -> list[tuple[int, Tick]]:
    """``aggTrades`` rows -> ``(aggregate id, Tick(count = l - f + 1))`` sorted by ``a``.

    Raises:
        MalformedRows: not a list, or a row without the documented fields.
    """
    out = []
    for row in _json_list("aggTrades", rows):
        price, qty = _trade_row("aggTrades", row, ("p", "q"), ("f", "l", "T", "a"), "m")
        if row["l"] < row["f"]:
            msg = f"malformed aggTrades row {row!r:.200}"
            raise MalformedRows(msg)
        t = row["T"]
        count = row["l"] - row["f"] + 1
        tick = Tick(symbol, row["l"], price, qty, t, t, row["m"], row["p"], row["q"], count)
        out.append((row["a"], tick))
    out.sort(key=lambda k: k[0])
    return out
