"""ONNX Runtime with its TensorRT execution provider (onnxruntime-gpu + TensorRT).

TensorRT builds the engine inside ONNX Runtime: nodes it cannot run fall back to the CUDA EP.
It parses standard ONNX ops only, so it takes the plain export (not the graph fused for the CPU
and CUDA EPs, whose contrib ops it does not know). One explicit optimization profile over
batch x sequence (the same as the `tensorrt` runtime's), fp16 by flag, engines and timing
cache kept under the artifact cache so a second trial on the same GPU loads instead of building.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Recipe, Runtime
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, cache_root, library_versions
from infersweep.trials.runtimes.onnx_export import export_entry
from infersweep.trials.runtimes.onnxruntime import OrtEngine
from infersweep.trials.runtimes.ort_recipes import GPU_HINT, cuda_index
from infersweep.trials.runtimes.tensorrt import optimization_profile

TRT_HINT = "pip install 'infersweep[gpu]' (onnxruntime-gpu and tensorrt) on a node with an NVIDIA GPU"


def provider_options(model: PreparedModel, profile: dict, precision: str, engine_dir: Path,
                     device_id: int = 0) -> dict:
    """TensorrtExecutionProvider options: explicit profile shapes, fp16, engine and timing caches."""
    def shapes(dims):
        return ",".join(f"{name}:{dims[0]}x{dims[1]}" for name in model.input_names)

    return {
        "device_id": device_id,
        "trt_fp16_enable": precision == "fp16",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(engine_dir),
        "trt_profile_min_shapes": shapes(profile["min"]),
        "trt_profile_opt_shapes": shapes(profile["opt"]),
        "trt_profile_max_shapes": shapes(profile["max"]),
    }


class OrtTensorRTRuntime(Runtime):
    name = "onnxruntime_trt"
    support = {("extractive", "cuda"): {P.FP32: Recipe(), P.FP16: Recipe()}}  # fp16: provider_options
    caches_artifacts = True
    requires = (("onnxruntime", GPU_HINT), ("tensorrt", TRT_HINT))

    def hardware_reason(self, spec, hardware) -> str | None:
        if spec.device != "cuda":
            return ("the TensorRT execution provider runs only on NVIDIA GPUs: set device 'cuda' on a GPU "
                    "node, or use runtime 'onnxruntime' on CPU")
        return None

    def unavailable_reason(self, spec, hardware) -> str | None:
        if not library_versions("onnxruntime-gpu"):
            return f"onnxruntime_trt needs the onnxruntime-gpu package (only the CPU build is installed): {TRT_HINT}"
        return None

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        from infersweep.trials.profile import ort_operators

        return ort_operators(engine, spec, run, trace)

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> OrtEngine:
        log = CacheLog()
        exported = export_entry(model, ArtifactCache(), log)
        engine_dir = cache_root() / "ort-trt-engines"
        engine_dir.mkdir(parents=True, exist_ok=True)
        options = provider_options(model, optimization_profile(spec), spec.precision, engine_dir, cuda_index())
        providers = [("TensorrtExecutionProvider", options),
                     ("CUDAExecutionProvider", {"device_id": cuda_index()}), "CPUExecutionProvider"]
        engine = OrtEngine(exported.file("plain.onnx"), spec, model, log.info(), providers=providers)
        engine.cache_info["trt_engine_cache"] = str(engine_dir)
        return engine
