"""torch eager: the reference runtime (fp32/bf16/int8_dynamic on CPU; fp16/bf16 on CUDA)."""
from __future__ import annotations

from pathlib import Path

from trials.precision import apply_torch_precision
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
        "cpu": ("fp32", "bf16", "int8_dynamic"),
        "cuda": ("fp32", "fp16", "bf16"),
    }
    tasks = ("extractive", "seq2seq")
    requires = (("torch", "pip install torch"),)

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> TorchEngine:
        import torch

        module = apply_torch_precision(model.module, spec.precision, spec.device)
        module = module.to(spec.device).eval()
        artifact = Path(workdir) / "model.pt"
        torch.save(module.state_dict(), artifact)
        return TorchEngine(module, spec.device, artifact)
