"""Benchmark: `infersweep serve` against `mlflow models serve` for the same registered model (issue 16, item 5).

The quickstart's usual champion (bundled MiniLM extractive, onnxruntime int8_dynamic, batch 8, the
machine's CPUs) is promoted into a temporary MLflow store, then served by each server in turn on
127.0.0.1 (never both at once). Open-loop load: Poisson arrivals at a fixed rate, one document per
request (CNN/DailyMail articles when the shared file is present, else the bundled sample), each
request sent on schedule whatever the answers before it, for `--seconds` per rate (at most
`--max-requests`). Rates rise until the server saturates (p99 over 1 s and no more throughput than
at a lower rate, twice in a row). The sustainable throughput of a server is the achieved throughput
at the highest rate whose p99 <= 1 s with <= 1% failed; its peak is the most it answered per second
at any rate (its capacity, whatever the latency).

Where the CPU goes: around each rate the CPU seconds of every process on the machine are read
(psutil) and grouped by role (Serve's HTTP proxy, the gateway, the model replica, Ray's own daemons,
MLflow's server, the load generator), so the report shows the CPU milliseconds each part spent
per answered request at the highest sustainable rate.

    .venv/bin/python bench/serve.py [--seconds 12] [--rates 2,4,...] [--mlflow-workers 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import ROOT, SHARED_CNN, machine, markdown_table, write_section  # noqa: E402

MODEL = "bench-serve"
P99_LIMIT_S = 1.0
FAILURE_LIMIT = 0.01
REQUEST_TIMEOUT_S = 30.0
DEFAULT_RATES = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
PROMOTE = """
import json, sys
from infersweep.quiet import quiet_libraries
quiet_libraries()
from infersweep.trials import TrialSpec
from infersweep.trials.hardware import library_versions
from infersweep.trials.spec import TrialReport
from infersweep.tracking.registry import promote_variant
spec = TrialSpec(runtime="onnxruntime", precision="int8_dynamic", batch_size=8, cpus=int(sys.argv[2]),
                 n=3, warmup=0, repeats=1)
report = TrialReport(spec=spec, status="ok", metrics={"latency_ms_per_sample": 1.0}, versions=library_versions())
print("PROMOTED " + json.dumps(promote_variant(spec, report, None, sys.argv[1], %r, "champion", {}).model_uri))
""" % MODEL


def documents(source: str, count: int = 64) -> tuple[list[str], str]:
    if source == "cnn" and SHARED_CNN.exists():
        rows = [json.loads(line) for line in SHARED_CNN.read_text().splitlines()[:count] if line.strip()]
        return [r["document"] for r in rows], f"{len(rows)} CNN/DailyMail validation articles"
    from infersweep.trials.data import load_examples

    examples = load_examples("sample")[:count]
    return [e.document for e in examples], f"{len(examples)} bundled sample documents"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Server:
    """A server process in its own session, started and waited for until `ready_path` answers 200."""

    def __init__(self, name: str, command: list[str], ready_path: str, port: int, env: dict, log: Path):
        self.name, self.base = name, f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, cwd=log.parent)
        deadline = time.monotonic() + 900
        while True:
            try:
                with urllib.request.urlopen(self.base + ready_path, timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


async def _one(session, url: str, body: bytes, start_at: float, t0: float, out: list) -> None:
    import aiohttp

    await asyncio.sleep(max(0.0, start_at - (time.perf_counter() - t0)))
    sent = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as response:
            await response.read()
            status = response.status
    except Exception:  # a timeout or a dropped connection: a failure
        status = 0
    out.append((status, time.perf_counter() - sent, time.perf_counter() - t0))


async def _load(url: str, docs: list[str], rate: float, seconds: float, max_requests: int, seed: int) -> dict:
    import aiohttp

    rng = random.Random(seed)
    arrivals, t = [], rng.expovariate(rate)
    while t < seconds and len(arrivals) < max_requests:
        arrivals.append(t)
        t += rng.expovariate(rate)
    bodies = [json.dumps({"inputs": [docs[i % len(docs)]]}).encode() for i in range(len(arrivals))]
    results: list = []
    connector = aiohttp.TCPConnector(limit=0)  # open loop: never wait for a free connection
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(_one(session, url, b, a, t0, results) for a, b in zip(arrivals, bodies)))
    ok = sorted(latency for status, latency, _ in results if status == 200)
    span = max(end for *_, end in results) if results else seconds
    return {"rate": rate, "sent": len(results), "ok": len(ok),
            "failed": len(results) - len(ok), "rejected_503": sum(1 for s, *_ in results if s == 503),
            "p50_s": statistics.median(ok) if ok else float("nan"),
            "p99_s": ok[min(len(ok) - 1, int(0.99 * len(ok)))] if ok else float("nan"),
            "throughput": len(ok) / span if span else 0.0}


#: (role, what its command line holds), first match wins; Ray names its workers "ray::<actor>"
ROLES = (("load generator", "bench/serve.py"), ("serve proxy", "ProxyActor"), ("gateway", ":gateway"),
         ("model replica", ":summarizer"),
         ("serve controller", "ServeController"), ("ray daemons", "raylet"), ("ray daemons", "gcs_server"),
         ("ray daemons", "dashboard"), ("ray daemons", "ray/_private"), ("ray daemons", "ray::"),
         ("mlflow server", "mlflow"), ("mlflow server", "gunicorn"), ("mlflow server", "uvicorn"))


def role_of(cmdline: str) -> str:
    return next((role for role, mark in ROLES if mark in cmdline), "other")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) so far of every process now running, summed by role."""
    import psutil

    totals: dict[str, float] = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        times, cmdline = proc.info.get("cpu_times"), " ".join(proc.info.get("cmdline") or [])
        if times is None or not cmdline:
            continue
        role = role_of(cmdline)
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def sweep_rates(server: Server, docs: list[str], rates: list[float], seconds: float, max_requests: int) -> list[dict]:
    url = server.base + "/invocations"
    asyncio.run(_load(url, docs, 2.0, 3.0, 8, seed=99))  # warm both the same way
    rows, stalled, peak = [], 0, 0.0
    for i, rate in enumerate(rates):
        before = cpu_by_role()
        row = asyncio.run(_load(url, docs, rate, seconds, max_requests, seed=i))
        after = cpu_by_role()
        # a process that ended during the rate drops out of `after`: its CPU is not counted
        row["cpu_s"] = {role: max(0.0, after[role] - before.get(role, 0.0)) for role in after}
        row["server"] = server.name
        rows.append(row)
        print(f"{server.name:>16} rate {rate:>5g}/s: sent {row['sent']}, ok {row['ok']}, 503 {row['rejected_503']}, "
              f"p50 {row['p50_s'] * 1000:.0f} ms, p99 {row['p99_s'] * 1000:.0f} ms, "
              f"{row['throughput']:.1f} req/s", flush=True)
        # saturated: p99 over the limit and no more throughput than before, twice in a row
        stalled = stalled + 1 if not sustainable(row) and row["throughput"] < 1.1 * peak else 0
        peak = max(peak, row["throughput"])
        if stalled >= 2:
            break
    return rows


def sustainable(row: dict) -> bool:
    return row["ok"] > 0 and row["p99_s"] <= P99_LIMIT_S and row["failed"] <= FAILURE_LIMIT * row["sent"]


def best(rows: list[dict]) -> float:
    return max((r["throughput"] for r in rows if sustainable(r)), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="load per rate")
    parser.add_argument("--max-requests", type=int, default=800, help="most requests per rate")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="requests/s, rising")
    parser.add_argument("--mlflow-workers", type=int, default=1, help="mlflow models serve --workers (its default 1)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--max-queue", type=int, default=64, help="infersweep serve --max-queue")
    parser.add_argument("--documents", choices=("cnn", "sample"), default="cnn",
                        help="CNN/DailyMail articles (when the shared file is present) or the shorter bundled sample")
    parser.add_argument("--only", choices=("mlflow", "infersweep"), default=None)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--replicas", type=int, default=None,
                        help="infersweep serve --replicas (default: its own, one 1-CPU replica per CPU)")
    parser.add_argument("--cpus", type=float, default=None,
                        help="infersweep serve --cpus: CPUs (engine threads) per replica (default: its own)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    line, load_before = machine(), uptime()
    print(f"uptime before: {load_before}", flush=True)
    docs, docs_text = documents(args.documents)
    cpus = os.cpu_count() or 1
    bin_dir = str(Path(sys.executable).parent)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", PROMOTE, uri, str(cpus)], capture_output=True, text=True,
                              env=env, cwd=tmp, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"promotion failed:\n{done.stderr[-3000:]}")
        model_uri = json.loads(done.stdout.split("PROMOTED ", 1)[1])
        servers = {
            "mlflow": lambda port: Server(
                f"mlflow serve x{args.mlflow_workers}",
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.mlflow_workers)],
                "/ping", port, env, tmp / "mlflow.log"),
            "infersweep": lambda port: Server(
                "infersweep serve",
                [sys.executable, "-m", "infersweep", "serve", model_uri, "--tracking-uri", uri, "--port", str(port),
                 "--batch-wait-ms", str(args.batch_wait_ms), "--max-queue", str(args.max_queue),
                 *(["--replicas", str(args.replicas)] if args.replicas else []),
                 *(["--cpus", f"{args.cpus:g}"] if args.cpus else [])],
                "/health", port, env, tmp / "infersweep.log"),
        }
        for name, start in servers.items():
            if args.only and name != args.only:
                continue
            server = start(free_port())
            try:
                rows += sweep_rates(server, docs, rates, args.seconds, args.max_requests)
            finally:
                server.stop()
    load_after = uptime()
    print(f"uptime after: {load_after}", flush=True)
    if not rows:
        raise SystemExit("no measurements")
    report(args, rows, docs_text, cpus, line, load_before, load_after)


def report(args, rows: list[dict], docs_text: str, cpus: int, line: str, before: str, after: str) -> None:
    names = list(dict.fromkeys(r["server"] for r in rows))
    table = markdown_table(
        ["server", "offered req/s", "sent", "ok", "503", "p50 ms", "p99 ms", "achieved req/s", "p99 <= 1 s"],
        [[r["server"], f"{r['rate']:g}", r["sent"], r["ok"], r["rejected_503"], f"{r['p50_s'] * 1000:.0f}",
          f"{r['p99_s'] * 1000:.0f}", f"{r['throughput']:.1f}", "yes" if sustainable(r) else "no"] for r in rows])
    sustained = {n: best([r for r in rows if r["server"] == n]) for n in names}
    peaks = {n: max(r["throughput"] for r in rows if r["server"] == n) for n in names}
    summary = "; ".join(f"{n}: {v:.2f} req/s" for n, v in sustained.items())
    summary += ". Peak achieved throughput (any latency): " + "; ".join(f"{n}: {v:.2f} req/s" for n, v in peaks.items())
    ratio = ""
    if len(names) == 2:
        ratio = " — infersweep/mlflow: " + ", ".join(
            f"{what} **{mine[names[1]] / mine[names[0]]:.2f}x**" for what, mine in (("sustainable", sustained),
                                                                                  ("peak", peaks))
            if mine[names[0]] > 0) + " (target: 2.5x sustainable)"
    body = (f"The quickstart's usual champion (MiniLM extractive, onnxruntime int8_dynamic, batch 8, {cpus} CPUs) "
            f"registered once and served by `mlflow models serve --env-manager local --workers {args.mlflow_workers}` "
            f"and by `infersweep serve` ({replicas_text(args, cpus)}, max batch 8, wait {args.batch_wait_ms:g} ms, queue "
            f"{args.max_queue}), one at a "
            f"time, on 127.0.0.1. Open-loop Poisson arrivals, one document per request ({docs_text}), "
            f"{args.seconds:g} s (at most {args.max_requests} requests) per rate, rates rising until the server "
            f"saturated. The load generator (aiohttp) runs on the same machine. Machine load (the load generator and "
            f"the servers included): `uptime` before: `{before}`; after: `{after}`.\n\n"
            f"Sustainable throughput (p99 <= 1 s, <= 1% failed): {summary}{ratio}.\n\n{table}")
    body += "\n\n" + cpu_table(rows, names)
    print(body)
    title = f"Serving {docs_text.split(' ', 1)[1]}: infersweep serve vs mlflow models serve (bench/serve.py)"
    layout = "" if not (args.replicas or args.cpus) else f"-r{args.replicas or 1}x{args.cpus or cpus:g}"
    if layout:
        title += f", {replicas_text(args, cpus)}"
    flags = (f" --replicas {args.replicas}" if args.replicas else "") + (f" --cpus {args.cpus:g}" if args.cpus else "")
    if args.no_write:
        return
    write_section(f"serve-{args.documents}{layout}", title,
                  f"python bench/serve.py --seconds {args.seconds:g} --documents {args.documents} "
                  f"--mlflow-workers {args.mlflow_workers}{flags}", body, line)


def replicas_text(args, cpus: int) -> str:
    from infersweep.serving.config import replica_layout

    replicas, share = replica_layout(cpus, "cpu", args.replicas, args.cpus)
    threads = max(1, int(share))
    return f"{replicas} replica{'s' * (replicas > 1)} x {share:g} CPU, {threads} engine thread{'s' * (threads > 1)} each"


def cpu_table(rows: list[dict], names: list[str]) -> str:
    """CPU ms per answered request by role, at each server's highest sustainable rate."""
    picked = []
    for name in names:
        mine = [r for r in rows if r["server"] == name and sustainable(r) and r.get("cpu_s")]
        if mine:
            picked.append(max(mine, key=lambda r: r["throughput"]))
    if not picked:
        return ""
    roles = sorted({role for r in picked for role, s in r["cpu_s"].items() if s > 0.05},
                   key=lambda role: [role_ for role_, _ in ROLES].index(role) if role != "other" else len(ROLES))
    table = markdown_table(
        ["server", "rate req/s", *roles, "all"],
        [[r["server"], f"{r['rate']:g}", *(f"{1000 * r['cpu_s'].get(role, 0.0) / r['ok']:.1f}" for role in roles),
          f"{1000 * sum(r['cpu_s'].values()) / r['ok']:.1f}"] for r in picked])
    return ("CPU milliseconds per answered request, by process role, at each server's highest sustainable rate "
            "(all processes on the machine, read with psutil around the rate's load):\n\n" + table)


if __name__ == "__main__":
    main()
