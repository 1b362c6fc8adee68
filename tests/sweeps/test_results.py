"""A sweep's results read one way (status, report, promote, the end of a sweep), and sweeps/
never reaching up into the layers that use it. No Ray needed."""
import ast
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infersweep.cli import app
from infersweep.sweeps.driver import finish
from infersweep.sweeps.results import NoBaselineYet, load_results
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.spec import TrialReport

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
# knobs -> (latency, ROUGE-Lsum, peak MiB), or a status
TRIALS = [({"batch_size": 4}, (250.0, 41.2, 346.0)),  # the baseline
          ({"precision": "int8_dynamic", "batch_size": 4}, (120.0, 41.1, 200.0)),
          ({"precision": "int8_dynamic", "batch_size": 8}, (100.0, 38.0, 190.0)),
          ({"precision": "fp16", "batch_size": 4}, "infeasible")]


def write_sweep(tmp_path) -> SweepSpec:
    sweep = SweepSpec(name="done", storage={"path": str(tmp_path / "sweeps")}, confidence=0.5,
                      space={"precision": ["fp32", "int8_dynamic", "fp16"], "batch_size": [4, 8]},
                      baseline={"batch_size": 4})
    sweep.sweep_dir().mkdir(parents=True)
    (sweep.sweep_dir() / "sweep.json").write_text(sweep.model_dump_json())
    for knobs, outcome in TRIALS:
        spec = sweep.trial_spec(knobs)
        metrics = dict(zip(("latency_ms_per_sample", "rougeLsum", "peak_memory_mb"), outcome), model_size_mb=80.0) \
            if isinstance(outcome, tuple) else {}
        report = TrialReport(spec=spec, status="ok" if metrics else outcome, metrics=metrics)
        (trials_dir(sweep) / report.trial_id).mkdir(parents=True)
        (trials_dir(sweep) / report.trial_id / "report.json").write_text(report.to_json())
    return sweep


def test_results_are_relative_to_the_baseline_and_keep_the_constraints(tmp_path):
    sweep = write_sweep(tmp_path)
    results = load_results(sweep)
    assert results.baseline.trial_id == sweep.baseline_spec().trial_id()
    assert sorted(r.status for r in results.rows) == ["infeasible", "ok", "ok", "ok"]
    fast = next(r for r in results.rows if r.knobs["batch_size"] == 8)
    assert fast.metrics["speedup"] == pytest.approx(2.5)
    # the b8 variant drops ROUGE by 8%: outside the 1% constraint, so never on the frontier
    front = {(r.knobs["precision"], r.knobs["batch_size"]) for r in results.frontier}
    assert front == {("fp32", 4), ("int8_dynamic", 4)}


def test_no_baseline_is_said_once_for_every_command(tmp_path):
    sweep = write_sweep(tmp_path)
    (trials_dir(sweep) / sweep.baseline_spec().trial_id() / "report.json").unlink()
    with pytest.raises(NoBaselineYet, match="has no finished baseline yet"):
        load_results(sweep)
    storage = ["--storage", str(tmp_path / "sweeps")]
    status = runner.invoke(app, ["status", "done", *storage])
    assert status.exit_code == 0 and "the baseline has not finished yet" in status.output
    promote = runner.invoke(app, ["promote", "done", *storage])
    assert promote.exit_code == 1 and "no finished baseline" in promote.output


@pytest.mark.parametrize("command", ["status", "resume", "promote", "report"])
def test_a_sweep_that_does_not_exist_is_bad_input_in_every_command(tmp_path, command):
    result = runner.invoke(app, [command, "nope", "--storage", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: no sweep named 'nope'") and len(result.output.splitlines()) == 1


def test_status_shows_the_frontier_so_far(tmp_path):
    write_sweep(tmp_path)
    result = runner.invoke(app, ["status", "done", "--storage", str(tmp_path / "sweeps")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3 of 12 trials finished" in result.output and "frontier so far" in result.output


class FakeRuns:
    """The parts of tracking.sweep_runs.SweepRuns the end of a sweep uses."""

    experiment_id = "0"

    def __init__(self):
        self.logged, self.closed = [], None

    def trial_finished(self, report, relative, path, update=False):
        self.logged.append(report.trial_id)

    def close(self, frontier_ids, artifacts):
        self.closed = (frontier_ids, artifacts)

    def log_model_artifacts(self, trial_id, directory):
        pass


def test_the_end_of_a_sweep_calls_the_report_writer_it_is_given(tmp_path):
    sweep = write_sweep(tmp_path)
    baseline = load_results(sweep).baseline
    page = tmp_path / "page.html"
    calls = []

    def writer(sweep_, rows, front, runs_):
        calls.append((sweep_.name, len(rows), len(front)))
        return [page]

    runs = FakeRuns()
    result = finish(sweep, baseline, runs, "sqlite:///x.db", 0.0, report=writer)
    assert calls == [("done", 4, len(result.frontier))] and page in result.artifacts
    assert len(runs.logged) == 4 and runs.closed[0] == [r.trial_id for r in result.frontier]


def test_a_report_that_cannot_be_drawn_is_a_warning_not_a_failed_sweep(tmp_path, caplog):
    sweep = write_sweep(tmp_path)

    def broken(*args):
        raise RuntimeError("no fonts")

    with caplog.at_level(logging.WARNING):
        result = finish(sweep, load_results(sweep).baseline, FakeRuns(), "sqlite:///x.db", 0.0, report=broken)
    assert result.frontier and "no fonts" in caplog.text


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_sweeps_never_import_the_layers_above_them():
    below = {"trials", "sweeps", "tracking", "cluster"}  # infersweep.<these>; the CLI and dashboards are above
    for path in (ROOT / "sweeps").glob("*.py"):
        parts = [name.split(".") for name in _imports(path)]
        upward = {".".join(p) for p in parts if p[0] == "infersweep" and (len(p) < 2 or p[1] not in below)}
        assert not upward, f"{path.name} imports {upward}: pass what it needs in instead"
