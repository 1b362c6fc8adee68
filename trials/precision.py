"""Precision knob: the valid values and how the torch runtime applies them.

Other runtimes apply precisions themselves and declare which ones they support.
"""
from __future__ import annotations

PRECISIONS: dict[str, str] = {
    "fp32": "float32 weights and activations (the reference)",
    "fp16": "float16 weights and activations (CUDA only)",
    "bf16": "bfloat16 weights and activations (fast only on CPUs with AVX512-BF16/AMX or on GPUs)",
    "int8_dynamic": "int8 weights, activations quantized per batch at run time (Linear layers)",
    "int8_static": "int8 weights and activations, scales calibrated on a held-out slice (QDQ)",
    "int4_weight": "4-bit weight-only quantization of MatMul/Linear weights",
}


def apply_torch_precision(module, precision: str, device: str):
    """Return `module` converted to `precision` for torch eager execution."""
    import torch

    if precision == "fp32":
        return module.float()
    if precision == "bf16":
        return module.to(torch.bfloat16)
    if precision == "fp16":
        return module.to(torch.float16)
    if precision == "int8_dynamic":
        return quantize_int8_dynamic(module)
    raise ValueError(f"precision {precision!r} has no torch eager implementation")


def quantize_int8_dynamic(module):
    """Swap every nn.Linear for a dynamically quantized int8 Linear (CPU kernels)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(
            module.float(), {torch.nn.Linear}, dtype=torch.qint8
        )


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
