"""Shared fixtures: the real recording, a real Redis with an isolated key prefix, temp DBs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pairflow.testing import RECORDING, REDIS_URL, ROOT

__all__ = ["RECORDING", "REDIS_URL", "ROOT"]


@pytest.fixture(scope="session")
def recording() -> Path:
    """The shipped real Binance recording (BTCUSDT + ETHUSDT, ~11 min)."""
    assert RECORDING.exists(), f"missing {RECORDING}"
    return RECORDING


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix on the real Redis server; its keys are deleted afterwards."""
    prefix = f"pftest:{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - CI starts redis-server
        pytest.fail(f"Redis is not running at {REDIS_URL} ({exc}); start redis-server")
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client for the real Redis server (decoded responses)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean ``PAIRFLOW_*`` environment without Redis (for the dashboard's AppTests)."""
    for name in list(os.environ):
        if name.startswith("PAIRFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PAIRFLOW_REDIS_URL", "")
