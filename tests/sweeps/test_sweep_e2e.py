"""A small sweep end to end on real Ray (local), real Optuna and real MLflow."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infersweep.sweep_cli import write_sweep_report
from infersweep.sweeps.driver import run_sweep
from infersweep.sweeps.spec import load_sweep_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SMALL = """
name: {name}
dataset: {{path: sample, n: 2}}
baseline: {{batch_size: 1}}
space:
  precision: [fp32, int8_dynamic, fp16]
  batch_size: [1, 2]
search: {{algorithm: {algorithm}, num_trials: {trials}, seed: 1}}
resources: {{cpu: 1}}
trial: {{warmup: 0, repeats: 1, timing: {{max_seconds: 3}}}}  # tests: a short latency cap
finalists: {{rounds: 2, max_seconds: 1}}
storage: {{path: {storage}}}
"""


def small_sweep(tmp_path, name="small", algorithm="grid", trials=6):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SMALL.format(name=name, algorithm=algorithm, trials=trials, storage=tmp_path / "sweeps"))
    return path


def mlflow_runs(uri: str, sweep: str):
    from infersweep.tracking.sweep_runs import SweepRuns

    return SweepRuns(sweep, uri).trial_runs()


def check_runs(uri: str, sweep_dir: Path, sweep: str):
    """Exactly one finished run per trial on disk, none RUNNING, reasons visible."""
    runs = mlflow_runs(uri, sweep)
    by_trial = {}
    for run in runs:
        by_trial.setdefault(run.data.tags["infersweep.trial_id"], []).append(run)
    on_disk = {p.parent.name: json.loads(p.read_text()) for p in (sweep_dir / "trials").glob("*/report.json")}
    assert set(by_trial) == set(on_disk)
    for trial_id, trial_runs in by_trial.items():
        assert len(trial_runs) == 1, f"{trial_id} logged {len(trial_runs)} times"
        run, report = trial_runs[0], on_disk[trial_id]
        assert run.info.status == ("FAILED" if report["status"] in ("oom", "failed") else "FINISHED")
        assert run.data.tags["status"] == report["status"]
        if report["status"] == "infeasible":
            assert "fp16 runs on cuda" in run.data.tags["reason"]
    return by_trial


def test_grid_sweep_logs_every_trial_and_finds_a_frontier(tmp_path, ray_local):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = small_sweep(tmp_path)
    path.write_text(path.read_text() + "constraints: []\n")  # 2 documents decide no bound: finalists must exist
    sweep = load_sweep_spec(path)
    result = run_sweep(sweep, tracking_uri=uri, progress=False, say=lambda _: None, report=write_sweep_report)
    statuses = sorted(r.status for r in result.rows)
    assert statuses == ["ok"] * 4  # fp16 cannot run on a CPU: ruled out before sampling, never a trial
    from infersweep.tracking.sweep_runs import SweepRuns

    runs = SweepRuns("small", uri)
    parent = runs.client.get_run(runs.parent_run_id())
    assert parent.data.tags["infersweep.ruled_out"] == "1"
    ruled_out = json.loads(Path(runs.client.download_artifacts(parent.info.run_id, "ruled_out.json", str(tmp_path)))
                           .read_text())
    assert ruled_out["data"] == [["torch", "fp16", "none", "cpu", ruled_out["data"][0][-1]]]
    assert "fp16 runs on cuda" in ruled_out["data"][0][-1]
    assert result.frontier and all(r.status == "ok" for r in result.frontier)
    by_trial = check_runs(uri, sweep.sweep_dir(), "small")
    pareto_ids = {r.trial_id for r in result.frontier}
    for trial_id, (run,) in by_trial.items():
        assert run.data.tags["pareto"] == str(trial_id in pareto_ids).lower()
        if run.data.tags["status"] == "ok":
            assert {"latency_ms_per_sample", "rougeLsum", "speedup", "rouge_drop_pct"} <= set(run.data.metrics)
            assert run.data.params["precision"] in ("fp32", "int8_dynamic")
    assert (sweep.sweep_dir() / "pareto.csv").exists()
    assert (sweep.sweep_dir() / "report" / "pareto_report.html").exists()
    # the finalists were timed again, interleaved with the baseline; their speedups come from that
    head = json.loads((sweep.sweep_dir() / "finalists.json").read_text())
    finalists = {r.trial_id for r in result.frontier if not r.baseline}
    assert finalists, "the test needs a frontier member besides the baseline"
    assert head["baseline"] == result.baseline.trial_id and set(head["finalists"]) == finalists
    assert len(head["orders"]) == 2 and all(set(o) == finalists | {head["baseline"]} for o in head["orders"])
    assert all(len(v) == 2 for v in head["latency_ms_per_sample"].values())
    for row in result.frontier:
        if not row.baseline:
            assert row.metrics["speedup"] == pytest.approx(head["finalists"][row.trial_id]["speedup"])
            assert row.metrics["speedup_in_trial"] > 0
            assert by_trial[row.trial_id][0].data.metrics["speedup"] == pytest.approx(row.metrics["speedup"])
    import optuna

    study = optuna.load_study(study_name=f"infersweep-{sweep.name}",
                              storage=f"sqlite:///{sweep.sweep_dir() / 'optuna.db'}")
    assert study.metric_names == ["latency_ms_per_sample", "peak_memory_mb", "rougeLsum"]

    # launching the same sweep again runs and logs nothing twice
    again = run_sweep(sweep, tracking_uri=uri, progress=False, say=lambda _: None)
    assert len(again.rows) == len(result.rows)
    check_runs(uri, sweep.sweep_dir(), "small")


def test_optuna_sweep_against_a_real_mlflow_server(tmp_path, ray_local, mlflow_server):
    sweep = load_sweep_spec(small_sweep(tmp_path, name="served", algorithm="tpe", trials=4))
    result = run_sweep(sweep, tracking_uri=mlflow_server, progress=False, say=lambda _: None)
    assert any(r.status == "ok" for r in result.rows)
    check_runs(mlflow_server, sweep.sweep_dir(), "served")


def cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "infersweep", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def test_promote_then_load_in_a_fresh_process_and_summarize(tmp_path, ray_local):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = load_sweep_spec(small_sweep(tmp_path, name="promo"))
    run_sweep(sweep, tracking_uri=uri, progress=False, say=lambda _: None)
    storage = str(tmp_path / "sweeps")

    nothing = cli("promote", "promo", "--where", "rouge_drop_pct <= -50", "--tracking-uri", uri, "--storage", storage)
    assert nothing.returncode == 1 and "Nothing was registered" in nothing.stderr

    done = cli("promote", "promo", "--where", "rouge_drop_pct <= 100", "--minimize", "latency_ms_per_sample",
               "--name", "promo-model", "--tracking-uri", uri, "--storage", storage)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "version 1" in done.stdout and "@champion" in done.stdout

    loader = ("import mlflow, mlflow.pyfunc; mlflow.set_tracking_uri(%r); mlflow.set_registry_uri(%r); "
              "m = mlflow.pyfunc.load_model('models:/promo-model@champion'); "
              "print(m.predict({'document': ['The mayor opened a bridge on Monday. It cost 3 million dollars. "
              "Drivers said it cut their commute in half. The old bridge will close.']})['summary'][0])") % (uri, uri)
    loaded = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "bridge" in loaded.stdout

    article = tmp_path / "article.txt"
    article.write_text("The council voted on Tuesday to build a park. The park will have a pond. "
                       "Work starts next spring. Residents welcomed the plan.")
    summary = cli("summarize", "models:/promo-model@champion", str(article), "--tracking-uri", uri)
    assert summary.returncode == 0, summary.stderr[-3000:]
    assert "park" in summary.stdout

    from infersweep.tracking.store import client

    version = client(uri).get_model_version_by_alias("promo-model", "champion")
    assert version.tags["sweep"] == "promo" and "metric.latency_ms_per_sample" in version.tags


def test_killed_sweep_resumes_without_rerunning_or_double_logging(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = small_sweep(tmp_path, name="killed", algorithm="tpe", trials=5)
    sweep = load_sweep_spec(spec)
    trials = sweep.sweep_dir() / "trials"
    proc = subprocess.Popen([sys.executable, "-m", "infersweep", "launch", str(spec), "--tracking-uri", uri],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials.glob("*/report.json"))) < 3:  # baseline + 2
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in trials.glob("*/report.json")}
    assert len(before) >= 3

    resumed = cli("resume", "killed", "--tracking-uri", uri, "--storage", str(tmp_path / "sweeps"), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {p.parent.name: p.stat().st_mtime_ns for p in trials.glob("*/report.json")}
    baseline_id = sweep.trial_spec(sweep.baseline.model_dump()).trial_id()  # re-measured by each launch
    assert all(after[k] == v for k, v in before.items() if k != baseline_id), "a finished trial was run again"
    by_trial = check_runs(uri, sweep.sweep_dir(), "killed")
    assert not [r for runs in by_trial.values() for r in runs if r.info.status == "RUNNING"]


def test_more_trials_continue_a_finished_sweep(tmp_path, ray_local):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = load_sweep_spec(small_sweep(tmp_path, name="grow", algorithm="tpe", trials=2))
    run_sweep(first, tracking_uri=uri, progress=False, say=lambda _: None)
    baseline_id = first.trial_spec(first.baseline.model_dump()).trial_id()
    reports = lambda: {p.parent.name: p.stat().st_mtime_ns for p in (first.sweep_dir() / "trials").glob("*/report.json")}
    before = reports()
    said = []
    grown = load_sweep_spec(small_sweep(tmp_path, name="grow", algorithm="tpe", trials=3))
    run_sweep(grown, tracking_uri=uri, progress=False, say=said.append)
    after = reports()
    assert len(set(after) - {baseline_id}) == 3, sorted(after)
    assert all(after[k] == v for k, v in before.items() if k != baseline_id), "a finished trial ran again"
    assert any("reused" in line for line in said), said
    check_runs(uri, first.sweep_dir(), "grow")
