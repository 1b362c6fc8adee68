"""The parts of a model that pruning reads and cuts: prunable Linears, BERT-layout and Llama-layout layers.

Llama-layout decoders (Llama, SmolLM2, Mistral, Qwen2: ``self_attn.{q,k,v,o}_proj`` and
``mlp.{gate,up,down}_proj``) are pruned in whole key/value groups: under grouped-query attention a
unit is one key/value head with the query heads that read it, so the layer keeps its
queries-per-key ratio (``num_key_value_groups``), its attention reshapes with ``view(..., -1,
head_dim)`` and runs unchanged, and its KV cache is smaller too. An MLP neuron is a row of gate and
up and a column of down.

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
    """The prunable parts of one BERT-layout transformer layer.

    A head unit is one attention head (`group` query heads per unit: 1 here)."""

    index: int
    layer: Any  # the layer module
    group = 1

    @property
    def attention(self):
        return self.layer.attention.self

    @property
    def value(self):
        return self.attention.value

    def ffn_in_norms(self):
        return self.ffn_in.weight.float().norm(dim=1)

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


@dataclass
class LlamaBlock:
    """The prunable parts of one Llama-layout decoder layer; a head unit is a key/value group."""

    index: int
    layer: Any

    @property
    def attention(self):
        return self.layer.self_attn

    @property
    def head_size(self) -> int:
        return int(self.attention.head_dim)

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return int(self.attention.num_key_value_groups)

    @property
    def num_heads(self) -> int:
        """Key/value groups (the pruning units)."""
        return self.attention.k_proj.out_features // self.head_size

    @property
    def value(self):
        return self.attention.v_proj

    @property
    def attn_out(self):
        return self.attention.o_proj

    @property
    def ffn_in(self):
        return self.layer.mlp.up_proj

    @property
    def ffn_out(self):
        return self.layer.mlp.down_proj

    @property
    def intermediate_size(self) -> int:
        return self.ffn_in.out_features

    def ffn_in_norms(self):
        mlp = self.layer.mlp
        return mlp.up_proj.weight.float().norm(dim=1) * mlp.gate_proj.weight.float().norm(dim=1)


def _is_llama_layer(sub) -> bool:
    attn, mlp = getattr(sub, "self_attn", None), getattr(sub, "mlp", None)
    return (all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim"))
            and all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")))


def find_encoder(module):
    """The transformers model inside `module` (an EmbeddingHead's `.encoder`, or itself)."""
    encoder = getattr(module, "encoder", None)
    if encoder is not None and hasattr(encoder, "config"):
        return encoder
    if hasattr(module, "config"):
        return module
    raise ValueError(f"{type(module).__name__} holds no transformers model (expected .encoder or .config)")


def blocks(module) -> list[Block]:
    """The BERT- or Llama-layout layers of `module`, in order; a clear error for other architectures."""
    encoder = find_encoder(module)
    decoder_layers = [sub for _, sub in encoder.named_modules() if _is_llama_layer(sub)]
    if decoder_layers:
        return [LlamaBlock(i, layer) for i, layer in enumerate(decoder_layers)]
    found = [sub for _, sub in encoder.named_modules()
             if hasattr(sub, "attention") and hasattr(getattr(sub.attention, "self", None), "query")
             and hasattr(sub, "intermediate") and hasattr(sub, "output")]
    if not found:
        model_type = getattr(encoder.config, "model_type", type(encoder).__name__)
        raise ValueError(f"structured pruning supports BERT-layout encoders (bert, roberta, xlm-roberta, "
                         f"electra, ...) and Llama-layout decoders (llama, mistral, qwen2, ...); {model_type!r} "
                         "has neither attention.self.query / intermediate.dense nor self_attn.q_proj / "
                         "mlp.gate_proj layers: use 'unstructured' pruning for it")
    return [Block(i, layer) for i, layer in enumerate(found)]


def prune_block(block, keep_heads: list[int] | None, keep_neurons: list[int] | None) -> None:
    """Physically remove every head unit not in `keep_heads` and neuron not in `keep_neurons`."""
    import torch

    if isinstance(block, LlamaBlock):
        _prune_llama_block(block, keep_heads, keep_neurons)
        return

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


def _rows(units: list[int], width: int):
    import torch

    return torch.cat([torch.arange(u * width, (u + 1) * width) for u in sorted(units)]).tolist()


def _prune_llama_block(block: LlamaBlock, keep_groups: list[int] | None, keep_neurons: list[int] | None) -> None:
    """Remove whole key/value groups (k/v rows of the group, q rows and o columns of its query
    heads) and MLP neurons (gate/up rows, down columns)."""
    attn, mlp = block.attention, block.layer.mlp
    if keep_groups is not None and len(keep_groups) < block.num_heads:
        d, group = block.head_size, block.group
        kv_rows = _rows(keep_groups, d)
        q_rows = _rows([g * group + j for g in keep_groups for j in range(group)], d)
        attn.q_proj = _slice_linear(attn.q_proj, q_rows, dim=0)
        attn.k_proj = _slice_linear(attn.k_proj, kv_rows, dim=0)
        attn.v_proj = _slice_linear(attn.v_proj, kv_rows, dim=0)
        attn.o_proj = _slice_linear(attn.o_proj, q_rows, dim=1)
    if keep_neurons is not None and len(keep_neurons) < block.intermediate_size:
        mlp.gate_proj = _slice_linear(mlp.gate_proj, keep_neurons, dim=0)
        mlp.up_proj = _slice_linear(mlp.up_proj, keep_neurons, dim=0)
        mlp.down_proj = _slice_linear(mlp.down_proj, keep_neurons, dim=1)


def _slice_linear(layer, keep, dim: int):
    """A new Linear keeping only `keep` along `dim` (0: outputs, 1: inputs), same dtype/device."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    index = torch.as_tensor(sorted(keep), dtype=torch.long)
    new = prune_linear_layer(layer, index, dim=dim).to(dtype=layer.weight.dtype)
    new.requires_grad_(layer.weight.requires_grad)
    return new
