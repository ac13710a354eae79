"""Soak: the whole flow in loop mode at max speed for ~25 s; memory and state stay flat.

A max-speed loop replay handles ~50,000 ticks and closes ~1,500 bars per second, so a
leak of one object per bar or per tick adds tens of thousands of objects (or tens of
megabytes) between the medians compared (~10 s apart, after a 10 s warm-up). Operator
state is measured directly: every stateful step's pickled snapshot (what recovery
would store) must stay flat. The bounds are well above a clean run's noise (see
``docs/benchmarks.md``) and well under what a leak adds;
``test_soak_bounds_catch_a_per_bar_leak`` proves it for closed bars never pruned.
"""

from __future__ import annotations

from operators.bars import BarLogic
from pairflow.testing.soak import Sample, run_in_process_soak, summarize

SECONDS = 25.0
EVERY = 2.5
WARMUP = 10.0
WINDOWS = "1s=300,1m=120,5m=60"

RSS_GROWTH_MB = 40.0
"""A clean run grows < 5 MB; a per-tick leak of ~100 bytes adds ~50 MB in 10 s."""
GC_GROWTH = 8_000
"""A clean run moves < 4,000 (batches in flight); one gc-tracked object leaked per bar
adds ~15,000 in the measured 10 s (at ~1,500 bars/s)."""
STATE_GROWTH_REL = 0.10
STATE_GROWTH_ABS = 16 * 1024


def soak_violations(samples: list[Sample]) -> list[str]:
    """Every bound the samples break (empty when the flow is flat)."""
    problems = []
    after = [s for s in samples if s.t_s >= WARMUP]
    if len(after) < 4:
        problems.append(f"only {len(after)} samples after warm-up")
    if samples[-1].ticks < 200_000:
        problems.append(f"the flow only processed {samples[-1].ticks} ticks")
    rss = summarize(samples, lambda s: s.rss_mb, WARMUP)
    if rss.growth > RSS_GROWTH_MB:
        problems.append(f"RSS grew {rss.growth:.1f} MB after warm-up ({rss.warm:.0f} MB)")
    objects = summarize(samples, lambda s: float(s.gc_objects or 0), WARMUP)
    if objects.growth > GC_GROWTH:
        problems.append(f"gc objects grew by {objects.growth:,.0f} after warm-up")
    steps = {k for s in samples for k in s.state_bytes}
    if not {"sequence", "bars", "analytics"} <= steps:
        problems.append(f"stateful steps not probed: {sorted(steps)}")
    for step in sorted(steps):
        st = summarize(samples, lambda s, k=step: float(s.state_bytes.get(k, 0)), WARMUP)
        if st.growth > STATE_GROWTH_REL * st.warm + STATE_GROWTH_ABS:
            problems.append(f"state of {step} grew {st.growth:,.0f} B from {st.warm:,.0f} B")
    return problems


def test_soak_rss_objects_and_operator_state_stay_bounded(tmp_path, redis_prefix):
    samples = run_in_process_soak(SECONDS, EVERY, WINDOWS, tmp_path, redis_prefix)
    assert not soak_violations(samples), samples


def test_soak_bounds_catch_a_per_bar_leak(tmp_path, redis_prefix, monkeypatch):
    """The same soak fails when closed bars are never pruned (a per-bar state leak)."""
    monkeypatch.setattr(BarLogic, "_prune", lambda self, tf: None)
    samples = run_in_process_soak(SECONDS, EVERY, WINDOWS, tmp_path, redis_prefix)
    problems = soak_violations(samples)
    assert any("state of bars grew" in p for p in problems), problems
