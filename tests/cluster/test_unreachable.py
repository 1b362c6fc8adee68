"""Endpoints that do not answer fail within seconds, with one line naming the endpoint and the fix.

A Ray address where nothing listens used to hang `launch` for minutes, deaf to SIGTERM (ray.init
retries inside C++), and a closed tracking URI cost ~250 s of MLflow retries and a long
traceback. Everything here targets 127.0.0.1 and needs no cluster (runs in `make test`).
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from infersweep.cluster import connect as cc

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "sweeps" / "specs" / "quickstart.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    """An HTTP/1 server on 127.0.0.1 (what a Ray dashboard or an MLflow server is)."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


@pytest.fixture
def loopback(monkeypatch):
    """Ray dials 127.0.0.1 as this node's IP; the test servers listen on 127.0.0.1 only."""
    from ray._private import services

    monkeypatch.setattr(services, "canonicalize_bootstrap_address_or_die", lambda address: address)


def _fails_fast(address: str, *needles: str, limit: float = 15) -> str:
    started = time.monotonic()
    with pytest.raises(cc.ConnectError) as caught:
        cc.check_reachable(address, timeout=2)
    assert time.monotonic() - started < limit
    message = str(caught.value)
    for needle in needles:
        assert needle in message, message
    assert "\n" not in message
    return message


def test_an_address_where_nothing_listens_fails_in_seconds():
    port = _closed_port()
    message = _fails_fast(f"127.0.0.1:{port}", f"127.0.0.1:{port}", "ray start --head", "--address")
    assert "refused" in message.lower()


def test_connect_checks_before_ray_init(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init reached"))
    with pytest.raises(cc.ConnectError, match="127.0.0.1"):
        cc.connect(f"127.0.0.1:{_closed_port()}")


def test_a_port_that_is_not_a_ray_cluster_is_named(http_server, loopback):
    _fails_fast(f"127.0.0.1:{http_server}", f"127.0.0.1:{http_server}", "not a Ray cluster", "6379")


def test_a_port_that_accepts_and_says_nothing(monkeypatch, loopback):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        _fails_fast(f"127.0.0.1:{port}", "said nothing within 2 s", cc.CONNECT_TIMEOUT_ENV)
        monkeypatch.setenv(cc.CONNECT_TIMEOUT_ENV, "0")  # the way out for unusual setups
        cc.check_reachable(f"127.0.0.1:{port}")


def test_ray_client_is_installed_and_its_closed_port_named():
    ray_line = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                    if d.startswith("ray["))
    assert "client" in ray_line.split("]")[0], "ray:// needs the ray[client] extra (grpcio)"
    assert importlib.util.find_spec("grpc") is not None, "pip install -e . to install ray[client]"
    port = _closed_port()
    _fails_fast(f"ray://127.0.0.1:{port}", f"ray://127.0.0.1:{port}", "Ray Client", "10001")


def test_auto_without_a_cluster_says_what_to_do(monkeypatch, tmp_path):
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    _fails_fast("auto", "--address auto", "ray start --head")


def _launch(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    script = Path(sys.executable).with_name("infersweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "infersweep"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    started = time.monotonic()
    done = subprocess.run([*command, "launch", str(QUICKSTART), "--storage", str(tmp_path / "sweeps"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode not in (0, None), done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.slow
def test_launch_against_a_closed_ray_address_exits_in_seconds(tmp_path):
    port = _closed_port()
    done, took = _launch(tmp_path, "--address", f"127.0.0.1:{port}")
    assert took < 30, f"took {took:.0f} s"
    line = _one_line_error(done)
    assert f"127.0.0.1:{port}" in line and "ray start --head" in line
    # no orphan: the sweep's parent run (local store) ended FAILED with the reason, not RUNNING
    from infersweep.tracking.sweep_runs import SweepRuns

    runs = SweepRuns("quickstart", f"sqlite:///{tmp_path / '.infersweep' / 'mlflow.db'}")
    parent = runs.client.get_run(runs._find("sweep").info.run_id)
    assert parent.info.status == "FAILED" and f"127.0.0.1:{port}" in parent.data.tags["reason"]


@pytest.mark.slow
def test_launch_against_a_closed_tracking_uri_exits_in_seconds(tmp_path):
    port = _closed_port()
    done, took = _launch(tmp_path, "--tracking-uri", f"http://127.0.0.1:{port}")
    assert took < 30, f"took {took:.0f} s"
    line = _one_line_error(done)
    assert f"http://127.0.0.1:{port}" in line and "mlflow server" in line
    assert not (tmp_path / "sweeps" / "quickstart").exists(), "nothing starts before the server answers"
