"""ONNX Runtime int8_dynamic options side by side on this CPU: the option sets of each ISA profile
(trials.runtimes.ort_recipes.ORT_INT8_BY_ISA) and Optimum's AutoQuantizationConfig choices, each
applied to the same fused MiniLM graph, timed on the extractive adapter's own sentence batches.

    .venv/bin/python bench/ort_int8.py [--n 60] [--rounds 7] [--batch-sizes 1,16] [--time-torch]

In one process, 2 intra-op threads: ORT fp32 (fused), every candidate (and torch fp32 eager with
--time-torch) run each batch size's whole pass once per round, in a shuffled order per round (interleaved, so the
load of the shared machine falls on all alike); medians over the rounds. Fidelity: cosine of each
sentence embedding to torch fp32 (mean, worst) and ROUGE-Lsum of the summaries on the documents.
Writes the `ort_int8` section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import SHARED_CNN, machine, markdown_table, shared_data_missing, write_section  # noqa: E402

TORCH, ORT_FP32 = "torch fp32 eager", "ORT fp32 (fused)"
_BASE = {"activation_type": "QUInt8", "per_channel": True}
#: name -> quantize_dynamic options (activations are u8 in every ORT dynamic recipe)
CANDIDATES = {
    "u8s8 7-bit per-channel (avx2/avx512 profile; Optimum avx512 reduce_range)":
        {**_BASE, "weight_type": "QInt8", "reduce_range": True},
    "u8u8 per-channel (Optimum avx2)": {**_BASE, "weight_type": "QUInt8", "reduce_range": False},
    "u8s8 8-bit per-channel (VNNI/arm64 profile; Optimum avx512_vnni)":
        {**_BASE, "weight_type": "QInt8", "reduce_range": False},
    "u8s8 8-bit per-tensor (Optimum avx512_vnni, per_channel=False)":
        {**_BASE, "weight_type": "QInt8", "reduce_range": False, "per_channel": False},
}


def load_documents(n: int):
    rows = [json.loads(line) for line in SHARED_CNN.read_text().splitlines()[:n]]
    return [r["document"] for r in rows], [r["summary"] for r in rows]


def build_engines(adapter, cpus: int, workdir: Path) -> dict:
    from infersweep.trials.runtimes import get_runtime
    from infersweep.trials.runtimes.onnxruntime import OrtEngine
    from infersweep.trials.runtimes.ort_recipes import quantize_dynamic
    from infersweep.trials.spec import TrialSpec

    model = adapter.prepared_model()
    engines = {TORCH: get_runtime("torch").prepare(model, TrialSpec(cpus=cpus), workdir / "torch"),
               ORT_FP32: get_runtime("onnxruntime").prepare(model, TrialSpec(runtime="onnxruntime", cpus=cpus),
                                                            workdir / "ort")}
    fused = engines[ORT_FP32].artifact_path
    spec = TrialSpec(runtime="onnxruntime", precision="int8_dynamic", cpus=cpus)
    for i, (name, options) in enumerate(CANDIDATES.items()):
        dst = workdir / f"int8-{i}" / "model.onnx"
        dst.parent.mkdir(parents=True)
        quantize_dynamic(fused, dst, model, options)
        engines[name] = OrtEngine(dst, spec, model)
    return engines


def fidelity(adapter, engines: dict, batches, references: list[str]) -> dict:
    import numpy as np

    from infersweep.trials.quality import mean_scores, rouge_per_document

    reference = np.concatenate([adapter.embed_batch(b, engines[TORCH]) for b in batches])
    out = {}
    for name, engine in engines.items():
        emb = np.concatenate([adapter.embed_batch(b, engine) for b in batches])
        cos = (emb * reference).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1))
        summaries = [s for b in batches for s in adapter.summarize_batch(b, engine)]
        rl = mean_scores(rouge_per_document(summaries, references))["rougeLsum"]
        out[name] = {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "rougeLsum": rl}
    return out


def time_rounds(adapter, engines: dict, batches_by_size: dict, rounds: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    times = {(name, b): [] for name in engines for b in batches_by_size}
    for _ in range(rounds):
        order = list(times)
        rng.shuffle(order)
        for name, b in order:
            start = time.perf_counter()
            for batch in batches_by_size[b]:
                adapter.embed_batch(batch, engines[name])
            times[(name, b)].append(time.perf_counter() - start)
    return {key: statistics.median(v) for key, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="documents (the first n of the shared file)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--time-torch", action="store_true", help="time torch fp32 eager too (slow)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if shared_data_missing():
        return 0
    import torch

    from infersweep.trials.hardware import detect
    from infersweep.trials.models.extractive import ExtractiveSummarizer
    from infersweep.trials.runtimes.ort_recipes import INT8_DYNAMIC
    from infersweep.trials.spec import TrialSpec

    torch.set_num_threads(args.cpus)
    machine_line = machine()
    documents, references = load_documents(args.n)
    adapter = ExtractiveSummarizer(TrialSpec())
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    batches = {b: adapter.batches(documents, b) for b in sizes}
    started, load_start = time.time(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ort-int8-") as tmp:
        engines = build_engines(adapter, args.cpus, Path(tmp))
        quality = fidelity(adapter, engines, batches[max(sizes)], references)
        timed = {k: e for k, e in engines.items() if args.time_torch or k != TORCH}
        medians = time_rounds(adapter, timed, batches, args.rounds)
    load_end = os.getloadavg()[0]
    headers = ["variant"] + [f"b{b} s/pass" for b in sizes] + [f"b{b} speedup" for b in sizes] + [
        "cosine mean", "cosine worst", "ROUGE-Lsum"]
    rows = []
    reference = TORCH if args.time_torch else ORT_FP32
    for name in timed:
        base = [medians[(reference, b)] for b in sizes]
        mine = [medians[(name, b)] for b in sizes]
        q = quality[name]
        rows.append([name, *mine, *[f"{t0 / t:.2f}x" for t0, t in zip(base, mine)],
                     f"{q['cos_mean']:.4f}", f"{q['cos_min']:.4f}", q["rougeLsum"]])
    sentences = sum(len(s) for batch in batches[max(sizes)] for s in batch.sentences)
    body = "\n".join([
        f"{args.n} documents of the shared CNN/DailyMail file ({sentences} sentences), the extractive "
        f"adapter's batches; {args.rounds} interleaved rounds (shuffled order), medians; speedup against "
        f"{reference} in the same run; cosine to torch fp32 eager; {args.cpus} threads. This CPU's ISA profile: "
        f"**{detect().isa}** -> int8_dynamic options {INT8_DYNAMIC}. Load average {load_start:.2f} at the "
        f"start, {load_end:.2f} at the end; {(time.time() - started) / 60:.1f} min.",
        "", markdown_table(headers, rows)])
    print(body)
    if not args.no_write:
        command = "python bench/ort_int8.py " + " ".join(argv if argv is not None else sys.argv[1:])
        print("wrote", write_section("ort_int8", "ONNX Runtime int8 options by ISA (extractive MiniLM, CPU)",
                                     command.strip(), body, machine_line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
