"""Connect to Ray: a local instance, an existing cluster (`auto`), or a Ray client address."""
from __future__ import annotations

import logging
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_EXCLUDES = [".venv", ".infersweep", ".git", "**/__pycache__", "mlruns", "*.db", "bench/out"]


def runtime_env(tracking_uri: str | None = None) -> dict:
    """Ship the project code to workers (not the venv, stores or caches)."""
    env_vars = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if tracking_uri:
        env_vars["MLFLOW_TRACKING_URI"] = tracking_uri
    return {"working_dir": str(PROJECT_ROOT), "excludes": RUNTIME_EXCLUDES, "env_vars": env_vars}


def connect(address: str | None = None, num_cpus: int | None = None, tracking_uri: str | None = None):
    """ray.init for `address`: None/'local' starts a private local instance."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    common = dict(logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    if address in (None, "", "local"):
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=200 * 2**20,
                 runtime_env={"env_vars": runtime_env(tracking_uri)["env_vars"]}, **common)
    else:
        ray.init(address=address, runtime_env=runtime_env(tracking_uri), **common)
    return ray.get_runtime_context()


def missing_resources(request: dict) -> str | None:
    """A reason if no node in the cluster could ever satisfy `request` (else trials wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        have = node.get("Resources", {})
        if all(have.get(key, 0) >= amount for key, amount in request.items() if amount):
            return None
    wanted = ", ".join(f"{k}={v}" for k, v in request.items() if v)
    return (f"no Ray node offers {wanted}; the cluster has "
            f"{ray.cluster_resources()} — lower resources in the sweep spec or add such a node")
