"""A real `mlflow server --app-name basic-auth` with cluster/mlflow/basic_auth.ini: the sweep's
tracking code works with credentials from MLFLOW_TRACKING_USERNAME/PASSWORD only, is refused
without them, and keeps them out of its pickled state. Needs `mlflow[auth]` (Flask-WTF)."""
from __future__ import annotations

import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
pytest.importorskip("flask_wtf", reason="mlflow[auth] (Flask-WTF) is not installed")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = (ROOT / "cluster" / "mlflow" / "basic_auth.ini").read_text()
    ini = "\n".join(f"database_uri = sqlite:///{root / 'auth.db'}" if line.startswith("database_uri") else line
                    for line in ini.splitlines())
    (root / "basic_auth.ini").write_text(ini)
    admin_password = secrets.token_urlsafe(16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
           "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
                raise RuntimeError((root / "server.log").read_text()[-4000:])
            time.sleep(0.5)
    yield url, admin_password
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def test_sweep_tracking_works_with_env_credentials_only(auth_server, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    from infersweep.tracking.sweep_runs import SweepRuns

    url, admin_password = auth_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
    sweeper_password = secrets.token_urlsafe(16)
    get_app_client("basic-auth", tracking_uri=url).create_user("sweeper", sweeper_password)

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(MlflowException, match="401|nauthorized|credentials"):
        SweepRuns("auth-sweep", url).parent_run_id()

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sweeper")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", sweeper_password)
    runs = SweepRuns("auth-sweep", url, spec_hash="abc")
    parent = runs.parent_run_id()
    run_id = runs.trial_started("t1", "torch-fp32-dense-b1", {"precision": "fp32"})
    assert runs.run_id_of("t1") == run_id and runs.client.get_run(parent).info.status == "RUNNING"
    blob = pickle.dumps(runs)
    assert sweeper_password.encode() not in blob and admin_password.encode() not in blob

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(MlflowException):
        SweepRuns("auth-sweep", url).trial_runs()
