"""Binance public-data dumps through ``replay:``: every layout, ms and µs, vs the oracle.

The dumps are written from the shipped recording in Binance's exact public layouts
(spot without header, futures with header; ``.csv`` and ``.zip``), replayed through
the real flow, and the ``bars`` table is compared with the pandas oracle.
"""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from pairflow.errors import ConfigError
from pairflow.testing.oracle import compare_bars, read_table, resample_bars, trades_from_file
from sources.history.dumps import inspect_file
from sources.replay import ReplaySource
from tests.flowutil import run_flow, settings_for

DAY = "2024-08-08"
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
FUT_TRADES = "id,price,qty,quote_qty,time,is_buyer_maker"
FUT_AGG = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
FUT_KLINES = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


@pytest.fixture(scope="module")
def trades(recording) -> pd.DataFrame:
    """The recording's trades with the original p/q strings, in id order per symbol."""
    import gzip
    import json

    rows = []
    with gzip.open(recording, "rt") as fh:
        for line in fh:
            d = json.loads(line)["data"]
            rows.append((d["s"], d["t"], d["p"], d["q"], d["T"], d["m"]))
    df = pd.DataFrame(rows, columns=["s", "t", "p", "q", "T", "m"])
    return df.sort_values(["s", "t"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def want(recording) -> pd.DataFrame:
    return resample_bars(trades_from_file(recording))


def _time(t_ms: int, unit: str, salt: int = 0) -> int:
    """A time in the file's unit (µs get sub-ms digits, which the replay floors away)."""
    return t_ms if unit == "ms" else t_ms * 1000 + salt % 1000


def _flag(m: bool, spot: bool) -> str:
    return ("True" if m else "False") if spot else ("true" if m else "false")


def _write(path: Path, lines: list[str]) -> Path:
    """Write ``path`` as .csv, or as .zip holding the same-named .csv (Binance's way)."""
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text)
    return path


def trades_lines(g: pd.DataFrame, spot: bool, unit: str) -> list[str]:
    out = [] if spot else [FUT_TRADES]
    for t, p, q, tt, m in zip(g.t, g.p, g.q, g["T"], g.m, strict=True):
        quote = format(Decimal(p) * Decimal(q), "f")
        row = f"{t},{p},{q},{quote},{_time(tt, unit, t)},{_flag(m, spot)}"
        out.append(row + (",True" if spot else ""))
    return out


def agg_rows(g: pd.DataFrame) -> list[tuple[int, str, str, int, int, int, bool]]:
    """Binance's aggregation: consecutive trades at one price, side and ms -> one row."""
    rows: list[list] = []
    for t, p, q, tt, m in zip(g.t, g.p, g.q, g["T"], g.m, strict=True):
        last = rows[-1] if rows else None
        if last and last[1] == p and last[5] == tt and last[6] == m and last[4] == t - 1:
            last[2] += Decimal(q)
            last[4] = t
        else:
            rows.append([len(rows) + 1000, p, Decimal(q), t, t, tt, m])
    return [(a, p, format(q, "f"), f, lid, tt, m) for a, p, q, f, lid, tt, m in rows]


def agg_lines(g: pd.DataFrame, spot: bool, unit: str) -> list[str]:
    out = [] if spot else [FUT_AGG]
    for a, p, q, f, lid, tt, m in agg_rows(g):
        row = f"{a},{p},{q},{f},{lid},{_time(tt, unit, a)},{_flag(m, spot)}"
        out.append(row + (",True" if spot else ""))
    return out


def kline_lines(bars: pd.DataFrame, tf: str, spot: bool, unit: str) -> list[str]:
    """Klines of one symbol and tf from oracle bars, with 0-trade klines in the holes."""
    step = TF_MS[tf]
    by_open = {
        int(ts.value // 1_000_000): row
        for ts, row in zip(bars.open_time, bars.itertuples(), strict=True)
    }
    first, last = min(by_open), max(by_open)
    out = [] if spot else [FUT_KLINES]
    prev_close = None
    for o in range(first, last + step, step):
        b = by_open.get(o)
        ot = _time(o, unit)
        ct = ot + step * (1 if unit == "ms" else 1000) - 1
        if b is None:  # Binance: OHLC = the previous close, zero volumes and trades
            c = f"{prev_close:.8f}"
            out.append(f"{ot},{c},{c},{c},{c},0.00000000,{ct},0.00000000,0,0.00000000,0,0")
            continue
        prev_close = b.close
        tbq = b.taker_buy_volume * b.vwap
        out.append(
            f"{ot},{b.open:.8f},{b.high:.8f},{b.low:.8f},{b.close:.8f},{b.volume:.8f},{ct},"
            f"{b.quote_volume:.8f},{b.trades},{b.taker_buy_volume:.8f},{tbq:.8f},0"
        )
    return out


def write_dumps(tmp: Path, trades: pd.DataFrame, want: pd.DataFrame, layout: str, unit: str):
    """The recording as dumps of one layout: BTCUSDT files as .zip, ETHUSDT as .csv."""
    market, kind = layout.split("_")
    spot = market == "spot"
    paths = []
    for sym, ext in (("BTCUSDT", "zip"), ("ETHUSDT", "csv")):
        g = trades[trades.s == sym]
        if kind == "trades":
            paths.append(_write(tmp / f"{sym}-trades-{DAY}.{ext}", trades_lines(g, spot, unit)))
        elif kind == "aggTrades":
            paths.append(_write(tmp / f"{sym}-aggTrades-{DAY}.{ext}", agg_lines(g, spot, unit)))
        else:
            for tf in TF_MS:
                bars = want[(want.symbol == sym) & (want.tf == tf)]
                lines = kline_lines(bars, tf, spot, unit)
                paths.append(_write(tmp / f"{sym}-{tf}-{DAY}.{ext}", lines))
    return paths


def replay(db: Path, paths, **env: str) -> None:
    source = "replay:" + ",".join(str(p) for p in paths)
    run_flow(settings_for(db, source=source, replay_speed="max", windows="", **env))


LAYOUTS = [
    "spot_trades",
    "futures_trades",
    "spot_aggTrades",
    "futures_aggTrades",
    "spot_klines",
    "futures_klines",
]


@pytest.mark.parametrize("unit", ["ms", "us"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_dump_layout_replays_to_the_oracle_bars(tmp_path, trades, want, layout, unit):
    paths = write_dumps(tmp_path, trades, want, layout, unit)
    for p in paths:
        spec = inspect_file(p)
        assert spec.unit == unit and spec.header == layout.startswith("futures"), p
    db = tmp_path / "bars.db"
    replay(db, paths)
    got = read_table(db, "bars", "symbol, tf, open_time")
    assert read_table(db, "rejects", "received_at").empty
    expected = want
    if layout.endswith("klines"):  # bars from klines carry no trade ids
        assert got.first_trade_id.isna().all() and got.last_trade_id.isna().all()
        got = got.assign(first_trade_id=-1, last_trade_id=-1)
        expected = want.assign(first_trade_id=-1, last_trade_id=-1)
    counts = compare_bars(got, expected, rel=1e-9)
    assert sum(counts.values()) == len(want)
    print(f"{layout} {unit}: {sum(counts.values())} bars compared {counts}")


def test_aggtrades_dump_really_aggregates(trades):
    g = trades[trades.s == "BTCUSDT"]
    rows = agg_rows(g)
    assert len(rows) < len(g)  # else the test would not test aggregation
    assert sum(lid - f + 1 for _, _, _, f, lid, _, _ in rows) == len(g)


def test_merged_trades_dumps_equal_the_ndjson_replay(tmp_path, trades, want, recording):
    paths = write_dumps(tmp_path, trades, want, "spot_trades", "ms")
    db_csv, db_nd = tmp_path / "csv.db", tmp_path / "nd.db"
    replay(db_csv, paths)
    replay(db_nd, [recording])
    a = read_table(db_csv, "bars", "symbol, tf, open_time")
    b = read_table(db_nd, "bars", "symbol, tf, open_time")
    pd.testing.assert_frame_equal(a, b)


def test_merged_order_is_by_time_then_symbol_then_id(tmp_path, trades, want):
    paths = write_dumps(tmp_path, trades, want, "spot_trades", "ms")
    items = []
    src = ReplaySource(paths, symbols=frozenset({"BTCUSDT", "ETHUSDT"}), progress_every_s=None)
    part = src.build_part("s", src.list_parts()[0], None)
    try:
        while True:
            items += part.next_batch()
    except StopIteration:
        pass
    assert len(items) == len(trades)
    keys = [(t.trade_time_ms, t.symbol, t.trade_id) for t in items]
    assert keys == sorted(keys)


def test_malformed_rows_are_rejects_with_reasons_and_good_rows_are_bars(tmp_path, trades):
    g = trades[trades.s == "BTCUSDT"].head(400)
    good = trades_lines(g, True, "ms")
    bad = {
        "1,2,3": "csv_columns",
        "x1,61000.1,0.1,6100.01,1723161255342,True,True": "csv_bad_id",
        "2,-61000.1,0.1,6100.01,1723161255342,True,True": "csv_price_not_positive",
        "3,abc,0.1,6100.01,1723161255342,True,True": "csv_price_not_numeric",
        "4,nan,0.1,6100.01,1723161255342,True,True": "csv_price_not_finite",
        "5,61000.1,0,0,1723161255342,True,True": "csv_qty_not_positive",
        "6,61000.1,1e-3,61,1723161255342,True,True": "csv_qty_not_numeric",
        "7,61000.1,0.1,6100.01,17231612553,True,True": "csv_bad_time",
        "8,61000.1,0.1,6100.01,1723161255342,maybe,True": "csv_bad_flag",
    }
    lines = good[:100] + list(bad) + good[100:]
    path = _write(tmp_path / f"BTCUSDT-trades-{DAY}.csv", lines)
    db = tmp_path / "bad.db"
    replay(db, [path])
    rejects = read_table(db, "rejects", "received_at")
    got = dict(zip(rejects.raw, rejects.reason, strict=True))
    assert got == bad
    assert set(rejects.source) == {"replay"}
    bars = read_table(db, "bars", "symbol, tf, open_time")
    one_s = bars[bars.tf == "1s"]
    assert int(one_s.trades.sum()) == len(g)
    assert int(one_s.first_trade_id.min()) == int(g.t.min())
    assert int(one_s.last_trade_id.max()) == int(g.t.max())


def test_malformed_kline_and_agg_rows_are_rejects(tmp_path, trades, want):
    bars = want[(want.symbol == "ETHUSDT") & (want.tf == "1m")]
    good = kline_lines(bars, "1m", True, "ms")
    o = int(bars.open_time.iloc[-1].value // 1_000_000) + 600_000
    bad = {
        f"{o + 1},1,1,1,1,1,{o + 60_000},1,1,1,1,0": "csv_bad_time",
        f"{o},1,0.5,1,1,1,{o + 59_999},1,1,1,1,0": "csv_bad_ohlc",
        f"{o},1,1,1,1,-1,{o + 59_999},1,1,1,1,0": "csv_volume_not_positive",
        f"{o},1,1,1,1,1,{o + 59_999},1,x,1,1,0": "csv_bad_count",
    }
    kpath = _write(tmp_path / f"ETHUSDT-1m-{DAY}.csv", good + list(bad))
    g = trades[trades.s == "BTCUSDT"].head(300)
    agood = agg_lines(g, True, "ms")
    abad = {"9,61000.1,0.1,20,10,1723161255342,True,True": "csv_bad_trade_range"}
    apath = _write(tmp_path / f"BTCUSDT-aggTrades-{DAY}.csv", agood[:5] + list(abad) + agood[5:])
    db = tmp_path / "bad.db"
    replay(db, [kpath, apath])
    rejects = read_table(db, "rejects", "received_at")
    assert dict(zip(rejects.raw, rejects.reason, strict=True)) == {**bad, **abad}
    got = read_table(db, "bars", "symbol, tf, open_time")
    assert len(got[(got.symbol == "ETHUSDT") & (got.tf == "1m")]) == len(bars)
    assert int(got[(got.symbol == "BTCUSDT") & (got.tf == "1s")].trades.sum()) == len(g)


@pytest.mark.parametrize(
    ("name", "lines", "says"),
    [
        ("ticks.parquet", ["x"], "unknown file type"),
        ("BTCUSDT-trades-2024-08-08.zip.CHECKSUM", ["abc"], "unknown file type"),
        ("trades.csv", ["1,2"], "the name is not"),
        ("BTCUSDT-1h-2024-08-08.csv", ["1"], "kline interval 1h"),
        ("BTCUSDT-trades-2024-08-08.csv", ["1,2,3,4,5,6,7,8"], "the aggTrades layout"),
        ("BTCUSDT-trades-2024-08-08.csv", ["a,b,c,d,e,f"], "is not a trades header"),
        ("BTCUSDT-1m-2024-08-08.csv", [f"{10**12 * 1723},1,1,1,1,1,1,1,1,1,1,0"], "does not span"),
        ("BTCUSDT-aggTrades-2024-08.csv", ["1,2,3,4,5,123,True,True"], "neither epoch ms nor"),
        ("BTCUSD_PERP-aggTrades-2024-08.csv", ["1"], "COIN-M aggTrades"),
        ("BTCUSDT-trades-2024-08-08.ndjson.gz", ["{}"], "not gzip"),
    ],
)
def test_unknown_files_fail_at_start_up_naming_file_and_formats(tmp_path, name, lines, says):
    path = tmp_path / name
    path.write_text("".join(x + "\n" for x in lines))
    with pytest.raises(ConfigError) as err:
        settings_for(tmp_path / "x.db", source=f"replay:{path}", windows="")
        replay(tmp_path / "x.db", [path])
    msg = str(err.value)
    assert says in msg and str(path) in msg and "accepted formats" in msg, msg


def test_a_zip_with_other_than_one_csv_is_refused(tmp_path):
    path = tmp_path / f"BTCUSDT-trades-{DAY}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.csv", "1\n")
        zf.writestr("b.csv", "1\n")
    with pytest.raises(ConfigError, match="exactly one .csv"):
        inspect_file(path)


def test_dump_of_a_symbol_not_configured_and_loop_are_refused(tmp_path, trades):
    path = _write(tmp_path / f"BNBUSDT-trades-{DAY}.csv", trades_lines(trades.head(3), True, "ms"))
    with pytest.raises(ConfigError, match="not in PAIRFLOW_SYMBOLS"):
        replay(tmp_path / "x.db", [path])
    ok = _write(tmp_path / f"BTCUSDT-trades-{DAY}.csv", trades_lines(trades.head(3), True, "ms"))
    with pytest.raises(ConfigError, match="PAIRFLOW_REPLAY_LOOP=1"):
        replay(tmp_path / "x.db", [ok], replay_loop="1")


def test_coin_m_trades_use_base_qty(tmp_path):
    path = tmp_path / "BTCUSD_PERP-trades-2024-08-08.csv"
    path.write_text(
        "id,price,qty,base_qty,time,is_buyer_maker\n1,60000.0,3,0.005,1723161255342,true\n"
    )
    spec = inspect_file(path)
    assert spec.qty_col == 3 and spec.header
    src = ReplaySource([path], symbols=frozenset({"BTCUSD_PERP"}), progress_every_s=None)
    tick = src.build_part("s", "p", None).next_batch()[0]
    assert tick.qty == 0.005 and tick.q == "0.005" and tick.buyer_is_maker
