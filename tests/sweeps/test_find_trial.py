"""Finding a trial by id among the sweeps on disk (sweeps.results.find_trial), as `infersweep profile` does."""
from __future__ import annotations

import pytest

from infersweep.sweeps.results import TrialNotFound, find_trial
from infersweep.sweeps.spec import load_sweep_spec
from infersweep.sweeps.state import prepare_dir
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.runner import write_report
from infersweep.trials.spec import TrialReport


def saved_sweep(tmp_path, name: str):
    """A sweep folder holding an ok report of its baseline; the sweep and the baseline's id."""
    text = f"name: {name}\nstorage: {{path: {tmp_path / 'sweeps'}}}\ndataset: {{n: 4}}\nbaseline: {{batch_size: 2}}\n"
    (tmp_path / f"{name}.yaml").write_text(text)
    sweep = load_sweep_spec(tmp_path / f"{name}.yaml")
    prepare_dir(sweep, say=lambda message: None)
    spec = sweep.baseline_spec()
    folder = trials_dir(sweep) / spec.trial_id()
    folder.mkdir(parents=True)
    write_report(TrialReport(spec=spec, status="ok"), folder)
    return sweep, spec.trial_id()


def test_a_trial_is_found_in_its_sweep(tmp_path):
    sweep, trial_id = saved_sweep(tmp_path, "a")
    found = find_trial(trial_id, tmp_path / "sweeps")
    assert found.sweep.name == "a" and found.folder == trials_dir(sweep) / trial_id
    assert found.report.trial_id == trial_id and found.report.status == "ok"


def test_the_start_of_an_id_is_enough_when_it_is_unique(tmp_path):
    _, trial_id = saved_sweep(tmp_path, "a")
    assert find_trial(trial_id[:8], tmp_path / "sweeps").folder.name == trial_id
    other = find_trial(trial_id, tmp_path / "sweeps").folder.with_name(trial_id[:8] + "ffff")
    other.mkdir()
    write_report(TrialReport(spec=find_trial(trial_id, tmp_path / "sweeps").report.spec, status="ok"), other)
    with pytest.raises(TrialNotFound, match="starts several trial ids"):
        find_trial(trial_id[:8], tmp_path / "sweeps")
    assert find_trial(trial_id, tmp_path / "sweeps").folder.name == trial_id  # a whole id is never ambiguous
    with pytest.raises(TrialNotFound, match="not a trial id"):
        find_trial("../*", tmp_path / "sweeps")


def test_a_trial_in_two_sweeps_needs_the_sweeps_name(tmp_path):
    saved_sweep(tmp_path, "a")
    _, trial_id = saved_sweep(tmp_path, "b")  # the same baseline spec: the same id
    with pytest.raises(TrialNotFound, match="in sweeps a, b: pass --sweep NAME"):
        find_trial(trial_id, tmp_path / "sweeps")
    assert find_trial(trial_id, tmp_path / "sweeps", sweep_name="b").sweep.name == "b"


def test_a_single_trial_is_found_where_infersweep_trial_writes_it(tmp_path):
    _, trial_id = saved_sweep(tmp_path, "a")
    single = tmp_path / "trials" / "feedbeef0000"
    single.mkdir(parents=True)
    write_report(TrialReport(spec=find_trial(trial_id, tmp_path / "sweeps").report.spec, status="ok"), single)
    found = find_trial("feedbeef0000", tmp_path / "sweeps", single_trials=tmp_path / "trials")
    assert found.sweep is None and found.folder == single


def test_an_unknown_id_names_where_it_looked(tmp_path):
    saved_sweep(tmp_path, "a")
    with pytest.raises(TrialNotFound, match="no trial 'nope' in the sweeps under .*infersweep status SWEEP") as info:
        find_trial("nope", tmp_path / "sweeps")
    assert info.value.exit_code == 2
