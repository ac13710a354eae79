"""Replay of dumps and several files: merge resume, the paced replay clock, progress."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import sources.replay as replay_mod
from pairflow.records import SourceClock, Tick
from sources.history.progress import Progress
from sources.replay import ReplaySource, ReplayState
from tests.flowutil import drain
from tests.test_history_dumps import DAY, _write, trades_lines

if TYPE_CHECKING:
    import pandas as pd

SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})


def _recording_trades(recording: Path) -> pd.DataFrame:
    """The recording's trades (columns s, t, p, q, T, m; price and qty as sent, text).

    Sorted by symbol and trade id.
    """
    import gzip
    import json

    import pandas as pd

    rows = []
    with gzip.open(recording, "rt") as fh:
        for line in fh:
            d = json.loads(line)["data"]
            rows.append((d["s"], d["t"], d["p"], d["q"], d["T"], d["m"]))
    return pd.DataFrame(rows, columns=["s", "t", "p", "q", "T", "m"]).sort_values(["s", "t"])


@pytest.fixture(scope="module")
def dumps(tmp_path_factory, recording):
    df = _recording_trades(recording)
    tmp = tmp_path_factory.mktemp("dumps")
    return [
        _write(tmp / f"BTCUSDT-trades-{DAY}.zip", trades_lines(df[df.s == "BTCUSDT"], True, "ms")),
        _write(tmp / f"ETHUSDT-trades-{DAY}.csv", trades_lines(df[df.s == "ETHUSDT"], True, "us")),
    ]


def part_of(paths, speed=None, batch=1000, resume=None, every=None):
    src = ReplaySource(paths, speed, symbols=SYMBOLS, batch_size=batch, progress_every_s=every)
    return src.build_part("input", src.list_parts()[0], resume)


@pytest.mark.parametrize("single", [True, False])
def test_merged_replay_resumes_from_its_per_file_snapshot_exactly(dumps, single):
    paths = dumps[:1] if single else dumps
    whole = drain(part_of(paths, batch=999))
    part = part_of(paths, batch=999)
    first = part.next_batch() + part.next_batch() + part.next_batch()
    snap = part.snapshot()
    assert len(snap.per_file) == len(paths) and snap.lines_done == sum(snap.per_file)
    resumed = part_of(paths, batch=999, resume=snap)
    assert first + drain(resumed) == whole
    assert all(isinstance(t, Tick) for t in whole)


def test_snapshot_of_other_files_is_refused(dumps):
    with pytest.raises(ValueError, match="replay of 3 files"):
        part_of(dumps, resume=ReplayState(3, 0, 0, (1, 1, 1)))


def test_max_speed_emits_no_clock(dumps):
    assert not any(isinstance(x, SourceClock) for x in drain(part_of(dumps)))


def test_paced_replay_reports_replay_time_every_batch_and_every_idle_wake(dumps, monkeypatch):
    wall = [1_000_000]
    monkeypatch.setattr(replay_mod, "now_ms", lambda: wall[0])
    part = part_of(dumps, speed=0.5, batch=100_000)
    batch = part.next_batch()  # anchors replay time to the first trade at wall 1_000_000
    ticks = [x for x in batch if isinstance(x, Tick)]
    t0 = ticks[0].trade_time_ms
    assert batch[-1] == SourceClock(t0) and all(t.trade_time_ms == t0 for t in ticks)
    for step in (300, 1_000, 7_000):  # idle wakes and batches: clock = t0 + wall * 0.5
        wall[0] += step
        batch = part.next_batch()
        clock = batch[-1]
        assert isinstance(clock, SourceClock)
        want = t0 + (wall[0] - 1_000_000) // 2
        nxt = part.heap[0][0]
        assert clock.now_ms == min(want, nxt)
        assert all(t.trade_time_ms <= clock.now_ms for t in batch[:-1])
        assert nxt > clock.now_ms or nxt == clock.now_ms == want
        awake = part.next_awake()
        assert awake is not None
        assert 50 <= awake.timestamp() * 1000 - wall[0] <= replay_mod.MAX_IDLE_MS


def test_paced_ndjson_replay_reports_its_clock_too(recording, monkeypatch):
    wall = [5_000_000]
    monkeypatch.setattr(replay_mod, "now_ms", lambda: wall[0])
    src = ReplaySource(recording, 2.0, symbols=SYMBOLS, progress_every_s=None)
    part = src.build_part("input", src.list_parts()[0], None)
    first = part.next_batch()
    t0 = first[0].trade_time_ms
    assert first[-1] == SourceClock(t0)
    wall[0] += 1_000
    batch = part.next_batch()
    assert batch[-1] == SourceClock(t0 + 2_000)
    assert all(t.trade_time_ms <= t0 + 2_000 for t in batch[:-1])
    wall[0] += 10  # nothing due: an idle wake still reports the clock
    assert part.next_batch()[-1] == SourceClock(t0 + 2_020)


def test_progress_logs_a_line_when_not_on_a_terminal(dumps, caplog):
    caplog.set_level(logging.INFO, logger="pairflow.replay")
    part = part_of(dumps, every=0.0, batch=5_000)
    assert part.progress.bar is None  # pytest's stderr is no terminal
    drain(part)
    lines = [r.getMessage() for r in caplog.records if r.name == "pairflow.replay"]
    assert any(line.startswith("replay progress: ") and "ticks/s" in line for line in lines)
    assert "ETA" in lines[0] and "files" in lines[0]
    assert lines[-1].startswith("replay done: 2 files, 34,419 ticks")


def test_progress_line_counts_and_eta():
    t = [0.0]
    p = Progress(4, 1000, 5.0, tty=False, clock=lambda: t[0])
    t[0] = 10.0
    p.update(250, 1)
    assert p.line() == "replay progress: 1/4 files, 250 ticks, 25 ticks/s, ~25% done, ETA 0:00:30"


def test_progress_on_a_terminal_is_a_bar_with_files_ticks_rate_and_eta(capsys):
    p = Progress(3, 1000, 5.0, tty=True)
    assert p.bar is not None
    p.bar.delay = 0  # show at once (a real replay shows it after 2 s)
    p.update(400, 1)
    p.bar.refresh()
    text = capsys.readouterr().err
    p.close()
    assert "replay 1/3 files" in text and "400/1.00k" in text and "ticks/s" in text, text
    assert "<" in text  # tqdm's ETA ("elapsed<remaining")


def test_paced_dump_replay_gives_the_max_speed_bars(tmp_path, recording):
    """A slow-motion dump replay (its SourceClocks go through the flow) = max-speed bars.

    Final bars are exact even with a wall clock (amendments fix them); what the clock
    changes (no amendments, analytics on final bars) is the bar step's own test.
    """
    import pandas as pd

    from pairflow.testing.oracle import read_table
    from tests.flowutil import run_flow, settings_for

    df = _recording_trades(recording)
    df = df[df["T"] < df["T"].min() + 3_000]  # 3 s of trades: 6 s at 0.5x
    paths = [
        _write(tmp_path / f"{s}-trades-{DAY}.csv", trades_lines(df[df.s == s], True, "ms"))
        for s in ("BTCUSDT", "ETHUSDT")
    ]
    source = "replay:" + ",".join(map(str, paths))
    tables = []
    for speed in ("max", "0.5"):
        db = tmp_path / f"{speed}.db"
        run_flow(settings_for(db, source=source, replay_speed=speed, windows=""))
        tables.append(read_table(db, "bars", "symbol, tf, open_time"))
    assert len(tables[0]) >= 6
    pd.testing.assert_frame_equal(tables[0], tables[1])
