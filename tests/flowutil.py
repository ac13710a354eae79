"""Helpers to build and run the real pairflow dataflow in tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from bytewax.testing import run_main

import dataflow
from pairflow.config import Settings, load_settings
from pairflow.testing.oracle import read_table

REDIS_URL = "redis://127.0.0.1:6379/0"


def settings_for(db: Path, **env: str) -> Settings:
    """Settings from an explicit environment (no process env, no pairflow.toml)."""
    base = {"PAIRFLOW_DB": str(db), "PAIRFLOW_REDIS_URL": "", "PAIRFLOW_CONFIG": ""}
    base.update({f"PAIRFLOW_{k.upper()}": v for k, v in env.items()})
    return load_settings({k: v for k, v in base.items() if v != "" or k != "PAIRFLOW_CONFIG"})


def run_flow(settings: Settings, **kwargs: Any) -> None:
    """Build and run the flow to completion in this thread."""
    run_main(dataflow.build(settings, **kwargs))


def replay_env(db: Path, recording: Path, redis_prefix: str, windows: str) -> dict[str, str]:
    """Process environment for a max-speed replay run as a subprocess (real Redis)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env.update(
        PAIRFLOW_SOURCE=f"replay:{recording}",
        PAIRFLOW_REPLAY_SPEED="max",
        PAIRFLOW_DB=str(db),
        PAIRFLOW_REDIS_URL=REDIS_URL,
        PAIRFLOW_REDIS_PREFIX=redis_prefix,
        PAIRFLOW_WINDOWS=windows,
    )
    return env


def result_tables(db: Path) -> dict[str, pd.DataFrame]:
    """The keyed output tables of a run, ordered by key."""
    return {
        "bars": read_table(db, "bars", "symbol, tf, open_time"),
        "analytics": read_table(db, "analytics", "pair, tf, ts"),
        "signals": read_table(db, "signals", "pair, tf, ts, kind"),
    }
