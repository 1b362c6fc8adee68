"""TorchScript: torch.jit.trace -> freeze, saved to and loaded from the artifact cache.

Traced with keyword inputs (transformers 5.x models take keywords) and dynamic shapes: the trace
of the embedding head generalizes across batch and sequence lengths (checked in the tests).
Precisions: the torch eager ones (fp32, bf16, int8_dynamic on CPU; fp32, fp16, bf16 on CUDA);
int8_static and int4_weight have no TorchScript kernels here (use onnxruntime).
TorchScript is in maintenance mode in torch 2.x; it is kept as a sweep option because it is
still a common deployment format.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Runtime, file_size_mb, recipe_for
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint
from infersweep.trials.runtimes.torch_precision import TORCH_CPU, TORCH_CUDA


class TorchScriptEngine:
    def __init__(self, module, device: str, artifact_path: Path, cache_info: dict):
        self.module = module
        self.device = device
        self.artifact_path = artifact_path
        self.cache_info = cache_info

    def __call__(self, **inputs):
        import torch

        with torch.inference_mode():
            return self.module(**{k: v.to(self.device) for k, v in inputs.items()})

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.module = None


class TorchScriptRuntime(Runtime):
    name = "torchscript"
    support = {("extractive", "cpu"): {p: TORCH_CPU[p] for p in (P.FP32, P.BF16, P.INT8_DYNAMIC)},
               ("extractive", "cuda"): {p: TORCH_CUDA[p] for p in (P.FP32, P.FP16, P.BF16)}}
    caches_artifacts = True
    requires = (("torch", "pip install torch"),)

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        from infersweep.trials.profile import torch_operators

        return torch_operators(run, trace, spec.device)

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> TorchScriptEngine:
        import torch

        log = CacheLog()
        parts = {"model": model_fingerprint(model.module), "precision": spec.precision, "device": spec.device,
                 "inputs": list(model.input_names), "versions": library_versions("torch", "transformers")}
        if spec.device == "cuda":
            parts["gpu"] = torch.cuda.get_device_capability()

        def build(directory: Path) -> dict:
            module = recipe_for(self, spec).build(model.module, spec.device).to(spec.device).eval()
            example = {k: v.to(spec.device) for k, v in model.example_inputs.items()}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings on shape-dependent Python branches
                traced = torch.jit.trace(module, example_kwarg_inputs=example, strict=False, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(directory / "model.ts"))
            return {}

        entry = log.add("trace", ArtifactCache().get_or_build("torchscript", parts, build))
        path = entry.file("model.ts")
        module = torch.jit.load(str(path), map_location=spec.device).eval()
        return TorchScriptEngine(module, spec.device, path, log.info())
