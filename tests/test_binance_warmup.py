"""Warm start and recording against the fake exchange, through the whole flow.

The fake's history is SYNTHETIC and cheap (:mod:`tests.fakes.history`): sparse
trades for the ~2 h before ``t5`` (klines only need *some* trades, and 0-trade
klines get exercised), denser ones from ``t5`` on (``historicalTrades`` pages),
ETHUSDT quiet for the last seconds before ``t5``; it ends "now", then a few seconds
play live with connection drops. Bars before ``t5`` must equal a pandas resample of
the fake's trades (ids NULL), bars from ``t5`` on exact with ids, analytics rows
must exist for every timeframe and equal statsmodels on ``bars``; ``replay:`` of
the recording must reproduce the trade bars. The seconds from start to the first
analytics row per timeframe are measured (printed) by polling DuckDB.

A second, smaller run checks the ``Watermark(symbol, tf, t5)`` after the warm-up
bars: with it, the analytics place the intervals just before ``t5`` of a leg that
was quiet there (no EOF needed); without it they could not.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import pytest

from pairflow.records import AnalyticsRow, Bar, Tick, Watermark
from pairflow.testing.analytics_oracle import expected_row
from pairflow.testing.analytics_oracle import grid as oracle_grid
from pairflow.testing.oracle import compare_bars, read_table, resample_bars
from tests.fakes import binance_settings, run_live
from tests.fakes.fake_binance import FakeBinance, Faults, load_frames
from tests.fakes.history import Segment, synthetic_frames

WINDOWS = {"1s": 30, "1m": 20, "5m": 20}
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
SYMBOLS = ("BTCUSDT", "ETHUSDT")
LIVE_S = 6.0
QUIET_X_S = 8
"""ETHUSDT has no trade in the last this many seconds before ``t5``."""


def long_history(now_ms: int) -> list[str]:
    """Synthetic trades from ~115 min before ``now`` to ``LIVE_S`` after it.

    0.3 trades/s per symbol until 90 s before ``t5`` (~2,000 per symbol), 5/s in
    those 90 s (the 1s window must start with a bar of both legs), 4/s from ``t5`` on
    (up to ~1,200 per symbol since ``t5``: one or two ``historicalTrades`` pages).
    """
    t5 = now_ms - now_ms % 300_000
    end = now_ms + int(LIVE_S * 1000)
    start = t5 - (WINDOWS["5m"] + 2) * 300_000
    dense = t5 - 90_000  # the 1s window (31 s) needs a trade in its first seconds
    segments = [Segment(start, dense, 0.3), Segment(dense, t5, 5.0), Segment(t5, end, 4.0)]
    quiet = {"ETHUSDT": [(t5 - QUIET_X_S * 1000, t5)]}
    return synthetic_frames(SYMBOLS, [s for s in segments if s.end_ms > s.start_ms], quiet=quiet)


def _trades_df(fake: FakeBinance) -> pd.DataFrame:
    rows = []
    for sym in ("BTCUSDT", "ETHUSDT"):
        for r in fake.happened_rows(sym):
            rows.append(
                (sym, r["id"], float(r["price"]), float(r["qty"]), r["time"], r["isBuyerMaker"])
            )
    return pd.DataFrame(rows, columns=["s", "t", "p", "q", "T", "m"])


def _first_rows(db: Path, started: float, t5: int, stop: threading.Event) -> dict[str, Any]:
    """Poll the flow's DuckDB (same process: a shared instance) for analytics rows.

    Returns, per timeframe, the seconds from ``started`` to the first analytics row
    seen (``first_s``) and to the row at ``t5 - tf`` (``at_t5_s``, the last interval
    the warm-up alone can give).
    """
    first: dict[str, float] = {}
    at_t5: dict[str, float] = {}
    con = None
    try:
        while not stop.is_set() and len(at_t5) < len(WINDOWS):
            time.sleep(0.05)
            if con is None:
                if not db.exists():
                    continue
                con = duckdb.connect(str(db))
            try:
                seen = con.execute(
                    "SELECT tf, min(epoch_ms(ts)), max(epoch_ms(ts)) FROM analytics GROUP BY tf"
                ).fetchall()
            except duckdb.Error:
                continue  # table not created yet
            now = time.monotonic() - started
            for tf, _lo, hi in seen:
                first.setdefault(tf, now)
                if hi >= t5 - TF_MS[tf]:
                    at_t5.setdefault(tf, now)
    finally:
        if con is not None:
            con.close()
    return {"first_s": first, "at_t5_s": at_t5}


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
    t5 = now - now % 300_000
    frames = long_history(now)
    faults = Faults(drop_every=10, max_drops=2)
    timings: dict[str, Any] = {}
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
        poll_done = threading.Event()
        source = BinanceSource(settings, stop_event=stop)
        flow = dataflow.build(settings, source=source, with_redis=False)
        started = time.monotonic()

        def poll() -> None:
            timings.update(_first_rows(db, started, t5, stop))
            poll_done.set()

        def watch() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not fake.done.is_set():
                time.sleep(0.05)
            deadline = time.monotonic() + 20
            want = {s: fake.happened_ids(s)[-1] for s in SYMBOLS}
            while time.monotonic() < deadline:
                snap = source._runners[0].seq.last_ids()  # noqa: SLF001
                if all(snap.get(s, 0) >= v for s, v in want.items()):
                    break
                time.sleep(0.05)
            poll_done.wait(20)  # every timeframe's row at t5 - tf seen (or given up)
            stop.set()

        threading.Thread(target=poll, daemon=True).start()
        threading.Thread(target=watch, daemon=True).start()
        run_main(flow, epoch_interval=timedelta(milliseconds=100))
        elapsed = time.monotonic() - started
        poll_done.wait(5)
        trades = _trades_df(fake)
        counters = dict(fake.counters)
        report = source._runners[0].warmup_report  # noqa: SLF001
    return {
        "db": db,
        "record": record,
        "t5": t5,
        "trades": trades,
        "counters": counters,
        "report": report,
        "elapsed": elapsed,
        "timings": timings,
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
    assert set(n_k) == {"1s", "1m", "5m"} and n_t.get("1s", 0) >= 3
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
        grid = oracle_grid(bars, "BTCUSDT", "ETHUSDT", tf)
        for ts in list(rows.index[:: max(1, len(rows) // 8)]) + [rows.index[-1]]:
            end = grid.index.get_loc(ts)
            want = expected_row(grid.iloc[end - w + 1 : end + 1])
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
    # seen while the flow ran (not only at EOF): every tf reached t5 - tf from the warm-up
    timings = warm_run["timings"]
    assert set(timings["at_t5_s"]) == set(WINDOWS), timings
    first = ", ".join(f"{tf} {timings['first_s'][tf]:.1f} s" for tf in WINDOWS)
    at_t5 = ", ".join(f"{tf} {timings['at_t5_s'][tf]:.1f} s" for tf in WINDOWS)
    print(f"\nstart -> first analytics row: {first}; -> row at t5-tf: {at_t5} "
          f"(run {warm_run['elapsed']:.1f} s)")  # fmt: skip


def test_recording_replays_to_the_same_trade_bars(warm_run: dict[str, Any], tmp_path: Path) -> None:
    from tests.flowutil import run_flow, settings_for

    rec = warm_run["record"]
    lines = load_frames(rec)
    ids: dict[str, list[int]] = {}
    for ln in lines:
        d = orjson.loads(ln)["data"]
        ids.setdefault(d["s"], []).append(d["t"])
    for sym, got in ids.items():
        assert got == sorted(got) and len(got) == len(set(got)), sym
    db = tmp_path / "replay.db"
    run_flow(settings_for(db, source=f"replay:{rec}", replay_speed="max", windows=""))
    replayed = read_table(db, "bars", "symbol, tf, open_time")
    live = warm_run["bars"]
    live_t = live[live.first_trade_id.notna()]
    compare_bars(replayed, live_t)


QUIET_WINDOWS = {"1s": 400, "1m": 10, "5m": 6}
"""Windows that still see ETHUSDT trades before its 6-minute quiet span."""


def test_watermarks_after_the_warm_up_bars_let_a_quiet_leg_be_forward_filled() -> None:
    """ETHUSDT had no trade in the 6 min before ``t5``: without a watermark, the
    analytics could place none of the intervals after its last bar until its first
    live bar closes (5 min for 5m); with ``Watermark(ETHUSDT, tf, t5)`` they place
    every interval up to ``t5 - tf`` at once (forward-filled, ``x_filled``)."""
    from operators.analytics import PairAnalyticsLogic, new_state, route

    now = int(time.time() * 1000)
    t5 = now - now % 300_000
    start = t5 - 45 * 60_000
    frames = synthetic_frames(
        SYMBOLS,
        [
            s
            for s in (Segment(start, t5, 0.5), Segment(t5, now + 2000, 2.0))
            if s.end_ms > s.start_ms
        ],
        quiet={"ETHUSDT": [(t5 - 360_000, t5)]},
        seed=5,
    )
    with FakeBinance(
        frames, speed=1.0, start="now", time_mode="recorded", history_until_ms=now
    ) as fake:
        run = run_live(fake, warmup="2400", windows=QUIET_WINDOWS, timeout_s=30)
    items = [x for x in run.items if isinstance(x, (Bar, Watermark, Tick))]
    first_tick = next(i for i, x in enumerate(items) if isinstance(x, Tick))
    marks = {(x.symbol, x.tf): i for i, x in enumerate(items) if isinstance(x, Watermark)}
    assert set(marks) == {(s, tf) for s in SYMBOLS for tf in TF_MS}
    for (sym, tf), i in marks.items():
        assert items[i] == Watermark(sym, tf, t5)
        last_bar = max(
            j for j, x in enumerate(items) if isinstance(x, Bar) and (x.symbol, x.tf) == (sym, tf)
        )
        assert last_bar < i < first_tick, (sym, tf)
    warm = items[:first_tick]

    def rows_of(source_items: list[Any]) -> list[AnalyticsRow]:
        pairs = (SYMBOLS,)
        logics: dict[str, PairAnalyticsLogic] = {}
        out: list[AnalyticsRow] = []
        for item in source_items:  # one item at a time, as a stream: no EOF flush
            for key, value in route(item, pairs, QUIET_WINDOWS):
                logic = logics.setdefault(
                    key,
                    PairAnalyticsLogic(
                        None, lambda k: new_state(k, QUIET_WINDOWS[k.rsplit("|", 1)[1]])
                    ),
                )
                emitted, _ = logic.on_batch([value])
                out += [r for r in emitted if isinstance(r, AnalyticsRow)]
        return out

    with_marks = rows_of(warm)
    without = rows_of([x for x in warm if not isinstance(x, Watermark)])
    for tf, ms in TF_MS.items():
        last = [r for r in with_marks if r.tf == tf and r.ts_ms == t5 - ms]
        assert len(last) == 1 and last[0].x_filled, tf
        assert tf == "1s" or not last[0].y_filled, tf  # BTCUSDT trades every minute
        assert not [r for r in without if r.tf == tf and r.ts_ms >= t5 - 360_000], tf
        assert [r for r in without if r.tf == tf], f"{tf}: rows before the quiet span"
