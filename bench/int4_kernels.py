"""Benchmark: which int4 weight-only kernel runs an LLM on this CPU (issue 13, item 3).

SmolLM2-135M-Instruct (`smollm2-135m-instruct`) on real prompts (the causal task's chat template
around the first documents of the bundled sample set, left-padded, cut to --max-input-tokens):
time to the first token (the prefill) and time per further token, at each batch size, for

    torch fp32                      the reference (torch eager)
    bitsandbytes NF4                torch eager int4_weight, infersweep's recipe (bitsandbytes' CPU backend)
    torchao int4 (tinygemm CPU)     torchao's PrototypeInt4WeightOnlyConfig, groups of 32: the
                                    `_weight_int4pack_mm_for_cpu` kernel; torchao is installed by the
                                    bench into a throwaway folder (nothing of it is a dependency)
    onnxruntime fp32                the ORT decoder graph with past key/values, infersweep's recipe
    onnxruntime MatMulNBits int4    onnxruntime int4_weight, infersweep's recipe (blocks of 32, int8 compute)

each through the same `generate` call the causal adapter makes (greedy, KV cache). Rounds are
interleaved, medians reported; tokens equal to torch fp32's show how far each kernel's rounding
moves greedy decoding.

    .venv/bin/python bench/int4_kernels.py [--batch-sizes 1,8] [--new-tokens 16] [--rounds 3]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import machine, markdown_table, write_section  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
MODEL = "smollm2-135m-instruct"
TORCHAO = "torchao==0.18.0"
HEADERS = ["kernel", "batch", "TTFT ms", "ms per token", "vs torch fp32 per token", "size MiB",
           "tokens equal to fp32's", "notes"]


def _spec(runtime: str, precision: str, args):
    from infersweep.trials import TrialSpec

    return TrialSpec(model=MODEL, task="causal", runtime=runtime, precision=precision, cpus=args.cpus,
                     causal={"max_new_tokens": args.new_tokens + 1, "max_input_tokens": args.max_input_tokens})


def _recipe_engine(runtime: str, precision: str, args, workdir: Path):
    """An engine built by infersweep's own recipe (runtimes.prepare), with its size."""
    from infersweep.trials import runtimes
    from infersweep.trials.models.causal import CausalSummarizer

    spec = _spec(runtime, precision, args)
    adapter = CausalSummarizer(spec)
    engine = runtimes.prepare(adapter.prepared_model(), spec, workdir / f"{runtime}-{precision}")
    return engine, engine.size_mb()


def _torchao_engine(args, workdir: Path):
    """torch eager with torchao's CPU int4 weight-only Linear (groups of 32), or a reason it cannot run."""
    try:
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig
        from torchao.quantization import quantize_
    except ImportError as exc:
        return None, f"torchao not importable: {exc}"
    from infersweep.trials.models.causal import CausalSummarizer
    from infersweep.trials.runtimes.torch_eager import TorchEngine

    module = copy.deepcopy(CausalSummarizer(_spec("torch", "fp32", args)).module).eval()
    quantize_(module, PrototypeInt4WeightOnlyConfig(group_size=32))
    return TorchEngine(module, "cpu", None), "–"


def _install_torchao(folder: Path) -> str | None:
    """pip install torchao (no dependencies) into `folder` and put it on sys.path; a reason on failure."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder),
                           TORCHAO], capture_output=True, text=True)
    if done.returncode:
        return f"pip install {TORCHAO} failed: {done.stderr.strip()[-300:]}"
    sys.path.insert(0, str(folder))
    return None


def _timed_generate(adapter, engine, batch, new_tokens: int) -> tuple[float, list[list[int]]]:
    start = time.perf_counter()
    out = engine.generate(**batch.inputs, max_new_tokens=new_tokens, do_sample=False, num_beams=1, use_cache=True,
                          pad_token_id=adapter.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    seconds = time.perf_counter() - start
    new = out[:, batch.inputs["input_ids"].shape[1]:].cpu().tolist()
    return seconds, new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--new-tokens", type=int, default=16, help="tokens timed after the first")
    ap.add_argument("--max-input-tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--no-torchao", action="store_true", help="leave torchao out (no install)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    from infersweep.quiet import quiet_libraries

    quiet_libraries()
    import torch

    from infersweep.trials.data import load_examples
    from infersweep.trials.measure import pin_threads
    from infersweep.trials.models.causal import CausalSummarizer

    pin_threads(args.cpus)
    torch.set_num_threads(args.cpus)
    machine_line, started = machine(), time.perf_counter()
    documents = [e.document for e in load_examples("sample", "document", "summary")]
    adapter = CausalSummarizer(_spec("torch", "fp32", args))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-int4-") as tmp:
        tmp = Path(tmp)
        engines, notes = {}, {}
        for name, runtime, precision in (("torch fp32", "torch", "fp32"),
                                         ("bitsandbytes NF4 (torch int4_weight)", "torch", "int4_weight"),
                                         ("onnxruntime fp32", "onnxruntime", "fp32"),
                                         ("onnxruntime MatMulNBits int4 (int4_weight)", "onnxruntime", "int4_weight")):
            engines[name] = _recipe_engine(runtime, precision, args, tmp)
        if not args.no_torchao:
            reason = _install_torchao(tmp / "torchao")
            engine, size = (None, reason) if reason else _torchao_engine(args, tmp)
            if engine is None:
                notes["torchao int4 (tinygemm CPU)"] = size
            else:
                engines["torchao int4 (tinygemm CPU)"] = (engine, size)
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            batch = adapter.batches(documents[:batch_size], batch_size)[0]
            first, full, tokens = {n: [] for n in engines}, {n: [] for n in engines}, {}
            for _ in range(args.rounds):
                for name, (engine, _) in engines.items():  # interleaved: every kernel once per round
                    seconds, _ = _timed_generate(adapter, engine, batch, 1)
                    first[name].append(seconds)
                    seconds, new = _timed_generate(adapter, engine, batch, args.new_tokens + 1)
                    full[name].append(seconds)
                    tokens[name] = new
            reference = tokens["torch fp32"]
            per_token = {n: (statistics.median(full[n]) - statistics.median(first[n])) / args.new_tokens
                         for n in engines}
            for name, (engine, size) in engines.items():
                pairs = [(a, b) for ra, rb in zip(tokens[name], reference) for a, b in zip(ra, rb)]
                equal = sum(a == b for a, b in pairs)
                rows.append([name, batch_size, 1000 * statistics.median(first[name]), 1000 * per_token[name],
                             f"{per_token['torch fp32'] / per_token[name]:.2f}x", size,
                             f"{equal} of {len(pairs)}", ""])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
            for name, why in notes.items():
                rows.append([name, batch_size, "–", "–", "–", "–", "–", why])
        for engine, _ in engines.values():
            engine.close()
    table = markdown_table(HEADERS, rows)
    print(table)
    body = "\n\n".join([
        f"SmolLM2-135M-Instruct, the first documents of the bundled sample set as chat-template prompts "
        f"(cut to {args.max_input_tokens} tokens, left-padded), greedy with the KV cache through each engine's "
        f"`generate`; {args.cpus} threads; {args.rounds} interleaved rounds, medians. TTFT: `generate` of one "
        f"token (the prefill); ms per token: (`generate` of {args.new_tokens + 1} tokens - TTFT) / "
        f"{args.new_tokens}. Tokens equal to torch fp32's: position by position over the batch's rows. Size: "
        "the engine's artifact (torchao's quantized module is not saved).",
        table,
        f"Run took {(time.perf_counter() - started) / 60:.1f} min; load average at the end {os.getloadavg()[0]:.2f}.",
    ])
    if not args.no_write:
        cmd = "python bench/int4_kernels.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        path = write_section("int4-kernels", "int4 weight-only kernels for an LLM on CPU (bench/int4_kernels.py)",
                             cmd, body, machine_line)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
