"""The end of a sweep logs only what MLflow does not hold yet: runs logged during the search with
this launch's values are left alone, a finalist's head-to-head speedup and a new baseline are
logged again. Real MLflow (sqlite), no Ray."""
from infersweep.sweeps.driver import reconcile
from infersweep.sweeps.results import load_results
from infersweep.sweeps.trainable import trials_dir
from infersweep.tracking.sweep_runs import SweepRuns
from infersweep.trials.measure import SPEEDUP, relative_to
from infersweep.trials.spec import TrialReport
from tests.sweeps.test_results import write_sweep


def _log_all(sweep, runs, baseline) -> None:
    """What the search's MLflow callback logs: each report relative to the baseline."""
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        relative = relative_to(report, baseline, sweep.confidence) if report.ok else {}
        runs.trial_finished(report, relative, path)


def test_reconcile_logs_only_what_changed_and_leaves_no_run_open(tmp_path):
    sweep = write_sweep(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = SweepRuns(sweep.name, uri)
    baseline = load_results(sweep).baseline
    assert reconcile(sweep, runs, baseline) == 4  # nothing logged yet: every report
    assert reconcile(sweep, runs, baseline) == 0  # logged with these values: nothing again
    finalist = next(r for r in load_results(sweep).rows if r.knobs.get("precision") == "int8_dynamic"
                    and r.knobs["batch_size"] == 4)
    assert reconcile(sweep, runs, baseline, {finalist.trial_id: {SPEEDUP: 2.25}}) == 1
    logged = {r.data.tags["infersweep.trial_id"]: r for r in runs.trial_runs()}
    assert logged[finalist.trial_id].data.metrics[SPEEDUP] == 2.25
    assert len(logged) == 4 and all(r.info.status == "FINISHED" for r in logged.values())
    params = logged[finalist.trial_id].data.params
    assert params["precision"] == "int8_dynamic" and params["batch_size"] == "4"  # knobs, batched


def test_a_new_baseline_relogs_every_measured_trial(tmp_path):
    sweep = write_sweep(tmp_path)
    runs = SweepRuns(sweep.name, f"sqlite:///{tmp_path / 'mlflow.db'}")
    baseline = load_results(sweep).baseline
    _log_all(sweep, runs, baseline)
    assert reconcile(sweep, runs, baseline) == 0  # the search logged these very values
    slower = baseline.model_copy(update={"metrics": {**baseline.metrics, "latency_ms_per_sample": 500.0}})
    assert reconcile(sweep, runs, slower) == 3  # the ok trials' speedups changed; the infeasible one did not
    by_trial = {r.data.tags["infersweep.trial_id"]: r for r in runs.trial_runs()}
    fast = next(r for r in load_results(sweep).rows if r.knobs.get("batch_size") == 8)
    assert by_trial[fast.trial_id].data.metrics[SPEEDUP] == 5.0
