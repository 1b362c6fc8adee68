"""Benchmark: the trial knobs on real news (issue 2, item 10).

fp32, bf16, int8_dynamic and unstructured-pruned 0.3 at batch 1 and 8 on the shared
CNN/DailyMail validation file, each through `trials.run_trial`: per-sample latency, speedup
against fp32 measured in the same run on the same documents, model size, ROUGE-1/2/Lsum and
ROUGE-Lsum drop. Then quality on all 500 documents for the extractive summarizer, Lead-3 and
the same pipeline with a randomly initialized encoder (quality only, not timed).

    .venv/bin/python bench/trials.py [--n 100] [--bf16-n 8] [--quality-n 500]

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

VARIANTS = (  # (label, precision, pruning, ratio)
    ("fp32", "fp32", "none", 0.0),
    ("int8_dynamic", "int8_dynamic", "none", 0.0),
    ("unstructured 0.3", "fp32", "unstructured", 0.3),
    ("bf16", "bf16", "none", 0.0),
)


def run(spec_fields: dict, out: Path):
    from infersweep.trials import TrialSpec, run_trial

    spec = TrialSpec(dataset=str(SHARED_CNN), **spec_fields)
    report = run_trial(spec, out / spec.trial_id())
    if report.status != "ok":
        raise SystemExit(f"{spec.short_name()}: {report.status}: {report.reason}")
    return report


def latency_rows(n: int, bf16_n: int, cpus: int, out: Path) -> list[list]:
    """Every variant at batch 1 and 8; each compared with fp32 on the same documents."""
    rows = []
    for batch in (1, 8):
        base = {}  # n -> fp32 report on that slice
        for label, precision, pruning, ratio in VARIANTS:
            slice_n = bf16_n if precision == "bf16" else n
            fields = dict(n=slice_n, batch_size=batch, cpus=cpus, warmup=2, repeats=1 if batch == 1 else 2)
            if slice_n not in base:
                base[slice_n] = run(fields, out)
            rep = base[slice_n] if label == "fp32" else run(
                dict(fields, precision=precision, pruning=pruning, prune_ratio=ratio), out)
            m, b = rep.metrics, base[slice_n].metrics
            speedup = b["latency_ms_per_sample"] / m["latency_ms_per_sample"]
            drop = 100 * (b["rougeLsum"] - m["rougeLsum"]) / b["rougeLsum"]
            rows.append([label, batch, slice_n, m["latency_ms_per_sample"], f"{speedup:.2f}x",
                         m["model_size_mb"], m["rouge1"], m["rouge2"], m["rougeLsum"], f"{drop:+.2f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
            if label == "bf16" and slice_n != n:
                rows.append(["fp32 (bf16 reference)", batch, slice_n, b["latency_ms_per_sample"], "1.00x",
                             b["model_size_mb"], b["rouge1"], b["rouge2"], b["rougeLsum"], "+0.00"])
    return rows


def bf16_slowdown(cpus: int, docs: int = 8) -> float:
    """bf16 time / fp32 time for one batch of `docs` documents (each after one warm-up call)."""
    import copy

    import torch

    from infersweep.trials import TrialSpec
    from infersweep.trials.data import eval_slice, load_examples
    from infersweep.trials.measure import pin_threads
    from infersweep.trials.models.extractive import ExtractiveSummarizer

    pin_threads(cpus)
    adapter = ExtractiveSummarizer(TrialSpec(dataset=str(SHARED_CNN), n=docs))
    batch = adapter.batches([e.document for e in eval_slice(load_examples(str(SHARED_CNN)), docs)], docs)[0]
    seconds = []
    for module in (adapter.module, copy.deepcopy(adapter.module).to(torch.bfloat16)):
        with torch.inference_mode():
            adapter.summarize_batch(batch, module)
            start = time.perf_counter()
            adapter.summarize_batch(batch, module)
            seconds.append(time.perf_counter() - start)
    return seconds[1] / seconds[0]


def quality_rows(n: int, cpus: int, out: Path) -> list[list]:
    """The fp32 summarizer, Lead-3 and the random-encoder pipeline on `n` documents (500: all)."""
    import torch
    from transformers import AutoModel

    from infersweep.trials import TrialSpec
    from infersweep.trials.data import eval_slice, load_examples
    from infersweep.trials.measure import pin_threads
    from infersweep.trials.models.extractive import ExtractiveSummarizer, lead_summary
    from infersweep.trials.quality import rouge

    pin_threads(cpus)
    examples = eval_slice(load_examples(str(SHARED_CNN)), n)
    refs = [e.summary for e in examples]
    rows = []

    model = run(dict(n=n, batch_size=8, cpus=cpus, warmup=0, repeats=1), out).metrics
    rows.append(["extractive, all-MiniLM-L6-v2 (fp32)", model["rouge1"], model["rouge2"], model["rougeLsum"]])
    lead = rouge([lead_summary(e.document) for e in examples], refs)
    rows.append(["Lead-3", lead["rouge1"], lead["rouge2"], lead["rougeLsum"]])

    adapter = ExtractiveSummarizer(TrialSpec(dataset=str(SHARED_CNN), n=n))
    torch.manual_seed(0)
    adapter.module.encoder = AutoModel.from_config(adapter.config).float().eval()  # fresh random weights
    summaries = []
    with torch.inference_mode():
        for batch in adapter.batches([e.document for e in examples], 8):
            summaries += adapter.summarize_batch(batch, adapter.module)
    rand = rouge(summaries, refs)
    rows.append(["extractive, randomly initialized encoder", rand["rouge1"], rand["rouge2"], rand["rougeLsum"]])
    for r in rows:
        print(" | ".join(f"{c:.2f}" if isinstance(c, float) else c for c in r), flush=True)
    return rows


def bf16_note(ratio: float, bf16_n: int, n: int) -> str:
    from infersweep.trials.hardware import detect

    flags = "has" if detect().cpu_has_bf16 else "lacks"
    probe = (f"A probe before the run timed bf16 at {ratio:.2f}x the fp32 time per batch (this CPU {flags} "
             "avx512_bf16/AMX).")
    if bf16_n == n:
        return probe + " bf16 therefore runs on the same slice as the other rows."
    return (probe + f" bf16 therefore runs on {bf16_n} documents only, and its fp32 reference row is "
            f"measured on the same {bf16_n} documents.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="documents for the latency rows")
    ap.add_argument("--bf16-n", type=int, default=None,
                    help="documents for bf16 (default: --n, or 8 when a probe finds bf16 over 3x slower "
                         "than fp32, as on CPUs without bf16 kernels)")
    ap.add_argument("--quality-n", type=int, default=500, help="documents for the quality-only rows")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    if shared_data_missing():
        return 0
    from infersweep.quiet import quiet_libraries

    quiet_libraries()
    machine_line = machine()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-trials-") as tmp:
        out = Path(tmp)
        ratio = bf16_slowdown(args.cpus)
        bf16_n = args.bf16_n or (8 if ratio > 3 else args.n)
        print(f"bf16 probe: bf16 takes {ratio:.2f}x the fp32 time per batch; bf16 rows use n={bf16_n}", flush=True)
        lat = latency_rows(args.n, bf16_n, args.cpus, out)
        qual = quality_rows(args.quality_n, args.cpus, out)
    minutes = (time.perf_counter() - start) / 60
    load_end = os.getloadavg()[0]
    headers = ["variant", "batch", "n", "ms/sample", "speedup vs fp32", "size MB", "ROUGE-1", "ROUGE-2",
               "ROUGE-Lsum", "ROUGE-Lsum drop %"]
    body = "\n\n".join([
        f"Extractive summarizer (all-MiniLM-L6-v2 encoder), torch eager on CPU, {args.cpus} threads. Each "
        f"row is one `run_trial`; speedup and drop are against fp32 at the same batch size on the same "
        f"documents (a deterministic subset of n of the 500; warm-up 2 batches; batch 1 timed once over "
        f"the slice, batch 8 twice). Size is the saved state dict.",
        markdown_table(headers, lat),
        bf16_note(ratio, bf16_n, args.n) + " Unstructured pruning zeroes "
        "30% of the Linear weights but keeps every shape: the same size and, on dense kernels, the same "
        "speed (differences are noise) — see the pruning section for structured pruning.",
        f"Quality on {args.quality_n} of the 500 documents (all of them at 500; otherwise a "
        f"deterministic subset), not timed:",
        markdown_table(["summarizer", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum"], qual),
        f"The random-encoder row keeps the whole pipeline (splitter, position prior, MMR) and swaps only "
        f"the encoder weights for a fresh `AutoModel.from_config` initialization: the gap to the "
        f"trained encoder is what the encoder contributes, and what quantization or pruning can lose. "
        f"Run took {minutes:.1f} min; load average at the end {load_end:.2f} (other jobs share these "
        f"{os.cpu_count()} cores, so absolute latencies move between runs; ratios within one run are the "
        f"comparable numbers).",
    ])
    print(markdown_table(headers, lat))
    print(markdown_table(["summarizer", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum"], qual))
    if not args.no_write:
        cmd = "python bench/trials.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        path = write_section("trials", "Trial knobs on CNN/DailyMail (bench/trials.py)", cmd, body, machine_line)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
