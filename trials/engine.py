"""Run one trial: feasibility -> load -> prune -> runtime -> measure -> report.

Outcomes map here and only here: infeasible (before anything loads), oom, failed, ok.
The report is written to `<out_dir>/report.json` before anyone logs it.
"""
from __future__ import annotations

import gc
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from trials import feasibility, hardware
from trials.data import calibration_slice, eval_slice, load_examples
from trials.measure import MODEL_SIZE, PEAK_MEMORY, LatencyTracker, MemoryTracker, pin_threads, rss_mb
from trials.quality import rouge
from trials.spec import TrialReport, TrialSpec

DEFAULT_OUT = Path(".infersweep") / "trials"
CALIBRATION_DOCS = 8
SAMPLE_SUMMARIES = 3


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 4)


def trial_dir(spec: TrialSpec, out_dir: Path | str | None) -> Path:
    base = Path(out_dir) if out_dir else DEFAULT_OUT / spec.trial_id()
    base.mkdir(parents=True, exist_ok=True)
    return base


def run_trial(spec: TrialSpec, out_dir: Path | str | None = None) -> TrialReport:
    """Run `spec` and return its report (also written to report.json in the trial dir)."""
    workdir = trial_dir(spec, out_dir)
    hw = hardware.detect()
    base = dict(spec=spec, hardware=hw.as_dict(), versions=hardware.library_versions())
    reason = feasibility.check(spec, hw)
    if reason:
        report = TrialReport(status="infeasible", reason=reason, **base)
    else:
        phases = PhaseTimer()
        try:
            report = TrialReport(status="ok", phases_s=phases.seconds, **base, **_measure(spec, workdir, phases))
        except Exception as exc:  # the outcome of a trial, never a crash of the sweep
            report = TrialReport(status=_status_of(exc), reason=_reason_of(exc),
                                 phases_s=phases.seconds, **base)
    write_report(report, workdir)
    return report


def write_report(report: TrialReport, workdir: Path) -> Path:
    """Atomically write report.json (a reader never sees half a file)."""
    path = Path(workdir) / "report.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(report.to_json())
    os.replace(tmp, path)
    return path


def _status_of(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "outofmemory" in text:
        return "oom"
    return "failed"


def _reason_of(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _measure(spec: TrialSpec, workdir: Path, phase) -> dict:
    from trials.models import get_adapter
    from trials.runtimes import get_runtime

    pin_threads(spec.cpus)
    with phase("data"):
        examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
        evaluation = eval_slice(examples, spec.n, spec.seed)
        calibration = calibration_slice(examples, spec.n, CALIBRATION_DOCS, spec.seed)
    start_mb = rss_mb()
    with phase("load"):
        adapter = get_adapter(spec.task)(spec)
    calibration_docs = [e.document for e in calibration]
    with phase("prune"):
        pruning_facts = prune_model(adapter, spec, calibration_docs)
    with phase("prepare"):
        engine = get_runtime(spec.runtime).prepare(adapter.prepared_model(calibration_docs), spec, workdir)
        adapter.module = None  # serve from the engine alone: the source weights are not counted
        gc.collect()
    with phase("tokenize"):
        batches = adapter.batches([e.document for e in evaluation], spec.batch_size)
    with MemoryTracker(spec.device, start_mb=start_mb) as memory:
        with phase("warmup"):
            for batch in (batches * spec.warmup)[: spec.warmup]:
                adapter.summarize_batch(batch, engine)
        latency = LatencyTracker(spec.device)
        with phase("timed"):
            summaries = _timed_passes(adapter, engine, batches, spec.repeats, latency)
    with phase("rouge"):
        quality = rouge(summaries, [e.summary for e in evaluation])
    metrics = {**latency.metrics(), **quality,
               PEAK_MEMORY: memory.peak_growth_mb(), MODEL_SIZE: engine.size_mb()}
    artifact = {"path": str(engine.artifact_path or ""), **getattr(engine, "cache_info", {})}
    engine.close()
    notes = [pruning_facts.pop("note")] if "note" in pruning_facts else []
    artifact.update(pruning_facts)
    return dict(metrics=metrics, artifact=artifact, notes=notes,
                sample_summaries=summaries[:SAMPLE_SUMMARIES])


def calibration_documents(spec: TrialSpec) -> list[str]:
    """The documents a trial calibrates on (disjoint from its evaluation slice)."""
    examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
    return [e.document for e in calibration_slice(examples, spec.n, CALIBRATION_DOCS, spec.seed)]


def pruning_calibrates(spec: TrialSpec) -> bool:
    """Whether the spec's pruning ranks units by activations on the calibration documents."""
    return spec.pruning == "structured" and spec.structured.importance == "activation"


def prune_model(adapter, spec: TrialSpec, calibration_docs: list[str]) -> dict:
    """Apply the spec's pruning to the adapter's model in place; the same in a trial and in promotion.

    Structured pruning ranks heads and neurons by their activations on the calibration documents
    (or by weight norms), with the per-kind ratios of `spec.structured` where given.
    """
    from trials.pruning import apply_pruning

    if spec.pruning != "structured":
        return apply_pruning(adapter.module, spec.pruning, spec.prune_ratio)
    how = spec.structured
    scored_on = adapter.prepared_model(calibration_docs).calibration_inputs if pruning_calibrates(spec) else None
    return apply_pruning(adapter.module, "structured", spec.prune_ratio, calibration=scored_on,
                         importance=how.importance, head_ratio=how.head_ratio, ffn_ratio=how.ffn_ratio)


def _timed_passes(adapter, engine, batches, repeats: int, latency: LatencyTracker) -> list[str]:
    summaries: list[str] = []
    for rep in range(repeats):
        for batch in batches:
            out = latency.time(lambda: adapter.summarize_batch(batch, engine), batch.size)
            if rep == 0:
                summaries.extend(out)
    return summaries
