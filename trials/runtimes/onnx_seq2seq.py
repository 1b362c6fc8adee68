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

Generation: `OrtSeq2SeqLM` is a `GenerationMixin` whose forward runs the ORT sessions and keeps the
key/values in the `EncoderDecoderCache` that `generate` hands it; Hugging Face's own `generate`
(greedy, beam search, length penalty, no-repeat n-grams, min/max new tokens, forced BOS/EOS, the
model's generation_config) drives it, so its decisions are the torch runtime's. Sessions run through
IO binding on torch tensors (CPU and CUDA alike): the cache never leaves the device.
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

from trials.runtimes.base import PreparedModel
from trials.runtimes.cache import ArtifactCache, CacheLog, library_versions, model_fingerprint
from trials.runtimes.onnx_export import OPSET, eager_attention
from trials.runtimes.onnxruntime import (GPU_HINT, INT4_WEIGHT, INT8_DYNAMIC, ORT_LIBS, _convert_fp16,
                                         _quantize_dynamic, _quantize_int4, _spinning_default,
                                         session_options)

GRAPHS = ("encoder", "decoder_init", "decoder_past")
#: bump when the wrappers or the graph signatures change (part of the export's cache key)
EXPORT_FORMAT = 1
#: device -> precisions the seq2seq graphs run there
SEQ2SEQ_PRECISIONS = {"cpu": ("fp32", "int8_dynamic", "int4_weight"), "cuda": ("fp32", "fp16")}
KV = ("key", "value")
#: precision -> (knobs, part of the cache key; the extractive path's converter, applied to each graph)
PRECISION_STEPS = {"int8_dynamic": (INT8_DYNAMIC, _quantize_dynamic),
                   "int4_weight": (INT4_WEIGHT, _quantize_int4),
                   "fp16": ({"keep_io_types": True}, _convert_fp16)}


#: precision -> (why the seq2seq graphs do not run it, what to use instead)
_NOT_FOR_SEQ2SEQ = {
    "int8_static": ("static calibration of the decoder graphs needs recorded decoder states (past "
                    "key/values), which nothing collects yet",
                    "use int8_dynamic (int8 weights, activations quantized at run time) on onnxruntime"),
    "int4_weight": ("the seq2seq MatMulNBits graphs are built and checked on CPU only",
                    "use fp16 on cuda, or int4_weight on cpu"),
}


def unavailable_reason(spec) -> str | None:
    """Why onnxruntime cannot run this seq2seq spec's precision, or None."""
    supported = SEQ2SEQ_PRECISIONS.get(spec.device, ())
    if spec.precision in supported:
        return None
    why, instead = _NOT_FOR_SEQ2SEQ.get(spec.precision, ("no recipe for the seq2seq graphs",
                                                         f"use one of {', '.join(supported)}"))
    return (f"onnxruntime runs seq2seq on {spec.device} in {', '.join(supported)}; {spec.precision} is "
            f"extractive-only there ({why}): {instead}, or runtime 'torch'")


# --------------------------------------------------------------------------------------- build
def build_seq2seq_graphs(model: PreparedModel, precision: str, device: str, cache: ArtifactCache,
                         log: CacheLog) -> Path:
    """The folder holding the three graphs that run `precision` on `device` (built or cached)."""
    exported = export_entry(model, cache, log)
    if precision == "fp32":
        return exported.path
    if precision not in PRECISION_STEPS:
        raise ValueError(f"onnxruntime has no seq2seq {precision} recipe")
    knobs, builder = PRECISION_STEPS[precision]
    parts = {"export": exported.key, "precision": precision, "knobs": knobs,
             "versions": library_versions(*ORT_LIBS)}
    entry = log.add(precision, cache.get_or_build(
        f"ort-seq2seq-{precision}", parts, lambda d: _convert_graphs(exported.path, d, builder, model)))
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


# -------------------------------------------------------------------------------------- export
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


# -------------------------------------------------------------------------------------- engine
class OrtSeq2SeqEngine:
    """The three ORT sessions behind `generate` (the seq2seq adapter's call) and `__call__` (logits)."""

    def __init__(self, folder: Path, spec, model: PreparedModel, cache_info: dict | None = None):
        import copy

        self.artifact_path = Path(folder)
        self.device = spec.device
        spinning = _spinning_default()
        options = session_options(spec.cpus, spinning=spinning)
        graphs = {g: OrtGraph(self.artifact_path / f"{g}.onnx", options, spec.device) for g in GRAPHS}
        config, generation = (copy.deepcopy(c) for c in (model.module.config, model.module.generation_config))
        self.model = _generator_class()(graphs, config, generation, spec.device)
        self.cache_info = {**(cache_info or {}), "intra_op_threads": spec.cpus, "thread_spinning": spinning,
                           "graphs": ",".join(GRAPHS)}

    def generate(self, **kwargs):
        import torch

        with torch.inference_mode():
            moved = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in kwargs.items()}
            return self.model.generate(**moved)

    def __call__(self, input_ids, attention_mask, decoder_input_ids):
        """Logits for a full decoder prefix (no cache): encoder + decoder_init."""
        import torch

        with torch.inference_mode():
            encoded = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
            return self.model(decoder_input_ids=decoder_input_ids, encoder_outputs=encoded,
                              attention_mask=attention_mask).logits

    def size_mb(self) -> float:
        return sum(graph_sizes_mb(self.artifact_path).values())

    def close(self) -> None:
        self.model = None


class OrtGraph:
    """One InferenceSession run through IO binding: torch tensors in, torch tensors out (dlpack)."""

    def __init__(self, path: Path, options, device: str):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": _cuda_index()}))
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise RuntimeError("onnxruntime has no CUDAExecutionProvider here; " + GPU_HINT)
        self.device = device
        self.device_id = _cuda_index() if device == "cuda" else 0
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict) -> list:
        import torch

        binding = self.session.io_binding()
        kept = []  # the bound buffers must outlive the run
        for name in self.input_names:
            t = feeds[name].to(self.device).contiguous()
            kept.append(t)
            binding.bind_input(name, self.device, self.device_id, _np_dtype(t), list(t.shape), t.data_ptr())
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        if self.device == "cuda":
            binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        if self.device == "cuda":
            binding.synchronize_outputs()
        return [torch.from_dlpack(value) for value in binding.get_outputs()]


@functools.lru_cache(maxsize=1)
def _generator_class():
    import torch
    from transformers import GenerationMixin
    from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

    class OrtEncoder:
        main_input_name = "input_ids"

        def __init__(self, graph: OrtGraph):
            self.graph = graph

        def forward(self, input_ids, attention_mask=None, **kwargs):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            (hidden,) = self.graph.run({"input_ids": input_ids, "attention_mask": attention_mask})
            return BaseModelOutput(last_hidden_state=hidden)

        __call__ = forward

    class OrtSeq2SeqLM(GenerationMixin):
        """What `GenerationMixin.generate` needs of a model, answered by the three ORT graphs."""

        main_input_name = "input_ids"
        base_model_prefix = ""  # no torch base model inside

        def __init__(self, graphs: dict, config, generation_config, device: str):
            self.graphs = graphs
            self.config = config
            self.generation_config = generation_config
            self.device = torch.device(device)
            self.encoder = OrtEncoder(graphs["encoder"])

        @classmethod
        def can_generate(cls) -> bool:
            return True

        @classmethod
        def is_remote_code(cls) -> bool:
            return False

        def get_experts_implementation(self) -> dict:  # no mixture-of-experts layers
            return {}

        def get_encoder(self, *args, **kwargs):
            return self.encoder

        def forward(self, decoder_input_ids=None, encoder_outputs=None, attention_mask=None, cache=None,
                    use_cache=None, **kwargs):
            hidden = encoder_outputs[0]
            if attention_mask is None:
                attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
            if cache is not None and cache.get_seq_length() > 0:
                logits = self._next_step(decoder_input_ids[:, -1:], attention_mask, cache)
            else:
                logits = self._first_step(decoder_input_ids, hidden, attention_mask, cache)
            return Seq2SeqLMOutput(logits=logits, cache=cache)

        __call__ = forward

        def _first_step(self, decoder_input_ids, hidden, attention_mask, cache):
            logits, *kv = self.graphs["decoder_init"].run(
                {"decoder_input_ids": decoder_input_ids, "encoder_hidden_states": hidden,
                 "encoder_attention_mask": attention_mask})
            if cache is not None:
                half = len(kv) // 2
                for i in range(half // 2):
                    cache.self_attention_cache.update(kv[2 * i], kv[2 * i + 1], i)
                    cache.cross_attention_cache.update(kv[half + 2 * i], kv[half + 2 * i + 1], i)
                    cache.is_updated[i] = True
            return logits

        def _next_step(self, token, attention_mask, cache):
            feeds = {"decoder_input_ids": token, "encoder_attention_mask": attention_mask}
            parts = (("past.self", cache.self_attention_cache), ("past.cross", cache.cross_attention_cache))
            for prefix, part in parts:
                for i, layer in enumerate(part.layers):
                    feeds[f"{prefix}.{i}.key"], feeds[f"{prefix}.{i}.value"] = layer.keys, layer.values
            logits, *present = self.graphs["decoder_past"].run(feeds)
            for i, layer in enumerate(cache.self_attention_cache.layers):
                layer.keys, layer.values = present[2 * i], present[2 * i + 1]
            return logits

    return OrtSeq2SeqLM


def _np_dtype(t):
    import numpy as np
    import torch

    return {torch.int64: np.int64, torch.int32: np.int32, torch.float32: np.float32,
            torch.float16: np.float16}[t.dtype]


def _cuda_index() -> int:
    import torch

    return torch.cuda.current_device()
