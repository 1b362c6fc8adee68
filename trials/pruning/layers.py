"""The parts of a model that pruning reads and cuts: prunable Linears and BERT-layout layers.

Works on BERT-layout encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, ...): each layer has
``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense`` and
``output.dense``. transformers 5 dropped ``PreTrainedModel.prune_heads``; its BERT attention
reshapes with ``view(..., -1, head_size)``, so layers with fewer heads run unchanged once the
Linear layers are sliced (``transformers.pytorch_utils.prune_linear_layer``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def prunable_linears(module):
    """(name, Linear) pairs eligible for pruning: every Linear except task heads."""
    import torch

    skip = ("lm_head", "classifier", "qa_outputs", "pooler")
    return [
        (name, sub)
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear) and not any(s in name for s in skip)
    ]


def linear_sparsity(module) -> float:
    total = zeros = 0
    for _, lin in prunable_linears(module):
        total += lin.weight.numel()
        zeros += int((lin.weight == 0).sum())
    return zeros / max(total, 1)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


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


def prune_block(block: Block, keep_heads: list[int] | None, keep_neurons: list[int] | None) -> None:
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


def _slice_linear(layer, keep, dim: int):
    """A new Linear keeping only `keep` along `dim` (0: outputs, 1: inputs), same dtype/device."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    index = torch.as_tensor(sorted(keep), dtype=torch.long)
    new = prune_linear_layer(layer, index, dim=dim).to(dtype=layer.weight.dtype)
    new.requires_grad_(layer.weight.requires_grad)
    return new
