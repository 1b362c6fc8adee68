"""The runtime protocol: prepare a model for a spec, run batches, report the artifact."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable


@dataclass
class PreparedModel:
    """What a task adapter hands a runtime: the torch module to optimize and how to call it.

    `module.forward(**example_inputs)` returns the tensor the adapter consumes (for the
    extractive task: pooled, normalized sentence embeddings).
    """

    module: Any
    example_inputs: dict[str, Any]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    calibration_inputs: list[dict[str, Any]] = field(default_factory=list)
    model_type: str = "bert"
    #: attention heads per layer and their total width, as ONNX Runtime's Attention fusion wants
    #: them (a structurally pruned encoder has fewer than its config's; 0: let it skip the fusion)
    num_heads: int = 0
    hidden_size: int = 0


@runtime_checkable
class Engine(Protocol):
    """A prepared, runnable model."""

    artifact_path: Path | None

    def __call__(self, **inputs) -> Any: ...

    def size_mb(self) -> float: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    name: str
    #: device -> precisions this runtime runs there
    precisions: Mapping[str, tuple[str, ...]]
    tasks: tuple[str, ...]
    #: (importable module, pip install hint) that must be present to use this runtime
    requires: tuple[tuple[str, str], ...]

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> Engine: ...


def missing_requirement(runtime: Runtime) -> str | None:
    """An install hint for the first package the runtime needs that is not installed."""
    for module_name, hint in runtime.requires:
        if importlib.util.find_spec(module_name) is None:
            return f"runtime {runtime.name!r} needs the Python package {module_name!r}: {hint}"
    return None


def import_or_hint(module_name: str, hint: str):
    """Import an optional heavy package; a missing one is an ImportError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"the Python package {module_name!r} is needed here: {hint} ({exc})") from exc


def file_size_mb(path: Path | None) -> float:
    if path is None or not Path(path).exists():
        return 0.0
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20
    return p.stat().st_size / 2**20
