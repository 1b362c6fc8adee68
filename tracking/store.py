"""Where runs go: a local sqlite store under .infersweep/ by default, or a server URI."""
from __future__ import annotations

import os
from pathlib import Path

LOCAL_ROOT = Path(".infersweep")


def quiet() -> None:
    """MLflow configures its loggers on import; lower them after that."""
    import logging

    import mlflow  # noqa: F401

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_tracking_error(exc: BaseException) -> bool:
    """An error talking to the tracking store (server down, refused) rather than a bug."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, (MlflowException, OSError))


def default_uri(root: Path | None = None) -> str:
    root = (root or LOCAL_ROOT).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def resolve_uri(uri: str | None) -> str:
    """Explicit URI > MLFLOW_TRACKING_URI > the local sqlite store (never MLflow's cwd default)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def artifact_root(uri: str) -> str | None:
    """Artifact location for new experiments in a local sqlite store; a server decides its own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def client(uri: str):
    """An MlflowClient for `uri`, creating the local store's folder on the driver first."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(mlclient, name: str, uri: str) -> str:
    experiment = mlclient.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlclient.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return mlclient.create_experiment(name, artifact_location=artifact_root(uri))


def ui_command(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        return f"mlflow ui --backend-store-uri sqlite:///{db} --host 127.0.0.1 --port 5000"
    return f"open {uri} in a browser"
