"""Precision knob: the valid values (torch-free) and how the torch runtimes apply them.

Each runtime declares which precisions it runs, per task and device, in its support table
(trials.runtimes.base.Support); feasibility, sweep spaces, tables and help read these two.
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


_DESCRIPTIONS: dict[Precision, str] = {
    Precision.FP32: "float32 weights and activations (the reference)",
    Precision.FP16: "float16 weights and activations (CUDA only)",
    Precision.BF16: "bfloat16 weights and activations (fast only on CPUs with AVX512-BF16/AMX or on GPUs)",
    Precision.INT8_DYNAMIC: "int8 weights, activations quantized per batch at run time (Linear layers)",
    Precision.INT8_STATIC: "int8 weights and activations, scales calibrated on a held-out slice (QDQ)",
    Precision.INT4_WEIGHT: "4-bit weight-only quantization of MatMul/Linear weights",
}
#: name -> description, in the catalog's order (fp32 first: the reference)
PRECISIONS: dict[str, str] = {p.value: p.description for p in Precision}


BNB_HINT = "pip install 'infersweep[gpu]' (bitsandbytes)"
#: Linear layers bitsandbytes leaves alone (the output projection decides every token)
BNB_SKIP = ("lm_head",)


def uses_bitsandbytes(precision: str, device: str) -> bool:
    """int4_weight: NF4 (bnb.nn.Linear4bit); int8_dynamic on CUDA: LLM.int8 (bnb.nn.Linear8bitLt).
    On CPU, int8_dynamic stays torch's own dynamic int8 Linear (faster there)."""
    return precision == "int4_weight" or (precision == "int8_dynamic" and device == "cuda")


def apply_torch_precision(module, precision: str, device: str):
    """Return `module` converted to `precision` for torch eager execution."""
    import torch

    if uses_bitsandbytes(precision, device):
        return quantize_bitsandbytes(module, precision, device)
    if precision == "fp32":
        return module.float()
    if precision == "bf16":
        return module.to(torch.bfloat16)
    if precision == "fp16":
        return module.to(torch.float16)
    if precision == "int8_dynamic":
        return quantize_int8_dynamic(module)
    raise ValueError(f"precision {precision!r} has no torch eager implementation")


def quantize_bitsandbytes(module, precision: str, device: str):
    """Swap every nn.Linear (but BNB_SKIP) for its bitsandbytes layer; quantized on `.to(device)`.

    On CUDA the rest of the model runs in fp16 (LLM.int8 and NF4 compute in fp16 there); on CPU
    in fp32.
    """
    import logging

    import torch

    from trials.runtimes.base import import_or_hint

    # on import, CPU: "Failed to load gemm_4bit_forward from kernels-community" (a hub download
    # we never do); it falls back to its own kernel
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    bnb = import_or_hint("bitsandbytes", BNB_HINT)
    compute = torch.float16 if device == "cuda" else torch.float32
    module = module.to(compute)
    targets = [(name, m) for name, m in module.named_modules()
               if type(m) is torch.nn.Linear and name.rsplit(".", 1)[-1] not in BNB_SKIP]
    for name, linear in targets:
        parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        setattr(parent, name.rsplit(".", 1)[-1], _bnb_linear(bnb, linear, precision, compute))
    return module.to(device)


def _bnb_linear(bnb, linear, precision: str, compute):
    import torch

    bias = linear.bias is not None
    weight = linear.weight.data.to(compute)
    if precision == "int8_dynamic":
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias,
                                  has_fp16_weights=False, threshold=6.0)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=bias, compute_dtype=compute,
                                quant_type="nf4")
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    if bias:
        new.bias = torch.nn.Parameter(linear.bias.data.to(compute), requires_grad=False)
    return new


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
