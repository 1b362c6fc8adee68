"""ONNX Runtime recipes and session helpers shared by the onnxruntime runtimes (one encoder graph,
the seq2seq graphs, the TensorRT execution provider): the precision steps applied to an ONNX file,
their knobs (part of the cache keys), session options and small tensor helpers.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel

__all__ = ["GPU_HINT", "ORT_LIBS", "ORT_INT8_BY_ISA", "int8_options", "needs_reduce_range", "INT8_DYNAMIC", "INT8_STATIC",
           "INT4_WEIGHT", "FP16", "session_options", "default_providers", "spinning_default", "quiet",
           "quantize_dynamic", "quantize_static", "quantize_int4", "convert_fp16", "calibration_fingerprint",
           "as_numpy", "np_dtype", "cuda_index"]

GPU_HINT = "pip install 'infersweep[gpu]' (onnxruntime-gpu instead of onnxruntime)"
ORT_LIBS = ("torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu")
#: ONNX Runtime int8 options per CPU profile (trials.hardware.isa_profile), after Optimum's
#: AutoQuantizationConfig.{avx512_vnni, avx512, avx2, arm64}: activations u8 (ORT's dynamic
#: quantization has no s8 activations), weights s8 or u8, per-channel (per-row) weight scales, and 7-bit
#: weights where u8 x s8 pairs saturate: without an int8 dot product (AVX2, AVX512 without VNNI),
#: ORT's u8s8 kernels add pairs of products in int16 (VPMADDUBSW), which saturates with 8-bit
#: weights (measured on an AVX2-only EPYC: tiny T5 int8_dynamic logits at cosine 0.990 to fp32).
#: Every profile quantizes the same operators: ORT's integer-op registry (MatMul, Attention, EmbedLayerNormalization, Gather, ...), as Optimum does by default.
#: Why each choice, measured: docs/decisions.md, "ISA-aware int8 on ONNX Runtime".
_VNNI = {"activation_type": "QUInt8", "weight_type": "QInt8", "per_channel": True, "reduce_range": False}
ORT_INT8_BY_ISA = {
    "amx": _VNNI,            # ORT's CPU provider runs AMX parts on its AVX512-VNNI kernels
    "avx512_vnni": _VNNI,
    "avx_vnni": _VNNI,
    # no VNNI: VPMADDUBSW sums two u8 x s8 products in int16, 7-bit weights keep it from saturating
    "avx512": {**_VNNI, "reduce_range": True},
    "avx2": {**_VNNI, "reduce_range": True},
    "arm64": _VNNI,          # u8s8 is as fast as u8u8 on big cores, faster on small ones (Optimum's note)
    "generic": {**_VNNI, "reduce_range": True},  # the safe choice where nothing is known
}


def needs_reduce_range(cpu_flags=None) -> bool:
    """Whether int8 weights must use 7 bits on this CPU (no int8 dot-product instruction)."""
    return int8_options(cpu_flags)["reduce_range"]


def int8_options(cpu_flags=None) -> dict:
    """The int8 options for a CPU with `cpu_flags` (this machine's when None), with its `isa` profile."""
    from infersweep.trials.hardware import detect, isa_profile

    profile = detect().isa if cpu_flags is None else isa_profile(cpu_flags)
    return {"isa": profile, **ORT_INT8_BY_ISA[profile]}


#: the precision steps' knobs (part of their cache keys)
INT8_DYNAMIC = int8_options()
INT8_STATIC = {"format": "QDQ", "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
               "calibrate_method": "MinMax", "op_types": ["MatMul"], "exclude": "gelu-fed MatMul"}
INT4_WEIGHT = {"bits": 4, "block_size": 32, "symmetric": True, "accuracy_level": 4}
FP16 = {"keep_io_types": True}


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



def default_providers(device: str) -> list:
    if device == "cuda":
        return [("CUDAExecutionProvider", {"device_id": cuda_index()}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]



@contextlib.contextmanager
def quiet():
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


def quantize_dynamic(src: Path, dst: Path, model: PreparedModel, options: dict | None = None) -> dict:
    """int8 weights, activations quantized at run time, with `options` (INT8_DYNAMIC: this CPU's)."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    options = INT8_DYNAMIC if options is None else options
    with quiet():
        # DefaultTensorType: onnx shape inference cannot type the outputs of ORT's fused
        # contrib ops (Attention, SkipLayerNorm); without it quantize_dynamic fails on them.
        ort_quantize_dynamic(src, dst, weight_type=QuantType[options["weight_type"]],
                             per_channel=options["per_channel"], reduce_range=options["reduce_range"],
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return dict(options)


class _Calibration:
    """CalibrationDataReader over PreparedModel.calibration_inputs (numpy feeds)."""

    def __init__(self, model: PreparedModel):
        batches = model.calibration_inputs or [model.example_inputs]
        self._feeds = iter([{n: as_numpy(b[n]) for n in model.input_names} for b in batches])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # pragma: no cover - part of the reader protocol, unused by MinMax
        pass


def quantize_static(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType)
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from infersweep.trials.runtimes.onnx_export import gelu_fed_matmuls

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
    with quiet():
        ort_quantize_static(inferred, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    inferred.unlink()
    for leftover in dst.parent.glob("augmented_model*.onnx"):
        leftover.unlink()
    return {"calibration_batches": len(model.calibration_inputs), "float_matmuls": exclude}


def quantize_int4(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with quiet():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=INT4_WEIGHT["bits"],
                                         block_size=INT4_WEIGHT["block_size"],
                                         is_symmetric=INT4_WEIGHT["symmetric"],
                                         accuracy_level=INT4_WEIGHT["accuracy_level"])
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    count = sum(1 for n in quantizer.model.model.graph.node if n.op_type == "MatMulNBits")
    return {"matmulnbits": count}


def convert_fp16(src: Path, dst: Path, model: PreparedModel) -> dict:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with quiet():
        graph = OnnxModel(onnx.load(str(src)))
        graph.convert_float_to_float16(keep_io_types=True)
        graph.save_model_to_file(str(dst))
    return {}


def calibration_fingerprint(model: PreparedModel) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=12)
    for batch in model.calibration_inputs or [model.example_inputs]:
        for name in model.input_names:
            digest.update(as_numpy(batch[name]).tobytes())
    return digest.hexdigest()


def as_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    import numpy as np

    return np.asarray(x)


def np_dtype(t):
    import numpy as np

    return {"torch.int64": np.int64, "torch.int32": np.int32, "torch.float32": np.float32,
            "torch.float16": np.float16}[str(t.dtype)]


def cuda_index() -> int:
    import torch

    return torch.cuda.current_device()


def spinning_default() -> bool:
    return os.environ.get("INFERSWEEP_ORT_SPINNING", "0") == "1"
