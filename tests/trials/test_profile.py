"""Profiling a trial's variant (trials/profile.py, `infersweep profile`, `infersweep trial --profile`):
the runtimes' own profilers on the bundled MiniLM over a few sample documents give an operator
table whose shares add up to 100% and a trace file that is valid JSON; a trial that cannot be
profiled is one clear error."""
from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from infersweep.cli import app
from infersweep.trials import TrialSpec
from infersweep.trials.profile import (RANGE_PREFIX, TABLE_CSV, TRACE_FILE, ProfileError, ProfilingUnsupported,
                                       profile_report, profile_trial)
from infersweep.trials.runtimes.base import Runtime
from infersweep.trials.runtimes.torch_eager import TorchEagerRuntime
from infersweep.trials.spec import TrialReport

runner = CliRunner()


def _spec(**fields) -> TrialSpec:
    return TrialSpec(**{"n": 4, "batch_size": 2, "cpus": 1, "warmup": 1, "repeats": 1, **fields})


def _check_table(result) -> set[str]:
    operators = result.operators
    assert operators, "no operators profiled"
    assert sum(op.share_pct for op in operators) == pytest.approx(100.0, abs=0.01)
    assert all(op.self_ms > 0 and op.calls >= 1 for op in operators)
    assert [op.self_ms for op in operators] == sorted((op.self_ms for op in operators), reverse=True)
    with result.table_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["operator"] for row in rows] == [op.name for op in operators]
    assert result.table_text.read_text().splitlines()[1].startswith(operators[0].name[:40])
    return {op.name for op in operators}


def test_torch_profile_names_aten_operators_and_writes_a_chrome_trace(tmp_path):
    result = profile_trial(_spec(), tmp_path, batches=2)
    names = _check_table(result)
    assert "aten::addmm" in names  # the encoder's Linear layers
    assert not any(name.startswith(RANGE_PREFIX) for name in names)  # the batch labels are not operators
    assert (result.batches, result.documents) == (2, 4)
    trace = json.loads((tmp_path / TRACE_FILE).read_text())
    events = trace["traceEvents"]
    assert any(e.get("name") == f"{RANGE_PREFIX}1" for e in events)  # each batch is a range on the timeline
    assert any(e.get("name") == "aten::addmm" for e in events)


def test_onnxruntime_profile_sums_kernel_time_by_op_type(tmp_path, cache_dir):
    result = profile_trial(_spec(runtime="onnxruntime"), tmp_path, batches=1)
    names = _check_table(result)
    assert {"MatMul", "Attention"} <= names  # the fused encoder graph's operators
    events = json.loads((tmp_path / TRACE_FILE).read_text())
    assert isinstance(events, list) and any(e.get("cat") == "Node" for e in events)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("onnxruntime_profile")] == []


def test_openvino_profile_reads_the_plugins_per_node_counters(tmp_path, cache_dir):
    pytest.importorskip("openvino")
    result = profile_trial(_spec(runtime="openvino"), tmp_path, batches=1)
    assert "FullyConnected" in _check_table(result)
    trace = json.loads((tmp_path / TRACE_FILE).read_text())
    assert {e["cat"] for e in trace["traceEvents"]} == {op.name for op in result.operators}


def test_trial_profile_on_the_command_line_prints_the_top_operators(tmp_path):
    result = runner.invoke(app, ["trial", "--n", "2", "--batch-size", "2", "--warmup", "1", "--repeats", "1",
                                 "--cpus", "1", "--out", str(tmp_path), "--profile"])
    assert result.exit_code == 0, result.output
    assert "status=ok" in result.output and "aten::addmm" in result.output and "share" in result.output
    assert json.loads((tmp_path / TRACE_FILE).read_text())["traceEvents"]
    assert (tmp_path / TABLE_CSV).exists() and (tmp_path / "report.json").exists()


def test_an_infeasible_trial_with_profile_is_one_error_naming_the_fix(tmp_path):
    result = runner.invoke(app, ["trial", "--runtime", "tensorrt", "--n", "2", "--out", str(tmp_path), "--profile"])
    assert result.exit_code == 2
    assert "ended infeasible" in result.output and "only a trial with status ok can be profiled" in result.output
    assert not (tmp_path / TRACE_FILE).exists()


def test_a_trial_that_failed_cannot_be_profiled(tmp_path):
    report = TrialReport(spec=_spec(), status="failed", reason="RuntimeError: boom")
    with pytest.raises(ProfileError, match="ended failed \\(RuntimeError: boom\\).*status ok"):
        profile_report(report, tmp_path)


def test_a_spec_infeasible_on_this_machine_is_a_profile_error(tmp_path):
    with pytest.raises(ProfileError, match="cannot run on this machine.*tensorrt"):
        profile_trial(_spec(runtime="tensorrt"), tmp_path)


class NoProfilerRuntime(TorchEagerRuntime):
    """torch eager without a profiler hook: the protocol's default."""

    name = "no_profiler"
    profile = Runtime.profile


def test_a_runtime_without_a_profiler_hook_says_what_to_use(tmp_path, monkeypatch):
    from infersweep.trials.runtimes import RUNTIMES

    monkeypatch.setitem(RUNTIMES, "no_profiler", f"{__name__}:NoProfilerRuntime")
    with pytest.raises(ProfilingUnsupported, match="no profiler hook.*'torch' or 'onnxruntime'"):
        profile_trial(_spec(runtime="no_profiler"), tmp_path, batches=1)


def test_an_unknown_trial_id_is_one_error(tmp_path):
    result = runner.invoke(app, ["profile", "0123456789ab", "--storage", str(tmp_path)])
    assert result.exit_code == 2
    assert "no trial '0123456789ab'" in result.output and "infersweep status SWEEP" in result.output
