"""Benchmark: seq2seq generation on torch vs ONNX Runtime (encoder + decoder-with-past graphs).

No seq2seq checkpoint can be downloaded here, so the model is BART-base-sized (6+6 layers,
d_model 768, 12 heads, FFN 3072, the bundled MiniLM tokenizer's 30,522-token vocabulary) with
random weights, saved with save_pretrained and loaded through the same from_pretrained(path) code
a user's model goes through. Random weights say nothing about ROUGE, but the work per token is
the real model's: every variant decodes exactly --new-tokens tokens (min = max), so the timings
compare runtimes, not output lengths. Tokens of the ORT fp32 output are compared with torch's.

    .venv/bin/python bench/seq2seq.py [--docs 4] [--new-tokens 32] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import machine, markdown_table, write_section  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VARIANTS = (("torch", "fp32"), ("torch", "int8_dynamic"), ("onnxruntime", "fp32"),
            ("onnxruntime", "int8_dynamic"), ("onnxruntime", "int4_weight"))
DECODING = ((1, "greedy"), (4, "4 beams"))


def build_model(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    from infersweep.trials.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = BartConfig(vocab_size=tokenizer.vocab_size, d_model=768, encoder_layers=6, decoder_layers=6,
                        encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                        decoder_ffn_dim=3072, max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        decoder_start_token_id=tokenizer.sep_token_id, forced_eos_token_id=None)
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=4, help="documents per batch (bundled sample set)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--max-input-tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    from infersweep.quiet import quiet_libraries

    quiet_libraries()
    from infersweep.trials import TrialSpec
    from infersweep.trials.data import load_examples
    from infersweep.trials.measure import pin_threads
    from infersweep.trials.models.seq2seq import Seq2SeqSummarizer
    from infersweep.trials.runtimes import get_runtime

    machine_line = machine()
    pin_threads(args.cpus)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-seq2seq-") as tmp:
        os.environ["INFERSWEEP_CACHE"] = str(Path(tmp) / "cache")
        model = str(build_model(Path(tmp) / "bart-base-random"))
        base = dict(model=model, task="seq2seq", cpus=args.cpus,
                    generation={"max_input_tokens": args.max_input_tokens})
        adapter = Seq2SeqSummarizer(TrialSpec(**base))
        batch = adapter.batches([e.document for e in load_examples("sample")[:args.docs]], args.docs)[0]
        engines, prepare_s, sizes = {}, {}, {}
        for runtime, precision in VARIANTS:
            spec = TrialSpec(**base, runtime=runtime, precision=precision)
            start = time.perf_counter()
            fresh = Seq2SeqSummarizer(spec)  # the torch runtime converts its module in place
            engine = get_runtime(runtime).prepare(fresh.prepared_model(), spec, Path(tmp) / f"{runtime}-{precision}")
            prepare_s[(runtime, precision)] = time.perf_counter() - start
            sizes[(runtime, precision)] = engine.size_mb()
            engines[(runtime, precision)] = engine
            print(f"prepared {runtime} {precision} in {prepare_s[(runtime, precision)]:.1f} s", flush=True)
        rows = []
        for beams, label in DECODING:
            kwargs = dict(num_beams=beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                          no_repeat_ngram_size=3, length_penalty=1.0, do_sample=False)
            outputs = {key: e.generate(**batch.inputs, **kwargs) for key, e in engines.items()}  # warm-up
            times = {key: [] for key in engines}
            for _ in range(args.rounds):
                for key in random.sample(list(engines), len(engines)):
                    start = time.perf_counter()
                    engines[key].generate(**batch.inputs, **kwargs)
                    times[key].append((time.perf_counter() - start) * 1000)
            ref_ms = statistics.median(times[("torch", "fp32")])
            reference = outputs[("torch", "fp32")]
            for key, samples in times.items():
                same = _token_agreement(outputs[key], reference)
                ms = statistics.median(samples)
                rows.append([key[0], key[1], label, ms, ms / args.docs, f"{ref_ms / ms:.2f}x", sizes[key],
                             prepare_s[key], f"{100 * same:.0f}%"])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    minutes = (time.perf_counter() - started) / 60
    headers = ["runtime", "precision", "decoding", "ms per batch", "ms per document", "speedup vs torch fp32",
               "size MiB", "prepare s", "tokens equal to torch fp32"]
    table = markdown_table(headers, rows)
    print(table)
    body = "\n\n".join([
        f"BART-base-sized seq2seq model with random weights (6+6 layers, d_model 768, 30,522-token "
        f"vocabulary), saved and loaded with save_pretrained/from_pretrained; a batch of {args.docs} bundled "
        f"sample documents (up to {args.max_input_tokens} input tokens), exactly {args.new_tokens} new tokens "
        f"per document (min = max new tokens, no-repeat 3-grams), {args.cpus} threads. Median of "
        f"{args.rounds} interleaved rounds after one warm-up. `prepare s` includes the ONNX export and "
        f"quantization (cold cache). Token equality is against torch fp32; quantized variants of a random "
        f"model diverge quickly, which says nothing about a trained model's ROUGE (bench/runtimes.py "
        f"measures ROUGE on real data for the extractive model).",
        table,
        f"Run took {minutes:.1f} min; load average at the end {os.getloadavg()[0]:.2f}.",
    ])
    if not args.no_write:
        cmd = "python bench/seq2seq.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        path = write_section("seq2seq", "Seq2seq generation: torch vs ONNX Runtime (bench/seq2seq.py)", cmd, body,
                             machine_line)
        print(f"wrote {path}")
    return 0


def _token_agreement(ids, reference) -> float:
    rows = min(len(ids), len(reference))
    width = min(ids.shape[1], reference.shape[1])
    return float((ids[:rows, :width] == reference[:rows, :width]).float().mean())


if __name__ == "__main__":
    raise SystemExit(main())
