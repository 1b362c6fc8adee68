"""Warm start: earlier sweeps' results on the same weights, hardware and libraries are reused."""
import json

import optuna
import pytest

from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import TrialPlan, trials_dir
from infersweep.sweeps.warm import find_reusable, reuse, same_conditions
from infersweep.trials.hardware import detect
from infersweep.trials.runner import provenance
from infersweep.trials.spec import TrialReport

SPACE = {"precision": ["fp32", "int8_dynamic"], "batch_size": [1, 2]}


def sweep_named(tmp_path, name: str, **space) -> SweepSpec:
    return SweepSpec(name=name, storage={"path": str(tmp_path / "sweeps")}, space={**SPACE, **space},
                     baseline={"batch_size": 1}, dataset={"n": 2}, confidence=0.5)


def measured(sweep: SweepSpec, knobs: dict, latency: float, **changes) -> TrialReport:
    """A report as a trial on this machine writes it (hardware, versions, weights), then `changes`."""
    spec = sweep.trial_spec(knobs)
    report = TrialReport(spec=spec, status="ok", hardware=detect().as_dict(), versions=provenance(spec),
                         metrics={"latency_ms_per_sample": latency, "rougeLsum": 30.0, "peak_memory_mb": 100.0})
    report = report.model_copy(update=changes)
    (trials_dir(sweep) / report.trial_id / "variant").mkdir(parents=True)
    (trials_dir(sweep) / report.trial_id / "variant" / "model.bin").write_bytes(b"weights")
    (trials_dir(sweep) / report.trial_id / "report.json").write_text(report.to_json())
    return report


def test_the_weights_fingerprint_is_in_every_report_and_follows_the_files(tmp_path):
    versions = provenance(sweep_named(tmp_path, "a").trial_spec({}))
    assert len(versions["model_weights"]) == 16 and "torch" in versions
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a" * 100)
    from infersweep.trials.models import weights_fingerprint

    before = weights_fingerprint(str(folder))
    (folder / "model.safetensors").write_bytes(b"b" * 100)  # same size, other weights
    assert weights_fingerprint(str(folder)) != before
    (folder / "notes.md").write_text("not the model")
    assert weights_fingerprint(str(folder)) == weights_fingerprint(str(folder))


def test_only_results_measured_under_the_same_conditions_are_found(tmp_path):
    earlier, new = sweep_named(tmp_path, "earlier"), sweep_named(tmp_path, "new")
    baseline = measured(earlier, {"batch_size": 1}, 10.0)
    same = measured(earlier, {"precision": "int8_dynamic", "batch_size": 1}, 5.0)
    other_torch = measured(earlier, {"precision": "int8_dynamic", "batch_size": 2}, 4.0,
                           versions={**baseline.versions, "torch": "0.0.1"})
    other_cpu = measured(earlier, {"batch_size": 2}, 8.0, hardware={**baseline.hardware, "cpu_model": "Other CPU"})
    assert same_conditions(same, baseline)
    assert not same_conditions(other_torch, baseline) and not same_conditions(other_cpu, baseline)
    assert not same_conditions(same.model_copy(update={"versions": {**same.versions, "model_weights": "x"}}),
                               baseline)
    found = find_reusable(new, baseline)
    assert [item.report.trial_id for item in found] == [same.trial_id]
    # a sweep over another dataset slice has other trial ids: nothing of the earlier one matches
    assert find_reusable(SweepSpec(**{**new.model_dump(), "dataset": {"n": 3}}), baseline) == []


def test_reused_results_are_linked_noted_and_told_to_the_sampler(tmp_path):
    earlier, new = sweep_named(tmp_path, "earlier"), sweep_named(tmp_path, "new")
    baseline = measured(earlier, {"batch_size": 1}, 10.0)
    same = measured(earlier, {"precision": "int8_dynamic", "batch_size": 1}, 5.0)
    new.sweep_dir().mkdir(parents=True)
    found = find_reusable(new, baseline)
    reuse(new, TrialPlan.of(new), baseline, found)
    copied = trials_dir(new) / same.trial_id
    assert (copied / "variant" / "model.bin").read_bytes() == b"weights"  # promotable from the new sweep
    report = TrialReport.from_json((copied / "report.json").read_text())
    assert any("reused from sweep 'earlier'" in note for note in report.notes)
    original = json.loads((trials_dir(earlier) / same.trial_id / "report.json").read_text())
    assert not any("reused" in note for note in original["notes"])  # the earlier sweep's file is untouched
    study = optuna.load_study(study_name="infersweep-new", storage=f"sqlite:///{new.sweep_dir() / 'optuna.db'}")
    (trial,) = study.trials
    # a rectangular space: each knob its own parameter (sweeps.space)
    assert trial.params == {"runtime": "torch", "precision": "int8_dynamic", "pruning": "none", "batch_size": 1}
    assert trial.values == [5.0, 100.0, 30.0] and trial.user_attrs["reused"] is True
    assert trial.state == optuna.trial.TrialState.COMPLETE


@pytest.mark.slow
def test_a_second_sweep_starts_warm_and_fresh_runs_everything(tmp_path, ray_local):
    from infersweep.sweeps.driver import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    timing = {"warmup": 0, "repeats": 1, "timing": {"max_seconds": 2}}
    first = SweepSpec(**{**sweep_named(tmp_path, "first").model_dump(), "trial": timing,
                         "search": {"algorithm": "grid"}, "finalists": {"rounds": 0}, "resources": {"cpu": 1}})
    run_sweep(first, tracking_uri=uri, progress=False, say=lambda _: None)
    said = []
    second = first.model_copy(update={"name": "second"})
    result = run_sweep(second, tracking_uri=uri, progress=False, say=said.append)
    assert any(line.startswith("warm start: 3 result(s) measured by first") for line in said), said
    reused = [r for r in result.rows if not r.baseline]
    assert len(reused) == 3
    for row in reused:
        report = TrialReport.from_json((trials_dir(second) / row.trial_id / "report.json").read_text())
        assert any("reused from sweep 'first'" in note for note in report.notes)
    said.clear()
    third = first.model_copy(update={"name": "third"})
    run_sweep(third, tracking_uri=uri, progress=False, say=said.append, fresh=True)
    assert not any(line.startswith("warm start") for line in said)
    for path in trials_dir(third).glob("*/report.json"):
        assert not any("reused" in note for note in TrialReport.from_json(path.read_text()).notes)
