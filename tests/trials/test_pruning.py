"""Structured and 2:4 pruning on the bundled encoder: shapes, outputs, save/load, ONNX, ROUGE."""
import copy
import json
import warnings

import numpy as np
import pytest
import torch

from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.hardware import Hardware
from infersweep.trials.models.extractive import ExtractiveSummarizer
from infersweep.trials.pruning import (PRUNING_METHODS, apply_pruning, attention_shape, blocks, count_parameters,
                            linear_sparsity, load_encoder, mask_2_4, pruning_infeasible_reason,
                            save_pruned)

HEADS, HEAD_SIZE, FFN, LAYERS = 12, 32, 1536, 6  # all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def adapter():
    return ExtractiveSummarizer(TrialSpec(n=4))


@pytest.fixture(scope="module")
def inputs(adapter):
    return adapter.prepared_model().example_inputs


@pytest.fixture(scope="module")
def calibration(adapter):
    from infersweep.trials.data import load_examples

    docs = [e.document for e in load_examples("sample")[-1:]]
    return adapter.prepared_model(docs).calibration_inputs


def _fresh(adapter):
    return copy.deepcopy(adapter.module)


def _embed(module, inputs):
    with torch.inference_mode():
        return module(**inputs)


def test_structured_removes_heads_and_neurons_physically(adapter, inputs):
    module = _fresh(adapter)
    before = count_parameters(module)
    facts = apply_pruning(module, "structured", 0.25, ffn_ratio=0.5, scope="layer")
    kept_heads, kept_ffn = HEADS - 3, FFN // 2
    for b in blocks(module):
        assert b.attention.query.weight.shape == (kept_heads * HEAD_SIZE, 384)
        assert b.attention.key.out_features == b.attention.value.out_features == kept_heads * HEAD_SIZE
        assert b.attn_out.weight.shape == (384, kept_heads * HEAD_SIZE)
        assert b.ffn_in.weight.shape == (kept_ffn, 384) and b.ffn_out.weight.shape == (384, kept_ffn)
        assert b.attention.num_attention_heads == kept_heads
    removed = LAYERS * (3 * HEAD_SIZE * (4 * 384 + 3) + (FFN - kept_ffn) * (2 * 384 + 1))
    assert facts["params_before"] == before
    assert facts["params_after"] == count_parameters(module) == before - removed
    assert facts["heads_removed"] == 3 * LAYERS and facts["neurons_removed"] == (FFN - kept_ffn) * LAYERS
    assert "removed 18 of 72 attention heads" in facts["note"]
    assert attention_shape(module.encoder.config) == (kept_heads, kept_heads * HEAD_SIZE)
    assert attention_shape(adapter.config) == (HEADS, 384)  # the unpruned original
    out = _embed(module, inputs)
    assert out.shape == (2, 384) and torch.isfinite(out).all()
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_per_kind_ratios_and_importance(adapter, calibration):
    heads_only = _fresh(adapter)
    facts = apply_pruning(heads_only, "structured", 0.5, ffn_ratio=0.0, calibration=calibration)
    assert facts["importance"] == "activation"
    assert facts["neurons_removed"] == 0 and facts["heads_removed"] == 36
    ffn_only = _fresh(adapter)
    facts = apply_pruning(ffn_only, "structured", 0.3, head_ratio=0.0, importance="weight")
    assert facts["heads_removed"] == 0 and facts["neurons_removed"] == round(0.3 * FFN * LAYERS)
    with pytest.raises(ValueError, match="calibration"):
        apply_pruning(_fresh(adapter), "structured", 0.3, importance="activation")


def test_global_scope_never_empties_a_layer(adapter, calibration):
    module = _fresh(adapter)
    facts = apply_pruning(module, "structured", 0.9, scope="global", calibration=calibration)
    assert facts["heads_removed"] >= 0.85 * HEADS * LAYERS
    assert min(facts["heads_per_layer"]) >= 1 and min(facts["intermediate_per_layer"]) >= 1
    assert facts["heads_per_layer"] != [facts["heads_per_layer"][0]] * LAYERS  # not uniform
    assert attention_shape(module.encoder.config) == (0, 0)
    assert torch.isfinite(_embed(module, adapter.prepared_model().example_inputs)).all()


def test_pruning_twice_keeps_original_head_ids(adapter):
    module = _fresh(adapter)
    apply_pruning(module, "structured", 0.25, scope="layer")
    apply_pruning(module, "structured", 0.34, scope="layer")
    layout = module.encoder.config.structured_pruning
    assert layout["num_heads"] == [6] * LAYERS
    assert all(len(k) == 6 and set(k) <= set(range(HEADS)) for k in layout["kept_heads"])


def test_pruned_model_saves_and_reloads(adapter, inputs, tmp_path):
    module = _fresh(adapter)
    apply_pruning(module, "structured", 0.3, scope="global")
    expected = _embed(module, inputs)
    save_pruned(module, tmp_path / "pruned", tokenizer=adapter.tokenizer)
    reloaded = type(module)(load_encoder(tmp_path / "pruned")).eval()
    assert [b.num_heads for b in blocks(reloaded)] == [b.num_heads for b in blocks(module)]
    assert count_parameters(reloaded) == count_parameters(module)
    torch.testing.assert_close(_embed(reloaded, inputs), expected)
    size = lambda p: sum(f.stat().st_size for f in p.glob("*.safetensors"))  # noqa: E731
    save_pruned(_fresh(adapter), tmp_path / "dense")
    kept = count_parameters(module) / count_parameters(adapter.module)
    assert kept < 0.9  # fp32 on disk: the file shrinks by the share of parameters removed
    assert size(tmp_path / "pruned") / size(tmp_path / "dense") == pytest.approx(kept, rel=0.01)
    # an unpruned checkpoint loads through the same function
    dense = type(module)(load_encoder(tmp_path / "dense")).eval()
    torch.testing.assert_close(_embed(dense, inputs), _embed(adapter.module, inputs))


def test_mismatched_checkpoint_is_a_clear_error(adapter, tmp_path):
    module = _fresh(adapter)
    apply_pruning(module, "structured", 0.3)
    save_pruned(module, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["structured_pruning"]["intermediate_sizes"][0] += 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, RuntimeError), match="size mismatch|does not match"):
        load_encoder(tmp_path)


@pytest.mark.parametrize("scope, heads", [(None, 8), ("global", 0)])
def test_pruned_model_exports_to_onnx_and_fuses(adapter, inputs, tmp_path, scope, heads):
    """Plain export matches torch; ONNX Runtime's transformers optimizer, given attention_shape(),
    fuses Attention when every layer keeps the same head count and still runs correctly when not."""
    import logging

    import onnxruntime as ort
    from onnxruntime.transformers import optimizer

    module = _fresh(adapter)
    apply_pruning(module, "structured", 0.3, scope=scope)
    config = module.encoder.config
    assert attention_shape(config) == (heads, heads * HEAD_SIZE)
    path = tmp_path / "pruned.onnx"
    module.encoder.set_attn_implementation("eager")  # the export the ORT runtime does (fusable)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (inputs["input_ids"], inputs["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}},
                          opset_version=17, dynamo=False)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    num_heads, hidden = attention_shape(config)
    fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=num_heads,
                                     hidden_size=hidden, opt_level=0)
    assert fused.get_fused_operator_statistics().get("Attention", 0) == (LAYERS if heads else 0)
    fused.save_model_to_file(str(tmp_path / "fused.onnx"))
    other = adapter.prepared_model(["One more sentence to embed. And a second, longer one here."])
    for onnx_path in (path, tmp_path / "fused.onnx"):
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        for feed in (inputs, other.calibration_inputs[0]):
            got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
            np.testing.assert_allclose(got, _embed(module, feed).numpy(), atol=1e-4)


def test_structured_trial_is_smaller_and_keeps_rouge(quick_spec, tmp_path):
    dense = run_trial(quick_spec(n=8, batch_size=4), tmp_path / "dense")
    pruned = run_trial(quick_spec(n=8, batch_size=4, pruning="structured", prune_ratio=0.1),
                       tmp_path / "pruned")
    assert pruned.status == "ok", pruned.reason
    facts = pruned.artifact
    kept = facts["params_after"] / facts["params_before"]
    assert facts["heads_removed"] > 0 and kept < 0.97
    assert pruned.metrics["model_size_mb"] / dense.metrics["model_size_mb"] == pytest.approx(kept, rel=0.01)
    assert any("FFN neurons" in note for note in pruned.notes)
    drop = 100 * (dense.metrics["rougeLsum"] - pruned.metrics["rougeLsum"]) / dense.metrics["rougeLsum"]
    assert drop <= 5.0  # a small ratio keeps ROUGE close (measured: see docs/benchmarks.md)


def test_spec_and_unknown_method():
    assert "structured" in PRUNING_METHODS and "semi_structured_2_4" in PRUNING_METHODS
    assert TrialSpec(pruning="structured", prune_ratio=0.3).short_name().endswith("structured0.3-b1")
    with pytest.raises(ValueError, match="valid"):
        apply_pruning(torch.nn.Linear(4, 4), "magic", 0.3)


def test_non_bert_layout_gets_a_clear_error():
    from transformers import T5Config, T5EncoderModel

    model = T5EncoderModel(T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4))
    with pytest.raises(ValueError, match="BERT-layout"):
        apply_pruning(model, "structured", 0.3)


# ------------------------------------------------------------------ 2:4 semi-structured

def test_semi_structured_is_infeasible_off_ampere():
    cpu = Hardware()
    reason = pruning_infeasible_reason("semi_structured_2_4", "cpu", cpu)
    assert reason and "GPU" in reason and "structured" in reason
    turing = Hardware(cuda_available=True, gpu_name="Tesla T4", gpu_compute_capability=(7, 5))
    assert "8.0" in pruning_infeasible_reason("semi_structured_2_4", "cuda", turing)
    ampere = Hardware(cuda_available=True, gpu_name="A100", gpu_compute_capability=(8, 0))
    assert pruning_infeasible_reason("semi_structured_2_4", "cuda", ampere, precision="fp16") is None
    assert "fp16" in pruning_infeasible_reason("semi_structured_2_4", "cuda", ampere, precision="fp32")
    assert "0.5" in pruning_infeasible_reason("semi_structured_2_4", "cuda", ampere, ratio=0.7)
    for method in ("none", "unstructured", "structured"):
        assert pruning_infeasible_reason(method, "cpu", cpu) is None


def test_2_4_mask_and_dense_fallback(adapter, inputs):
    w = torch.randn(64, 128)
    groups, kept = w.abs().reshape(64, 32, 4), mask_2_4(w).reshape(64, 32, 4)
    assert (kept.sum(-1) == 2).all()
    smallest_kept = groups.masked_fill(~kept, float("inf")).amin(-1)
    largest_dropped = groups.masked_fill(kept, -1.0).amax(-1)
    assert (smallest_kept >= largest_dropped).all()  # the two largest |w| of each group stay
    module = _fresh(adapter)
    facts = apply_pruning(module, "semi_structured_2_4", 0.5)
    assert facts["sparsity"] == pytest.approx(0.5, abs=0.01) and facts["layers_2_4"] == LAYERS * 6
    for b in blocks(module):  # every group of four input weights holds two zeros
        groups = (b.ffn_in.weight != 0).reshape(b.ffn_in.out_features, -1, 4).sum(-1)
        assert (groups <= 2).all()
    half = _fresh(adapter)
    assert apply_pruning(half, "semi_structured_2_4", 0.25)["sparsity"] == pytest.approx(0.25, abs=0.05)
    converted = [m for m in module.modules() if type(m).__name__ == "SemiStructuredLinear"]
    assert len(converted) == facts["layers_2_4"]
    dense = copy.deepcopy(module)  # CPU: the converted layers run their masked weights densely
    for m in dense.modules():
        if type(m).__name__ == "SemiStructuredLinear":
            m.__class__ = torch.nn.Linear
    torch.testing.assert_close(_embed(module, inputs), _embed(dense, inputs), rtol=0, atol=0)


@pytest.mark.gpu
def test_2_4_runs_sparse_kernels_on_cuda(adapter, inputs):
    from infersweep.trials.pruning import semi_structured_supported

    if not semi_structured_supported():
        pytest.skip("needs compute capability >= 8.0")
    module = _fresh(adapter)
    apply_pruning(module, "semi_structured_2_4", 0.5)
    dense_masked = copy.deepcopy(module).cuda().half()
    sparse = module.cuda().half()
    cuda_inputs = {k: v.cuda() for k, v in inputs.items()}
    with torch.inference_mode():
        got = sparse(**cuda_inputs)
        lin = blocks(sparse)[0].ffn_in
        assert isinstance(lin._sparse, torch.sparse.SparseSemiStructuredTensor)
        for m in dense_masked.modules():  # the reference: plain dense kernels on the same weights
            if type(m).__name__ == "SemiStructuredLinear":
                m.__class__ = torch.nn.Linear
        want = dense_masked(**cuda_inputs)
    torch.testing.assert_close(got.float(), want.float(), atol=2e-2, rtol=2e-2)
    assert linear_sparsity(module) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("runtime, precision", [("onnxruntime", "fp32"), ("onnxruntime", "int8_dynamic"),
                                                ("torchscript", "fp32")])
def test_pruned_model_runs_on_other_runtimes(adapter, inputs, runtime, precision, tmp_path, monkeypatch):
    """A structurally pruned encoder through each runtime's own pipeline (export, fusion, quantization)."""
    from infersweep.trials.runtimes import get_runtime

    monkeypatch.setenv("INFERSWEEP_CACHE", str(tmp_path / "cache"))
    module = _fresh(adapter)
    apply_pruning(module, "structured", 0.3)
    expected = _embed(module, inputs)
    adapter_view = copy.copy(adapter)
    adapter_view.module = module
    model = adapter_view.prepared_model(["A calibration sentence. And one more for the slice."])
    assert (model.num_heads, model.hidden_size) == (8, 8 * HEAD_SIZE)
    engine = get_runtime(runtime).prepare(model, TrialSpec(runtime=runtime, precision=precision), tmp_path)
    out = engine(**inputs)
    got = out.detach() if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out))
    cosine = torch.nn.functional.cosine_similarity(got.float(), expected)
    assert cosine.min() >= (0.9999 if precision == "fp32" else 0.93)
    engine.close()


def test_trial_takes_per_kind_ratios_and_importance(quick_spec, tmp_path):
    spec = quick_spec(pruning="structured", prune_ratio=0.3,
                      structured={"ffn_ratio": 0.0, "importance": "weight"})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    facts = report.artifact
    assert facts["importance"] == "weight" and facts["neurons_removed"] == 0 and facts["heads_removed"] == 24
    assert spec.trial_id() != quick_spec(pruning="structured", prune_ratio=0.3).trial_id()


def test_sweep_trial_settings_carry_structured_pruning(tmp_path):
    from infersweep.sweeps.spec import SweepSpecError, load_sweep_spec

    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntrial: {structured: {head_ratio: 0.1, importance: weight}}\n")
    spec = load_sweep_spec(path).trial_spec({"pruning": "structured", "prune_ratio": 0.4})
    assert spec.structured.head_ratio == 0.1 and spec.structured.ffn_ratio is None
    path.write_text("name: s\ntrial: {structured: {heads: 0.1}}\n")
    with pytest.raises(SweepSpecError, match="trial.structured.heads"):
        load_sweep_spec(path)
