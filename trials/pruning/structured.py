"""Pruning knob: the valid methods and their implementations.

- ``unstructured``: global magnitude pruning to zeros. Shapes stay the same, so dense kernels
  run exactly as fast and the file is exactly as large; the report says so.
- ``structured``: attention heads and FFN intermediate neurons ranked by importance and
  *physically removed* (smaller weight matrices). Smaller on disk and faster on every runtime.
  The per-layer shapes are recorded in the config (``structured_pruning``) so the model saves
  with ``save_pretrained`` and reloads with :func:`load_encoder`.
- ``semi_structured_2_4``: two of every four weights zero in a layout the sparse tensor cores
  of NVIDIA GPUs with compute capability >= 8.0 run (``torch.sparse.to_sparse_semi_structured``).

Works on BERT-layout encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, ...): each layer has
``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense`` and
``output.dense``. transformers 5 dropped ``PreTrainedModel.prune_heads``; its BERT attention
reshapes with ``view(..., -1, head_size)``, so layers with fewer heads run unchanged once the
Linear layers are sliced (``transformers.pytorch_utils.prune_linear_layer``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

PRUNING_METHODS: dict[str, str] = {
    "none": "no pruning",
    "unstructured": "global magnitude pruning of Linear weights to zeros (same shapes: "
    "no smaller and no faster on dense kernels)",
    "structured": "attention heads and FFN neurons ranked by importance and physically removed "
    "(smaller weight matrices: smaller on disk and faster on every runtime)",
    "semi_structured_2_4": "2:4 semi-structured sparsity run by sparse tensor cores (CUDA, compute "
    "capability >= 8.0, fp16/bf16); prune_ratio = fraction of Linear weights zeroed, at most 0.5",
}
MAX_PRUNE_RATIO = 0.95
#: the kinds structured pruning removes; `ratio` applies to both unless given per kind
STRUCTURED_KINDS = ("heads", "ffn")
IMPORTANCE = ("weight", "activation")
#: heads: the same count in every layer (ONNX Runtime's Attention fusion takes one num_heads);
#: FFN neurons: ranked across layers
DEFAULT_HEAD_SCOPE, DEFAULT_FFN_SCOPE = "layer", "global"
CONFIG_KEY = "structured_pruning"  # per-layer shapes of a structurally pruned model
SEMI_STRUCTURED_MIN_CC = (8, 0)
SEMI_STRUCTURED_PRECISIONS = ("fp16", "bf16")


def prunable_linears(module):
    """(name, Linear) pairs eligible for pruning: every Linear except task heads."""
    import torch

    skip = ("lm_head", "classifier", "qa_outputs", "pooler")
    return [
        (name, sub)
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear) and not any(s in name for s in skip)
    ]


def apply_pruning(module, method: str, ratio: float, *, calibration: Iterable[Mapping] | None = None,
                  importance: str | None = None, head_ratio: float | None = None,
                  ffn_ratio: float | None = None, scope: str | None = None) -> dict:
    """Prune `module` in place; return facts about what changed (for the report).

    For ``structured``: `ratio` is the fraction of attention heads *and* of FFN neurons removed;
    `head_ratio` / `ffn_ratio` override it per kind. `importance` is ``weight`` (default without
    calibration inputs) or ``activation`` (default when `calibration` — a list of tokenizer
    outputs, e.g. ``PreparedModel.calibration_inputs`` — is given). `scope` ``global`` ranks
    units across layers (scores normalized per layer), so sensitive layers keep more; ``layer``
    removes the same share in every layer. Default (None): heads per layer, FFN neurons global —
    every layer keeps the same head count, which ONNX Runtime's Attention fusion needs (it takes
    one num_heads per graph), and FFN neurons go where they matter least.
    """
    if method == "none" or ratio <= 0:
        return {"pruning_method": "none"}
    if method == "unstructured":
        return prune_unstructured(module, ratio)
    if method == "structured":
        return prune_structured(module, ratio if head_ratio is None else head_ratio,
                                ratio if ffn_ratio is None else ffn_ratio,
                                importance=importance, calibration=calibration, scope=scope)
    if method == "semi_structured_2_4":
        return prune_semi_structured(module, ratio)
    raise ValueError(f"unknown pruning method {method!r}; valid: {sorted(PRUNING_METHODS)}")


def pruning_infeasible_reason(method: str, device: str, hardware, *, precision: str | None = None,
                              ratio: float | None = None, runtime: str | None = None,
                              task: str | None = None) -> str | None:
    """None if `method` can run on (`device`, `hardware`), else a reason a person can act on.

    `hardware` is a trials.hardware.Hardware (cuda_available, gpu_compute_capability, gpu_name).
    """
    if method == "structured" and task not in (None, "extractive"):
        return (f"structured pruning removes heads and FFN neurons of BERT-layout encoders (the "
                f"extractive task); for the {task} task use 'unstructured' pruning")
    if method != "semi_structured_2_4":
        return None
    if runtime not in (None, "torch"):
        return (f"2:4 semi-structured sparse kernels run on the 'torch' runtime only; runtime "
                f"{runtime!r} would run the masked weights densely: use runtime 'torch'")
    if device != "cuda" or not getattr(hardware, "cuda_available", False):
        return ("2:4 semi-structured sparsity runs only on the sparse tensor cores of NVIDIA GPUs "
                "(compute capability >= 8.0, e.g. A100/H100/L4); on CPU use 'structured' pruning, "
                "which removes heads and FFN neurons and is faster on dense kernels")
    cc = tuple(getattr(hardware, "gpu_compute_capability", (0, 0)) or (0, 0))
    if cc < SEMI_STRUCTURED_MIN_CC:
        name = getattr(hardware, "gpu_name", "") or "this GPU"
        return (f"2:4 semi-structured sparsity needs compute capability >= 8.0 (Ampere or newer); "
                f"{name} has {cc[0]}.{cc[1]}; use 'structured' pruning instead")
    if precision is not None and precision not in SEMI_STRUCTURED_PRECISIONS:
        return (f"2:4 semi-structured sparse kernels run fp16 or bf16 weights, not {precision}; "
                "set precision to fp16 or bf16")
    if ratio is not None and ratio > 0.5:
        return (f"2:4 semi-structured sparsity zeroes at most half of the weights; prune_ratio "
                f"{ratio:g} > 0.5: use a ratio <= 0.5 or 'unstructured'/'structured' pruning")
    return None


# --------------------------------------------------------------------------- unstructured

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


def linear_sparsity(module) -> float:
    total = zeros = 0
    for _, lin in prunable_linears(module):
        total += lin.weight.numel()
        zeros += int((lin.weight == 0).sum())
    return zeros / max(total, 1)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- structured

@dataclass
class Block:
    """The prunable parts of one BERT-layout transformer layer."""

    index: int
    layer: Any  # the layer module

    @property
    def attention(self):
        return self.layer.attention.self

    @property
    def head_size(self) -> int:
        return int(self.attention.attention_head_size)

    @property
    def num_heads(self) -> int:
        return self.attention.query.out_features // self.head_size

    @property
    def ffn_in(self):
        return self.layer.intermediate.dense

    @property
    def ffn_out(self):
        return self.layer.output.dense

    @property
    def attn_out(self):
        return self.layer.attention.output.dense

    @property
    def intermediate_size(self) -> int:
        return self.ffn_in.out_features


def find_encoder(module):
    """The transformers model inside `module` (an EmbeddingHead's `.encoder`, or itself)."""
    encoder = getattr(module, "encoder", None)
    if encoder is not None and hasattr(encoder, "config"):
        return encoder
    if hasattr(module, "config"):
        return module
    raise ValueError(f"{type(module).__name__} holds no transformers model (expected .encoder or .config)")


def blocks(module) -> list[Block]:
    """The BERT-layout layers of `module`, in order; a clear error for other architectures."""
    encoder = find_encoder(module)
    found = [sub for _, sub in encoder.named_modules()
             if hasattr(sub, "attention") and hasattr(getattr(sub.attention, "self", None), "query")
             and hasattr(sub, "intermediate") and hasattr(sub, "output")]
    if not found:
        model_type = getattr(encoder.config, "model_type", type(encoder).__name__)
        raise ValueError(f"structured pruning supports BERT-layout encoders (bert, roberta, xlm-roberta, "
                         f"electra, ...); {model_type!r} has no attention.self.query / intermediate.dense "
                         "layers: use 'unstructured' pruning for it")
    return [Block(i, layer) for i, layer in enumerate(found)]


def _slice_linear(layer, keep, dim: int):
    """A new Linear keeping only `keep` along `dim` (0: outputs, 1: inputs), same dtype/device."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    index = torch.as_tensor(sorted(keep), dtype=torch.long)
    new = prune_linear_layer(layer, index, dim=dim).to(dtype=layer.weight.dtype)
    new.requires_grad_(layer.weight.requires_grad)
    return new


def _prune_block(block: Block, keep_heads: list[int] | None, keep_neurons: list[int] | None) -> None:
    """Physically remove every head not in `keep_heads` and neuron not in `keep_neurons`."""
    import torch

    if keep_heads is not None and len(keep_heads) < block.num_heads:
        d = block.head_size
        rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in sorted(keep_heads)]).tolist()
        attn = block.attention
        for name in ("query", "key", "value"):
            setattr(attn, name, _slice_linear(getattr(attn, name), rows, dim=0))
        block.layer.attention.output.dense = _slice_linear(block.attn_out, rows, dim=1)
        attn.num_attention_heads = len(keep_heads)
        attn.all_head_size = len(keep_heads) * d
    if keep_neurons is not None and len(keep_neurons) < block.intermediate_size:
        block.layer.intermediate.dense = _slice_linear(block.ffn_in, keep_neurons, dim=0)
        block.layer.output.dense = _slice_linear(block.ffn_out, keep_neurons, dim=1)


def weight_importance(bs: list[Block]) -> tuple[list, list]:
    """Per layer: head scores and FFN neuron scores from weight norms.

    A head scores ||W_v[h]|| * ||W_o[:, h]|| (the scale of what it writes into the residual
    stream); a neuron ||W_in[i, :]|| * ||W_out[:, i]||.
    """
    import torch

    heads, neurons = [], []
    with torch.no_grad():
        for b in bs:
            d = b.head_size
            v = b.attention.value.weight.float().reshape(b.num_heads, d, -1)
            o = b.attn_out.weight.float().reshape(-1, b.num_heads, d)
            heads.append(v.pow(2).sum((1, 2)).sqrt() * o.pow(2).sum((0, 2)).sqrt())
            neurons.append(b.ffn_in.weight.float().norm(dim=1) * b.ffn_out.weight.float().norm(dim=0))
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
            d = b.head_size
            w = b.attn_out.weight.float().reshape(-1, b.num_heads, d)  # (hidden, heads, d)
            ctx = x.reshape(*x.shape[:-1], b.num_heads, d)
            contrib = torch.einsum("bthd,ohd->btho", ctx, w).norm(dim=-1)  # (b, t, heads)
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
    encoder = find_encoder(module)
    bs = blocks(module)
    params_before = count_parameters(module)
    heads_before = [b.num_heads for b in bs]
    neurons_before = [b.intermediate_size for b in bs]
    head_scores, neuron_scores = scores or importance_scores(module, importance, calibration)
    chosen = set(range(len(bs)) if layers is None else layers)
    sub = sorted(chosen)
    head_scope, ffn_scope = (scope, scope) if scope else (DEFAULT_HEAD_SCOPE, DEFAULT_FFN_SCOPE)
    keep_heads = dict(zip(sub, _choose_kept([head_scores[i] for i in sub], head_ratio, head_scope)))
    keep_neurons = dict(zip(sub, _choose_kept([neuron_scores[i] for i in sub], ffn_ratio, ffn_scope)))
    layout = _layout(encoder.config, bs)
    for b in bs:
        if b.index not in chosen:
            continue
        _prune_block(b, keep_heads[b.index], keep_neurons[b.index])
        layout["kept_heads"][b.index] = [layout["kept_heads"][b.index][h] for h in keep_heads[b.index]]
    layout["num_heads"] = [b.num_heads for b in bs]
    layout["intermediate_sizes"] = [b.intermediate_size for b in bs]
    layout["importance"] = importance
    setattr(encoder.config, CONFIG_KEY, layout)
    params_after = count_parameters(module)
    heads_removed = sum(heads_before) - sum(layout["num_heads"])
    neurons_removed = sum(neurons_before) - sum(layout["intermediate_sizes"])
    return {
        "pruning_method": "structured",
        "importance": importance,
        "scope": f"heads {head_scope}, ffn {ffn_scope}",
        "head_ratio": head_ratio,
        "ffn_ratio": ffn_ratio,
        "params_before": params_before,
        "params_after": params_after,
        "heads_removed": heads_removed,
        "heads_total": sum(heads_before),
        "neurons_removed": neurons_removed,
        "neurons_total": sum(neurons_before),
        "heads_per_layer": layout["num_heads"],
        "intermediate_per_layer": layout["intermediate_sizes"],
        "note": (f"structured pruning removed {heads_removed} of {sum(heads_before)} attention heads and "
                 f"{neurons_removed} of {sum(neurons_before)} FFN neurons ({importance} importance): "
                 f"parameters {params_before:,} -> {params_after:,} "
                 f"({100 * (1 - params_after / params_before):.1f}% fewer; embeddings untouched); "
                 "weight matrices are smaller, so the model is smaller on disk and dense kernels do less work"),
    }


def _layout(config, bs: list[Block]) -> dict:
    """The config's record of pruned shapes (a fresh one for an unpruned model)."""
    old = getattr(config, CONFIG_KEY, None)
    if old:
        layout = json.loads(json.dumps(old))  # a copy; keys may be strings after a JSON round trip
        layout["kept_heads"] = [list(h) for h in layout["kept_heads"]]
        return layout
    return {"version": 1, "kept_heads": [list(range(b.num_heads)) for b in bs],
            "num_heads": [b.num_heads for b in bs], "intermediate_sizes": [b.intermediate_size for b in bs]}


def attention_shape(config) -> tuple[int, int]:
    """(num_heads, attention hidden size) to give ONNX Runtime's transformers optimizer.

    Unpruned: the config's values. Structurally pruned with the same head count in every layer:
    that count and count * head size. Different counts per layer: (0, 0) — no single value
    fits, so the Attention fusion must be skipped (the other fusions still apply).
    """
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    layout = getattr(config, CONFIG_KEY, None)
    if not layout or not heads:
        return heads, hidden
    counts = set(layout["num_heads"])
    if len(counts) != 1:
        return 0, 0
    kept = counts.pop()
    return kept, kept * (hidden // heads)


def reshape_to_layout(encoder, layout: Mapping) -> None:
    """Give a freshly built (unpruned) model the per-layer shapes recorded in `layout`.

    Weights are placeholders until a state dict is loaded.
    """
    bs = blocks(encoder)
    heads, sizes = layout["num_heads"], layout["intermediate_sizes"]
    if len(heads) != len(bs) or len(sizes) != len(bs):
        raise ValueError(f"{CONFIG_KEY} in the config describes {len(heads)} layers; the model has {len(bs)}")
    for b, h, n in zip(bs, heads, sizes):
        _prune_block(b, list(range(int(h))), list(range(int(n))))


def load_encoder(path: str | Path, **kwargs):
    """Load a transformers encoder from `path`, structurally pruned or not.

    An unpruned checkpoint (or a hub id) goes straight to ``AutoModel.from_pretrained``; one
    whose config records ``structured_pruning`` is built from its config, reshaped to the
    recorded layer sizes and loaded from its safetensors weights.
    """
    from transformers import AutoConfig, AutoModel

    trust = kwargs.get("trust_remote_code", False)
    local = Path(path).is_dir()
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust) if local else None
    layout = getattr(config, CONFIG_KEY, None) if config is not None else None
    if not layout:
        return AutoModel.from_pretrained(path, **kwargs)
    model = AutoModel.from_config(config, trust_remote_code=trust)
    reshape_to_layout(model, layout)
    state = _read_state_dict(Path(path))
    prefix = getattr(model, "base_model_prefix", "")
    own = set(model.state_dict())
    if prefix and not (set(state) & own):  # saved from a model with a task head
        state = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k in dict(model.named_parameters())]
    if missing or unexpected:
        raise ValueError(f"{path}: pruned checkpoint does not match its config's {CONFIG_KEY} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()


def _read_state_dict(path: Path) -> dict:
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{path}: no model.safetensors; save the pruned model with save_pruned()")
    state: dict = {}
    for name in files:
        state.update(load_file(str(path / name)))
    return state


def save_pruned(module, path: str | Path, tokenizer=None) -> Path:
    """save_pretrained() the (pruned) encoder inside `module`; reload it with load_encoder()."""
    path = Path(path)
    find_encoder(module).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- 2:4 semi-structured

@lru_cache(maxsize=1)
def _semi_structured_linear_class():
    import torch

    class SemiStructuredLinear(torch.nn.Linear):
        """A Linear whose 2:4-sparse weight runs on sparse tensor cores once on a capable GPU.

        Holds a dense (masked) weight, so saving, .to() and dtype casts work as usual; on the
        first CUDA forward in fp16/bf16 it compresses the weight with
        torch.sparse.to_sparse_semi_structured. Elsewhere it runs the dense masked weight.
        """

        _sparse = None
        _sparse_key = None

        def forward(self, x):
            w = self.weight
            if w.is_cuda and w.dtype in (torch.float16, torch.bfloat16) and semi_structured_supported(w.device):
                key = (w.device, w.dtype, w.data_ptr(), w._version)
                if self._sparse_key != key:
                    from torch.sparse import to_sparse_semi_structured

                    self._sparse = to_sparse_semi_structured(w.detach().contiguous())
                    self._sparse_key = key
                shape = x.shape
                out = torch.nn.functional.linear(x.reshape(-1, shape[-1]).contiguous(), self._sparse, self.bias)
                return out.reshape(*shape[:-1], -1)
            return torch.nn.functional.linear(x, w, self.bias)

    return SemiStructuredLinear


def semi_structured_supported(device=None) -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= SEMI_STRUCTURED_MIN_CC


def mask_2_4(weight):
    """The 2:4 mask of `weight`: in every group of 4 along the input dim keep the 2 largest |w|."""
    import torch

    rows, cols = weight.shape
    groups = weight.detach().abs().reshape(rows, cols // 4, 4)
    keep = torch.topk(groups, 2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(rows, cols)


def prune_semi_structured(module, ratio: float) -> dict:
    """Apply a 2:4 pattern to the largest Linears until `ratio` of their weights are zero.

    2:4 zeroes exactly half of a layer, so the layers holding 2 * ratio of the prunable weights
    (largest first) are converted; the rest stay dense. The converted layers run the sparse
    kernels on CUDA GPUs with compute capability >= 8.0 in fp16/bf16.
    """
    import torch

    if ratio > 0.5:
        raise ValueError(f"2:4 sparsity zeroes at most half of the weights; prune_ratio {ratio} > 0.5")
    cls = _semi_structured_linear_class()
    named = [(n, lin) for n, lin in prunable_linears(module)
             if lin.in_features % 64 == 0 and lin.out_features % 32 == 0]
    total = sum(lin.weight.numel() for _, lin in prunable_linears(module))
    target = 2 * ratio * total
    converted, done = [], 0
    for name, lin in sorted(named, key=lambda nl: -nl[1].weight.numel()):
        if done >= target - 1e-9:
            break
        with torch.no_grad():
            lin.weight.mul_(mask_2_4(lin.weight).to(lin.weight.dtype))
        lin.__class__ = cls  # same parameters, sparse-kernel forward
        converted.append(name)
        done += lin.weight.numel()
    return {
        "pruning_method": "semi_structured_2_4",
        "sparsity": linear_sparsity(module),
        "layers_2_4": len(converted),
        "note": (f"2:4 semi-structured sparsity in {len(converted)} Linear layers: shapes unchanged "
                 "(the file is as large as before); faster only through sparse tensor-core kernels "
                 "on CUDA GPUs with compute capability >= 8.0 in fp16/bf16, dense elsewhere"),
    }
