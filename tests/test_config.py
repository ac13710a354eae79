"""pairflow.config: defaults, precedence, and actionable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairflow.config import ConfigError, load_settings, redact_url
from pairflow.testing import RECORDING
from sources.registry import BinanceConfig, ReplayConfig


def test_config_defaults_match_design():
    s = load_settings({})
    assert s.source_kind == "binance"
    assert s.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.pairs == (("BTCUSDT", "ETHUSDT"),)
    assert s.db_path == Path("data/quant_data.db")
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.windows == {"1s": 300, "1m": 120, "5m": 60}
    assert isinstance(s.source, BinanceConfig)
    assert (s.entry_z, s.exit_z) == (2.0, 0.5)


def test_config_symbols_are_case_insensitive_and_pairs_default_to_first_vs_others():
    s = load_settings({"PAIRFLOW_SYMBOLS": "btcusdt, ethusdt,SOLUSDT,btcusd_perp"})
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BTCUSD_PERP")
    assert s.pairs == (("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "SOLUSDT"), ("BTCUSDT", "BTCUSD_PERP"))


def test_config_empty_redis_url_turns_the_tee_off():
    assert load_settings({"PAIRFLOW_REDIS_URL": ""}).redis_url is None


def test_config_windows_left_out_get_no_analytics():
    assert load_settings({"PAIRFLOW_WINDOWS": "1m=50"}).windows == {"1m": 50}


def test_config_replay_source_speed_and_loop(tmp_path):
    rec = tmp_path / "r.ndjson"
    rec.write_text("{}\n")
    s = load_settings(
        {
            "PAIRFLOW_SOURCE": f"replay:{rec}",
            "PAIRFLOW_REPLAY_SPEED": "2.5",
            "PAIRFLOW_REPLAY_LOOP": "1",
        }
    )
    assert s.source == ReplayConfig(paths=(rec,), speed=2.5, loop=True)
    assert not s.event_time_only


def test_config_toml_sets_keys_and_env_wins(tmp_path):
    toml = tmp_path / "pairflow.toml"
    toml.write_text('symbols = "ethusdt,btcusdt"\nPAIRFLOW_ENTRY_Z = 3\nwindows = "1s=40"\n')
    s = load_settings({"PAIRFLOW_CONFIG": str(toml), "PAIRFLOW_WINDOWS": "1m=30"})
    assert s.symbols == ("ETHUSDT", "BTCUSDT")
    assert s.entry_z == 3.0
    assert s.windows == {"1m": 30}


REPLAY = {"PAIRFLOW_SOURCE": f"replay:{RECORDING}"}


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PAIRFLOW_SOURCE": "kafka"}, "binance (live); replay:PATHS"),
        ({"PAIRFLOW_SOURCE": "replay:/no/such/*.zip"}, "matches no file"),
        ({"PAIRFLOW_SYMBOLS": "btcusdt,,eth"}, "empty item"),
        ({"PAIRFLOW_SOURCE": "replay"}, "replay:PATH"),
        ({"PAIRFLOW_SOURCE": "replay:/no/such/file.gz"}, "does not exist or is not readable"),
        ({"PAIRFLOW_SYMBOLS": "BTC-USDT"}, "not a Binance symbol"),
        ({"PAIRFLOW_SYMBOLS": "BTCUSDT;DROP TABLE"}, "not a Binance symbol"),
        ({"PAIRFLOW_SYMBOLS": ""}, "PAIRFLOW_SYMBOLS is empty"),
        ({"PAIRFLOW_SYMBOLS": "BTCUSDT,btcusdt"}, "twice"),
        ({"PAIRFLOW_PAIRS": "BTCUSDT/SOLUSDT"}, "add it there"),
        ({"PAIRFLOW_PAIRS": "BTCUSDT"}, "write Y/X"),
        ({"PAIRFLOW_WINDOWS": "2h=100"}, "TF one of 1s, 1m, 5m"),
        ({"PAIRFLOW_WINDOWS": "1s=abc"}, "whole number >= 20"),
        ({"PAIRFLOW_WINDOWS": "1s=5"}, "whole number >= 20"),
        ({**REPLAY, "PAIRFLOW_REPLAY_SPEED": "fast"}, "must be max (as fast as possible) or a"),
        ({**REPLAY, "PAIRFLOW_REPLAY_LOOP": "maybe"}, "1 or 0"),
        ({"PAIRFLOW_SOURCE": "synthetic", "PAIRFLOW_SYNTHETIC_RATE": "0"}, "SYNTHETIC_RATE"),
        ({"PAIRFLOW_REDIS_URL": "localhost:6379"}, "redis"),
        ({"PAIRFLOW_BINANCE_WS": "http://x"}, "ws or wss"),
        ({"PAIRFLOW_ENTRY_Z": "1", "PAIRFLOW_EXIT_Z": "2"}, "must be below"),
        ({"PAIRFLOW_CONFIG": "/no/such.toml"}, "no such file"),
    ],
)
def test_config_errors_name_the_setting_and_the_fix(env, needle):
    with pytest.raises(ConfigError, match=None) as err:
        load_settings(env)
    assert needle in str(err.value)


def test_config_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "pairflow.toml"
    toml.write_text('sourc = "synthetic"\n')
    with pytest.raises(ConfigError, match="unknown key 'sourc'"):
        load_settings({"PAIRFLOW_CONFIG": str(toml)})


def test_redact_url_hides_passwords():
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert "s3cret" not in redact_url("rediss://tok3n@host")
    assert redact_url(None) == "(off)"


def test_config_binance_api_key_never_appears_in_repr():
    s = load_settings({"PAIRFLOW_BINANCE_API_KEY": "s3cretKEY", "PAIRFLOW_BINANCE_TUNING": "x=1"})
    assert isinstance(s.source, BinanceConfig)
    assert s.source.api_key == "s3cretKEY"
    assert "s3cretKEY" not in repr(s) and s.source.tuning == "x=1"
