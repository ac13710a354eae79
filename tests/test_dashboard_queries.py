"""Dashboard queries and figures against real DuckDB files (made by tests/helpers_dbgen)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import redis

from dashboard import (
    cache,
    chart_base,
    export,
    health_charts,
    pair_charts,
    pair_view,
    pipeline_health,
    redis_streams,
    snapshot,
)
from dashboard import db as dbio
from dashboard.pair_view import LOOKBACKS, ViewRequest
from pairflow.redis_keys import stream_key
from pairflow.testing import REDIS_URL
from pairflow.testing.dbgen import GenSpec, generate_db
from pairflow.timeutil import UTC
from sinks import schema
from tests.flowutil import empty_db

END = datetime(2024, 8, 9, 0, 5, 6, tzinfo=UTC)
PAIR = "BTCUSDT/ETHUSDT"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of 1s bars ending at END, with analytics, signals and health tables."""
    path = tmp_path_factory.mktemp("dash") / "two_days.db"
    return generate_db(path, GenSpec(seconds=2 * 86_400, end=END, stats_minutes=90))


@pytest.fixture(scope="module")
def raw(db: Path) -> dict[str, pd.DataFrame]:
    """The raw tables, read independently of the code under test."""
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    try:
        return {
            "bars": con.execute("SELECT * FROM bars").df(),
            "analytics": con.execute("SELECT * FROM analytics").df(),
            "signals": con.execute("SELECT * FROM signals").df(),
        }
    finally:
        con.close()


def _read(db: Path, req: ViewRequest) -> tuple[pair_view.ViewData, pipeline_health.HealthData]:
    with dbio.open_readonly(db) as con:
        return snapshot.load_snapshot(con, req, db)


def _req(lookback: str, tf: str = "1s") -> ViewRequest:
    return ViewRequest("BTCUSDT", "ETHUSDT", tf, LOOKBACKS[lookback])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "text",
    [
        "BTCUSDT",
        "BTCUSDT/BTCUSDT",
        "BTCUSDT/ETHUSDT/SOLUSDT",
        "btcusdt/ethusdt",
        "BTCUSDT'; DROP TABLE bars; --/ETHUSDT",
        "BTC USDT/ETHUSDT",
        "/ETHUSDT",
    ],
)
def test_parse_pair_rejects_bad_names(text: str) -> None:
    with pytest.raises(ValueError, match="pair"):
        pair_view.parse_pair(text)


def test_parse_pair_accepts_binance_names() -> None:
    assert pair_view.parse_pair("BTCUSDT/ETHUSDT") == ("BTCUSDT", "ETHUSDT")
    assert pair_view.parse_pair("BTCUSD_PERP/ETHUSD_PERP") == ("BTCUSD_PERP", "ETHUSD_PERP")


def test_view_request_validates_what_reaches_sql() -> None:
    with pytest.raises(ValueError, match="symbol"):
        ViewRequest("BTC'--", "ETHUSDT", "1s", timedelta(hours=1))
    with pytest.raises(ValueError, match="timeframe"):
        ViewRequest("BTCUSDT", "ETHUSDT", "1h", timedelta(hours=1))
    with pytest.raises(ValueError, match="lookback"):
        ViewRequest("BTCUSDT", "ETHUSDT", "1s", timedelta(0))


@pytest.mark.parametrize("tf", ["1s", "1m", "5m"])
@pytest.mark.parametrize("lookback", list(LOOKBACKS))
def test_bucket_keeps_views_under_the_point_cap(tf: str, lookback: str) -> None:
    span = LOOKBACKS[lookback]
    bucket = pair_view.choose_bucket_s(span, tf)
    tf_s = {"1s": 1, "1m": 60, "5m": 300}[tf]
    assert bucket >= tf_s
    assert bucket % tf_s == 0
    assert span.total_seconds() / bucket <= pair_view.MAX_POINTS
    assert 86_400 % bucket == 0  # buckets align to UTC days


def test_bucket_is_the_timeframe_when_no_downsampling_is_needed() -> None:
    assert pair_view.choose_bucket_s(timedelta(minutes=15), "1s") == 1
    assert pair_view.choose_bucket_s(timedelta(hours=1), "1m") == 60
    assert pair_view.choose_bucket_s(timedelta(days=3), "5m") == 300


@pytest.mark.parametrize(
    ("tf", "bucket", "expected"),
    [("1s", 1, "1s"), ("1s", 30, "1s"), ("1s", 60, "1m"), ("1s", 120, "1m"),
     ("1s", 600, "5m"), ("1m", 120, "1m"), ("1m", 900, "5m"), ("5m", 3600, "5m")],
)  # fmt: skip
def test_source_tf_is_the_coarsest_that_divides_the_bucket(
    tf: str, bucket: int, expected: str
) -> None:
    assert pair_view.source_tf(tf, bucket) == expected


# --------------------------------------------------------------------------- pair view


def test_short_view_returns_the_raw_bars(db: Path, raw: dict[str, pd.DataFrame]) -> None:
    view, _ = _read(db, _req("15 min"))
    assert view.bucket_s == 1
    assert not view.downsampled
    bars = raw["bars"]
    newest = bars.loc[bars["tf"] == "1s", "open_time"].max()
    assert view.end == newest.to_pydatetime()
    for sym in ("BTCUSDT", "ETHUSDT"):
        want = bars[
            (bars["symbol"] == sym)
            & (bars["tf"] == "1s")
            & (bars["open_time"] > newest - timedelta(minutes=15))
        ].sort_values("open_time")
        got = view.leg(sym)
        assert len(got) == len(want) > 800
        assert list(got["t"]) == list(want["open_time"])
        np.testing.assert_array_equal(got["close"], want["close"])
        np.testing.assert_array_equal(got["high"], want["high"])


@pytest.mark.parametrize("lookback", ["1 h", "6 h", "1 day"])
def test_downsampled_bars_equal_an_independent_resample(
    db: Path, raw: dict[str, pd.DataFrame], lookback: str
) -> None:
    """Buckets built from 1m/5m bars plus the 1s tail equal a resample of the 1s bars."""
    view, _ = _read(db, _req(lookback))
    assert view.downsampled
    bars = raw["bars"]
    start = view.start
    assert start is not None
    for sym in ("BTCUSDT", "ETHUSDT"):
        one = bars[(bars["symbol"] == sym) & (bars["tf"] == "1s")].sort_values("open_time")
        one = one[(one["open_time"] >= start) & (one["open_time"] <= view.end)]
        key = one["open_time"].dt.floor(f"{view.bucket_s}s")
        want = one.groupby(key).agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            trades=("trades", "sum"),
        )
        got = view.leg(sym).set_index("t")
        assert len(got) <= pair_view.MAX_POINTS
        assert list(got.index) == list(want.index)  # whole buckets only
        for col in ("open", "high", "low", "close", "trades"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-12)
        np.testing.assert_allclose(got["volume"], want["volume"])


def test_downsampled_analytics_keep_the_last_row_and_the_z_range(
    db: Path, raw: dict[str, pd.DataFrame]
) -> None:
    view, _ = _read(db, _req("1 day"))
    ana = raw["analytics"]
    one = ana[(ana["pair"] == PAIR) & (ana["tf"] == "1s")].sort_values("ts")
    one = one[(one["ts"] >= view.start) & (one["ts"] <= view.end)]
    grouped = one.groupby(one["ts"].dt.floor(f"{view.bucket_s}s"))
    got = view.analytics.set_index("t")
    assert len(got) == grouped.ngroups <= pair_view.MAX_POINTS
    last = grouped.last()
    for col in ("beta", "spread", "zscore", "corr", "adf_pvalue", "eg_pvalue"):
        np.testing.assert_array_equal(got[col].to_numpy(), last[col].to_numpy())
    np.testing.assert_array_equal(got["z_min"], grouped["zscore"].min())
    np.testing.assert_array_equal(got["z_max"], grouped["zscore"].max())
    np.testing.assert_array_equal(got["rows"], grouped.size())


def test_bands_use_the_stored_spread_std(db: Path) -> None:
    view, _ = _read(db, _req("15 min"))
    ana = view.analytics
    np.testing.assert_allclose(ana["spread_std"] * ana["zscore"], ana["spread"], rtol=1e-9)
    assert (ana["spread_std"] > 0).all()


def test_latest_and_kpi_inputs(db: Path, raw: dict[str, pd.DataFrame]) -> None:
    view, _ = _read(db, _req("1 h"))
    ana = raw["analytics"]
    newest = ana[(ana["pair"] == PAIR) & (ana["tf"] == "1s")].sort_values("ts").iloc[-1]
    assert view.latest["ts"] == newest["ts"]
    assert view.latest["zscore"] == newest["zscore"]
    assert view.latest["beta"] == newest["beta"]
    bars = raw["bars"]
    one = bars[bars["tf"] == "1s"].sort_values("open_time")
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert view.last_close[sym] == one.loc[one["symbol"] == sym, "close"].iloc[-1]
    # Freshness comes from the finest timeframe: the end of the newest 1s bar.
    assert view.newest_bar_end == one["open_time"].max() + timedelta(seconds=1)


def test_signals_in_the_view(db: Path, raw: dict[str, pd.DataFrame]) -> None:
    view, _ = _read(db, _req("6 h"))
    sig = raw["signals"]
    want = sig[
        (sig["pair"] == PAIR)
        & (sig["tf"] == "1s")
        & (sig["ts"] >= view.start)
        & (sig["ts"] <= view.end)
    ]
    assert len(view.signals) == min(len(want), pair_view.MAX_SIGNALS) > 0
    assert set(view.signals["kind"]) <= set(schema.SIGNAL_KINDS)


@pytest.mark.parametrize("tf", ["1m", "5m"])
def test_coarser_timeframes(db: Path, tf: str) -> None:
    view, _ = _read(db, _req("1 day", tf))
    assert view.has_bars
    assert view.has_analytics
    assert view.request.tf == tf
    assert (view.analytics["t"].diff().dropna() >= pd.Timedelta(seconds=view.bucket_s)).all()


def test_view_table_is_the_csv_of_the_view(db: Path, tmp_path: Path) -> None:
    view, _ = _read(db, _req("30 min"))
    table = export.view_table(view)
    assert table.columns[0] == "time"
    for col in ("BTCUSDT_close", "ETHUSDT_close", "beta", "zscore", "eg_pvalue"):
        assert col in table.columns
    assert len(table) == len(view.leg("BTCUSDT"))
    out = tmp_path / "view.csv"
    table.to_csv(out, index=False)
    back = pd.read_csv(out)
    assert len(back) == len(table)
    np.testing.assert_allclose(back["BTCUSDT_close"], table["BTCUSDT_close"])


def test_lookback_is_measured_from_the_newest_bar_not_now(tmp_path: Path) -> None:
    """A replayed 2024 database still shows data (the staleness KPI uses wall clock)."""
    path = generate_db(tmp_path / "old.db", GenSpec(seconds=1_800, end=END))
    view, _ = _read(path, _req("15 min"))
    assert view.has_bars
    assert view.has_analytics
    assert view.end is not None
    assert view.end < END
    assert view.start == view.end - timedelta(minutes=15) + timedelta(seconds=1)


# --------------------------------------------------------------------------- health


def test_health(db: Path) -> None:
    _, health = _read(db, _req("15 min"))
    assert set(health.row_counts) == set(schema.TABLES)
    assert health.row_counts["bars"] > 300_000
    assert health.db_bytes == pipeline_health.db_size_bytes(db) > 0
    assert health.rate_source == "pipeline_stats"
    assert health.latest_rate is not None
    assert health.latest_rate > 0
    assert int(health.rejects["n"].sum()) == health.row_counts["rejects"]
    assert health.late_ticks == int(
        health.rejects.loc[health.rejects["reason"] == "late_tick", "n"].sum()
    )
    assert health.reconnects is not None
    assert health.open_gaps == 1
    assert len(health.gaps_recent) == 2
    assert {"component", "metric", "value", "ts"} <= set(health.stats_latest.columns)


def test_health_falls_back_to_bar_trades_without_stats(tmp_path: Path) -> None:
    path = generate_db(tmp_path / "nostats.db", GenSpec(seconds=1_200, end=END))
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM pipeline_stats")
    con.close()
    _, health = _read(path, _req("15 min"))
    assert health.rate_source == "bars"
    assert not health.rate.empty
    assert health.stats_latest.empty
    assert health.reconnects is None


# --------------------------------------------------------------------------- empty states


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(dbio.DatabaseMissingError, match="No database"):
        dbio.connect_readonly(tmp_path / "nope.db")


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 1000)
    with pytest.raises(dbio.DatabaseUnreadableError, match="Cannot open"):
        dbio.connect_readonly(path)


def test_file_without_tables(tmp_path: Path) -> None:
    path = empty_db(tmp_path / "bare.db", tables=False)
    view, health = _read(path, _req("1 h"))
    assert not view.has_bars
    assert view.newest_bar_end is None
    assert health.row_counts == {}
    with dbio.open_readonly(path) as con:
        assert pair_view.list_pairs(con) == []


def test_empty_tables(tmp_path: Path) -> None:
    view, health = _read(empty_db(tmp_path / "empty.db"), _req("7 days"))
    assert not view.has_bars
    assert not view.has_analytics
    assert view.end is None
    assert health.row_counts["bars"] == 0
    assert health.rate.empty
    assert health.late_ticks == 0


def test_pair_with_no_rows(db: Path) -> None:
    with dbio.open_readonly(db) as con:
        view = pair_view.load_view(con, ViewRequest("XRPUSDT", "ADAUSDT", "1s", timedelta(hours=1)))
    assert view.newest_bar_end is None
    assert not view.has_bars


def test_list_pairs_from_analytics_then_bars(tmp_path: Path) -> None:
    path = generate_db(
        tmp_path / "three.db",
        GenSpec(seconds=900, end=END, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")),
    )
    con = duckdb.connect(str(path))
    # A malformed pair name must never reach a query.
    con.execute(
        "INSERT INTO analytics BY NAME SELECT * REPLACE ('bad pair; --' AS pair) "
        "FROM analytics LIMIT 1"
    )
    con.close()
    with dbio.open_readonly(path) as con:
        assert pair_view.list_pairs(con) == ["BTCUSDT/ETHUSDT", "BTCUSDT/SOLUSDT"]
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM analytics")
    con.close()
    with dbio.open_readonly(path) as con:
        assert pair_view.list_pairs(con) == [
            "BTCUSDT/ETHUSDT",
            "BTCUSDT/SOLUSDT",
            "ETHUSDT/SOLUSDT",
        ]


# --------------------------------------------------------------------------- locking

HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Hold the read-write lock in another process (as the flow's writer does)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_locked_database_gives_a_friendly_error(tmp_path: Path) -> None:
    path = generate_db(tmp_path / "locked.db", GenSpec(seconds=600, end=END))
    holder = _hold(path, 5.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(dbio.DatabaseLockedError, match="locked by another process"):
            dbio.connect_readonly(path, timeout_s=0.5)
        assert time.monotonic() - t0 < 2.0
    finally:
        _release(holder)


def test_reader_gets_in_when_the_writer_lets_go(tmp_path: Path) -> None:
    path = generate_db(tmp_path / "brief.db", GenSpec(seconds=600, end=END))
    holder = _hold(path, 0.6)
    try:
        t0 = time.monotonic()
        with dbio.open_readonly(path, timeout_s=5.0) as con:
            view = pair_view.load_view(con, _req("15 min"))
        waited = time.monotonic() - t0
        assert view.has_bars
        assert 0.2 < waited < 3.0
    finally:
        _release(holder)


def test_connection_is_closed_after_a_read(tmp_path: Path) -> None:
    """Read-only means the writer can open the file right after a refresh."""
    path = generate_db(tmp_path / "closed.db", GenSpec(seconds=600, end=END))
    _read(path, _req("15 min"))
    con = duckdb.connect(str(path))  # read-write: fails if a reader were still open
    con.close()


# --------------------------------------------------------------------------- redis


def test_redis_stream_lengths_use_the_tee_key_prefix(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("no Redis at 127.0.0.1:6379: start redis-server (bin/test does)")
    sym = "ZZ" + uuid.uuid4().hex[:10].upper()
    key = stream_key(sym, redis_prefix)
    try:
        for i in range(3):
            client.xadd(key, {"p": "1", "q": "1", "m": "0"}, id=f"{1000 + i}-{i}")
        client.xadd(f"ticks:{sym}", {"p": "1", "q": "1", "m": "0"}, id="1-1")  # not ours
        got = redis_streams.redis_stream_lengths(
            REDIS_URL, [sym, sym + "X", "bad sym"], redis_prefix
        )
        assert got == {key: 3, stream_key(sym + "X", redis_prefix): 0}
    finally:
        client.delete(key, f"ticks:{sym}")
        client.close()


def test_redis_unreachable_is_a_friendly_error_without_the_password() -> None:
    t0 = time.monotonic()
    url = "redis://:pw-s3cret-42@127.0.0.1:1/0"
    with pytest.raises(dbio.DashboardDataError, match="unreachable") as info:
        redis_streams.redis_stream_lengths(url, ["BTCUSDT"])
    assert time.monotonic() - t0 < 2.0
    assert "pw-s3cret-42" not in str(info.value)
    assert "redis://:***@127.0.0.1:1/0" in str(info.value)


# --------------------------------------------------------------------------- figures


@pytest.fixture
def strict_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chart_base, "VALIDATE", True)


def _check(fig: go.Figure) -> dict:
    as_dict = fig.to_dict()
    go.Figure(as_dict)  # raises on any property Plotly does not know
    return as_dict


@pytest.mark.usefixtures("strict_figures")
@pytest.mark.parametrize(("lookback", "tf"), [("15 min", "1s"), ("7 days", "1s"), ("1 day", "5m")])
def test_figures_are_valid_and_small(db: Path, lookback: str, tf: str) -> None:
    view, health = _read(db, _req(lookback, tf))
    figs = {
        **pair_charts.pair_figures(view, "ETHUSDT", 2.0, 0.5),
        **health_charts.health_figures(health),
    }
    assert list(figs) == [*pair_charts.PAIR_CHARTS, *health_charts.HEALTH_CHARTS]
    for name, fig in figs.items():
        as_dict = _check(fig)
        assert as_dict["data"], name
        for trace in as_dict["data"]:
            assert len(trace.get("x", [])) <= pair_view.MAX_POINTS, name
    z = figs["zscore"].to_dict()
    levels = sorted(s["y0"] for s in z["layout"]["shapes"])
    assert levels == [-2.0, -0.5, 0.0, 0.5, 2.0]
    names = {t["name"] for t in z["data"]}
    assert "z" in names
    assert names & {"short spread", "long spread", "exit"}
    p = figs["pvalues"].to_dict()
    assert [s["y0"] for s in p["layout"]["shapes"]] == [0.05]
    assert figs["candles"].to_dict()["data"][0]["type"] == "candlestick"
    # Every time chart of the pair view shares one x range.
    ranges = {
        tuple(figs[n].to_dict()["layout"]["xaxis"]["range"])
        for n in ("legs", "candles", "spread", "zscore", "corr", "beta", "pvalues")
    }
    assert len(ranges) == 1


@pytest.mark.usefixtures("strict_figures")
def test_figures_of_an_empty_view_say_why(tmp_path: Path) -> None:
    view, health = _read(empty_db(tmp_path / "empty.db"), _req("1 h"))
    figs = {
        **pair_charts.pair_figures(view, "BTCUSDT", 2.0, 0.5),
        **health_charts.health_figures(health),
    }
    for fig in figs.values():
        as_dict = _check(fig)
        assert as_dict["layout"]["annotations"][0]["text"].startswith("No")


def test_figure_time_axis_is_epoch_ms(db: Path) -> None:
    view, _ = _read(db, _req("15 min"))
    legs = pair_charts.legs_figure(view)
    first_ms = float(legs.data[0].x[0])
    assert first_ms == view.leg("BTCUSDT")["t"].iloc[0].timestamp() * 1000
    assert legs.layout.xaxis.type == "date"
    # Rebased to 100 at the start of the view.
    assert legs.data[0].y[0] == pytest.approx(100.0)


# --------------------------------------------------------------------------- bucket cache


def _frames_equal(a: pair_view.ViewData, b: pair_view.ViewData) -> None:
    assert a.start == b.start
    assert a.end == b.end
    pd.testing.assert_frame_equal(a.bars, b.bars)
    pd.testing.assert_frame_equal(a.candles, b.candles)
    pd.testing.assert_frame_equal(a.analytics, b.analytics)


def test_cached_buckets_equal_a_fresh_read_as_data_arrives(tmp_path: Path) -> None:
    """Warm the cache, let the 'flow' append 30 minutes and amend a recent bar, read again."""
    full = generate_db(tmp_path / "full.db", GenSpec(seconds=86_400, end=END))
    path = tmp_path / "growing.db"
    path.write_bytes(full.read_bytes())
    cutoff = END - timedelta(minutes=30)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM bars WHERE open_time >= ?", [cutoff - timedelta(minutes=5)])
    con.execute("DELETE FROM analytics WHERE ts >= ?", [cutoff])
    con.execute("DELETE FROM signals WHERE ts >= ?", [cutoff])
    con.close()
    req = _req("1 day")
    cache.BUCKETS.clear()
    before, _ = _read(path, req)
    assert before.downsampled
    assert cache.BUCKETS.misses >= 2

    con = duckdb.connect(str(path))
    con.execute(f"ATTACH '{full}' AS src (READ_ONLY)")
    for table, col in (("bars", "open_time"), ("analytics", "ts"), ("signals", "ts")):
        con.execute(
            f"INSERT OR REPLACE INTO {table} SELECT * FROM src.{table} WHERE {col} >= ?",  # noqa: S608
            [cutoff - timedelta(minutes=5)],
        )
    # A late tick amends a bar 3 minutes back (inside the flow's amend horizon).
    con.execute(
        "UPDATE bars SET high = high * 1.01 WHERE symbol = 'BTCUSDT' AND open_time = "
        "(SELECT max(open_time) - INTERVAL 3 MINUTE FROM bars WHERE tf = '1s')"
    )
    con.close()

    hits = cache.BUCKETS.hits
    with dbio.open_readonly(path) as con:
        cached = pair_view.load_view(con, req)
        fresh = pair_view.load_view(con, req, use_cache=False)
    assert cache.BUCKETS.hits >= hits + 2
    assert cached.end is not None
    assert before.end is not None
    assert cached.end > before.end
    _frames_equal(cached, fresh)


def test_cache_expires_and_is_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = generate_db(tmp_path / "a.db", GenSpec(seconds=7_200, end=END))
    req = _req("1 h")
    cache.BUCKETS.clear()
    _read(path, req)
    monkeypatch.setattr(cache.BUCKETS, "max_age_s", 0.0)
    misses = cache.BUCKETS.misses
    again, _ = _read(path, req)
    assert cache.BUCKETS.misses >= misses + 2  # expired: read in full
    with dbio.open_readonly(path) as con:
        _frames_equal(again, pair_view.load_view(con, req, use_cache=False))


def test_health_can_be_reused_between_refreshes(tmp_path: Path) -> None:
    path = generate_db(tmp_path / "h.db", GenSpec(seconds=900, end=END))
    req = _req("15 min")
    with dbio.open_readonly(path) as con:
        _, first = snapshot.load_snapshot(con, req, path, health_max_age_s=60)
        _, reused = snapshot.load_snapshot(con, req, path, health_max_age_s=60)
        _, fresh = snapshot.load_snapshot(con, req, path)
    assert reused is first
    assert fresh is not first
    assert fresh.row_counts == first.row_counts
