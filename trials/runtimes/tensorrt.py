"""TensorRT: an engine built from the plain ONNX export, run on CUDA tensors.

- Built from the same cached export as onnxruntime (`export` step; standard ONNX ops only:
  TensorRT does its own fusions, ORT's contrib ops would not parse).
- One optimization profile over batch x sequence: min (1, 1), opt (min(32, micro batch), 64),
  max (micro batch sentences, max sentence tokens); larger batches are split.
- fp32, fp16 (BuilderFlag.FP16) and int8_static (BuilderFlag.INT8 + FP16, entropy calibration
  on the calibration slice, padded to the profile's opt shape).
- The timing cache is kept per GPU and TensorRT version in the artifact cache
  (`tensorrt-timing/`), so a second engine for the same GPU builds faster.
- Engines are keyed by export + precision + profile + TensorRT version + GPU name and compute
  capability: an engine is only valid on the GPU model it was built for.
Needs a CUDA GPU and the `tensorrt` package (`pip install 'infersweep[gpu]'`).
"""
from __future__ import annotations

import os
from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Recipe, Runtime, file_size_mb
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, cache_root, library_versions

GPU_HINT = "pip install 'infersweep[gpu]' (tensorrt) on a node with an NVIDIA GPU"
WORKSPACE_BYTES = 4 << 30


class TensorRTEngine:
    def __init__(self, path: Path, model: PreparedModel, max_batch: int, cache_info: dict):
        import tensorrt as trt

        self.artifact_path = Path(path)
        self.cache_info = cache_info
        self.max_batch = max_batch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.artifact_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load the engine {path}; delete it from the cache and retry")
        self.context = self.engine.create_execution_context()
        self.input_names = list(model.input_names)
        self.output_name = model.output_names[0]

    def __call__(self, **inputs):
        import torch

        first = inputs[self.input_names[0]]
        batch = first.shape[0]
        if batch > self.max_batch:  # beyond the optimization profile: run it in slices
            outs = [self(**{k: v[i:i + self.max_batch] for k, v in inputs.items()})
                    for i in range(0, batch, self.max_batch)]
            return torch.cat(outs)
        keep = []
        for name in self.input_names:
            t = inputs[name]
            t = (t if isinstance(t, torch.Tensor) else torch.as_tensor(t))
            t = t.to(device="cuda", dtype=_torch_dtype(self.engine.get_tensor_dtype(name))).contiguous()
            keep.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = torch.empty(shape, dtype=_torch_dtype(self.engine.get_tensor_dtype(self.output_name)), device="cuda")
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return out

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path)

    def close(self) -> None:
        self.context = None
        self.engine = None


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    #: the builder flags per precision are set in build_engine
    support = {("extractive", "cuda"): {P.FP32: Recipe(), P.FP16: Recipe(), P.INT8_STATIC: Recipe()}}
    caches_artifacts = True
    requires = (("tensorrt", GPU_HINT),)

    def hardware_reason(self, spec, hardware) -> str | None:
        """A reason beyond the support table (for feasibility), or None."""
        if spec.device != "cuda":
            return ("TensorRT runs only on NVIDIA GPUs: set device 'cuda' on a GPU node, or use "
                    "runtime 'onnxruntime' (int8_dynamic is the fastest on CPU)")
        if hardware.cuda_available and hardware.gpu_compute_capability < (7, 5):
            return (f"TensorRT 10 needs compute capability >= 7.5; this GPU has "
                    f"{'.'.join(map(str, hardware.gpu_compute_capability))}: use runtime 'onnxruntime'")
        return None

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> TensorRTEngine:
        import torch

        from infersweep.trials.runtimes.onnx_export import export_entry

        if spec.device != "cuda" or not torch.cuda.is_available():
            raise RuntimeError("TensorRT runs only on NVIDIA GPUs: set device 'cuda' on a GPU node, "
                               "or use runtime 'onnxruntime'")
        log = CacheLog()
        cache = ArtifactCache()
        exported = export_entry(model, cache, log)
        profile = optimization_profile(spec)
        gpu = {"name": torch.cuda.get_device_name(), "capability": list(torch.cuda.get_device_capability())}
        parts = {"export": exported.key, "precision": spec.precision, "profile": profile, "gpu": gpu,
                 "versions": library_versions("tensorrt", "tensorrt-cu12", "tensorrt-cu13")}
        if spec.precision == "int8_static":
            from infersweep.trials.runtimes.ort_recipes import calibration_fingerprint

            parts["calibration"] = calibration_fingerprint(model)
        entry = log.add("engine", cache.get_or_build(
            "tensorrt", parts,
            lambda d: build_engine(exported.file("plain.onnx"), d / "model.engine", model, spec.precision,
                                   profile, timing_cache_path(gpu))))
        return TensorRTEngine(entry.file("model.engine"), model, profile["max"][0], log.info())


def optimization_profile(spec) -> dict:
    max_batch = spec.extractive.micro_batch_sentences
    max_seq = spec.extractive.max_sentence_tokens
    return {"min": [1, 1], "opt": [min(32, max_batch), min(64, max_seq)], "max": [max_batch, max_seq]}


def timing_cache_path(gpu: dict) -> Path:
    from infersweep.trials.runtimes.cache import cache_key

    versions = library_versions("tensorrt", "tensorrt-cu12", "tensorrt-cu13")
    return cache_root() / "tensorrt-timing" / f"{cache_key({'gpu': gpu, 'versions': versions})}.cache"


def build_engine(onnx_path: Path, engine_path: Path, model: PreparedModel, precision: str, profile: dict,
                 timing_cache: Path) -> dict:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the ONNX export: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    trt_profile = builder.create_optimization_profile()
    for name in model.input_names:
        trt_profile.set_shape(name, tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"]))
    config.add_optimization_profile(trt_profile)
    if precision in ("fp16", "int8_static"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8_static":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(trt_profile)
        dtypes = {network.get_input(i).name: _torch_dtype(network.get_input(i).dtype)
                  for i in range(network.num_inputs)}
        config.int8_calibrator = _calibrator(model, profile["opt"], dtypes, engine_path.with_suffix(".calib"))
    blob = timing_cache.read_bytes() if timing_cache.exists() else b""
    config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    _write_timing_cache(timing_cache, config.get_timing_cache().serialize())
    return {"profile": profile, "timing_cache": str(timing_cache), "timing_cache_reused": bool(blob)}


def _write_timing_cache(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def _calibrator(model: PreparedModel, shape: list[int], dtypes: dict, cache_file: Path):
    """An entropy calibrator over the calibration slice, padded/split to the profile's opt shape."""
    import tensorrt as trt
    import torch

    batch, seq = shape
    rows = {name: [] for name in model.input_names}
    for item in model.calibration_inputs or [model.example_inputs]:
        for name in model.input_names:
            rows[name].extend(torch.as_tensor(item[name])[:, :seq])
    count = len(rows[model.input_names[0]])
    blocks = []
    for start in range(0, count, batch):
        block = {}
        for name in model.input_names:
            padded = torch.zeros((batch, seq), dtype=dtypes[name])
            for i, row in enumerate(rows[name][start:start + batch]):
                padded[i, :len(row)] = row
            if name == "attention_mask":
                padded[padded.sum(1) == 0, 0] = 1  # empty filler rows: one visible token
            block[name] = padded.cuda()
        blocks.append(block)

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.index = 0

        def get_batch_size(self):
            return batch

        def get_batch(self, names):
            if self.index >= len(blocks):
                return None
            block = blocks[self.index]
            self.index += 1
            return [int(block[n].data_ptr()) for n in names]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, data):
            cache_file.write_bytes(bytes(data))

    return Calibrator()


def _torch_dtype(trt_dtype):
    import tensorrt as trt
    import torch

    return {trt.int32: torch.int32, trt.int64: torch.int64, trt.float32: torch.float32,
            trt.float16: torch.float16}[trt_dtype]
