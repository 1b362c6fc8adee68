"""Pruning knob: the valid methods and their implementations."""
from __future__ import annotations

PRUNING_METHODS: dict[str, str] = {
    "none": "no pruning",
    "unstructured": "global magnitude pruning of Linear weights to zeros (same shapes: "
    "no smaller and no faster on dense kernels)",
}
MAX_PRUNE_RATIO = 0.95


def prunable_linears(module):
    """(name, Linear) pairs eligible for pruning: every Linear except task heads."""
    import torch

    skip = ("lm_head", "classifier", "qa_outputs", "pooler")
    return [
        (name, sub)
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear) and not any(s in name for s in skip)
    ]


def apply_pruning(module, method: str, ratio: float) -> dict:
    """Prune `module` in place; return facts about what changed (for the report)."""
    if method == "none" or ratio <= 0:
        return {"pruning_method": "none"}
    if method == "unstructured":
        return prune_unstructured(module, ratio)
    raise ValueError(f"unknown pruning method {method!r}; valid: {sorted(PRUNING_METHODS)}")


def prune_unstructured(module, ratio: float) -> dict:
    """Global magnitude pruning: zero the `ratio` smallest |w| across all prunable Linears."""
    import torch
    import torch.nn.utils.prune as prune

    targets = [(lin, "weight") for _, lin in prunable_linears(module)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=ratio)
    for lin, name in targets:
        prune.remove(lin, name)  # bake the mask into the weight
    total = sum(lin.weight.numel() for lin, _ in targets)
    zeros = sum(int((lin.weight == 0).sum()) for lin, _ in targets)
    return {
        "pruning_method": "unstructured",
        "sparsity": zeros / max(total, 1),
        "note": "unstructured sparsity leaves weight shapes unchanged: dense kernels run "
        "as fast and the model on disk is as large as before",
    }


def linear_sparsity(module) -> float:
    total = zeros = 0
    for _, lin in prunable_linears(module):
        total += lin.weight.numel()
        zeros += int((lin.weight == 0).sum())
    return zeros / max(total, 1)
