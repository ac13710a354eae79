"""Strategies operator (operators/strategies.py): vs the pandas reference, amendments, the flow.

The reference (pairflow.testing.strategy_reference) is an independent, column-wise
implementation of docs/design.md "Strategies and paper PnL". Here it is run on the *final*
analytics rows, and the operator's outputs -- applied as the sink applies them
(upserts by primary key, ``Retract``/``RetractFrom`` deletes, in order) -- must
give the same trades (every column), equity (<= 1e-9), stats and signals.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import bytewax.operators as op
import duckdb
import numpy as np
import pandas as pd
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.strategies import (
    KeyState,
    StrategiesLogic,
    StrategyDef,
    new_key_state,
    process,
    strategies_op,
)
from pairflow.records import AnalyticsRow, Retract, RetractFrom, Signal, Stat
from pairflow.strategies.params import StrategyParams, parse_strategies
from pairflow.strategies.rules import EquityPoint, StrategyStats, StrategyTrade
from pairflow.testing.strategy_reference import STATS_COLUMNS, TRADE_COLUMNS, reference_run
from pairflow.timeutil import TF_MS
from tests.flowutil import run_flow, settings_for

S1 = StrategyParams(name="a", entry=1.5, exit=0.3, stop=3.0, fee_bps=10.0)
S2 = StrategyParams(name="b", entry=1.0, exit=0.0, stop=0.0, max_hold=7, fee_bps=2.0)
PAIR = "BTCUSDT/ETHUSDT"

KEYS: dict[str, tuple[tuple[str, ...], str | None]] = {
    # table: (key fields of the record, time field)
    "signals": (("strategy", "pair", "tf", "ts_ms", "kind"), "ts_ms"),
    "strategy_trades": (("strategy", "pair", "tf", "entry_ts_ms"), "entry_ts_ms"),
    "strategy_equity": (("strategy", "pair", "tf", "ts_ms"), "ts_ms"),
    "strategy_stats": (("strategy", "pair", "tf"), "ts_ms"),
    "strategies": (("name",), None),
}
TABLE_OF = {
    Signal: "signals",
    StrategyTrade: "strategy_trades",
    EquityPoint: "strategy_equity",
    StrategyStats: "strategy_stats",
    StrategyDef: "strategies",
}


def apply(outputs: Iterable[Any]) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Apply records in order as the DuckDB sink does: keyed upserts and retractions."""
    # table -> key[:3] (strategy, pair, tf) -> key -> record
    store: dict[str, dict[tuple[Any, ...], dict[tuple[Any, ...], Any]]] = {t: {} for t in KEYS}
    for rec in outputs:
        if isinstance(rec, Stat):
            continue
        if isinstance(rec, Retract):
            key = tuple(rec.key)
            store[rec.table].get(key[:3], {}).pop(key, None)
            continue
        if isinstance(rec, RetractFrom):
            _, time_field = KEYS[rec.table]
            assert time_field is not None and len(rec.key_prefix) == 3
            group = store[rec.table].get(tuple(rec.key_prefix), {})
            for key in [k for k, r in group.items() if getattr(r, time_field) >= rec.from_ms]:
                del group[key]
            continue
        table = TABLE_OF[type(rec)]
        fields, _ = KEYS[table]
        key = tuple(getattr(rec, f) for f in fields)
        store[table].setdefault(key[:3], {})[key] = rec
    return {t: {k: r for g in groups.values() for k, r in g.items()} for t, groups in store.items()}


def rows_frame(rows: Sequence[AnalyticsRow]) -> pd.DataFrame:
    """Analytics rows as the reference's input (``ts`` in epoch ms, NaN = NULL)."""
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows]).rename(columns={"ts_ms": "ts"})
    for col in ("kalman_zscore", "kalman_beta"):
        if col not in df:
            df[col] = np.nan
    return df.sort_values("ts").reset_index(drop=True)


def assert_matches_reference(
    tables: dict[str, dict[tuple[Any, ...], Any]],
    final_rows: Sequence[AnalyticsRow],
    strategies: Sequence[StrategyParams],
    pair: str = PAIR,
    tf: str = "1s",
) -> dict[str, int]:
    """Trades (every column), equity (<= 1e-9), stats and signals equal the reference."""
    compared = {"trades": 0, "equity": 0, "signals": 0}
    df = rows_frame([r for r in final_rows if r.pair == pair and r.tf == tf])
    for p in strategies:
        trades, equity, stats, signals = reference_run(df, p, TF_MS[tf])
        mine_t = sorted(
            (r for k, r in tables["strategy_trades"].items() if k[:3] == (p.name, pair, tf)),
            key=lambda r: r.entry_ts_ms,
        )
        got = pd.DataFrame(
            [
                {
                    **{c: getattr(t, c) for c in TRADE_COLUMNS if hasattr(t, c)},
                    "entry_ts": t.entry_ts_ms,
                    "exit_ts": t.exit_ts_ms,
                }
                for t in mine_t
            ],
            columns=TRADE_COLUMNS,
        )
        assert len(got) == len(trades), (p.name, len(got), len(trades))
        for col in TRADE_COLUMNS:
            a, b = got[col].to_numpy(), trades[col].to_numpy()
            if col in ("entry_ts", "exit_ts", "side", "bars_held", "reason"):
                assert list(a) == list(b), (p.name, col)
            else:
                np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9)
        eq = sorted(
            (r for k, r in tables["strategy_equity"].items() if k[:3] == (p.name, pair, tf)),
            key=lambda r: r.ts_ms,
        )
        assert [e.ts_ms for e in eq] == list(equity["ts"])
        assert [e.position for e in eq] == list(equity["position"])
        np.testing.assert_allclose(
            [e.equity for e in eq], equity["equity"].to_numpy(), rtol=0, atol=1e-9
        )
        st = tables["strategy_stats"][(p.name, pair, tf)]
        ref = stats.iloc[-1]
        assert st.ts_ms == ref["ts"] and st.trades == ref["trades"]
        for col in STATS_COLUMNS[2:]:
            a, b = getattr(st, col), ref[col]
            if b is None or (isinstance(b, float) and math.isnan(b)):
                assert a is None, (p.name, col, a)
            else:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (p.name, col)
        sig = sorted(
            (r.ts_ms, r.kind, r.zscore)
            for k, r in tables["signals"].items()
            if k[:3] == (p.name, pair, tf)
        )
        assert sig == sorted(signals.itertuples(index=False, name=None))
        compared["trades"] += len(trades)
        compared["equity"] += len(equity)
        compared["signals"] += len(signals)
    return compared


def make_rows(
    n: int, seed: int = 0, tf: str = "1s", t0: int = 1_723_075_200_000
) -> list[AnalyticsRow]:
    """A grid of rows with a mean-reverting z that crosses every threshold."""
    rng = random.Random(seed)
    tf_ms = TF_MS[tf]
    rows = []
    z, y, x = 0.0, 60_000.0, 3_000.0
    for i in range(n):
        z = 0.9 * z + rng.gauss(0, 0.9)
        y *= math.exp(rng.gauss(0, 5e-4))
        x *= math.exp(rng.gauss(0, 5e-4))
        zz = None if i % 37 == 5 else z
        rows.append(
            AnalyticsRow(
                PAIR,
                tf,
                t0 + i * tf_ms,
                60,
                y,
                x,
                0.1,
                1.1 + 0.01 * math.sin(i),
                0.0,
                zz,
                0.5,
                0.1,
                0.1,
                5.0,
                False,
                False,
                1.0,
            )  # fmt: skip
        )
    return rows


def test_in_order_rows_equal_the_reference() -> None:
    rows = make_rows(400, seed=1)
    state = new_key_state(PAIR, "1s", (S1, S2))
    out: list[Any] = []
    for i in range(0, len(rows), 17):  # batches of various sizes
        out += process(state, rows[i : i + 17])
    tables = apply(out)
    n = assert_matches_reference(tables, rows, (S1, S2))
    assert n["trades"] > 10 and n["signals"] > 20
    kinds = {k[4] for k in tables["signals"]}
    assert kinds == {"short_spread", "long_spread", "exit", "stop", "time"}
    # stats: one per strategy per batch (the latest), not one per row
    assert sum(isinstance(r, StrategyStats) for r in out) == 2 * math.ceil(400 / 17)


def amend(rows: list[AnalyticsRow], seed: int, start: int, length: int) -> list[AnalyticsRow]:
    """New values for rows[start:start+length] (as the analytics operator re-emits them)."""
    rng = random.Random(seed)
    out = []
    for r in rows[start : start + length]:
        z = None if r.zscore is None else r.zscore + rng.gauss(0, 1.5)
        out.append(replace(r, zscore=z, y_close=r.y_close * (1 + rng.gauss(0, 1e-4))))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_amendments_re_run_and_retract(seed: int) -> None:
    """Rows, then re-emitted rows for earlier times (any size, one or several batches)."""
    rng = random.Random(seed)
    rows = make_rows(600, seed=seed)
    final = list(rows)
    state = new_key_state(PAIR, "1s", (S1, S2))
    out: list[Any] = []
    fed = 0
    while fed < len(rows):
        k = rng.randint(1, 40)
        out += process(state, rows[fed : fed + k])
        fed += k
        if fed > 50 and rng.random() < 0.5:
            length = rng.randint(1, 60)
            start = rng.randint(max(0, fed - 250), fed - 1)  # within the 5 min horizon
            new = amend(final, rng.randint(0, 10**9), start, min(length, fed - start))
            for r in new:
                final[(r.ts_ms - rows[0].ts_ms) // 1000] = r
            if len(new) > 8 or rng.random() < 0.5:
                out += process(state, new)  # one burst, one re-run
            else:
                for r in new:  # row by row
                    out += process(state, [r])
    tables = apply(out)
    assert_matches_reference(tables, final, (S1, S2))
    assert state.amendments > 0


def test_a_signal_that_no_longer_holds_is_retracted() -> None:
    rows = make_rows(200, seed=3)
    rows = [replace(r, zscore=0.0) for r in rows]
    rows[100] = replace(rows[100], zscore=2.5)  # short entry of 'a' at 100
    state = new_key_state(PAIR, "1s", (S1,))
    out = process(state, rows[:150])
    before = apply(out)
    assert [k[3:] for k in before["signals"]] == [
        (rows[100].ts_ms, "short_spread"),
        (rows[101].ts_ms, "exit"),
    ]
    assert len(before["strategy_trades"]) == 1
    fixed = replace(rows[100], zscore=1.0)  # the late bar: z never crossed
    final = [*rows[:100], fixed, *rows[101:]]
    out += process(state, [fixed, *rows[101:150]])
    out += process(state, rows[150:])
    after = apply(out)
    assert after["signals"] == {}
    assert after["strategy_trades"] == {}
    assert all(e.equity == 0.0 and e.position == 0 for e in after["strategy_equity"].values())
    assert_matches_reference(after, final, (S1,))


def test_open_trade_before_the_amendment_whose_exit_moves_is_replaced() -> None:
    rows = [replace(r, zscore=0.0) for r in make_rows(120, seed=4)]
    rows[10] = replace(rows[10], zscore=2.0)  # enter short at 11
    rows[11:60] = [replace(r, zscore=1.0) for r in rows[11:60]]  # held ...
    state = new_key_state(PAIR, "1s", (S1,))
    out = process(state, rows)  # ... exit decided at 60 (z = 0), filled at 61
    assert [t.exit_ts_ms for t in apply(out)["strategy_trades"].values()] == [rows[61].ts_ms]
    late = [replace(r, zscore=1.0) for r in rows[60:80]]  # the exit moves to 80
    final = [*rows[:60], *late, *rows[80:]]
    out += process(state, late)
    tables = apply(out)
    assert [t.exit_ts_ms for t in tables["strategy_trades"].values()] == [rows[81].ts_ms]
    assert_matches_reference(tables, final, (S1,))


def test_rows_older_than_the_horizon_are_dropped_and_counted() -> None:
    rows = make_rows(700, seed=5)
    state = new_key_state(PAIR, "1s", (S1,))
    process(state, rows)
    assert state.kept_ts[0] == rows[-1].ts_ms - 300_000 - 1000
    out = process(state, [replace(rows[100], zscore=9.0)])
    assert state.late_rows == 1
    assert [r for r in out if not isinstance(r, Stat)] == []
    assert Stat in {type(r) for r in out}


def test_snapshot_is_independent_and_resumes_with_changed_strategies() -> None:
    rows = make_rows(300, seed=6)
    logic = StrategiesLogic(None, (S1, S2))
    first, _ = logic.on_batch(rows[:150])
    defs = [r for r in first if isinstance(r, StrategyDef)]
    assert [d.name for d in defs] == ["a", "b"]
    snap = logic.snapshot()
    assert isinstance(snap, KeyState)
    resumed = StrategiesLogic(snap, (S1, S2))
    a, _ = logic.on_batch(rows[150:])
    b, _ = resumed.on_batch(rows[150:])
    strip = [r for r in a if not isinstance(r, Stat)]
    assert strip == [r for r in b if not isinstance(r, Stat)]
    s2b = replace(S2, entry=1.2)
    changed = StrategiesLogic(logic.snapshot(), (S1, s2b))
    assert changed.state is not None
    assert changed.state.states[0] is not None and changed.state.states[1].rows == 0
    assert changed.state.states[0].rows == 300


def test_logic_takes_lists_of_rows_as_the_rows_in_order() -> None:
    """What the flow sends (``keyed_batches.by_key``): lists give the outputs of the rows."""
    rows = make_rows(200, seed=8)
    one_by_one, _ = StrategiesLogic(None, (S1, S2)).on_batch(rows)
    listed, _ = StrategiesLogic(None, (S1, S2)).on_batch([rows[:70], rows[70:71], rows[71:]])
    strip = [r for r in one_by_one if not isinstance(r, Stat)]
    assert len(strip) > 200  # equity per row and strategy, and the signals
    assert [r for r in listed if not isinstance(r, Stat)] == strip


def run_operator(
    batches: list[list[AnalyticsRow]], strategies: Sequence[StrategyParams]
) -> list[Any]:
    """The operator in a Bytewax flow fed by TestingSource (one item per row, in order)."""
    flow = Dataflow("strategies_test")
    items = [r for b in batches for r in b]
    inp = op.input("inp", flow, TestingSource(items))
    out: list[Any] = []
    op.output("out", strategies_op("strategies", inp, strategies), TestingSink(out))
    run_main(flow)
    return out


def test_operator_in_a_flow_with_an_amended_row() -> None:
    rows = [replace(r, zscore=0.0) for r in make_rows(200, seed=7)]
    rows[50] = replace(rows[50], zscore=-2.0)  # long entry of both at 50
    rows[90] = replace(rows[90], zscore=1.6)  # short entry of 'a'
    other = [replace(r, pair="BTCUSDT/SOLUSDT") for r in rows]
    fixed = replace(rows[50], zscore=0.2)  # the late data: no entry at 50
    final = [*rows[:50], fixed, *rows[51:]]
    out = run_operator([rows[:120], other, [fixed], rows[120:]], (S1, S2))
    tables = apply(out)
    assert_matches_reference(tables, final, (S1, S2))
    assert_matches_reference(tables, other, (S1, S2), pair="BTCUSDT/SOLUSDT")
    assert not any(k[1:4] == (PAIR, "1s", rows[50].ts_ms) for k in tables["signals"])
    assert any(k[3] == rows[90].ts_ms for k in tables["signals"])
    assert set(tables["strategies"]) == {("a",), ("b",)}


# ------------------------------------------------------------- the whole flow into DuckDB

RECORDING = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "recordings"
    / "binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
)
FLOW_STRATEGIES = (
    "o:model=ols,entry=1.5,exit=0.25,stop=3.5,fee_bps=5;"
    "k:model=kalman,entry=1.5,exit=0.5,stop=0,max_hold=30,fee_bps=5"
)


def _ms(s: pd.Series) -> np.ndarray:
    return (
        (s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ms]"))
        .astype("int64")
        .to_numpy()
    )


def db_tables(db: Path) -> dict[str, dict[tuple[Any, ...], Any]]:
    """The strategy tables of a DuckDB file as the records they hold (for the comparison)."""
    out: dict[str, dict[tuple[Any, ...], Any]] = {t: {} for t in KEYS}
    with duckdb.connect(str(db), read_only=True) as con:
        sig = con.execute("SELECT * FROM signals").df()
        tr = con.execute("SELECT * FROM strategy_trades").df()
        eq = con.execute("SELECT * FROM strategy_equity").df()
        st = con.execute("SELECT * FROM strategy_stats").df()
        defs = con.execute("SELECT * FROM strategies").fetchall()
    for r, ts in zip(sig.to_dict("records"), _ms(sig["ts"]), strict=True):
        rec = Signal(r["pair"], r["tf"], int(ts), r["kind"], r["zscore"], r["strategy"])
        out["signals"][(rec.strategy, rec.pair, rec.tf, rec.ts_ms, rec.kind)] = rec
    for r, a, b in zip(tr.to_dict("records"), _ms(tr["entry_ts"]), _ms(tr["exit_ts"]), strict=True):
        vals = {k: v for k, v in r.items() if k not in ("entry_ts", "exit_ts")}
        t = StrategyTrade(entry_ts_ms=int(a), exit_ts_ms=int(b), **vals)
        out["strategy_trades"][(t.strategy, t.pair, t.tf, t.entry_ts_ms)] = t
    for r, ts in zip(eq.to_dict("records"), _ms(eq["ts"]), strict=True):
        e = EquityPoint(r["strategy"], r["pair"], r["tf"], int(ts), r["position"], r["equity"])
        out["strategy_equity"][(e.strategy, e.pair, e.tf, e.ts_ms)] = e
    for r, ts in zip(st.to_dict("records"), _ms(st["ts"]), strict=True):
        vals = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in r.items()
            if k != "ts"
        }
        s = StrategyStats(ts_ms=int(ts), **vals)
        out["strategy_stats"][(s.strategy, s.pair, s.tf)] = s
    for name, params in defs:
        out["strategies"][(name,)] = StrategyDef(name, params)
    return out


def db_analytics_rows(db: Path) -> list[AnalyticsRow]:
    """The final ``analytics`` table as rows (only the columns the strategies read)."""
    with duckdb.connect(str(db), read_only=True) as con:
        df = con.execute("SELECT * FROM analytics ORDER BY pair, tf, ts").df()
    ts = _ms(df["ts"])
    names = {f.name for f in dataclasses.fields(AnalyticsRow)}
    rows = []
    for r, t in zip(df.to_dict("records"), ts, strict=True):
        vals = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in r.items()
            if k in names
        }
        rows.append(AnalyticsRow(ts_ms=int(t), **vals))
    return rows


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("strategies") / "flow.db"
    settings = settings_for(
        db,
        source=f"replay:{RECORDING}",
        replay_speed="max",
        windows="1s=60",
        strategies=FLOW_STRATEGIES,
    )
    run_flow(settings)
    return db


def test_flow_tables_equal_the_reference_on_the_final_analytics(replayed: Path) -> None:
    rows = db_analytics_rows(replayed)
    strategies = parse_strategies(FLOW_STRATEGIES)
    tables = db_tables(replayed)
    n = assert_matches_reference(tables, rows, strategies)
    print(f"\nflow vs reference: {len(rows)} analytics rows, compared {n}")
    assert n["trades"] >= 10 and n["equity"] == 2 * len(rows)
    assert {k[0] for k in tables["strategy_trades"]} >= {"o"}
    assert tables["strategies"][("o",)].params == strategies[0].params_json()
    if any(r.kalman_zscore is not None for r in rows):
        assert any(k[0] == "k" for k in tables["strategy_trades"])


def test_rerun_with_other_thresholds_keeps_only_the_new_signals(
    replayed: Path, tmp_path: Path
) -> None:
    """Issue 11 (e): thresholds changed between two runs into one DB."""
    db = tmp_path / "rerun.db"
    shutil.copy(replayed, db)
    first = db_tables(db)
    assert any(k[0] == "o" for k in first["signals"])
    changed = "o:model=ols,entry=2.5,exit=0,stop=0,fee_bps=5"  # 'k' dropped, 'o' changed
    settings = settings_for(
        db, source=f"replay:{RECORDING}", replay_speed="max", windows="1s=60", strategies=changed
    )
    run_flow(settings)
    tables = db_tables(db)
    rows = db_analytics_rows(db)
    assert_matches_reference(tables, rows, parse_strategies(changed))
    assert set(tables["signals"]) != {k for k in first["signals"] if k[0] == "o"}
    assert tables["strategies"][("o",)].params == parse_strategies(changed)[0].params_json()
    # 'k' was not re-run: its rows and stored params stay as they were
    assert {k: v for k, v in tables["signals"].items() if k[0] == "k"} == {
        k: v for k, v in first["signals"].items() if k[0] == "k"
    }
    # the same parameters again: nothing is deleted, the same rows remain
    run_flow(settings)
    again = db_tables(db)
    assert again["signals"] == tables["signals"]
    assert again["strategy_trades"] == tables["strategy_trades"]
