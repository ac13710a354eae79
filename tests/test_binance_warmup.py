"""Warm start and recording against the fake exchange, through the whole flow.

The fake's history is the shipped recording repeated (shifted in time and ids) so it
spans > W+1 intervals of every timeframe for ``1s=30,1m=20,5m=20``; it ends "now",
then a few seconds play live with connection drops. Bars before ``t5`` must equal a
pandas resample of the fake's trades (ids NULL), bars from ``t5`` on exact with ids,
analytics rows must exist for every timeframe and equal statsmodels on ``bars``;
``replay:`` of the recording must reproduce the trade bars.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from pairflow.config import load_settings
from pairflow.records import Tick
from pairflow.testing.oracle import compare_bars, read_table, resample_bars
from tests.fakes import binance_settings
from tests.fakes.fake_binance import FakeBinance, Faults, load_frames
from tests.test_analytics_oracle import _expected

RECORDING = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "recordings"
    / "binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)
WINDOWS = {"1s": 30, "1m": 20, "5m": 20}
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
LIVE_S = 6.0


def long_history(now_ms: int) -> list[str]:
    """The recording repeated to > 2 h, shifted so it ends ``LIVE_S`` after now."""
    lines = load_frames(RECORDING)
    data = [orjson.loads(ln) for ln in lines]
    t0 = min(d["data"]["T"] for d in data)
    t1 = max(d["data"]["T"] for d in data)
    span_t = t1 - t0 + 1000
    span_id = {}
    for d in data:
        s = d["data"]["s"]
        lo, hi = span_id.get(s, (d["data"]["t"], d["data"]["t"]))
        span_id[s] = (min(lo, d["data"]["t"]), max(hi, d["data"]["t"]))
    copies = 12
    end = t0 + copies * span_t
    shift = now_ms + int(LIVE_S * 1000) - end
    out = []
    for k in range(copies):
        for d in data:
            body = dict(d["data"])
            s = body["s"]
            body["t"] += k * (span_id[s][1] - span_id[s][0] + 1)
            body["T"] += k * span_t + shift
            body["E"] += k * span_t + shift
            out.append(orjson.dumps({"stream": d["stream"], "data": body}).decode())
    return out


def _trades_df(fake: FakeBinance) -> pd.DataFrame:
    rows = []
    for sym in ("BTCUSDT", "ETHUSDT"):
        for r in fake.happened_rows(sym):
            rows.append(
                (sym, r["id"], float(r["price"]), float(r["qty"]), r["time"], r["isBuyerMaker"])
            )
    return pd.DataFrame(rows, columns=["s", "t", "p", "q", "T", "m"])


def _grid(bars: pd.DataFrame, tf: str) -> pd.DataFrame:
    one = bars[bars.tf == tf]
    closes = one.pivot(index="open_time", columns="symbol", values="close")
    start = max(one[one.symbol == s].open_time.min() for s in ("BTCUSDT", "ETHUSDT"))
    index = pd.date_range(start, one.open_time.max(), freq=pd.Timedelta(milliseconds=TF_MS[tf]))
    raw = closes.reindex(closes.index.union(index)).sort_index()
    filled = raw.ffill().loc[index]
    return pd.DataFrame({"y": filled["BTCUSDT"], "x": filled["ETHUSDT"]})


@pytest.fixture(scope="module")
def warm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One live run with warm-up, drops and a recording; tables and timings."""
    import bytewax.operators as op  # noqa: F401 - bytewax must import before the flow
    from bytewax.testing import run_main

    import dataflow
    from sources.binance import BinanceSource

    tmp = tmp_path_factory.mktemp("warm")
    db = tmp / "warm.db"
    record = tmp / "rec.ndjson.gz"
    now = int(time.time() * 1000)
    frames = long_history(now)
    faults = Faults(drop_every=120, max_drops=2)
    with FakeBinance(
        frames, speed=1.0, start="now", faults=faults, time_mode="recorded", history_until_ms=now
    ) as fake:
        settings = binance_settings(
            fake.ws_url,
            fake.rest_url,
            windows=WINDOWS,
            warmup="auto",
            record=str(record),
            db_path=db,
            redis_url=None,
        )
        stop = threading.Event()
        source = BinanceSource(settings, stop_event=stop)
        flow = dataflow.build(settings, source=source, with_redis=False)

        def watch() -> None:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not fake.done.is_set():
                time.sleep(0.05)
            deadline = time.monotonic() + 20
            want = {s: fake.happened_ids(s)[-1] for s in ("BTCUSDT", "ETHUSDT")}
            while time.monotonic() < deadline:
                snap = source._runners[0].seq.last_ids()  # noqa: SLF001
                if all(snap.get(s, 0) >= v for s, v in want.items()):
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
        started = time.monotonic()
        run_main(flow, epoch_interval=timedelta(milliseconds=100))
        elapsed = time.monotonic() - started
        trades = _trades_df(fake)
        counters = dict(fake.counters)
        report = source._runners[0].warmup_report  # noqa: SLF001
    t5 = now - now % 300_000
    return {
        "db": db,
        "record": record,
        "t5": t5,
        "trades": trades,
        "counters": counters,
        "report": report,
        "elapsed": elapsed,
        "bars": read_table(db, "bars", "symbol, tf, open_time"),
        "analytics": read_table(db, "analytics", "pair, tf, ts"),
        "stats": read_table(db, "pipeline_stats", "ts"),
    }


def test_warm_start_bars_equal_the_oracle(warm_run: dict[str, Any]) -> None:
    bars, trades, t5 = warm_run["bars"], warm_run["trades"], warm_run["t5"]
    t5_ts = pd.Timestamp(t5, unit="ms", tz="UTC")
    want_all = resample_bars(trades)
    got_k = bars[bars.open_time < t5_ts]
    assert got_k["first_trade_id"].isna().all() and got_k["last_trade_id"].isna().all()
    parts = []
    for tf, w in WINDOWS.items():
        lo = pd.Timestamp(t5 - (w + 1) * TF_MS[tf], unit="ms", tz="UTC")
        parts.append(
            want_all[
                (want_all.tf == tf) & (want_all.open_time >= lo) & (want_all.open_time < t5_ts)
            ]
        )
    want_k = pd.concat(parts)
    ids = ["first_trade_id", "last_trade_id"]
    got_k2 = got_k.drop(columns=ids).assign(first_trade_id=0, last_trade_id=0)
    n_k = compare_bars(got_k2, want_k.drop(columns=ids).assign(first_trade_id=0, last_trade_id=0))
    got_t = bars[bars.open_time >= t5_ts]
    want_t = resample_bars(trades[trades["T"] >= t5])
    n_t = compare_bars(got_t, want_t)
    assert set(n_k) == {"1s", "1m", "5m"} and n_t.get("1s", 0) > 60
    rep = warm_run["report"]
    assert rep.done and rep.missing_intervals == 0 and rep.missing_symbols == 0
    print(f"\nwarm start: kline bars {n_k}, trade bars {n_t}; REST {rep.requests} requests, "
          f"weight {rep.weight}; fake counters {warm_run['counters']}")  # fmt: skip


def test_warm_start_analytics_for_every_timeframe_equal_statsmodels(
    warm_run: dict[str, Any],
) -> None:
    bars, analytics, t5 = warm_run["bars"], warm_run["analytics"], warm_run["t5"]
    t5_ts = pd.Timestamp(t5, unit="ms", tz="UTC")
    for tf, w in WINDOWS.items():
        rows = analytics[analytics.tf == tf].set_index("ts")
        assert len(rows), f"no analytics for {tf}"
        assert rows.index.min() < t5_ts, f"{tf}: the first row comes from the warm-up history"
        grid = _grid(bars, tf)
        for ts in list(rows.index[:: max(1, len(rows) // 8)]) + [rows.index[-1]]:
            end = grid.index.get_loc(ts)
            want = _expected(grid.iloc[end - w + 1 : end + 1])
            got = rows.loc[ts]
            for col in ("alpha", "beta", "zscore", "corr", "adf_pvalue", "eg_pvalue"):
                value = want[col]
                diff = abs(float(got[col]) - float(value))
                tol = 1e-6 if col.endswith("pvalue") else 1e-6 * max(abs(float(value)), 1e-12)
                assert diff <= tol or np.isclose(float(got[col]), float(value), rtol=1e-6), (
                    tf,
                    ts,
                    col,
                    got[col],
                    value,
                )
    stats = warm_run["stats"]
    done = stats[(stats.metric == "warmup_complete")]
    assert len(done) and (done.value == 1.0).all()


def test_recording_replays_to_the_same_trade_bars(warm_run: dict[str, Any], tmp_path: Path) -> None:
    from tests.flowutil import run_flow

    rec = warm_run["record"]
    lines = load_frames(rec)
    ids: dict[str, list[int]] = {}
    for ln in lines:
        d = orjson.loads(ln)["data"]
        ids.setdefault(d["s"], []).append(d["t"])
    for sym, got in ids.items():
        assert got == sorted(got) and len(got) == len(set(got)), sym
    db = tmp_path / "replay.db"
    settings = load_settings(
        {
            "PAIRFLOW_SOURCE": f"replay:{rec}",
            "PAIRFLOW_REPLAY_SPEED": "max",
            "PAIRFLOW_DB": str(db),
            "PAIRFLOW_REDIS_URL": "",
            "PAIRFLOW_WINDOWS": "",
        }
    )
    run_flow(settings)
    replayed = read_table(db, "bars", "symbol, tf, open_time")
    live = warm_run["bars"]
    live_t = live[live.first_trade_id.notna()]
    compare_bars(replayed, live_t)
    assert isinstance(Tick, type)
