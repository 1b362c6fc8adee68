"""The runtime protocol: prepare a model for a spec, run batches, report the artifact.

Each runtime declares what it runs in one support table, `{(task, device): {precision: Recipe}}`;
feasibility, sweep spaces, tables and help read that table and nothing else.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, Union, runtime_checkable

from infersweep.trials.errors import InfersweepError
from infersweep.trials.precision import Precision

__all__ = ["QualityProbe", "PreparedModel", "Engine", "GeneratingEngine", "Runtime", "Recipe", "Unsupported",
           "SupportTable",
           "ProfilingUnsupported",
           "recipe_for", "accuracy_bound", "accuracy_reason", "precisions_for", "tasks_of", "devices_of",
           "min_cosine", "missing_requirement", "BOUNDED_PRECISIONS",
           "import_or_hint", "file_size_mb"]


@dataclass(frozen=True)
class QualityProbe:
    """The task's own quality on the calibration slice, for a candidate forward: what
    accuracy-controlled quantization steers by. `score(forward, indices)` is the ROUGE-Lsum (0-100)
    of each indexed calibration document's summary made with `forward` (called like an engine:
    keyword inputs -> the module's output) against its reference; `fingerprint` names the
    documents and references (part of cache keys)."""

    documents: int
    score: Callable[[Callable[..., Any], Sequence[int]], list[float]]
    fingerprint: str


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
    #: quality on the calibration slice (set by adapters given the slice's reference summaries)
    quality_probe: QualityProbe | None = None


@runtime_checkable
class Engine(Protocol):
    """A prepared, runnable model."""

    artifact_path: Path | None
    #: how the artifact was obtained (cache hits, build seconds, session settings): artifact info
    cache_info: dict

    def __call__(self, **inputs) -> Any: ...

    def size_mb(self) -> float: ...

    def close(self) -> None: ...


@runtime_checkable
class GeneratingEngine(Engine, Protocol):
    """An engine that decodes (seq2seq, causal): Hugging Face `generate` semantics."""

    def generate(self, **inputs) -> Any: ...


class ProfilingUnsupported(InfersweepError, NotImplementedError):
    """The runtime (or this engine of it) has no profiler hook; str() names what to use instead."""


@dataclass(frozen=True)
class Recipe:
    """How a runtime runs one precision for one task on one device.

    `build` is the runtime's own step (a module converter, a graph quantizer); `knobs` its settings
    (part of cache keys and artifact info); `requires` packages this recipe alone needs, as
    (importable module, install hint); `min_cosine` how close to torch fp32 its outputs must stay
    (None: the precision's default, Precision.min_cosine); `accuracy_aware` the build that bounds
    the quality drop (`build(src, dst, model, max_rouge_drop_pct=...)`), used where the spec sets
    quantization.max_rouge_drop_pct.
    """

    build: Callable[..., Any] | None = None
    knobs: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[tuple[str, str], ...] = ()
    min_cosine: float | None = None
    accuracy_aware: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Unsupported:
    """A precision a runtime deliberately does not run there, and what to do instead."""

    reason: str


#: (task, device) -> precision -> how the runtime runs it (or why not)
SupportTable = Mapping[tuple[str, str], Mapping[Precision, Union[Recipe, Unsupported]]]


class Runtime(Protocol):
    """A runtime module's class. Subclass it to inherit the optional members' defaults."""

    name: str
    support: SupportTable
    #: (importable module, pip install hint) that must be present to use this runtime at all
    requires: tuple[tuple[str, str], ...] = ()
    #: prepare() keeps its artifacts in the artifact cache (a second trial loads, not rebuilds)
    caches_artifacts: bool = False
    #: prepare() takes minutes here (a cold compile)
    slow_to_prepare: bool = False

    def hardware_reason(self, spec, hardware) -> str | None:
        """Why this hardware cannot run the spec beyond the support table (a GPU generation, a
        CPU without native bf16), or None. Checked wherever the trials' hardware is known."""
        return None

    def unavailable_reason(self, spec, hardware) -> str | None:
        """Why this process cannot run the spec beyond the packages the runtime requires (a
        package build), or None. Checked only where the trial runs (the driver of a GPU sweep
        launched from a laptop has neither the GPU nor its packages)."""
        return None

    def prepare(self, model: PreparedModel, spec, workdir: Path) -> Engine: ...

    def profile(self, engine: Engine, spec, run: Callable[[], None], trace: Path) -> dict[str, tuple[float, int]]:
        """Call `run()` (a few warm batches through `engine`) under this runtime's own profiler,
        write its Chrome trace to `trace`, and return {operator: (self time in ms, calls)}.
        trials/profile.py holds the torch and ONNX Runtime profilers a runtime can name here."""
        raise ProfilingUnsupported(
            f"runtime {self.name!r} has no profiler hook yet: profile the same variant on runtime 'torch' or "
            f"'onnxruntime' (infersweep trial --runtime torch --profile ...), or add a profile() method to "
            f"{type(self).__name__}")


def _entry(runtime: Runtime, task: str, device: str, precision) -> Recipe | Unsupported | None:
    return runtime.support.get((task, device), {}).get(Precision(precision))


#: the precisions a quality bound (TrialSpec.quantization.max_rouge_drop_pct) applies to: those calibrated
BOUNDED_PRECISIONS = (Precision.INT8_STATIC,)


def accuracy_bound(spec) -> float | None:
    """The spec's bound on the quantization's ROUGE-Lsum drop (%), where its precision takes one."""
    bound = spec.quantization.max_rouge_drop_pct
    return bound if Precision(spec.precision) in BOUNDED_PRECISIONS else None


def recipe_for(runtime: Runtime, spec) -> Recipe:
    """The recipe the runtime uses for the spec's (task, device, precision); feasibility has passed.
    Under a quality bound, the recipe's accuracy-aware build, with the bound among its knobs."""
    entry = _entry(runtime, spec.task, spec.device, spec.precision)
    if not isinstance(entry, Recipe):
        raise ValueError(f"runtime {runtime.name!r} has no {spec.precision} recipe for {spec.task} on {spec.device}")
    bound = accuracy_bound(spec)
    if bound is None:
        return entry
    if entry.accuracy_aware is None:
        raise ValueError(accuracy_reason(runtime, spec))
    return replace(entry, build=functools.partial(entry.accuracy_aware, max_rouge_drop_pct=bound),
                   knobs={**entry.knobs, "accuracy_control": {"max_rouge_drop_pct": bound, "drop": "relative",
                                                              "metric": "rougeLsum on the calibration slice"}})


def accuracy_reason(runtime: Runtime, spec) -> str | None:
    """Why the runtime cannot bound the spec's quantization by quality (None: it can, or no bound is set)."""
    entry = _entry(runtime, spec.task, spec.device, spec.precision)
    if accuracy_bound(spec) is None or not isinstance(entry, Recipe) or entry.accuracy_aware is not None:
        return None
    able = [name for name in _runtime_names() if _can_bound(name, spec)]
    return (f"runtime {runtime.name!r} quantizes {spec.precision} for {spec.task} without a quality bound: "
            f"quantization.max_rouge_drop_pct needs accuracy-controlled quantization"
            + (f", which runtime(s) {', '.join(able)} run" if able else ", which no runtime runs here")
            + "; or leave the setting out for plain post-training quantization")


def _runtime_names() -> list[str]:
    from infersweep.trials.runtimes import RUNTIMES

    return list(RUNTIMES)


def _can_bound(name: str, spec) -> bool:
    from infersweep.trials.runtimes import get_runtime

    entry = _entry(get_runtime(name), spec.task, spec.device, spec.precision)
    return isinstance(entry, Recipe) and entry.accuracy_aware is not None


def precisions_for(runtime: Runtime, task: str, device: str) -> tuple[Precision, ...]:
    """The precisions the runtime runs for `task` on `device`, in catalog order."""
    table = runtime.support.get((task, device), {})
    return tuple(p for p in Precision if isinstance(table.get(p), Recipe))


def tasks_of(runtime: Runtime) -> tuple[str, ...]:
    """The tasks the runtime runs on some device."""
    return tuple(dict.fromkeys(task for (task, _), table in runtime.support.items()
                               if any(isinstance(e, Recipe) for e in table.values())))


def devices_of(runtime: Runtime, task: str) -> tuple[str, ...]:
    return tuple(device for (t, device) in runtime.support if t == task and precisions_for(runtime, t, device))


def min_cosine(runtime: Runtime, task: str, device: str, precision) -> float:
    """The cosine to torch fp32 a runtime's outputs must keep at `precision` (contract suite)."""
    entry = _entry(runtime, task, device, precision)
    given = entry.min_cosine if isinstance(entry, Recipe) else None
    return Precision(precision).min_cosine if given is None else given


def missing_requirement(runtime: Runtime, spec=None) -> str | None:
    """An install hint for the first package the runtime (or the spec's recipe) needs that is not installed."""
    for module_name, hint in runtime.requires:
        if importlib.util.find_spec(module_name) is None:
            return f"runtime {runtime.name!r} needs the Python package {module_name!r}: {hint}"
    entry = _entry(runtime, spec.task, spec.device, spec.precision) if spec is not None else None
    for module_name, hint in entry.requires if isinstance(entry, Recipe) else ():
        if importlib.util.find_spec(module_name) is None:
            return (f"runtime {runtime.name!r} runs {spec.precision} on {spec.device} with the Python package "
                    f"{module_name!r}, which is not installed: {hint}")
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
