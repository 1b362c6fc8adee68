"""Sequential evaluation: a trial whose quality verdict is undecided gets more documents.

A sweep evaluates every trial on `dataset.n` documents. Where the interval of `rouge_drop_pct`
straddles a constraint's bound (undecided), the trial is evaluated on the next `chunk` documents
of the dataset's fixed order (trials.data.document_order: evaluation slices are its prefixes,
calibration its end, so nothing moves), and so is the baseline, whose scores on those documents
are computed once per sweep and kept in `SWEEP/extension/BASELINE_ID.json`. The round repeats
until every quality constraint is decided, the dataset (short of the calibration slice) is used
up, or `sequential.max_docs` documents are evaluated. Latency stays what the trial measured on its
slice; the report keeps every round (`evaluation`) and the documents used (`document_ids`).
"""
from __future__ import annotations

import fcntl
import json
import tempfile
from pathlib import Path

from infersweep.sweeps.constraints import parse_constraint
from infersweep.trials.measure import ROUGE_DROP, paired_scores
from infersweep.trials.spec import TrialReport

__all__ = ["extend_until_decided", "quality_verdicts"]


def quality_verdicts(plan, report: TrialReport, baseline: TrialReport) -> list[tuple[str, str]]:
    """(constraint, passed | failed | undecided) for each rouge_drop_pct constraint of the plan."""
    from infersweep.trials.stats import paired_drop, verdict

    base, mine = paired_scores(report, baseline)
    if not mine:
        return []
    interval = paired_drop(base, mine, plan.confidence)
    found = []
    for text in plan.constraints:
        metric, op, bound = parse_constraint(text)
        if metric == ROUGE_DROP:
            found.append((text, verdict(interval, op, bound).status))
    return found


def extend_until_decided(plan, report: TrialReport, baseline: TrialReport, path: Path) -> TrialReport:
    """The report, evaluated on more documents while a quality verdict is undecided (written to
    `path` when it changed)."""
    from infersweep.trials.data import CALIBRATION_DOCS, extension_slice, load_examples

    settings = plan.sequential
    verdicts = quality_verdicts(plan, report, baseline)
    if not report.ok or not settings.max_docs or not any(v == "undecided" for _, v in verdicts):
        return report
    spec = report.spec
    examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
    rounds = [{"documents": len(report.document_ids), "verdicts": dict(verdicts)}]
    evaluators = _Evaluators()
    try:
        while any(v == "undecided" for _, v in verdicts):
            evaluated = len(report.document_ids)
            more = extension_slice(examples, evaluated, min(settings.max_docs, evaluated + chunk_size(plan, spec)),
                                   CALIBRATION_DOCS, spec.seed)
            if not more:
                break
            report = _extended(plan, report, baseline, more, evaluators)
            verdicts = quality_verdicts(plan, report, baseline)
            rounds.append({"documents": len(report.document_ids), "verdicts": dict(verdicts)})
    finally:
        evaluators.close()
    if len(rounds) == 1:  # nothing left to add (the slice is the whole dataset): nothing to record
        return report
    decided = not any(v == "undecided" for _, v in verdicts)
    first, last = rounds[0]["documents"], rounds[-1]["documents"]
    why = "decided" if decided else ("max_docs reached" if last >= settings.max_docs else "dataset used up")
    note = (f"sequential evaluation: undecided on {first} documents, evaluated on {last} "
            f"({len(rounds) - 1} more round(s)): {why}")
    report = report.model_copy(update={"evaluation": {"rounds": rounds, "decided": decided, "ended": why},
                                       "notes": [*report.notes, note]})
    path.write_text(report.to_json())
    return report


#: the fewest documents a round adds (a sweep of n=2 would otherwise take a round per 2 documents)
MIN_CHUNK = 16


def chunk_size(plan, spec) -> int:
    return plan.sequential.chunk or max(spec.n, MIN_CHUNK)


class _Evaluators:
    """The variant's and the baseline's QualityEvaluator, each built once, when first needed."""

    def __init__(self):
        self._built: dict[str, object] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="infersweep-sequential-")

    def __call__(self, spec):
        from infersweep.trials.runner import QualityEvaluator

        key = spec.trial_id()
        if key not in self._built:
            self._built[key] = QualityEvaluator(spec, Path(self._tmp.name) / key)
        return self._built[key]

    def close(self) -> None:
        for evaluator in self._built.values():
            evaluator.close()
        self._tmp.cleanup()


def _extended(plan, report: TrialReport, baseline: TrialReport, more: list, evaluators: _Evaluators) -> TrialReport:
    from infersweep.trials.quality import mean_scores

    mine = evaluators(report.spec).scores(more)
    theirs = baseline_scores(plan, baseline, more, evaluators)
    ids = [e.id for e in more]
    per_document = {k: [*report.per_document.get(k, []), *mine[k]] for k in mine}
    reference = {k: [*report.reference_per_document.get(k, []), *(theirs[doc][k] for doc in ids)] for k in mine}
    return report.model_copy(update={
        "per_document": per_document, "document_ids": [*report.document_ids, *ids],
        "reference_per_document": reference, "reference_document_ids": [*report.reference_document_ids, *ids],
        "metrics": {**report.metrics, **mean_scores(per_document)}})


def baseline_scores(plan, baseline: TrialReport, examples: list, evaluators: _Evaluators) -> dict[str, dict[str, float]]:
    """The baseline's per-document scores on `examples`, each document computed once per sweep
    (kept beside the trials; concurrent trials wait for each other rather than compute twice)."""
    store = plan.trials_dir.parent / "extension" / f"{baseline.trial_id}.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = json.loads(store.read_text()) if store.exists() else {}
        missing = [e for e in examples if e.id not in known]
        if missing:
            scores = evaluators(baseline.spec).scores(missing)
            for i, example in enumerate(missing):
                known[example.id] = {k: values[i] for k, values in scores.items()}
            store.write_text(json.dumps(known))
    return {e.id: known[e.id] for e in examples}
