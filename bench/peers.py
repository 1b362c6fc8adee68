"""Peer bench: infersweep's best variants against Optimum's and Olive's best ONNX outputs, in one
harness (issue 14 item 4). Writes the `peers` section of docs/benchmarks.md.

    .venv/bin/python bench/peers.py [--rounds 7] [--docs 60] [--peers optimum,olive] [--skip-install]

The harness: the bundled all-MiniLM-L6-v2 weights; the sentence batches the extractive adapter
builds for the first `--docs` documents of the shared CNN/DailyMail file, at batch 16 and batch 1
(documents per batch; the adapter sorts their sentences by length into chunks of 64); every
variant timed over all of those chunks once per round, rounds interleaved in a shuffled order,
medians over the rounds; speedup against torch fp32 eager timed in the same rounds; cosine of each
sentence embedding to torch fp32's; ROUGE-Lsum of the adapter's summaries (its sentence selection
on the variant's embeddings, scored by trials.quality); size on disk.

infersweep's variants are built through `trials.runtimes.prepare()` (artifact cache as in
bench/runtimes.py); infeasible ones are listed with feasibility's reason. The peers are pip
installed by this bench into throwaway virtualenvs under $INFERSWEEP_PEERS_HOME (default
~/.cache/infersweep-peers; torch==2.13.0 first, then the peer) and only *produce* .onnx files there,
in a subprocess running a small script (kept under <home>/<peer>/exports/<key>, reused while the
script, packages, weights, calibration and ISA are the same); every ONNX model is then timed here, in this process, with
infersweep's ONNX Runtime session settings, so only the graph differs. A peer that cannot install
or export becomes a "failed: reason" row and the bench goes on. Nothing of the peers is vendored.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import SHARED_CNN, machine, markdown_table, shared_data_missing, write_section  # noqa: E402

BATCHES = (16, 1)
BASELINE = "torch fp32 eager"
TARGET_DROP = 1.0  # % ROUGE-Lsum drop against torch fp32
OURS = "infersweep"
#: infersweep's variants: (label, runtime, precision)
OUR_VARIANTS = (
    (BASELINE, "torch", "fp32"),
    ("onnxruntime fp32 (fused)", "onnxruntime", "fp32"),
    ("onnxruntime int8_dynamic", "onnxruntime", "int8_dynamic"),
    ("onnxruntime int8_static", "onnxruntime", "int8_static"),
    ("openvino fp32", "openvino", "fp32"),
    ("openvino int8_static (NNCF)", "openvino", "int8_static"),
    ("torchscript bf16", "torchscript", "bf16"),
    ("torch_compile bf16", "torch_compile", "bf16"),
)
PEERS_HOME = Path(os.environ.get("INFERSWEEP_PEERS_HOME", Path.home() / ".cache" / "infersweep-peers"))
TORCH_PIN = "torch==2.13.0"
CALIBRATION_SENTENCES = 128
FULL_DOCS = 60  # the harness
SLOW_LIMIT = 4.0  # x torch fp32's quality-pass time: slower variants are measured once, not in the rounds


# ---------------------------------------------------------------- pure parts (tests/bench/test_peers.py)

@dataclass
class Result:
    """One variant's measurements; `status` is "ok" or why it has none."""

    label: str
    tool: str
    status: str = "ok"
    seconds: dict[int, list[float]] = field(default_factory=dict)  # batch -> one pass per round
    size_mb: float = float("nan")
    cosine_mean: float = float("nan")
    cosine_min: float = float("nan")
    rouge_lsum: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def median(self, batch: int) -> float:
        return statistics.median(self.seconds[batch]) if self.seconds.get(batch) else float("nan")


def schedule(labels: list[str], rounds: int, seed: int = 0) -> list[list[str]]:
    """`rounds` rounds, each every label once in its own shuffled order (reproducible by seed)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        order = list(labels)
        rng.shuffle(order)
        out.append(order)
    return out


def speedup(result: Result, baseline: Result, batch: int) -> float:
    """How many times faster than the baseline at `batch` (median pass against median pass)."""
    mine, base = result.median(batch), baseline.median(batch)
    return base / mine if mine > 0 else float("nan")


def rouge_drop(result: Result, baseline: Result) -> float:
    """Relative ROUGE-Lsum drop in percent against the baseline (negative: better)."""
    return 100 * (baseline.rouge_lsum - result.rouge_lsum) / baseline.rouge_lsum


def table_rows(results: list[Result], baseline_label: str = BASELINE) -> tuple[list[str], list[list]]:
    """Headers and rows: measured variants by speedup at batch 16 (fastest first), then the rest."""
    base = next(r for r in results if r.label == baseline_label)
    headers = ["variant", "tool", "b16 s/pass", "speedup b16", "b1 s/pass", "speedup b1", "size MB",
               "cosine mean / min", "ROUGE-Lsum", "drop %"]
    measured = sorted((r for r in results if r.ok), key=lambda r: -speedup(r, base, 16))
    rows = [[r.label, r.tool, f"{r.median(16):.2f}", f"{speedup(r, base, 16):.2f}x", f"{r.median(1):.2f}",
             f"{speedup(r, base, 1):.2f}x", f"{r.size_mb:.1f}", f"{r.cosine_mean:.4f} / {r.cosine_min:.4f}",
             f"{r.rouge_lsum:.2f}", f"{rouge_drop(r, base):+.2f}"] for r in measured]
    rows += [[r.label, r.tool, r.status] + [""] * (len(headers) - 3) for r in results if not r.ok]
    return headers, rows


def _fastest(results: list[Result], base: Result, batch: int, within_drop: float | None) -> Result | None:
    pool = [r for r in results if r.ok and r.label != base.label
            and (within_drop is None or rouge_drop(r, base) <= within_drop)]
    return max(pool, key=lambda r: speedup(r, base, batch), default=None)


def target_verdict(results: list[Result], baseline_label: str = BASELINE, ours: str = OURS) -> str:
    """Whether infersweep's fastest variant within TARGET_DROP is at least as fast as the fastest
    peer variant, at each batch size: against peers within the same drop bound and against any."""
    base = next(r for r in results if r.label == baseline_label)
    lines = []
    for batch in BATCHES:
        mine = _fastest([r for r in results if r.tool == ours], base, batch, TARGET_DROP)
        peers = [r for r in results if r.tool != ours]
        bounded, anyway = _fastest(peers, base, batch, TARGET_DROP), _fastest(peers, base, batch, None)
        if mine is None:
            lines.append(f"- batch {batch}: no infersweep variant within {TARGET_DROP:g}% drop: not met")
            continue
        parts = [f"- batch {batch}: ours {mine.label} {speedup(mine, base, batch):.2f}x"]
        for what, peer in (("best peer within the bound", bounded), ("best peer at any drop", anyway)):
            if peer is None:
                parts.append(f"{what}: none measured")
                continue
            met = speedup(mine, base, batch) >= speedup(peer, base, batch)
            parts.append(f"{what}: {peer.tool} {peer.label} {speedup(peer, base, batch):.2f}x "
                         f"({rouge_drop(peer, base):+.2f}%) -> **{'met' if met else 'not met'}**")
        lines.append("; ".join(parts))
    return "\n".join(lines)


# ---------------------------------------------------------------- the harness

@dataclass
class Workload:
    adapter: object
    batches: dict[int, list]  # batch size -> the adapter's ExtractiveBatch list
    references: list[str]
    prepared: object  # PreparedModel (with the calibration slice)
    spec: object  # TrialSpec the variants start from

    def chunks(self, batch: int) -> list[dict]:
        return [chunk.inputs for b in self.batches[batch] for chunk in b.chunks]

    @property
    def sentences(self) -> int:
        return sum(len(s) for b in self.batches[16] for s in b.sentences)


def load_workload(docs: int, cpus: int) -> Workload:
    from infersweep.trials.data import load_examples
    from infersweep.trials.models.extractive import ExtractiveSummarizer
    from infersweep.trials.runner import calibration_documents
    from infersweep.trials.spec import TrialSpec

    examples = load_examples(str(SHARED_CNN))[:docs]
    spec = TrialSpec(dataset=str(SHARED_CNN), n=docs, cpus=cpus)
    adapter = ExtractiveSummarizer(spec)
    documents = [e.document for e in examples]
    batches = {b: adapter.batches(documents, b) for b in BATCHES}
    prepared = adapter.prepared_model(calibration_documents(spec))
    return Workload(adapter, batches, [e.summary for e in examples], prepared, spec)


class OnnxFileEngine:
    """A peer's .onnx file run with infersweep's session settings; mean-pools and L2-normalizes a
    token-level output in numpy (our graphs do that inside), zero token_type_ids where asked."""

    def __init__(self, path: Path, cpus: int):
        import onnxruntime as ort

        from infersweep.trials.runtimes.ort_recipes import session_options, spinning_default

        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), session_options(cpus, spinning_default()),
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]

    def __call__(self, **inputs):
        import numpy as np

        from infersweep.trials.runtimes.ort_recipes import as_numpy

        ids = as_numpy(inputs["input_ids"]).astype(np.int64)
        mask = as_numpy(inputs["attention_mask"]).astype(np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = self.session.run([self.output], {k: v for k, v in feed.items() if k in self.inputs})[0]
        out = out.astype(np.float32)
        if out.ndim == 3:
            weights = mask[..., None].astype(np.float32)
            out = (out * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def size_mb(self) -> float:
        from infersweep.trials.runtimes.base import file_size_mb

        extra = [p for p in self.path.parent.iterdir() if p.name.startswith(self.path.name) and p != self.path]
        return file_size_mb(self.path) + sum(file_size_mb(p) for p in extra)

    def close(self) -> None:
        self.session = None


def bf16_skip_reason(precision: str, forced: bool, has_bf16: bool) -> str | None:
    """Why a bf16 variant is left out here: without bf16 instructions torch emulates it (~17x slower
    than fp32 on this project's AVX2-only EPYC, ../shared/notes/cpu-measurements.md), which would
    take the bench's hours for a row known to lose."""
    if precision != "bf16" or forced or has_bf16:
        return None
    return "skipped: this CPU has no bf16 instructions (AVX512-BF16/AMX); --bf16 measures it anyway"


def our_engines(work: Workload, cache_dir: Path, bf16: bool = False) -> list[tuple[Result, object]]:
    """infersweep's variants through prepare(); an infeasible or failing one keeps its reason."""
    from infersweep.trials.hardware import detect
    from infersweep.trials.runtimes import Infeasible, prepare

    out, has_bf16 = [], detect().cpu_has_bf16
    for label, runtime, precision in OUR_VARIANTS:
        skip = bf16_skip_reason(precision, bf16, has_bf16)
        if skip:
            out.append((Result(label, OURS, status=skip), None))
            print(f"{label}: {skip}", flush=True)
            continue
        spec = type(work.spec).model_validate({**work.spec.model_dump(), "runtime": runtime, "precision": precision})
        started = time.time()
        try:
            engine = prepare(work.prepared, spec, cache_dir / spec.short_name())
            out.append((Result(label, OURS), engine))
            print(f"prepared {label} in {time.time() - started:.0f} s", flush=True)
        except Infeasible as exc:
            out.append((Result(label, OURS, status=f"infeasible: {exc}"), None))
        except Exception as exc:  # a bench row, not a crash
            out.append((Result(label, OURS, status=f"failed: {type(exc).__name__}: {str(exc)[:200]}"), None))
        if out[-1][1] is None:
            print(f"{label}: {out[-1][0].status}", flush=True)
    return out


def measure_quality(result: Result, engine, work: Workload, reference_embeddings) -> object:
    """Embeddings at batch 16 (also the warm-up), their cosine to the baseline's, ROUGE-Lsum, size."""
    import numpy as np

    from infersweep.trials.quality import rouge

    emb = np.concatenate([work.adapter.embed_batch(b, engine) for b in work.batches[16]])
    summaries = [s for b in work.batches[16] for s in work.adapter.summarize_batch(b, engine)]
    result.rouge_lsum = rouge(summaries, work.references)["rougeLsum"]
    result.size_mb = engine.size_mb()
    ref = emb if reference_embeddings is None else reference_embeddings
    cos = (emb * ref).sum(1) / np.maximum(np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    result.cosine_mean, result.cosine_min = float(cos.mean()), float(cos.min())
    return emb


def time_rounds(engines: dict[str, tuple[Result, object]], work: Workload, rounds: int, seed: int) -> None:
    """Each engine one pass over every chunk per batch size per round, rounds in shuffled order."""
    chunks = {b: work.chunks(b) for b in BATCHES}
    for i, order in enumerate(schedule(list(engines), rounds, seed)):
        for label in order:
            result, engine = engines[label]
            for batch in BATCHES:
                started = time.perf_counter()
                for inputs in chunks[batch]:
                    engine(**inputs)
                result.seconds.setdefault(batch, []).append(time.perf_counter() - started)
            print(f"  {label}: b16 {result.seconds[16][-1]:.2f} s, b1 {result.seconds[1][-1]:.2f} s", flush=True)
        print(f"round {i + 1}/{rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)


# ---------------------------------------------------------------- peers: install and export in their own venvs

OPTIMUM_SCRIPT = r'''
import json, sys, traceback
from pathlib import Path
model_dir, out, isa, calibration = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
done = {}
def step(name, fn):
    try:
        path = fn()
        done[name] = {"path": str(next(Path(path).glob("*.onnx")))}
    except Exception as exc:
        traceback.print_exc()
        done[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
from optimum.exporters.onnx import main_export
from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
def export():
    main_export(model_dir, output=out / "export", task="feature-extraction", library_name="transformers")
    return out / "export"
step("export (fp32)", export)
def optimize(level):
    def run():
        config = getattr(AutoOptimizationConfig, level)()
        ORTOptimizer.from_pretrained(out / "export").optimize(save_dir=out / level, optimization_config=config)
        return out / level
    return run
for level in ("O2", "O3", "O4"):
    step(f"ORTOptimizer {level}", optimize(level))
def quantize(src, per_channel, tag):
    def run():
        config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=per_channel)
        onnx = next(Path(src).glob("*.onnx"))
        ORTQuantizer.from_pretrained(src, file_name=onnx.name).quantize(save_dir=out / tag, quantization_config=config)
        return out / tag
    return run
for per_channel in (False, True):
    kind = "per-channel" if per_channel else "per-tensor"
    step(f"ORTQuantizer {isa} dynamic int8, {kind}", quantize(out / "export", per_channel, f"q-{kind}"))
    step(f"ORTQuantizer {isa} dynamic int8, {kind}, on O2", quantize(out / "O2", per_channel, f"q-O2-{kind}"))
import numpy as np
from onnxruntime.quantization import CalibrationMethod
from optimum.onnxruntime.configuration import CalibrationConfig
data = np.load(calibration)
edges = np.cumsum([0, *data["lengths"]])
rows = [{"input_ids": data["ids"][a:b], "attention_mask": np.ones(b - a, np.int64),
         "token_type_ids": np.zeros(b - a, np.int64)} for a, b in zip(edges[:-1], edges[1:])]
def quantize_static(per_channel, tag):
    def run():
        config = getattr(AutoQuantizationConfig, isa)(is_static=True, per_channel=per_channel)
        quantizer = ORTQuantizer.from_pretrained(out / "export", file_name="model.onnx")
        cal_config = CalibrationConfig(dataset_name="cnn-dailymail-calibration-slice", dataset_config_name="infersweep",
                                       dataset_split="calibration", dataset_num_samples=len(rows),
                                       method=CalibrationMethod.MinMax)
        ranges = quantizer.fit(dataset=rows, calibration_config=cal_config,
                               onnx_augmented_model_name=out / f"augmented-{tag}.onnx",
                               operators_to_quantize=config.operators_to_quantize)
        quantizer.quantize(save_dir=out / tag, quantization_config=config, calibration_tensors_range=ranges)
        return out / tag
    return run
for per_channel in (False, True):
    kind = "per-channel" if per_channel else "per-tensor"
    step(f"ORTQuantizer {isa} static int8 (MinMax), {kind}", quantize_static(per_channel, f"qs-{kind}"))
print("PEER_RESULT " + json.dumps(done))
'''

OLIVE_SCRIPT = r'''
import json, sys, traceback
CALIBRATION_DATASET = """
import numpy as np, torch
from olive.data.registry import Registry

@Registry.register_dataset()
def infersweep_calibration(path, **kwargs):
    data = np.load(path)
    edges = np.cumsum([0, *data["lengths"]])
    return [({"input_ids": torch.from_numpy(data["ids"][a:b]), "attention_mask": torch.ones(b - a, dtype=torch.int64),
              "token_type_ids": torch.zeros(b - a, dtype=torch.int64)}, 0) for a, b in zip(edges[:-1], edges[1:])]
"""
from pathlib import Path
model_dir, out, isa, calibration = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
from olive.workflows import run as olive_run
(out / "infersweep_calibration.py").write_text(CALIBRATION_DATASET)
done = {}
CONVERT = {"type": "OnnxConversion", "target_opset": 17}
FUSE = {"type": "OrtTransformersOptimization", "model_type": "bert", "num_heads": 12, "hidden_size": 384}
CHAINS = {
    "conversion + transformer optimization (fp32)": {"convert": CONVERT, "fuse": FUSE},
    "dynamic int8 per-channel (fused)": {"convert": CONVERT, "fuse": FUSE,
        "quantize": {"type": "OnnxDynamicQuantization", "per_channel": True, "reduce_range": isa == "avx2"}},
    "dynamic int8 per-tensor (fused)": {"convert": CONVERT, "fuse": FUSE,
        "quantize": {"type": "OnnxDynamicQuantization", "per_channel": False, "reduce_range": isa == "avx2"}},
    "static int8 QDQ per-channel, MinMax (fused)": {"convert": CONVERT, "fuse": FUSE,
        "quantize": {"type": "OnnxStaticQuantization", "data_config": "calibration", "per_channel": True}},
}
DATA = [{"name": "calibration", "user_script": str(out / "infersweep_calibration.py"),
         "load_dataset_config": {"type": "infersweep_calibration", "params": {"path": calibration}}}]
for i, (name, passes) in enumerate(CHAINS.items()):
    folder = out / f"chain{i}"
    config = {"input_model": {"type": "HfModel", "model_path": model_dir, "task": "feature-extraction"},
              "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu",
                          "execution_providers": ["CPUExecutionProvider"]}]}},
              "host": "local", "target": "local", "passes": passes, "log_severity_level": 3, "data_configs": DATA,
              "cache_dir": str(out / "cache"), "output_dir": str(folder)}
    try:
        olive_run(config)
        found = sorted(folder.rglob("*.onnx"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise RuntimeError(f"olive wrote no .onnx under {folder}")
        done[name] = {"path": str(found[-1])}
    except Exception as exc:
        traceback.print_exc()
        done[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
print("PEER_RESULT " + json.dumps(done))
'''


@dataclass(frozen=True)
class Peer:
    tool: str
    packages: tuple[str, ...]
    versions_of: tuple[str, ...]
    script: str


PEERS = {
    "optimum": Peer("Optimum", ("optimum-onnx[onnxruntime]==0.1.0", "onnxruntime==1.32.0"),
                    ("optimum", "optimum-onnx", "onnxruntime", "transformers"), OPTIMUM_SCRIPT),
    # transformers 4.57: with 5.x Olive 0.13's torchscript exporter fails ("BertModel.forward() got multiple
    # values for argument 'use_cache'"); Olive also needs requests without declaring it
    "olive": Peer("Olive", ("olive-ai==0.13.0", "onnxruntime==1.32.0", "onnx", "onnxscript", "transformers==4.57.6",
                            "requests"), ("olive-ai", "onnxruntime", "onnx", "transformers"), OLIVE_SCRIPT),
}


def isa_config() -> str:
    """Which of Optimum's AutoQuantizationConfig presets fits this CPU."""
    from infersweep.trials.hardware import detect

    flags = detect().cpu_flags
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if {"asimd", "asimddp"} & flags:
        return "arm64"
    return "avx2"


def peer_venv(name: str, peer: Peer, install: bool, run: Callable = subprocess.run) -> Path:
    """The peer's virtualenv python, installed (torch first) unless its marker says it already is."""
    venv = PEERS_HOME / name
    python, marker = venv / "bin" / "python", venv / ".infersweep-peer.json"
    wanted = json.dumps([TORCH_PIN, *peer.packages])
    if marker.exists() and marker.read_text() == wanted:
        return python
    if not install:
        raise RuntimeError(f"no installed {name} venv at {venv} (run without --skip-install)")
    shutil.rmtree(venv, ignore_errors=True)
    PEERS_HOME.mkdir(parents=True, exist_ok=True)
    for cmd in ([sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", TORCH_PIN],
                [str(python), "-m", "pip", "install", "-q", *peer.packages]):
        print("  $", " ".join(cmd[-4:]), flush=True)
        done = run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd[2:5])} failed: {_last_line(done.stderr or done.stdout)}")
    marker.write_text(wanted)
    return python


def _last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip() and not l.startswith("WARNING")]
    return (lines[-1] if lines else "no output")[:240]


def peer_versions(python: Path, peer: Peer) -> str:
    code = ("import importlib.metadata as m\nfor p in %r:\n    try: print(p, m.version(p))\n"
            "    except Exception: pass" % (peer.versions_of,))
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return ", ".join(done.stdout.split("\n")[:-1])


def write_calibration(inputs: list[dict], path: Path, limit: int = CALIBRATION_SENTENCES) -> Path:
    """The calibration slice's sentences (unpadded token ids), `limit` of them spread over all
    lengths, for the peers' static quantization: the same slice our int8_static calibrates on."""
    import numpy as np

    rows = [np.asarray(ids)[np.asarray(mask) == 1] for chunk in inputs
            for ids, mask in zip(chunk["input_ids"].numpy(), chunk["attention_mask"].numpy())]
    step = max(len(rows) // limit, 1)
    rows = rows[::step][:limit]
    np.savez(path, ids=np.concatenate(rows).astype(np.int64), lengths=np.array([len(r) for r in rows]))
    return path


def export_key(peer: Peer, model_dir: str, calibration: Path, isa: str) -> str:
    """What a peer's exports depend on: its script and packages, the weights, calibration, the ISA."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256("\0".join([peer.script, *peer.packages, TORCH_PIN, isa]).encode())
    for f in sorted(Path(model_dir).rglob("*")):
        if f.is_file():
            digest.update(f"{f.relative_to(model_dir)}:{f.stat().st_size}".encode())
    with np.load(calibration) as data:
        digest.update(data["ids"].tobytes() + data["lengths"].tobytes())
    return digest.hexdigest()[:16]


def peer_models(name: str, install: bool, model_dir: str, calibration: Path) -> tuple[dict, str]:
    """{variant: {"path"| "error"}} from the peer's script (kept beside its venv and reused while
    nothing it depends on changed), and its package versions."""
    peer = PEERS[name]
    python = peer_venv(name, peer, install)
    isa = isa_config()
    out = PEERS_HOME / name / "exports" / export_key(peer, model_dir, calibration, isa)
    if (out / "result.json").exists():
        print(f"{peer.tool}: reusing the exports in {out}", flush=True)
        return json.loads((out / "result.json").read_text()), peer_versions(python, peer)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH="")
    started = time.time()
    done = subprocess.run([str(python), "-c", peer.script, model_dir, str(out), isa, str(calibration)],
                          capture_output=True, text=True, env=env, cwd=out)
    (out / "log.txt").write_text(done.stdout + done.stderr)
    line = next((l for l in done.stdout.splitlines() if l.startswith("PEER_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"its script exited {done.returncode}: {_last_line(done.stderr)}")
    print(f"{peer.tool}: exported in {time.time() - started:.0f} s (log {out / 'log.txt'})", flush=True)
    (out / "result.json").write_text(line[len("PEER_RESULT "):])
    return json.loads(line[len("PEER_RESULT "):]), peer_versions(python, peer)


def peer_engines(names: list[str], install: bool, work: Workload, cpus: int, out: Path) -> tuple[list, list[str]]:
    from infersweep.trials.models import resolve_model

    model_dir = resolve_model("all-MiniLM-L6-v2")
    out.mkdir(parents=True, exist_ok=True)
    calibration = write_calibration(work.prepared.calibration_inputs, out / "calibration.npz")
    engines, versions = [], []
    for name in names:
        tool = PEERS[name].tool
        try:
            models, version = peer_models(name, install, model_dir, calibration)
            versions.append(f"{tool}: {version}")
        except Exception as exc:
            engines.append((Result(f"{name} (install/export)", tool, status=f"failed: {exc}"), None))
            print(f"{tool}: failed: {exc}", flush=True)
            continue
        for label, got in models.items():
            try:
                if "error" in got:
                    raise RuntimeError(got["error"])
                engines.append((Result(label, tool), OnnxFileEngine(Path(got["path"]), cpus)))
            except Exception as exc:
                engines.append((Result(label, tool, status=f"failed: {str(exc)[:240]}"), None))
    return engines, versions


# ---------------------------------------------------------------- main

def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True)
    return done.stdout.strip() or f"load average {os.getloadavg()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (medians; >= 7 for the doc)")
    parser.add_argument("--docs", type=int, default=60, help="first N documents of the shared file")
    parser.add_argument("--peers", default="optimum,olive", help="comma-separated subset of: " + ", ".join(PEERS))
    parser.add_argument("--skip-install", action="store_true", help="use the peers' venvs as installed")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="measure bf16 variants even without bf16 instructions")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    parser.add_argument("--from-json", type=Path, help="render a saved run (its --save-json) instead of running")
    parser.add_argument("--save-json", type=Path, default=ROOT / ".infersweep" / "bench-peers.json",
                        help="where the raw measurements are kept (default: %(default)s)")
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; valid: {', '.join(PEERS)}")
    if args.from_json:
        return publish(**load_run(args.from_json), args=args, argv=argv)
    if shared_data_missing():
        return 0
    os.environ.setdefault("INFERSWEEP_CACHE", str(ROOT / ".infersweep" / "cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from infersweep.trials.measure import pin_threads

    pin_threads(args.cpus)
    load_before, machine_line, started = uptime(), machine(), time.time()
    work = load_workload(args.docs, args.cpus)
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        built = our_engines(work, Path(tmp), args.bf16)
        peer_built, versions = peer_engines(peers, not args.skip_install, work, args.cpus, Path(tmp) / "peers")
        results = run_all(built + peer_built, work, args)
        for _, engine in built + peer_built:
            if engine is not None:
                engine.close()
    run = dict(results=results, sentences=work.sentences, forwards={b: len(work.chunks(b)) for b in BATCHES},
               versions=versions, load_before=load_before, load_after=uptime(), seconds=time.time() - started,
               machine_line=machine_line, docs=args.docs, rounds=args.rounds, cpus=args.cpus)
    save_run(run, args.save_json)
    return publish(**run, args=args, argv=argv)


def save_run(run: dict, path: Path) -> None:
    from dataclasses import asdict

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**run, "results": [asdict(r) for r in run["results"]]}, indent=1))
    print(f"saved the measurements to {path}", flush=True)


def load_run(path: Path) -> dict:
    run = json.loads(Path(path).read_text())
    run["results"] = [Result(**{**r, "seconds": {int(b): v for b, v in r["seconds"].items()}})
                      for r in run["results"]]
    run["forwards"] = {int(b): v for b, v in run["forwards"].items()}
    return run


def publish(results, sentences, forwards, versions, load_before, load_after, seconds, machine_line, docs, rounds,
            cpus, args, argv) -> int:
    body = render(results, sentences, forwards, docs, rounds, cpus, versions, load_before, load_after, seconds)
    print(body)
    if not args.no_write:
        command = f"python bench/peers.py --docs {docs} --rounds {rounds}"
        path = write_section("peers", "Peers: Optimum and Olive against infersweep (extractive MiniLM, CPU)",
                             command.strip(), body, machine_line)
        print(f"wrote {path}")
    return 0


def too_slow(seconds: float, baseline_seconds: float, limit: float = SLOW_LIMIT) -> str | None:
    """Why a variant stays out of the rounds: its quality pass took over `limit` x the baseline's."""
    if seconds <= limit * baseline_seconds:
        return None
    return (f"too slow: {seconds / baseline_seconds:.1f}x torch fp32's time in the batch-16 quality pass "
            f"(over {limit:g}x), left out of the rounds")


def run_all(built: list, work: Workload, args) -> list[Result]:
    """Quality (and warm-up) of each engine against the baseline's embeddings, then the rounds."""
    base_result, base_engine = built[0]
    started = time.perf_counter()
    reference = measure_quality(base_result, base_engine, work, None)
    base_seconds = time.perf_counter() - started
    print(f"quality {base_result.label}: ROUGE-Lsum {base_result.rouge_lsum:.2f} in {base_seconds:.1f} s", flush=True)
    for result, engine in built[1:]:
        if engine is not None:
            try:
                started = time.perf_counter()
                measure_quality(result, engine, work, reference)
                seconds = time.perf_counter() - started
                print(f"quality {result.label}: ROUGE-Lsum {result.rouge_lsum:.2f}, cosine {result.cosine_mean:.4f} "
                      f"in {seconds:.1f} s", flush=True)
                result.status = too_slow(seconds, base_seconds) or "ok"
            except Exception as exc:  # a graph that loads but cannot run these inputs
                result.status = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    runnable = {r.label: (r, e) for r, e in built if r.ok and e is not None}
    time_rounds(runnable, work, args.rounds, args.seed)
    return [r for r, _ in built]


def render(results: list[Result], sentences: int, forwards: dict[int, int], docs: int, rounds: int, cpus: int,
           versions: list[str], load_before: str, load_after: str, seconds: float) -> str:
    headers, rows = table_rows(results)
    notes = (f"The first {docs} documents of the shared CNN/DailyMail dev file: {sentences} sentences, "
             f"{forwards[16]} forwards at batch 16 and {forwards[1]} at batch 1 (documents per batch; the "
             f"extractive adapter's length-sorted chunks of up to 64 sentences). {rounds} interleaved rounds "
             f"in shuffled order; `s/pass` is the median seconds for all chunks; speedup against torch fp32 "
             f"eager in the same rounds. Cosine: each sentence embedding against torch fp32's (mean / worst); "
             f"ROUGE-Lsum: the adapter's sentence selection on the variant's embeddings (batch 16), "
             f"trials.quality; drop relative to torch fp32. {cpus} threads for every engine. "
             f"infersweep's variants are built by `trials.runtimes.prepare()`; every peer .onnx file is produced "
             f"in the peer's own throwaway venv and timed here with infersweep's ONNX Runtime session settings "
             f"(same onnxruntime, intra-op threads, no spinning), so only the graph differs (peer graphs output "
             f"token states: mean pooling and L2 normalization run in numpy, ours inside the graph). Optimum's "
             f"quantization preset: `AutoQuantizationConfig.{isa_config()}` (this CPU's ISA). "
             f"Total {seconds / 60:.1f} min.")
    lines = [notes, "", markdown_table(headers, rows), "",
             f"**Target** (infersweep's fastest variant within {TARGET_DROP:g}% ROUGE-Lsum drop at least as fast as "
             f"the fastest peer variant):", target_verdict(results), "",
             "Peer versions: " + ("; ".join(versions) or "none installed"), "",
             f"Machine load (this bench included): `uptime` before: {load_before}; after: {load_after}."]
    busiest = max(load_averages(load_before) + load_averages(load_after), default=0.0)
    if busiest > 2 * cpus:
        lines += ["", f"**Read with care:** a load average of {busiest:.0f} on this {cpus}-thread run means the "
                     f"engines got a small, varying share of the cores; ratios from interleaved rounds are the "
                     f"least affected numbers, absolute seconds are not comparable with a quiet machine's."]
    if docs < FULL_DOCS:
        lines += ["", f"**Reduced run:** {docs} of the harness's {FULL_DOCS} documents; the full run is "
                      f"`python bench/peers.py --docs {FULL_DOCS} --rounds 7` on a quiet machine."]
    return "\n".join(lines)


def load_averages(uptime_line: str) -> list[float]:
    """The 1/5/15-minute load averages in an `uptime` line (empty if it has none)."""
    import re

    found = re.search(r"load averages?:\s*([\d.]+),?\s+([\d.]+),?\s+([\d.]+)", uptime_line)
    return [float(x) for x in found.groups()] if found else []


if __name__ == "__main__":
    raise SystemExit(main())
