"""torch.compile (inductor, dynamic shapes), compiled during prepare.

Inductor generates C++/OpenMP kernels with the system compiler (gcc 12 here, works). The first
compile of MiniLM takes ~20-80 s on 2 busy cores; inductor's FX graph cache, pointed into the
artifact cache (`$INFERSWEEP_CACHE/inductor`), brings a repeat down to ~20 s (Dynamo tracing is
not cached). `cache_info` reports the graph-cache hits and misses and the compile time.

Precisions: fp32 and bf16 on CPU, fp32/fp16/bf16 on CUDA. torch.ao's int8_dynamic Linear keeps
its weights in TorchScript objects that Dynamo cannot trace: ~40 graph breaks, no gain, so it is
declared unsupported (use onnxruntime int8_dynamic or torch eager int8_dynamic).

The causal task compiles the decode step only, over a static KV cache (transformers' auto-compile
of `generate`): the cache is sized once for the task's whole budget (prompt budget + new tokens),
so a decode step has the same shapes whatever the prompt length, and the warm-up in prepare takes
Dynamo through batch sizes 2, 3 and 1 so the batch dimension is dynamic before anything is timed
(`recompiles_after_prepare` in the artifact info says whether that held). The prefill runs eager.
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


class CompiledGenerator(CompiledEngine):
    """A causal LM whose decode step is compiled over a static KV cache of `max_cache_len` positions."""

    def __init__(self, module, device: str, artifact_path: Path, max_cache_len: int):
        super().__init__(module, device, artifact_path)
        self.max_cache_len = max_cache_len
        self.compile_config = _compile_config(device)
        self._graphs_after_prepare = None

    def generate(self, **kwargs):
        import torch

        with torch.inference_mode():
            moved = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in kwargs.items()}
            return self.module.generate(**moved, cache_implementation="static", max_cache_len=self.max_cache_len,
                                        compile_config=self.compile_config)

    def prepared(self) -> None:
        self._graphs_after_prepare = _compiled_graphs()

    @property
    def cache_info(self) -> dict:
        info = super().cache_info
        info["static_cache_len"] = self.max_cache_len
        if self._graphs_after_prepare is not None:
            info["recompiles_after_prepare"] = _compiled_graphs() - self._graphs_after_prepare
        return info


def _compile_config(device: str):
    from transformers.generation.configuration_utils import CompileConfig

    # CUDA graphs (reduce-overhead) where there are any; plain inductor kernels on CPU
    config = CompileConfig(fullgraph=False, dynamic=None, mode="reduce-overhead" if device == "cuda" else "default")
    config._compile_all_devices = True  # transformers auto-compiles on accelerators only unless told
    return config


def _compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


def static_cache_len(module, spec) -> int:
    """The KV-cache positions a causal trial can need: its prompt budget plus its new tokens."""
    from infersweep.trials.models.causal import prompt_budget

    return prompt_budget(module.config, spec.causal) + spec.causal.max_new_tokens


class TorchCompileRuntime(Runtime):
    name = "torch_compile"
    support = {(task, "cpu"): {p: TORCH_CPU[p] for p in (P.FP32, P.BF16)} for task in ("extractive", "causal")}
    support.update({(task, "cuda"): {p: TORCH_CUDA[p] for p in (P.FP32, P.FP16, P.BF16)}
                    for task in ("extractive", "causal")})
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
        if spec.task == "causal":
            return _warmed_generator(module, spec, artifact, model.example_inputs)
        engine = CompiledEngine(torch.compile(module, dynamic=True), spec.device, artifact)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for inputs in warmup_shapes(model.example_inputs):
                engine(**inputs)
        engine.compile_s = time.perf_counter() - start
        return engine


def _warmed_generator(module, spec, artifact: Path, example: dict) -> CompiledGenerator:
    engine = CompiledGenerator(module, spec.device, artifact, static_cache_len(module, spec))
    pad = getattr(module.generation_config, "pad_token_id", None) or module.config.pad_token_id or 0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        length = next(iter(example.values())).shape[1]
        for n in (2, 3, 1):  # 2 then 3: the batch dim turns dynamic; 1 is its own graph
            engine.generate(**_rows(example, n, length), max_new_tokens=2, min_new_tokens=2, do_sample=False,
                            pad_token_id=pad)
    engine.compile_s = time.perf_counter() - start
    engine.prepared()
    return engine


def _rows(example: dict, n: int, length: int) -> dict:
    """`example`'s first rows repeated to `n` rows of `length` tokens, as fresh tensors with standard
    strides, like the tokenizer's (Dynamo guards on strides)."""
    import torch

    return {k: torch.empty((n, length), dtype=v.dtype).copy_(torch.cat([v] * n)[:n, :length])
            for k, v in example.items()}


def warmup_shapes(example: dict) -> list[dict]:
    """Inputs that take Dynamo through its recompiles before anything is timed.

    With dynamic=True Dynamo still specializes size-1 dims (a batch of one sentence) and, with
    transformers' mask code, recompiles once more when both sizes change: (2, L), (1, L),
    (3, L-1), (1, L-1) reach the graphs that later shapes reuse (checked in the tests).
    """
    length = next(iter(example.values())).shape[1]
    shorter = max(length - 1, 2)
    return [dict(example), _rows(example, 1, length), _rows(example, 3, shorter), _rows(example, 1, shorter)]


def _inductor_dir() -> str:
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")


def _inductor_counters() -> dict:
    from torch._dynamo.utils import counters

    inductor = counters["inductor"]
    return {"fxgraph_cache_hit": inductor.get("fxgraph_cache_hit", 0),
            "fxgraph_cache_miss": inductor.get("fxgraph_cache_miss", 0)}
