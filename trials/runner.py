"""Run one trial: feasibility -> load -> prune -> runtime -> measure -> report.

Outcomes map here and only here: infeasible (before anything loads), oom, failed, ok.
The report is written to `<out_dir>/report.json` before anyone logs it.
"""
from __future__ import annotations

import gc
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from infersweep.trials import feasibility, hardware
from infersweep.trials.data import CALIBRATION_DOCS, Example, Slices, load_examples, slices
from infersweep.trials.measure import (MODEL_SIZE, PEAK_MEMORY, PREPARE_PEAK_MEMORY, LatencyTracker, MemoryTracker,
                            pin_threads)
from infersweep.trials.models.base import TokenTimed
from infersweep.trials.package import write_variant
from infersweep.trials.quality import mean_scores, rouge_per_document
from infersweep.trials.serving import serving_memory
from infersweep.trials.timing import LatencyRun, StabilityRule, machine_state
from infersweep.trials.spec import TrialReport, TrialSpec

DEFAULT_OUT = Path(".infersweep") / "trials"
SAMPLE_SUMMARIES = 3
AUTO_REFERENCES = 200  # summary_length auto: the references it reads (a median of 8 is too noisy)
AUTO_MIN_OUTSIDE = 20  # fewer references outside the evaluation: the evaluated ones are read too
VARIANT_DIR = "variant"  # the servable variant, written for the serving-memory process and then removed


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
    from infersweep.trials.affinity import current_cpus

    base = dict(spec=spec, hardware={**hw.as_dict(), "cpu_set": current_cpus()}, versions=provenance(spec))
    reason = feasibility.check(spec, hw)
    if reason:
        report = TrialReport(status="infeasible", reason=reason, **base)
    else:
        phases = PhaseTimer()
        try:
            report = TrialReport(status="ok", phases_s=phases.seconds, **base, **_measure(spec, workdir, phases, hw))
        except Exception as exc:  # the outcome of a trial, never a crash of the sweep
            report = TrialReport(status=_status_of(exc), reason=_reason_of(exc),
                                 phases_s=phases.seconds, **base)
    write_report(report, workdir)
    return report


def provenance(spec: TrialSpec) -> dict[str, str]:
    """What a result depends on besides its spec and hardware: library versions and the model's
    weights (`model_weights`, trials.models.weights_fingerprint); warm starts compare them."""
    from infersweep.trials.models import weights_fingerprint

    return {**hardware.library_versions(), "model_weights": weights_fingerprint(spec.model)}


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


def _measure(spec: TrialSpec, workdir: Path, phase, hw: hardware.Hardware) -> dict:
    from infersweep.trials import runtimes
    from infersweep.trials.models import get_adapter

    pin_threads(spec.cpus)
    with phase("data"):
        examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
        plan = slices(examples, spec.n, CALIBRATION_DOCS, spec.seed)
        evaluation, calibration = plan.evaluation, plan.calibration
        notes = data_notes(spec, plan)
        resolved, length_note = with_summary_length(spec, plan)  # a concrete summary length
        notes += length_note
    with MemoryTracker(spec.device) as preparing:
        with phase("load"):
            adapter = get_adapter(spec.task)(resolved)
        calibration_docs, calibration_refs = [e.document for e in calibration], bound_references(spec, calibration)
        with phase("prune"):
            pruning_facts = prune_model(adapter, spec, calibration_docs)
        with phase("save"):
            variant = write_variant(adapter, resolved, workdir / VARIANT_DIR, source=spec,
                                    calibration_documents=calibration_docs, calibration_references=calibration_refs)
        with phase("prepare"):
            engine = runtimes.prepare(adapter.prepared_model(calibration_docs, calibration_refs), spec, workdir, hw)
            adapter.module = None  # serve from the engine alone: the source weights are not counted
            gc.collect()
    with phase("tokenize"):
        batches = adapter.batches([e.document for e in evaluation], spec.batch_size)
    notes += adapter.input_notes() if isinstance(adapter, TokenTimed) else []
    with phase("warmup"):
        for batch in (batches * spec.warmup)[: spec.warmup]:
            adapter.summarize_batch(batch, engine)
    before = machine_state()
    with phase("timed"):
        summaries, latency = timed_passes(adapter, engine, batches, spec)
    first_attempt = None
    if not latency.stable():  # noisy: measured once more before it can count (or enter a frontier)
        first_attempt = {**latency.summary(), "before": before, "after": machine_state()}
        before = machine_state()
        with phase("timed_again"):
            _, latency = timed_passes(adapter, engine, batches, spec)
    artifact = {"path": str(engine.artifact_path or ""), **engine.cache_info}
    model_size = engine.size_mb()
    engine.close()
    with phase("serving"):
        serving = serving_memory(variant, [e.document for e in evaluation], spec.batch_size)
        shutil.rmtree(variant, ignore_errors=True)
    with phase("rouge"):
        per_document = rouge_per_document(summaries, [e.summary for e in evaluation])
    timing = {**latency.summary(), "before": before, "after": machine_state()}
    if first_attempt:
        timing["first_attempt"] = {k: v for k, v in first_attempt.items() if k not in ("batch_ms", "batch_sizes")}
        notes.append(_remeasured_note(first_attempt, timing))
    notes += [_noisy_note(timing)] if timing["noisy"] else []
    tokens = adapter.token_timings.metrics() if isinstance(adapter, TokenTimed) else {}  # the reported passes'
    metrics = {**latency.metrics(), **tokens, **mean_scores(per_document), PEAK_MEMORY: serving["serving_peak_mb"],
               PREPARE_PEAK_MEMORY: preparing.peak_growth_mb(), MODEL_SIZE: model_size}
    artifact["serving_memory"] = serving
    notes += [pruning_facts.pop("note")] if "note" in pruning_facts else []
    artifact.update(pruning_facts)
    if spec.task == "extractive":
        artifact["summary_length"] = resolved.summary_length
    return dict(metrics=metrics, artifact=artifact, notes=notes, sample_summaries=summaries[:SAMPLE_SUMMARIES],
                per_document=per_document, document_ids=[e.id for e in evaluation], timing=timing,
                outputs=summaries if spec.task != "extractive" else [])


class QualityEvaluator:
    """The spec's variant, built as its trial built it (same calibration slice, same summary
    length, the artifact cache), scoring more documents for quality only (nothing timed):
    sequential evaluation extends a trial with it, one build for every round."""

    def __init__(self, spec: TrialSpec, workdir: Path):
        self.spec = spec
        self.adapter, self.engine, _ = build_engine(spec, workdir)

    def scores(self, examples: list[Example]) -> dict[str, list[float]]:
        """Per-document ROUGE on `examples`, in their order."""
        batches = self.adapter.batches([e.document for e in examples], self.spec.batch_size)
        summaries = [summary for batch in batches for summary in self.adapter.summarize_batch(batch, self.engine)]
        return rouge_per_document(summaries, [e.summary for e in examples])

    def close(self) -> None:
        self.engine.close()


def build_engine(spec: TrialSpec, workdir: Path) -> tuple:
    """(adapter, engine, evaluation examples): the spec's variant built as its trial built it (same
    slices, summary length, pruning and calibration, the artifact cache), threads pinned, the
    source weights dropped. For whatever runs the variant again (quality rounds, the profiler)."""
    from infersweep.trials import runtimes
    from infersweep.trials.models import get_adapter

    pin_threads(spec.cpus)
    examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
    plan = slices(examples, spec.n, CALIBRATION_DOCS, spec.seed)
    resolved, _ = with_summary_length(spec, plan)
    adapter = get_adapter(spec.task)(resolved)
    calibration_docs = [e.document for e in plan.calibration]
    prune_model(adapter, spec, calibration_docs)
    prepared = adapter.prepared_model(calibration_docs, bound_references(spec, plan.calibration))
    engine = runtimes.prepare(prepared, spec, Path(workdir))
    adapter.module = None
    return adapter, engine, plan.evaluation


def calibration_examples(spec: TrialSpec) -> list[Example]:
    """The examples a trial calibrates on (disjoint from its evaluation slice where the dataset
    is large enough; `data_notes` says when it is not)."""
    examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
    return slices(examples, spec.n, CALIBRATION_DOCS, spec.seed).calibration


def bound_references(spec: TrialSpec, calibration: list[Example]) -> list[str]:
    """The calibration slice's reference summaries where the spec bounds its quantization by
    quality (accuracy control scores ROUGE on them); none otherwise."""
    from infersweep.trials.runtimes.base import accuracy_bound

    return [e.summary for e in calibration] if accuracy_bound(spec) is not None else []


def calibration_documents(spec: TrialSpec) -> list[str]:
    """The documents a trial calibrates on."""
    return [e.document for e in calibration_examples(spec)]


def calibration_uses(spec: TrialSpec) -> list[str]:
    """What the calibration slice decides in this trial; where nothing does, its overlap with the
    evaluation slice does not matter."""
    uses = []
    if pruning_calibrates(spec):
        uses.append("structured pruning ranks units on it")
    if spec.precision == "int8_static":
        uses.append("int8_static calibrates on it")
    if spec.task == "extractive" and spec.summary_length == "auto":
        uses.append("summary_length auto is read from references")
    return uses


def data_notes(spec: TrialSpec, plan: Slices) -> list[str]:
    """Notes on the slices: n capped to the dataset; calibration overlapping the evaluation or
    short of examples, where the calibration slice is used at all."""
    uses = calibration_uses(spec)
    return plan.notes + ([f"{note} ({'; '.join(uses)})" for note in plan.calibration_notes] if uses else [])


def with_summary_length(spec: TrialSpec, plan: Slices | None = None) -> tuple[TrialSpec, list[str]]:
    """The spec with summary_length 'auto' replaced by the sentence count it stands for, and a
    note saying so: the median sentence count of the references outside the evaluation slice
    (the calibration slice and the rest, up to AUTO_REFERENCES); where fewer than
    AUTO_MIN_OUTSIDE are outside it, the evaluated references are read too, and the note says so."""
    if spec.task != "extractive" or spec.summary_length != "auto":
        return spec, []
    from infersweep.trials.models.extractive import auto_sentences

    if plan is None:
        examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
        plan = slices(examples, spec.n, CALIBRATION_DOCS, spec.seed)
    enough = len(plan.outside) >= AUTO_MIN_OUTSIDE
    pool = (plan.outside if enough else plan.outside + plan.evaluation)[:AUTO_REFERENCES]
    count = auto_sentences([e.summary for e in pool])
    evaluated = len(pool) - len(plan.outside[:AUTO_REFERENCES])
    outside = f"only {len(plan.outside)}" if plan.outside else "none"
    where = (" outside the evaluation slice" if not evaluated else
             f", {evaluated} of them evaluated: {outside} outside the evaluation slice")
    note = (f"summary_length auto: {count} sentence{'s' if count != 1 else ''} (the median of "
            f"{len(pool)} references{where}; kept within 1-10)")
    return spec.model_copy(update={"summary_length": str(count)}), [note]


def pruning_calibrates(spec: TrialSpec) -> bool:
    """Whether the spec's pruning ranks units by activations on the calibration documents."""
    return spec.pruning == "structured" and spec.structured.importance == "activation"


def prune_model(adapter, spec: TrialSpec, calibration_docs: list[str]) -> dict:
    """Apply the spec's pruning to the adapter's model in place; the same in a trial and in promotion.

    Structured pruning ranks heads and neurons by their activations on the calibration documents
    (or by weight norms), with the per-kind ratios of `spec.structured` where given.
    """
    from infersweep.trials.pruning import apply_pruning

    if spec.pruning != "structured":
        return apply_pruning(adapter.module, spec.pruning, spec.prune_ratio)
    how = spec.structured
    scored_on = adapter.prepared_model(calibration_docs).calibration_inputs if pruning_calibrates(spec) else None
    return apply_pruning(adapter.module, "structured", spec.prune_ratio, calibration=scored_on,
                         importance=how.importance, head_ratio=how.head_ratio, ffn_ratio=how.ffn_ratio)


def timed_passes(adapter, engine, batches, spec: TrialSpec) -> tuple[list[str], LatencyRun]:
    """Passes over the evaluation slice, at least `spec.repeats`, until the latency is stable
    (trials.timing); the summaries are the first pass's."""
    run = LatencyRun(full_size=spec.batch_size, rule=StabilityRule(**spec.timing.model_dump()))
    clock = LatencyTracker(spec.device)  # synchronizes the device before reading the clock
    if isinstance(adapter, TokenTimed):  # token clocks of these passes only (not the warm-up's)
        adapter.token_timings.reset()
    summaries: list[str] = []
    passes = 0
    while passes < spec.repeats or not run.done():
        for batch in batches:
            out = clock.time(lambda: adapter.summarize_batch(batch, engine), batch.size)
            run.add(clock.batch_ms[-1], batch.size)
            if passes == 0:
                summaries.extend(out)
        run.end_pass()
        passes += 1
    return summaries, run


def _remeasured_note(first: dict, timing: dict) -> str:
    outcome = "stable" if timing["stable"] else "still noisy"
    return (f"latency re-measured: the first timing was noisy (±{first['median_halfwidth_pct']}% after "
            f"{first['seconds']:.0f} s, load {first['before'].get('load_avg_1m', '?')}); the second is "
            f"{outcome} (±{timing['median_halfwidth_pct']}%) and is the one reported")


def _noisy_note(timing: dict) -> str:
    return (f"latency noisy: the median per-document latency is known to ±{timing['median_halfwidth_pct']}% "
            f"after {timing['seconds']:.0f} s ({timing['counted_batches']} batches, CV {timing['cv_pct']}%, "
            f"load {timing['before'].get('load_avg_1m', '?')} -> {timing['after'].get('load_avg_1m', '?')}); "
            f"raise trial.timing.max_seconds or measure on a quieter machine")
