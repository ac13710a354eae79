"""sinks.redis_sink against real Redis servers: IDs, dedupe, outages, backlog."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pairflow.testing.oracle import compare_bars, read_table, resample_bars, trades_from_file
from pairflow.testing.ticks import BASE_MS, tick
from sinks.redis_sink import RedisTeePartition
from tests.flowutil import run_flow, settings_for

REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server on a free port that a test can stop and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (apt-get install redis-server)"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        pytest.fail("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    yield server
    server.stop()


def test_tee_writes_id_from_trade_time_and_id_with_exact_fields(redis_prefix, redis_client):
    part = RedisTeePartition(REDIS_URL, 1000, key_prefix=redis_prefix)
    part.write_batch([[tick(7, 5, 123.45, 0.5, maker=True), tick(8, 6, 123.5, 0.25)]])
    part.close()
    entries = redis_client.xrange(f"{redis_prefix}ticks:BTCUSDT")
    assert entries == [
        (f"{BASE_MS + 5}-7", {"p": "123.45000000", "q": "0.50000000", "m": "true"}),
        (f"{BASE_MS + 6}-8", {"p": "123.50000000", "q": "0.25000000", "m": "false"}),
    ]


def test_tee_counts_refused_duplicates_instead_of_failing(redis_prefix, redis_client):
    part = RedisTeePartition(REDIS_URL, 1000, key_prefix=redis_prefix)
    batch = [[tick(i, i) for i in range(1, 6)]]
    part.write_batch(batch)
    part.write_batch(batch)
    part.write_batch([[tick(6, 6)]])
    part.settle()  # replies of the batch in flight
    assert (part.written_total, part.duplicates_total) == (6, 5)
    assert redis_client.xlen(f"{redis_prefix}ticks:BTCUSDT") == 6
    part.close()


def test_tee_warns_once_with_the_fix_when_most_ticks_are_refused(redis_prefix, caplog):
    """A second run over the same keys (the demo left newer IDs): one clear warning."""
    part = RedisTeePartition("redis://:s3cretpw@127.0.0.1:6379/0", 10_000, key_prefix=redis_prefix)
    batch = [[tick(i, i) for i in range(1, 1_501)]]
    part.write_batch(batch)
    assert "refused as duplicates" not in caplog.text
    with caplog.at_level("WARNING", logger="sinks.redis_sink"):
        part.write_batch(batch)
        part.write_batch(batch)
    warnings = [r for r in caplog.records if "refused as duplicates" in r.getMessage()]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "PAIRFLOW_REDIS_PREFIX" in text and "1500 of 3000" in text
    assert "s3cretpw" not in caplog.text
    part.close()


def test_tee_caps_streams_with_approximate_maxlen(redis_prefix, redis_client):
    part = RedisTeePartition(REDIS_URL, 100, key_prefix=redis_prefix)
    part.write_batch([[tick(i, i) for i in range(1, 5001)]])
    part.close()
    length = redis_client.xlen(f"{redis_prefix}ticks:BTCUSDT")
    assert 100 <= length < 1000


def test_tee_when_redis_down_mid_run_keeps_backlog_and_writes_it_when_back(own_redis):
    own_redis.start()
    clock = {"now": 0}
    part = RedisTeePartition(own_redis.url, 10_000, clock_ms=lambda: clock["now"])
    part.write_batch([[tick(1, 1), tick(2, 2)]])
    part.settle()
    assert part.up is True
    own_redis.stop()
    part.write_batch([[tick(3, 3)]])
    part.settle()  # the send may reach the socket; its reply cannot come
    assert part.up is False and len(part.backlog) == 1
    retry_at = part.retry_at_ms
    part.write_batch([[tick(4, 4)]])  # before retry time: no attempt, just queued
    assert part.retry_at_ms == retry_at and len(part.backlog) == 2
    own_redis.start()  # fresh, empty server on the same port
    clock["now"] = retry_at
    part.write_batch([[tick(5, 5)]])
    part.settle()
    assert part.up is True and not part.backlog
    ids = [e[0].decode() for e in redis.Redis(port=own_redis.port).xrange("ticks:BTCUSDT")]
    assert ids == [f"{BASE_MS + i}-{i}" for i in (3, 4, 5)]
    part.close()


def test_tee_resends_a_batch_whose_replies_were_lost_with_the_connection(own_redis):
    own_redis.start()
    clock = {"now": 0}
    part = RedisTeePartition(own_redis.url, 10_000, clock_ms=lambda: clock["now"])
    part.write_batch([[tick(0, 0)]])
    part.settle()  # connected, script loaded
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)  # the server takes the bytes, never answers
    part.write_batch([[tick(1, 1), tick(2, 2)]])  # in flight
    own_redis.proc.kill()  # dies without answering
    own_redis.proc.wait(10)
    own_redis.proc = None
    own_redis.start()  # a fresh, empty server on the same port
    part.write_batch([[tick(3, 3)]])  # reading the old replies fails: requeued, backoff
    assert part.up is False and [t.trade_id for t in part.backlog] == [1, 2, 3]
    clock["now"] = part.retry_at_ms
    part.write_batch([[tick(4, 4)]])
    part.close()
    ids = [e[0].decode() for e in redis.Redis(port=own_redis.port).xrange("ticks:BTCUSDT")]
    assert ids == [f"{BASE_MS + i}-{i}" for i in (1, 2, 3, 4)]
    assert part.written_total == 5  # tick 0 went to the server that died


def test_tee_reloads_its_script_after_a_script_flush_and_loses_nothing(own_redis):
    own_redis.start()  # a private server: SCRIPT FLUSH touches no other test
    client = redis.Redis(port=own_redis.port, decode_responses=True)
    part = RedisTeePartition(own_redis.url, 1000)
    part.write_batch([[tick(1, 1)]])
    part.settle()
    client.script_flush()
    part.write_batch([[tick(2, 2)]])  # sent with the flushed script's SHA: NOSCRIPT
    part.close()
    ids = [e[0] for e in client.xrange("ticks:BTCUSDT")]
    assert ids == [f"{BASE_MS + i}-{i}" for i in (1, 2)]
    assert (part.written_total, part.errors_total) == (2, 0)


def test_tee_counts_go_to_the_stats_hash(redis_prefix, redis_client):
    part = RedisTeePartition(REDIS_URL, 1000, key_prefix=redis_prefix, clock_ms=lambda: 1234)
    part.write_batch([[tick(1, 1), tick(2, 2)]])
    part.write_batch([[tick(2, 2)]])
    part.close()
    stats = redis_client.hgetall(f"{redis_prefix}pairflow:stats:tee")
    assert stats == {"written_total": "2", "duplicates_total": "1", "updated_ms": "1234"}


def test_tee_backoff_grows_and_is_capped(own_redis):
    clock = {"now": 0}
    part = RedisTeePartition(own_redis.url, 10, clock_ms=lambda: clock["now"], backoff_cap_s=1.0)
    delays = []
    for i in range(8):
        part.write_batch([[tick(i + 1, i)]])
        delays.append(part.retry_at_ms - clock["now"])
        clock["now"] = part.retry_at_ms
    assert delays[:4] == [100, 200, 400, 800] and max(delays) == 1000
    assert len(part.backlog) == 8


def test_tee_backlog_is_bounded_and_drops_are_counted(own_redis):
    part = RedisTeePartition(own_redis.url, 10, backlog_max=5)
    part.write_batch([[tick(i, i) for i in range(1, 9)]])
    assert len(part.backlog) == 5 and part.dropped_total == 3
    assert [t.trade_id for t in part.backlog] == [4, 5, 6, 7, 8]


def test_flow_when_redis_unreachable_still_writes_exact_bars(recording, tmp_path):
    db = tmp_path / "noredis.db"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        db, source=f"replay:{recording}", replay_speed="max", windows="", redis_url=dead
    )
    started = time.monotonic()
    run_flow(settings)
    elapsed = time.monotonic() - started
    compare_bars(
        read_table(db, "bars", "symbol, tf, open_time"), resample_bars(trades_from_file(recording))
    )
    assert elapsed < 60, "an unreachable Redis must not stall the flow"
