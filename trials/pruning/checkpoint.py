"""The checkpoint layout of a structurally pruned model: saving it and loading it back.

The per-layer shapes are recorded in the config (``structured_pruning``), so the model saves
with ``save_pretrained`` and reloads with :func:`load_encoder`; ONNX Runtime's optimizer reads
its attention shape from the same record (:func:`attention_shape`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from infersweep.trials.pruning.layers import Block, blocks, find_encoder, prune_block

CONFIG_KEY = "structured_pruning"  # per-layer shapes of a structurally pruned model


def pruned_layout(config, bs: list[Block]) -> dict:
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
        prune_block(b, list(range(int(h))), list(range(int(n))))


def save_pruned(module, path: str | Path, tokenizer=None) -> Path:
    """save_pretrained() the (pruned) encoder inside `module`; reload it with load_encoder()."""
    path = Path(path)
    find_encoder(module).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def load_encoder(path: str | Path, auto=None, **kwargs):
    """Load a transformers encoder from `path`, structurally pruned or not.

    An unpruned checkpoint (or a hub id) goes straight to ``AutoModel.from_pretrained`` (`auto`:
    another Auto class); one whose config records ``structured_pruning`` is built from its
    config, reshaped to the recorded layer sizes and loaded from its safetensors weights.
    """
    from transformers import AutoConfig

    if auto is None:
        from transformers import AutoModel as auto
    trust = kwargs.get("trust_remote_code", False)
    local = Path(path).is_dir()
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust) if local else None
    layout = getattr(config, CONFIG_KEY, None) if config is not None else None
    if not layout:
        return auto.from_pretrained(path, **kwargs)
    model = auto.from_config(config, trust_remote_code=trust)
    reshape_to_layout(model, layout)
    missing, unexpected = model.load_state_dict(_encoder_state(model, Path(path)), strict=False)
    missing = [k for k in missing if k in dict(model.named_parameters())]
    if missing or unexpected:
        raise ValueError(f"{path}: pruned checkpoint does not match its config's {CONFIG_KEY} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()


def load_causal_lm(path: str | Path, **kwargs):
    """Load a causal LM (AutoModelForCausalLM) from `path`, structurally pruned or not."""
    from transformers import AutoModelForCausalLM

    return load_encoder(path, auto=AutoModelForCausalLM, **kwargs)


def _encoder_state(model, path: Path) -> dict:
    """The saved weights under `model`'s own names (a task head's prefix stripped)."""
    state = _read_state_dict(path)
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and not (set(state) & set(model.state_dict())):  # saved from a model with a task head
        state = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    return state


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
