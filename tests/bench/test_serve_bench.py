"""bench/serve.py's accounting of where the CPU goes (the load test itself runs by hand)."""
from __future__ import annotations

import os

from bench import serve as s


def test_processes_are_grouped_by_their_role_in_serving():
    assert s.role_of("ray::ServeReplica:infersweep:summarizer") == "model replica"
    assert s.role_of("ray::ServeReplica:infersweep:gateway") == "gateway"
    assert s.role_of("ray::ProxyActor") == "serve proxy"
    assert s.role_of("ray::ServeController") == "serve controller"
    assert s.role_of("/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --node") == "ray daemons"
    assert s.role_of("/venv/bin/python -m mlflow models serve -m models:/x@champion") == "mlflow server"
    assert s.role_of("/usr/bin/python bench/serve.py --seconds 12") == "load generator"
    assert s.role_of("/usr/sbin/sshd") == "other"


def test_this_process_cpu_is_read():
    totals = s.cpu_by_role()
    assert sum(totals.values()) >= sum(os.times()[:2]) * 0.5  # this test process is among them


def test_cpu_per_request_at_the_highest_sustainable_rate():
    def row(server, rate, ok, p99, cpu):
        return {"server": server, "rate": rate, "sent": ok, "ok": ok, "failed": 0, "p99_s": p99,
                "throughput": ok / 10, "cpu_s": cpu}

    rows = [row("infersweep serve", 4, 40, 0.2, {"model replica": 2.0, "serve proxy": 0.4}),
            row("infersweep serve", 8, 80, 0.5, {"model replica": 4.0, "serve proxy": 1.6, "other": 0.01}),
            row("infersweep serve", 16, 100, 3.0, {"model replica": 9.0})]  # not sustainable
    text = s.cpu_table(rows, ["infersweep serve"])
    header = next(line for line in text.splitlines() if line.startswith("| server"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["server", "rate req/s", "serve proxy",
                                                                   "model replica", "all"]
    assert "| infersweep serve | 8 | 20.0 | 50.0 | 70.1 |" in text  # ms per answered request
