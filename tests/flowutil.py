"""Helpers to build and run the real pairflow dataflow in tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from bytewax.testing import run_main

import dataflow
from pairflow.config import Settings, load_settings
from pairflow.testing.bench import replay_settings, settings_env
from pairflow.testing.oracle import read_table
from sinks.schema import create_all


def settings_for(db: Path, **env: str) -> Settings:
    """Settings from an explicit environment (no process env, no pairflow.toml)."""
    base = {"PAIRFLOW_DB": str(db), "PAIRFLOW_REDIS_URL": "", "PAIRFLOW_CONFIG": ""}
    base.update({f"PAIRFLOW_{k.upper()}": v for k, v in env.items()})
    return load_settings({k: v for k, v in base.items() if v != "" or k != "PAIRFLOW_CONFIG"})


def run_flow(settings: Settings, **kwargs: Any) -> None:
    """Build and run the flow to completion in this thread."""
    run_main(dataflow.build(settings, **kwargs))


def synthetic_symbols(n: int) -> tuple[str, ...]:
    """``SYN00`` .. ``SYN{n-1}``: the symbols of a synthetic universe of ``n``."""
    return tuple(f"SYN{i:02d}" for i in range(n))


def run_clusters(
    db: Path,
    symbols: Sequence[str],
    duration_s: int,
    *,
    rate: int = 4,
    windows: str = "1s=60",
    scan_every: str = "1s=10",
) -> Settings:
    """Run a synthetic ``clusters`` universe of ``symbols`` (all pairs scanned) into ``db``."""
    settings = settings_for(
        db,
        source="synthetic",
        synthetic_universe="clusters",
        synthetic_duration_s=str(duration_s),
        synthetic_rate=str(rate),
        symbols=",".join(symbols),
        pairs="all",
        windows=windows,
        scan_every=scan_every,
    )
    run_flow(settings)
    return settings


def replay_env(db: Path, recording: Path, redis_prefix: str, windows: str) -> dict[str, str]:
    """Process environment for a max-speed replay run as a subprocess (real Redis)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env.update(settings_env(**replay_settings(recording, db, redis_prefix, windows)))
    return env


def empty_db(path: Path, *, tables: bool = True) -> Path:
    """A DuckDB file with pairflow's tables and no rows (or, ``tables=False``, no tables)."""
    con = duckdb.connect(str(path))
    try:
        if tables:
            create_all(con)
    finally:
        con.close()
    return path


def drain(part: Any, limit: int = 100_000) -> list[Any]:
    """Every batch of a source partition until it ends (fails after ``limit`` batches)."""
    out: list[Any] = []
    for _ in range(limit):
        try:
            out += part.next_batch()
        except StopIteration:
            return out
    msg = f"the source did not end within {limit:,} batches"
    raise AssertionError(msg)


def result_tables(db: Path) -> dict[str, pd.DataFrame]:
    """The keyed output tables of a run, ordered by key."""
    return {
        "bars": read_table(db, "bars", "symbol, tf, open_time"),
        "analytics": read_table(db, "analytics", "pair, tf, ts"),
        "signals": read_table(db, "signals", "pair, tf, ts, kind"),
    }
