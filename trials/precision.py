"""Precision knob: the valid values, torch-free (the torch runtimes apply them in
trials.runtimes.torch_precision).

Each runtime declares which precisions it runs, per task and device, in its support table
(trials.runtimes.base.SupportTable); feasibility, sweep spaces, tables and help read these two.
"""
from __future__ import annotations

from enum import Enum


class Precision(str, Enum):
    """A numeric format for weights (and activations). The value is what specs and tables spell."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8_DYNAMIC = "int8_dynamic"
    INT8_STATIC = "int8_static"
    INT4_WEIGHT = "int4_weight"

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def min_cosine(self) -> float:
        """How close to fp32 outputs (cosine) a runtime running this precision must stay, unless its
        recipe says otherwise (the runtime contract suite checks it)."""
        return _MIN_COSINE[self]


_DESCRIPTIONS: dict[Precision, str] = {
    Precision.FP32: "float32 weights and activations (the reference)",
    Precision.FP16: "float16 weights and activations (CUDA only)",
    Precision.BF16: "bfloat16 weights and activations (fast only on CPUs with AVX512-BF16/AMX or on GPUs)",
    Precision.INT8_DYNAMIC: "int8 weights, activations quantized per batch at run time (Linear layers)",
    Precision.INT8_STATIC: "int8 weights and activations, scales calibrated on a held-out slice (QDQ)",
    Precision.INT4_WEIGHT: "4-bit weight-only quantization of MatMul/Linear weights",
}
_MIN_COSINE: dict[Precision, float] = {
    Precision.FP32: 0.9999, Precision.FP16: 0.99, Precision.BF16: 0.99,
    Precision.INT8_DYNAMIC: 0.93, Precision.INT8_STATIC: 0.93, Precision.INT4_WEIGHT: 0.90,
}
#: name -> description, in the catalog's order (fp32 first: the reference)
PRECISIONS: dict[str, str] = {p.value: p.description for p in Precision}
