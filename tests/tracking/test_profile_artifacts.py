"""`infersweep profile TRIAL_ID` on a sweep's trial: the operator table and the trace land on the
trial's MLflow run (SweepRuns.log_profile), a real sqlite store under tmp_path."""
from __future__ import annotations

from typer.testing import CliRunner

from infersweep.cli import app
from infersweep.sweeps.spec import load_sweep_spec
from infersweep.sweeps.state import prepare_dir
from infersweep.sweeps.trainable import trials_dir
from infersweep.tracking.sweep_runs import SweepRuns
from infersweep.trials.runner import write_report
from infersweep.trials.spec import TrialReport

runner = CliRunner()


def _sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "s.yaml").write_text(f"name: prof\nstorage: {{path: {tmp_path / 'sweeps'}}}\n"
                                     f"tracking: {{uri: '{uri}'}}\ndataset: {{n: 4}}\nresources: {{cpu: 1}}\n"
                                     "trial: {warmup: 1}\nbaseline: {batch_size: 2}\n")
    sweep = load_sweep_spec(tmp_path / "s.yaml")
    prepare_dir(sweep, say=lambda message: None)
    spec = sweep.baseline_spec()
    folder = trials_dir(sweep) / spec.trial_id()
    folder.mkdir(parents=True)
    write_report(TrialReport(spec=spec, status="ok"), folder)
    return sweep, spec, folder, uri


def test_profile_logs_the_table_and_the_trace_to_the_trials_run(tmp_path):
    sweep, spec, folder, uri = _sweep(tmp_path)
    runs = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash())
    run_id = runs.trial_started(spec.trial_id(), spec.short_name(), spec.knobs())
    result = runner.invoke(app, ["profile", spec.trial_id(), "--storage", str(tmp_path / "sweeps"), "--batches", "1"])
    assert result.exit_code == 0, result.output
    assert "aten::addmm" in result.output and f"logged to MLflow run {run_id}" in result.output.replace("\n", "")
    logged = {item.path for item in runs.client.list_artifacts(run_id, "profile")}
    assert logged == {"profile/trace.json", "profile/operators.csv", "profile/operators.txt"}
    assert (folder / "trace.json").exists()


def test_without_a_store_the_profile_stays_on_disk_with_a_note(tmp_path):
    _, spec, folder, _ = _sweep(tmp_path)
    result = runner.invoke(app, ["profile", spec.trial_id(), "--storage", str(tmp_path / "sweeps"), "--batches", "1"])
    assert result.exit_code == 0, result.output
    assert "no MLflow store at" in result.output.replace("\n", "")
    assert (folder / "trace.json").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_failed_trial_of_a_sweep_is_one_error(tmp_path):
    _, spec, folder, _ = _sweep(tmp_path)
    write_report(TrialReport(spec=spec, status="oom", reason="CUDA out of memory"), folder)
    result = runner.invoke(app, ["profile", spec.trial_id(), "--storage", str(tmp_path / "sweeps")])
    assert result.exit_code == 2
    assert "ended oom (CUDA out of memory)" in result.output.replace("\n", " ")
