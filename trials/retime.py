"""Time a variant again, and only time it: the head-to-head of a sweep's finalists.

The variant is rebuilt as its trial built it (same data slices, pruning and runtime; prepared
artifacts come from the artifact cache) and timed until stable; nothing else is measured. The
sweep driver calls `time_variant` in a fresh process per call and controls the order
(infersweep.sweeps.finalists).
"""
from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from infersweep.trials.spec import TrialSpec

__all__ = ["time_variant"]


def time_variant(spec: TrialSpec, workdir: Path | None = None) -> dict:
    """{"latency_ms_per_sample", "stable", "median_halfwidth_pct", "passes", "seconds", "load",
    "phases_s": {"build", "warmup", "timed"}} (the variant rebuilt, warmed up, timed: seconds).
    Without `workdir`, the runtime's files go to a temporary directory removed on return."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="infersweep-retime-") as scratch:
            return time_variant(spec, Path(scratch))
    from infersweep.trials.measure import LATENCY_PER_SAMPLE
    from infersweep.trials.runner import PhaseTimer, build_engine, timed_passes
    from infersweep.trials.timing import machine_state

    phases = PhaseTimer()
    with phases("build"):
        adapter, engine, evaluation = build_engine(spec, workdir)
        gc.collect()
    batches = adapter.batches([e.document for e in evaluation], spec.batch_size)
    with phases("warmup"):
        for batch in (batches * spec.warmup)[: spec.warmup]:
            adapter.summarize_batch(batch, engine)
    before = machine_state()
    with phases("timed"):
        _, run = timed_passes(adapter, engine, batches, spec)
        engine.close()
    summary = run.summary()
    return {LATENCY_PER_SAMPLE: run.metrics()[LATENCY_PER_SAMPLE], "stable": summary["stable"],
            "median_halfwidth_pct": summary["median_halfwidth_pct"], "passes": summary["passes"],
            "seconds": summary["seconds"], "load": [before.get("load_avg_1m"), machine_state().get("load_avg_1m")],
            "phases_s": phases.seconds}
