"""Benchmark: how far a trial's verdict can be trusted (issue 12, item 9).

1. Repeatability: the same trial `--repeats` times, each in a fresh process (`infersweep trial`'s
   code path, `python -c`), for torch fp32 and onnxruntime int8_dynamic: the CV of latency per
   sample across processes, and whether ROUGE is identical.
2. Interval widths: the paired 95% interval of rouge_drop_pct against torch fp32 at n = 12, 50
   and 200 documents for bf16, int8_dynamic and structured 0.4. Evaluation slices are prefixes of
   one document order, so the three sizes are nested: scores are computed once on 200 documents
   (quality only, trials.runner.QualityEvaluator) and the intervals taken on the prefixes.
3. Serving memory of every CPU runtime × precision of the bundled model (fresh serving process,
   trials.serving), from a short trial of each.

    .venv/bin/python bench/fidelity.py [--repeats 5] [--n 24] [--widths 12,50,200] [--memory-n 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import SHARED_CNN, machine, markdown_table, shared_data_missing, write_section  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ONE_TRIAL = """
import json, sys
from infersweep.trials import TrialSpec, run_trial
spec = TrialSpec.model_validate_json(sys.argv[1])
report = run_trial(spec, sys.argv[2])
print(json.dumps({"status": report.status, "reason": report.reason, "metrics": report.metrics,
                  "noisy": report.timing.get("noisy"), "cv": report.timing.get("cv_pct")}))
"""
REPEATED = (("torch fp32", {"runtime": "torch", "precision": "fp32"}),
            ("onnxruntime int8_dynamic", {"runtime": "onnxruntime", "precision": "int8_dynamic"}))
WIDTH_VARIANTS = (("bf16", {"precision": "bf16"}), ("int8_dynamic", {"precision": "int8_dynamic"}),
                  ("structured 0.4", {"pruning": "structured", "prune_ratio": 0.4}))


def fresh_trial(spec, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", ONE_TRIAL, spec.to_json(), str(out)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{spec.short_name()} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "ok":
        raise SystemExit(f"{spec.short_name()}: {result['status']}: {result['reason']}")
    return result


def repeat_rows(repeats: int, n: int, out: Path) -> list[list]:
    """Each variant `repeats` times in fresh processes, interleaved (a, b, a, b, ...)."""
    from infersweep.trials import TrialSpec

    runs: dict[str, list[dict]] = {label: [] for label, _ in REPEATED}
    for i in range(repeats):
        for label, knobs in REPEATED:
            spec = TrialSpec(dataset=str(SHARED_CNN), n=n, batch_size=8, **knobs)
            runs[label].append(fresh_trial(spec, out / f"{label.replace(' ', '-')}-{i}"))
            print(label, i, runs[label][-1]["metrics"]["latency_ms_per_sample"], flush=True)
    rows = []
    for label, results in runs.items():
        latency = [r["metrics"]["latency_ms_per_sample"] for r in results]
        rouge = {round(r["metrics"]["rougeLsum"], 6) for r in results}
        cv = 100 * statistics.stdev(latency) / statistics.mean(latency)
        rows.append([label, repeats, f"{statistics.mean(latency):.2f}", f"{min(latency):.2f}–{max(latency):.2f}",
                     f"{cv:.1f}%", "identical" if len(rouge) == 1 else f"{len(rouge)} values",
                     sum(bool(r["noisy"]) for r in results)])
    return rows


def width_rows(sizes: list[int]) -> list[list]:
    """The paired interval of each variant against fp32 on nested prefixes of one slice."""
    from infersweep.trials import TrialSpec
    from infersweep.trials.data import document_order, load_examples
    from infersweep.trials.runner import QualityEvaluator
    from infersweep.trials.stats import paired_drop

    examples = load_examples(str(SHARED_CNN))
    largest = max(sizes)
    order = document_order(len(examples), 0)[:largest]  # the evaluation slice of n=largest, in order
    documents = [examples[i] for i in order]
    scores = {}
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        for label, knobs in (("fp32", {}), *WIDTH_VARIANTS):
            spec = TrialSpec(dataset=str(SHARED_CNN), n=largest, batch_size=8, summary_length="3", **knobs)
            evaluator = QualityEvaluator(spec, Path(tmp) / label.replace(" ", "-"))
            try:
                scores[label] = evaluator.scores(documents)["rougeLsum"]
            finally:
                evaluator.close()
            print("scored", label, flush=True)
    rows = []
    for label, _ in WIDTH_VARIANTS:
        for n in sizes:
            interval = paired_drop(scores["fp32"][:n], scores[label][:n], 0.95)
            changed = sum(a != b for a, b in zip(scores["fp32"][:n], scores[label][:n]))
            rows.append([label, n, f"{interval.point:+.2f}%", f"[{interval.low:+.2f}, {interval.high:+.2f}]",
                         f"±{(interval.high - interval.low) / 2:.2f}", f"{changed}/{n}"])
    return rows


def memory_rows(n: int, out: Path) -> list[list]:
    """A short trial of every CPU runtime × precision the tables declare for the extractive task."""
    from infersweep.trials import TrialSpec
    from infersweep.trials.feasibility import check
    from infersweep.trials.hardware import detect
    from infersweep.trials.precision import Precision
    from infersweep.trials.runtimes import RUNTIMES

    rows = []
    for runtime in RUNTIMES:
        for precision in Precision:
            spec = TrialSpec(dataset=str(SHARED_CNN), n=n, batch_size=4, runtime=runtime, precision=precision,
                             warmup=1, repeats=1, timing={"max_seconds": 5})
            reason = check(spec, detect())
            if reason:
                continue
            result = fresh_trial(spec, out / f"mem-{runtime}-{precision}")
            m = result["metrics"]
            rows.append([runtime, str(precision), f"{m['peak_memory_mb']:.0f}", f"{m['model_size_mb']:.1f}",
                         f"{m['prepare_peak_memory_mb']:.0f}"])
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=24, help="documents per repeated trial")
    parser.add_argument("--widths", default="12,50,200", help="slice sizes for the interval widths")
    parser.add_argument("--memory-n", type=int, default=8, help="documents per serving-memory trial")
    args = parser.parse_args()
    if shared_data_missing():
        return
    line = machine()
    sizes = [int(s) for s in args.widths.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        repeats = repeat_rows(args.repeats, args.n, Path(tmp))
        widths = width_rows(sizes)
        memory = memory_rows(args.memory_n, Path(tmp))
    body = (
        f"**Repeatability**: the same trial {args.repeats}× in fresh processes, interleaved, {args.n} CNN/DailyMail "
        f"documents, batch 8 (target: CV ≤ 10%, ROUGE identical).\n\n"
        + markdown_table(["variant", "runs", "mean ms/sample", "range", "CV", "ROUGE-Lsum", "flagged noisy"], repeats)
        + f"\n\n**Interval widths**: paired 95% bootstrap interval of rouge_drop_pct against torch fp32 on nested "
          f"slices (summary length 3 sentences; 'changed' = documents whose ROUGE-Lsum differs from fp32's).\n\n"
        + markdown_table(["variant", "documents", "drop", "95% interval", "half-width", "changed"], widths)
        + f"\n\n**Serving memory** of every CPU runtime × precision (fresh serving process; {args.memory_n} "
          f"documents, batch 4): peak MiB over the process before loading, artifact size, and the trial "
          f"process's own preparation peak.\n\n"
        + markdown_table(["runtime", "precision", "serving MiB", "size MiB", "prepare MiB"], memory))
    print(body)
    write_section("fidelity", "Fidelity: repeatability, interval widths, serving memory",
                  f"python bench/fidelity.py --repeats {args.repeats} --n {args.n} --widths {args.widths} "
                  f"--memory-n {args.memory_n}", body, line)


if __name__ == "__main__":
    main()
