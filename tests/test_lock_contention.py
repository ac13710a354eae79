"""A read-only reader process in a tight loop while the flow writes: nothing is lost.

The reader (``benchmarks/lock_contention.py``) loops connect(read_only) -> count(*)
-> close on the flow's DuckDB file, while the whole flow (Redis tee, analytics)
replays three copies of the recording at max speed. The final ``bars`` must equal the
pandas oracle, the reader must never see an error other than the lock refusal nor a
row count going down, and both sides must have made progress. Timings are reported by
the benchmark, not asserted.
"""

from __future__ import annotations

from pairflow.testing.bench import make_recording
from pairflow.testing.lock_contention import run_contention


def test_reader_looping_on_the_db_while_the_flow_writes_loses_no_rows(tmp_path, recording):
    ticks = tmp_path / "x3.ndjson.gz"
    make_recording(ticks, 3 * 34_419, recording)

    result = run_contention(ticks, tmp_path, baselines=False)

    assert result.bars_match_oracle, result.oracle_message
    reader = result.reader
    assert reader.other_errors == 0, reader.samples
    assert reader.went_down == 0
    assert reader.ok > 0 and reader.attempts == reader.ok + reader.locked
    assert reader.last_count > 0
    assert result.contended.flushes >= 2
