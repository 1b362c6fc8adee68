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
    """{"latency_ms_per_sample", "stable", "median_halfwidth_pct", "passes", "seconds", "load"}."""
    from infersweep.trials import hardware, runtimes
    from infersweep.trials.data import CALIBRATION_DOCS, load_examples, slices
    from infersweep.trials.measure import LATENCY_PER_SAMPLE, pin_threads
    from infersweep.trials.models import get_adapter
    from infersweep.trials.runner import prune_model, timed_passes, with_summary_length
    from infersweep.trials.timing import machine_state

    pin_threads(spec.cpus)
    examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
    plan = slices(examples, spec.n, CALIBRATION_DOCS, spec.seed)
    resolved, _ = with_summary_length(spec, plan)
    adapter = get_adapter(spec.task)(resolved)
    calibration = [e.document for e in plan.calibration]
    prune_model(adapter, spec, calibration)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="infersweep-retime-"))
    engine = runtimes.prepare(adapter.prepared_model(calibration), spec, workdir, hardware.detect())
    adapter.module = None
    gc.collect()
    batches = adapter.batches([e.document for e in plan.evaluation], spec.batch_size)
    for batch in (batches * spec.warmup)[: spec.warmup]:
        adapter.summarize_batch(batch, engine)
    before = machine_state()
    _, run = timed_passes(adapter, engine, batches, spec)
    engine.close()
    summary = run.summary()
    return {LATENCY_PER_SAMPLE: run.metrics()[LATENCY_PER_SAMPLE], "stable": summary["stable"],
            "median_halfwidth_pct": summary["median_halfwidth_pct"], "passes": summary["passes"],
            "seconds": summary["seconds"], "load": [before.get("load_avg_1m"), machine_state().get("load_avg_1m")]}
