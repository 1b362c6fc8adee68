"""`infersweep serve`: a registered model (or a sweep's trial) behind MLflow's /invocations, on Ray Serve."""
from __future__ import annotations

import contextlib
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from infersweep.errors import fail
from infersweep.options import DEFAULT_STORAGE, STORAGE_HELP, TRACKING_HELP
from infersweep.quiet import quiet_libraries

__all__ = ["serve"]

console = Console()
READY_TIMEOUT_S = 900


def serve(
    target: str = typer.Argument(..., metavar="MODEL",
                                 help="models:/NAME@ALIAS, models:/NAME/VERSION, a sweep's trial id (with --sweep, "
                                      "or found under --storage), or a trial folder"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to accept other machines)"),
    port: int = typer.Option(8000, min=1, max=65535),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
                                                     "(default: a local Ray instance)"),
    replicas: Optional[int] = typer.Option(None, min=1, help="model replicas, each pinned to its CPU/GPU share "
                                                             "(default: on a CPU, one 1-CPU replica per CPU of "
                                                             "the trial; on a GPU, one)"),
    min_replicas: Optional[int] = typer.Option(None, min=0, help="autoscaling: fewest replicas (with --max-replicas)"),
    max_replicas: Optional[int] = typer.Option(None, min=1, help="autoscaling: most replicas"),
    max_batch_size: Optional[int] = typer.Option(None, min=1, help="documents per engine call "
                                                                   "(default: the trial's batch size)"),
    batch_wait_ms: float = typer.Option(10.0, min=0, help="longest wait for a batch to fill"),
    cpus: Optional[float] = typer.Option(None, help="CPUs per replica, its engine threads (default: 1 with the "
                                                    "default replicas, else the trial's)"),
    max_queue: int = typer.Option(64, min=1, help="requests in the server at once; beyond: 503 + Retry-After "
                                               "(a full queue should wait less than clients do)"),
    max_document_tokens: int = typer.Option(8192, min=16, help="longest document accepted, in tokens"),
    sweep: Optional[str] = typer.Option(None, help="the sweep whose trial id MODEL is"),
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
):
    """Serve a summarizer over HTTP with dynamic batching: POST /invocations (MLflow's format),
    GET /health, GET /metrics (Prometheus)."""
    quiet_libraries()
    from pydantic import ValidationError

    from infersweep.cluster.connect import address_kind
    from infersweep.errors import validation_message
    from infersweep.serving.config import ServeConfig, batching_kind, replica_layout
    from infersweep.trials.package import variant_spec

    remote = address_kind(address) != "local"
    with tempfile.TemporaryDirectory(prefix="infersweep-serve-") as tmp:
        variant, source = _variant(target, sweep, storage, tracking_uri, Path(tmp), remote)
        spec = variant_spec(variant)
        autoscaled = min_replicas is not None or max_replicas is not None
        replicas, cpus = replica_layout(spec.cpus, spec.device, 1 if autoscaled else replicas, cpus)
        try:
            config = ServeConfig(max_batch_size=max_batch_size or spec.batch_size, batch_wait_ms=batch_wait_ms,
                                 replicas=replicas, min_replicas=min_replicas, max_replicas=max_replicas,
                                 cpus_per_replica=cpus, gpus_per_replica=1.0 if spec.device == "cuda" else 0.0,
                                 max_queue=max_queue, max_document_tokens=max_document_tokens)
        except ValidationError as exc:
            fail(validation_message(exc))
        serving = _import_serving()
        from infersweep.cluster.connect import connect

        connect(address, tracking_uri=tracking_uri)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        with _stopping(serving):
            serving.start(source, config, host, port, tracking_uri)
            scale = (f"{config.min_replicas}-{config.max_replicas} replicas (autoscaled)" if config.autoscaling
                     else f"{config.replicas} replica{'s' * (config.replicas > 1)}")
            console.print(f"serving {target} ({spec.task}, {spec.runtime} {spec.precision}) on http://{host}:{port}: "
                          f"{batching_kind(spec.task)}, up to {config.max_batch_size} documents per engine call, "
                          f"wait <= {config.batch_wait_ms:g} ms; {scale} x {config.cpus_per_replica:g} CPU"
                          f"{f' + {config.gpus_per_replica:g} GPU' if config.gpus_per_replica else ''}",
                          soft_wrap=True)
            with console.status("loading and warming up (GET /health answers 503 until done)..."):
                _wait_ready(url)
            console.print(f"ready: POST {url}/invocations  GET {url}/health  GET {url}/metrics  (Ctrl-C stops)",
                          soft_wrap=True)
            while True:
                time.sleep(3600)


def _import_serving():
    try:
        from infersweep.cluster import serve as serving
    except ImportError as exc:
        fail(f"serving needs Ray Serve and the Prometheus client ({exc.name} is missing): "
             f"pip install 'infersweep[serve]'", code=1)
    return serving


@contextlib.contextmanager
def _stopping(serving):
    try:
        yield
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        with contextlib.suppress(Exception):
            serving.stop()


def _variant(target: str, sweep: str | None, storage: str, tracking_uri: str | None, tmp: Path,
             remote: bool) -> tuple[Path, str]:
    """(a local copy of the variant, to read its settings; what the replicas load: a URI or a folder)."""
    if target.startswith(("models:/", "runs:/")):
        from infersweep.tracking.registry import download_variant

        try:
            local = download_variant(target, tracking_uri, tmp)
        except Exception as exc:
            fail(f"cannot load {target}: {' '.join(str(exc).split())}", code=1)
        return local, target if remote else str(local)
    report = _trial_report(target, sweep, storage)
    if remote:
        fail(f"{target} is a trial on this machine's disk, which cluster replicas cannot read: promote it "
             f"(infersweep promote) and serve models:/NAME@ALIAS, or leave --address out")
    from infersweep.trials.package import save_variant

    with console.status(f"building the variant of trial {target}..."):
        variant = save_variant(report.spec, tmp / "variant")
    return variant, str(variant)


def _trial_report(target: str, sweep: str | None, storage: str):
    """The report of a trial folder, or of the trial whose id `target` is (sweeps.results.find_trial)."""
    from infersweep.sweeps.results import find_trial
    from infersweep.trials.runner import DEFAULT_OUT
    from infersweep.trials.spec import TrialReport

    folder = Path(target)
    if (folder / "report.json").is_file():
        report = TrialReport.from_json((folder / "report.json").read_text())
    else:
        report = find_trial(target, storage, sweep, DEFAULT_OUT).report
    if report.status != "ok":
        fail(f"trial {target} did not finish ({report.status}: {report.reason}); serve a trial that did")
    return report


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            if "failed" in body:
                fail(f"the model did not load: {body}", code=1)
        except OSError:
            pass
        time.sleep(0.5)
    fail(f"the model was not ready within {READY_TIMEOUT_S} s", code=1)
