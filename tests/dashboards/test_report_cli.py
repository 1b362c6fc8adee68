"""`infersweep report SWEEP` on a sweep folder written by hand, with a real (sqlite) MLflow store."""
import re

import typer
from typer.testing import CliRunner

from infersweep.report_cli import report
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.measure import relative_metrics
from infersweep.trials.spec import TrialReport

app = typer.Typer()
app.command()(report)


@app.callback()
def _group():
    """`report` as a subcommand, as in infersweep.cli."""


runner = CliRunner()
# knobs -> (latency, ROUGE-Lsum, peak MiB) or a status and reason
TRIALS = [
    ({"precision": "fp32", "batch_size": 4}, (250.0, 41.24, 346.0)),  # the baseline
    ({"precision": "int8_dynamic", "batch_size": 4}, (120.0, 41.0, 200.0)),
    ({"precision": "int8_dynamic", "batch_size": 8}, (100.0, 40.1, 190.0)),
    ({"precision": "fp32", "batch_size": 8, "pruning": "unstructured:0.3"}, (240.0, 41.3, 350.0)),
    ({"precision": "fp16", "batch_size": 4}, ("infeasible", "fp16 needs a CUDA device")),
]


def write_sweep(tmp_path):
    sweep = SweepSpec(name="demo", storage={"path": str(tmp_path / "sweeps")},
                      space={"precision": ["fp32", "int8_dynamic", "fp16"], "batch_size": [4, 8],
                             "pruning": {"methods": ["none", "unstructured"], "ratios": [0.3]}},
                      baseline={"precision": "fp32", "batch_size": 4})
    sweep.sweep_dir().mkdir(parents=True)
    (sweep.sweep_dir() / "sweep.json").write_text(sweep.model_dump_json())
    reports = []
    for knobs, outcome in TRIALS:
        spec = sweep.trial_spec(knobs)
        if isinstance(outcome[0], str):
            report_ = TrialReport(spec=spec, status=outcome[0], reason=outcome[1])
        else:
            lat, rouge, mem = outcome
            report_ = TrialReport(spec=spec, status="ok", metrics={
                "latency_ms_per_sample": lat, "rougeLsum": rouge, "peak_memory_mb": mem, "model_size_mb": 80.0})
        path = trials_dir(sweep) / report_.trial_id / "report.json"
        path.parent.mkdir(parents=True)
        path.write_text(report_.to_json())
        reports.append((report_, path))
    return sweep, reports


def test_report_command_links_frontier_rows_to_their_mlflow_runs(tmp_path):
    from infersweep.tracking.sweep_runs import SweepRuns

    sweep, reports = write_sweep(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = SweepRuns(sweep.name, uri, None, sweep.spec_hash())
    baseline = reports[0][0]
    for report_, path in reports:
        runs.trial_finished(report_, relative_metrics(report_.metrics, baseline.metrics) if report_.ok else {}, path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", "demo", "--storage", str(tmp_path / "sweeps"), "--out", str(out),
                                 "--tracking-uri", uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 trials, 3 on the Pareto frontier" in result.output
    assert str(out / "pareto_report.html") in result.output.replace("\n", "")
    html = (out / "pareto_report.html").read_text()
    assert (out / "pareto_latency_rouge.png").exists()
    linked = dict(re.findall(r'<tr data-trial="([^"]+)".*?<a href="([^"]+)"', html))
    fast = reports[1][0].trial_id
    assert set(linked) == {reports[i][0].trial_id for i in (0, 1, 3)}
    assert linked[fast] == f"http://127.0.0.1:5000/#/experiments/{runs.experiment_id}/runs/{runs.run_id_of(fast)}"


def test_report_command_without_a_store_or_baseline(tmp_path):
    sweep, reports = write_sweep(tmp_path)
    args = ["report", "demo", "--storage", str(tmp_path / "sweeps"), "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no run links" in result.output and not (tmp_path / "none.db").exists()
    assert (sweep.sweep_dir() / "report" / "pareto_report.html").exists()
    reports[0][1].unlink()  # no baseline: nothing to compare against
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "no finished baseline" in result.output
    result = runner.invoke(app, ["report", "nope", "--storage", str(tmp_path / "sweeps")])
    assert result.exit_code == 2 and "no sweep named 'nope'" in result.output
