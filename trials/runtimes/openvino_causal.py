"""Decoder-only LMs on OpenVINO: the causal ONNX export converted to IR, decoded greedily.

    export   the onnxruntime runtime's causal export (onnx_causal_export: decoder.onnx, past
             key/values in, present key/values out, last-position logits)
    convert  openvino.convert_model(decoder.onnx) -> IR with float32 weights        model.xml/.bin
    int4     nncf.compress_weights INT4_SYM, groups of 32, the decoder layers' MatMul weights (the
             embeddings and lm_head int8: NNCF's backup mode for the first and last layers); data-free
    compile  on the CPU plugin with the extractive engine's settings (openvino.compile_config)

The key/values stay in the plugin's tensors between steps: two infer requests take turns, each
step's `present` output tensors bound as the other request's `past` inputs, so nothing is copied
to numpy but the last position's logits. (OpenVINO's stateful form, which keeps the cache inside
one request, needs a state initializer sized from the batch, as optimum-intel builds; the two
requests give the same zero-copy loop on the plain graph.) The greedy loop, Hugging Face
`generate` semantics included, is the onnxruntime engine's (onnx_causal.GreedyDecoder).
"""
from __future__ import annotations

import time
from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel, Recipe, file_size_mb, import_or_hint
from infersweep.trials.runtimes.cache import ArtifactCache, CacheLog, library_versions
from infersweep.trials.runtimes.onnx_causal import GreedyDecoder, eos_ids
from infersweep.trials.runtimes.onnx_causal_export import (GRAPH, causal_export_entry, kv_shape, past_names,
                                                           present_names)

__all__ = ["CAUSAL_INT4", "OpenVinoCausalEngine", "build_ov_causal", "compress_causal_int4"]

IR = "model.xml"
CAUSAL_INT4 = {"method": "nncf.compress_weights", "mode": "int4_sym", "group_size": 32, "ratio": 1.0,
               "inference_precision": "f32"}


def _ov():
    from infersweep.trials.runtimes.openvino import OV_HINT

    return import_or_hint("openvino", OV_HINT)


def compress_causal_int4(src: Path, dst: Path) -> dict:
    from infersweep.trials.runtimes.openvino import compress_ir_int4

    return compress_ir_int4(src, dst, CAUSAL_INT4)


def build_ov_causal(model: PreparedModel, precision, recipe: Recipe, cache: ArtifactCache, log: CacheLog) -> Path:
    """Path of the IR (model.xml) of the causal graph at `precision` by `recipe`, built or from the cache."""
    from infersweep.trials.runtimes.openvino import OV_LIBS

    exported = causal_export_entry(model, cache, log)

    def convert(directory: Path) -> dict:
        ov = _ov()
        converted = ov.convert_model(str(exported.path / GRAPH))
        ov.save_model(converted, str(directory / IR), compress_to_fp16=False)
        return {"ops": len(converted.get_ops())}

    ir = log.add("convert", cache.get_or_build("ov-causal-ir", {"export": exported.key,
                                                                "versions": library_versions("openvino")}, convert))
    if recipe.build is None:
        return ir.file(IR)
    parts = {"ir": ir.key, "precision": str(precision), "knobs": dict(recipe.knobs),
             "versions": library_versions(*OV_LIBS)}
    entry = log.add(str(precision), cache.get_or_build(f"ov-causal-{precision}", parts,
                                                       lambda d: recipe.build(ir.file(IR), d / IR)))
    return entry.file(IR)


class OpenVinoCausalEngine(GreedyDecoder):
    """The causal IR compiled on the CPU plugin behind `generate` and `__call__` (GreedyDecoder)."""

    name = "the openvino causal engine"

    def __init__(self, path: Path, spec, model: PreparedModel, inference_precision: str,
                 cache_info: dict | None = None):
        from infersweep.trials.runtimes.openvino import OV_LIBS, check_bf16, compile_config

        ov = _ov()
        self._ov = ov
        self.artifact_path = Path(path)
        core = ov.Core()
        check_bf16(core, inference_precision)
        self.config = compile_config(spec, inference_precision)
        start = time.perf_counter()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", self.config)
        self.requests = [self.compiled.create_infer_request() for _ in range(2)]
        self._turn = 0
        self.layers, self.kv_heads, self.head_dim = kv_shape(model.module.config)
        self.eos = eos_ids(model.module)
        self.pad_token_id = model.module.config.pad_token_id
        self._past, self._present = past_names(self.layers), present_names(self.layers)
        self._size_mb = file_size_mb(self.artifact_path) + file_size_mb(self.artifact_path.with_suffix(".bin"))
        prop = self.compiled.get_property
        self.cache_info = {**(cache_info or {}), **library_versions(*OV_LIBS),
                           "threads": int(prop("INFERENCE_NUM_THREADS")),
                           "inference_precision": prop("INFERENCE_PRECISION_HINT").get_type_name(),
                           "kv_cache": "plugin tensors, two requests in turn",
                           "compile_s": round(time.perf_counter() - start, 3)}

    def _empty_past(self, batch: int) -> list:
        import numpy as np

        return [self._ov.Tensor(np.zeros((batch, self.kv_heads[i // 2], 0, self.head_dim), np.float32))
                for i in range(2 * self.layers)]

    def step(self, input_ids, attention_mask, position_ids, past: list):
        """Logits of the last position (numpy [batch, vocab]) and the present key/values (plugin tensors)."""
        import numpy as np

        request = self.requests[self._turn]
        self._turn ^= 1
        for name, value in (("input_ids", input_ids), ("attention_mask", attention_mask),
                            ("position_ids", position_ids)):
            request.set_tensor(name, self._ov.Tensor(np.ascontiguousarray(value, dtype=np.int64)))
        for name, tensor in zip(self._past, past):
            request.set_tensor(name, tensor)
        request.infer()
        logits = request.get_tensor("logits").data[:, -1, :].copy()
        return logits, [request.get_tensor(name) for name in self._present]

    def size_mb(self) -> float:
        return self._size_mb

    def close(self) -> None:
        self.requests = []
        self.compiled = None
