"""The openvino runtime beyond the shared contract (tests/trials/test_runtimes.py runs fp32,
int8_static and int4_weight through it): trials end to end with a cache hit on rerun and serving
memory from a fresh process, bf16 only with native bf16, NNCF's settings, and the reasons a person
reads where it cannot run. Skipped without `pip install 'infersweep[openvino]'`."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="pip install 'infersweep[openvino]'")
pytest.importorskip("nncf", reason="pip install 'infersweep[openvino]'")

from infersweep.trials import TrialSpec  # noqa: E402
from infersweep.trials.feasibility import check  # noqa: E402
from infersweep.trials.hardware import Hardware, detect  # noqa: E402
from infersweep.trials.runtimes import get_runtime  # noqa: E402

SENTENCES = ["The council approved the new budget on Tuesday after a long debate.",
             "Rain is expected.",
             "Officials said the bridge would reopen next month once repairs to its deck are finished."]
CPU = Hardware(cpu_model="test cpu", cpu_count=2, cpu_flags=frozenset({"avx2", "fma"}))
BF16_CPU = Hardware(cpu_model="test cpu", cpu_count=2, cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
GPU = Hardware(cpu_model="test cpu", cpu_count=2, cuda_available=True, gpu_name="H100", gpu_count=1,
               gpu_compute_capability=(9, 0))


@pytest.fixture(scope="module")
def adapter():
    from infersweep.trials.models.extractive import ExtractiveSummarizer

    return ExtractiveSummarizer(TrialSpec())


def _cosines(adapter, engine):
    import torch

    inputs = adapter._tokenize(SENTENCES)
    with torch.inference_mode():
        expected = adapter.module(**inputs).numpy()
    out = np.asarray(engine(**inputs), dtype=np.float32)
    return (out * expected).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(expected, axis=1))


def _prepare(adapter, precision: str, calibration_documents, workdir):
    model = adapter.prepared_model(calibration_documents)
    model.module = copy.deepcopy(model.module)
    return get_runtime("openvino").prepare(model, TrialSpec(runtime="openvino", precision=precision, cpus=2), workdir)


def _manifest(engine) -> dict:
    return json.loads((engine.artifact_path.parent / "manifest.json").read_text())


def test_trials_keep_torch_rouge_and_reload_from_the_cache(quick_spec, cache_dir, tmp_path):
    """fp32 and int8_static trials through run_trial: ROUGE of torch fp32, the engine's settings in
    the artifact info, serving memory measured in a fresh process that loads the openvino variant,
    and a rerun that loads the quantized IR from the artifact cache."""
    from infersweep.trials import run_trial

    torch_fp32 = run_trial(quick_spec(runtime="torch", precision="fp32"), tmp_path / "torch")
    assert torch_fp32.status == "ok", torch_fp32.reason
    reports = {}
    for precision in ("fp32", "int8_static"):
        report = run_trial(quick_spec(runtime="openvino", precision=precision), tmp_path / precision)
        assert report.status == "ok", report.reason
        assert abs(report.metrics["rougeLsum"] - torch_fp32.metrics["rougeLsum"]) <= (0.01 if precision == "fp32"
                                                                                      else 2.0)
        artifact = report.artifact
        assert artifact["path"].endswith("model.xml") and artifact["threads"] == 1
        assert artifact["inference_precision"] == "f32" and artifact["performance_hint"] == "LATENCY"
        # unpinned unless asked: on a shared machine pinned threads wait for their cores
        assert artifact["cpu_pinning"] is (os.environ.get("INFERSWEEP_OV_PINNING") == "1")
        assert artifact["openvino"] and artifact["nncf"]
        assert artifact["serving_memory"]["serving_peak_mb"] > 0
        assert report.metrics["peak_memory_mb"] == artifact["serving_memory"]["serving_peak_mb"]
        reports[precision] = report
    assert reports["int8_static"].metrics["model_size_mb"] < 0.4 * reports["fp32"].metrics["model_size_mb"]
    # a saved variant (what promote registers, what the serving-memory process loads) is calibrated
    # on the trial's slice: it serves the very IR the trial measured, from the cache
    from infersweep.trials.package import Summarizer, save_variant

    served = Summarizer(save_variant(quick_spec(runtime="openvino", precision="int8_static"), tmp_path / "variant"))
    try:
        assert served.engine.cache_info["cache"] == "hit"
        assert str(served.engine.artifact_path) == reports["int8_static"].artifact["path"]
    finally:
        served.engine.close()
    again = run_trial(quick_spec(runtime="openvino", precision="int8_static"), tmp_path / "again")
    assert again.status == "ok", again.reason
    assert again.artifact["cache"] == "hit"
    assert again.artifact["cache_steps"] == "export:hit,convert:hit,int8_static:hit"
    assert again.artifact["path"] == reports["int8_static"].artifact["path"]
    assert again.metrics["rougeLsum"] == reports["int8_static"].metrics["rougeLsum"]


def test_int8_static_smooth_quant_follows_the_calibration_size(adapter, cache_dir, tmp_path):
    """SmoothQuant only with enough calibration sentences; either way every Linear is int8 and the
    embeddings stay close to torch fp32. The calibration is part of the cache key."""
    from infersweep.trials.data import load_examples
    from infersweep.trials.runtimes.openvino import SMOOTH_QUANT_MIN_SENTENCES

    few = ["The mayor spoke to reporters. Schools will close early on Friday because of the storm."]
    slice_ = [e.document for e in load_examples("sample", "document", "summary")[-8:]]
    small = _prepare(adapter, "int8_static", few, tmp_path / "few")
    large = _prepare(adapter, "int8_static", slice_, tmp_path / "slice")
    try:
        small_facts, large_facts = _manifest(small)["facts"], _manifest(large)["facts"]
        assert small_facts["calibration_sentences"] < SMOOTH_QUANT_MIN_SENTENCES <= large_facts["calibration_sentences"]
        assert small_facts["smooth_quant"] is False and large_facts["smooth_quant"] is True
        assert small_facts["fake_quantize"] >= 36 and large_facts["fake_quantize"] >= 36  # 6 layers x 6 Linear
        assert small.artifact_path != large.artifact_path
        assert _cosines(adapter, large).min() >= 0.99
        assert _cosines(adapter, small).min() >= 0.98
    finally:
        small.close()
        large.close()


def test_int4_weight_is_smaller_than_int8(adapter, cache_dir, tmp_path):
    int4 = _prepare(adapter, "int4_weight", [], tmp_path / "int4")
    fp32 = _prepare(adapter, "fp32", [], tmp_path / "fp32")
    try:
        facts = _manifest(int4)["facts"]
        assert facts["int4_weights"] >= 35 and facts["int8_weights"] >= 1  # the embeddings: int8 backup
        assert int4.size_mb() < 0.25 * fp32.size_mb()
        assert fp32.size_mb() > 80  # float32 weights, not compressed to fp16 on save
    finally:
        int4.close()
        fp32.close()


def test_bf16_runs_only_with_native_bf16(adapter, cache_dir, tmp_path):
    """OpenVINO accepts the bf16 hint anywhere and quietly runs f32 without native bf16: such a
    trial is infeasible, and the engine refuses it too."""
    import openvino

    from infersweep.trials.runtimes.openvino import OpenVinoUnavailable

    runtime = get_runtime("openvino")
    spec = TrialSpec(runtime="openvino", precision="bf16")
    reason = check(spec, CPU)
    assert "runtime 'openvino' runs bf16 only on CPUs with native bf16" in reason and "fp32" in reason
    assert check(spec, BF16_CPU) is None
    native = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if detect().cpu_has_bf16:  # the flags feasibility reads: OpenVINO runs bf16 wherever they say so
        assert native
    if not native:
        with pytest.raises(OpenVinoUnavailable, match="no native bf16"):
            _prepare(adapter, "bf16", [], tmp_path)
        return
    engine = _prepare(adapter, "bf16", [], tmp_path)
    try:
        assert engine.cache_info["inference_precision"] == "bf16"
        assert _cosines(adapter, engine).min() >= 0.99
    finally:
        engine.close()


def test_reasons_where_openvino_cannot_run(monkeypatch):
    fp16 = check(TrialSpec(runtime="openvino", precision="fp16"), CPU)
    assert "does not run fp16 for extractive on cpu" in fp16 and "onnxruntime or tensorrt" in fp16
    cuda = check(TrialSpec(runtime="openvino", device="cuda"), GPU)
    assert "OpenVINO runs on CPU here" in cuda and "onnxruntime" in cuda
    int8_dynamic = check(TrialSpec(runtime="openvino", precision="int8_dynamic"), CPU)
    assert "weight-only int8" in int8_dynamic and "int8_static" in int8_dynamic
    assert check(TrialSpec(runtime="openvino", precision="int8_static"), CPU) is None
    other_task = check(TrialSpec(runtime="openvino", task="seq2seq", model="t5-small"), CPU)
    assert other_task and "does not run the seq2seq task" in other_task

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "nncf" else real(name, *a))
    assert check(TrialSpec(runtime="openvino"), CPU) is None  # fp32 needs openvino alone
    missing = check(TrialSpec(runtime="openvino", precision="int4_weight"), CPU)
    assert "'nncf'" in missing and "infersweep[openvino]" in missing


BOUND = {"max_rouge_drop_pct": 1.0}


def test_a_quality_bound_applies_to_int8_static_where_a_runtime_can_keep_it():
    bounded = dict(precision="int8_static", quantization=BOUND)
    assert check(TrialSpec(runtime="openvino", **bounded), CPU) is None
    reason = check(TrialSpec(runtime="onnxruntime", **bounded), CPU)
    assert "without a quality bound" in reason and "openvino" in reason and "leave the setting out" in reason
    # precisions that calibrate nothing ignore the bound
    assert check(TrialSpec(runtime="onnxruntime", precision="int8_dynamic", quantization=BOUND), CPU) is None
    assert check(TrialSpec(runtime="torch", quantization=BOUND), CPU) is None
    from infersweep.trials.runtimes.base import recipe_for

    recipe = recipe_for(get_runtime("openvino"), TrialSpec(runtime="openvino", **bounded))
    assert recipe.knobs["accuracy_control"]["max_rouge_drop_pct"] == 1.0
    assert recipe.build.keywords == {"max_rouge_drop_pct": 1.0}
    assert "accuracy_control" not in recipe_for(get_runtime("openvino"),
                                                TrialSpec(runtime="openvino", precision="int8_static")).knobs


def test_accuracy_controlled_int8_static_keeps_rouge_within_the_bound(quick_spec, cache_dir, tmp_path):
    """NNCF's accuracy control driven by the trial's own ROUGE-Lsum on the calibration slice: the
    bound holds there (scored again after NNCF returns, by our code), the IR is its own cache
    entry, and a saved variant keeps the references it needs to rebuild the same IR (from the cache)."""
    from infersweep.trials import run_trial
    from infersweep.trials.package import SPEC_FILE, Summarizer, save_variant

    spec = quick_spec(runtime="openvino", precision="int8_static", quantization=BOUND)
    report = run_trial(spec, tmp_path / "bounded")
    assert report.status == "ok", report.reason
    facts = json.loads((Path(report.artifact["path"]).parent / "manifest.json").read_text())["facts"]
    assert facts["calibration_documents"] == 8 and facts["rouge_lsum_float"] > 0
    assert facts["within_bound"] is True and facts["rouge_drop_pct"] <= 1.0
    plain = run_trial(quick_spec(runtime="openvino", precision="int8_static"), tmp_path / "plain")
    assert plain.status == "ok", plain.reason
    assert plain.artifact["path"] != report.artifact["path"]
    variant = save_variant(spec, tmp_path / "variant")
    assert len(json.loads((variant / SPEC_FILE).read_text())["calibration_references"]) == 8
    served = Summarizer(variant)
    try:
        assert served.engine.cache_info["cache"] == "hit"
        assert str(served.engine.artifact_path) == report.artifact["path"]
    finally:
        served.engine.close()


def test_accuracy_control_returns_layers_to_float_until_the_probe_is_satisfied(adapter, cache_dir, tmp_path):
    """A probe stricter than ROUGE (cosine of each document's sentence embeddings to torch fp32's,
    x100) with a tight bound: plain PTQ misses it, so NNCF must put some layers back in float; the
    result has fewer FakeQuantize nodes than plain int8_static and meets the bound."""
    import hashlib

    import torch

    from infersweep.trials.data import load_examples
    from infersweep.trials.runtimes.base import QualityProbe

    documents = [e.document for e in load_examples("sample", "document", "summary")[-2:]]
    chunks = [adapter.batches([doc], 1)[0].chunks for doc in documents]
    with torch.inference_mode():
        expected = [[adapter.module(**c.inputs).numpy() for c in doc] for doc in chunks]

    def cosine(out, reference):
        out = np.asarray(out, dtype=np.float32)
        return (out * reference).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1))

    def score(forward, indices):
        return [float(100 * np.mean([cosine(forward(**c.inputs), e).mean() for c, e in zip(chunks[i], expected[i])]))
                for i in indices]

    probe = QualityProbe(len(documents), score, hashlib.sha1(b"cosine-probe").hexdigest())
    model = adapter.prepared_model(documents)
    model.module, model.quality_probe = copy.deepcopy(model.module), probe
    runtime = get_runtime("openvino")
    plain = runtime.prepare(model, TrialSpec(runtime="openvino", precision="int8_static", cpus=2), tmp_path / "plain")
    bounded = runtime.prepare(model, TrialSpec(runtime="openvino", precision="int8_static", cpus=2,
                                               quantization={"max_rouge_drop_pct": 0.05}), tmp_path / "bounded")
    try:
        plain_facts, facts = _manifest(plain)["facts"], _manifest(bounded)["facts"]
        plain_drop = 100 - float(np.mean(score(plain, range(len(documents)))))
        assert plain_drop > 0.05, "plain PTQ already meets the bound: the test would not exercise accuracy control"
        assert facts["within_bound"] is True and facts["rouge_drop_pct"] <= 0.05
        assert 0 < facts["fake_quantize"] < plain_facts["fake_quantize"]  # some layers back in float, not all
        # what came back computes the float model's function where it is float (a reverted layer whose
        # input kept SmoothQuant's scaling scored 25 here): the probe sees what the facts say
        assert float(np.mean(score(bounded, range(len(documents))))) == pytest.approx(facts["rouge_lsum_quantized"],
                                                                                     abs=1e-3)
    finally:
        plain.close()
        bounded.close()
