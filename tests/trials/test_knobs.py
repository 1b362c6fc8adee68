"""Each knob does what it says on a real encoder."""
import pytest
import torch

from infersweep.trials import TrialSpec
from infersweep.trials.models.extractive import ExtractiveSummarizer
from infersweep.trials.runtimes.torch_precision import TORCH_CPU
from infersweep.trials.pruning import apply_pruning, linear_sparsity, prunable_linears


@pytest.fixture(scope="module")
def adapter():
    return ExtractiveSummarizer(TrialSpec())


def _fresh(adapter):
    import copy

    return copy.deepcopy(adapter.module)


def test_int8_dynamic_swaps_every_linear(adapter):
    module = TORCH_CPU["int8_dynamic"].build(_fresh(adapter), "cpu")
    kinds = {type(m).__module__ + "." + type(m).__name__ for m in module.modules()}
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in module.modules())
    assert any("quantized" in k and "Linear" in k for k in kinds)


def test_bf16_casts_parameters(adapter):
    module = TORCH_CPU["bf16"].build(_fresh(adapter), "cpu")
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_unstructured_pruning_reaches_requested_sparsity(adapter, ratio):
    module = _fresh(adapter)
    before = linear_sparsity(module)
    facts = apply_pruning(module, "unstructured", ratio)
    assert before < 0.01
    assert linear_sparsity(module) == pytest.approx(ratio, abs=0.01)
    assert facts["sparsity"] == pytest.approx(ratio, abs=0.01)
    # masks are baked in: no reparametrization left behind
    assert not any(hasattr(lin, "weight_orig") for _, lin in prunable_linears(module))
    assert "unchanged" in facts["note"]


def test_precisions_keep_embeddings_close(adapter):
    inputs = adapter.prepared_model().example_inputs
    with torch.inference_mode():
        ref = adapter.module(**inputs)
        for precision, floor in (("bf16", 0.98), ("int8_dynamic", 0.90)):
            out = TORCH_CPU[precision].build(_fresh(adapter), "cpu")(**inputs).float()
            cosine = torch.nn.functional.cosine_similarity(ref, out).min().item()
            assert cosine > floor, precision
