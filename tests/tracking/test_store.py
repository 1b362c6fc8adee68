"""Where runs go (tracking/store.py): which store a URI names, experiments created or repaired as
ML experiments, artifacts next to a local store, and MLflow's HTTP settings put back after a
fail-fast call. On a real sqlite store under a temporary directory; no server, no Ray.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from infersweep.tracking import store
from infersweep.tracking.sweep_runs import SweepRuns
from infersweep.trials import TrialSpec
from infersweep.trials.spec import TrialReport


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store") / "mlflow.db"


@pytest.fixture(scope="module")
def uri(db) -> str:
    """The module's store, opened (its tables made) by infersweep's own client."""
    uri = f"sqlite:///{db}"
    store.client(uri)
    return uri


@pytest.fixture
def reader(uri) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def experiments_named(reader: MlflowClient, name: str) -> list:
    from mlflow.entities import ViewType

    return [e for e in reader.search_experiments(view_type=ViewType.ALL) if e.name == name]


# --- which store ------------------------------------------------------------------------------


def test_an_explicit_uri_beats_the_environment_which_beats_the_local_store(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    local = f"sqlite:///{tmp_path.resolve() / '.infersweep' / 'mlflow.db'}"
    assert store.resolve_uri(None) == local == store.default_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert store.resolve_uri(None) == "http://mlflow:5000"
    assert store.resolve_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert store.default_uri(Path("relative/root")) == f"sqlite:///{tmp_path.resolve() / 'relative/root/mlflow.db'}"


@pytest.mark.slow  # a new sqlite store: MLflow makes its tables (seconds)
def test_the_client_of_a_local_store_creates_its_folder(tmp_path):
    folder = tmp_path / "not" / "there" / "yet"
    client = store.client(f"sqlite:///{folder / 'mlflow.db'}")  # sqlite itself makes no folders
    assert [p.name for p in folder.iterdir()] == ["mlflow.db"]
    assert client.tracking_uri == f"sqlite:///{folder / 'mlflow.db'}"
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_a_local_stores_artifacts_lie_next_to_it_and_a_servers_are_its_own(uri, db, reader):
    assert store.artifact_root(uri) == (db.parent / "mlartifacts").resolve().as_uri()
    assert store.artifact_root("http://mlflow:5000") is None
    runs = SweepRuns("artifacts", uri)
    report = TrialReport(spec=TrialSpec(n=3), status="infeasible", reason="no GPU")
    run_id = runs.trial_finished(report, {})
    experiment = reader.get_experiment(runs.experiment_id)
    assert experiment.artifact_location == store.artifact_root(uri)
    on_disk = db.parent / "mlartifacts" / run_id / "artifacts" / "report.json"
    assert TrialReport.from_json(on_disk.read_text()) == report


# --- experiments ------------------------------------------------------------------------------


def test_ensure_experiment_makes_one_ml_experiment_however_often_it_is_called(uri, reader):
    client = store.client(uri)
    first = store.ensure_experiment(client, "infersweep/once", uri)
    assert store.ensure_experiment(client, "infersweep/once", uri) == first
    (experiment,) = experiments_named(reader, "infersweep/once")
    assert experiment.experiment_id == first and experiment.lifecycle_stage == "active"
    assert experiment.tags[store.EXPERIMENT_KIND_TAG] == store.ML_EXPERIMENT_KIND == "custom_model_development"
    assert experiment.tags["mlflow.note.content"] == store.EXPERIMENT_NOTE


def test_an_experiment_of_another_kind_is_marked_as_an_ml_one(uri, reader):
    experiment_id = reader.create_experiment("infersweep/genai", tags={store.EXPERIMENT_KIND_TAG: "genai_development"})
    assert SweepRuns("genai", uri).experiment_id == experiment_id
    tags = reader.get_experiment(experiment_id).tags
    assert tags[store.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert tags["mlflow.note.content"] == store.EXPERIMENT_NOTE  # it had none: ours is added


def test_a_deleted_experiment_is_restored_and_its_sweep_reopened(uri, reader):
    runs = SweepRuns("deleted", uri)
    parent = runs.parent_run_id()
    reader.delete_experiment(runs.experiment_id)
    assert reader.get_experiment(runs.experiment_id).lifecycle_stage == "deleted"
    again = SweepRuns("deleted", uri)  # a relaunch: the same experiment, active again
    assert again.experiment_id == runs.experiment_id
    assert reader.get_experiment(again.experiment_id).lifecycle_stage == "active"
    assert again.parent_run_id() == parent
    assert len(experiments_named(reader, "infersweep/deleted")) == 1


def test_a_sweep_may_log_into_an_experiment_named_otherwise(uri, reader):
    runs = SweepRuns("custom", uri, experiment="team/summaries")
    parent = runs.parent_run_id()
    (experiment,) = experiments_named(reader, "team/summaries")
    assert runs.experiment_id == experiment.experiment_id
    assert reader.get_run(parent).info.experiment_id == experiment.experiment_id
    assert experiments_named(reader, "infersweep/custom") == []


# --- MLflow's HTTP settings -------------------------------------------------------------------


def unset(monkeypatch, *keys: str) -> None:
    """`keys` unset here, and as they were again after the test (whatever the code set)."""
    for key in keys:
        monkeypatch.setenv(key, "0")
        monkeypatch.delenv(key)


def test_fail_fast_puts_the_http_settings_back_as_they_were(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    unset(monkeypatch, "MLFLOW_HTTP_REQUEST_TIMEOUT")
    with store.fail_fast(timeout_s=3):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    with pytest.raises(RuntimeError), store.fail_fast():  # also when the call inside raises
        raise RuntimeError("the server refused")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_bounded_retries_keep_a_users_own_settings(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    unset(monkeypatch, "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    store.bound_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == store.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"


def test_the_ui_command_of_a_local_store_serves_it_on_loopback(uri, db):
    command = store.ui_command(uri, "7")
    assert command.startswith(f"mlflow ui --backend-store-uri sqlite:///{db} --host 127.0.0.1 --port 5000, then open ")
    assert command.endswith("http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")
    assert store.ui_command("http://u:pw@mlflow:5000") == "open http://mlflow:5000 in a browser"
