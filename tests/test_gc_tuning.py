"""PAIRFLOW_GC_THRESHOLDS and PAIRFLOW_SWITCH_INTERVAL_MS: parsing, applying, and that only
the process entry points apply them."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from pairflow.config import (
    ConfigError,
    Settings,
    load_settings,
    parse_gc_thresholds,
    parse_switch_interval,
)
from pairflow.gc_tuning import apply_gc_thresholds, apply_switch_interval
from pairflow.testing import ROOT


@pytest.fixture
def restore_gc():
    """Put the interpreter's thresholds back after a test that changes them."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


@pytest.fixture
def restore_switch():
    """Put the interpreter's switch interval back after a test that changes it."""
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1.0), (" 0.5 ", 0.5), ("1000", 1000.0), ("default", None), ("", None)],
)
def test_parse_switch_interval_when_valid_returns_ms_or_none(text, expected):
    assert parse_switch_interval(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "1001", "nan", "inf", "fast", "1ms"])
def test_parse_switch_interval_when_invalid_says_what_to_write(text):
    with pytest.raises(ConfigError, match=r"PAIRFLOW_SWITCH_INTERVAL_MS must be a number"):
        parse_switch_interval(text)


def test_load_settings_switch_interval_default_and_override():
    assert load_settings({"PAIRFLOW_CONFIG": ""}).switch_interval_ms == 1.0
    assert Settings().switch_interval_ms == 1.0
    env = {"PAIRFLOW_CONFIG": "", "PAIRFLOW_SWITCH_INTERVAL_MS": "default"}
    assert load_settings(env).switch_interval_ms is None
    env["PAIRFLOW_SWITCH_INTERVAL_MS"] = "0.25"
    assert load_settings(env).switch_interval_ms == 0.25


def test_apply_switch_interval_sets_it_and_returns_the_previous(restore_switch):
    sys.setswitchinterval(0.005)
    assert apply_switch_interval(2.0) == pytest.approx(0.005)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    assert apply_switch_interval(None) == pytest.approx(0.002)
    assert sys.getswitchinterval() == pytest.approx(0.002)


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


def _flow_env(setting: str, tmp_path, switch_ms: str = "1") -> dict[str, str]:
    """Settings of a small synthetic flow (no Redis) with the GC and switch settings."""
    return {
        "PAIRFLOW_CONFIG": "",
        "PAIRFLOW_SOURCE": "synthetic",
        "PAIRFLOW_REDIS_URL": "",
        "PAIRFLOW_DB": str(tmp_path / "x.db"),
        "PAIRFLOW_GC_THRESHOLDS": setting,
        "PAIRFLOW_SWITCH_INTERVAL_MS": switch_ms,
    }


def test_build_leaves_the_interpreters_gc_and_switch_settings_alone(
    restore_gc, restore_switch, tmp_path
):
    import dataflow

    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    dataflow.build(load_settings(_flow_env("12345,7,9", tmp_path, "0.25")))
    assert gc.get_threshold() == (700, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.005)


_SHOW = "print(gc.get_threshold(), round(sys.getswitchinterval() * 1e6))"
_PROBE = {
    # bytewax.run dataflow: the module attribute ``flow`` is built from the environment
    "bytewax.run": f"import gc, sys, dataflow; dataflow.flow; {_SHOW}",
    # python dataflow.py: main() up to Bytewax's cli_main, which is replaced by a probe
    "dataflow.py": (
        "import gc, sys, bytewax.run, dataflow\n"
        f"bytewax.run.cli_main = lambda *a, **k: {_SHOW}\n"
        "dataflow.main([])"
    ),
}


def _run_flow_process(
    args: list[str], setting: str, tmp_path, switch_ms: str = "1"
) -> subprocess.CompletedProcess:
    """A Python process in the repository with a synthetic config and the settings."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **_flow_env(setting, tmp_path, switch_ms)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("entry", sorted(_PROBE))
@pytest.mark.parametrize(
    ("setting", "switch_ms", "expected"),
    [("12345,7,9", "0.25", "(12345, 7, 9) 250"), ("default", "default", "(700, 10, 10) 5000")],
)
def test_entry_points_run_the_flow_with_the_configured_thresholds_and_switch_interval(
    entry, setting, switch_ms, expected, tmp_path
):
    out = _run_flow_process(["-c", _PROBE[entry]], setting, tmp_path, switch_ms)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expected in out.stdout.splitlines()


def test_entry_point_with_bad_gc_thresholds_exits_with_config_error(tmp_path):
    out = _run_flow_process([str(ROOT / "dataflow.py")], "lots", tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "PAIRFLOW_GC_THRESHOLDS must be three whole numbers" in out.stderr
    assert "Traceback" not in out.stderr
