"""Sequential evaluation: an undecided trial is evaluated on the next documents of the fixed
order, the baseline extended to match, until its quality verdict is decided or the budget ends."""
import json

import pytest

from infersweep.sweeps.sequential import extend_until_decided, quality_verdicts
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import TrialPlan, trials_dir
from infersweep.trials import run_trial
from infersweep.trials.data import load_examples
from infersweep.trials.measure import relative_to

pytestmark = pytest.mark.slow
VARIANT = {"pruning": "structured:0.4"}  # changes many summaries: a wide interval on few documents


@pytest.fixture(scope="module")
def news(tmp_path_factory):
    """72 real news pairs: the bundled 36, twice (ids differ), so the order has room to grow."""
    path = tmp_path_factory.mktemp("data") / "news.jsonl"
    examples = load_examples("sample")
    with path.open("w") as f:
        for copy in range(2):
            for e in examples:
                f.write(json.dumps({"id": f"{e.id}-{copy}", "document": e.document, "summary": e.summary}) + "\n")
    return str(path)


def test_an_undecided_trial_grows_until_decided_and_matches_a_larger_trial(news, tmp_path, cache_dir):
    sweep = SweepSpec(name="seq", storage={"path": str(tmp_path / "sweeps")}, dataset={"path": news, "n": 8},
                      trial={"warmup": 0, "repeats": 1, "summary_length": "3", "timing": {"max_seconds": 2}},
                      sequential={"max_docs": 24, "chunk": 8})
    baseline = run_trial(sweep.baseline_spec(), trials_dir(sweep) / "base")
    variant_spec = sweep.trial_spec(VARIANT)
    variant = run_trial(variant_spec, trials_dir(sweep) / "variant")
    relative = relative_to(variant, baseline)
    low, high = relative["rouge_drop_pct_ci_low"], relative["rouge_drop_pct_ci_high"]
    assert high > low, "the test needs a variant whose summaries differ from the baseline's"
    # a bound inside the interval: undecided on 8 documents by construction
    plan = TrialPlan.of(sweep).model_copy(update={"constraints": (f"rouge_drop_pct <= {(low + high) / 2:.4f}",)})
    assert [v for _, v in quality_verdicts(plan, variant, baseline)] == ["undecided"]

    path = tmp_path / "report.json"
    grown = extend_until_decided(plan, variant, baseline, path)
    rounds = grown.evaluation["rounds"]
    assert rounds[0]["documents"] == 8 and [r["documents"] for r in rounds] == sorted(r["documents"] for r in rounds)
    assert len(rounds) >= 2 and rounds[-1]["documents"] <= 24
    assert grown.evaluation["ended"] in ("decided", "max_docs reached")
    assert grown.evaluation["decided"] == (grown.evaluation["ended"] == "decided")
    assert grown.document_ids[:8] == variant.document_ids  # nested: the first round's documents first
    assert json.loads(path.read_text())["evaluation"] == grown.evaluation
    assert any(note.startswith("sequential evaluation: undecided on 8 documents") for note in grown.notes)
    latency = "latency_ms_per_sample"
    assert grown.metrics[latency] == variant.metrics[latency]  # timing is the trial's own

    # the same documents, measured by plain trials of that size: the same per-document scores
    size = len(grown.document_ids)
    larger = sweep.model_copy(update={"dataset": sweep.dataset.model_copy(update={"n": size})})
    big_base = run_trial(larger.baseline_spec(), tmp_path / "big-base")
    big_variant = run_trial(larger.trial_spec(VARIANT),
                            tmp_path / "big-variant")
    assert sorted(big_variant.document_ids) == sorted(grown.document_ids)
    mine = dict(zip(grown.document_ids, grown.per_document["rougeLsum"]))
    assert mine == pytest.approx(dict(zip(big_variant.document_ids, big_variant.per_document["rougeLsum"])))
    reference = dict(zip(grown.reference_document_ids, grown.reference_per_document["rougeLsum"]))
    truth = dict(zip(big_base.document_ids, big_base.per_document["rougeLsum"]))
    assert reference == pytest.approx({doc: truth[doc] for doc in reference})
    # the interval over all of them is the one a trial of that size gets
    assert relative_to(grown, baseline)["rouge_drop_pct_ci_high"] == pytest.approx(
        relative_to(big_variant, big_base)["rouge_drop_pct_ci_high"])
    # the baseline's extension is computed once per sweep
    store = sweep.sweep_dir() / "extension" / f"{baseline.trial_id}.json"
    assert set(json.loads(store.read_text())) == set(grown.reference_document_ids)


def test_a_decided_trial_or_no_budget_is_left_alone(news, tmp_path, cache_dir):
    sweep = SweepSpec(name="seq", storage={"path": str(tmp_path / "sweeps")}, dataset={"path": news, "n": 4},
                      trial={"warmup": 0, "repeats": 1, "summary_length": "3", "timing": {"max_seconds": 2}},
                      constraints=["rouge_drop_pct <= 100"])
    baseline = run_trial(sweep.baseline_spec(), tmp_path / "base")
    variant = run_trial(sweep.trial_spec({"precision": "int8_dynamic"}), tmp_path / "variant")
    plan = TrialPlan.of(sweep)
    assert extend_until_decided(plan, variant, baseline, tmp_path / "r.json") is variant  # passed already
    off = plan.model_copy(update={"sequential": plan.sequential.model_copy(update={"max_docs": 0}),
                                  "constraints": ("rouge_drop_pct <= -100",)})
    assert extend_until_decided(off, variant, baseline, tmp_path / "r.json") is variant
    assert not (tmp_path / "r.json").exists()


def test_an_undecided_trial_on_the_whole_dataset_is_left_as_it_was(tmp_path, cache_dir):
    """Nothing left to add (the quickstart evaluates every bundled document): no round, no note."""
    sweep = SweepSpec(name="whole", storage={"path": str(tmp_path / "sweeps")}, dataset={"n": 36},
                      trial={"warmup": 0, "repeats": 1, "summary_length": "3", "timing": {"max_seconds": 2}})
    baseline = run_trial(sweep.baseline_spec(), tmp_path / "base")
    variant = run_trial(sweep.trial_spec(VARIANT), tmp_path / "variant")
    relative = relative_to(variant, baseline)
    bound = (relative["rouge_drop_pct_ci_low"] + relative["rouge_drop_pct_ci_high"]) / 2
    plan = TrialPlan.of(sweep).model_copy(update={"constraints": (f"rouge_drop_pct <= {bound:.4f}",)})
    assert [v for _, v in quality_verdicts(plan, variant, baseline)] == ["undecided"]
    assert extend_until_decided(plan, variant, baseline, tmp_path / "r.json") is variant
    assert not (tmp_path / "r.json").exists()
