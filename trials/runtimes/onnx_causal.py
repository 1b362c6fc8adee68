"""Decoder-only LMs on ONNX Runtime, the engine: one session (onnx_causal_export.py) and a greedy
decoding loop with the KV cache kept in ORT values.

`generate` answers the causal adapter's call with Hugging Face `generate` semantics for greedy
decoding: left-padded prompts, position ids from the attention mask (cumsum - 1, pads at 0, as
transformers computes them), the prompt put to the streamer first and then each step's tokens
(the adapter's token clock), rows that have produced an end-of-sequence token continue with the
pad token, and decoding stops when every row has finished or after max_new_tokens. Sampling and beam
search are refused (the causal task decodes greedily).

The past key/values never leave ORT: each step's `present` outputs (OrtValues, through IO binding)
are bound as the next step's `past` inputs, on the CPU or the GPU, with no numpy copy; only the
last position's logits come back to the host for the argmax.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.trials.runtimes.base import PreparedModel
from infersweep.trials.runtimes.onnx_causal_export import GRAPH, graph_bytes, kv_shape, past_names
from infersweep.trials.runtimes.ort_recipes import GPU_HINT, cuda_index, session_options, spinning_default

__all__ = ["GreedyDecoder", "OrtCausalEngine", "eos_ids"]


def eos_ids(module) -> set[int]:
    """The end-of-sequence ids of a causal LM (its generation config's, else its config's)."""
    ids = getattr(getattr(module, "generation_config", None), "eos_token_id", None)
    if ids is None:
        ids = getattr(module.config, "eos_token_id", None)
    return set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])


class GreedyDecoder:
    """`generate` (greedy, KV cache, Hugging Face semantics) and `__call__` (last-position logits)
    over an engine's `step(input_ids, attention_mask, position_ids, past) -> (logits, present)`
    and `_empty_past(batch)`; the engine names its `eos` ids and `pad_token_id`."""

    name = "the causal engine"

    # -- the GeneratingEngine protocol -----------------------------------------------------------------
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, pad_token_id=None,
                 streamer=None, do_sample: bool = False, num_beams: int = 1, **ignored):
        """Prompt + greedy continuation ([batch, prompt + new] torch int64), like HF's generate."""
        import numpy as np
        import torch

        if do_sample or num_beams != 1:
            raise ValueError(f"{self.name} decodes greedily (do_sample=False, num_beams=1)")
        prompt = _as_int64(input_ids)
        mask = np.ones_like(prompt) if attention_mask is None else _as_int64(attention_mask)
        pad = pad_token_id if pad_token_id is not None else self.pad_token_id
        pad = pad if pad is not None else min(self.eos, default=0)
        if streamer is not None:
            streamer.put(torch.from_numpy(prompt))
        positions = np.where(mask == 0, 0, mask.cumsum(-1) - 1)
        ids, past, done, new = prompt, self._empty_past(prompt.shape[0]), np.zeros(prompt.shape[0], bool), []
        eos = np.array(sorted(self.eos), dtype=np.int64)
        for _ in range(max_new_tokens):
            logits, past = self.step(ids, mask, positions, past)
            token = np.where(done, pad, logits.argmax(-1)).astype(np.int64)
            new.append(token)
            if streamer is not None:
                streamer.put(torch.from_numpy(token))
            done |= np.isin(token, eos)
            if done.all():
                break
            ids, positions = token[:, None], positions[:, -1:] + 1
            mask = np.concatenate([mask, np.ones((mask.shape[0], 1), dtype=np.int64)], axis=1)
        if streamer is not None:
            streamer.end()
        out = np.concatenate([prompt, np.stack(new, axis=1)], axis=1) if new else prompt
        return torch.from_numpy(out)

    def __call__(self, input_ids, attention_mask=None, **ignored):
        """The last position's logits ([batch, vocab]) for a left-padded prompt (no past)."""
        import numpy as np

        ids = _as_int64(input_ids)
        mask = np.ones_like(ids) if attention_mask is None else _as_int64(attention_mask)
        logits, _ = self.step(ids, mask, np.where(mask == 0, 0, mask.cumsum(-1) - 1), self._empty_past(ids.shape[0]))
        return logits


class OrtCausalEngine(GreedyDecoder):
    """One ORT session behind `generate` (greedy, KV cache) and `__call__` (last-position logits)."""

    name = "the onnxruntime causal engine"

    def __init__(self, folder: Path, spec, model: PreparedModel, cache_info: dict | None = None):
        import onnxruntime as ort

        self.artifact_path = Path(folder)
        self.device = spec.device
        self.device_id = cuda_index() if spec.device == "cuda" else 0
        spinning = spinning_default()
        providers = ["CPUExecutionProvider"]
        if spec.device == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device_id}))
        self.session = ort.InferenceSession(str(self.artifact_path / GRAPH), session_options(spec.cpus, spinning),
                                            providers=providers)
        if spec.device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise RuntimeError("onnxruntime has no CUDAExecutionProvider here; " + GPU_HINT)
        self.layers, self.kv_heads, self.head_dim = kv_shape(model.module.config)
        self.eos = eos_ids(model.module)
        self.pad_token_id = model.module.config.pad_token_id
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.cache_info = {**(cache_info or {}), "intra_op_threads": spec.cpus, "thread_spinning": spinning,
                           "provider": providers[0] if isinstance(providers[0], str) else providers[0][0]}

    # -- one step ----------------------------------------------------------------------------------
    def _ort_device(self) -> str:
        return "cuda" if self.device == "cuda" else "cpu"

    def _empty_past(self, batch: int) -> list:
        import numpy as np
        import onnxruntime as ort

        shapes = [(batch, self.kv_heads[i // 2], 0, self.head_dim) for i in range(2 * self.layers)]
        return [ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.float32), self._ort_device(), self.device_id)
                for shape in shapes]

    def step(self, input_ids, attention_mask, position_ids, past: list):
        """Logits of the last position (numpy [batch, vocab]) and the present key/values (OrtValues)."""
        binding = self.session.io_binding()
        for name, value in (("input_ids", input_ids), ("attention_mask", attention_mask),
                            ("position_ids", position_ids)):
            binding.bind_cpu_input(name, value)
        for name, value in zip(past_names(self.layers), past):
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self._ort_device(), self.device_id)
        self.session.run_with_iobinding(binding)
        logits, *present = binding.get_outputs()
        return logits.numpy()[:, -1, :], present

    def size_mb(self) -> float:
        return graph_bytes(self.artifact_path / GRAPH) / 2**20

    def close(self) -> None:
        self.session = None


def _as_int64(x):
    import numpy as np

    return np.ascontiguousarray(x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x), dtype=np.int64)
