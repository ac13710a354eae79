"""Independent reference computations for tests: bars by pandas resample.

Nothing here imports pairflow's operators: the oracle reads recordings with pandas
and builds bars with ``DataFrame.resample``, so a bug in ``operators/bars.py`` cannot
hide in both.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

TF_RULES = {"1s": "1s", "1m": "1min", "5m": "5min"}
BAR_KEY = ["symbol", "tf", "open_time"]
EXACT_COLUMNS = ["open", "high", "low", "close", "trades", "first_trade_id", "last_trade_id"]
APPROX_COLUMNS = ["volume", "quote_volume", "vwap", "taker_buy_volume"]


def trades_from_lines(lines: Iterable[str | bytes]) -> pd.DataFrame:
    """Valid trade frames as a DataFrame (columns s, t, p, q, T, m); bad lines skipped."""
    rows = []
    for line in lines:
        try:
            d = json.loads(line)["data"]
            rows.append((d["s"], int(d["t"]), float(d["p"]), float(d["q"]), int(d["T"]), d["m"]))
        except (ValueError, KeyError, TypeError):
            continue
    return pd.DataFrame(rows, columns=["s", "t", "p", "q", "T", "m"])


def redis_entries(lines: Iterable[str | bytes]) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """The ``ticks:{symbol}`` entries the Redis tee writes for these trade frames.

    Returns:
        ``{symbol: [(id "T-t", {"p", "q", "m"}), ...]}`` in frame order, as ``XRANGE``
        returns them with ``decode_responses=True``.
    """
    entries: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for line in lines:
        d = json.loads(line)["data"]
        fields = {"p": d["p"], "q": d["q"], "m": "true" if d["m"] else "false"}
        entries.setdefault(d["s"], []).append((f"{d['T']}-{d['t']}", fields))
    return entries


def trades_from_file(path: Path) -> pd.DataFrame:
    """All trades of an NDJSON(.gz) recording."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        return trades_from_lines(fh)


def resample_bars(trades: pd.DataFrame) -> pd.DataFrame:
    """OHLCV bars of every symbol and timeframe with pandas ``resample``.

    Open/close are the first/last trade by trade id; only intervals with a trade.
    """
    df = trades.sort_values(["s", "t"]).copy()
    df["time"] = pd.to_datetime(df["T"], unit="ms", utc=True)
    df["quote"] = df["p"] * df["q"]
    df["taker_buy"] = np.where(df["m"], 0.0, df["q"])
    out = []
    for tf, rule in TF_RULES.items():
        for sym, g in df.groupby("s"):
            r = g.set_index("time").resample(rule, origin="epoch", label="left", closed="left")
            bars = pd.DataFrame(
                {
                    "open": r["p"].first(),
                    "high": r["p"].max(),
                    "low": r["p"].min(),
                    "close": r["p"].last(),
                    "volume": r["q"].sum(),
                    "quote_volume": r["quote"].sum(),
                    "trades": r["p"].count(),
                    "taker_buy_volume": r["taker_buy"].sum(),
                    "first_trade_id": r["t"].min(),
                    "last_trade_id": r["t"].max(),
                }
            )
            bars = bars[bars["trades"] > 0].reset_index(names="open_time")
            bars["vwap"] = bars["quote_volume"] / bars["volume"]
            bars["symbol"] = sym
            bars["tf"] = tf
            out.append(bars)
    result = pd.concat(out, ignore_index=True)
    return result.sort_values(BAR_KEY).reset_index(drop=True)


def read_table(db: Path, table: str, order: str) -> pd.DataFrame:
    """A whole table from a DuckDB file (read-only), ordered."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY {order}").df()
    finally:
        con.close()


def compare_bars(got: pd.DataFrame, want: pd.DataFrame, rel: float = 1e-9) -> dict[str, int]:
    """Assert two bar tables are equal (exact prices/counts/ids, ``rel`` for volumes).

    Returns:
        Rows compared per timeframe.
    """
    got = got.sort_values(BAR_KEY).reset_index(drop=True)
    want = want.sort_values(BAR_KEY).reset_index(drop=True)
    got_keys = list(zip(got["symbol"], got["tf"], got["open_time"], strict=True))
    want_keys = list(zip(want["symbol"], want["tf"], want["open_time"], strict=True))
    missing = sorted(set(want_keys) - set(got_keys))[:5]
    extra = sorted(set(got_keys) - set(want_keys))[:5]
    assert not missing and not extra, f"missing bars {missing}, unexpected bars {extra}"
    for col in EXACT_COLUMNS:
        diff = got[col].to_numpy() != want[col].to_numpy()
        assert not diff.any(), f"{col} differs in {int(diff.sum())} bars, e.g. {got[diff].head(3)}"
    for col in APPROX_COLUMNS:
        g = got[col].to_numpy(dtype=float)
        w = want[col].to_numpy(dtype=float)
        denom = np.where(w == 0.0, 1.0, np.abs(w))
        worst = float(np.max(np.abs(g - w) / denom)) if len(w) else 0.0
        assert worst <= rel, f"{col}: worst relative difference {worst:.3e} > {rel}"
    return got.groupby("tf").size().to_dict()


def one_second_closes(path: Path, *, ffill: bool = True) -> pd.DataFrame:
    """Last trade price per (symbol, 1 s interval), one column per symbol.

    Indexed by interval start (epoch ms) on a regular 1 s grid: from the first interval
    where every symbol has traded (``ffill=True``, forward-filled) or from the first
    trade of any symbol (``ffill=False``, NaN where a symbol did not trade).
    """
    trades = trades_from_file(path)
    trades["open_time"] = trades["T"] // 1000 * 1000
    last = trades.sort_values(["s", "t"]).groupby(["s", "open_time"])["p"].last().unstack(0)
    last.columns.name = None
    if not ffill:
        return last.reindex(range(int(last.index.min()), int(last.index.max()) + 1000, 1000))
    start = max(last[c].first_valid_index() for c in last.columns)
    return last.reindex(range(int(start), int(last.index.max()) + 1000, 1000)).ffill()
