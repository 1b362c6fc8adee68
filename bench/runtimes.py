"""Every feasible runtime x precision at batch 1 and 16 on the extractive model over the shared
CNN/DailyMail file: per-sample latency, speedup vs torch fp32 in the same run, model size,
ROUGE-Lsum and its drop. Writes the `runtimes` section of docs/benchmarks.md.

    .venv/bin/python bench/runtimes.py [--n 60] [--batch-sizes 1,16] [--runtimes torch,onnxruntime]
        [--precisions fp32,int8_dynamic] [--unbucketed torch/fp32,onnxruntime/int8_dynamic]

Each trial runs in a fresh Python process (as a sweep worker would), through `run_trial`, with
2 CPUs. Artifacts come from a cache under the bench's own directory (built once, reused); the
first use of a variant shows its build time in the `prepare s` column. The machine is shared:
the 1-minute load average after each trial is in the table, read speedups with it in mind.
`pad %` is the share of the computed tokens that are padding in the adapter's sentence batches;
the `--unbucketed` variants run once more with `padding_buckets: false` (every 64 length-sorted
sentences one forward, as before issue 14): the before/after of padding buckets.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import SHARED_CNN, machine, markdown_table, shared_data_missing, write_section  # noqa: E402

TARGET_SPEEDUP, TARGET_DROP = 2.5, 1.0
CHILD = """
import json, sys
from infersweep.trials import TrialSpec, run_trial
spec = TrialSpec.model_validate_json(sys.argv[1])
report = run_trial(spec, sys.argv[2])
print("REPORT" + report.model_dump_json())
"""


def variants(runtimes: list[str] | None) -> list[tuple[str, str]]:
    from infersweep.trials.feasibility import check
    from infersweep.trials.hardware import detect
    from infersweep.trials.runtimes import RUNTIMES, get_runtime
    from infersweep.trials.runtimes.base import precisions_for
    from infersweep.trials.spec import TrialSpec

    hw = detect()
    out, skipped = [], []
    for name in RUNTIMES:
        if runtimes and name not in runtimes:
            continue
        for precision in precisions_for(get_runtime(name), "extractive", "cpu"):
            reason = check(TrialSpec(runtime=name, precision=precision, dataset=str(SHARED_CNN)), hw)
            (skipped.append((name, precision, reason)) if reason else out.append((name, precision)))
    for name, precision, reason in skipped:
        print(f"skip {name}/{precision}: {reason}")
    return out


def run_one(spec, workdir: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, spec.to_json(), str(workdir)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("REPORT")), None)
    if line is None:
        return {"status": "failed", "reason": (proc.stderr or proc.stdout)[-800:], "metrics": {},
                "spec": json.loads(spec.to_json())}
    return json.loads(line[len("REPORT"):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="documents (eval slice)")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--runtimes", default="", help="comma-separated; default: all registered")
    parser.add_argument("--precisions", default="", help="comma-separated; default: every one a runtime runs")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--unbucketed", default="torch/fp32,onnxruntime/int8_dynamic",
                        help="runtime/precision pairs also run without padding buckets ('' for none)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if shared_data_missing():
        return 0
    from infersweep.trials.spec import TrialSpec

    machine_line = machine()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    todo = variants([r for r in args.runtimes.split(",") if r] or None)
    todo = [(r, p) for r, p in todo if not args.precisions or p in args.precisions.split(",")]
    env = dict(os.environ, INFERSWEEP_CACHE=os.environ.get("INFERSWEEP_CACHE", str(ROOT / ".infersweep" / "cache")),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    unbucketed = {tuple(p.split("/")) for p in args.unbucketed.split(",") if p}
    padding = padding_fractions(args.n, batch_sizes)
    results = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        for batch in batch_sizes:
            for runtime, precision, bucket in [(r, p, True) for r, p in todo] + [
                    (r, p, False) for r, p in todo if (r, p) in unbucketed]:
                spec = TrialSpec(runtime=runtime, precision=precision, batch_size=batch, n=args.n,
                                 dataset=str(SHARED_CNN), cpus=args.cpus, warmup=1, repeats=1,
                                 extractive={"padding_buckets": bucket})
                report = run_one(spec, Path(tmp) / f"{spec.short_name()}-{spec.trial_id()}", env)
                load = os.getloadavg()[0]
                report["padding"] = padding[batch, bucket]
                results.append((runtime, precision, batch, report, load))
                m = report.get("metrics", {})
                print(f"{runtime:14s} {precision:13s} b{batch:<3d} {'' if bucket else 'unbucketed '}{report['status']:6s} "
                      f"{m.get('latency_ms_per_sample', float('nan')):9.1f} ms/sample  "
                      f"RL {m.get('rougeLsum', float('nan')):6.2f}  load {load:.1f}  {report.get('reason', '')[:200]}",
                      flush=True)
    body = render(results, args, time.time() - started)
    print(body)
    if not args.no_write:
        command = "python bench/runtimes.py " + " ".join(argv if argv is not None else sys.argv[1:])
        path = write_section("runtimes", "Runtimes x precisions (extractive MiniLM, CPU)", command.strip(), body,
                             machine_line)
        print(f"wrote {path}")
    return 0


def render(results, args, seconds: float) -> str:
    from infersweep.trials.measure import relative_metrics

    base = {b: r["metrics"] for rt, p, b, r, _ in results
            if rt == "torch" and p == "fp32" and r["status"] == "ok" and _bucketed(r)}
    headers = ["runtime", "precision", "batch", "buckets", "pad %", "ms/sample", "speedup", "size MiB", "ROUGE-Lsum",
               "drop %", "prepare s", "cache", "load"]
    rows = []
    for runtime, precision, batch, report, load in results:
        m = report.get("metrics", {})
        knobs = [runtime, precision, batch, "yes" if _bucketed(report) else "no", f"{100 * report['padding']:.0f}"]
        if report["status"] != "ok":
            rows.append([*knobs, report["status"], "", "", "", "", "", "", f"{load:.1f}"])
            continue
        rel = relative_metrics(m, base.get(batch, {}))
        rows.append([*knobs, m["latency_ms_per_sample"], _x(rel.get("speedup")),
                     m["model_size_mb"], m["rougeLsum"], rel.get("rouge_drop_pct", float("nan")),
                     report.get("phases_s", {}).get("prepare", float("nan")),
                     report.get("artifact", {}).get("cache", "-"), f"{load:.1f}"])
    failures = [f"- {rt}/{p} b{b}: {r['status']}: {r.get('reason', '')[:300]}"
                for rt, p, b, r, _ in results if r["status"] != "ok"]
    best = _best_within_drop(results, base)
    notes = (f"{args.n} documents of the shared CNN/DailyMail dev file (eval slice of `run_trial`, seed 0), "
             f"{args.cpus} CPUs per trial, 1 warm-up batch + 1 timed pass, each trial in a fresh process; "
             f"speedup and drop are against torch fp32 at the same batch size in this run. "
             f"Total {seconds / 60:.1f} min.")
    return "\n".join([notes, "", markdown_table(headers, rows), "", best, "", cpu_note()]
                     + ([""] + failures if failures else []))


def _bucketed(report: dict) -> bool:
    return report.get("spec", {}).get("extractive", {}).get("padding_buckets", True)


def padding_fractions(n: int, batch_sizes: list[int]) -> dict[tuple[int, bool], float]:
    """(batch size, padding buckets) -> padding's share of the tokens the forwards compute, over the
    adapter's batches of the trials' evaluation slice."""
    from infersweep.trials.data import load_examples, slices
    from infersweep.trials.models.extractive import ExtractiveSummarizer
    from infersweep.trials.spec import TrialSpec

    documents = [e.document for e in slices(load_examples(str(SHARED_CNN)), n).evaluation]
    out = {}
    for bucket in (True, False):
        adapter = ExtractiveSummarizer(TrialSpec(dataset=str(SHARED_CNN), extractive={"padding_buckets": bucket}))
        for batch in batch_sizes:
            real, computed = map(sum, zip(*(b.token_counts() for b in adapter.batches(documents, batch))))
            out[batch, bucket] = 1 - real / computed
    return out


def _best_within_drop(results, base) -> str:
    """The fastest variant within the ROUGE-Lsum drop bound, against the issue's target."""
    from infersweep.trials.measure import relative_metrics

    found = []
    for runtime, precision, batch, report, _ in results:
        if report["status"] != "ok" or batch not in base or not _bucketed(report):
            continue
        rel = relative_metrics(report["metrics"], base[batch])
        if rel.get("rouge_drop_pct", 99) <= TARGET_DROP:
            found.append((rel["speedup"], rel["rouge_drop_pct"], runtime, precision, batch))
    if not found:
        return "No variant stayed within the ROUGE-Lsum drop bound."
    speedup, drop, runtime, precision, batch = max(found)
    verdict = "met" if speedup >= TARGET_SPEEDUP else "not met"
    return (f"**Target ({TARGET_SPEEDUP}x faster per sample than torch fp32 with <= {TARGET_DROP:g}% "
            f"ROUGE-Lsum drop) {verdict}:** fastest within the bound is {runtime} {precision} at batch "
            f"{batch}, {speedup:.2f}x with a {drop:+.2f}% drop.")


def cpu_note() -> str:
    from infersweep.trials.hardware import detect

    hw = detect()
    has = "has" if hw.cpu_has_bf16 else "lacks"
    return (f"This CPU {has} bf16 instructions (AVX512-BF16/AMX), which decides whether bf16 is the "
            f"fastest precision here or ~17x slower than fp32 (measured on a CPU without them, "
            f"../shared/notes/cpu-measurements.md): a sweep finds out on the hardware it runs on.")


def _x(value):
    return f"{value:.2f}x" if value else ""


if __name__ == "__main__":
    raise SystemExit(main())
