"""REST against the fake exchange: host endpoint sets, 403/418, back-pressure, symbols.

Source level (``op.input(BinanceSource) -> TestingSink``) as in
``tests/test_binance_faults.py``, whose checks are reused: every trade from the first
one received, exactly once, in order, with the recorded content.

- ``api*.binance.com`` (every endpoint): gaps come back from ``historicalTrades``.
- ``data-api.binance.vision`` (market data only, no ``historicalTrades``): one 404,
  then ``aggTrades``: every emitted tick covers ids ``t - n + 1 .. t`` of one price
  and side, the ids covered are exactly the recorded ones except what the ``gaps``
  records say was not recovered, and a recording (``PAIRFLOW_RECORD``) of that run
  replays (``"n"`` read back as ``Tick.count``) to the bars of those trades.
- 403 (WAF) is a throttle: gaps are still filled.
- A 418 ban longer than the give-up time: gaps ``unfilled``, but an ERROR log, the
  ``rest_banned_s`` stat, and no hammering of the banned host.
- A slow consumer: the socket keeps being read (pings answered, no reconnect), drops
  are counted (``overflow_dropped_total``), become gaps and are backfilled: what is
  emitted is still every trade, once.
- A misspelled or halted symbol stops the input at start with a message naming it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pairflow.config import ConfigError
from tests.fakes import LiveRun, run_live
from tests.fakes.fake_binance import MARKET_DATA_ONLY, FakeBinance, Faults, load_frames
from tests.test_binance_faults import (
    FAST,
    HEAD,
    SYMS,
    assert_backfill_exact,
    assert_complete,
    recorded,
    report,
)


def _scenario(faults: Faults, *, tuning: Any = FAST, speed: float | None = 40.0, **kw: Any):
    with FakeBinance(HEAD, speed=speed, faults=faults) as fake:
        run = run_live(fake, tuning=tuning, timeout_s=40, **kw)
    return fake, run


def _covered(run: LiveRun, sym: str) -> list[int]:
    """Trade ids covered by the emitted ticks (an aggregate covers ``t-n+1..t``)."""
    out: list[int] = []
    for d in run.trades[sym]:
        n = d.get("n", 1)
        out.extend(range(d["t"] - n + 1, d["t"] + 1))
    return out


def test_api_host_backfills_gaps_from_historical_trades() -> None:
    fake, run = _scenario(Faults(drop_every=300, max_drops=3))
    backfilled, undelivered = assert_complete(run, fake)
    assert_backfill_exact(run, fake, backfilled, undelivered)
    assert fake.counters["rest_historicalTrades"] > 0
    assert fake.counters["rest_aggTrades"] == 0
    assert all(d.get("n", 1) == 1 for s in SYMS for d in run.trades[s])
    assert {g.status for g in run.final_gaps()} == {"filled"}
    report("api-host", run, fake, backfilled)


def test_market_data_only_host_falls_back_to_agg_trades_exactly(tmp_path: Path) -> None:
    from pairflow.testing.oracle import compare_bars, read_table, resample_bars
    from tests.flowutil import run_flow, settings_for

    record = tmp_path / "md.ndjson.gz"
    faults = Faults(drop_every=300, max_drops=3, rest_endpoints=MARKET_DATA_ONLY)
    fake, run = _scenario(faults, record=str(record))
    assert 1 <= fake.counters["rest_historicalTrades"] <= len(SYMS)  # 404, then remembered
    assert fake.counters["rest_aggTrades"] > 0
    rec = recorded(fake)
    lost = {s: 0 for s in SYMS}
    for gap in run.final_gaps():
        lost[gap.symbol] += gap.to_trade_id - gap.from_trade_id + 1 - gap.filled
    aggregates = 0
    want_rows = []
    for sym in SYMS:
        ids = _covered(run, sym)
        assert ids == sorted(set(ids)), f"{sym}: covered ids repeat or go backwards"
        want = [i for i in fake.recorded_ids(sym) if i >= ids[0]]
        missing = sorted(set(want) - set(ids))
        assert not set(ids) - set(want)
        assert len(missing) == lost[sym], (sym, missing[:10], lost[sym])
        for d in run.trades[sym]:
            n = d.get("n", 1)
            aggregates += n > 1
            parts = [rec[sym][i] for i in range(d["t"] - n + 1, d["t"] + 1)]
            assert {(r["p"], r["T"], r["m"]) for r in parts} == {(d["p"], d["T"], d["m"])}
            assert Decimal(d["q"]) == sum(Decimal(r["q"]) for r in parts)
        want_rows += [
            (sym, i, float(rec[sym][i]["p"]), float(rec[sym][i]["q"]), rec[sym][i]["T"],
             rec[sym][i]["m"]) for i in ids
        ]  # fmt: skip
    assert aggregates > 0, "the fallback must have produced multi-trade aggregates"
    assert int(run.final("trades_backfilled_total")) > 0
    report("data-api-host", run, fake, int(run.final("trades_backfilled_total")))

    # the recording of that run replays to the bars of exactly the covered trades
    lines = load_frames(record)
    assert sum(1 for ln in lines if '"n":' in ln) == aggregates
    db = tmp_path / "replay.db"
    run_flow(settings_for(db, source=f"replay:{record}", replay_speed="max", windows=""))
    import pandas as pd

    want = resample_bars(pd.DataFrame(want_rows, columns=["s", "t", "p", "q", "T", "m"]))
    counts = compare_bars(read_table(db, "bars", "symbol, tf, open_time"), want)
    assert counts.get("1s", 0) > 0
    rejects = read_table(db, "rejects", "received_at")
    assert rejects.empty, rejects.head()


def test_403_from_the_waf_is_a_throttle_not_a_final_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sources.binance")
    faults = Faults(drop_every=300, max_drops=3, rest_403_every=2, rest_403_retry_after_s=0.2)
    fake, run = _scenario(faults)
    backfilled, undelivered = assert_complete(run, fake)
    assert fake.counters["rest_403"] > 0
    assert_backfill_exact(run, fake, backfilled, undelivered)
    assert {g.status for g in run.final_gaps()} == {"filled"}
    assert any("refused by the WAF" in r.getMessage() for r in caplog.records)
    report("403", run, fake, backfilled)


def test_418_ban_longer_than_give_up_is_loud_not_silently_unfilled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sources.binance")
    faults = Faults(drop_every=300, max_drops=2, rest_418_for_s=60)
    fake, run = _scenario(faults)
    gaps = run.final_gaps()
    assert gaps and {g.status for g in gaps} == {"unfilled"}
    banned = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "BANNED" in r.getMessage() and r.name == "sources.binance"
    ]
    assert banned, [r.getMessage() for r in caplog.records][-20:]
    assert run.final("rest_banned_s") > 30  # the health tab sees the ban and how long
    assert fake.counters["rest_418"] <= 3, "the banned host must not be hammered"
    for sym in SYMS:  # everything else is still exact: only the gaps' trades are missing
        ids = run.ids(sym)
        assert ids == sorted(set(ids))


def test_slow_consumer_keeps_reading_answers_pings_and_backfills_the_drops() -> None:
    # the client's own silence watchdog is not under test here: on a busy machine a
    # 0.5 s ping timeout can fire while the slow consumer lags (CI run 5), so give it 3 s
    tuning = replace(
        FAST, max_buffer=50, max_batch=10, catchup_delay_s=0.3, silence_timeout_s=3.0,
        ping_timeout_s=3.0,
    )  # fmt: skip
    # pings every second: a reader that lags behind a flood of frames answers queued
    # pings together, and the fake's 5 messages/s check must not mistake that for us
    faults = Faults(ping_interval_s=1.0, pong_timeout_s=5.0)
    fake, run = _scenario(faults, tuning=tuning, speed=None, slow_batch_s=0.02)
    backfilled, undelivered = assert_complete(run, fake)  # expected == received
    dropped = int(run.final("overflow_dropped_total"))
    assert dropped > 0, "the consumer was not slow enough to fill the buffer"
    assert undelivered == 0
    assert backfilled == dropped, (backfilled, dropped)
    assert run.final("reconnects_total") == 0
    assert fake.counters["server_pings"] >= 3
    assert fake.counters["pong_timeouts"] == 0
    assert fake.counters["pongs"] >= fake.counters["server_pings"] - 1
    assert {g.status for g in run.final_gaps()} == {"filled"}
    report("slow-consumer", run, fake, backfilled)


@pytest.mark.parametrize(
    ("symbols", "faults", "needle"),
    [
        (("BTCUSDT", "ETHUSDX"), Faults(), "ETHUSDX (misspelled?)"),
        (SYMS, Faults(halted=frozenset({"ETHUSDT"})), "ETHUSDT (status HALT)"),
    ],
    ids=["misspelled", "halted"],
)
def test_unknown_or_halted_symbol_fails_at_start_naming_it(
    symbols: tuple[str, ...], faults: Faults, needle: str
) -> None:
    with FakeBinance(HEAD, speed=40.0, faults=faults) as fake:
        with pytest.raises(Exception) as info:  # noqa: PT011 - bytewax wraps the ConfigError
            run_live(fake, symbols=symbols, tuning=FAST, timeout_s=20)
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " | ".join(str(e) for e in chain)
    assert needle in text and "PAIRFLOW_SYMBOLS" in text, text[:2000]
    assert any(isinstance(e, ConfigError) for e in chain) or "ConfigError" in text, text[:2000]
