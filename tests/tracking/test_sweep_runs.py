"""The MLflow side of a sweep (tracking/sweep_runs.py, tracking/store.py) on a real sqlite store
under tmp_path, without Ray: one run per trial however often it is logged, infeasible trials
FINISHED (not red FAILED runs), experiments that open in the MLflow UI's runs (ML) view, a
parent run that a launch stopping early ends with a status, and a tracking server that is down
answered within seconds.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import start_mlflow_server
from infersweep.tracking import store
from infersweep.tracking.sweep_runs import STATUS_TO_RUN, SweepRuns
from infersweep.trials import TrialSpec
from infersweep.trials.spec import TrialReport

OK_METRICS = {"latency_ms_per_sample": 3.5, "peak_memory_mb": 120.0, "model_size_mb": 40.0,
              "rougeLsum": 35.2, "rouge1": 40.0, "rouge2": 15.0}


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _report(status: str = "ok", reason: str = "", **spec) -> TrialReport:
    fields = dict(n=3, warmup=0, repeats=1, batch_size=2, cpus=1)
    fields.update(spec)
    return TrialReport(spec=TrialSpec(**fields), status=status, reason=reason,
                       metrics=OK_METRICS if status == "ok" else {}, versions={"mlflow": "x"})


def _unset_http_settings(monkeypatch) -> None:
    """MLflow's HTTP settings unset here, and as they were again after the test."""
    for key in store.HTTP_DEFAULTS:
        monkeypatch.setenv(key, "0")
        monkeypatch.delenv(key)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_infeasible_trial_is_logged_once_and_finished_not_failed(uri):
    runs = SweepRuns("inf", uri)
    runs.parent_run_id()
    report = _report("infeasible", "runtime 'onnxruntime' has no bf16 kernel on cpu", precision="bf16",
                     runtime="onnxruntime")
    first = runs.trial_finished(report, {})
    assert runs.trial_finished(report, {}) == first  # a retry
    again = SweepRuns("inf", uri)  # a resume or relaunch: a new process, a new client
    again.parent_run_id()
    assert again.trial_finished(report, {}, update=True) == first
    found = again.trial_runs()
    assert [r.info.run_id for r in found] == [first]
    run = found[0]
    assert STATUS_TO_RUN["infeasible"] == "FINISHED"
    assert run.info.status == "FINISHED", "an infeasible combination is a result, not a red failure"
    assert run.data.tags["status"] == "infeasible"
    assert "no bf16 kernel" in run.data.tags["reason"]
    assert run.data.tags["mlflow.note.content"].startswith("**infeasible**")
    assert run.data.params["precision"] == "bf16" and run.data.params["runtime"] == "onnxruntime"


def test_outcomes_map_to_run_statuses_and_ok_runs_describe_their_numbers(uri):
    runs = SweepRuns("map", uri)
    ok = runs.trial_finished(_report("ok"), {"speedup": 1.5, "rouge_drop_pct": 0.4})
    oom = runs.trial_finished(_report("oom", "CUDA out of memory", batch_size=64), {})
    client = runs.client
    assert client.get_run(ok).info.status == "FINISHED"
    assert client.get_run(oom).info.status == "FAILED"
    note = client.get_run(ok).data.tags["mlflow.note.content"]
    assert "3.50 ms/sample" in note and "1.50x" in note and "ROUGE drop 0.40%" in note


def test_update_logs_the_relative_metrics_of_a_new_baseline_and_fixes_old_statuses(uri):
    runs = SweepRuns("upd", uri)
    report = _report("ok")
    run_id = runs.trial_finished(report, {"speedup": 1.5})
    assert runs.trial_finished(report, {"speedup": 2.0}) == run_id  # no update: left as it was
    assert runs.client.get_run(run_id).data.metrics["speedup"] == 1.5
    time.sleep(0.01)  # a later timestamp: the latest value is the one the UI shows
    runs.trial_finished(report, {"speedup": 2.0}, update=True)
    assert runs.client.get_run(run_id).data.metrics["speedup"] == 2.0
    infeasible = _report("infeasible", "fp16 needs CUDA", precision="fp16")
    old = runs.trial_finished(infeasible, {})
    runs.client.set_terminated(old, status="FAILED")  # as logged before infeasible runs FINISHED
    runs.trial_finished(infeasible, {}, update=True)
    assert runs.client.get_run(old).info.status == "FINISHED"
    assert len(runs.trial_runs()) == 2


def test_experiments_open_in_the_classic_runs_view(uri):
    runs = SweepRuns("kind", uri)
    runs.parent_run_id()
    tags = runs.client.get_experiment(runs.experiment_id).tags
    assert tags[store.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert "latency_ms_per_sample" in tags["mlflow.note.content"]  # where to find the numbers
    # an experiment made before (an older infersweep, or by hand) is marked when a sweep uses it
    client = store.client(uri)
    old_id = client.create_experiment("infersweep/old", tags={"mlflow.note.content": "mine"})
    SweepRuns("old", uri).parent_run_id()
    old = client.get_experiment(old_id)
    assert old.tags[store.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert old.tags["mlflow.note.content"] == "mine", "a description someone wrote is kept"
    # MLflow 3.17's UI picks the view per browser (default GenAI): the printed link asks for ML
    url = store.experiment_url(uri, old_id, order_by_metric="latency_ms_per_sample")
    assert url.startswith(f"http://127.0.0.1:5000/#/experiments/{old_id}/runs?")
    assert "workflowType=machine_learning" in url and "orderByKey=metrics.%60latency_ms_per_sample%60" in url
    assert "workflowType=machine_learning" in store.ui_command(uri, old_id)


def test_a_launch_that_stops_early_ends_its_parent_run_with_a_status_and_reason(uri):
    runs = SweepRuns("early", uri)
    assert runs.end_sweep("FAILED", "nothing yet") is False  # no parent run: none is created
    assert runs.client.search_runs([runs.experiment_id]) == []
    parent = runs.parent_run_id()
    trial = runs.trial_started("t1", "torch-fp32-dense-b1", {"precision": "fp32"})
    assert runs.end_sweep("FAILED", "no Ray cluster answers at 127.0.0.1:1") is True
    run = runs.client.get_run(parent)
    assert run.info.status == "FAILED" and run.info.end_time >= run.info.start_time
    assert run.data.tags["reason"] == "no Ray cluster answers at 127.0.0.1:1"
    assert runs.client.get_run(trial).info.status == "KILLED", "no run is left RUNNING"
    # resume re-opens the sweep's run, without the old reason; an interrupt ends it KILLED
    assert runs.parent_run_id() == parent
    reopened = runs.client.get_run(parent)
    assert reopened.info.status == "RUNNING" and "reason" not in reopened.data.tags
    assert runs.end_sweep("KILLED", "interrupted (Ctrl-C or SIGTERM)") is True
    assert runs.client.get_run(parent).info.status == "KILLED"
    assert len(runs.client.search_runs([runs.experiment_id], "tags.`infersweep.kind` = 'sweep'")) == 1


def test_an_unreachable_tracking_server_fails_within_seconds_naming_it(monkeypatch):
    _unset_http_settings(monkeypatch)
    port = _closed_port()
    url = f"http://user:secret@127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(store.TrackingUnreachable) as caught:
        SweepRuns("down", url).parent_run_id()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}" in message and "secret" not in message
    assert "Connection refused" in message and "--tracking-uri" in message and "\n" not in message
    assert isinstance(caught.value, ConnectionError) and store.is_tracking_error(caught.value)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == store.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    # ending a sweep's run against it: a warning and False, never an exception
    started = time.monotonic()
    assert SweepRuns("down", url).end_sweep("FAILED", "x") is False
    assert time.monotonic() - started < 10


def test_any_http_answer_counts_as_reachable():
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store.check_reachable(f"http://127.0.0.1:{server.server_port}/prefix/")
        store.check_reachable("sqlite:///nowhere/mlflow.db")  # not a server: nothing to probe
    finally:
        server.shutdown()


@pytest.mark.slow
def test_end_sweep_returns_quickly_when_the_server_went_down_after_it_answered(tmp_path, monkeypatch):
    """The usual case: the server answered at the start, then died; MLflow must not retry for minutes."""
    _unset_http_settings(monkeypatch)
    proc, url = start_mlflow_server(tmp_path)
    try:
        runs = SweepRuns("gone", url)
        runs.parent_run_id()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    started = time.monotonic()
    assert runs.end_sweep("FAILED", "the baseline failed") is False
    assert time.monotonic() - started < 15
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ or \
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == store.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]
