"""Decoder-only LMs on OpenVINO (trials/runtimes/openvino_causal.py): the causal ONNX export as IR,
the key/values kept in plugin tensors by two requests in turn, the onnxruntime engine's greedy loop.

The bar is the onnxruntime causal engine's: fp32 generates exactly torch's token ids on left-padded
batches of the tiny and the "sharp" Llama-layout fixtures; int4_weight is held to its last-position
logits against torch fp32 (cosine >= 0.90: hidden width 32 is a single 4-bit group per row).
"""
from __future__ import annotations

import pytest

from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware, detect
from infersweep.trials.measure import OUTPUT_TOKENS_PER_S, TPOT, TTFT
from infersweep.trials.runtimes import get_runtime
from infersweep.trials.runtimes.base import missing_requirement, precisions_for
from tests.conftest import CAUSAL_DOCUMENTS as DOCUMENTS

pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'infersweep[openvino]'")

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
QUICK_TIMING = {"max_seconds": 1, "min_passes": 1, "min_batches": 1, "rel_halfwidth_pct": 100}
MIN_COSINE = {"fp32": 0.9999, "bf16": 0.98, "int4_weight": 0.90}


def _spec(model_dir, **overrides) -> TrialSpec:
    fields = dict(model=str(model_dir), task="causal", runtime="openvino", cpus=1,
                  causal={"max_new_tokens": 12, "max_input_tokens": 96})
    fields.update(overrides)
    return TrialSpec(**fields)


def _runnable(spec) -> bool:
    return check(spec, detect()) is None and not missing_requirement(get_runtime("openvino"), spec)


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir, sharp_llama_dir):
    from infersweep.trials.models.causal import CausalSummarizer

    return {name: CausalSummarizer(_spec(path)) for name, path in (("tiny", tiny_llama_dir),
                                                                    ("sharp", sharp_llama_dir))}


@pytest.fixture(scope="module")
def engines(adapters, tiny_llama_dir, sharp_llama_dir, cache_dir, tmp_path_factory):
    dirs, built = {"tiny": tiny_llama_dir, "sharp": sharp_llama_dir}, {}

    def get(name: str, precision: str = "fp32"):
        if (name, precision) not in built:
            built[name, precision] = get_runtime("openvino").prepare(
                adapters[name].prepared_model(), _spec(dirs[name], precision=precision), tmp_path_factory.mktemp("w"))
        return built[name, precision]

    yield get
    for engine in built.values():
        engine.close()


def _batch(adapter):
    batch = adapter.batches(DOCUMENTS, len(DOCUMENTS))[0].inputs
    assert (batch["attention_mask"] == 0).any(), "the batch must be left-padded"
    return batch


def test_the_support_table_for_causal():
    runtime = get_runtime("openvino")
    assert set(map(str, precisions_for(runtime, "causal", "cpu"))) == {"fp32", "bf16", "int4_weight"}
    assert precisions_for(runtime, "causal", "cuda") == ()
    reason = check(TrialSpec(task="causal", model="m", runtime="openvino", precision="int8_dynamic"), CPU)
    assert "int4_weight on openvino" in reason and "int8_dynamic on onnxruntime or torch" in reason


@pytest.mark.parametrize("name", ["tiny", "sharp"])
def test_fp32_generates_torchs_tokens_on_a_left_padded_batch(adapters, engines, name):
    import torch

    adapter = adapters[name]
    batch = _batch(adapter)
    kwargs = dict(max_new_tokens=16, do_sample=False, num_beams=1, pad_token_id=adapter.tokenizer.pad_token_id)
    with torch.inference_mode():
        expected = adapter.module.generate(**batch, **kwargs)
    got = engines(name).generate(**batch, **kwargs)
    assert got.tolist() == expected.tolist()
    again = engines(name).generate(**{k: v[:1] for k, v in batch.items()}, **kwargs)  # another batch size
    assert again.tolist() == expected[:1, :again.shape[1]].tolist() or again.shape[1] < expected.shape[1]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int4_weight"])
def test_last_logits_stay_close_to_torch_fp32(adapters, engines, sharp_llama_dir, precision):
    import numpy as np
    import torch

    if not _runnable(_spec(sharp_llama_dir, precision=precision)):
        pytest.skip(check(_spec(sharp_llama_dir, precision=precision), detect()) or "not installed")
    adapter = adapters["sharp"]
    batch = _batch(adapter)
    with torch.inference_mode():
        reference = adapter.module(**batch).logits[:, -1, :].numpy()
    got = engines("sharp", precision)(**batch)
    cosine = (got * reference).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(reference, axis=-1))
    assert cosine.min() >= MIN_COSINE[precision], cosine


def test_int4_compresses_the_matmul_weights(engines):
    import openvino as ov

    model = ov.Core().read_model(str(engines("tiny", "int4_weight").artifact_path))
    kinds = [op.get_element_type().get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"]
    assert sum(kind in ("i4", "u4") for kind in kinds) == 2 * 7  # q/k/v/o, gate/up/down per layer
    assert sum(kind in ("i8", "u8") for kind in kinds) >= 1  # lm_head (and the embeddings): NNCF's int8 backup
    assert engines("tiny", "int4_weight").size_mb() < engines("tiny", "fp32").size_mb()


@pytest.mark.parametrize("precision", ["fp32", "int4_weight"])
def test_trial(tiny_llama_dir, cache_dir, tmp_path, precision):
    spec = _spec(tiny_llama_dir, precision=precision, n=3, batch_size=2, warmup=0, repeats=1, timing=QUICK_TIMING,
                 causal={"max_new_tokens": 6})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert len(report.outputs) == 3 and all(s.strip() for s in report.sample_summaries)
    for name in (TTFT, TPOT, OUTPUT_TOKENS_PER_S, "latency_ms_per_sample", "model_size_mb", "peak_memory_mb"):
        assert report.metrics[name] > 0, name
    if precision == "fp32":
        torch_report = run_trial(spec.model_copy(update={"runtime": "torch"}), tmp_path / "torch")
        assert report.outputs == torch_report.outputs
