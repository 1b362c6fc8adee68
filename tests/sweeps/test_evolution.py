"""Relaunching a sweep whose file changed: continue, restart, or a clear refusal (no Ray needed)."""
import pytest

from infersweep.sweeps.errors import SweepError
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.state import changed_fields, prepare_dir
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.runner import write_report
from infersweep.trials.spec import TrialReport


def sweep(tmp_path, **overrides) -> SweepSpec:
    data = {"name": "evo", "space": {"precision": ["fp32", "int8_dynamic"], "batch_size": [1]},
            "search": {"num_trials": 2}, "storage": {"path": str(tmp_path / "sweeps")}}
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return SweepSpec.model_validate(data)


def finished(spec: SweepSpec, status="ok", **knobs) -> str:
    """A trial report on disk, as a worker would have written it."""
    trial = spec.trial_spec({**spec.baseline.model_dump(), **knobs})
    directory = trials_dir(spec) / trial.trial_id()
    directory.mkdir(parents=True, exist_ok=True)
    write_report(TrialReport(spec=trial, status=status, reason="" if status == "ok" else "boom",
                             metrics={"latency_ms_per_sample": 1.0} if status == "ok" else {}), directory)
    return trial.trial_id()


def test_more_trials_or_added_values_continue_the_sweep(tmp_path):
    first = sweep(tmp_path)
    prepare_dir(first, say=lambda _: None)
    kept = finished(first, precision="int8_dynamic")
    said = []
    bigger = sweep(tmp_path, **{"search.num_trials": 5, "space.batch_size": [1, 4]})
    assert changed_fields(first, bigger) == []
    prepare_dir(bigger, say=said.append)
    assert (trials_dir(bigger) / kept / "report.json").exists(), "a finished trial was thrown away"
    assert SweepSpec.model_validate_json((bigger.sweep_dir() / "sweep.json").read_text()).search.num_trials == 5
    assert any("continuing" in line for line in said)


@pytest.mark.parametrize("key, value, named", [
    ("model", "/no/such/model", "model"),
    ("dataset.n", 7, "dataset"),
    ("baseline.batch_size", 4, "baseline"),
    ("constraints", ["rouge_drop_pct <= 2"], "constraints"),
    ("space.precision", ["fp32"], "space.precision (values removed)"),
])
def test_a_change_that_invalidates_results_needs_a_new_name_or_restart(tmp_path, key, value, named):
    first = sweep(tmp_path)
    prepare_dir(first, say=lambda _: None)
    kept = finished(first)
    changed = sweep(tmp_path, **{key: value})
    with pytest.raises(SweepError) as info:
        prepare_dir(changed, say=lambda _: None)
    message = str(info.value)
    assert named in message and "--restart" in message and "another name" in message
    assert (trials_dir(first) / kept / "report.json").exists()

    said = []
    prepare_dir(changed, restart=True, say=said.append)
    archived = [p for p in (tmp_path / "sweeps").iterdir() if p.name.startswith("evo.archived-")]
    assert len(archived) == 1 and (archived[0] / "trials" / kept / "report.json").exists()
    assert not list(trials_dir(changed).glob("*/report.json")), "the restarted sweep starts empty"
    assert any(str(archived[0]) in line for line in said)


def test_a_sweep_whose_baseline_failed_can_be_relaunched_fixed(tmp_path):
    broken = sweep(tmp_path, **{"baseline.batch_size": 2})
    prepare_dir(broken, say=lambda _: None)
    finished(broken, status="failed")
    fixed = sweep(tmp_path)
    prepare_dir(fixed, say=lambda _: None)  # no refusal: nothing valid would be lost
    assert not list(trials_dir(fixed).glob("*/report.json")), "the failed baseline's report is gone"
    saved = SweepSpec.model_validate_json((fixed.sweep_dir() / "sweep.json").read_text())
    assert saved.baseline.batch_size == 1


def test_resume_keeps_the_saved_spec(tmp_path):
    first = sweep(tmp_path)
    prepare_dir(first, say=lambda _: None)
    finished(first)
    prepare_dir(first, resume=True, say=lambda _: None)
    assert len(list(trials_dir(first).glob("*/report.json"))) == 1
