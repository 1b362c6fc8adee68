"""Decoder-only LMs (Llama, SmolLM2, Qwen, ...) on ONNX Runtime, the graph: one decoder with past key/values.

Export (torch.onnx TorchScript exporter, eager attention, opset 17; one cache entry):

    decoder.onnx   input_ids [batch, sequence], attention_mask [batch, past + sequence],
                   position_ids [batch, sequence], past.{i}.{key,value} [batch, kv_heads, past, head_dim]
                   -> logits [batch, 1, vocab] (the last position only),
                      present.{i}.{key,value} [batch, kv_heads, past + sequence, head_dim]

The same graph runs the prefill (an empty past: `past` = 0) and every decode step (one new token),
as optimum's merged decoders do without their `If` node. Only the last position's logits are
computed (`logits_to_keep=1`, as transformers' generate does): the prompt's other positions would
cost a [prompt, hidden] x [hidden, vocab] product per prefill for nothing. transformers 5 models
take a cache object: a wrapper module takes flat tensors, builds the DynamicCache and returns the
cache's tensors flat. A trace records only the branches its example takes, so the example has two
rows, one left-padded, two new tokens and a two-token past (no size-1 dimension, no all-ones mask).

Precision steps (one cache entry each, keyed on the export), all on the exported graph:

    int8_dynamic  quantize_dynamic, per-channel int8 weights; the MatMuls of lm_head and the MLP
                  down projections stay fp32, as torch eager's causal int8 keeps them
                  (torch_precision.CAUSAL_INT8_SKIP: the down projection's inputs carry the
                  activation outliers of a Llama-layout MLP, lm_head decides every token)
    int4_weight   MatMulNBits (weight-only, 4-bit blocks of 32, symmetric, int8 compute:
                  accuracy_level 4) on every MatMul with a constant weight, lm_head included
    fp16 (CUDA)   float16 graph, float32 inputs/outputs (the past key/values stay float32)

Large models: protobuf refuses a file over 2 GiB. A graph whose weights reach EXTERNAL_DATA_BYTES
(an export of ~450 M parameters or more) keeps them in one `decoder.onnx.data` beside the graph,
from the export on (the exporter's one file per tensor gathered into it) through every precision
step; ONNX Runtime reads it from the same folder.
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

from infersweep.trials.precision import Precision as P
from infersweep.trials.runtimes.base import PreparedModel, Recipe, Unsupported
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint
from infersweep.trials.runtimes.onnx_export import OPSET, eager_attention
from infersweep.trials.runtimes.ort_recipes import INT8_DYNAMIC, ORT_LIBS, quiet
from infersweep.trials.runtimes.torch_precision import CAUSAL_INT8_SKIP

__all__ = ["causal_recipes", "GRAPH", "EXPORT_FORMAT", "CAUSAL_INT8", "CAUSAL_INT4", "build_causal_graph",
           "causal_export_entry", "export_causal", "kv_shape", "EXTERNAL_DATA_BYTES", "graph_bytes",
           "needs_external_data", "externalize",
           "quantize_causal_int8", "quantize_causal_int4", "convert_causal_fp16", "past_names", "present_names"]

GRAPH = "decoder.onnx"
#: weights at or over this many bytes go to external data (protobuf's limit is 2 GiB; room for the graph)
EXTERNAL_DATA_BYTES = 1_800_000_000
#: bump when the wrapper or the graph's signature changes (part of the export's cache key)
EXPORT_FORMAT = 1
KV = ("key", "value")
CAUSAL_INT8 = {**INT8_DYNAMIC, "fp32_matmul": ",".join(CAUSAL_INT8_SKIP)}
CAUSAL_INT4 = {"bits": 4, "block_size": 32, "symmetric": True, "accuracy_level": 4}


def past_names(layers: int) -> list[str]:
    return [f"past.{i}.{kind}" for i in range(layers) for kind in KV]


def present_names(layers: int) -> list[str]:
    return [f"present.{i}.{kind}" for i in range(layers) for kind in KV]


def build_causal_graph(model: PreparedModel, precision: str, recipe: Recipe, cache: ArtifactCache,
                       log: CacheLog) -> Path:
    """The folder holding decoder.onnx at `precision` by `recipe` (built or taken from the cache)."""
    exported = causal_export_entry(model, cache, log)
    if recipe.build is None:
        return exported.path
    parts = {"export": exported.key, "precision": str(precision), "knobs": dict(recipe.knobs),
             "versions": library_versions(*ORT_LIBS)}
    entry = log.add(str(precision), cache.get_or_build(
        f"ort-causal-{precision}", parts, lambda d: _convert(recipe.build, exported.path, d)))
    return entry.path


def causal_export_entry(model: PreparedModel, cache: ArtifactCache, log: CacheLog):
    parts = {"model": model_fingerprint(model.module), "opset": OPSET, "format": EXPORT_FORMAT,
             "versions": library_versions("torch", "transformers", "onnx")}
    return log.add("export", cache.get_or_build("onnx-causal-export", parts,
                                                lambda d: export_causal(model.module, d)))


def _convert(build, src: Path, dst: Path) -> dict:
    start = time.perf_counter()
    facts = build(src / GRAPH, dst / GRAPH) or {}
    # the steps save weights beside a large graph in one `decoder.onnx.data`, as the export does
    return {**facts, "external_data": needs_external_data(src / GRAPH),
            "seconds": round(time.perf_counter() - start, 3)}


def export_causal(module, folder: Path) -> dict:
    """Export `module` (an AutoModelForCausalLM) as decoder.onnx into `folder`."""
    import torch

    wrapper = _wrapper_class()(module).eval()
    layers, kv_heads, head_dim = kv_shape(module.config)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]]) % module.config.vocab_size
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    positions = torch.tensor([[2, 3, 4, 5], [0, 1, 2, 3]])  # row 2: two pads in the past
    # a past of 2 positions, then 4 new tokens: neither dimension is 1
    past = [torch.randn(2, kv_heads[i // 2], 2, head_dim) * 0.1 for i in range(2 * layers)]
    inputs, outputs = ["input_ids", "attention_mask", "position_ids", *past_names(layers)], \
        ["logits", *present_names(layers)]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "position_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "total_sequence"}, "logits": {0: "batch"},
            **{n: {0: "batch", 2: "past_sequence"} for n in past_names(layers)},
            **{n: {0: "batch", 2: "total_sequence"} for n in present_names(layers)}}
    start = time.perf_counter()
    with eager_attention(module), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (ids, mask, positions, *past), str(folder / GRAPH), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)
    external = needs_external_data(folder / GRAPH)
    if external:
        externalize(folder / GRAPH)
    return {"exporter": "torchscript", "layers": layers, "kv_heads": kv_heads, "head_dim": head_dim,
            "export_s": round(time.perf_counter() - start, 3), "external_data": external,
            "size_mb": round(graph_bytes(folder / GRAPH) / 2**20, 3)}


def graph_bytes(graph: Path) -> int:
    """The graph's size with its external data: every file of its folder."""
    return sum(f.stat().st_size for f in graph.parent.iterdir() if f.is_file())


def needs_external_data(graph: Path) -> bool:
    return graph_bytes(graph) >= EXTERNAL_DATA_BYTES


def externalize(graph: Path) -> None:
    """Rewrite `graph` with every weight in one `<graph>.data` beside it (replacing any other
    external-data files in its folder: the exporter writes one per tensor)."""
    import onnx

    model = onnx.load(str(graph))  # with its external data, if any
    for f in graph.parent.iterdir():
        if f.is_file() and f != graph:
            f.unlink()
    onnx.save_model(model, str(graph), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=graph.name + ".data", size_threshold=1024)


def kv_shape(config) -> tuple[int, list[int], int]:
    """(layers, key/value heads of each layer, head width) of a decoder-only config; a structurally
    pruned one keeps its per-layer key/value heads in its pruning record."""
    from infersweep.trials.pruning import CONFIG_KEY

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    layers = config.num_hidden_layers
    layout = getattr(config, CONFIG_KEY, None)
    if layout:
        return layers, [int(h) for h in layout["num_heads"]], head_dim
    return layers, [getattr(config, "num_key_value_heads", None) or heads] * layers, head_dim


@functools.lru_cache(maxsize=1)
def _wrapper_class():
    import torch
    from transformers.cache_utils import DynamicCache

    class Decoder(torch.nn.Module):
        """Flat tensors in and out around a transformers 5 causal LM with a DynamicCache."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(ddp_cache_data=[(past[i], past[i + 1]) for i in range(0, len(past), 2)])
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, use_cache=True, logits_to_keep=1, return_dict=True)
            return (out.logits, *[t for layer in out.cache.layers for t in (layer.keys, layer.values)])

    return Decoder


# -- precision steps ---------------------------------------------------------------------------------

def _skipped_matmuls(graph, suffixes=CAUSAL_INT8_SKIP) -> list[str]:
    """MatMul nodes of the named Linear layers (TorchScript names them /…/down_proj/MatMul)."""
    return [n.name for n in graph.node if n.op_type == "MatMul"
            and any(f"/{s}/" in n.name or n.name.startswith(f"{s}/") for s in suffixes)]


def quantize_causal_int8(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    skip = _skipped_matmuls(onnx.load(str(src), load_external_data=False).graph)
    with quiet():
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=CAUSAL_INT8["reduce_range"], nodes_to_exclude=skip,
                         op_types_to_quantize=["MatMul"], use_external_data_format=needs_external_data(src),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"fp32_matmuls": len(skip), "reduce_range": CAUSAL_INT8["reduce_range"]}


def quantize_causal_int4(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with quiet():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=CAUSAL_INT4["bits"],
                                         block_size=CAUSAL_INT4["block_size"], is_symmetric=CAUSAL_INT4["symmetric"],
                                         accuracy_level=CAUSAL_INT4["accuracy_level"])
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=needs_external_data(src))
    return {"matmulnbits": sum(1 for n in quantizer.model.model.graph.node if n.op_type == "MatMulNBits")}


def convert_causal_fp16(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with quiet():
        graph = OnnxModel(onnx.load(str(src)))
        graph.convert_float_to_float16(keep_io_types=True)
        graph.save_model_to_file(str(dst), use_external_data_format=needs_external_data(src),
                                 all_tensors_to_one_file=True)
    return {}


_NO_STATIC = Unsupported("static calibration of the decoder needs recorded past key/values, which nothing collects "
                         "yet: use int8_dynamic (or int4_weight) on onnxruntime")


def causal_recipes(device: str) -> dict:
    """onnxruntime's support-table entries for the causal task on `device`."""
    if device == "cuda":
        return {P.FP32: Recipe(), P.FP16: Recipe(convert_causal_fp16, {"keep_io_types": True}),
                P.INT8_DYNAMIC: Unsupported("ORT's dynamic int8 kernels are CPU kernels: use fp16 on cuda, or "
                                            "int8_dynamic on runtime 'torch' (bitsandbytes LLM.int8)"),
                P.INT4_WEIGHT: Unsupported("the causal MatMulNBits graph is built and checked on CPU only: use fp16 "
                                           "on cuda, or int4_weight on runtime 'torch' (bitsandbytes NF4)"),
                P.INT8_STATIC: _NO_STATIC}
    return {P.FP32: Recipe(), P.INT8_DYNAMIC: Recipe(quantize_causal_int8, CAUSAL_INT8),
            P.INT4_WEIGHT: Recipe(quantize_causal_int4, CAUSAL_INT4), P.INT8_STATIC: _NO_STATIC}
