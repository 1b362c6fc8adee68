"""torch.compile (inductor, dynamic shapes), compiled during prepare.

Inductor generates C++/OpenMP kernels with the system compiler (gcc 12 here, works). The first
compile of MiniLM takes ~20-80 s on 2 busy cores; inductor's FX graph cache, pointed into the
artifact cache (`$INFERSWEEP_CACHE/inductor`), brings a repeat down to ~20 s (Dynamo tracing is
not cached). `cache_info` reports the graph-cache hits and misses and the compile time.

Precisions: fp32 and bf16 on CPU, fp32/fp16/bf16 on CUDA. torch.ao's int8_dynamic Linear keeps
its weights in TorchScript objects that Dynamo cannot trace: ~40 graph breaks, no gain, so it is
declared unsupported (use onnxruntime int8_dynamic or torch eager int8_dynamic).
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Runtime, file_size_mb, recipe_for
from infersweep.trials.runtimes.cache import cache_root
from infersweep.trials.runtimes.torch_precision import TORCH_CPU, TORCH_CUDA


class CompiledEngine:
    def __init__(self, module, device: str, artifact_path: Path):
        self.module = module
        self.device = device
        self.artifact_path = artifact_path
        self.compile_s = 0.0
        self._start = _inductor_counters()

    def __call__(self, **inputs):
        import torch

        with torch.inference_mode():
            return self.module(**{k: v.to(self.device) for k, v in inputs.items()})

    @property
    def cache_info(self) -> dict:
        now = _inductor_counters()
        hits = now["fxgraph_cache_hit"] - self._start["fxgraph_cache_hit"]
        misses = now["fxgraph_cache_miss"] - self._start["fxgraph_cache_miss"]
        # no misses: every graph came from inductor's cache (or was compiled earlier in this process)
        return {"cache": "miss" if misses else "hit", "cache_dir": _inductor_dir(),
                "cache_s": round(self.compile_s, 3), "graph_cache_hits": hits, "graph_cache_misses": misses,
                "compile_s": round(self.compile_s, 3)}

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.module = None


class TorchCompileRuntime(Runtime):
    name = "torch_compile"
    support = {("extractive", "cpu"): {p: TORCH_CPU[p] for p in (P.FP32, P.BF16)},
               ("extractive", "cuda"): {p: TORCH_CUDA[p] for p in (P.FP32, P.FP16, P.BF16)}}
    caches_artifacts = True
    slow_to_prepare = True  # a cold compile takes ~40-80 s on 2 cores
    requires = (("torch", "pip install torch"),)

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        from infersweep.trials.profile import torch_operators

        return torch_operators(run, trace, spec.device)

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> CompiledEngine:
        import torch

        # inductor reads its cache location from the environment (this worker process only)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str((cache_root() / "inductor").resolve())
        module = recipe_for(self, spec).build(model.module, spec.device).to(spec.device).eval()
        Path(workdir).mkdir(parents=True, exist_ok=True)
        artifact = Path(workdir) / "model.pt"
        torch.save(module.state_dict(), artifact)
        engine = CompiledEngine(torch.compile(module, dynamic=True), spec.device, artifact)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for inputs in warmup_shapes(model.example_inputs):
                engine(**inputs)
        engine.compile_s = time.perf_counter() - start
        return engine


def warmup_shapes(example: dict) -> list[dict]:
    """Inputs that take Dynamo through its recompiles before anything is timed.

    With dynamic=True Dynamo still specializes size-1 dims (a batch of one sentence) and, with
    transformers' mask code, recompiles once more when both sizes change: (2, L), (1, L),
    (3, L-1), (1, L-1) reach the graphs that later shapes reuse (checked in the tests).
    """
    import torch

    def rows(n: int, length: int) -> dict:
        # fresh tensors with standard strides, like the tokenizer's (Dynamo guards on strides)
        return {k: torch.empty((n, length), dtype=v.dtype).copy_(torch.cat([v] * n)[:n, :length])
                for k, v in example.items()}

    length = next(iter(example.values())).shape[1]
    shorter = max(length - 1, 2)
    return [dict(example), rows(1, length), rows(3, shorter), rows(1, shorter)]


def _inductor_dir() -> str:
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")


def _inductor_counters() -> dict:
    from torch._dynamo.utils import counters

    inductor = counters["inductor"]
    return {"fxgraph_cache_hit": inductor.get("fxgraph_cache_hit", 0),
            "fxgraph_cache_miss": inductor.get("fxgraph_cache_miss", 0)}
