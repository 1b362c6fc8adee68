"""Per-document quality, the paired interval against a baseline, latency measured until stable."""
import pytest

from infersweep.sweeps.spec import constraint_violation
from infersweep.trials.measure import relative_to
from infersweep.trials.spec import TrialReport, TrialSpec


def report(scores: dict[str, float], **metrics) -> TrialReport:
    ids = list(scores)
    return TrialReport(spec=TrialSpec(), status="ok", metrics={"rougeLsum": sum(scores.values()) / len(ids),
                                                                **metrics},
                       per_document={"rougeLsum": list(scores.values())}, document_ids=ids)


def test_the_interval_pairs_documents_by_id_whatever_their_order():
    baseline = report({"a": 1.0, "b": 3.0})
    trial = report({"b": 1.0, "a": 1.0})  # same documents, another order
    relative = relative_to(trial, baseline)
    assert relative["rouge_drop_pct"] == pytest.approx(50.0)
    # worked out in tests/trials/test_stats.py: 0% .. 66.7% at 95%
    assert relative["rouge_drop_pct_ci_low"] == pytest.approx(0.0)
    assert relative["rouge_drop_pct_ci_high"] == pytest.approx(200 / 3)


def test_the_point_estimate_when_confidence_is_one_half():
    baseline, trial = report({"a": 1.0, "b": 3.0}), report({"a": 1.0, "b": 1.0})
    relative = relative_to(trial, baseline, confidence=0.5)
    assert relative["rouge_drop_pct_ci_low"] == relative["rouge_drop_pct_ci_high"] == pytest.approx(50.0)


def test_old_reports_without_scores_get_no_interval():
    old = TrialReport(spec=TrialSpec(), status="ok", metrics={"rougeLsum": 30.0})
    assert "rouge_drop_pct_ci_high" not in relative_to(old, old)


@pytest.mark.parametrize("low, high, met", [(-0.5, 0.8, True), (0.2, 1.6, False), (1.2, 2.0, False)])
def test_a_quality_constraint_is_judged_on_the_worst_end(low, high, met):
    metrics = {"rouge_drop_pct": (low + high) / 2, "rouge_drop_pct_ci_low": low, "rouge_drop_pct_ci_high": high}
    assert (constraint_violation("rouge_drop_pct <= 1", metrics) <= 0) is met


def test_a_trial_keeps_per_document_scores_and_its_raw_timings(quick_spec, tmp_path):
    from infersweep.trials import run_trial

    spec = quick_spec(batch_size=2, timing={"min_batches": 3, "rel_halfwidth_pct": 50, "max_seconds": 30})
    result = run_trial(spec, tmp_path)
    assert result.status == "ok", result.reason
    n = len(result.document_ids)
    assert n == spec.n and all(len(result.per_document[k]) == n for k in ("rouge1", "rouge2", "rougeLsum"))
    assert sum(result.per_document["rougeLsum"]) / n == pytest.approx(result.metrics["rougeLsum"])
    timing = result.timing
    assert timing["timed_batches"] == len(timing["batch_ms"]) >= 3 and timing["counted_batches"] >= 3
    assert {"load_avg_1m"} <= set(timing["before"]) and isinstance(timing["stable"], bool)
    again = TrialReport.from_json(result.to_json())  # round-trips through report.json
    assert again.per_document == result.per_document and again.timing == result.timing
