"""The steps docs/decisions.md gives for extending infersweep, exercised: a runtime that runs a
precision where no other does is added by its module and one registry line, and from its support
table alone it is feasible, in a sweep's space, run the way a sweep worker runs it, and reported."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from infersweep.trials import TrialSpec
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware
from infersweep.trials.runtimes import PLUGIN_ENV, RUNTIMES, get_runtime
from infersweep.trials.runtimes.base import min_cosine, precisions_for

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
FAKE = "fake_fp16_cpu"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_runtime(monkeypatch):
    """The registry line, given where every process a trial starts reads it (the serving-memory
    process, Ray workers): $INFERSWEEP_RUNTIMES; this process has read it already."""
    target = "tests.fake_runtime:FakeFp16CpuRuntime"
    monkeypatch.setenv(PLUGIN_ENV, f"{FAKE}={target}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setitem(RUNTIMES, FAKE, target)
    return get_runtime(FAKE)


def test_plugin_runtimes_are_read_from_the_environment(monkeypatch):
    from infersweep.trials.runtimes import registered_elsewhere

    monkeypatch.setenv(PLUGIN_ENV, f" {FAKE}=tests.fake_runtime:FakeFp16CpuRuntime ,")
    assert registered_elsewhere()[FAKE] == "tests.fake_runtime:FakeFp16CpuRuntime"
    monkeypatch.setenv(PLUGIN_ENV, "broken")
    with pytest.raises(ValueError, match="not name=module:Class"):
        registered_elsewhere()


def test_before_the_registry_line_fp16_on_cpu_has_no_runtime():
    assert FAKE not in RUNTIMES
    assert "no installed runtime does" in check(TrialSpec(precision="fp16"), CPU)


def test_the_support_table_alone_makes_it_feasible_and_named(fake_runtime):
    assert precisions_for(fake_runtime, "extractive", "cpu") == ("fp32", "fp16")
    assert check(TrialSpec(runtime=FAKE, precision="fp16"), CPU) is None
    assert min_cosine(fake_runtime, "extractive", "cpu", "fp16") == 0.98  # its recipe's own tolerance
    # the other runtimes' reasons now point at it
    assert f"runtimes that do: {FAKE}" in check(TrialSpec(precision="fp16"), CPU)
    assert "does not run the seq2seq task" in check(TrialSpec(runtime=FAKE, task="seq2seq"), CPU)


def test_a_sweep_schedules_runs_and_reports_it(fake_runtime, tmp_path, cache_dir, monkeypatch):
    from rich.console import Console

    from infersweep.sweeps.report import frontier_table
    from infersweep.sweeps.results import load_results
    from infersweep.sweeps.spec import SweepSpec
    from infersweep.sweeps.trainable import TrialPlan, run_or_reuse, tune_result

    monkeypatch.chdir(tmp_path)
    sweep = SweepSpec.model_validate({
        "name": "extending", "dataset": {"n": 4},
        "space": {"precision": ["fp32", "fp16"], "runtime": ["torch", FAKE], "batch_size": [2]},
        "constraints": [], "trial": {"warmup": 0, "repeats": 1,
                                     "timing": {"min_passes": 1, "min_batches": 1, "max_seconds": 2}}})
    fake_point = {"precision": "fp16", "runtime": FAKE, "pruning": "none", "batch_size": 2}
    assert fake_point in sweep.space.grid()
    plan = TrialPlan.of(sweep)
    baseline, _, _ = run_or_reuse(plan, {k: v for k, v in sweep.baseline.model_dump().items()})
    report, path, reused = run_or_reuse(plan, fake_point)  # what a sweep worker does with the point
    assert baseline.status == "ok" and report.status == "ok", report.reason
    assert path.exists() and not reused and report.spec.runtime == FAKE and report.spec.precision == "fp16"
    assert tune_result(plan, report, baseline)["infeasible"] == 0.0
    results = load_results(sweep)
    row = next(r for r in results.rows if r.trial_id == report.trial_id)
    assert row.status == "ok" and row.knobs["runtime"] == FAKE and row.metrics["speedup"] > 0
    console = Console(width=200, record=True)
    console.print(frontier_table(results.rows))
    assert report.trial_id[:8] in console.export_text()
