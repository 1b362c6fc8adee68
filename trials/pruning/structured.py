"""Structured pruning: attention heads and FFN intermediate neurons physically removed.

Units are ranked by importance (weight norms, or activations on calibration inputs) and the
lowest are sliced out of the weight matrices, so the model is smaller on disk and faster on
every runtime. The new per-layer shapes are recorded in the config (see checkpoint.py).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from infersweep.trials.pruning.catalog import MAX_PRUNE_RATIO
from infersweep.trials.pruning.checkpoint import CONFIG_KEY, pruned_layout
from infersweep.trials.pruning.layers import Block, blocks, count_parameters, find_encoder, prune_block

IMPORTANCE = ("weight", "activation")
#: heads: the same count in every layer (ONNX Runtime's Attention fusion takes one num_heads);
#: FFN neurons: ranked across layers
DEFAULT_HEAD_SCOPE, DEFAULT_FFN_SCOPE = "layer", "global"


def weight_importance(bs: list[Block]) -> tuple[list, list]:
    """Per layer: head scores and FFN neuron scores from weight norms.

    A head scores ||W_v[h]|| * ||W_o[:, h]|| (the scale of what it writes into the residual
    stream); a neuron ||W_in[i, :]|| * ||W_out[:, i]|| (W_in: up times gate in a Llama MLP). Under
    grouped-query attention a unit is a key/value group and W_o[:, h] its query heads' columns.
    """
    import torch

    heads, neurons = [], []
    with torch.no_grad():
        for b in bs:
            d = b.head_size
            v = b.value.weight.float().reshape(b.num_heads, d, -1)
            # o's columns by unit: a unit (a key/value group under GQA) owns `group` query heads
            o = b.attn_out.weight.float().reshape(-1, b.num_heads, b.group * d)
            heads.append(v.pow(2).sum((1, 2)).sqrt() * o.pow(2).sum((0, 2)).sqrt())
            neurons.append(b.ffn_in_norms() * b.ffn_out.weight.float().norm(dim=0))
    return heads, neurons


def activation_importance(module, bs: list[Block], calibration: Iterable[Mapping]) -> tuple[list, list]:
    """Per layer: head and neuron scores from activations on calibration inputs.

    A head scores the mean norm of its contribution ctx_h @ W_o[:, h]^T to the output
    projection over real tokens; a neuron mean |act_i| * ||W_out[:, i]||.
    """
    import torch

    calibration = list(calibration)
    if not calibration:
        raise ValueError("activation importance needs calibration inputs (tokenized sentences)")
    heads = [torch.zeros(b.num_heads) for b in bs]
    neurons = [torch.zeros(b.intermediate_size) for b in bs]
    state = {"mask": None, "tokens": 0.0}

    def head_hook(i, b):
        def hook(_mod, args):
            x = args[0].float()  # (batch, seq, heads * d): attention context
            mask = state["mask"]
            d, units = b.head_size * b.group, b.num_heads  # a unit's slice of the context
            w = b.attn_out.weight.float().reshape(-1, units, d)  # (hidden, units, d)
            ctx = x.reshape(*x.shape[:-1], units, d)
            contrib = torch.einsum("bthd,ohd->btho", ctx, w).norm(dim=-1)  # (b, t, units)
            heads[i] += (contrib * mask[..., None]).sum((0, 1))
        return hook

    def ffn_hook(i, b):
        def hook(_mod, args):
            x = args[0].float().abs()  # (batch, seq, intermediate)
            neurons[i] += (x * state["mask"][..., None]).sum((0, 1)) * b.ffn_out.weight.float().norm(dim=0)
        return hook

    handles = []
    for i, b in enumerate(bs):
        handles.append(b.attn_out.register_forward_pre_hook(head_hook(i, b)))
        handles.append(b.ffn_out.register_forward_pre_hook(ffn_hook(i, b)))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for inputs in calibration:
                mask = inputs["attention_mask"].float()
                state["mask"] = mask
                state["tokens"] += float(mask.sum())
                module(**dict(inputs))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    tokens = max(state["tokens"], 1.0)
    return [h / tokens for h in heads], [n / tokens for n in neurons]


def importance_scores(module, importance: str = "weight",
                      calibration: Iterable[Mapping] | None = None) -> tuple[list, list]:
    """(head scores per layer, FFN neuron scores per layer) of `module`; higher = keep."""
    if importance == "activation":
        return activation_importance(module, blocks(module), calibration or [])
    if importance == "weight":
        return weight_importance(blocks(module))
    raise ValueError(f"importance {importance!r}; valid: {', '.join(IMPORTANCE)}")


def prune_structured(module, head_ratio: float, ffn_ratio: float, *, importance: str | None = None,
                     calibration: Iterable[Mapping] | None = None, scope: str | None = None,
                     layers: Iterable[int] | None = None, scores: tuple[list, list] | None = None) -> dict:
    """Remove `head_ratio` of the attention heads and `ffn_ratio` of the FFN neurons.

    `layers` restricts pruning to those layer indices (the sensitivity scan prunes one layer at
    a time). `scores` reuses importance_scores() computed on an identical model. Every layer
    keeps at least one head and one neuron.
    """
    for name, r in (("head ratio", head_ratio), ("ffn ratio", ffn_ratio)):
        if not 0 <= r <= MAX_PRUNE_RATIO:
            raise ValueError(f"{name} {r} outside [0, {MAX_PRUNE_RATIO}]")
    calibration = list(calibration) if calibration is not None else []
    importance = importance or ("activation" if calibration else "weight")
    if importance not in IMPORTANCE:
        raise ValueError(f"importance {importance!r}; valid: {', '.join(IMPORTANCE)}")
    bs = blocks(module)
    before = {"params": count_parameters(module), "heads": sum(b.num_heads for b in bs),
              "neurons": sum(b.intermediate_size for b in bs)}
    head_scores, neuron_scores = scores or importance_scores(module, importance, calibration)
    head_scope, ffn_scope = (scope, scope) if scope else (DEFAULT_HEAD_SCOPE, DEFAULT_FFN_SCOPE)
    chosen = sorted(set(range(len(bs)) if layers is None else layers))
    keep_heads = dict(zip(chosen, _choose_kept([head_scores[i] for i in chosen], head_ratio, head_scope)))
    keep_neurons = dict(zip(chosen, _choose_kept([neuron_scores[i] for i in chosen], ffn_ratio, ffn_scope)))
    layout = _cut_and_record(module, bs, keep_heads, keep_neurons, importance)
    facts = {"pruning_method": "structured", "importance": importance,
             "scope": f"heads {head_scope}, ffn {ffn_scope}", "head_ratio": head_ratio, "ffn_ratio": ffn_ratio}
    return {**facts, **_removed(before, count_parameters(module), layout)}


def _choose_kept(scores: list, ratio: float, scope: str, min_keep: int = 1) -> list[list[int]]:
    """Per layer, the indices to keep after removing `ratio` of all units by lowest score."""
    import torch

    sizes = [len(s) for s in scores]
    if ratio <= 0:
        return [list(range(n)) for n in sizes]
    if scope == "layer":
        kept = []
        for s in scores:
            keep = max(min_keep, len(s) - int(round(ratio * len(s))))
            kept.append(sorted(torch.topk(s, keep).indices.tolist()))
        return kept
    if scope != "global":
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    # global: scores normalized per layer (their scales differ), lowest removed across layers
    flat = torch.cat([s / s.mean().clamp(min=1e-12) for s in scores])
    remove = int(round(ratio * len(flat)))
    order = torch.argsort(flat)[:remove].tolist()
    removed: list[set[int]] = [set() for _ in sizes]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    for pos in order:
        layer = max(i for i, off in enumerate(offsets) if off <= pos)
        removed[layer].add(pos - offsets[layer])
    kept = []
    for layer, n in enumerate(sizes):
        keep = [i for i in range(n) if i not in removed[layer]]
        if len(keep) < min_keep:  # never empty a layer: keep its best units back
            best = torch.topk(scores[layer], min_keep).indices.tolist()
            keep = sorted(set(keep) | set(best))
        kept.append(keep)
    return kept


def _cut_and_record(module, bs: list[Block], keep_heads: dict, keep_neurons: dict, importance: str) -> dict:
    """Prune the layers in `keep_heads` and record the new shapes in the encoder's config."""
    encoder = find_encoder(module)
    layout = pruned_layout(encoder.config, bs)  # read before cutting: a fresh one counts the heads
    for b in bs:
        if b.index not in keep_heads:
            continue
        prune_block(b, keep_heads[b.index], keep_neurons[b.index])
        layout["kept_heads"][b.index] = [layout["kept_heads"][b.index][h] for h in keep_heads[b.index]]
    layout["num_heads"] = [b.num_heads for b in bs]
    layout["intermediate_sizes"] = [b.intermediate_size for b in bs]
    layout["importance"] = importance
    setattr(encoder.config, CONFIG_KEY, layout)
    return layout


def _removed(before: dict, params_after: int, layout: dict) -> dict:
    """The report's counts of what structured pruning removed, and its note."""
    params_before = before["params"]
    heads_removed = before["heads"] - sum(layout["num_heads"])
    neurons_removed = before["neurons"] - sum(layout["intermediate_sizes"])
    return {
        "params_before": params_before,
        "params_after": params_after,
        "heads_removed": heads_removed,
        "heads_total": before["heads"],
        "neurons_removed": neurons_removed,
        "neurons_total": before["neurons"],
        "heads_per_layer": layout["num_heads"],
        "intermediate_per_layer": layout["intermediate_sizes"],
        "note": (f"structured pruning removed {heads_removed} of {before['heads']} attention heads and "
                 f"{neurons_removed} of {before['neurons']} FFN neurons ({layout['importance']} importance): "
                 f"parameters {params_before:,} -> {params_after:,} "
                 f"({100 * (1 - params_after / params_before):.1f}% fewer; embeddings untouched); "
                 "weight matrices are smaller, so the model is smaller on disk and dense kernels do less work"),
    }
