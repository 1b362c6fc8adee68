"""A sweep's trials come from one mapping: its trial template with each point's knobs.

Trial ids are a hash of the TrialSpec: resume and dedup find earlier results by them, so the
ids of existing sweep files must never change.
"""
import hashlib
import pickle

import pytest
import yaml

from infersweep.sweeps.spec import SweepSpec, SweepSpecError, load_sweep_spec
from infersweep.sweeps.template import SWEEP_DEFAULTS, DatasetSection, Knobs, TrialSection
from infersweep.sweeps.trainable import TrialPlan, tune_result
from infersweep.trials.spec import TrialReport, TrialSpec

SPECS = __import__("pathlib").Path(__file__).resolve().parents[2] / "sweeps" / "specs"

# what the sweep file meant before the template, written out: the hand-made mapping and its defaults
OLD_DATASET = {"path": "sample", "n": 30, "seed": 0, "document_field": "document", "summary_field": "summary"}
OLD_TRIAL = {"device": "cpu", "warmup": 1, "repeats": 2, "trust_remote_code": False, "summary_length": "auto"}


def old_trial_spec(raw: dict, knobs: dict) -> TrialSpec:
    data, trial = {**OLD_DATASET, **raw.get("dataset", {})}, {**OLD_TRIAL, **raw.get("trial", {})}
    knobs = dict(knobs)
    pruning = knobs.pop("pruning", "none")
    if ":" in str(pruning):
        method, ratio = pruning.split(":")
        knobs.update(pruning=method, prune_ratio=float(ratio))
    else:
        knobs.setdefault("prune_ratio", 0.0)
        knobs["pruning"] = pruning
    return TrialSpec(model=raw.get("model", "all-MiniLM-L6-v2"), task=raw.get("task", "extractive"),
                     dataset=data["path"], n=data["n"], seed=data["seed"], document_field=data["document_field"],
                     summary_field=data["summary_field"], cpus=max(int(raw.get("resources", {}).get("cpu", 2)), 1),
                     **trial, **knobs)


EXOTIC = [
    "name: a\n",
    "name: a\ntrial: {extractive: {num_sentences: 4}}\n",
    "name: a\ntrial: {summary_length: 60 words, extractive: {max_sentence_tokens: 64}}\n",
    "name: a\ntask: seq2seq\ntrial: {generation: {num_beams: 3}, warmup: 0, repeats: 3}\n",
    "name: a\nresources: {cpu: 0.5}\ntrial: {structured: {head_ratio: 0.1, importance: weight}}\n",
    "name: a\nresources: {cpu: 3.7, gpu: 1}\ntrial: {device: cuda, timing: {min_passes: 4}, trust_remote_code: true}\n",
    "name: a\ndataset: {path: 'hf:cnn_dailymail:3.0.0:validation', n: 7, seed: 3, document_field: article}\n",
    "name: a\nbaseline: {pruning: 'structured:0.2', batch_size: 4}\n"
    "space: {pruning: {methods: [none, structured, unstructured], ratios: [0.2, 0.5]}, batch_size: [4, 8]}\n",
]


def _texts():
    return [(SPECS / name).read_text() for name in ("quickstart.yaml", "bart-cnn.yaml")] + EXOTIC


@pytest.mark.parametrize("text", _texts())
def test_every_trial_of_a_sweep_file_keeps_its_spec_and_id(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    sweep, raw = load_sweep_spec(path), yaml.safe_load(text)
    points = [raw.get("baseline", {})] + sweep.space.grid()
    for point in points:
        old, new = old_trial_spec(raw, point), sweep.trial_spec(point)
        assert new == old and new.trial_id() == old.trial_id(), point
    assert sweep.baseline_spec() == old_trial_spec(raw, sweep.baseline.model_dump())


def test_the_bundled_sweeps_keep_their_pinned_ids():
    """Computed before the template existed: a change here strands every saved sweep's results."""
    for name, baseline_id, grid_size, grid_digest in [("quickstart.yaml", "aff02619fcfd", 48, "1e8fb4bf92d4"),
                                                      ("bart-cnn.yaml", "598a993a792a", 120, "4515bdaac0e6")]:
        sweep = load_sweep_spec(SPECS / name)
        # the quickstart's openvino points came later (issue 14): the others keep their ids
        ids = sorted(sweep.trial_spec(point).trial_id() for point in sweep.space.grid()
                     if point.get("runtime") != "openvino")
        assert sweep.baseline_spec().trial_id() == baseline_id
        assert len(set(ids)) == grid_size and hashlib.sha1(" ".join(ids).encode()).hexdigest()[:12] == grid_digest


def test_a_saved_sweep_reads_back_the_same():
    sweep = load_sweep_spec(SPECS / "quickstart.yaml")
    again = SweepSpec.model_validate_json(sweep.model_dump_json())
    assert again == sweep and again.spec_hash() == sweep.spec_hash()


def test_the_sweep_defaults_are_declared_once_and_the_rest_are_trialspecs():
    template = SweepSpec(name="a").template()
    assert (template.n, template.warmup) == (30, 1) == (SWEEP_DEFAULTS["n"], SWEEP_DEFAULTS["warmup"])
    assert template == TrialSpec(**SWEEP_DEFAULTS)
    assert TrialSpec().n == 50 and TrialSpec().warmup == 2, "`infersweep trial` keeps TrialSpec's own defaults"


def test_every_trialspec_field_is_set_in_exactly_one_place_of_a_sweep_file():
    placed = [*TrialSection.model_fields, *Knobs.model_fields, "model", "task", "cpus",
              *(f if f != "path" else "dataset" for f in DatasetSection.model_fields)]
    assert sorted(placed) == sorted(TrialSpec.model_fields)


@pytest.mark.parametrize("text, needle", [
    ("name: a\ntrial: {bogus: 1}\n", "trial.bogus: unknown key"),
    ("name: a\ntrial: {timing: {max_secs: 3}}\n", "trial.timing.max_secs: unknown key"),
    ("name: a\ndataset: {size: 3}\n", "dataset.size: unknown key"),
    ("name: a\nbaseline: {precisoin: fp32}\n", "baseline.precisoin: unknown key"),
    ("name: a\ntrial: {n: 3}\n", "trial: n is set by `dataset.n`"),
    ("name: a\ntrial: {precision: fp16}\n", "trial: precision is set by `baseline.precision`"),
    ("name: a\ntrial: {warmup: '1'}\n", "trial.warmup: Input should be a valid integer"),
    ("name: a\nbaseline: {precision: fp17}\n", "baseline.precision: unknown precision 'fp17'"),
    ("name: a\nbaseline: {pruning: structured}\n", "baseline: pruning 'structured' needs prune_ratio > 0"),
    ("name: a\ntask: seq2seq\ntrial: {summary_length: 3}\n", "trial: summary_length '3' applies to the extractive"),
])
def test_the_template_refuses_what_a_trialspec_would_and_names_the_sweep_key(tmp_path, text, needle):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SweepSpecError) as info:
        load_sweep_spec(path)
    assert needle in str(info.value)


def test_workers_get_a_small_plan_not_the_sweep(tmp_path):
    sweep = SweepSpec(name="a", storage={"path": str(tmp_path)}, constraints=["rouge_drop_pct <= 2"],
                      space={"precision": ["fp32", "int8_dynamic"], "batch_size": [1, 4]})
    plan = pickle.loads(pickle.dumps(TrialPlan.of(sweep)))
    assert plan.trials_dir == sweep.sweep_dir() / "trials"
    assert [plan.trial_spec(p) for p in sweep.space.grid()] == [sweep.trial_spec(p) for p in sweep.space.grid()]
    baseline = TrialReport(spec=sweep.baseline_spec(), status="ok",
                           metrics={"latency_ms_per_sample": 2.0, "peak_memory_mb": 9.0, "rougeLsum": 40.0})
    result = tune_result(plan, TrialReport(spec=plan.trial_spec({"batch_size": 4}), status="infeasible"), baseline)
    assert result["constraint_0"] == 1.0 and result["rougeLsum"] == -1e6


def test_a_callback_pickled_before_the_plan_existed_still_loads():
    from infersweep.sweeps.callbacks import MlflowTrialCallback

    sweep = SweepSpec(name="a")
    callback = MlflowTrialCallback.__new__(MlflowTrialCallback)
    callback.__setstate__({"sweep_json": sweep.model_dump_json(), "runs": None, "baseline": None})
    assert callback.plan == TrialPlan.of(sweep) and not hasattr(callback, "sweep_json")


def test_a_quality_bound_on_quantization_reaches_every_trial(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: a\nspace: {runtime: [openvino], precision: [fp32, int8_static]}\n"
                    "trial: {quantization: {max_rouge_drop_pct: 1}}\n")
    sweep = load_sweep_spec(path)
    specs = [sweep.trial_spec(point) for point in sweep.space.grid()]
    assert specs and all(s.quantization.max_rouge_drop_pct == 1.0 for s in specs)
    path.write_text("name: a\ntrial: {quantization: {max_rouge_drop_pct: -1}}\n")
    with pytest.raises(SweepSpecError, match="trial.quantization.max_rouge_drop_pct"):
        load_sweep_spec(path)
