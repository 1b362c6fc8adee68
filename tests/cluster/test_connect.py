"""Connecting to Ray: address kinds, what the runtime_env ships, and the resource check.

Fast and without a cluster (runs in `make test`); the multi-node behaviour is in
test_multinode.py (marker `cluster`).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from infersweep.cluster import connect as cc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("address, kind", [
    (None, "local"), ("", "local"), ("local", "local"), ("auto", "auto"),
    ("ray://head:10001", "client"), ("ray://10.0.0.5:10001", "client"),
    ("127.0.0.1:6379", "gcs"), ("head.internal:6379", "gcs"),
])
def test_address_kinds(address, kind):
    assert cc.address_kind(address) == kind


@pytest.mark.parametrize("address", ["ray://head", "http://head:8265", "head", "ray://head:port"])
def test_a_bad_address_says_what_to_pass(address):
    with pytest.raises(cc.ConnectError, match="local, auto|ray://HOST:PORT"):
        cc.address_kind(address)


def test_runtime_env_ships_the_repo_without_venv_or_stores(monkeypatch):
    monkeypatch.delenv(cc.RUNTIME_PIP_ENV, raising=False)
    env = cc.runtime_env("http://mlflow:5000", "auto")
    assert Path(env["working_dir"]) == ROOT
    for pattern in (".venv", ".infersweep", ".git", "**/__pycache__", "mlruns", "*.db"):
        assert pattern in env["excludes"]
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "pip" not in env, "nodes of a local/auto cluster share this virtualenv"
    assert "pip" not in cc.runtime_env(None, "127.0.0.1:6379")


def test_the_package_ray_uploads_holds_the_code_and_no_venv(tmp_path):
    """Zip the working_dir exactly as Ray does (its default excludes, .gitignore, ours)."""
    from ray._private import ray_constants
    from ray._private.runtime_env.packaging import create_package

    env = cc.runtime_env()
    target = tmp_path / "pkg.zip"
    create_package(env["working_dir"], target, include_gitignore=True,
                   excludes=ray_constants.get_runtime_env_default_excludes() + env["excludes"])
    names = zipfile.ZipFile(target).namelist()
    for needed in ("sweeps/trainable.py", "sweeps/callbacks.py", "trials/runner.py", "tracking/sweep_runs.py",
                   "cluster/connect.py", "trials/data/sample/sample.jsonl", "pyproject.toml"):
        assert needed in names, f"{needed} is not shipped to the workers"
    for name in names:
        top = name.split("/", 1)[0]
        assert top not in (".venv", ".infersweep", ".git", "mlruns"), name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".db")), name
    assert target.stat().st_size < 20 * 2**20, f"the package is {target.stat().st_size / 2**20:.0f} MiB"


def test_ray_client_clusters_get_the_pip_requirements(monkeypatch):
    import tomllib

    monkeypatch.delenv(cc.RUNTIME_PIP_ENV, raising=False)
    env = cc.runtime_env("http://mlflow:5000", "ray://head:10001")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert env["pip"]["packages"] == declared
    assert any(p.startswith("ray[") and "tune" in p.split("]")[0] for p in env["pip"]["packages"])
    monkeypatch.setenv(cc.RUNTIME_PIP_ENV, "0")  # the image already has everything
    assert "pip" not in cc.runtime_env(None, "ray://head:10001")
    monkeypatch.setenv(cc.RUNTIME_PIP_ENV, "1")
    assert "pip" in cc.runtime_env(None, "auto")


def test_runtime_env_never_carries_mlflow_credentials(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sweeper")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-aws")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for address in ("local", "auto", "ray://head:10001"):
        env = cc.runtime_env("https://sweeper:s3cret-pw@mlflow.example.com:5000/", address)
        text = json.dumps(env)
        assert "s3cret" not in text and "sweeper" not in text
        assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com:5000/"
        assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"  # harmless settings do travel
        assert not set(env["env_vars"]) & set(cc.SECRET_ENV)


def test_redact_uri_keeps_everything_but_the_credentials():
    assert cc.redact_uri("http://u:p@host:5000/path?x=1") == "http://host:5000/path?x=1"
    assert cc.redact_uri("http://host:5000") == "http://host:5000"
    assert cc.redact_uri("sqlite:////abs/mlflow.db") == "sqlite:////abs/mlflow.db"


def test_dashboard_binds_to_loopback_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(cc.DASHBOARD_HOST_ENV, raising=False)
    monkeypatch.delenv(cc.DASHBOARD_ENV, raising=False)
    assert cc._dashboard_settings() == {"include_dashboard": False, "dashboard_host": "127.0.0.1"}
    monkeypatch.setenv(cc.DASHBOARD_ENV, "1")
    assert cc._dashboard_settings() == {"include_dashboard": True, "dashboard_host": "127.0.0.1"}
    monkeypatch.setenv(cc.DASHBOARD_HOST_ENV, "0.0.0.0")
    assert cc._dashboard_settings()["dashboard_host"] == "0.0.0.0"


def _node(cpu, gpu=0, accel=None, alive=True, ip="10.0.0.1"):
    resources = {"CPU": cpu, "GPU": gpu}
    if accel:
        resources[f"accelerator_type:{accel}"] = 1.0
    return {"Alive": alive, "Resources": resources, "NodeManagerAddress": ip}


def test_missing_resources_is_none_when_one_node_fits():
    nodes = [_node(8), _node(8, gpu=1, accel="A10G")]
    assert cc.missing_resources({"cpu": 4, "gpu": 1, "accelerator_type:A10G": 0.001}, nodes) is None
    assert cc.missing_resources({"CPU": 2, "GPU": 0}, nodes) is None


def test_missing_resources_names_what_is_lacking_and_what_exists():
    nodes = [_node(8), _node(8, gpu=1, accel="A10G"), _node(8, gpu=8, accel="A100", alive=False)]
    reason = cc.missing_resources({"cpu": 4, "gpu": 1, "accelerator_type:A100": 0.001}, nodes)
    assert "accelerator_type:A100" in reason and "A10G" in reason and "lacking" in reason
    assert "resources" in reason  # what to change in the sweep spec
    split = cc.missing_resources({"CPU": 16, "GPU": 1}, [_node(16), _node(4, gpu=1)])
    assert "not all of it on one node" in split
    assert "GPU" in cc.missing_resources({"GPU": 1}, [_node(2)])
