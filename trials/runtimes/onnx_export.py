"""ONNX export of a PreparedModel, shared by the onnxruntime and tensorrt runtimes.

Why the export looks the way it does (measured with torch 2.13, transformers 5.x, onnxruntime 1.32):
- transformers 5.x encoders default to SDPA attention, whose exported mask/attention subgraph
  ONNX Runtime's transformers optimizer does not recognize: no Attention/EmbedLayerNormalization
  fusion, and plain ORT runs about as fast as torch. Exporting with the *eager* attention
  implementation (numerically the same) lets the optimizer fuse all of them.
- The TorchScript-based exporter (`dynamo=False`) exports MiniLM in ~2 s with dynamic batch and
  sequence axes; the dynamo exporter takes ~8 s and its graph fuses no better. The legacy
  exporter is deprecated in torch, so the dynamo exporter is the fallback.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

from infersweep.trials.runtimes.base import PreparedModel
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint

OPSET = 17
#: ORT transformers-optimizer model type for each Hugging Face model_type it can fuse
ORT_OPTIMIZER_TYPES = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert",
    "electra": "bert", "distilbert": "bert", "mpnet": "bert",
}


@contextlib.contextmanager
def eager_attention(module) -> Iterator[None]:
    """Switch every Hugging Face model inside `module` to eager attention; restore after."""
    changed = []
    for m in module.modules():
        setter = getattr(m, "set_attn_implementation", None)
        config = getattr(m, "config", None)
        current = getattr(config, "_attn_implementation", None)
        if setter is None or current in (None, "eager"):
            continue
        try:
            setter("eager")
            changed.append((m, current))
        except Exception:  # a model that only supports one implementation: export it as is
            continue
    try:
        yield
    finally:
        for m, previous in changed:
            with contextlib.suppress(Exception):
                m.set_attn_implementation(previous)


def export_onnx(model: PreparedModel, path: Path, opset: int = OPSET) -> dict:
    """Export `model.module` to `path` with the model's dynamic axes; returns facts about it."""
    import torch

    module = model.module.eval()
    kwargs = dict(model.example_inputs)
    with eager_attention(module), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (), str(path), kwargs=kwargs, input_names=list(model.input_names),
                              output_names=list(model.output_names), dynamic_axes=model.dynamic_axes,
                              opset_version=opset, dynamo=False, do_constant_folding=True)
            exporter = "torchscript"
        except Exception as legacy_error:  # the legacy exporter is deprecated; try dynamo
            try:
                _export_dynamo(module, kwargs, model, path, opset)
            except Exception as dynamo_error:
                raise RuntimeError(f"ONNX export failed: legacy exporter: {legacy_error}; "
                                   f"dynamo exporter: {dynamo_error}") from dynamo_error
            exporter = "dynamo"
    return {"exporter": exporter, "opset": opset}


def _export_dynamo(module, kwargs, model: PreparedModel, path: Path, opset: int) -> None:
    import torch
    from torch.export import Dim

    dims: dict[str, Dim] = {}
    shapes = {}
    for name in model.input_names:
        axes = model.dynamic_axes.get(name, {})
        shapes[name] = {axis: dims.setdefault(label, Dim(label)) for axis, label in axes.items()}
    torch.onnx.export(module, (), str(path), kwargs=kwargs, input_names=list(model.input_names),
                      output_names=list(model.output_names), dynamic_shapes=shapes,
                      opset_version=max(opset, 18), dynamo=True, optimize=True, external_data=False)


def optimizer_model_type(model: PreparedModel) -> str | None:
    return ORT_OPTIMIZER_TYPES.get(model.model_type)


def fuse_transformer(src: Path, dst: Path, model: PreparedModel) -> dict:
    """Run ONNX Runtime's transformers optimizer (Attention, EmbedLayerNorm, SkipLayerNorm,
    BiasGelu fusions) on `src`; copy it unchanged when the architecture has no fusion recipe.

    Returns the fused-operator counts (the report shows whether fusion happened).
    """
    import shutil

    model_type = optimizer_model_type(model)
    if model_type is None or not model.num_heads or not model.hidden_size:
        shutil.copyfile(src, dst)
        return {"fusion": f"none (no ORT fusion recipe for model_type {model.model_type!r})"}
    import logging

    from onnxruntime.transformers import optimizer

    # its fusion modules log under their own top-level names (e.g. "fusion_attention"), and warn
    # about a pruned model's attention width even where they then fuse it correctly
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fused = optimizer.optimize_model(str(src), model_type=model_type, num_heads=model.num_heads,
                                             hidden_size=model.hidden_size, opt_level=0)
    finally:
        logging.disable(logging.NOTSET)
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    fused.save_model_to_file(str(dst))
    return {"fusion": model_type, "fused_ops": stats}


def gelu_fed_matmuls(onnx_model) -> list[str]:
    """Names of MatMul nodes whose input is a GELU output (the FFN down projections).

    Their activations have BERT's large outlier values; a per-tensor int8 scale calibrated on
    them loses the small values (cosine to fp32 drops to ~0.93), so static quantization keeps
    them in float.
    """
    gelu_ops = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "GemmFastGelu"}
    producer = {out: node for node in onnx_model.graph.node for out in node.output}
    names = []
    for node in onnx_model.graph.node:
        if node.op_type != "MatMul":
            continue
        src = producer.get(node.input[0])
        if src is not None and (src.op_type in gelu_ops or "act_fn" in src.name or "gelu" in src.name.lower()):
            names.append(node.name)
    return names


def export_entry(model: PreparedModel, cache: ArtifactCache, log: CacheLog):
    """The plain ONNX export (standard ops only; TensorRT builds from it too)."""
    parts = {"model": model_fingerprint(model.module), "inputs": list(model.input_names),
             "outputs": list(model.output_names), "axes": model.dynamic_axes, "opset": OPSET,
             "versions": library_versions("torch", "transformers", "onnx")}
    return log.add("export", cache.get_or_build("onnx-export", parts,
                                                lambda d: export_onnx(model, d / "plain.onnx")))
