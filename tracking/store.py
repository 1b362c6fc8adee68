"""Where runs go: a local sqlite store under .infersweep/ by default, or a server URI."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from infersweep.trials.errors import InfersweepError

LOCAL_ROOT = Path(".infersweep")
LOCAL_UI = "http://127.0.0.1:5000"  # where `infersweep ui` / `make ui` serve a local store
PROBE_TIMEOUT_ENV = "INFERSWEEP_TRACKING_PROBE_TIMEOUT_S"
PROBE_TIMEOUT_S = 5.0
# MLflow's own defaults retry a refused connection 7 times with exponential backoff (~4 min of
# silence per call) and wait 120 s per attempt. A user's own settings of these win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
# The experiment-kind tag the MLflow UI reads (its "Machine learning" vs "GenAI apps & agents"
# selector); ML experiments open on the runs table instead of the (empty) traces view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
ML_EXPERIMENT_KIND = "custom_model_development"
# MLflow >= 3.6 UI: which view an experiment opens in is a per-browser setting (sidebar "GenAI" /
# "Model training", default GenAI) that this URL parameter overrides
ML_WORKFLOW_PARAM = "workflowType=machine_learning"
EXPERIMENT_NOTE = (
    "infersweep sweep: one parent run per launch and one nested run per trial (run name = its "
    "knobs: runtime-precision-pruning-batch).\n\n"
    "- Columns: add the metrics `latency_ms_per_sample`, `speedup`, `peak_memory_mb`, "
    "`rougeLsum`, `rouge_drop_pct` and the params `precision`, `runtime`, `pruning`, `batch_size`.\n"
    "- `tags.status` is the trial's outcome: `ok`, `infeasible` (the combination cannot run "
    "here; the run is FINISHED with its reason in `tags.reason`), `oom`, `failed` (FAILED runs).\n"
    "- The Pareto frontier: filter `tags.pareto = 'true'`.")


class TrackingUnreachable(InfersweepError, ConnectionError):
    """The tracking server of an http(s) URI does not answer; the message names it and the fix.

    A ConnectionError (so an OSError): `is_tracking_error` counts it, callers catching
    ConnectionError or OSError catch it."""

    exit_code = 1  # a server that does not answer: not input to fix


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


def is_http(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def redact(uri: str) -> str:
    """`uri` without user:password@ (for messages; credentials never belong in them)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def bound_http_retries() -> None:
    """Cap MLflow's HTTP retries and timeouts (HTTP_DEFAULTS) unless the user set them."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextmanager
def fail_fast(timeout_s: int = 10):
    """MLflow HTTP calls inside are tried once, each for at most `timeout_s` seconds (for
    bookkeeping on the way out, when a server that is down must not hold up the exit)."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _probe_timeout() -> float:
    try:
        return float(os.environ.get(PROBE_TIMEOUT_ENV, "") or PROBE_TIMEOUT_S)
    except ValueError:
        return PROBE_TIMEOUT_S


def check_reachable(uri: str, timeout: float | None = None) -> None:
    """Raise TrackingUnreachable unless an http(s) tracking URI answers within `timeout` seconds.

    Any HTTP answer counts (even 401/404/500: MLflow then says what is wrong); only no answer
    (refused, no route, DNS, timeout) fails. Other URIs (sqlite, file, databricks) pass."""
    if not is_http(uri):
        return
    import requests

    timeout = _probe_timeout() if timeout is None else timeout
    shown = redact(uri).rstrip("/")
    try:  # like MLflow's client: environment proxies apply, no credentials needed for /health
        requests.get(f"{shown}/health", timeout=(timeout, timeout), allow_redirects=False,
                     verify=False if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower()
                     in ("1", "true") else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True)
    except requests.exceptions.SSLError:
        return  # something answers TLS: MLflow reports the certificate problem itself
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TrackingUnreachable(
            f"no MLflow tracking server answers at {shown} ({_why(exc, timeout)}): start it "
            f"(e.g. `mlflow server --host 127.0.0.1 --port {urlsplit(shown).port or 5000}`), fix "
            f"--tracking-uri / MLFLOW_TRACKING_URI / tracking.uri in the sweep file, or leave them "
            f"unset to use the local store {default_uri()}") from None
    except requests.exceptions.RequestException as exc:
        raise TrackingUnreachable(f"cannot reach the MLflow tracking server at {shown}: {exc}") from None


def _why(exc: BaseException, timeout: float) -> str:
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s"
    text = str(exc)
    for needle, said in (("Connection refused", "Connection refused"),
                         ("Name or service not known", "unknown host"),
                         ("Temporary failure in name resolution", "unknown host"),
                         ("No route to host", "no route to host"),
                         ("Network is unreachable", "network unreachable")):
        if needle in text:
            return said
    if "timed out" in text.lower():
        return f"no answer within {timeout:g} s"
    return type(exc).__name__


def artifact_root(uri: str) -> str | None:
    """Artifact location for new experiments in a local sqlite store; a server decides its own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def client(uri: str):
    """An MlflowClient for `uri`, creating the local store's folder on the driver first.

    For a tracking server: MLflow's retries are bounded and the server must answer now
    (TrackingUnreachable within seconds, instead of minutes of retries and a traceback)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if is_http(uri):
        bound_http_retries()
        check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(mlclient, name: str, uri: str) -> str:
    """The experiment's id, created (or restored) as a classic ML experiment.

    Marks existing experiments too: the MLflow UI then opens them on the runs table."""
    experiment = mlclient.get_experiment_by_name(name)
    if experiment is None:
        return mlclient.create_experiment(name, artifact_location=artifact_root(uri),
                                          tags={EXPERIMENT_KIND_TAG: ML_EXPERIMENT_KIND,
                                                "mlflow.note.content": EXPERIMENT_NOTE})
    if experiment.lifecycle_stage == "deleted":
        mlclient.restore_experiment(experiment.experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != ML_EXPERIMENT_KIND:
        mlclient.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, ML_EXPERIMENT_KIND)
    if "mlflow.note.content" not in experiment.tags:  # a description someone wrote stays
        mlclient.set_experiment_tag(experiment.experiment_id, "mlflow.note.content", EXPERIMENT_NOTE)
    return experiment.experiment_id


def ui_base(uri: str, ui_url: str | None = None) -> str:
    """The MLflow UI address: given, the tracking server itself, or the local `infersweep ui`."""
    if ui_url:
        return ui_url.rstrip("/")
    if is_http(uri):
        return redact(uri).rstrip("/")
    return LOCAL_UI


def experiment_url(uri: str, experiment_id: str, ui_url: str | None = None,
                   filter_string: str | None = None, order_by_metric: str | None = None) -> str:
    """The experiment's runs table in the MLflow UI, in the ML (not GenAI) view; optionally
    filtered (MLflow search syntax) and sorted ascending by a metric."""
    query = [ML_WORKFLOW_PARAM]
    if filter_string:
        query.append(f"searchFilter={quote(filter_string, safe='')}")
    if order_by_metric:
        query.append(f"orderByKey={quote(f'metrics.`{order_by_metric}`', safe='')}&orderByAsc=true")
    return f"{ui_base(uri, ui_url)}/#/experiments/{experiment_id}/runs?{'&'.join(query)}"


def ui_command(uri: str, experiment_id: str | None = None) -> str:
    """What to run (or open) to browse the runs; with the experiment id, the page to open."""
    page = f", then open {experiment_url(uri, experiment_id)}" if experiment_id else ""
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        return f"mlflow ui --backend-store-uri sqlite:///{db} --host 127.0.0.1 --port 5000{page}"
    if experiment_id:
        return f"open {experiment_url(uri, experiment_id)} in a browser"
    return f"open {redact(uri)} in a browser"
