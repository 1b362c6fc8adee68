import pytest

from infersweep.sweeps.spec import SweepSpecError, constraint_violation, load_sweep_spec

SPECS = __import__("pathlib").Path(__file__).resolve().parents[2] / "sweeps" / "specs"


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["quickstart.yaml", "bart-cnn.yaml", "smollm2-cnn.yaml", "llama-cnn.yaml"])
def test_shipped_specs_validate(name):
    sweep = load_sweep_spec(SPECS / name)
    assert sweep.search.num_trials >= 1 and sweep.space.grid()


def test_llama_sweep_keeps_mlperf_rouge_on_gpus():
    """MLPerf Inference's summarization rule: >= 99% of the reference ROUGE, i.e. a drop <= 1%."""
    sweep = load_sweep_spec(SPECS / "llama-cnn.yaml")
    assert sweep.task == "causal" and sweep.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert constraint_violation("rouge_drop_pct <= 1.0", {"rouge_drop_pct": 1.5}) is not None
    assert any(c.replace(" ", "") in ("rouge_drop_pct<=1.0", "rouge_drop_pct<=1") for c in sweep.constraints)
    assert sweep.trial.device == "cuda" and sweep.resources.gpu == 1
    assert sweep.baseline.precision == "fp32" and sweep.trial.causal.max_new_tokens == 128


def test_quickstart_has_a_baseline_and_a_dozen_trials():
    sweep = load_sweep_spec(SPECS / "quickstart.yaml")
    assert sweep.search.num_trials >= 12
    assert sweep.baseline.precision == "fp32" and sweep.baseline.runtime == "torch"


@pytest.mark.parametrize("text, needle", [
    ("name: a\nspace: {precison: [fp32]}\n", "space.precison: unknown key"),
    ("name: a\nsearch: {num_trials: many}\n", "search.num_trials: Input should be a valid integer"),
    ("name: a\nspace: {batch_size: []}\n", "space.batch_size: batch sizes must be a non-empty list"),
    ("name: a\nspace: {pruning: {methods: [unstructured], ratios: [0]}}\n", "space.pruning is empty"),
    ("name: a\nspace: {runtime: [tvm]}\n", "unknown runtime 'tvm'; valid: torch"),
    ("name: a\nconstraints: ['rouge falls a bit']\n", "must look like 'METRIC <= NUMBER'"),
    ("name: a\nobjectives: [{metric: speed, mode: min}]\n", "unknown metric 'speed'"),
    ("name: 'a b'\n", "name: use letters"),
    ("- just\n- a list\n", "expected a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_specs_name_the_key_and_the_fix(tmp_path, text, needle):
    with pytest.raises(SweepSpecError) as info:
        load_sweep_spec(write(tmp_path, text))
    assert needle in str(info.value)


def test_missing_file():
    with pytest.raises(SweepSpecError, match="not found; try sweeps/specs/quickstart.yaml"):
        load_sweep_spec("/no/such.yaml")


def test_overrides_and_trial_specs(tmp_path):
    sweep = load_sweep_spec(write(tmp_path, "name: a\nspace: {pruning: {methods: [none, unstructured], ratios: [0.2]}}\n"),
                            **{"search.num_trials": 3})
    assert sweep.search.num_trials == 3
    assert sweep.space.pruning_choices() == ["none", "unstructured:0.2"]
    spec = sweep.trial_spec({"precision": "fp32", "runtime": "torch", "pruning": "unstructured:0.2", "batch_size": 2})
    assert (spec.pruning, spec.prune_ratio, spec.batch_size) == ("unstructured", 0.2, 2)


def test_constraint_sign_follows_optuna():
    assert constraint_violation("rouge_drop_pct <= 1.0", {"rouge_drop_pct": 0.5}) < 0
    assert constraint_violation("rouge_drop_pct <= 1.0", {"rouge_drop_pct": 2.0}) == pytest.approx(1.0)
    assert constraint_violation("speedup >= 2", {"speedup": 1.5}) == pytest.approx(0.5)
    assert constraint_violation("speedup >= 2", {}) > 0


def test_relative_paths_are_resolved_on_the_driver(tmp_path, monkeypatch):
    # Ray workers run in their own folders: a relative path must not be resolved there
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"document": "a", "summary": "b"}\n')
    sweep = load_sweep_spec(write(tmp_path, "name: a\ndataset: {path: data.jsonl}\n"))
    assert sweep.storage.path == str(tmp_path / ".infersweep" / "sweeps")
    assert sweep.dataset.path == str(tmp_path / "data.jsonl")


def test_what_a_resumed_sweep_still_owes(tmp_path):
    """Grid: every point without a report (the baseline's point counts as done); others: the budget."""
    from infersweep.sweeps.search import missing_trials, trials_to_show

    grid = load_sweep_spec(write(tmp_path, "name: g\nspace: {precision: [fp32, int8_dynamic], batch_size: [1, 2]}\n"
                                           "search: {algorithm: grid}\nbaseline: {batch_size: 1}\n"))
    ids = [grid.trial_spec(p).trial_id() for p in grid.space.grid()]
    baseline = grid.trial_spec(grid.baseline.model_dump()).trial_id()
    assert baseline in ids and trials_to_show(grid, baseline) == 3
    missing, points = missing_trials(grid, {baseline, ids[1]}, baseline)
    assert missing == 2 and [grid.trial_spec(p).trial_id() for p in points] == [i for i in ids if i not in {baseline, ids[1]}]
    tpe = load_sweep_spec(write(tmp_path, "name: t\nspace: {precision: [fp32, int8_dynamic], batch_size: [1, 2, 4]}\n"
                                          "search: {algorithm: tpe, num_trials: 4}\n"))
    assert missing_trials(tpe, {"a", "b", "base"}, "base") == (2, [])
