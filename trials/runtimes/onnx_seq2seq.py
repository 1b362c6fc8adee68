"""Seq2seq on ONNX Runtime, the engine: three sessions (built by onnx_seq2seq_export.py) behind
Hugging Face's generate.

Generation: `OrtSeq2SeqLM` is a `GenerationMixin` whose forward runs the ORT sessions and keeps the
key/values in the `EncoderDecoderCache` that `generate` hands it; Hugging Face's own `generate`
(greedy, beam search, length penalty, no-repeat n-grams, min/max new tokens, forced BOS/EOS, the
model's generation_config) drives it, so its decisions are the torch runtime's. Sessions run through
IO binding on torch tensors (CPU and CUDA alike): the cache never leaves the device.
"""
from __future__ import annotations

import functools
from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel
from infersweep.trials.runtimes.onnx_seq2seq_export import GRAPHS, graph_sizes_mb
from infersweep.trials.runtimes.ort_recipes import GPU_HINT, cuda_index, np_dtype, session_options, spinning_default

__all__ = ["OrtSeq2SeqEngine", "OrtGraph"]


class OrtSeq2SeqEngine:
    """The three ORT sessions behind `generate` (the seq2seq adapter's call) and `__call__` (logits)."""

    def __init__(self, folder: Path, spec, model: PreparedModel, cache_info: dict | None = None):
        import copy

        self.artifact_path = Path(folder)
        self.device = spec.device
        spinning = spinning_default()
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
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": cuda_index()}))
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise RuntimeError("onnxruntime has no CUDAExecutionProvider here; " + GPU_HINT)
        self.device = device
        self.device_id = cuda_index() if device == "cuda" else 0
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict) -> list:
        import torch

        binding = self.session.io_binding()
        kept = []  # the bound buffers must outlive the run
        for name in self.input_names:
            t = feeds[name].to(self.device).contiguous()
            kept.append(t)
            binding.bind_input(name, self.device, self.device_id, np_dtype(t), list(t.shape), t.data_ptr())
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
