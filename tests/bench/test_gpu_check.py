"""bench/gpu_check.py without a GPU: the no-CUDA exit, the variant plan read from the support
tables (a faked CUDA Hardware), the time box, pytest output parsing and the report. The CUDA path
itself (real trials on a GPU) runs only where there is one: `make gpu-check`."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import gpu_check as g
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware
from infersweep.trials.runtimes import RUNTIMES, get_runtime
from infersweep.trials.runtimes.base import precisions_for

ROOT = Path(__file__).resolve().parents[2]
CPU = Hardware(cpu_model="test cpu", cpu_count=2)
GPU = Hardware(cpu_model="test cpu", cpu_count=2, cuda_available=True, gpu_name="H100", gpu_count=1,
               gpu_compute_capability=(9, 0))
MINILM = g.MODELS[0]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- without CUDA -----------------------------------------------------------------------------


@pytest.mark.skipif(_has_cuda(), reason="the no-CUDA path")
def test_without_cuda_it_says_so_exits_0_and_leaves_the_doc_alone():
    doc = ROOT / "docs" / "benchmarks.md"
    before = (doc.read_bytes(), doc.stat().st_mtime_ns) if doc.exists() else None
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == g.NO_CUDA
    assert ((doc.read_bytes(), doc.stat().st_mtime_ns) if doc.exists() else None) == before


def test_main_without_cuda_runs_and_writes_nothing(monkeypatch, capsys):
    monkeypatch.setattr(g, "cuda_available", lambda: False)
    for name in ("run_gpu_tests", "run_benchmark", "plan"):
        monkeypatch.setattr(g, name, lambda *a, **k: pytest.fail("ran without CUDA"))
    monkeypatch.setattr("bench._report.write_section", lambda *a, **k: pytest.fail("wrote without CUDA"))
    assert g.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


# --- the plan: what the support tables declare on cuda ----------------------------------------


def test_plan_has_every_declared_cuda_pair_once_with_feasibility_reasons():
    variants = g.plan([MINILM], GPU)
    declared = {(name, str(p)) for name in RUNTIMES for p in precisions_for(get_runtime(name), "extractive", "cuda")}
    assert [(v.runtime, v.precision) for v in variants].count(("torch", "fp32")) == 1
    assert {(v.runtime, v.precision) for v in variants} == declared and len(variants) == len(declared)
    for v in variants:
        assert v.skip_reason == check(g.trial_spec(MINILM, v.runtime, v.precision, 1), GPU)


def test_plan_runs_the_reference_first_the_named_kinds_next_slow_builds_last():
    pairs = [(v.runtime, v.precision) for v in g.plan([MINILM], GPU)]
    assert pairs[0] == g.REFERENCE
    named = [p for p in g.FIRST_PAIRS if p in pairs]
    assert pairs[:len(named)] == named
    slow = [get_runtime(runtime).slow_to_prepare for runtime, _ in pairs[len(named):]]
    assert slow == sorted(slow)  # the slow-to-prepare runtimes (torch.compile) close the list


def test_plan_on_a_cpu_machine_marks_every_variant_infeasible():
    assert all("no CUDA GPU is visible" in v.skip_reason for v in g.plan([MINILM], CPU))


def test_models_name_registered_tasks():
    from infersweep.trials.models import ADAPTERS

    assert {m.task for m in g.MODELS} <= set(ADAPTERS)
    assert g.MODELS[0].model == "all-MiniLM-L6-v2" and g.MODELS[0].n == 36


def test_trial_spec_is_a_short_cuda_trial_on_the_sample_set():
    spec = g.trial_spec(MINILM, "tensorrt", "fp16", 16)
    assert (spec.device, spec.dataset, spec.n, spec.batch_size) == ("cuda", "sample", 36, 16)
    assert spec.timing.max_seconds == g.TIMED_SECONDS


# --- the time box -----------------------------------------------------------------------------


def test_deadline_cuts_every_box_to_what_is_left():
    clock = FakeClock()
    deadline = g.Deadline.after(100, clock)
    assert deadline.box(240) == 100 and deadline.box(30) == 30 and deadline.allows(100)
    clock.now += 80
    assert deadline.box(240) == 20 and not deadline.allows(g.MIN_START_S)
    clock.now += 50
    assert deadline.left() == 0 and deadline.box(10) == 0


def _variant(runtime="torch", precision="fp32", skip=None):
    return g.Variant(MINILM, runtime, precision, skip)


def test_variants_past_the_deadline_are_not_run(monkeypatch):
    clock = FakeClock()
    deadline = g.Deadline.after(150, clock)
    boxes = []

    def fake_run(variant, batch_sizes, timeout, workdir, env, cpus):
        boxes.append(timeout)
        clock.now += 100
        return [g.Outcome(variant, b, "ok", report={"metrics": {}}) for b in batch_sizes]

    monkeypatch.setattr(g, "run_variant", fake_run)
    variants = [_variant(), _variant(precision="fp16"), _variant("tensorrt", "fp16", "needs tensorrt"),
                _variant(precision="bf16")]
    outcomes = g.run_benchmark(variants, deadline, (1, 16), variant_s=120, cpus=2)
    assert boxes == [120, 50]  # the second variant's box ends at the deadline
    assert [(o.variant.precision, o.batch, o.status) for o in outcomes] == [
        ("fp32", 1, "ok"), ("fp32", 16, "ok"), ("fp16", 1, "ok"), ("fp16", 16, "ok"),
        ("fp16", None, "infeasible"), ("bf16", None, g.NOT_RUN)]


def test_run_boxed_kills_the_process_and_its_children_and_keeps_their_output():
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "print('PID', child.pid, flush=True)\n"
              "time.sleep(60)\n")
    done = g.run_boxed([sys.executable, "-c", script], timeout=3)
    assert done.timed_out and done.returncode is None and done.seconds < 30
    pid = int(done.stdout.split()[1])
    assert _gone(pid)


def _gone(pid: int, wait_s: float = 5.0) -> bool:
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_run_boxed_returns_what_a_finished_process_printed():
    done = g.run_boxed([sys.executable, "-c", "print('hi'); raise SystemExit(3)"], timeout=60)
    assert (done.stdout.strip(), done.returncode, done.timed_out) == ("hi", 3, False)


@pytest.mark.skipif(_has_cuda(), reason="on a GPU this would run real trials")
def test_run_variant_reads_the_child_reports(tmp_path):
    """The child runs run_trial per batch size; without CUDA each cuda trial reports infeasible."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFERSWEEP_CACHE": str(tmp_path / "cache")}
    outcomes = g.run_variant(_variant(), (1, 16), 120, tmp_path / "trial", env, cpus=1)
    assert [(o.batch, o.status) for o in outcomes] == [(1, "infeasible"), (16, "infeasible")]
    assert "no CUDA GPU is visible" in outcomes[0].reason
    assert outcomes[1].report["spec"]["batch_size"] == 16


# --- pytest output ----------------------------------------------------------------------------

FINISHED = """\
..s.F.sss                                                                [100%]
=========================== short test summary info ============================
SKIPPED [2] tests/trials/test_runtimes.py:300: needs onnxruntime-gpu with TensorRT: pip install 'infersweep[gpu]'
SKIPPED [1] tests/trials/test_runtimes.py:320: tensorrt is not installed: pip install 'infersweep[gpu]'
1 failed, 4 passed, 4 skipped, 402 deselected, 3 warnings in 61.20s (0:01:01)
"""
KILLED = """\
..s.F.                                                                   [ 40%]
..E                                                                      [ 60%]
"""


def test_pytest_counts_from_the_summary_or_from_the_progress_of_a_killed_run():
    assert g.pytest_counts(FINISHED) == {"failed": 1, "passed": 4, "skipped": 4}
    assert g.pytest_counts(KILLED) == {"passed": 6, "skipped": 1, "failed": 1, "error": 1}
    assert g.pytest_counts("3 passed, 1 error in 2.00s") == {"passed": 3, "error": 1}
    assert g.pytest_counts("") == {}


def test_skip_reasons_are_summed_per_reason():
    assert g.skip_reasons(FINISHED) == [
        "needs onnxruntime-gpu with TensorRT: pip install 'infersweep[gpu]' (2 tests)",
        "tensorrt is not installed: pip install 'infersweep[gpu]' (1 test)"]


def test_tests_line_says_when_the_box_cut_the_run():
    done = {"counts": {"passed": 3}, "seconds": 240.4, "timed_out": True, "returncode": None}
    assert "killed at the time box after 240 s; before that: 3 passed" in g.tests_line(done)
    assert "not run" in g.tests_line(None)


# --- the report -------------------------------------------------------------------------------


def _ok(variant, batch, ms, rouge, size=80.0):
    metrics = {"latency_ms_per_sample": ms, "rougeLsum": rouge, "model_size_mb": size, "peak_memory_mb": 300.0}
    return g.Outcome(variant, batch, "ok", report={"metrics": metrics, "phases_s": {"prepare": 1.5},
                                                   "artifact": {"cache": "hit"}})


def _args(**overrides):
    fields = dict(batch_sizes=(1, 16), cpus=8, budget_s=480.0, tests_s=240.0, variant_s=150.0)
    return SimpleNamespace(**{**fields, **overrides})


def test_render_compares_with_torch_fp32_and_gives_one_line_per_variant_not_run():
    ref, fp16, trt, bf16 = _variant(), _variant(precision="fp16"), _variant("tensorrt", "fp16"), _variant(
        precision="bf16")
    outcomes = [_ok(ref, 1, 4.0, 40.0), _ok(ref, 16, 1.0, 40.0), _ok(fp16, 1, 2.0, 39.6),
                g.Outcome(fp16, 16, "oom", "CUDA out of memory"),
                g.Outcome(trt, 1, g.TIMED_OUT, "killed at its time box (150 s)"),
                g.Outcome(trt, 16, g.TIMED_OUT, "killed at its time box (150 s)"),
                g.Outcome(bf16, None, g.NOT_RUN, "20 s left of the budget")]
    tests = {"counts": {"passed": 12, "skipped": 2}, "skips": ["needs tensorrt (2 tests)"], "seconds": 90.0,
             "timed_out": False, "returncode": 0}
    body = g.render(tests, outcomes, 470.0, _args())
    assert body.startswith("gpu tests (`pytest -m gpu`): 12 passed, 2 skipped in 90 s (exit 0)")
    assert "- skipped: needs tensorrt (2 tests)" in body
    row = "| MiniLM extractive | torch | fp16 | 1 | ok | 2.00 | 2.00x | 80.00 | 300.00 | 39.60 | 1.00 | 1.50 | hit |"
    assert row in body
    assert "| MiniLM extractive | torch | bf16 | – | not run (time box) |" in body
    reasons = body.split(g.REASONS_HEADING)[1].strip().splitlines()
    assert reasons == ["- MiniLM extractive torch/fp16 b16: oom: CUDA out of memory",
                       "- MiniLM extractive tensorrt/fp16: timed out: killed at its time box (150 s)",
                       "- MiniLM extractive torch/bf16: not run (time box): 20 s left of the budget"]


def test_main_with_cuda_writes_the_gpu_check_section(monkeypatch, capsys):
    """The CUDA path's orchestration with the GPU work faked: tests, plan, variants, one section."""
    written = {}
    monkeypatch.setattr(g, "cuda_available", lambda: True)
    monkeypatch.setattr(g, "run_gpu_tests", lambda timeout: {"counts": {"passed": 5}, "skips": [], "seconds": 1.0,
                                                             "timed_out": False, "returncode": 0})
    monkeypatch.setattr(g, "plan", lambda models, hw: [_variant(), _variant("tensorrt", "fp16", "needs tensorrt")])
    monkeypatch.setattr(g, "run_variant", lambda v, sizes, *a: [_ok(v, b, 2.0, 40.0) for b in sizes])
    monkeypatch.setattr("bench._report.write_section",
                        lambda name, title, command, body, machine_line: written.update(name=name, body=body))
    assert g.main(["--batch-sizes", "1,16"]) == 0
    assert written["name"] == "gpu-check"
    assert "5 passed" in written["body"] and "| torch | fp32 | 16 | ok |" in written["body"]
    assert "- MiniLM extractive tensorrt/fp16: infeasible: needs tensorrt" in written["body"]
    assert "| torch | fp32 | 1 | ok |" in capsys.readouterr().out
