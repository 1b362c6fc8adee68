"""Profile a trial's variant under its runtime's own profiler: where its time goes, per operator.

The variant is built as its trial built it (trials.runner.build_engine), warmed up, and a few
batches of its evaluation slice run under the profiler its runtime names (Runtime.profile):
torch.profiler for the torch runtimes, ONNX Runtime's session profiling for onnxruntime, the
CPU plugin's per-node counters for openvino. On CUDA every batch is also an NVTX range
(`infersweep batch N`), so `nsys profile infersweep profile ...` shows the batches on its timeline.

Writes into the output folder: trace.json (Chrome trace: chrome://tracing, ui.perfetto.dev),
operators.csv and operators.txt (every operator by self time, with its share of the total).
No Ray, no MLflow here: the CLI logs the files to the trial's run through tracking/.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from infersweep.trials.errors import InfersweepError
from infersweep.trials.runtimes.base import ProfilingUnsupported, Runtime
from infersweep.trials.spec import TrialReport, TrialSpec

__all__ = ["BATCHES", "RANGE_PREFIX", "TABLE_CSV", "TABLE_TEXT", "TOP", "TRACE_FILE", "OperatorProfile",
           "ProfileError", "ProfilingUnsupported", "TrialProfile", "operator_table", "ort_operators",
           "profile_report", "profile_trial", "torch_operators"]

TRACE_FILE = "trace.json"
TABLE_CSV = "operators.csv"
TABLE_TEXT = "operators.txt"
BATCHES = 3  # profiled batches (after the trial's warm-up batches)
TOP = 15  # operators a table shows
RANGE_PREFIX = "infersweep batch "  # the NVTX ranges / torch record_function labels of the batches


class ProfileError(InfersweepError, ValueError):
    """A trial that cannot be profiled (not ok, infeasible here); str() names the fix."""


@dataclass(frozen=True)
class OperatorProfile:
    """One operator (an aten op, an ONNX op type, an OpenVINO node type) over the profiled batches."""

    name: str
    self_ms: float
    calls: int
    share_pct: float  # of the total self time of all operators


@dataclass(frozen=True)
class TrialProfile:
    trial_id: str
    spec: TrialSpec
    operators: list[OperatorProfile]  # all of them, by self time, largest first
    trace: Path
    table_csv: Path
    table_text: Path
    batches: int
    documents: int

    @property
    def total_ms(self) -> float:
        return sum(op.self_ms for op in self.operators)

    def top(self, count: int = TOP) -> list[OperatorProfile]:
        return self.operators[:count]

    def files(self) -> list[Path]:
        return [self.table_text, self.table_csv, self.trace]


def operator_table(times: dict[str, tuple[float, int]]) -> list[OperatorProfile]:
    """{name: (self ms, calls)} -> operators by self time with their shares (summing to 100%)."""
    total = sum(ms for ms, _ in times.values())
    rows = [OperatorProfile(name, round(ms, 4), calls, 100.0 * ms / total if total else 0.0)
            for name, (ms, calls) in times.items() if ms > 0]
    return sorted(rows, key=lambda op: op.self_ms, reverse=True)


def profile_report(report: TrialReport, out_dir: Path, batches: int = BATCHES) -> TrialProfile:
    """Profile the trial `report` describes; only a trial that ran (status ok) can be."""
    if report.status != "ok":
        why = f" ({report.reason})" if report.reason else ""
        raise ProfileError(f"trial {report.trial_id} ({report.spec.short_name()}) ended {report.status}{why}: only "
                           f"a trial with status ok can be profiled; pick one (infersweep status SWEEP lists them) "
                           f"or fix its settings and run it again")
    return profile_trial(report.spec, out_dir, batches)


def profile_trial(spec: TrialSpec, out_dir: Path, batches: int = BATCHES) -> TrialProfile:
    """Build `spec`'s variant, warm it up, profile `batches` batches; files go to `out_dir`."""
    from infersweep.trials import feasibility, hardware
    from infersweep.trials.runner import build_engine
    from infersweep.trials.runtimes import get_runtime

    if batches < 1:
        raise ProfileError(f"batches {batches}: profile at least 1 batch")
    reason = feasibility.check(spec, hardware.detect())
    if reason:
        raise ProfileError(f"{spec.short_name()} cannot run on this machine, so it cannot be profiled here: {reason}")
    runtime = get_runtime(spec.runtime)
    if getattr(type(runtime), "profile", Runtime.profile) is Runtime.profile:  # no hook of its own: say so now,
        Runtime.profile(runtime, None, spec, lambda: None, Path(out_dir))      # before anything loads
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace = (out / TRACE_FILE).resolve()
    with tempfile.TemporaryDirectory(prefix="infersweep-profile-") as scratch:  # the runtime's own files
        adapter, engine, evaluation = build_engine(spec, Path(scratch))
        try:
            documents = [e.document for e in evaluation][: batches * spec.batch_size]
            work = adapter.batches(documents, spec.batch_size)
            for batch in (work * max(spec.warmup, 1))[: max(spec.warmup, 1)]:
                adapter.summarize_batch(batch, engine)
            times = runtime.profile(engine, spec, lambda: _run_batches(adapter, engine, work, spec.device), trace)
        finally:
            engine.close()
    operators = operator_table(times)
    csv_path, text_path = _write_tables(operators, out)
    return TrialProfile(spec.trial_id(), spec, operators, trace, csv_path, text_path, len(work), len(documents))


def _run_batches(adapter, engine, batches, device: str) -> None:
    import torch

    for index, batch in enumerate(batches):
        label = f"{RANGE_PREFIX}{index}"
        nvtx = torch.cuda.nvtx.range(label) if device == "cuda" else nullcontext()
        with nvtx, torch.profiler.record_function(label):
            adapter.summarize_batch(batch, engine)
    if device == "cuda":
        torch.cuda.synchronize()


def _write_tables(operators: list[OperatorProfile], out: Path) -> tuple[Path, Path]:
    csv_path, text_path = out / TABLE_CSV, out / TABLE_TEXT
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["operator", "self_ms", "calls", "share_pct"])
        writer.writerows([op.name, f"{op.self_ms:.4f}", op.calls, f"{op.share_pct:.3f}"] for op in operators)
    width = max([len("operator"), *(min(len(op.name), 80) for op in operators)])
    lines = [f"{'operator':<{width}}  {'self ms':>10}  {'calls':>7}  {'share':>7}"]
    lines += [f"{op.name[:80]:<{width}}  {op.self_ms:>10.3f}  {op.calls:>7}  {op.share_pct:>6.2f}%" for op in operators]
    text_path.write_text("\n".join(lines) + "\n")
    return csv_path, text_path


def torch_operators(run: Callable[[], None], trace: Path, device: str) -> dict[str, tuple[float, int]]:
    """torch.profiler around `run`: aten (and on CUDA, kernel) operators by self time; the batch
    labels themselves are left out of the table (they stay in the trace)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        run()
    prof.export_chrome_trace(str(trace))
    field = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    times: dict[str, tuple[float, int]] = {}
    for row in prof.key_averages():
        micros = getattr(row, field, 0) or 0
        if micros > 0 and not row.key.startswith(RANGE_PREFIX) and not row.key.startswith("ProfilerStep"):
            times[row.key] = (micros / 1000.0, int(row.count))
    return times


def ort_operators(engine, spec: TrialSpec, run: Callable[[], None], trace: Path) -> dict[str, tuple[float, int]]:
    """ONNX Runtime's own profiler: `engine`'s session re-opened with profiling on (same options,
    same providers) for the length of `run`; its JSON (Chrome-trace events) becomes `trace`, and
    its kernel events, summed by ONNX op type, the table."""
    import onnxruntime as ort

    from infersweep.trials.runtimes.ort_recipes import session_options, spinning_default

    session = getattr(engine, "session", None)
    if session is None:
        raise ProfilingUnsupported(f"onnxruntime profiling covers engines with one session (the extractive "
                                   f"encoder); this {spec.task} engine has several: profile it on runtime 'torch'")
    options = session_options(spec.cpus, spinning=spinning_default())
    options.enable_profiling = True
    options.profile_file_prefix = str(trace.with_name("onnxruntime_profile"))
    settings = session.get_provider_options()
    providers = [(name, settings.get(name, {})) for name in session.get_providers()]
    profiled = ort.InferenceSession(str(engine.artifact_path), options, providers=providers)
    engine.session = profiled
    try:
        run()
    finally:
        engine.session = session
        written = Path(profiled.end_profiling())
    os.replace(written if written.is_absolute() else Path.cwd() / written, trace)
    return _ort_kernel_times(json.loads(trace.read_text()))


def _ort_kernel_times(events: list[dict]) -> dict[str, tuple[float, int]]:
    times: dict[str, tuple[float, int]] = {}
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name") or event["name"].removesuffix("_kernel_time")
        ms, calls = times.get(op, (0.0, 0))
        times[op] = (ms + float(event.get("dur", 0)) / 1000.0, calls + 1)
    return times
