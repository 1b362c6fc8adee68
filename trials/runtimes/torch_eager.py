"""torch eager: the reference runtime.

CPU: fp32, bf16, int8_dynamic (torch's dynamic int8 Linear), int4_weight (bitsandbytes NF4).
CUDA: fp32, fp16, bf16, int8_dynamic (bitsandbytes LLM.int8), int4_weight (bitsandbytes NF4).
The causal task (decoder-only LLMs) runs the same, but its CPU int8 keeps lm_head and the MLP
down projections in fp32 (torch_precision.CAUSAL_INT8_SKIP).
bitsandbytes is in the `gpu` extra and imported only for the precisions that use it.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel, Runtime, file_size_mb, recipe_for
from infersweep.trials.runtimes.torch_precision import TORCH_CAUSAL_CPU, TORCH_CPU, TORCH_CUDA


class TorchEngine:
    def __init__(self, module, device: str, artifact_path: Path | None):
        self.module = module
        self.device = device
        self.artifact_path = artifact_path
        self.cache_info: dict = {}

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


class TorchEagerRuntime(Runtime):
    name = "torch"
    support = {**{(task, device): table for task in ("extractive", "seq2seq")
                  for device, table in (("cpu", TORCH_CPU), ("cuda", TORCH_CUDA))},
               ("causal", "cpu"): TORCH_CAUSAL_CPU, ("causal", "cuda"): TORCH_CUDA}
    requires = (("torch", "pip install torch"),)

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        from infersweep.trials.profile import torch_operators

        return torch_operators(run, trace, spec.device)

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> TorchEngine:
        import torch

        module = recipe_for(self, spec).build(model.module, spec.device)
        module = module.to(spec.device).eval()
        Path(workdir).mkdir(parents=True, exist_ok=True)
        artifact = Path(workdir) / "model.pt"
        torch.save(module.state_dict(), artifact)
        return TorchEngine(module, spec.device, artifact)
