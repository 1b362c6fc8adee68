"""Unstructured pruning: global magnitude pruning to zeros.

Shapes stay the same, so dense kernels run exactly as fast and the file is exactly as large;
the report says so.
"""
from __future__ import annotations

from infersweep.trials.pruning.layers import count_parameters, prunable_linears


def prune_unstructured(module, ratio: float) -> dict:
    """Global magnitude pruning: zero the `ratio` smallest |w| across all prunable Linears."""
    import torch.nn.utils.prune as prune

    targets = [(lin, "weight") for _, lin in prunable_linears(module)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=ratio)
    for lin, name in targets:
        prune.remove(lin, name)  # bake the mask into the weight
    total = sum(lin.weight.numel() for lin, _ in targets)
    zeros = sum(int((lin.weight == 0).sum()) for lin, _ in targets)
    params = count_parameters(module)
    return {
        "pruning_method": "unstructured",
        "sparsity": zeros / max(total, 1),
        "params_before": params,
        "params_after": params,
        "note": "unstructured sparsity leaves weight shapes unchanged: dense kernels run "
        "as fast and the model on disk is as large as before",
    }
