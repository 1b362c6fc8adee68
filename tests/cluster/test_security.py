"""Security defaults: safe YAML, trust_remote_code off unless asked, no credentials in pickles.

(That no credential reaches the runtime_env is in test_connect.py; that a real sweep's files
and Ray's logs never hold the password is in test_multinode.py.)
"""
from __future__ import annotations

import pickle

import pytest

from infersweep.sweeps.spec import SweepSpecError, load_sweep_spec

PASSWORD = "pickle-canary-pw-41"


def test_a_python_object_tag_in_a_sweep_file_is_rejected_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(f"name: evil\nmodel: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SweepSpecError, match="not valid YAML"):
        load_sweep_spec(spec)
    assert not marker.exists()
    spec.write_text("name: evil\ndataset: !!python/object:collections.OrderedDict {}\n")
    with pytest.raises(SweepSpecError, match="not valid YAML"):
        load_sweep_spec(spec)


def test_trust_remote_code_is_off_unless_the_sweep_opts_in(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\n")
    sweep = load_sweep_spec(plain)
    assert sweep.trial.trust_remote_code is False
    assert sweep.trial_spec(sweep.baseline.model_dump()).trust_remote_code is False
    opted = tmp_path / "opted.yaml"
    opted.write_text("name: opted\ntrial: {trust_remote_code: true}\n")
    sweep = load_sweep_spec(opted)
    assert sweep.trial_spec(sweep.baseline.model_dump()).trust_remote_code is True


def test_pickled_tracking_state_holds_no_credentials(tmp_path, monkeypatch):
    """SweepRuns and the MLflow callback are pickled into Tune's experiment state."""
    from infersweep.sweeps.callbacks import MlflowTrialCallback
    from infersweep.tracking.sweep_runs import SweepRuns

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sweeper")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    runs = SweepRuns("sec", f"sqlite:///{tmp_path / 'mlflow.db'}", spec_hash="abc")
    runs.parent_run_id()  # a live client inside
    from mlflow.tracking import MlflowClient

    assert isinstance(runs._client, MlflowClient)
    callback = MlflowTrialCallback('{"name": "sec"}', runs, {"latency_ms_per_sample": 1.0})
    for blob in (pickle.dumps(runs), pickle.dumps(callback)):
        assert PASSWORD.encode() not in blob and b"sweeper" not in blob
    assert pickle.loads(pickle.dumps(runs))._client is None
