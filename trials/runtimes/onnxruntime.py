"""ONNX Runtime: export -> transformers fusions -> precision -> InferenceSession.

The pipeline, each step a cache entry keyed on the one before it:

    export   torch.onnx (eager attention, dynamic batch/sequence axes)        plain.onnx
    fuse     onnxruntime.transformers optimizer (Attention, EmbedLayerNorm,    model.onnx
             SkipLayerNorm, BiasGelu for BERT-family encoders)
    quantize per precision, on the fused graph:                                model.onnx
             int8_dynamic  quantize_dynamic, per-channel int8 weights (QAttention,
                           DynamicQuantizeMatMul); per-tensor weights lose ~4% cosine
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

import contextlib
import logging
import os
import warnings
from pathlib import Path

from trials.runtimes.base import PreparedModel, file_size_mb
from trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint

GPU_HINT = "pip install 'infersweep[gpu]' (onnxruntime-gpu instead of onnxruntime)"
ORT_LIBS = ("torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu")
#: the precision steps' knobs (part of their cache keys)
#: CPU features with an int8 dot product (u8 x s8 summed in int32); without one (AVX2 only), ORT's
#: u8s8 kernels add pairs in int16 (vpmaddubsw), which saturates with 8-bit weights: those CPUs
#: need 7-bit weights (`reduce_range`). Measured on an AVX2-only EPYC: tiny T5 int8_dynamic logits
#: at cosine 0.990 to fp32 with 8-bit weights.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def needs_reduce_range(cpu_flags=None) -> bool:
    """Whether int8 weights must use 7 bits on this CPU (no int8 dot-product instruction)."""
    from trials.hardware import detect

    flags = detect().cpu_flags if cpu_flags is None else frozenset(cpu_flags)
    return not (flags & INT8_DOT_FLAGS)


INT8_DYNAMIC = {"per_channel": True, "weight_type": "QInt8", "reduce_range": needs_reduce_range()}
INT8_STATIC = {"format": "QDQ", "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
               "calibrate_method": "MinMax", "op_types": ["MatMul"], "exclude": "gelu-fed MatMul"}
INT4_WEIGHT = {"bits": 4, "block_size": 32, "symmetric": True, "accuracy_level": 4}


def session_options(threads: int, spinning: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    flag = "1" if spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", flag)
    so.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return so


class OrtEngine:
    """Runs an ONNX model; inputs are torch tensors (or arrays), output is [batch, hidden]."""

    def __init__(self, path: Path, spec, model: PreparedModel, cache_info: dict | None = None,
                 providers: list | None = None):
        import onnxruntime as ort

        self.artifact_path = Path(path)
        self.device = spec.device
        self.cache_info = dict(cache_info or {})
        self.output_name = model.output_names[0]
        spinning = _spinning_default()
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
        feed = {name: _as_numpy(inputs[name]) for name in self.input_names}
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
            binding.bind_input(name, "cuda", _cuda_index(), _np_dtype(t), list(t.shape), t.data_ptr())
        batch = keep[0].shape[0]
        out = torch.empty((batch, self.output_width), dtype=torch.float32, device="cuda")
        binding.bind_output(self.output_name, "cuda", _cuda_index(), _np_dtype(out), list(out.shape),
                            out.data_ptr())
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.session = None


def default_providers(device: str) -> list:
    if device == "cuda":
        return [("CUDAExecutionProvider", {"device_id": _cuda_index()}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeRuntime:
    name = "onnxruntime"
    precisions = {
        "cpu": ("fp32", "int8_dynamic", "int8_static", "int4_weight"),
        "cuda": ("fp32", "fp16", "int4_weight"),
    }
    tasks = ("extractive", "seq2seq")  # seq2seq: three graphs, see onnx_seq2seq.py
    caches_artifacts = True
    requires = (("onnxruntime", "pip install onnxruntime (CPU) or " + GPU_HINT),
                ("onnx", "pip install onnx"))

    def unavailable_reason(self, spec, hardware) -> str | None:
        """A reason beyond the generic checks (for feasibility), or None."""
        if spec.device == "cuda" and not library_versions("onnxruntime-gpu"):
            return ("onnxruntime on CUDA needs the onnxruntime-gpu package (only the CPU build is "
                    f"installed): {GPU_HINT}")
        if spec.task == "seq2seq":
            from trials.runtimes.onnx_seq2seq import unavailable_reason

            return unavailable_reason(spec)
        return None

    def prepare(self, model: PreparedModel, spec, workdir: Path):
        log = CacheLog()
        if spec.task == "seq2seq":
            from trials.runtimes.onnx_seq2seq import OrtSeq2SeqEngine, build_seq2seq_graphs

            folder = build_seq2seq_graphs(model, spec.precision, spec.device, ArtifactCache(), log)
            return OrtSeq2SeqEngine(folder, spec, model, log.info())
        path = build_ort_model(model, spec.precision, spec.device, ArtifactCache(), log)
        return OrtEngine(path, spec, model, log.info())


def export_entry(model: PreparedModel, cache: ArtifactCache, log: CacheLog):
    """The plain ONNX export (standard ops only; TensorRT builds from it too)."""
    from trials.runtimes.onnx_export import OPSET, export_onnx

    parts = {"model": model_fingerprint(model.module), "inputs": list(model.input_names),
             "outputs": list(model.output_names), "axes": model.dynamic_axes, "opset": OPSET,
             "versions": library_versions("torch", "transformers", "onnx")}
    return log.add("export", cache.get_or_build("onnx-export", parts,
                                                lambda d: export_onnx(model, d / "plain.onnx")))


def build_ort_model(model: PreparedModel, precision: str, device: str, cache: ArtifactCache,
                    log: CacheLog) -> Path:
    """Path of the ONNX file that runs `precision` on `device` (built or taken from the cache)."""
    from trials.runtimes.onnx_export import fuse_transformer

    exported = export_entry(model, cache, log)
    versions = library_versions(*ORT_LIBS)
    fuse_parts = {"export": exported.key, "model_type": model.model_type, "heads": model.num_heads,
                  "hidden": model.hidden_size, "versions": versions}
    fused = log.add("fuse", cache.get_or_build(
        "ort-fused", fuse_parts,
        lambda d: fuse_transformer(exported.file("plain.onnx"), d / "model.onnx", model)))
    if precision == "fp32":
        return fused.file("model.onnx")
    builders = {"int8_dynamic": (INT8_DYNAMIC, _quantize_dynamic),
                "int8_static": (INT8_STATIC, _quantize_static),
                "int4_weight": (INT4_WEIGHT, _quantize_int4),
                "fp16": ({"keep_io_types": True}, _convert_fp16)}
    if precision not in builders:
        raise ValueError(f"onnxruntime has no {precision} recipe")
    knobs, builder = builders[precision]
    parts = {"fused": fused.key, "precision": precision, "knobs": knobs, "versions": versions}
    if precision == "int8_static":
        parts["calibration"] = _calibration_fingerprint(model)
    src = fused.file("model.onnx")
    entry = log.add(precision, cache.get_or_build(
        f"ort-{precision}", parts, lambda d: builder(src, d / "model.onnx", model)))
    return entry.file("model.onnx")


@contextlib.contextmanager
def _quiet():
    """Silence the quantizers' advice (they log to the root logger) and warnings, then restore."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _quantize_dynamic(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        # DefaultTensorType: onnx shape inference cannot type the outputs of ORT's fused
        # contrib ops (Attention, SkipLayerNorm); without it quantize_dynamic fails on them.
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=INT8_DYNAMIC["reduce_range"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"reduce_range": INT8_DYNAMIC["reduce_range"]}


class _Calibration:
    """CalibrationDataReader over PreparedModel.calibration_inputs (numpy feeds)."""

    def __init__(self, model: PreparedModel):
        batches = model.calibration_inputs or [model.example_inputs]
        self._feeds = iter([{n: _as_numpy(b[n]) for n in model.input_names} for b in batches])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # pragma: no cover - part of the reader protocol, unused by MinMax
        pass


def _quantize_static(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from trials.runtimes.onnx_export import gelu_fed_matmuls

    # Symbolic shape inference knows ORT's contrib ops: with it the quantizer can type (and so
    # quantize) the activations between fused ops.
    graph = onnx.load(str(src))
    try:
        graph = SymbolicShapeInference.infer_shapes(graph, auto_merge=True)
    except Exception:  # fall back to the default type below
        pass
    inferred = dst.with_name("inferred.onnx")
    onnx.save(graph, str(inferred))
    exclude = gelu_fed_matmuls(graph)
    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(model)
    with _quiet():
        quantize_static(inferred, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    inferred.unlink()
    for leftover in dst.parent.glob("augmented_model*.onnx"):
        leftover.unlink()
    return {"calibration_batches": len(model.calibration_inputs), "float_matmuls": exclude}


def _quantize_int4(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with _quiet():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=INT4_WEIGHT["bits"],
                                         block_size=INT4_WEIGHT["block_size"],
                                         is_symmetric=INT4_WEIGHT["symmetric"],
                                         accuracy_level=INT4_WEIGHT["accuracy_level"])
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    count = sum(1 for n in quantizer.model.model.graph.node if n.op_type == "MatMulNBits")
    return {"matmulnbits": count}


def _convert_fp16(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with _quiet():
        graph = OnnxModel(onnx.load(str(src)))
        graph.convert_float_to_float16(keep_io_types=True)
        graph.save_model_to_file(str(dst))
    return {}


def _calibration_fingerprint(model: PreparedModel) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=12)
    for batch in model.calibration_inputs or [model.example_inputs]:
        for name in model.input_names:
            digest.update(_as_numpy(batch[name]).tobytes())
    return digest.hexdigest()


def _as_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    import numpy as np

    return np.asarray(x)


def _np_dtype(t):
    import numpy as np

    return {"torch.int64": np.int64, "torch.int32": np.int32, "torch.float32": np.float32,
            "torch.float16": np.float16}[str(t.dtype)]


def _cuda_index() -> int:
    import torch

    return torch.cuda.current_device()


def _spinning_default() -> bool:
    return os.environ.get("INFERSWEEP_ORT_SPINNING", "0") == "1"
