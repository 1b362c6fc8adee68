"""ONNX Runtime: export -> transformers fusions -> precision -> InferenceSession.

The pipeline, each step a cache entry keyed on the one before it:

    export   torch.onnx (eager attention, dynamic batch/sequence axes)        plain.onnx
    fuse     onnxruntime.transformers optimizer (Attention, EmbedLayerNorm,    model.onnx
             SkipLayerNorm, BiasGelu for BERT-family encoders)
    quantize per precision, on the fused graph:                                model.onnx
             int8_dynamic  quantize_dynamic (QAttention, DynamicQuantizeMatMul), options by the
                           CPU's ISA profile (ort_recipes.ORT_INT8_BY_ISA): per-channel weights
                           (per-tensor loses ~4% cosine), s8, 7-bit where there is no VNNI
             int8_static   QDQ, MinMax per-channel, calibrated on the calibration slice;
                           MatMuls fed by GELU stay float (their outliers break the scale)
             int4_weight   MatMulNBits, 4-bit blocks of 32, int8 compute (accuracy_level 4)
             fp16 (CUDA)   float16 graph, float32 inputs/outputs

Sessions use ORT_ENABLE_ALL, intra-op threads = the trial's CPUs, one inter-op thread, and
thread spinning off (on a shared or oversubscribed machine spinning threads steal the cores
the compute threads need). On CUDA: CUDAExecutionProvider with IO binding on torch tensors.

This pipeline is the extractive task's (one encoder graph); seq2seq models (encoder, first decoder
step, decoder with past, driven by Hugging Face's generate) are built in onnx_seq2seq.py.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Recipe, Runtime, Unsupported, file_size_mb, recipe_for
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions
from infersweep.trials.runtimes.onnx_causal_export import causal_recipes
from infersweep.trials.runtimes.onnx_export import export_entry
from infersweep.trials.runtimes.ort_recipes import (FP16, GPU_HINT, INT4_WEIGHT, INT8_DYNAMIC, INT8_STATIC, ORT_LIBS,
                                         as_numpy, calibration_fingerprint, convert_fp16, cuda_index,
                                         default_providers, np_dtype, quantize_dynamic, quantize_int4,
                                         quantize_static, session_options, spinning_default)

class OrtEngine:
    """Runs an ONNX model; inputs are torch tensors (or arrays), output is [batch, hidden]."""

    def __init__(self, path: Path, spec, model: PreparedModel, cache_info: dict | None = None,
                 providers: list | None = None):
        import onnxruntime as ort

        self.artifact_path = Path(path)
        self.device = spec.device
        self.cache_info = dict(cache_info or {})
        self.output_name = model.output_names[0]
        spinning = spinning_default()
        so = session_options(spec.cpus, spinning=spinning)
        self.cache_info.update(intra_op_threads=spec.cpus, thread_spinning=spinning)
        providers = providers or default_providers(spec.device)
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if wanted not in self.session.get_providers():
            raise RuntimeError(f"onnxruntime has no {wanted} here; " + GPU_HINT)
        self.cache_info["provider"] = wanted
        self.input_names = [i.name for i in self.session.get_inputs()]
        width = self.session.get_outputs()[0].shape[-1]  # the embedding width (pruning keeps it)
        self.output_width = width if isinstance(width, int) else model.hidden_size

    def __call__(self, **inputs):
        if self.device == "cuda":
            return self._run_cuda(inputs)
        feed = {name: as_numpy(inputs[name]) for name in self.input_names}
        return self.session.run([self.output_name], feed)[0]

    def _run_cuda(self, inputs):
        """IO binding: inputs and output stay on the GPU as torch tensors (no host copies)."""
        import torch

        binding = self.session.io_binding()
        keep = []
        for name in self.input_names:
            t = inputs[name]
            t = (t if isinstance(t, torch.Tensor) else torch.as_tensor(t)).to("cuda").contiguous()
            keep.append(t)
            binding.bind_input(name, "cuda", cuda_index(), np_dtype(t), list(t.shape), t.data_ptr())
        batch = keep[0].shape[0]
        out = torch.empty((batch, self.output_width), dtype=torch.float32, device="cuda")
        binding.bind_output(self.output_name, "cuda", cuda_index(), np_dtype(out), list(out.shape),
                            out.data_ptr())
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.session = None


def _ort_recipes(*precisions):
    return {p: RECIPES[p] for p in precisions}


RECIPES = {P.FP32: Recipe(), P.INT8_DYNAMIC: Recipe(quantize_dynamic, INT8_DYNAMIC),
           P.INT8_STATIC: Recipe(quantize_static, INT8_STATIC), P.INT4_WEIGHT: Recipe(quantize_int4, INT4_WEIGHT),
           P.FP16: Recipe(convert_fp16, FP16)}
_NO_DECODER_CALIBRATION = Unsupported(
    "static calibration of the decoder graphs needs recorded decoder states (past key/values), which "
    "nothing collects yet: use int8_dynamic (int8 weights, activations quantized at run time) on "
    "onnxruntime, or runtime 'torch'")
_SEQ2SEQ_INT4_CPU_ONLY = Unsupported("the seq2seq MatMulNBits graphs are built and checked on CPU only: use "
                                     "fp16 on cuda, or int4_weight on cpu")


class OnnxRuntimeRuntime(Runtime):
    name = "onnxruntime"
    support = {
        ("extractive", "cpu"): _ort_recipes(P.FP32, P.INT8_DYNAMIC, P.INT8_STATIC, P.INT4_WEIGHT),
        ("extractive", "cuda"): _ort_recipes(P.FP32, P.FP16, P.INT4_WEIGHT),
        # seq2seq: three graphs, see onnx_seq2seq.py
        ("seq2seq", "cpu"): {**_ort_recipes(P.FP32, P.INT8_DYNAMIC, P.INT4_WEIGHT),
                             P.INT8_STATIC: _NO_DECODER_CALIBRATION},
        ("seq2seq", "cuda"): {**_ort_recipes(P.FP32, P.FP16), P.INT8_STATIC: _NO_DECODER_CALIBRATION,
                              P.INT4_WEIGHT: _SEQ2SEQ_INT4_CPU_ONLY},
        # causal: one decoder graph with past key/values, see onnx_causal_export.py
        ("causal", "cpu"): causal_recipes("cpu"),
        ("causal", "cuda"): causal_recipes("cuda"),
    }
    caches_artifacts = True
    requires = (("onnxruntime", "pip install onnxruntime (CPU) or " + GPU_HINT),
                ("onnx", "pip install onnx"))

    def unavailable_reason(self, spec, hardware) -> str | None:
        if spec.device == "cuda" and not library_versions("onnxruntime-gpu"):
            return ("onnxruntime on CUDA needs the onnxruntime-gpu package (only the CPU build is "
                    f"installed): {GPU_HINT}")
        return None

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        from infersweep.trials.profile import ort_operators

        return ort_operators(engine, spec, run, trace)

    def prepare(self, model: PreparedModel, spec, workdir: Path):
        log = CacheLog()
        recipe = recipe_for(self, spec)
        if spec.task == "causal":
            from infersweep.trials.runtimes.onnx_causal import OrtCausalEngine
            from infersweep.trials.runtimes.onnx_causal_export import build_causal_graph

            folder = build_causal_graph(model, spec.precision, recipe, ArtifactCache(), log)
            return OrtCausalEngine(folder, spec, model, log.info())
        if spec.task == "seq2seq":
            from infersweep.trials.runtimes.onnx_seq2seq import OrtSeq2SeqEngine
            from infersweep.trials.runtimes.onnx_seq2seq_export import build_seq2seq_graphs

            folder = build_seq2seq_graphs(model, spec.precision, recipe, ArtifactCache(), log)
            return OrtSeq2SeqEngine(folder, spec, model, _artifact_info(log, recipe))
        path = build_ort_model(model, spec.precision, recipe, ArtifactCache(), log)
        return OrtEngine(path, spec, model, _artifact_info(log, recipe))


def _artifact_info(log: CacheLog, recipe: Recipe) -> dict:
    """The cache steps, and the precision step's options (int8: the CPU's ISA profile and what it chose)."""
    return {**log.info(), **({"quantization": dict(recipe.knobs)} if recipe.knobs else {})}


def build_ort_model(model: PreparedModel, precision: str, recipe: Recipe, cache: ArtifactCache,
                    log: CacheLog) -> Path:
    """Path of the ONNX file that runs `precision` by `recipe` (built or taken from the cache)."""
    from infersweep.trials.runtimes.onnx_export import fuse_transformer

    exported = export_entry(model, cache, log)
    versions = library_versions(*ORT_LIBS)
    fuse_parts = {"export": exported.key, "model_type": model.model_type, "heads": model.num_heads,
                  "hidden": model.hidden_size, "versions": versions}
    fused = log.add("fuse", cache.get_or_build(
        "ort-fused", fuse_parts,
        lambda d: fuse_transformer(exported.file("plain.onnx"), d / "model.onnx", model)))
    if recipe.build is None:
        return fused.file("model.onnx")
    parts = {"fused": fused.key, "precision": str(precision), "knobs": dict(recipe.knobs), "versions": versions}
    if precision == "int8_static":
        parts["calibration"] = calibration_fingerprint(model)
    src = fused.file("model.onnx")
    entry = log.add(str(precision), cache.get_or_build(
        f"ort-{precision}", parts, lambda d: recipe.build(src, d / "model.onnx", model)))
    return entry.file("model.onnx")
