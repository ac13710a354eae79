"""PAIRFLOW_GC_THRESHOLDS: parsing, applying, and that only the process entry points apply it."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from pairflow.config import ConfigError, Settings, load_settings, parse_gc_thresholds
from pairflow.gc_tuning import apply_gc_thresholds
from pairflow.testing import ROOT


@pytest.fixture
def restore_gc():
    """Put the interpreter's thresholds back after a test that changes them."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50000,20,100", (50_000, 20, 100)),
        (" 1000 , 5 ,7 ", (1000, 5, 7)),
        ("700,10,10", (700, 10, 10)),
        ("default", None),
        ("DEFAULT", None),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_gc_thresholds_when_valid_returns_triple_or_none(text, expected):
    assert parse_gc_thresholds(text) == expected


@pytest.mark.parametrize(
    "text", ["1,2", "1,2,3,4", "0,10,10", "700,0,10", "a,b,c", "-1,2,3", "7e2,10,10"]
)
def test_parse_gc_thresholds_when_invalid_says_what_to_write(text):
    with pytest.raises(ConfigError, match=r"PAIRFLOW_GC_THRESHOLDS must be three whole numbers"):
        parse_gc_thresholds(text)


def test_load_settings_gc_thresholds_default_and_override():
    assert load_settings({"PAIRFLOW_CONFIG": ""}).gc_thresholds == (50_000, 20, 100)
    assert Settings().gc_thresholds == (50_000, 20, 100)
    env = {"PAIRFLOW_CONFIG": "", "PAIRFLOW_GC_THRESHOLDS": "default"}
    assert load_settings(env).gc_thresholds is None
    env["PAIRFLOW_GC_THRESHOLDS"] = "2000,3,4"
    assert load_settings(env).gc_thresholds == (2000, 3, 4)


def test_apply_gc_thresholds_sets_them_and_returns_the_previous(restore_gc):
    gc.set_threshold(700, 10, 10)
    assert apply_gc_thresholds((12_345, 7, 9)) == (700, 10, 10)
    assert gc.get_threshold() == (12_345, 7, 9)
    assert apply_gc_thresholds(None) == (12_345, 7, 9)
    assert gc.get_threshold() == (12_345, 7, 9)


def _flow_env(setting: str, tmp_path) -> dict[str, str]:
    """Settings of a small synthetic flow (no Redis) with ``PAIRFLOW_GC_THRESHOLDS``."""
    return {
        "PAIRFLOW_CONFIG": "",
        "PAIRFLOW_SOURCE": "synthetic",
        "PAIRFLOW_REDIS_URL": "",
        "PAIRFLOW_DB": str(tmp_path / "x.db"),
        "PAIRFLOW_GC_THRESHOLDS": setting,
    }


def test_build_leaves_the_interpreters_gc_thresholds_alone(restore_gc, tmp_path):
    import dataflow

    gc.set_threshold(700, 10, 10)
    dataflow.build(load_settings(_flow_env("12345,7,9", tmp_path)))
    assert gc.get_threshold() == (700, 10, 10)


_PROBE = {
    # bytewax.run dataflow: the module attribute ``flow`` is built from the environment
    "bytewax.run": "import gc, dataflow; dataflow.flow; print(gc.get_threshold())",
    # python dataflow.py: main() up to Bytewax's cli_main, which is replaced by a probe
    "dataflow.py": (
        "import gc, bytewax.run, dataflow\n"
        "bytewax.run.cli_main = lambda *a, **k: print(gc.get_threshold())\n"
        "dataflow.main([])"
    ),
}


def _run_flow_process(args: list[str], setting: str, tmp_path) -> subprocess.CompletedProcess:
    """A Python process in the repository with a synthetic config and the GC setting."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **_flow_env(setting, tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("entry", sorted(_PROBE))
@pytest.mark.parametrize(
    ("setting", "expected"), [("12345,7,9", "(12345, 7, 9)"), ("default", "(700, 10, 10)")]
)
def test_entry_points_run_the_flow_with_the_configured_thresholds(
    entry, setting, expected, tmp_path
):
    out = _run_flow_process(["-c", _PROBE[entry]], setting, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expected in out.stdout.splitlines()


def test_entry_point_with_bad_gc_thresholds_exits_with_config_error(tmp_path):
    out = _run_flow_process([str(ROOT / "dataflow.py")], "lots", tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "PAIRFLOW_GC_THRESHOLDS must be three whole numbers" in out.stderr
    assert "Traceback" not in out.stderr
