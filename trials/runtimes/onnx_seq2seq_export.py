"""Seq2seq (BART, T5, Pegasus, mT5) on ONNX Runtime: three exported graphs, Hugging Face's generate.

Export (torch.onnx TorchScript exporter, eager attention, opset 17; one cache entry, three files):

    encoder.onnx       input_ids, attention_mask -> encoder_hidden_states
    decoder_init.onnx  decoder_input_ids, encoder_hidden_states, encoder_attention_mask
                       -> logits, present.self.{i}.{key,value}, present.cross.{i}.{key,value}
    decoder_past.onnx  decoder_input_ids (the newest token), encoder_attention_mask,
                       past.self.{i}.{key,value}, past.cross.{i}.{key,value}
                       -> logits, present.self.{i}.{key,value} (the past plus the new token)

transformers 5 models take a cache object, not tuples: small wrapper modules take flat tensors,
build the EncoderDecoderCache and call the model with keywords. Dynamic axes: batch, encoder and
decoder sequence, past length. A trace records only the branches its example takes, so the example
has two rows, one padded, a two-token decoder prefix and a two-token past (no size-1 dimension, no
mask that transformers could skip for being all ones).

Precision steps (one cache entry each, keyed on the export; every graph converted the same way):
int8_dynamic and int4_weight on CPU, fp16 (float32 inputs/outputs) on CUDA, reusing the extractive
path's quantizers. int8_static is not offered: calibrating the decoder graphs needs recorded decoder
states (past key/values), which nothing collects yet.
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel, Recipe
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint
from infersweep.trials.runtimes.onnx_export import OPSET, eager_attention
from infersweep.trials.runtimes.ort_recipes import ORT_LIBS

__all__ = ["GRAPHS", "EXPORT_FORMAT", "build_seq2seq_graphs", "export_entry", "export_seq2seq", "graph_sizes_mb"]

GRAPHS = ("encoder", "decoder_init", "decoder_past")
#: bump when the wrappers or the graph signatures change (part of the export's cache key)
EXPORT_FORMAT = 1
KV = ("key", "value")


def build_seq2seq_graphs(model: PreparedModel, precision: str, recipe: Recipe, cache: ArtifactCache,
                         log: CacheLog) -> Path:
    """The folder holding the three graphs that run `precision` by `recipe` (built or cached); the
    recipe is the extractive path's converter, applied to each graph."""
    exported = export_entry(model, cache, log)
    if recipe.build is None:
        return exported.path
    parts = {"export": exported.key, "precision": str(precision), "knobs": dict(recipe.knobs),
             "versions": library_versions(*ORT_LIBS)}
    entry = log.add(str(precision), cache.get_or_build(
        f"ort-seq2seq-{precision}", parts, lambda d: _convert_graphs(exported.path, d, recipe.build, model)))
    return entry.path


def export_entry(model: PreparedModel, cache: ArtifactCache, log: CacheLog):
    parts = {"model": model_fingerprint(model.module), "graphs": list(GRAPHS), "opset": OPSET,
             "format": EXPORT_FORMAT, "versions": library_versions("torch", "transformers", "onnx")}
    return log.add("export", cache.get_or_build(
        "onnx-seq2seq-export", parts, lambda d: export_seq2seq(model.module, model.example_inputs, d)))


def _convert_graphs(src: Path, dst: Path, builder, model: PreparedModel) -> dict:
    facts = {}
    for graph in GRAPHS:
        start = time.perf_counter()
        facts[graph] = {**(builder(src / f"{graph}.onnx", dst / f"{graph}.onnx", model) or {}),
                        "seconds": round(time.perf_counter() - start, 3)}
    return facts


def graph_sizes_mb(folder: Path) -> dict[str, float]:
    return {g: (Path(folder) / f"{g}.onnx").stat().st_size / 2**20 for g in GRAPHS}


def export_seq2seq(module, example_inputs: dict, folder: Path) -> dict:
    """Export `module` (an AutoModelForSeq2SeqLM) as the three graphs into `folder`."""
    import torch

    ids, mask = _example_batch(example_inputs, module.config.pad_token_id or 0)
    encoder, init, past = (cls(module).eval() for cls in _wrapper_classes())
    seconds = {}
    with eager_attention(module), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hidden = encoder(ids, mask)
        seconds["encoder"] = _export(encoder, (ids, mask), folder / "encoder.onnx", *_encoder_io())
        start = module.config.decoder_start_token_id
        prefix = torch.tensor([[start, ids[0, 1]], [start, ids[1, 2]]])
        presents = init(prefix, hidden, mask)
        layers = (len(presents) - 1) // 4
        seconds["decoder_init"] = _export(init, (prefix, hidden, mask), folder / "decoder_init.onnx",
                                          *_init_io(layers))
        step = (ids[:, 3:4].contiguous(), mask, *presents[1:])
        seconds["decoder_past"] = _export(past, step, folder / "decoder_past.onnx", *_past_io(layers))
    return {"exporter": "torchscript", "decoder_layers": layers, "export_s": seconds,
            "sizes_mb": {g: round(v, 3) for g, v in graph_sizes_mb(folder).items()}}


def _example_batch(example_inputs: dict, pad_id: int):
    """Two rows of at least 8 tokens, the second padded (the trace takes the padding branches)."""
    import torch

    ids = example_inputs["input_ids"][:1]
    ids = ids.repeat(2, -(-8 // ids.shape[1]))
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    ids = ids.masked_fill(mask == 0, pad_id)
    return ids, mask


def _export(wrapper, args: tuple, path: Path, inputs: list, outputs: list, axes: dict) -> float:
    import torch

    start = time.perf_counter()
    torch.onnx.export(wrapper, args, str(path), input_names=inputs, output_names=outputs,
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return round(time.perf_counter() - start, 3)


def _kv(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(layers) for kind in KV]


def _encoder_io():
    seq = {0: "batch", 1: "encoder_sequence"}
    return ["input_ids", "attention_mask"], ["encoder_hidden_states"], \
        {"input_ids": seq, "attention_mask": seq, "encoder_hidden_states": seq}


def _init_io(layers: int):
    enc, dec = {0: "batch", 1: "encoder_sequence"}, {0: "batch", 1: "decoder_sequence"}
    self_kv, cross_kv = _kv("present.self", layers), _kv("present.cross", layers)
    axes = {"decoder_input_ids": dec, "encoder_hidden_states": enc, "encoder_attention_mask": enc,
            "logits": dec, **{n: {0: "batch", 2: "decoder_sequence"} for n in self_kv},
            **{n: {0: "batch", 2: "encoder_sequence"} for n in cross_kv}}
    return ["decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask"], \
        ["logits", *self_kv, *cross_kv], axes


def _past_io(layers: int):
    past_self, past_cross = _kv("past.self", layers), _kv("past.cross", layers)
    present = _kv("present.self", layers)
    axes = {"decoder_input_ids": {0: "batch"}, "encoder_attention_mask": {0: "batch", 1: "encoder_sequence"},
            "logits": {0: "batch"}, **{n: {0: "batch", 2: "past_sequence"} for n in past_self},
            **{n: {0: "batch", 2: "encoder_sequence"} for n in past_cross},
            **{n: {0: "batch", 2: "total_sequence"} for n in present}}
    inputs = ["decoder_input_ids", "encoder_attention_mask", *past_self, *past_cross]
    return inputs, ["logits", *present], axes


@functools.lru_cache(maxsize=1)
def _wrapper_classes():
    """Modules with flat tensor inputs/outputs around a transformers 5 seq2seq model."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    def flat(cache) -> list:
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]

    def as_cache(tensors) -> DynamicCache:
        return DynamicCache(ddp_cache_data=[(tensors[i], tensors[i + 1]) for i in range(0, len(tensors), 2)])

    class Encoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.encoder = model.get_encoder()

        def forward(self, input_ids, attention_mask):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return out.last_hidden_state

    class DecoderInit(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask):
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            out = self.model(decoder_input_ids=decoder_input_ids, attention_mask=encoder_attention_mask,
                             encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states),
                             cache=cache, use_cache=True, return_dict=True)
            return (out.logits, *flat(out.cache.self_attention_cache), *flat(out.cache.cross_attention_cache))

    class DecoderPast(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, decoder_input_ids, encoder_attention_mask, *past):
            half = len(past) // 2
            cache = EncoderDecoderCache(as_cache(past[:half]), as_cache(past[half:]))  # cross: is_updated
            cross_key, config = past[half], self.model.config
            # the cross-attention reads its cached key/values; the hidden states give only the shape
            width = getattr(config, "d_model", None) or config.hidden_size
            hidden = cross_key.new_zeros(cross_key.shape[0], cross_key.shape[2], width)
            out = self.model(decoder_input_ids=decoder_input_ids, attention_mask=encoder_attention_mask,
                             encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                             cache=cache, use_cache=True, return_dict=True)
            return (out.logits, *flat(out.cache.self_attention_cache))

    return Encoder, DecoderInit, DecoderPast


