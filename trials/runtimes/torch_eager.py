"""torch eager: the reference runtime.

CPU: fp32, bf16, int8_dynamic (torch's dynamic int8 Linear), int4_weight (bitsandbytes NF4).
CUDA: fp32, fp16, bf16, int8_dynamic (bitsandbytes LLM.int8), int4_weight (bitsandbytes NF4).
bitsandbytes is in the `gpu` extra and imported only for the precisions that use it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from trials.precision import BNB_HINT, apply_torch_precision, uses_bitsandbytes
from trials.runtimes.base import PreparedModel, file_size_mb


class TorchEngine:
    def __init__(self, module, device: str, artifact_path: Path | None):
        self.module = module
        self.device = device
        self.artifact_path = artifact_path

    def __call__(self, **inputs):
        import torch

        with torch.inference_mode():
            moved = {k: v.to(self.device) for k, v in inputs.items()}
            return self.module(**moved)

    def generate(self, **kwargs):
        import torch

        with torch.inference_mode():
            moved = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in kwargs.items()}
            return self.module.generate(**moved)

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.module = None


class TorchEagerRuntime:
    name = "torch"
    precisions = {
        "cpu": ("fp32", "bf16", "int8_dynamic", "int4_weight"),
        "cuda": ("fp32", "fp16", "bf16", "int8_dynamic", "int4_weight"),
    }
    tasks = ("extractive", "seq2seq")
    requires = (("torch", "pip install torch"),)

    def unavailable_reason(self, spec, hardware) -> str | None:
        """bitsandbytes precisions need the package (the `gpu` extra)."""
        if uses_bitsandbytes(spec.precision, spec.device) and importlib.util.find_spec("bitsandbytes") is None:
            return (f"{spec.precision} on the torch runtime ({spec.device}) runs bitsandbytes layers: "
                    f"{BNB_HINT}; or use runtime 'onnxruntime'")
        return None

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> TorchEngine:
        import torch

        module = apply_torch_precision(model.module, spec.precision, spec.device)
        module = module.to(spec.device).eval()
        Path(workdir).mkdir(parents=True, exist_ok=True)
        artifact = Path(workdir) / "model.pt"
        torch.save(module.state_dict(), artifact)
        return TorchEngine(module, spec.device, artifact)
