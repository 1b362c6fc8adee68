"""Idempotent run logging (tracking/sweep_runs.py) on a real sqlite MLflow store, without Ray.

What the store holds is read back by a client of its own (not the SweepRuns' one): one run per
trial however often and from however many processes it is logged, the values of the report in
it, trial runs nested under one parent run per sweep, and a restarted sweep that archives its
runs and logs fresh ones. TrialReports are built directly; no model runs.

One store per module (creating a sqlite store's tables takes seconds); each test logs under a
sweep (so an experiment) of its own.
"""
from __future__ import annotations

import json
import math
import pickle
import re
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from infersweep.tracking.sweep_runs import NOTE_TAG, PARENT_TAG, TAG_KIND, TAG_SWEEP, TAG_TRIAL, SweepRuns
from infersweep.trials import TrialSpec
from infersweep.trials.spec import TrialReport

METRICS = {"latency_ms_per_sample": 3.5, "latency_ms_p95": 4.25, "peak_memory_mb": 120.0,
           "model_size_mb": 40.0, "rougeLsum": 35.2, "rouge1": 40.0, "rouge2": 15.0}
RELATIVE = {"speedup": 1.25, "rouge_drop_pct": 0.5, "memory_reduction_pct": 10.0}
HARDWARE = {"cpu_model": "test cpu", "cpu_count": 2, "extras": {"ignored": True}}
VERSIONS = {"torch": "2.0", "mlflow": "3.0"}


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('tracking-store') / 'mlflow.db'}"


@pytest.fixture
def name(request) -> str:
    """A sweep name of the test's own (so an experiment of its own in the shared store)."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]


@pytest.fixture
def reader(uri) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def report_of(status: str = "ok", reason: str = "", metrics: dict | None = None, **spec) -> TrialReport:
    fields = dict(n=3, warmup=0, repeats=1, batch_size=2, cpus=1)
    fields.update(spec)
    if metrics is None:
        metrics = METRICS if status == "ok" else {}
    return TrialReport(spec=TrialSpec(**fields), status=status, reason=reason, metrics=metrics,
                       hardware=HARDWARE, versions=VERSIONS)


def search(reader: MlflowClient, runs: SweepRuns, query: str = "") -> list:
    return reader.search_runs([runs.experiment_id], filter_string=query, max_results=1000)


def params_of(report: TrialReport) -> dict[str, str]:
    return {key: str(value) for key, value in report.spec.knobs().items()}


def logged_report(reader: MlflowClient, run_id: str, tmp_path: Path) -> TrialReport:
    path = reader.download_artifacts(run_id, "report.json", str(tmp_path))
    return TrialReport.from_json(Path(path).read_text())


# --- one run per trial ------------------------------------------------------------------------


def test_the_same_report_logged_twice_is_one_run_holding_its_values(uri, name, reader, tmp_path):
    runs = SweepRuns(name, uri, spec_hash="h1")
    report = report_of()
    first = runs.trial_finished(report, RELATIVE)
    assert runs.trial_finished(report, RELATIVE) == first  # a retry
    restored = pickle.loads(pickle.dumps(runs))  # a resume: Ray restores it without its client
    assert restored._client is None
    assert restored.trial_finished(report, RELATIVE) == first

    found = search(reader, runs, f"tags.`{TAG_TRIAL}` = '{report.trial_id}'")
    assert [r.info.run_id for r in found] == [first]
    run = found[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "torch-fp32-dense-b2"
    assert run.data.params == params_of(report)
    assert run.data.metrics == {**METRICS, **RELATIVE}
    for key in run.data.metrics:  # the retries logged nothing again
        assert len(reader.get_metric_history(first, key)) == 1, key
    tags = run.data.tags
    assert (tags["status"], tags["reason"], tags["infersweep.logged"]) == ("ok", "", "1")
    assert (tags["model"], tags["task"], tags["dataset"]) == ("all-MiniLM-L6-v2", "extractive", "sample")
    assert (tags[TAG_SWEEP], tags[TAG_KIND]) == (name, "trial")
    assert tags["hardware.cpu_model"] == "test cpu" and tags["hardware.cpu_count"] == "2"
    assert "hardware.extras" not in tags
    assert tags["version.torch"] == "2.0" and tags["version.mlflow"] == "3.0"
    assert tags[NOTE_TAG] == ("3.50 ms/sample · 1.25x the baseline · peak memory 120 MB · model 40.0 MB"
                              " · ROUGE-Lsum 35.20 · ROUGE drop 0.50%")
    assert [a.path for a in reader.list_artifacts(first)] == ["report.json"]
    assert logged_report(reader, first, tmp_path) == report


def test_the_report_file_on_disk_is_the_runs_artifact(uri, name, reader, tmp_path):
    report = report_of(batch_size=8)
    path = tmp_path / "trial" / "report.json"
    path.parent.mkdir()
    path.write_text(report.to_json())
    run_id = SweepRuns(name, uri).trial_finished(report, {}, path)
    assert [a.path for a in reader.list_artifacts(run_id)] == ["report.json"]
    downloaded = reader.download_artifacts(run_id, "report.json", str(tmp_path / "down"))
    assert Path(downloaded).read_bytes() == path.read_bytes()


def test_a_relog_with_update_changes_the_values_of_the_same_run(uri, name, reader, tmp_path):
    runs = SweepRuns(name, uri)
    first = report_of()
    run_id = runs.trial_finished(first, RELATIVE)
    remeasured = first.model_copy(update={"metrics": {**METRICS, "latency_ms_per_sample": 2.5}})
    faster = {**RELATIVE, "speedup": 1.75}
    assert runs.trial_finished(remeasured, faster) == run_id  # without update: left as logged
    assert reader.get_run(run_id).data.metrics == {**METRICS, **RELATIVE}

    time.sleep(0.01)  # a later timestamp: the value the store reports as the run's latest
    assert runs.trial_finished(remeasured, faster, update=True) == run_id
    assert [r.info.run_id for r in runs.trial_runs()] == [run_id]
    run = reader.get_run(run_id)
    assert run.data.metrics == {**remeasured.metrics, **faster}
    assert [m.value for m in reader.get_metric_history(run_id, "latency_ms_per_sample")] == [3.5, 2.5]
    assert [m.value for m in reader.get_metric_history(run_id, "rougeLsum")] == [35.2, 35.2]
    assert run.data.params == params_of(first)
    assert run.data.tags[NOTE_TAG].startswith("2.50 ms/sample · 1.75x the baseline")
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
    assert logged_report(reader, run_id, tmp_path).metrics == remeasured.metrics  # the artifact follows


def test_a_trial_whose_worker_died_and_that_then_finished_is_one_finished_run(uri, name, reader):
    runs = SweepRuns(name, uri)
    report = report_of(precision="int8_dynamic")
    spec = report.spec
    runs.trial_errored(report.trial_id, spec.short_name(), spec.knobs(), "the worker died: SIGKILL")
    errored = reader.get_run(runs.run_id_of(report.trial_id))
    assert errored.info.status == "FAILED" and errored.data.tags["reason"] == "the worker died: SIGKILL"
    assert "infersweep.logged" not in errored.data.tags

    run_id = runs.trial_finished(report, RELATIVE)  # Tune retried it, and it finished
    assert run_id == errored.info.run_id
    assert [r.info.run_id for r in search(reader, runs, f"tags.`{TAG_KIND}` = 'trial'")] == [run_id]
    run = reader.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert (run.data.tags["status"], run.data.tags["reason"]) == ("ok", ""), "the old error is gone"
    assert run.data.tags[NOTE_TAG].startswith("3.50 ms/sample")
    assert run.data.params == params_of(report)


@pytest.mark.parametrize("status, reason, run_status", [
    ("infeasible", "fp16 needs CUDA", "FINISHED"),
    ("oom", "CUDA out of memory", "FAILED"),
    ("failed", "ValueError: boom", "FAILED"),
])
def test_an_outcome_without_metrics_is_logged_once_with_its_reason(uri, name, reader, status, reason, run_status):
    runs = SweepRuns(name, uri)
    report = report_of(status, reason, precision="fp16")
    run_id = runs.trial_finished(report, {})
    assert runs.trial_finished(report, {}, update=True) == run_id
    (run,) = search(reader, runs, f"tags.`{TAG_KIND}` = 'trial'")
    assert run.info.run_id == run_id and run.info.status == run_status
    assert run.data.metrics == {}
    assert (run.data.tags["status"], run.data.tags["reason"]) == (status, reason)
    assert run.data.tags[NOTE_TAG] == f"**{status}**: {reason}"


# --- NaN and None -----------------------------------------------------------------------------


def test_a_nan_metric_is_logged_as_nan_not_dropped_or_zeroed(uri, name, reader):
    runs = SweepRuns(name, uri)
    report = report_of(metrics={**METRICS, "rouge2": math.nan})
    run_id = runs.trial_finished(report, {**RELATIVE, "speedup": math.nan})
    assert runs.trial_finished(report, {**RELATIVE, "speedup": math.nan}) == run_id
    assert len(runs.trial_runs()) == 1
    metrics = reader.get_run(run_id).data.metrics
    assert set(metrics) == set(METRICS) | set(RELATIVE)
    assert math.isnan(metrics["rouge2"]) and math.isnan(metrics["speedup"])
    assert metrics["rougeLsum"] == 35.2 and metrics["rouge_drop_pct"] == 0.5


def test_a_none_metric_never_reaches_the_store():
    """TrialReport.metrics holds floats: a None is refused where the report is made."""
    with pytest.raises(ValidationError, match="metrics.rouge2"):
        report_of(metrics={**METRICS, "rouge2": None})


def test_the_report_artifact_of_a_run_with_a_nan_metric_reads_back(uri, name, reader, tmp_path):
    report = report_of(metrics={**METRICS, "rouge2": math.nan})
    run_id = SweepRuns(name, uri).trial_finished(report, {})
    back = logged_report(reader, run_id, tmp_path)
    assert math.isnan(back.metrics["rouge2"])


# --- the parent run ---------------------------------------------------------------------------


def test_trial_runs_are_children_of_the_one_parent_run_of_their_sweep(uri, name, reader):
    runs = SweepRuns(name, uri, spec_hash="abc123")
    early = runs.trial_finished(report_of(batch_size=1), {})  # before anyone asked for the parent
    parent = runs.parent_run_id()
    late = runs.trial_finished(report_of(batch_size=4), {})
    assert SweepRuns(name, uri, spec_hash="abc123").parent_run_id() == parent  # a relaunch

    (found,) = search(reader, runs, f"tags.`{TAG_KIND}` = 'sweep'")
    assert found.info.run_id == parent and found.info.run_name == name
    assert found.data.tags[TAG_SWEEP] == name and found.data.tags["infersweep.spec_hash"] == "abc123"
    assert PARENT_TAG not in found.data.tags
    children = search(reader, runs, f"tags.`{PARENT_TAG}` = '{parent}'")
    assert sorted(r.info.run_id for r in children) == sorted([early, late])
    assert len(search(reader, runs)) == 3


def test_closing_a_sweep_tags_the_frontier_and_ends_every_run(uri, name, reader, tmp_path):
    runs = SweepRuns(name, uri)
    parent = runs.parent_run_id()
    best, other = report_of(batch_size=1), report_of(batch_size=4)
    best_id, other_id = runs.trial_finished(best, {}), runs.trial_finished(other, {})
    cut = runs.trial_started("t-cut", "torch-fp32-dense-b16", {"batch_size": 16})
    frontier = tmp_path / "pareto.csv"
    frontier.write_text("trial_id\n" + best.trial_id + "\n")
    runs.close([best.trial_id], [frontier, tmp_path / "missing.html"])

    pareto = {r.info.run_id: r.data.tags["pareto"] for r in runs.trial_runs()}
    assert pareto == {best_id: "true", other_id: "false", cut: "false"}
    assert reader.get_run(parent).info.status == "FINISHED"
    killed = reader.get_run(cut)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["reason"] == "the sweep ended before this trial finished"
    assert [reader.get_run(r).info.status for r in (best_id, other_id)] == ["FINISHED", "FINISHED"]
    assert [a.path for a in reader.list_artifacts(parent)] == ["pareto.csv"]
    assert search(reader, runs, "attributes.status = 'RUNNING'") == []


# --- archive: a restarted sweep starts with no runs -------------------------------------------


def test_archive_moves_the_runs_and_the_sweep_restarted_under_its_name_logs_fresh_ones(uri, name, reader):
    runs = SweepRuns(name, uri)
    parent = runs.parent_run_id()
    report = report_of()
    done = runs.trial_finished(report, RELATIVE)
    running = runs.trial_started("t-running", "torch-fp32-dense-b8", {"batch_size": 8})
    archived = f"{name}.archived-20250101-000000"
    assert runs.archive(archived) == 3

    moved = {r.info.run_id: r for r in search(reader, runs)}
    assert set(moved) == {parent, done, running}
    assert {r.data.tags[TAG_SWEEP] for r in moved.values()} == {archived}
    assert moved[done].info.status == "FINISHED" and moved[done].data.metrics == {**METRICS, **RELATIVE}
    assert moved[running].info.status == "KILLED" and moved[parent].info.status == "KILLED"
    assert runs.trial_runs() == [] and runs.run_id_of(report.trial_id) is None

    restarted = SweepRuns(name, uri)
    new_parent = restarted.parent_run_id()
    new = restarted.trial_finished(report, RELATIVE)
    assert new_parent != parent and new != done
    assert [r.info.run_id for r in restarted.trial_runs()] == [new]
    assert restarted.run_id_of(report.trial_id) == new
    assert reader.get_run(new).data.tags[PARENT_TAG] == new_parent
    assert reader.get_run(new).data.metrics == {**METRICS, **RELATIVE}
    same_trial = search(reader, runs, f"tags.`{TAG_TRIAL}` = '{report.trial_id}'")
    assert {r.data.tags[TAG_SWEEP]: r.info.run_id for r in same_trial} == {archived: done, name: new}

    # a second restart moves only the current runs; the first archive keeps its own
    assert restarted.archive(f"{name}.archived-20250102-000000") == 2
    assert sorted(r.data.tags[TAG_SWEEP] for r in search(reader, runs)) == \
        [archived] * 3 + [f"{name}.archived-20250102-000000"] * 2


# --- model artifacts and ending a sweep early --------------------------------------------------


def test_model_artifacts_go_under_the_trials_own_run(uri, name, reader, tmp_path):
    runs = SweepRuns(name, uri)
    report = report_of()
    run_id = runs.trial_finished(report, {})
    model = tmp_path / "variant"
    (model / "model").mkdir(parents=True)
    (model / "model" / "config.json").write_text(json.dumps({"hidden_size": 384}))
    (model / "spec.json").write_text("{}")
    runs.log_model_artifacts(report.trial_id, model)
    runs.log_model_artifacts(report.trial_id, model)  # again: the same files, not a second copy
    runs.log_model_artifacts("no-such-trial", model)  # no run: nothing happens
    runs.log_model_artifacts(report.trial_id, tmp_path / "missing")
    files = sorted(a.path for a in reader.list_artifacts(run_id, "model"))
    assert files == ["model/model", "model/spec.json"]
    assert [a.path for a in reader.list_artifacts(run_id, "model/model")] == ["model/model/config.json"]
    assert len(search(reader, runs)) == 2  # the trial and its parent, no run for the unknown trial


def test_end_sweep_with_an_unknown_status_ends_the_parent_failed(uri, name, reader):
    runs = SweepRuns(name, uri)
    parent = runs.parent_run_id()
    assert runs.end_sweep("EXPLODED", "") is True
    run = reader.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["reason"] == "failed" and run.data.tags[NOTE_TAG] == "**FAILED**: failed"


class _ServerGoneAt:
    """A client that fails every request from its `nth` call of `method` on (the server went down)."""

    def __init__(self, client, method: str, nth: int = 1):
        self._client, self._method, self._left = client, method, nth

    def __getattr__(self, attr):
        real = getattr(self._client, attr)
        if attr != self._method:
            return real

        def call(*args, **kwargs):
            self._left -= 1
            if self._left <= 0:
                raise ConnectionError("Connection refused")
            return real(*args, **kwargs)
        return call


@pytest.mark.parametrize("cut_at", ["set_terminated", "set_tag"])
def test_a_run_cut_short_while_logging_is_logged_again_and_ends_finished(uri, name, reader, cut_at):
    """The server goes down in the middle of a trial's logging: the reconcile at the end must see
    the run as not logged (whatever step it stopped at) and leave it FINISHED, not RUNNING/KILLED."""
    runs = SweepRuns(name, uri)
    report = report_of(precision="bf16")
    real = runs.client
    runs._client = _ServerGoneAt(real, cut_at)
    with pytest.raises(ConnectionError):
        runs.trial_finished(report, RELATIVE)
    runs._client = real
    assert report.trial_id not in runs.logged_runs()  # the reconcile logs it again
    run_id = runs.trial_finished(report, RELATIVE)
    runs.close([], [])
    run = reader.get_run(run_id)
    assert (run.info.status, run.data.tags["infersweep.logged"]) == ("FINISHED", "1")
    assert [r.info.run_id for r in search(reader, runs, f"tags.`{TAG_KIND}` = 'trial'")] == [run_id]
