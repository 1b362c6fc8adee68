"""How the torch runtimes (eager, TorchScript, torch.compile) apply a precision to a module.

Each converter takes (module, device) and returns the converted module; the runtimes' support
tables pick one per (task, device, precision).
"""
from __future__ import annotations

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import Recipe, import_or_hint

__all__ = ["BNB_HINT", "BNB_SKIP", "to_fp32", "to_bf16", "to_fp16", "quantize_int8_dynamic",
           "quantize_nf4", "quantize_llm_int8", "quantize_int8_dynamic_causal", "CAUSAL_INT8_SKIP", "TORCH_CPU",
           "TORCH_CUDA", "TORCH_CAUSAL_CPU", "BITSANDBYTES"]

BNB_HINT = "pip install 'infersweep[gpu]' (bitsandbytes); or use runtime 'onnxruntime'"
#: Linear layers bitsandbytes leaves alone (the output projection decides every token)
BNB_SKIP = ("lm_head",)
BITSANDBYTES = (("bitsandbytes", BNB_HINT),)


def to_fp32(module, device: str):
    return module.float()


def to_bf16(module, device: str):
    import torch

    return module.to(torch.bfloat16)


def to_fp16(module, device: str):
    import torch

    return module.to(torch.float16)


def quantize_int8_dynamic(module, device: str = "cpu"):
    """Swap every nn.Linear for a dynamically quantized int8 Linear (CPU kernels)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(module.float(), {torch.nn.Linear}, dtype=torch.qint8)


#: Linear layers a causal LM keeps in fp32 under torch dynamic int8: the output projection decides
#: every token, and quantizing the MLP's down projection (whose inputs carry the activation
#: outliers of a Llama-layout model) hurt ROUGE when measured (docs/decisions.md)
CAUSAL_INT8_SKIP = ("lm_head", "down_proj")


def quantize_int8_dynamic_causal(module, device: str = "cpu"):
    """torch dynamic int8 Linear for a decoder-only LM, but CAUSAL_INT8_SKIP stay fp32."""
    import warnings

    import torch

    module = module.float()
    spec = {name: torch.ao.quantization.default_dynamic_qconfig for name, m in module.named_modules()
            if type(m) is torch.nn.Linear and name.rsplit(".", 1)[-1] not in CAUSAL_INT8_SKIP}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(module, spec, dtype=torch.qint8)


def quantize_nf4(module, device: str):
    """4-bit NF4 weights (bitsandbytes Linear4bit)."""
    return _swap_bitsandbytes(module, device, four_bit=True)


def quantize_llm_int8(module, device: str):
    """LLM.int8 (bitsandbytes Linear8bitLt): int8 weights, outliers in fp16 (CUDA)."""
    return _swap_bitsandbytes(module, device, four_bit=False)


def _swap_bitsandbytes(module, device: str, four_bit: bool):
    """Swap every nn.Linear (but BNB_SKIP) for its bitsandbytes layer; quantized on `.to(device)`.

    On CUDA the rest of the model runs in fp16 (LLM.int8 and NF4 compute in fp16 there); on CPU
    in fp32.
    """
    import logging

    import torch

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
        setattr(parent, name.rsplit(".", 1)[-1], _bnb_linear(bnb, linear, four_bit, compute))
    return module.to(device)


def _bnb_linear(bnb, linear, four_bit: bool, compute):
    import torch

    bias = linear.bias is not None
    weight = linear.weight.data.to(compute)
    if four_bit:
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=bias, compute_dtype=compute,
                                quant_type="nf4")
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    else:
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias,
                                  has_fp16_weights=False, threshold=6.0)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if bias:
        new.bias = torch.nn.Parameter(linear.bias.data.to(compute), requires_grad=False)
    return new


#: the torch precisions by device (the runtimes' tables take what their compiler supports)
NF4 = Recipe(quantize_nf4, {"kernel": "bitsandbytes nf4"}, requires=BITSANDBYTES)
TORCH_CPU = {P.FP32: Recipe(to_fp32), P.BF16: Recipe(to_bf16), P.INT8_DYNAMIC: Recipe(quantize_int8_dynamic),
             P.INT4_WEIGHT: NF4}
TORCH_CUDA = {P.FP32: Recipe(to_fp32), P.FP16: Recipe(to_fp16), P.BF16: Recipe(to_bf16),
              P.INT8_DYNAMIC: Recipe(quantize_llm_int8, {"kernel": "bitsandbytes LLM.int8"}, requires=BITSANDBYTES),
              P.INT4_WEIGHT: NF4}
#: a decoder-only LM on CPU: int8 keeps lm_head and the MLP down projections in fp32
TORCH_CAUSAL_CPU = {**TORCH_CPU, P.INT8_DYNAMIC: Recipe(quantize_int8_dynamic_causal,
                                                        {"fp32_linear": ",".join(CAUSAL_INT8_SKIP)})}
