"""OpenVINO: the plain ONNX export -> OpenVINO IR -> precision (NNCF) -> compiled on the CPU plugin.

The pipeline, each step an artifact-cache entry keyed on the one before it:

    export   the plain ONNX export the onnxruntime runtime starts from (onnx_export.export_entry)
    convert  openvino.convert_model(plain.onnx), saved as IR with float32 weights    model.xml/.bin
    quantize per precision, on the IR:
             int8_static   nncf.quantize: ModelType.TRANSFORMER, preset MIXED (symmetric weights,
                           asymmetric activations), all calibration batches, fast bias correction;
                           SmoothQuant only when the calibration slice has enough sentences
                           (SMOOTH_QUANT_MIN_SENTENCES): on a handful of sentences its per-channel
                           scales overfit (measured: worst-sentence cosine 0.93 with 4 calibration
                           sentences, 0.996 with the 8-document slice; without it 0.99 either way)
             int8_static under a quality bound (TrialSpec.quantization.max_rouge_drop_pct):
                           nncf.quantize_with_accuracy_control, scored by the task's ROUGE-Lsum on
                           the calibration slice (PreparedModel.quality_probe), relative drop
             int4_weight   nncf.compress_weights INT4_SYM, groups of 32, all ratio-defining layers
                           4-bit (the embeddings stay int8, NNCF's backup mode); data-free
    compile  Core().compile_model(model, "CPU", config): INFERENCE_NUM_THREADS = the trial's CPUs,
             PERFORMANCE_HINT LATENCY with one stream (the engine issues one synchronous request at a
             time: THROUGHPUT's extra streams split the cores between requests that never come), and
             INFERENCE_PRECISION_HINT f32, or bf16 for bf16 (the CPU plugin's default is bf16 where the
             CPU has it: fp32 says f32 explicitly); threads not pinned to cores (the plugin's default
             pins them; on a shared machine that halved the speed): $INFERSWEEP_OV_PINNING=1 pins

fp32 and bf16 share the converted IR (bf16 is a compile setting). bf16 needs a CPU with native bf16
(AVX512-BF16 or AMX): elsewhere OpenVINO quietly runs f32 and calls it bf16, so it is infeasible there.
The causal task (decoder-only LMs) runs fp32, bf16 and int4_weight from the onnxruntime runtime's
causal export: openvino_causal.py.

Not here: int8_dynamic (OpenVINO's int8 weight compression keeps activations float on CPUs
without VNNI/AMX, so it is weight-only int8, which no precision names), fp16 and CUDA.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from infersweep.trials.errors import InfersweepError
from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import (PreparedModel, ProfilingUnsupported, Recipe, Runtime, Unsupported,
                                             file_size_mb, import_or_hint, recipe_for)
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions
from infersweep.trials.runtimes.onnx_export import export_entry
from infersweep.trials.runtimes.openvino_causal import (CAUSAL_INT4, OpenVinoCausalEngine, build_ov_causal,
                                                       compress_causal_int4)
from infersweep.trials.runtimes.ort_recipes import as_numpy, calibration_fingerprint, quiet

__all__ = ["OV_HINT", "OV_LIBS", "SMOOTH_QUANT_MIN_SENTENCES", "OpenVinoEngine", "OpenVinoRuntime",
           "OpenVinoUnavailable", "compile_config", "build_ov_model", "check_bf16", "compress_ir_int4"]

OV_HINT = "pip install 'infersweep[openvino]'"
OV_LIBS = ("openvino", "nncf")
_NEEDS_OV = (("openvino", OV_HINT),)
_NEEDS_NNCF = (("openvino", OV_HINT), ("nncf", OV_HINT))
#: fewer calibration sentences than this: no SmoothQuant (its per-channel scales overfit them)
SMOOTH_QUANT_MIN_SENTENCES = 16


class OpenVinoUnavailable(InfersweepError, RuntimeError):
    """OpenVINO cannot run the spec on this machine (e.g. bf16 without native bf16)."""


def _ov():
    return import_or_hint("openvino", OV_HINT)


def _nncf():
    nncf = import_or_hint("nncf", OV_HINT)
    import logging

    nncf.set_log_level(logging.ERROR)
    return nncf


@contextlib.contextmanager
def _silenced():
    """NNCF draws progress bars and tables (rich, on stdout) that no setting turns off: swallow them,
    and the warnings and advice the quantizers log."""
    sink = io.StringIO()
    with quiet(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _sentences(model: PreparedModel) -> int:
    return sum(int(as_numpy(batch[model.input_names[0]]).shape[0]) for batch in _calibration(model))


def _calibration(model: PreparedModel) -> list[dict]:
    """The calibration batches (the example inputs when there are none, as onnxruntime does)."""
    return list(model.calibration_inputs or [model.example_inputs])


def _calibration_arrays(model: PreparedModel) -> list[dict]:
    """The calibration batches as the numpy feeds NNCF passes to the model."""
    return [{name: as_numpy(batch[name]) for name in model.input_names} for batch in _calibration(model)]


def quantize_int8_static(ir: Path, dst: Path, model: PreparedModel) -> dict:
    ov, nncf = _ov(), _nncf()
    batches = _calibration_arrays(model)
    sentences = _sentences(model)
    with _silenced():
        quantized = nncf.quantize(ov.Core().read_model(str(ir)), nncf.Dataset(batches),
                                  model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(batches), fast_bias_correction=True,
                                  advanced_parameters=_advanced(sentences >= SMOOTH_QUANT_MIN_SENTENCES))
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    return {"calibration_batches": len(batches), "calibration_sentences": sentences,
            "smooth_quant": sentences >= SMOOTH_QUANT_MIN_SENTENCES, "fake_quantize": _fake_quantizes(quantized)}


def quantize_int8_accuracy_aware(ir: Path, dst: Path, model: PreparedModel, max_rouge_drop_pct: float) -> dict:
    """int8_static as quantize_int8_static, under NNCF's accuracy control: the quantized model is
    scored by the task's own ROUGE-Lsum on the calibration slice (model.quality_probe), and NNCF
    returns the most sensitive layers to float, ranked per document, until the relative drop from
    the float model is at most `max_rouge_drop_pct`. Without SmoothQuant: NNCF 3.4 puts a reverted
    layer's original weights back but keeps SmoothQuant's scaling of its input (measured: a model
    with every layer reverted scored a cosine of 0.25 to the float model)."""
    probe = model.quality_probe
    if probe is None:
        raise OpenVinoUnavailable(
            "accuracy-controlled int8_static scores ROUGE on the calibration slice, but this model came without "
            "the slice's reference summaries (a task whose adapter has no quality probe, or a variant saved "
            "before the setting): leave quantization.max_rouge_drop_pct out, or rerun the trial")
    ov, nncf = _ov(), _nncf()
    import numpy as np

    core = ov.Core()
    batches = _calibration_arrays(model)
    names = list(model.input_names)

    def quality(compiled, indices) -> tuple[float, list[float]]:
        def forward(**inputs):
            return compiled({name: as_numpy(inputs[name]) for name in names})[0]

        scores = probe.score(forward, list(indices))
        return float(np.mean(scores)), scores

    def scored(ov_model) -> float:
        return quality(core.compile_model(ov_model, "CPU"), range(probe.documents))[0]

    source = core.read_model(str(ir))
    with _silenced():
        quantized = nncf.quantize_with_accuracy_control(
            source, nncf.Dataset(batches), nncf.Dataset(list(range(probe.documents))), quality,
            max_drop=max_rouge_drop_pct / 100.0, drop_type=nncf.DropType.RELATIVE,
            model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED, subset_size=len(batches),
            fast_bias_correction=True, advanced_quantization_parameters=_advanced(smooth=False))
        before, after = scored(core.read_model(str(ir))), scored(quantized)
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    drop = 100.0 * (before - after) / before if before else 0.0
    return {"calibration_batches": len(batches), "calibration_documents": probe.documents,
            "rouge_lsum_float": round(before, 4), "rouge_lsum_quantized": round(after, 4),
            "rouge_drop_pct": round(drop, 4), "within_bound": drop <= max_rouge_drop_pct + 1e-9, "smooth_quant": False,
            "fake_quantize": _fake_quantizes(quantized)}


def _advanced(smooth: bool):
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    return AdvancedQuantizationParameters(
        **({} if smooth else {"smooth_quant_alphas": AdvancedSmoothQuantParameters(matmul=-1)}))


def _fake_quantizes(ov_model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())


def compress_int4(ir: Path, dst: Path, model: PreparedModel) -> dict:
    return compress_ir_int4(ir, dst, INT4_WEIGHT)


def compress_ir_int4(ir: Path, dst: Path, knobs: dict) -> dict:
    """nncf.compress_weights INT4_SYM of the IR at `ir` (knobs: group_size, ratio), saved at `dst`."""
    ov, nncf = _ov(), _nncf()
    with _silenced():
        compressed = nncf.compress_weights(ov.Core().read_model(str(ir)), mode=nncf.CompressWeightsMode.INT4_SYM,
                                           group_size=knobs["group_size"], ratio=knobs["ratio"])
    ov.save_model(compressed, str(dst), compress_to_fp16=False)
    kinds = [op.get_element_type().get_type_name() for op in compressed.get_ops() if op.get_type_name() == "Constant"]
    return {"int4_weights": sum(kind in ("i4", "u4") for kind in kinds),
            "int8_weights": sum(kind in ("i8", "u8") for kind in kinds)}


INT8_STATIC = {"method": "nncf.quantize", "model_type": "transformer", "preset": "mixed",
               "fast_bias_correction": True, "smooth_quant_min_sentences": SMOOTH_QUANT_MIN_SENTENCES,
               "inference_precision": "f32"}
INT4_WEIGHT = {"method": "nncf.compress_weights", "mode": "int4_sym", "group_size": 32, "ratio": 1.0,
               "inference_precision": "f32"}
RECIPES = {
    P.FP32: Recipe(knobs={"inference_precision": "f32"}, requires=_NEEDS_OV),
    P.BF16: Recipe(knobs={"inference_precision": "bf16"}, requires=_NEEDS_OV),
    P.INT8_STATIC: Recipe(quantize_int8_static, INT8_STATIC, requires=_NEEDS_NNCF,
                          accuracy_aware=quantize_int8_accuracy_aware),
    P.INT4_WEIGHT: Recipe(compress_int4, INT4_WEIGHT, requires=_NEEDS_NNCF),
}
_ON_CUDA = "OpenVINO runs on CPU here; on CUDA use onnxruntime or tensorrt"
_NO_INT8_DYNAMIC = Unsupported(
    "OpenVINO's int8 weight compression keeps activations in float on CPUs without VNNI/AMX (weight-only "
    "int8, not int8_dynamic): use int8_static (NNCF, int8 activations) on openvino, or int8_dynamic on "
    "onnxruntime or torch")


def pinning_default() -> bool:
    """Whether the CPU plugin pins its threads to cores (its own default): off unless
    $INFERSWEEP_OV_PINNING=1. On a shared machine a pinned thread waits for its core while another
    process holds it (measured on 2 shared cores under load: 2x slower pinned than unpinned)."""
    return os.environ.get("INFERSWEEP_OV_PINNING", "0") == "1"


def compile_config(spec, inference_precision: str) -> dict:
    """The CPU plugin's settings for a trial: its CPU share, one latency stream, the precision,
    thread pinning (pinning_default)."""
    return {"INFERENCE_NUM_THREADS": int(spec.cpus), "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": inference_precision, "ENABLE_CPU_PINNING": pinning_default()}


class OpenVinoEngine:
    """Runs an OpenVINO model on the CPU; inputs are torch tensors (or arrays), output [batch, hidden]."""

    def __init__(self, path: Path, spec, model: PreparedModel, inference_precision: str,
                 cache_info: dict | None = None):
        import time

        ov = _ov()
        self.artifact_path = Path(path)
        self.input_names = list(model.input_names)
        core = ov.Core()
        check_bf16(core, inference_precision)
        config = compile_config(spec, inference_precision)
        self.config = config  # kept: the profiler compiles the same model again with PERF_COUNT on
        start = time.perf_counter()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        prop = self.compiled.get_property
        self.cache_info = {**(cache_info or {}), **library_versions(*OV_LIBS),
                           "threads": int(prop("INFERENCE_NUM_THREADS")),
                           "performance_hint": str(prop("PERFORMANCE_HINT")).split(".")[-1],
                           "cpu_pinning": bool(prop("ENABLE_CPU_PINNING")),
                           "inference_precision": prop("INFERENCE_PRECISION_HINT").get_type_name(),
                           "compile_s": round(time.perf_counter() - start, 3)}

    def __call__(self, **inputs):
        feed = {name: as_numpy(inputs[name]) for name in self.input_names}
        return self.request.infer(feed, share_outputs=False)[0]

    def size_mb(self) -> float:
        return file_size_mb(self.artifact_path) + file_size_mb(self.artifact_path.with_suffix(".bin"))

    def close(self) -> None:
        self.request = None
        self.compiled = None


def check_bf16(core, inference_precision: str) -> None:
    """Refuse bf16 on a CPU plugin without native bf16 (it would run f32 and call it bf16)."""
    if inference_precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise OpenVinoUnavailable(_bf16_reason())


def _bf16_reason() -> str:
    return ("this CPU has no native bf16 (AVX512-BF16 or AMX): OpenVINO would run f32 and call it bf16; "
            "use fp32 or int8_static on openvino, or run on a CPU with AVX512-BF16/AMX")


_NO_FP16 = Unsupported("the CPU plugin has no fp16 compute on x86 CPUs: use bf16 (AVX512-BF16/AMX) or int8_static; "
                       "fp16 runs on cuda with onnxruntime or tensorrt")
_NO_CAUSAL_INT8 = Unsupported(
    "int8 for the causal task on openvino would need static calibration with recorded past key/values, which "
    "nothing collects yet: use int4_weight on openvino, or int8_dynamic on onnxruntime or torch")


class OpenVinoRuntime(Runtime):
    name = "openvino"
    support = {
        ("extractive", "cpu"): {**RECIPES, P.INT8_DYNAMIC: _NO_INT8_DYNAMIC, P.FP16: _NO_FP16},
        ("extractive", "cuda"): {p: Unsupported(_ON_CUDA) for p in P},
        ("causal", "cpu"): {P.FP32: RECIPES[P.FP32], P.BF16: RECIPES[P.BF16], P.FP16: _NO_FP16,
                            P.INT8_DYNAMIC: _NO_CAUSAL_INT8, P.INT8_STATIC: _NO_CAUSAL_INT8,
                            P.INT4_WEIGHT: Recipe(compress_causal_int4, CAUSAL_INT4, requires=_NEEDS_NNCF)},
        ("causal", "cuda"): {p: Unsupported(_ON_CUDA) for p in P},
    }
    requires = _NEEDS_OV
    caches_artifacts = True

    def hardware_reason(self, spec, hardware) -> str | None:
        if spec.precision == P.BF16 and not hardware.cpu_has_bf16:  # AVX512-BF16 or AMX flags
            return f"runtime 'openvino' runs bf16 only on CPUs with native bf16: {_bf16_reason()}"
        return None

    def profile(self, engine, spec, run, trace: Path) -> dict[str, tuple[float, int]]:
        if isinstance(engine, OpenVinoCausalEngine):
            raise ProfilingUnsupported("OpenVINO's per-node counters are read for the extractive engine's one "
                                       "request; profile a causal variant on runtime 'onnxruntime' or 'torch'")
        return ov_operators(engine, run, trace)

    def prepare(self, model: PreparedModel, spec, workdir: Path):
        log = CacheLog()
        recipe = recipe_for(self, spec)
        if spec.task == "causal":
            path = build_ov_causal(model, spec.precision, recipe, ArtifactCache(), log)
            return OpenVinoCausalEngine(path, spec, model, recipe.knobs["inference_precision"], log.info())
        path = build_ov_model(model, spec.precision, recipe, ArtifactCache(), log)
        return OpenVinoEngine(path, spec, model, recipe.knobs["inference_precision"], log.info())


class _CountedRequest:
    """An infer request of a model compiled with PERF_COUNT that keeps each inference's per-node counters."""

    def __init__(self, request):
        self.request = request
        self.runs: list = []

    def infer(self, *args, **kwargs):
        result = self.request.infer(*args, **kwargs)
        self.runs.append(self.request.get_profiling_info())
        return result


def ov_operators(engine: OpenVinoEngine, run, trace: Path) -> dict[str, tuple[float, int]]:
    """The CPU plugin's per-node counters (PERF_COUNT) over `run`, summed by node type. OpenVINO
    writes no trace of its own: `trace` holds the executed nodes in Chrome-trace form, each
    inference's nodes laid end to end by their measured time (durations real, start times not)."""
    import json

    ov = _ov()
    core = ov.Core()
    model = core.read_model(str(engine.artifact_path))
    compiled = core.compile_model(model, "CPU", {**engine.config, "PERF_COUNT": True})
    counted, request = _CountedRequest(compiled.create_infer_request()), engine.request
    engine.request = counted
    try:
        run()
    finally:
        engine.request = request
    events, times, clock = [], {}, 0.0
    for index, infos in enumerate(counted.runs):
        for info in infos:
            micros = info.real_time.total_seconds() * 1e6
            if micros <= 0:
                continue
            events.append({"name": info.node_name, "cat": info.node_type, "ph": "X", "ts": clock, "dur": micros,
                           "pid": 0, "tid": 0, "args": {"op_type": info.node_type, "exec_type": info.exec_type,
                                                        "inference": index}})
            clock += micros
            ms, calls = times.get(info.node_type, (0.0, 0))
            times[info.node_type] = (ms + micros / 1000.0, calls + 1)
    trace.write_text(json.dumps({"traceEvents": events, "otherData": {
        "source": "OpenVINO PERF_COUNT real_time per node, laid end to end (durations measured, start times not)"}}))
    return times


def build_ov_model(model: PreparedModel, precision, recipe: Recipe, cache: ArtifactCache, log: CacheLog) -> Path:
    """Path of the OpenVINO IR (model.xml) that runs `precision` by `recipe`, built or from the cache."""
    exported = export_entry(model, cache, log)
    versions = library_versions("openvino")

    def convert(directory: Path) -> dict:
        ov = _ov()
        converted = ov.convert_model(str(exported.file("plain.onnx")))
        ov.save_model(converted, str(directory / "model.xml"), compress_to_fp16=False)
        return {"ops": len(converted.get_ops())}

    ir = log.add("convert", cache.get_or_build("ov-ir", {"export": exported.key, "versions": versions}, convert))
    if recipe.build is None:
        return ir.file("model.xml")
    parts = {"ir": ir.key, "precision": str(precision), "knobs": dict(recipe.knobs),
             "versions": library_versions(*OV_LIBS)}
    if precision == P.INT8_STATIC:
        parts["calibration"] = calibration_fingerprint(model)
    if "accuracy_control" in recipe.knobs:
        parts["references"] = model.quality_probe.fingerprint if model.quality_probe else None
    src = ir.file("model.xml")
    entry = log.add(str(precision), cache.get_or_build(
        f"ov-{precision}", parts, lambda d: recipe.build(src, d / "model.xml", model)))
    return entry.file("model.xml")
