"""Generate a realistic pairflow DuckDB file for dashboard tests and benchmarks.

The file has the exact tables of :mod:`sinks.schema` and looks like what the flow
writes: 1s bars of two cointegrated legs (a few quiet seconds on the second leg),
1m and 5m bars aggregated from them, rolling-OLS analytics per timeframe, z-score
threshold signals, rejects, pipeline stats and gaps.

The statistics here are a fixture, not a reference: alpha/beta/z/corr come from a
vectorised rolling OLS (close to the flow's definitions), while the ADF/EG p-values
and half-life are smooth synthetic series in the right ranges.

Run ``python -m pairflow.testing.dbgen PATH --days 7`` to make a file by hand.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pairflow.timeutil import TF_MS, UTC, now_utc
from sinks.schema import TABLE_COLUMNS, TABLES, create_all

START_PRICES = {"BTCUSDT": 61_800.0, "ETHUSDT": 2_650.0, "SOLUSDT": 150.0, "BNBUSDT": 520.0}


@dataclass(frozen=True)
class GenSpec:
    """What to generate.

    Attributes:
        seconds: Length of the 1s history.
        end: Exclusive end of the history (default: now, floored to the second).
        symbols: Legs; the first is Y of every pair, the others are X.
        windows: Analytics window per timeframe (as ``PAIRFLOW_WINDOWS``).
        seed: Random seed.
        entry_z: Signal entry threshold.
        exit_z: Signal exit threshold.
        quiet_fraction: Share of seconds in which the X legs have no trade.
        stats_minutes: How much pipeline-stats history (every 5 s) to write.
    """

    seconds: int = 3_600
    end: datetime | None = None
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    windows: tuple[tuple[str, int], ...] = (("1s", 300), ("1m", 120), ("5m", 60))
    seed: int = 7
    entry_z: float = 2.0
    exit_z: float = 0.5
    quiet_fraction: float = 0.03
    stats_minutes: int = 60


def _log_prices(spec: GenSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cointegrated log-price paths, one value per second."""
    n = spec.seconds
    base = np.cumsum(rng.normal(0.0, 1.2e-4, n))
    paths: dict[str, np.ndarray] = {}
    for i, sym in enumerate(spec.symbols):
        p0 = math.log(START_PRICES.get(sym, 100.0 * (i + 1)))
        if i == 0:
            paths[sym] = p0 + base
            continue
        # Ornstein-Uhlenbeck deviation keeps the pair cointegrated.
        eps = rng.normal(0.0, 6e-5, n)
        dev = np.empty(n)
        acc = 0.0
        for k in range(n):  # cheap enough: ~0.3 s for 7 days
            acc = 0.995 * acc + eps[k]
            dev[k] = acc
        paths[sym] = p0 + base / (1.15 + 0.1 * i) + dev
    return paths


def _bars_1s(spec: GenSpec, rng: np.random.Generator, end_s: int) -> pd.DataFrame:
    n = spec.seconds
    start_s = end_s - n
    logs = _log_prices(spec, rng)
    frames = []
    trade_id0 = 3_700_000_000
    for i, sym in enumerate(spec.symbols):
        close = np.exp(logs[sym])
        open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, 2e-5, n))
        wiggle = np.abs(rng.normal(0, 4e-5, n)) * close
        high = np.maximum(open_, close) + wiggle
        low = np.minimum(open_, close) - wiggle * rng.uniform(0.2, 1.0, n)
        trades = rng.poisson(12 if i == 0 else 8, n) + 1
        volume = rng.gamma(2.0, 0.05 if i == 0 else 0.8, n) * trades / 10
        vwap = np.clip((open_ + high + low + close) / 4, low, high)
        first_id = trade_id0 + np.concatenate(([0], np.cumsum(trades)[:-1]))
        keep = np.ones(n, dtype=bool)
        if i > 0:
            keep = rng.random(n) >= spec.quiet_fraction
            keep[0] = keep[-1] = True
        frame = pd.DataFrame(
            {
                "symbol": sym,
                "tf": "1s",
                "open_time": pd.to_datetime((start_s + np.arange(n)) * 1000, unit="ms", utc=True),
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
                "quote_volume": volume * vwap,
                "vwap": vwap,
                "trades": trades.astype(np.int64),
                "taker_buy_volume": volume * rng.uniform(0.3, 0.7, n),
                "first_trade_id": first_id.astype(np.int64),
                "last_trade_id": (first_id + trades - 1).astype(np.int64),
            }
        )
        frames.append(frame[keep])
    return pd.concat(frames, ignore_index=True)


def _aggregate_sql(tf: str) -> str:
    seconds = TF_MS[tf] // 1000
    return f"""
        SELECT symbol, '{tf}' AS tf,
               to_timestamp((epoch(open_time)::BIGINT // {seconds}) * {seconds}) AS open_time,
               arg_min(open, open_time) AS open, max(high) AS high, min(low) AS low,
               arg_max(close, open_time) AS close, sum(volume) AS volume,
               sum(quote_volume) AS quote_volume, sum(quote_volume) / sum(volume) AS vwap,
               sum(trades)::BIGINT AS trades, sum(taker_buy_volume) AS taker_buy_volume,
               min(first_trade_id) AS first_trade_id, max(last_trade_id) AS last_trade_id
        FROM bars
        WHERE tf = '1s' AND epoch(open_time) < (
            SELECT (max(epoch(open_time))::BIGINT + 1) // {seconds} * {seconds}
            FROM bars WHERE tf = '1s'
        )
        GROUP BY ALL
        ORDER BY symbol, open_time
    """


def _rolling_sum(a: np.ndarray, w: int) -> np.ndarray:
    c = np.concatenate(([0.0], np.cumsum(a)))
    return c[w:] - c[:-w]


def _analytics(
    grid: pd.DataFrame, pair: str, tf: str, window: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Rolling analytics for one pair/timeframe on a forward-filled close grid."""
    n = len(grid)
    if n < window:
        return pd.DataFrame(columns=list(TABLE_COLUMNS["analytics"]))
    y = np.log(grid["y_close"].to_numpy())
    x = np.log(grid["x_close"].to_numpy())
    w = window
    sx, sy = _rolling_sum(x, w), _rolling_sum(y, w)
    sxx, sxy, syy = _rolling_sum(x * x, w), _rolling_sum(x * y, w), _rolling_sum(y * y, w)
    cxx = sxx - sx * sx / w
    cxy = sxy - sx * sy / w
    cyy = syy - sy * sy / w
    beta = cxy / np.where(cxx > 0, cxx, np.nan)
    alpha = (sy - beta * sx) / w
    ye, xe = y[w - 1 :], x[w - 1 :]
    spread = ye - alpha - beta * xe
    ssr = np.maximum(cyy - beta * cxy, 1e-30)
    spread_std = np.sqrt(ssr / (w - 1))
    zscore = spread / spread_std
    dy, dx = np.diff(y, prepend=y[0]), np.diff(x, prepend=x[0])
    m = w - 1
    rx, ry = _rolling_sum(dx, m)[1:], _rolling_sum(dy, m)[1:]
    rxx, ryy, rxy = (
        _rolling_sum(dx * dx, m)[1:],
        _rolling_sum(dy * dy, m)[1:],
        _rolling_sum(dx * dy, m)[1:],
    )
    vx, vy = rxx - rx * rx / m, ryy - ry * ry / m
    corr = (rxy - rx * ry / m) / np.sqrt(np.maximum(vx * vy, 1e-300))
    k = np.arange(len(spread))
    eg = np.clip(
        0.04 + 0.05 * np.sin(k / 1800.0) + 0.04 * np.sin(k / 311.0) + rng.normal(0, 0.01, len(k)),
        1e-4,
        0.99,
    )
    adf = np.clip(eg * 0.6 + rng.normal(0, 0.005, len(k)), 1e-4, 0.99)
    half_life = 20.0 + 15.0 * np.sin(k / 900.0) + rng.normal(0, 2.0, len(k))
    half_life = np.where(half_life > 1.0, half_life, np.nan)
    out = pd.DataFrame(
        {
            "pair": pair,
            "tf": tf,
            "ts": grid["ts"].to_numpy()[w - 1 :],
            "window": np.int32(w),
            "y_close": grid["y_close"].to_numpy()[w - 1 :],
            "x_close": grid["x_close"].to_numpy()[w - 1 :],
            "alpha": alpha,
            "beta": beta,
            "spread": spread,
            "zscore": zscore,
            "corr": np.clip(corr, -1.0, 1.0),
            "adf_pvalue": adf,
            "eg_pvalue": eg,
            "half_life": half_life,
            "y_filled": grid["y_filled"].to_numpy()[w - 1 :],
            "x_filled": grid["x_filled"].to_numpy()[w - 1 :],
            "spread_std": spread_std,
        }
    )
    return out


def _signals(frame: pd.DataFrame, entry: float, exit_: float) -> pd.DataFrame:
    """Threshold crossings of ``zscore`` (a small state machine, as the flow does)."""
    rows: list[tuple[object, ...]] = []
    z = frame["zscore"].to_numpy()
    ts = frame["ts"].to_numpy()
    pair, tf = (frame["pair"].iloc[0], frame["tf"].iloc[0]) if len(frame) else ("", "")
    position = 0
    for i in range(len(z)):
        zi = z[i]
        if not np.isfinite(zi):
            continue
        if position == 0 and zi > entry:
            position = -1
            rows.append(("default", pair, tf, ts[i], "short_spread", zi))
        elif position == 0 and zi < -entry:
            position = 1
            rows.append(("default", pair, tf, ts[i], "long_spread", zi))
        elif position != 0 and abs(zi) < exit_:
            position = 0
            rows.append(("default", pair, tf, ts[i], "exit", zi))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS["signals"]))


def _grid(con: duckdb.DuckDBPyConnection, y: str, x: str, tf: str) -> pd.DataFrame:
    """Forward-filled close grid of two legs from the first bar where both traded."""
    df = con.execute(
        """
        WITH yb AS (SELECT open_time, close FROM bars WHERE symbol = ? AND tf = ?),
             xb AS (SELECT open_time, close FROM bars WHERE symbol = ? AND tf = ?)
        SELECT coalesce(yb.open_time, xb.open_time) AS ts, yb.close AS yc, xb.close AS xc
        FROM yb FULL OUTER JOIN xb ON yb.open_time = xb.open_time
        ORDER BY ts
        """,
        [y, tf, x, tf],
    ).df()
    step = pd.Timedelta(milliseconds=TF_MS[tf])
    full = pd.date_range(df["ts"].min(), df["ts"].max(), freq=step)
    df = df.set_index("ts").reindex(full)
    df.index.name = "ts"
    df["y_filled"] = df["yc"].isna()
    df["x_filled"] = df["xc"].isna()
    df["y_close"] = df["yc"].ffill()
    df["x_close"] = df["xc"].ffill()
    df = df.dropna(subset=["y_close", "x_close"]).reset_index()
    return df[["ts", "y_close", "x_close", "y_filled", "x_filled"]]


def _health(spec: GenSpec, end_s: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    n = max(1, spec.stats_minutes * 12)
    ts = pd.to_datetime((end_s - 5 * np.arange(n)[::-1]) * 1000, unit="ms", utc=True)
    rate = np.clip(18.0 + 6.0 * np.sin(np.arange(n) / 20.0) + rng.normal(0, 2, n), 0, None)
    frames = []
    for comp, metric, values in (
        ("source", "ticks_per_s", rate),
        ("source", "ticks_total", np.cumsum(rate * 5)),
        ("source", "reconnects_total", np.floor(np.arange(n) / max(1, n // 3))),
        ("parse", "rejects_total", np.floor(np.arange(n) / 40.0)),
        ("bars", "late_ticks_total", np.floor(np.arange(n) / 90.0)),
        ("duckdb", "rows_written_total", np.cumsum(rate * 2)),
        ("redis", "xadd_total", np.cumsum(rate * 5)),
    ):
        frames.append(
            pd.DataFrame({"ts": ts, "component": comp, "metric": metric, "value": values})
        )
    stats = pd.concat(frames, ignore_index=True)
    reasons = ["not_json", "missing_field:p", "price_not_positive", "late_tick"]
    k = 23
    rejects = pd.DataFrame(
        {
            "received_at": pd.to_datetime(
                (end_s - rng.integers(0, spec.stats_minutes * 60 + 1, k)) * 1000,
                unit="ms",
                utc=True,
            ),
            "source": "replay",
            "reason": [reasons[i % len(reasons)] for i in range(k)],
            "raw": ['{"stream":"btcusdt@trade","data":{"p":"-1"}}'] * k,
        }
    )
    detected = pd.to_datetime([(end_s - 1800) * 1000, (end_s - 600) * 1000], unit="ms", utc=True)
    gaps = pd.DataFrame(
        {
            "symbol": [spec.symbols[0], spec.symbols[-1]],
            "from_trade_id": [3_700_000_100, 3_700_000_900],
            "to_trade_id": [3_700_000_140, 3_700_000_905],
            "detected_at": detected,
            "status": ["filled", "unfilled"],
            "filled": [41, 0],
        }
    )
    return {"pipeline_stats": stats, "rejects": rejects, "gaps": gaps}


def generate_db(path: str | Path, spec: GenSpec | None = None) -> Path:
    """Write a realistic pairflow DuckDB file (replacing any file at ``path``).

    Args:
        path: Where to write it.
        spec: What to generate (default: one hour of two legs ending now).

    Returns:
        The path of the file.
    """
    spec = spec or GenSpec()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    rng = np.random.default_rng(spec.seed)
    end = spec.end or now_utc()
    end_s = int(end.timestamp())
    # Build in memory, then write each table in time order, as a live flow's inserts
    # land (so DuckDB's zone maps behave as they do on a real file).
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        create_all(con)
        bars = _bars_1s(spec, rng, end_s)
        con.register("bars_df", bars)
        con.execute("INSERT INTO bars BY NAME SELECT * FROM bars_df")
        con.unregister("bars_df")
        for tf in ("1m", "5m"):
            con.execute(f"INSERT INTO bars {_aggregate_sql(tf)}")
        y = spec.symbols[0]
        for x in spec.symbols[1:]:
            pair = f"{y}/{x}"
            for tf, window in spec.windows:
                grid = _grid(con, y, x, tf)
                ana = _analytics(grid, pair, tf, window, rng)
                if ana.empty:
                    continue
                con.register("ana_df", ana)
                con.execute("INSERT INTO analytics BY NAME SELECT * FROM ana_df")
                con.unregister("ana_df")
                sig = _signals(ana, spec.entry_z, spec.exit_z)
                if not sig.empty:
                    con.register("sig_df", sig)
                    con.execute("INSERT INTO signals BY NAME SELECT * FROM sig_df")
                    con.unregister("sig_df")
        for table, frame in _health(spec, end_s, rng).items():
            con.register("h_df", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM h_df")
            con.unregister("h_df")
        con.execute(f"ATTACH '{path}' AS out")
        con.execute("USE out")
        create_all(con)
        for table, order in TIME_ORDER.items():
            con.execute(f"INSERT INTO out.{table} SELECT * FROM memory.{table} ORDER BY {order}")
        con.execute("CHECKPOINT out")
    finally:
        con.close()
    return path


TIME_ORDER: dict[str, str] = {
    name: ", ".join(
        f'"{c}"' for c in dict.fromkeys([*filter(None, [t.time_column]), *t.key, *t.names])
    )
    for name, t in TABLES.items()
}
"""Row order per table when copied to the file: time first, as the flow's inserts land."""


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m pairflow.testing.dbgen PATH [--days D | --seconds S]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--days", type=float, default=None)
    ap.add_argument("--seconds", type=int, default=3_600)
    ap.add_argument("--end", default=None, help="ISO end time (UTC); default now")
    args = ap.parse_args(argv)
    seconds = int(args.days * 86_400) if args.days else args.seconds
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC) if args.end else None
    out = generate_db(args.path, GenSpec(seconds=seconds, end=end))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
