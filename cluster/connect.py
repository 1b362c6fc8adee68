"""Connect to Ray: a private local instance, an existing cluster (`auto`, HOST:PORT), or Ray Client.

    local (default)   a new Ray instance on this machine only, dashboard off (or on 127.0.0.1)
    auto | HOST:PORT  nodes started with `ray start` that share this checkout's virtualenv:
                      the project code is shipped, nothing is pip-installed
    ray://HOST:PORT   a remote cluster through Ray Client: the project code *and* its pip
                      requirements are shipped (pip skips what the image already has)

Secrets never travel in the runtime_env: MLflow credentials stay in the driver's environment
(MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN), because only the
driver talks to the tracking server; credentials inside a tracking URI are stripped.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
from pathlib import Path

from infersweep.trials.errors import InfersweepError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# gitignore-style patterns, relative to PROJECT_ROOT: no virtualenv, stores, caches or builds
RUNTIME_EXCLUDES = [
    ".venv", "venv", ".git", ".infersweep", "mlruns", "mlartifacts", "*.db", "**/__pycache__",
    "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info", "/build", "/dist", "/.whl",
    "bench/out", "*.onnx", "*.engine", "*.safetensors", "*.bin",
]
DASHBOARD_HOST_ENV = "INFERSWEEP_RAY_DASHBOARD_HOST"
DASHBOARD_ENV = "INFERSWEEP_RAY_DASHBOARD"
RUNTIME_PIP_ENV = "INFERSWEEP_RUNTIME_PIP"
# environment passed on to workers when the driver has it set (never anything secret)
PASS_THROUGH_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT")
SECRET_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN")
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20
SCALE_UP_WAIT_ENV = "INFERSWEEP_SCALE_UP_WAIT_S"
CONNECT_TIMEOUT_ENV = "INFERSWEEP_CONNECT_TIMEOUT_S"
CONNECT_TIMEOUT_S = 5.0
# HTTP/2 client preface + an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray Client
# server) answers with its own SETTINGS frame; an HTTP/1 server (a dashboard, MLflow) does not
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 0x04
LOCAL_HINT = "or leave --address out to run on a local Ray instance"


class ConnectError(InfersweepError, RuntimeError):
    """An address that cannot be used; the message says what to pass instead."""

    exit_code = 1  # a cluster that does not answer: the sweep could not start


def address_kind(address: str | None) -> str:
    """'local', 'auto', 'client' (ray://) or 'gcs' (HOST:PORT of a running cluster)."""
    if address in (None, "", "local"):
        return "local"
    if address == "auto":
        return "auto"
    if address.startswith("ray://"):
        if not re.fullmatch(r"ray://[^/:\s]+:\d+", address):
            raise ConnectError(f"Ray Client address {address!r} must look like ray://HOST:PORT "
                               f"(the head's client port, usually 10001)")
        return "client"
    if re.fullmatch(r"[^/:\s]+:\d+", address):
        return "gcs"
    raise ConnectError(f"unknown Ray address {address!r}: use local, auto, HOST:PORT (a cluster "
                       f"started with `ray start` on these machines) or ray://HOST:PORT")


def _timeout() -> float:
    try:
        return float(os.environ.get(CONNECT_TIMEOUT_ENV, "") or CONNECT_TIMEOUT_S)
    except ValueError:
        return CONNECT_TIMEOUT_S


def _split(host_port: str) -> tuple[str, int]:
    host, port = host_port.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _knock(host: str, port: int, timeout: float) -> tuple[bytes, str]:
    """Open a TCP connection and greet it as HTTP/2 (gRPC). Returns the first bytes of the
    answer and, when there are none, why ('closed' or 'silent'). OSError when nothing accepts
    the connection."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        answer = b""
        try:
            sock.sendall(HTTP2_PREFACE)
            deadline = time.monotonic() + timeout
            while len(answer) < 9 and time.monotonic() < deadline:
                chunk = sock.recv(9 - len(answer))
                if not chunk:
                    return answer, "closed"
                answer += chunk
        except (socket.timeout, TimeoutError):
            return answer, "silent"
        except OSError:  # reset by the peer
            return answer, "closed"
        return answer, "" if answer else "silent"


def _why(exc: OSError, timeout: float) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or str(exc) or type(exc).__name__


def check_reachable(address: str | None, timeout: float | None = None) -> None:
    """Raise ConnectError, within about 2 x `timeout` seconds, unless a Ray cluster (GCS) or Ray
    Client server answers at `address`: the port must accept a TCP connection and answer an
    HTTP/2 greeting as gRPC servers do. ray.init itself retries an address where nothing
    answers for minutes, deaf to Ctrl-C and SIGTERM while it does. `timeout` (default: env
    INFERSWEEP_CONNECT_TIMEOUT_S, else 5 s) of 0 skips the check."""
    kind = address_kind(address)
    timeout = _timeout() if timeout is None else timeout
    if kind == "local" or timeout <= 0:
        return
    if kind == "client":
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise ConnectError(f"--address {address} uses Ray Client, which is not installed here: "
                               f"pip install 'ray[client]' (infersweep's own install includes it: "
                               f"pip install -e .)")
        host, port = _split(address.removeprefix("ray://"))
        what, fix = "Ray Client server", (
            f"check the head's client port (10001 by default: `ray start --head "
            f"--ray-client-server-port 10001`) and any port-forward to it, {LOCAL_HINT}")
        shown = address
    else:
        from ray._private import services

        try:  # the address ray.init will use: `auto` found from this machine, 127.0.0.1 -> node IP
            target = services.canonicalize_bootstrap_address_or_die(address)
        except (ConnectionError, ValueError) as exc:
            raise ConnectError(f"--address {address} found no Ray cluster ({str(exc).rstrip('.')}); "
                               f"start one with `ray start --head`, pass its HOST:PORT, "
                               f"{LOCAL_HINT}") from None
        host, port = _split(target)
        what, fix = "Ray cluster", (
            f"start one there (`ray start --head --port {port}`), or check the host and the GCS "
            f"port (6379 by default; 8265 is the dashboard, 10001 is Ray Client: ray://HOST:10001), "
            f"{LOCAL_HINT}")
        shown = address if target == address else f"{address} (reached as {target})"
    try:
        answer, silence = _knock(host, port, timeout)
    except OSError as exc:
        raise ConnectError(f"no {what} answers at {shown} ({_why(exc, timeout)}): {fix}") from None
    if os.environ.get("RAY_USE_TLS", "").strip().lower() in ("1", "true"):
        return  # a TLS endpoint does not answer a plaintext greeting: accepting is all we can see
    if len(answer) >= 4 and answer[3] == HTTP2_SETTINGS:
        return  # a gRPC server: what Ray's GCS and the Ray Client server are
    if answer:
        said = answer.split(b"\r\n", 1)[0].decode("ascii", "replace")
        heard = f"it answered {said!r}, not gRPC"
    elif silence == "closed":
        heard = "it closed the connection (a port-forward or proxy with nothing behind it?)"
    else:
        heard = f"it accepted the connection but said nothing within {timeout:g} s"
    raise ConnectError(f"{shown} is not a {what} ({heard}): {fix}; "
                       f"{CONNECT_TIMEOUT_ENV}=0 skips this check")


def redact_uri(uri: str) -> str:
    """`uri` without user:password@ (credentials belong in MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    from infersweep.tracking.store import redact

    return redact(uri)


def requirements() -> list[str]:
    """The project's pip requirements (pyproject's dependencies, or the installed metadata)."""
    pyproject = PROJECT_ROOT / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return [r for r in (requires("infersweep") or []) if "extra ==" not in r]
    except PackageNotFoundError:
        return []


def _ship_pip(kind: str) -> bool:
    setting = os.environ.get(RUNTIME_PIP_ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return kind == "client"  # nodes of a local/auto cluster share this virtualenv


def runtime_env(tracking_uri: str | None = None, address: str | None = None, pip: bool | None = None) -> dict:
    """What every worker of the sweep gets: the project code (not the venv, stores or caches),
    the tracking URI without credentials, and for ray:// clusters the pip requirements."""
    env_vars = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "TRANSFORMERS_VERBOSITY": "error"}
    env_vars.update({k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)})
    if tracking_uri:
        env_vars["MLFLOW_TRACKING_URI"] = redact_uri(tracking_uri)
    env = {"working_dir": str(PROJECT_ROOT), "excludes": list(RUNTIME_EXCLUDES), "env_vars": env_vars}
    if pip if pip is not None else _ship_pip(address_kind(address)):
        env["pip"] = {"packages": requirements(), "pip_check": False}
    return env


def _dashboard_settings() -> dict:
    host = os.environ.get(DASHBOARD_HOST_ENV, "127.0.0.1")
    wanted = os.environ.get(DASHBOARD_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return {"include_dashboard": wanted or DASHBOARD_HOST_ENV in os.environ, "dashboard_host": host}


def connect(address: str | None = None, num_cpus: int | None = None, tracking_uri: str | None = None):
    """ray.init for `address`; None/'local' starts a private local instance.

    An already initialized Ray (a test that connected first) is reused as it is. A cluster
    address that nothing answers on fails within seconds with ConnectError (check_reachable)."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    kind = address_kind(address)
    check_reachable(address)
    # Ray warns on every upload that .git/.venv are excluded by default: we exclude them too
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)
    if tracking_uri and redact_uri(tracking_uri) != tracking_uri:
        log.warning("credentials in the tracking URI are not passed to Ray workers; "
                    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
    if kind == "local":
        # Ray turns token auth on for a new local instance (good) and warns that it did, every launch
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        env = runtime_env(tracking_uri, address, pip=False)
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 runtime_env={"env_vars": env["env_vars"]},  # same venv and files: nothing to ship
                 logging_level=logging.WARNING, log_to_driver=False, configure_logging=True,
                 **_dashboard_settings())
    elif kind == "client":
        try:
            ray.init(address=address, runtime_env=runtime_env(tracking_uri, address),
                     logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise ConnectError(f"the Ray Client server at {address} answers but did not accept this "
                               f"driver ({exc}){_auth_hint()}") from None
    else:
        try:
            ray.init(address=address, runtime_env=runtime_env(tracking_uri, address),
                     logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
        except ConnectionError as exc:
            raise ConnectError(f"cannot connect to the Ray cluster at {address} ({exc}){_auth_hint()}; "
                               f"or start one with `ray start --head`, {LOCAL_HINT}") from None
    return ray.get_runtime_context()


def _auth_hint() -> str:
    """What to set when the cluster wants a token (Ray's default) and this driver sends none:
    Ray sends its token only to a cluster it found itself (`auto`), never to an explicit address
    unless told to."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token":
        return ("; check that RAY_AUTH_TOKEN (or ~/.ray/auth_token) holds the cluster's token "
                "(`ray get-auth-token` on the head)")
    return ("; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token and its "
            "token in RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` on the head)")


def _need(request: dict) -> dict[str, float]:
    """Drop zero amounts and normalize the lowercase cpu/gpu keys Tune also accepts."""
    names = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
    return {names.get(k, k): float(v) for k, v in request.items() if v}


def _fits(have: dict, need: dict[str, float]) -> bool:
    return all(have.get(key, 0) >= amount for key, amount in need.items())


def _autoscaler_can_add(need: dict[str, float]) -> bool:
    """Whether a node group of the autoscaler's published config (KubeRay, autoscaler v2) fits."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # a private API; absent on clusters without an autoscaler
        return False
    groups = getattr(config, "node_group_configs", None) or []
    return any(group.max_count != 0 and _fits(dict(group.resources), need) for group in groups)


def missing_resources(request: dict, nodes: list[dict] | None = None, wait_s: float | None = None) -> str | None:
    """A reason if no single node could ever satisfy `request` (else its trials wait forever).

    Checks node totals, not what is free now: a busy node frees up, a missing one never appears.
    An autoscaling cluster that starts from zero GPU workers gets `wait_s` seconds (default:
    env INFERSWEEP_SCALE_UP_WAIT_S, else 0) after asking the autoscaler for such a node."""
    import ray

    need = _need(request)
    if wait_s is None:
        wait_s = float(os.environ.get(SCALE_UP_WAIT_ENV, "0") or 0)
    current = (lambda: nodes) if nodes is not None else ray.nodes
    if any(_fits(n.get("Resources", {}), need) for n in current() if n.get("Alive")):
        return None
    if nodes is None and _autoscaler_can_add(need):
        return None
    if wait_s > 0 and nodes is None:
        deadline = time.monotonic() + wait_s
        requested = _request_resources([need])
        try:
            while time.monotonic() < deadline:
                if any(_fits(n.get("Resources", {}), need) for n in ray.nodes() if n.get("Alive")):
                    return None
                time.sleep(min(5.0, max(0.2, wait_s / 20)))
        finally:
            if requested:
                _request_resources([])  # drop the standing request; the trials keep nodes busy
    return _reason(need, [n for n in current() if n.get("Alive")], wait_s)


def _request_resources(bundles: list[dict]) -> bool:
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=bundles)
        return True
    except Exception as exc:  # no autoscaler (a fixed cluster): nothing to ask
        log.debug("request_resources failed: %s", exc)
        return False


def _reason(need: dict[str, float], alive: list[dict], waited: float) -> str:
    wanted = ", ".join(f"{k}={v:g}" for k, v in need.items())
    lacking = [k for k, v in need.items() if not any(n.get("Resources", {}).get(k, 0) >= v for n in alive)]
    what = f"lacking {', '.join(lacking)}" if lacking else "not all of it on one node"
    accel = sorted({k.split(":", 1)[1] for n in alive for k in n.get("Resources", {})
                    if k.startswith("accelerator_type:")})
    if any(k.startswith("accelerator_type:") for k in lacking):
        what += f"; accelerator types present: {', '.join(accel) or 'none'}"
    if waited > 0:
        what += f"; none appeared within {waited:g} s of asking the autoscaler"
    nodes_text = "; ".join(_describe(n) for n in alive) or "no alive nodes"
    return (f"no Ray node offers {wanted} ({what}). Nodes: {nodes_text}. Lower `resources` in the "
            f"sweep spec or add a node that has them (its trials would otherwise wait forever); "
            f"an autoscaling cluster that starts without such nodes: set {SCALE_UP_WAIT_ENV}=600")


def _describe(node: dict) -> str:
    have = node.get("Resources", {})
    parts = [f"CPU={have.get('CPU', 0):g}", f"GPU={have.get('GPU', 0):g}"]
    parts += [k for k in have if k.startswith("accelerator_type:")]
    return f"{node.get('NodeManagerAddress', '?')} ({', '.join(parts)})"
