"""Structured pruning of a Llama-layout decoder (the causal task), on the tiny random fixture: 4 query
heads sharing 2 key/value heads (grouped-query attention), MLP width 64, 2 layers.

The bar: the pruned model is physically smaller and computes exactly what the unpruned model computes
with the removed units silenced (their o_proj columns and down_proj columns zeroed), so the slicing
keeps every query head with its own key/value group; it saves and reloads with the same logits, runs
in trials on torch and ONNX Runtime, and the sensitivity scan measures it.
"""
from __future__ import annotations

import copy

import pytest

from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware
from infersweep.trials.pruning import (CONFIG_KEY, blocks, count_parameters, load_causal_lm, prune_structured,
                                       save_pruned)

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
QUICK_TIMING = {"max_seconds": 1, "min_passes": 1, "min_batches": 1, "rel_halfwidth_pct": 100}
HIDDEN, HEAD_DIM, GROUP, FFN, LAYERS = 32, 8, 2, 64, 2


@pytest.fixture(scope="module")
def model(tiny_llama_dir):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.initializer_range *= 10  # logits that depend on every unit
    torch.manual_seed(2)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def inputs():
    import torch

    ids = torch.tensor([[0, 0, 5, 17, 99, 3], [7, 8, 9, 10, 11, 12]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _logits(module, inputs):
    import torch

    with torch.inference_mode():
        return module(**inputs).logits


def _kept(module) -> tuple[list, list]:
    layout = getattr(module.config, CONFIG_KEY)
    return layout["kept_heads"], layout


def test_whole_kv_groups_and_mlp_neurons_are_removed(model, inputs):
    pruned = copy.deepcopy(model)
    facts = prune_structured(pruned, 0.5, 0.25, importance="weight")
    for b in blocks(pruned):
        attn, mlp = b.attention, b.layer.mlp
        assert attn.k_proj.out_features == attn.v_proj.out_features == 1 * HEAD_DIM  # one of two groups
        assert attn.q_proj.out_features == attn.o_proj.in_features == GROUP * HEAD_DIM  # its two query heads
        assert attn.num_key_value_groups == GROUP
    assert sum(b.intermediate_size for b in blocks(pruned)) == round(0.75 * LAYERS * FFN)
    assert [b.layer.mlp.gate_proj.out_features for b in blocks(pruned)] == \
        [b.layer.mlp.down_proj.in_features for b in blocks(pruned)]
    removed_attention = LAYERS * (GROUP * HEAD_DIM * HIDDEN * 2 + HEAD_DIM * HIDDEN * 2)  # q, o; k, v
    removed_mlp = round(0.25 * LAYERS * FFN) * 3 * HIDDEN
    assert count_parameters(model) - count_parameters(pruned) == removed_attention + removed_mlp
    assert facts["params_after"] == count_parameters(pruned) and facts["heads_removed"] == LAYERS
    assert _logits(pruned, inputs).shape == _logits(model, inputs).shape


@pytest.mark.parametrize("importance", ["weight", "activation"])
def test_pruned_model_equals_the_original_with_the_removed_units_silenced(model, inputs, importance):
    import torch

    pruned = copy.deepcopy(model)
    calibration = [inputs] if importance == "activation" else None
    prune_structured(pruned, 0.5, 0.5, importance=importance, calibration=calibration)
    kept_groups, _ = _kept(pruned)
    silenced = copy.deepcopy(model)
    with torch.no_grad():
        for b, groups, small in zip(blocks(silenced), kept_groups, blocks(pruned)):
            heads = [g * GROUP + j for g in range(2) if g not in groups for j in range(GROUP)]
            for h in heads:
                b.attn_out.weight[:, h * HEAD_DIM:(h + 1) * HEAD_DIM] = 0
            kept = set(_kept_neurons(b, small))
            for i in range(FFN):
                if i not in kept:
                    b.ffn_out.weight[:, i] = 0
    torch.testing.assert_close(_logits(pruned, inputs), _logits(silenced, inputs), rtol=1e-4, atol=1e-5)


def _kept_neurons(full, small) -> list[int]:
    """Which of the full layer's neurons the pruned layer kept (matching gate rows)."""
    big, cut = full.layer.mlp.gate_proj.weight, small.layer.mlp.gate_proj.weight
    return [i for i in range(big.shape[0]) if any(bool((big[i] == row).all()) for row in cut)]


def test_saved_pruned_model_reloads_with_the_same_logits(model, inputs, tmp_path):
    import torch

    pruned = copy.deepcopy(model)
    prune_structured(pruned, 0.5, 0.3, importance="weight")
    save_pruned(pruned, tmp_path / "pruned")
    loaded = load_causal_lm(tmp_path / "pruned")
    assert count_parameters(loaded) == count_parameters(pruned)
    assert torch.equal(_logits(loaded, inputs), _logits(pruned, inputs))
    size = sum(f.stat().st_size for f in (tmp_path / "pruned").glob("*.safetensors"))
    assert size < 4 * count_parameters(model)  # physically smaller on disk


def test_structured_is_feasible_for_causal_but_not_seq2seq():
    assert check(TrialSpec(task="causal", model="m", pruning="structured", prune_ratio=0.2), CPU) is None
    seq2seq = check(TrialSpec(task="seq2seq", model="m", pruning="structured", prune_ratio=0.2), CPU)
    assert "for the seq2seq task use 'unstructured' pruning" in seq2seq


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_trial_with_structured_pruning(tiny_llama_dir, cache_dir, tmp_path, runtime):
    common = dict(model=str(tiny_llama_dir), task="causal", runtime=runtime, n=3, batch_size=2, warmup=0, repeats=1,
                  cpus=1, timing=QUICK_TIMING, causal={"max_new_tokens": 5, "max_input_tokens": 96})
    full = run_trial(TrialSpec(**common), tmp_path / "full")
    pruned = run_trial(TrialSpec(**common, pruning="structured", prune_ratio=0.5), tmp_path / "pruned")
    assert full.status == pruned.status == "ok", pruned.reason
    assert pruned.metrics["model_size_mb"] < full.metrics["model_size_mb"]
    assert any("structured pruning removed 2 of 4 attention heads" in n for n in pruned.notes), pruned.notes


def test_saved_structured_variant_summarizes_like_its_trial(tiny_llama_dir, cache_dir, tmp_path):
    from infersweep.trials.data import eval_slice, load_examples
    from infersweep.trials.package import Summarizer, save_variant

    spec = TrialSpec(model=str(tiny_llama_dir), task="causal", runtime="onnxruntime", pruning="structured",
                     prune_ratio=0.5, n=3, batch_size=2, warmup=0, repeats=1, cpus=1, timing=QUICK_TIMING,
                     causal={"max_new_tokens": 5, "max_input_tokens": 96})
    report = run_trial(spec, tmp_path / "trial")
    assert report.status == "ok", report.reason
    served = Summarizer(save_variant(spec, tmp_path / "variant"))
    assert getattr(served.adapter.module.config, CONFIG_KEY)["num_heads"] == [1, 1]
    documents = [e.document for e in eval_slice(load_examples("sample"), spec.n, spec.seed)]
    assert served.summarize(documents) == report.outputs


def test_sensitivity_scan_of_a_causal_lm(tiny_llama_dir, tmp_path):
    from infersweep.trials.sensitivity import Scanner

    spec = TrialSpec(model=str(tiny_llama_dir), task="causal", n=2, batch_size=2, warmup=0, repeats=1, cpus=1,
                     causal={"max_new_tokens": 4, "max_input_tokens": 96})
    scanner = Scanner(spec, importance="activation", calibration_docs=2, workdir=tmp_path)
    result = scanner.run(kinds=["heads", "ffn"], ratios=[0.5], layer_ratio=0.5)
    heads, = result.of_kind("heads")
    ffn, = result.of_kind("ffn")
    base = result.baseline.params
    assert base - heads.params == LAYERS * (GROUP * HEAD_DIM * HIDDEN * 2 + HEAD_DIM * HIDDEN * 2)
    assert base - ffn.params == round(0.5 * LAYERS * FFN) * 3 * HIDDEN
    per_layer = result.of_kind("heads", per_layer=True)
    assert [r.layer for r in per_layer] == [0, 1] and all(r.latency_ms_per_sample is None or r.latency_ms_per_sample > 0
                                                           for r in per_layer)
