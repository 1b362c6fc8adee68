"""The runtime contract, run by every registered runtime on each precision its support table
declares for the extractive task on CPU.

Tolerances (cosine similarity of each sentence embedding to torch fp32, worst sentence) come from
the table too: the recipe's min_cosine, else the precision's (trials.precision.Precision.min_cosine:
fp32 0.9999, bf16/fp16 0.99, int8 0.93 (measured 0.96-0.999 here), int4 0.90 (measured ~0.95-0.98)).
The ROUGE effect of these is measured by bench/runtimes.py on real data, not here.
INFERSWEEP_SLOW_TESTS=1 adds torch_compile on MiniLM (a few minutes of compiling).
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from infersweep.trials import TrialSpec
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware
from infersweep.trials.runtimes import RUNTIMES, get_runtime
from infersweep.trials.runtimes.base import min_cosine, missing_requirement, precisions_for, tasks_of
SENTENCES = ["The council approved the new budget on Tuesday after a long debate.",
             "Rain is expected.",
             "Officials said the bridge would reopen next month once repairs to its deck are finished."]
CALIBRATION = ["The mayor spoke to reporters. Schools will close early on Friday because of the storm.",
               "Prices rose again in March. Economists had expected a smaller increase."]
CPU = Hardware(cpu_model="test cpu", cpu_count=2)
GPU = Hardware(cpu_model="test cpu", cpu_count=2, cuda_available=True, gpu_name="H100", gpu_count=1,
               gpu_compute_capability=(9, 0))

#: runtimes whose prepare takes minutes here (torch.compile) run on MiniLM only when asked;
#: tests/trials/test_runtime_compile.py covers them on a tiny encoder in every run
SLOW_OK = os.environ.get("INFERSWEEP_SLOW_TESTS") == "1"


def _runnable(name: str) -> bool:
    rt = get_runtime(name)
    return (missing_requirement(rt) is None and "extractive" in tasks_of(rt)
            and (SLOW_OK or not rt.slow_to_prepare))


def _available(name: str, precision: str) -> bool:
    """The precision's own extra package (bitsandbytes for torch int4) is installed."""
    runtime, spec = get_runtime(name), TrialSpec(runtime=name, precision=precision)
    return (missing_requirement(runtime, spec) is None and runtime.unavailable_reason(spec, CPU) is None
            and runtime.hardware_reason(spec, CPU) is None)


CASES = [(name, precision) for name in RUNTIMES if _runnable(name)
         for precision in precisions_for(get_runtime(name), "extractive", "cpu") if _available(name, precision)]


@pytest.fixture(scope="module")
def adapter():
    from infersweep.trials.models.extractive import ExtractiveSummarizer

    return ExtractiveSummarizer(TrialSpec())


@pytest.fixture(scope="module")
def reference(adapter):
    import torch

    inputs = adapter._tokenize(SENTENCES)
    with torch.inference_mode():
        return inputs, adapter.module(**inputs).numpy()


def _prepare(adapter, runtime: str, precision: str, workdir):
    import copy

    model = adapter.prepared_model(CALIBRATION)
    model.module = copy.deepcopy(model.module)  # runtimes may convert the module in place
    spec = TrialSpec(runtime=runtime, precision=precision, cpus=2)
    return get_runtime(runtime).prepare(model, spec, workdir)


def _prepare_on(adapter, runtime: str, precision: str, device: str, workdir):
    import copy

    model = adapter.prepared_model(CALIBRATION)
    model.module = copy.deepcopy(model.module)
    return get_runtime(runtime).prepare(model, TrialSpec(runtime=runtime, precision=precision, device=device),
                                        workdir)


def _numpy(x):
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)


@pytest.mark.parametrize(("runtime", "precision"), CASES, ids=[f"{r}-{p}" for r, p in CASES])
def test_runtime_contract(runtime, precision, adapter, reference, cache_dir, tmp_path):
    inputs, expected = reference
    engine = _prepare(adapter, runtime, precision, tmp_path)
    try:
        out = _numpy(engine(**inputs))
        assert out.shape == expected.shape
        cosine = (out * expected).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(expected, axis=1))
        tolerance = min_cosine(get_runtime(runtime), "extractive", "cpu", precision)
        assert cosine.min() >= tolerance, f"{runtime}/{precision}: cosine {cosine} < {tolerance}"
        if precision == "fp32":
            np.testing.assert_allclose(out, expected, atol=2e-4)
        # a batch of another shape than the export's example (dynamic axes)
        one = adapter._tokenize(SENTENCES[1:2])
        assert _numpy(engine(**one)).shape == (1, expected.shape[1])
        assert engine.artifact_path is not None and engine.artifact_path.exists()
        assert engine.size_mb() > 1
    finally:
        engine.close()


@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if _runnable(r)
                                     and get_runtime(r).caches_artifacts])
def test_second_prepare_hits_the_cache(runtime, adapter, cache_dir, tmp_path):
    first = _prepare(adapter, runtime, "fp32", tmp_path / "a")
    first.close()
    second = _prepare(adapter, runtime, "fp32", tmp_path / "b")
    second.close()
    info = second.cache_info
    assert info["cache"] == "hit", info
    assert info["cache_dir"].startswith(str(cache_dir))
    assert info["cache_s"] >= 0


def test_quantized_onnx_models_are_smaller(adapter, cache_dir, tmp_path):
    sizes = {}
    for precision in ("fp32", "int8_dynamic", "int4_weight"):
        engine = _prepare(adapter, "onnxruntime", precision, tmp_path / precision)
        sizes[precision] = engine.size_mb()
        engine.close()
    assert sizes["int8_dynamic"] < 0.4 * sizes["fp32"]
    assert sizes["int4_weight"] < 0.8 * sizes["fp32"]  # the fp32 word embeddings stay


def test_onnx_export_is_fused_for_bert(adapter, cache_dir, tmp_path):
    """The reason ORT is fast here: eager-attention export lets the optimizer fuse attention."""
    import json

    engine = _prepare(adapter, "onnxruntime", "fp32", tmp_path)
    manifest = json.loads((engine.artifact_path.parent / "manifest.json").read_text())
    engine.close()
    fused = manifest["facts"]["fused_ops"]
    assert fused.get("Attention") == 6 and fused.get("EmbedLayerNormalization") == 1
    assert "sdpa" == adapter.module.encoder.config._attn_implementation  # restored after export


def test_onnxruntime_trial_reports_cache_and_artifact(quick_spec, cache_dir, tmp_path):
    from infersweep.trials import run_trial

    report = run_trial(quick_spec(runtime="onnxruntime", precision="int8_dynamic"), tmp_path)
    assert report.status == "ok", report.reason
    assert report.artifact["cache"] in ("hit", "miss")
    assert report.artifact["path"].endswith(".onnx")
    assert 0 < report.metrics["model_size_mb"] < 40


# --- feasibility: what a person reads when a runtime cannot run ------------------------------


def test_gpu_only_runtimes_say_so_on_cpu():
    for name in RUNTIMES:
        if not precisions_for(get_runtime(name), "extractive", "cpu"):
            reason = check(TrialSpec(runtime=name), CPU)
            assert reason and f"runtime {name!r}" in reason


def test_cuda_without_a_gpu_is_infeasible_for_every_runtime():
    for name in RUNTIMES:
        assert "no CUDA GPU is visible" in check(TrialSpec(runtime=name, device="cuda"), CPU)


def test_missing_package_gives_the_install_hint(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "onnxruntime" else real(name, *a))
    reason = check(TrialSpec(runtime="onnxruntime", device="cuda"), GPU)
    assert "pip install" in reason and "infersweep[gpu]" in reason


def test_int8_static_points_to_onnxruntime():
    reason = check(TrialSpec(precision="int8_static"), CPU)
    assert "onnxruntime" in reason


def test_bitsandbytes_swaps_the_linear_layers(adapter, tmp_path):
    """int4_weight on the torch runtime: every encoder Linear becomes a bitsandbytes NF4 layer."""
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the dev and gpu extras")
    engine = _prepare(adapter, "torch", "int4_weight", tmp_path)
    kinds = {type(m) for m in engine.module.modules() if "Linear" in type(m).__name__}
    assert kinds == {bnb.nn.Linear4bit}
    dense = _prepare(adapter, "torch", "fp32", tmp_path / "dense")
    assert engine.size_mb() < 0.7 * dense.size_mb()  # 4-bit weights (the embeddings stay fp32)


def test_onnxruntime_has_no_fp16_on_cpu():
    on_cpu = check(TrialSpec(runtime="onnxruntime", precision="fp16"), CPU)
    assert "no fp16 kernel on cpu" in on_cpu and "fp16 runs on cuda" in on_cpu
    on_gpu = check(TrialSpec(runtime="onnxruntime", precision="fp16", device="cuda"), GPU)
    assert on_gpu is None or "onnxruntime-gpu" in on_gpu  # the kernel exists; the CPU build lacks CUDA


def test_onnxruntime_on_cuda_needs_the_gpu_build():
    from infersweep.trials.runtimes.cache import library_versions

    reason = get_runtime("onnxruntime").unavailable_reason(TrialSpec(runtime="onnxruntime", device="cuda"), GPU)
    if library_versions("onnxruntime-gpu"):
        assert reason is None
    else:
        assert "onnxruntime-gpu" in reason and "infersweep[gpu]" in reason
    assert get_runtime("onnxruntime").unavailable_reason(TrialSpec(runtime="onnxruntime"), CPU) is None


def test_tensorrt_reasons():
    import importlib.util

    trt = get_runtime("tensorrt")
    on_cpu = check(TrialSpec(runtime="tensorrt"), CPU)
    assert "runtime 'tensorrt'" in on_cpu and "onnxruntime" in on_cpu
    assert "NVIDIA GPU" in trt.hardware_reason(TrialSpec(runtime="tensorrt"), CPU)
    old_gpu = Hardware(cuda_available=True, gpu_count=1, gpu_compute_capability=(6, 1))
    assert "7.5" in trt.hardware_reason(TrialSpec(runtime="tensorrt", device="cuda"), old_gpu)
    assert trt.hardware_reason(TrialSpec(runtime="tensorrt", device="cuda"), GPU) is None
    assert "int8_dynamic" not in precisions_for(trt, "extractive", "cuda")
    if importlib.util.find_spec("tensorrt") is None:
        reason = check(TrialSpec(runtime="tensorrt", device="cuda"), GPU)
        assert "needs the Python package 'tensorrt'" in reason and "infersweep[gpu]" in reason


def test_onnxruntime_trt_reasons_and_provider_options(adapter, tmp_path):
    from infersweep.trials.runtimes.ort_tensorrt import provider_options
    from infersweep.trials.runtimes.tensorrt import optimization_profile

    on_cpu = check(TrialSpec(runtime="onnxruntime_trt"), CPU)
    assert "runtime 'onnxruntime_trt'" in on_cpu and "onnxruntime" in on_cpu
    assert "NVIDIA GPU" in get_runtime("onnxruntime_trt").hardware_reason(TrialSpec(runtime="onnxruntime_trt"), CPU)
    spec = TrialSpec(runtime="onnxruntime_trt", device="cuda", precision="fp16")
    options = provider_options(adapter.prepared_model(), optimization_profile(spec), "fp16", tmp_path)
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_profile_max_shapes"] == "input_ids:64x128,attention_mask:64x128"
    assert options["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"


def test_tensorrt_profile_covers_the_adapter_batches():
    from infersweep.trials.runtimes.tensorrt import optimization_profile

    spec = TrialSpec(runtime="tensorrt", device="cuda")
    profile = optimization_profile(spec)
    assert profile["max"] == [spec.extractive.micro_batch_sentences, spec.extractive.max_sentence_tokens]
    assert profile["min"] <= profile["opt"] <= profile["max"]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "int8_dynamic", "int4_weight"])
def test_torch_cuda_precisions(precision, adapter, reference, tmp_path):
    """fp16 and the bitsandbytes layers (LLM.int8, NF4) on a CUDA GPU."""
    import copy

    import torch

    if precision != "fp16":
        pytest.importorskip("bitsandbytes", reason="pip install 'infersweep[gpu]'")
    inputs, expected = reference
    model = adapter.prepared_model(CALIBRATION)
    model.module = copy.deepcopy(model.module)
    engine = get_runtime("torch").prepare(model, TrialSpec(precision=precision, device="cuda"), tmp_path)
    out = engine(**inputs)
    assert out.is_cuda
    cosine = torch.nn.functional.cosine_similarity(out.float().cpu(), torch.from_numpy(expected))
    assert cosine.min() >= min_cosine(get_runtime("torch"), "extractive", "cuda", precision)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int4_weight"])
def test_onnxruntime_cuda_io_binding(precision, adapter, reference, cache_dir, tmp_path):
    import copy

    import torch

    inputs, expected = reference
    model = adapter.prepared_model(CALIBRATION)
    model.module = copy.deepcopy(model.module)
    spec = TrialSpec(runtime="onnxruntime", precision=precision, device="cuda")
    engine = get_runtime("onnxruntime").prepare(model, spec, tmp_path)
    out = engine(**{k: v.cuda() for k, v in inputs.items()})
    assert isinstance(out, torch.Tensor) and out.is_cuda
    cosine = torch.nn.functional.cosine_similarity(out.float().cpu(), torch.from_numpy(expected))
    assert cosine.min() >= min_cosine(get_runtime("onnxruntime"), "extractive", "cuda", precision)
    engine.close()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_trt_engine(precision, adapter, reference, cache_dir, tmp_path):
    import torch

    if importlib.util.find_spec("tensorrt") is None or "TensorrtExecutionProvider" not in __import__(
            "onnxruntime").get_available_providers():
        pytest.skip("needs onnxruntime-gpu with TensorRT: pip install 'infersweep[gpu]'")
    inputs, expected = reference
    engine = _prepare_on(adapter, "onnxruntime_trt", precision, "cuda", tmp_path)
    out = engine(**inputs)
    assert engine.cache_info["provider"] == "TensorrtExecutionProvider"
    cosine = torch.nn.functional.cosine_similarity(out.float().cpu(), torch.from_numpy(expected))
    assert cosine.min() >= min_cosine(get_runtime("onnxruntime_trt"), "extractive", "cuda", precision)
    engine.close()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8_static"])
def test_tensorrt_engine(precision, adapter, reference, cache_dir, tmp_path):
    import copy
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("tensorrt is not installed: pip install 'infersweep[gpu]'")
    inputs, expected = reference
    model = adapter.prepared_model(CALIBRATION)
    model.module = copy.deepcopy(model.module)
    spec = TrialSpec(runtime="tensorrt", precision=precision, device="cuda")
    engine = get_runtime("tensorrt").prepare(model, spec, tmp_path)
    out = engine(**inputs)
    assert isinstance(out, torch.Tensor) and out.is_cuda and out.shape == expected.shape
    cosine = torch.nn.functional.cosine_similarity(out.float().cpu(), torch.from_numpy(expected))
    assert cosine.min() >= min_cosine(get_runtime("tensorrt"), "extractive", "cuda", precision)
    big = {k: torch.cat([v] * 30) for k, v in inputs.items()}  # 90 rows > the profile's max batch
    assert engine(**big).shape[0] == 90
    assert engine.size_mb() > 1
    engine.close()
    again = get_runtime("tensorrt").prepare(model, spec, tmp_path / "again")
    assert again.cache_info["cache"] == "hit"


def test_int8_weights_use_7_bits_only_where_the_cpu_lacks_an_int8_dot_product():
    from infersweep.trials.runtimes.ort_recipes import needs_reduce_range

    assert needs_reduce_range({"avx2", "fma"})  # AVX2 only: u8s8 pairs saturate in int16
    assert not needs_reduce_range({"avx2", "avx512f", "avx512_vnni"})
    assert not needs_reduce_range({"avx2", "avx_vnni"}) and not needs_reduce_range({"amx_int8"})


def test_onnx_int8_dynamic_records_the_isa_profile_it_was_built_for(adapter, reference, cache_dir, tmp_path):
    """The quantized graph follows this CPU's profile, and the artifact info says which."""
    import json

    import onnx

    from infersweep.trials.hardware import detect
    from infersweep.trials.runtimes.ort_recipes import ORT_INT8_BY_ISA

    engine = _prepare(adapter, "onnxruntime", "int8_dynamic", tmp_path)
    try:
        info = engine.cache_info["quantization"]
        assert info == {"isa": detect().isa, **ORT_INT8_BY_ISA[detect().isa]}
        manifest = json.loads((engine.artifact_path.parent / "manifest.json").read_text())
        assert manifest["parts"]["knobs"] == info  # a CPU with another profile gets its own cache entry
        graph = onnx.load(str(engine.artifact_path))
        weights = {t.name: t for t in graph.graph.initializer}
        ops = {n.op_type for n in graph.graph.node}
        quantized = [weights[n.input[1]] for n in graph.graph.node
                     if n.op_type in ("MatMulInteger", "QAttention") and n.input[1] in weights]
        assert "QAttention" in ops, ops
        wanted = onnx.TensorProto.INT8 if info["weight_type"] == "QInt8" else onnx.TensorProto.UINT8
        assert quantized and all(w.data_type == wanted for w in quantized)
        widest = max(int(abs(onnx.numpy_helper.to_array(w).astype(int) - (128 if wanted == onnx.TensorProto.UINT8
                                                                           else 0)).max()) for w in quantized)
        assert (widest <= 64) == info["reduce_range"]  # 7-bit weights where the profile asks for them
    finally:
        engine.close()
