"""Parsing PAIRFLOW_STRATEGIES (pairflow.strategies.params)."""

from __future__ import annotations

import json
import pickle
from dataclasses import FrozenInstanceError

import pytest

from pairflow.strategies.params import StrategyParams, parse_strategies

EXAMPLE = (
    "default:model=ols,entry=2,exit=0.5,stop=4,max_hold=0,fee_bps=10,notional=10000;"
    "k:model=kalman,entry=1.5"
)


def test_parses_the_design_example_with_defaults_for_missing_keys() -> None:
    d, k = parse_strategies(EXAMPLE, entry_z=2.5, exit_z=0.25)
    assert d == StrategyParams("default", "ols", 2.0, 0.5, 4.0, 0, 10.0, 10_000.0)
    # k: entry given; exit from the caller's PAIRFLOW_EXIT_Z; the rest docs/design.md defaults.
    assert k == StrategyParams("k", "kalman", 1.5, 0.25, 4.0, 0, 10.0, 10_000.0)
    assert (k.z_column, k.beta_column) == ("kalman_zscore", "kalman_beta")
    assert (d.z_column, d.beta_column) == ("zscore", "beta")


@pytest.mark.parametrize("text", [None, "", "  ", ";"])
def test_blank_means_the_one_default_strategy_from_entry_and_exit_z(text: str | None) -> None:
    (p,) = parse_strategies(text, entry_z=3.0, exit_z=1.0)
    assert p == StrategyParams("default", "ols", 3.0, 1.0, 4.0, 0, 10.0, 10_000.0)


def test_whitespace_case_trailing_separator_and_bare_name() -> None:
    got = parse_strategies(" a : MODEL = Kalman , max_hold = 30 ; b ; ", entry_z=2, exit_z=0.5)
    assert [p.name for p in got] == ["a", "b"]
    assert (got[0].model, got[0].max_hold) == ("kalman", 30)
    assert got[1] == StrategyParams("b")


def test_params_json_is_canonical_and_excludes_the_name() -> None:
    (a,) = parse_strategies("a:entry=2,exit=0.5")
    (b,) = parse_strategies("b:exit=0.50,entry=2.0,stop=4,fee_bps=10,notional=1e4")
    assert a.params_json() == b.params_json()
    assert a.params_json() == (
        '{"entry":2.0,"exit":0.5,"fee_bps":10.0,"max_hold":0,"model":"ols",'
        '"notional":10000.0,"stop":4.0}'
    )
    assert json.loads(a.params_json())["max_hold"] == 0


def test_params_are_frozen_and_picklable() -> None:
    (p,) = parse_strategies(EXAMPLE.split(";")[1])
    with pytest.raises(FrozenInstanceError):
        p.entry = 3.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(p)) == p


def test_stop_zero_means_off_and_is_allowed() -> None:
    (p,) = parse_strategies("s:stop=0")
    assert p.stop == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:colour=red", "unknown key 'colour'"),
        ("a:model=arima", "model='arima' is unknown; use one of ols, kalman"),
        ("a:entry=2,exit=2", r"exit \(2.0\) must be below entry \(2.0\)"),
        ("a:entry=1.5,exit=1.6", "must be below entry"),
        ("a:exit=3", "must be below entry"),  # default entry 2
        ("a:entry=2,stop=2", "stop=2.0 must be 0 .off. or above entry"),
        ("a:stop=1", "stop=1.0 must be 0"),
        ("a:stop=-1", "stop=-1.0 must be 0"),
        ("a;a:entry=3", "'a' appears twice"),
        ("bad name:entry=2", "bad strategy name 'bad name'"),
        ("x" * 33, "bad strategy name"),
        ("a.b:entry=2", "bad strategy name 'a.b'"),
        (":entry=2", "bad strategy name ''"),
        ("entry=2", "has no name"),
        ("a:entry", "'entry' is not key=value"),
        ("a:entry=two", "entry='two' is not a number"),
        ("a:entry=nan", "entry='nan' must be a finite number"),
        ("a:notional=inf", "must be a finite number"),
        ("a:entry=0,exit=0", "entry=0.0 must be > 0"),
        ("a:exit=-0.1", "exit=-0.1 must be >= 0"),
        ("a:max_hold=1.5", "max_hold='1.5' must be a whole number"),
        ("a:max_hold=-2", "max_hold=-2 must be a whole number"),
        ("a:fee_bps=-1", "fee_bps=-1.0 must be >= 0"),
        ("a:notional=0", "notional=0.0 must be > 0"),
        ("a:entry=2,entry=3", "entry is given twice"),
    ],
)
def test_errors_are_value_errors_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_strategies(text)
    assert str(info.value).startswith("PAIRFLOW_STRATEGIES: ")


def test_error_names_the_strategy() -> None:
    with pytest.raises(ValueError, match="strategy 'k': "):
        parse_strategies("ok:entry=2;k:model=x")


def test_names_up_to_32_of_the_allowed_characters() -> None:
    name = "A-z_09" + "x" * 26
    (p,) = parse_strategies(name + ":entry=2")
    assert p.name == name
