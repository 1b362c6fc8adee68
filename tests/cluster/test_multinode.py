"""Sweeps on a multi-node Ray cluster with a shared MLflow server, surviving failures.

A head and two worker Ray nodes on 127.0.0.1 (ray.cluster_utils.Cluster), a real
`mlflow server` on 127.0.0.1 that the tests stop and restart, and small sweeps driven by the
real CLI (`infersweep launch/resume --address HOST:PORT`) in their own process groups:

- a worker node killed mid-trial: the trial is retried on another node, the sweep finishes;
- the driver killed: `infersweep resume` finishes the sweep, nothing is run or logged twice;
- the MLflow server down for a while mid-sweep: nothing is lost (reports on disk, reconciled);
- the MLflow server down until the sweep ends: the driver says so, `resume` logs everything;
- a sweep asking for an accelerator no node has fails fast with a reason.

In the end MLflow holds exactly one run per trial (FINISHED, with status=infeasible for an
infeasible trial; FAILED for a crash), none RUNNING, and the drivers' MLflow password appears in no file they wrote.
Marker `cluster`: `.venv/bin/python -m pytest -q -m cluster` (a few minutes on 2 cores).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20
# the drivers' MLFLOW_TRACKING_PASSWORD: must be written nowhere (made at run time, so this
# file, which Ray ships to the workers, does not hold it)
PASSWORD = f"canary-{uuid.uuid4().hex}"
ACCEL = "FAKE-T4"  # a declared accelerator type on one worker node

SWEEP = """
name: {name}
dataset: {{path: sample, n: 2}}
baseline: {{batch_size: 1}}
space:
  precision: {precisions}
  batch_size: {batch_sizes}
search: {{algorithm: grid, num_trials: 9, max_concurrent: 2, seed: 1, max_failures: 3}}
resources: {{cpu: 1{accelerator}}}
trial: {{warmup: 0, repeats: {repeats}, timing: {{max_seconds: 3}}}}
finalists: {{rounds: 1, max_seconds: 1}}  # the head-to-head runs on the workers too, briefly
sequential: {{max_docs: 0}}  # these tests are about the cluster: trials as short as they can be
storage: {{path: {storage}}}
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) while waiting for {what}:\n"
                                 f"{read_tail(proc)}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def read_tail(proc) -> str:
    path = getattr(proc, "log_path", None)
    return Path(path).read_text()[-4000:] if path and Path(path).exists() else ""


class TrackingServer:
    """`mlflow server` on 127.0.0.1 with a sqlite store; stop() and start() keep port and store."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout: float = 240) -> None:
        log_file = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{self.root / 'mlflow.db'}", "--artifacts-destination", str(self.root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no GenAI job workers
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.root / "server.log").read_text()[-4000:])
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("mlflow server did not start:\n" + (self.root / "server.log").read_text()[-4000:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def up(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/health", timeout=2)
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-cluster"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ray_cluster():
    """A head without CPUs for trials (as in cluster/*.yaml) and two 1-CPU worker nodes, every
    address on 127.0.0.1, in a temp dir of their own."""
    saved_env = dict(os.environ)
    # Ray resolves 127.0.0.1 to the machine's outward address unless told it is one machine
    # (the env for the nodes this starts; the constant for this process, where collecting other
    # test modules may already have imported ray and read the env)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    saved_cluster_flag, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False

    from infersweep.cluster.connect import connect

    temp_dir = tempfile.mkdtemp(prefix="rayc", dir="/tmp")
    node = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * MiB)
    started = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={
        **node, "num_cpus": 0, "include_dashboard": False, "temp_dir": temp_dir})
    workers = [cluster.add_node(**node), cluster.add_node(**node, resources={f"accelerator_type:{ACCEL}": 1})]
    cluster.wait_for_nodes()
    connect(cluster.address)
    log(f"cluster of 3 nodes at {cluster.address} in {time.monotonic() - started:.0f} s")
    cluster.temp_dir = temp_dir
    cluster.workers = workers
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_cluster_flag
        os.environ.clear()
        os.environ.update(saved_env)
        for _ in range(3):  # exiting agents may still write a file or two
            shutil.rmtree(temp_dir, ignore_errors=True)
            time.sleep(1)


def write_sweep(tmp_path: Path, name: str, precisions=("fp32", "int8_dynamic", "fp16"), batch_sizes=(1, 2),
                accelerator=None, repeats=1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SWEEP.format(name=name, precisions=json.dumps(list(precisions)), storage=tmp_path / "sweeps",
                                 batch_sizes=json.dumps(list(batch_sizes)), repeats=repeats,
                                 accelerator=f", accelerator_type: {accelerator}" if accelerator else ""))
    return path


def driver_env(**extra) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "sweeper", "MLFLOW_TRACKING_PASSWORD": PASSWORD,
           "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    env.update(extra)
    return env


def start_driver(args: list[str], log_path: Path, **env) -> subprocess.Popen:
    """The CLI in its own process group (killable as a whole), output to a file."""
    out = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "infersweep", *args], cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT, env=driver_env(**env), start_new_session=True)
    proc.log_path = log_path
    return proc


def finish_driver(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"the driver ran past {timeout:.0f} s:\n{read_tail(proc)}") from None


def reports(sweep_dir: Path) -> dict[str, dict]:
    found = {}
    for path in (sweep_dir / "trials").glob("*/report.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced right now
            pass
    return found


def assert_one_run_per_trial(uri: str, sweep_dir: Path, name: str) -> dict:
    """Exactly one run per report on disk, FINISHED (ok) or FAILED, none RUNNING, each a child of
    the sweep's one parent run and holding its report's knobs and metrics."""
    from infersweep.tracking.sweep_runs import SweepRuns
    from infersweep.trials import TrialSpec

    runs = SweepRuns(name, uri)
    parents = runs.client.search_runs(
        [runs.experiment_id], filter_string=f"tags.`infersweep.sweep` = '{name}' and tags.`infersweep.kind` = 'sweep'")
    assert [p.info.status for p in parents] == ["FINISHED"]
    by_trial: dict[str, list] = {}
    for run in runs.trial_runs():
        by_trial.setdefault(run.data.tags["infersweep.trial_id"], []).append(run)
    on_disk = reports(sweep_dir)
    assert set(by_trial) == set(on_disk), f"runs {sorted(by_trial)} vs reports {sorted(on_disk)}"
    for trial_id, trial_runs in by_trial.items():
        assert len(trial_runs) == 1, f"{trial_id} logged {len(trial_runs)} times"
        run, report = trial_runs[0], on_disk[trial_id]
        expected = "FAILED" if report["status"] in ("oom", "failed") else "FINISHED"  # infeasible: FINISHED
        assert run.info.status == expected, (trial_id, run.info.status)
        assert run.data.tags["status"] == report["status"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id, trial_id
        knobs = TrialSpec.model_validate(report["spec"]).knobs()
        assert run.data.params == {key: str(value) for key, value in knobs.items()}, trial_id
        if report["status"] == "ok":
            assert "latency_ms_per_sample" in run.data.metrics and "rougeLsum" in run.data.metrics
        for metric, value in report["metrics"].items():  # the values on disk (a re-measured baseline: the latest)
            assert run.data.metrics.get(metric) == pytest.approx(value, rel=1e-9), (trial_id, metric)
    return by_trial


def trial_processes(node) -> list:
    """Ray Tune trial workers (ray::ImplicitFunc) started by `node`'s raylet."""
    import psutil

    raylet = node.all_processes["raylet"][0].process.pid
    found = []
    try:
        for child in psutil.Process(raylet).children(recursive=True):
            try:
                if "ImplicitFunc" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return found


def trial_id_of(proc, sweep) -> str | None:
    """The sweep trial a Tune worker runs: its cwd is named like its Tune trial dir, whose
    params.json Tune may write only once the trial ends, and whose name holds the config:
    sweep_trial_<id>_<n>_batch_size=2,precision=fp32,..._<timestamp>."""
    import re

    try:
        name = Path(proc.cwd()).name
        params = sweep.sweep_dir() / "tune" / name / "params.json"
        if params.exists():
            return sweep.trial_spec(json.loads(params.read_text())).trial_id()
        found = re.search(r"_\d+_(?P<config>[a-z_]+=.+)_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$", name)
        config = dict(pair.split("=", 1) for pair in found["config"].split(","))
        config["batch_size"] = int(config["batch_size"])
        return sweep.trial_spec(config).trial_id()
    except Exception:
        return None


# --------------------------------------------------------------------------------------------


def test_a_trial_needing_an_accelerator_no_node_has_fails_fast(ray_cluster, tracking, tmp_path):
    from infersweep.cluster.connect import missing_resources
    from infersweep.sweeps.driver import SweepError, run_sweep
    from infersweep.sweeps.spec import load_sweep_spec

    assert missing_resources({"CPU": 1, "GPU": 0, f"accelerator_type:{ACCEL}": 0.001}) is None
    assert "CPU=2" in missing_resources({"CPU": 2})  # 2 CPUs in all, but at most 1 on a node
    assert "GPU" in missing_resources({"CPU": 1, "GPU": 1})
    sweep = load_sweep_spec(write_sweep(tmp_path, "no-h100", accelerator="H100"))
    started = time.monotonic()
    with pytest.raises(SweepError) as exc:
        run_sweep(sweep, address=ray_cluster.address, tracking_uri=tracking.url, progress=False, say=lambda _: None)
    assert time.monotonic() - started < 60
    message = str(exc.value)
    assert "accelerator_type:H100" in message and ACCEL in message
    assert not reports(sweep.sweep_dir()), "nothing may run when the cluster cannot run the trials"


def test_killed_driver_then_resume_finishes_the_sweep(ray_cluster, tracking, tmp_path):
    from infersweep.sweeps.spec import load_sweep_spec

    spec = write_sweep(tmp_path, "driver-kill")
    sweep = load_sweep_spec(spec)
    storage = str(tmp_path / "sweeps")
    common = ["--address", ray_cluster.address, "--tracking-uri", tracking.url]
    started = time.monotonic()
    proc = start_driver(["launch", str(spec), *common], tmp_path / "launch.log")
    wait_for(lambda: len(reports(sweep.sweep_dir())) >= 3, 400, "the baseline and two trials", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {k: (sweep.sweep_dir() / "trials" / k / "report.json").stat().st_mtime_ns
              for k in reports(sweep.sweep_dir())}
    log(f"driver killed after {time.monotonic() - started:.0f} s with {len(before)} reports")

    resumed = start_driver(["resume", "driver-kill", "--storage", storage, *common], tmp_path / "resume.log")
    assert finish_driver(resumed, 480) == 0, read_tail(resumed)
    log(f"resumed sweep finished after {time.monotonic() - started:.0f} s")
    after = reports(sweep.sweep_dir())
    # the grid: 2 runnable precisions x 2 batch sizes (baseline among them); fp16 is ruled out on CPU
    assert len(after) == 4, sorted(after)
    baseline_id = sweep.trial_spec(sweep.baseline.model_dump()).trial_id()  # re-measured by each launch
    for trial_id, mtime in before.items():
        path = sweep.sweep_dir() / "trials" / trial_id / "report.json"
        assert trial_id == baseline_id or path.stat().st_mtime_ns == mtime, f"{trial_id} was run again"
    assert_one_run_per_trial(tracking.url, sweep.sweep_dir(), "driver-kill")


def test_mlflow_server_down_mid_sweep_loses_nothing(ray_cluster, tracking, tmp_path):
    from infersweep.sweeps.spec import load_sweep_spec

    spec = write_sweep(tmp_path, "server-down", batch_sizes=(1, 2, 4))
    sweep = load_sweep_spec(spec)
    storage = str(tmp_path / "sweeps")
    common = ["--address", ray_cluster.address, "--tracking-uri", tracking.url]
    started = time.monotonic()
    # MLflow retries a refused connection for minutes by default; fail fast instead, so the
    # callback's errors are swallowed and finish() reconciles from the reports on disk
    fast_fail = dict(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    proc = start_driver(["launch", str(spec), *common], tmp_path / "launch.log", **fast_fail)
    wait_for(lambda: len(reports(sweep.sweep_dir())) >= 2, 400, "the baseline and one trial", proc)
    tracking.stop()
    down_at = len(reports(sweep.sweep_dir()))
    log(f"server stopped after {time.monotonic() - started:.0f} s with {down_at} reports")
    wait_for(lambda: len(reports(sweep.sweep_dir())) > down_at, 300, "a trial finishing while the server is down", proc)
    tracking.start()
    log(f"server back after {time.monotonic() - started:.0f} s with {len(reports(sweep.sweep_dir()))} reports")
    code = finish_driver(proc, 480)
    if code != 0:
        # every trial finished before the server was back: the driver could not reconcile at
        # the end; the reports are on disk and `resume` logs them (what a person would do)
        log(f"the driver stopped ({code}) with the server down at the end; resuming")
        assert "Connection refused" in Path(proc.log_path).read_text()
        resumed = start_driver(["resume", "server-down", "--storage", storage, *common], tmp_path / "resume.log")
        assert finish_driver(resumed, 480) == 0, read_tail(resumed)
    log(f"sweep finished after {time.monotonic() - started:.0f} s")
    assert len(reports(sweep.sweep_dir())) == 6  # fp32, int8_dynamic x 3 batch sizes (fp16 ruled out)
    assert_one_run_per_trial(tracking.url, sweep.sweep_dir(), "server-down")


def test_mlflow_server_down_until_the_sweep_ends_then_resume_logs_it(ray_cluster, tracking, tmp_path):
    """Every trial finishes while the server is down: the driver stops (non-zero) and says so,
    the reports are all on disk, and `infersweep resume` logs them once the server is back."""
    from infersweep.sweeps.spec import load_sweep_spec

    spec = write_sweep(tmp_path, "end-down", precisions=("fp32", "int8_dynamic"))
    sweep = load_sweep_spec(spec)
    common = ["--address", ray_cluster.address, "--tracking-uri", tracking.url]
    started = time.monotonic()
    proc = start_driver(["launch", str(spec), *common], tmp_path / "launch.log",
                        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    from infersweep.tracking.sweep_runs import SweepRuns

    def baseline_logged():  # the driver logs the baseline itself before the search starts
        try:
            return any(r.data.tags.get("infersweep.logged") == "1" for r in SweepRuns("end-down", tracking.url).trial_runs())
        except Exception:
            return False

    wait_for(baseline_logged, 400, "the baseline in MLflow", proc, every=0.3)
    tracking.stop()
    try:
        code = finish_driver(proc, 480)
    finally:
        tracking.start()
    log(f"driver stopped ({code}) after {time.monotonic() - started:.0f} s with the server down")
    text = Path(proc.log_path).read_text()
    assert code != 0 and "infersweep resume end-down" in text and "Traceback" not in text
    assert len(reports(sweep.sweep_dir())) == 4, "every result must be on disk"
    resumed = start_driver(["resume", "end-down", "--storage", str(tmp_path / "sweeps"), *common],
                           tmp_path / "resume.log")
    assert finish_driver(resumed, 480) == 0, read_tail(resumed)
    log(f"resumed and logged after {time.monotonic() - started:.0f} s")
    assert len(reports(sweep.sweep_dir())) == 4
    assert_one_run_per_trial(tracking.url, sweep.sweep_dir(), "end-down")


def test_worker_node_killed_mid_trial_is_retried_elsewhere(ray_cluster, tracking, tmp_path):
    from infersweep.sweeps.spec import load_sweep_spec

    # timed passes long enough (seconds) that the kill surely lands mid-trial
    spec = write_sweep(tmp_path, "node-kill", precisions=("fp32", "int8_dynamic"), repeats=25)
    sweep = load_sweep_spec(spec)
    started = time.monotonic()
    proc = start_driver(["launch", str(spec), "--address", ray_cluster.address, "--tracking-uri", tracking.url],
                        tmp_path / "launch.log")
    wait_for(lambda: reports(sweep.sweep_dir()), 400, "the baseline", proc)

    first_seen: dict[int, float] = {}

    def victim():  # a trial seen starting on a worker node moments ago: surely mid-run
        for node in ray_cluster.workers:
            for worker in trial_processes(node):  # (Ray may have started the process earlier, idle)
                trial_id = trial_id_of(worker, sweep)
                if not trial_id:
                    continue
                seen = first_seen.setdefault(worker.pid, time.monotonic())
                if time.monotonic() - seen < 3 and trial_id not in reports(sweep.sweep_dir()):
                    return node, trial_id
        return None

    node, trial_id = wait_for(victim, 400, "a trial running on a worker node", proc, every=0.2)
    ray_cluster.remove_node(node, allow_graceful=False)
    ray_cluster.workers.remove(node)
    log(f"killed the node running {trial_id} after {time.monotonic() - started:.0f} s")
    assert trial_id not in reports(sweep.sweep_dir()), "the trial must be cut off mid-run"
    assert finish_driver(proc, 480) == 0, read_tail(proc)
    log(f"sweep finished after {time.monotonic() - started:.0f} s")
    done = reports(sweep.sweep_dir())
    assert trial_id in done and len(done) == 4
    assert_one_run_per_trial(tracking.url, sweep.sweep_dir(), "node-kill")


def test_the_drivers_mlflow_password_is_written_nowhere(ray_cluster, tracking, tmp_path_factory):
    """Every driver above ran with MLFLOW_TRACKING_PASSWORD set: no sweep state (Tune's pickles,
    reports, trial dirs), no Ray session log and no MLflow store or log may contain it."""
    roots = [tmp_path_factory.getbasetemp(), Path(ray_cluster.temp_dir)]
    needle = PASSWORD.encode()
    leaks = [str(path) for root in roots for path in Path(root).rglob("*")
             if path.is_file() and not path.is_symlink() and needle in path.read_bytes()]
    assert not leaks, f"the MLflow password was written to {leaks}"
