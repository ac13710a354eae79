"""Helpers to build and run the real pairflow dataflow in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.testing import run_main

import dataflow
from pairflow.config import Settings, load_settings


def settings_for(db: Path, **env: str) -> Settings:
    """Settings from an explicit environment (no process env, no pairflow.toml)."""
    base = {"PAIRFLOW_DB": str(db), "PAIRFLOW_REDIS_URL": "", "PAIRFLOW_CONFIG": ""}
    base.update({f"PAIRFLOW_{k.upper()}": v for k, v in env.items()})
    return load_settings({k: v for k, v in base.items() if v != "" or k != "PAIRFLOW_CONFIG"})


def run_flow(settings: Settings, **kwargs: Any) -> None:
    """Build and run the flow to completion in this thread."""
    run_main(dataflow.build(settings, **kwargs))
