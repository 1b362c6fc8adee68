"""The sweep spec: YAML validated by pydantic. Unknown keys and wrong types name their path."""
from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trials.errors import InfersweepError
from trials.measure import METRICS
from trials.precision import PRECISIONS
from trials.pruning import MAX_PRUNE_RATIO, PRUNING_METHODS
from trials.runtimes import RUNTIMES
from trials.spec import (ExtractiveSettings, GenerationSettings, StructuredPruningSettings, SummaryLength,
                         TimingSettings, TrialSpec)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONSTRAINT = re.compile(r"^\s*([A-Za-z_0-9]+)\s*(<=|>=|<|>)\s*(-?[0-9.]+)\s*$")


def _all_known(values, valid, what: str):
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(map(str, valid))}")
    return values


class SweepSpecError(InfersweepError, ValueError):
    """A sweep file that cannot be used; the message names the key path and the fix."""


def _no_duplicates(values: list, what: str) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice; list each value once")
        seen.add(value)
    return values


class Strict(BaseModel):
    # strict: `batch_size: [true]` or `n: "12"` is an error, not a silent 1 or 12
    model_config = ConfigDict(extra="forbid", strict=True)


class DatasetSpec(Strict):
    path: str = "sample"
    n: int = Field(30, ge=1)
    seed: int = 0
    document_field: str = "document"
    summary_field: str = "summary"

    @field_validator("path")
    @classmethod
    def _local(cls, v):
        return v if v == "sample" or v.startswith("hf:") else _absolute_if_local(v)


class Knobs(Strict):
    """One point of the space (also the baseline)."""

    precision: str = "fp32"
    runtime: str = "torch"
    pruning: str = "none"
    prune_ratio: float = 0.0
    batch_size: int = 1


class PruningSpace(Strict):
    methods: list[str] = ["none"]
    ratios: list[float] = [0.0]

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        return _no_duplicates(_all_known(v, PRUNING_METHODS, "pruning method"), "pruning method")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v):
        bad = [r for r in v if not 0 <= r <= MAX_PRUNE_RATIO]
        if bad:
            raise ValueError(f"ratios {bad} outside [0, {MAX_PRUNE_RATIO}]")
        return _no_duplicates(v, "ratio")


class Space(Strict):
    precision: list[str] = ["fp32"]
    runtime: list[str] = ["torch"]
    pruning: PruningSpace = PruningSpace()
    batch_size: list[int] = [1]

    @field_validator("precision")
    @classmethod
    def _precision(cls, v):
        return _no_duplicates(_all_known(v, PRECISIONS, "precision"), "precision")

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v):
        return _no_duplicates(_all_known(v, RUNTIMES, "runtime"), "runtime")

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, v):
        if not v or any(b < 1 for b in v):
            raise ValueError("batch sizes must be a non-empty list of integers >= 1")
        return _no_duplicates(v, "batch size")

    def pruning_choices(self) -> list[str]:
        """'none' or 'method:ratio' (categorical, so the sampler treats them as distinct)."""
        choices = []
        for method in self.pruning.methods:
            if method == "none":
                choices.append("none")
            else:
                choices.extend(f"{method}:{r:g}" for r in self.pruning.ratios if r > 0)
        return list(dict.fromkeys(choices))

    def axes(self) -> dict[str, list]:
        axes = {"precision": self.precision, "runtime": self.runtime,
                "pruning": self.pruning_choices(), "batch_size": self.batch_size}
        empty = [name for name, values in axes.items() if not values]
        if empty:
            raise ValueError(f"space.{empty[0]} is empty: list at least one value")
        return axes

    def grid(self) -> list[dict]:
        axes = self.axes()
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


class SearchSpec(Strict):
    algorithm: Literal["tpe", "nsga2", "grid", "random"] = "tpe"
    num_trials: int = Field(12, ge=1)
    max_concurrent: int = Field(1, ge=1)
    seed: int = 0
    max_failures: int = Field(1, ge=0, description="retries of a trial whose worker died")


class Objective(Strict):
    metric: str
    mode: Literal["min", "max"]

    @field_validator("metric")
    @classmethod
    def _metric(cls, v):
        return _all_known([v], METRICS, "metric")[0]


class Resources(Strict):
    cpu: float = Field(2, gt=0)
    gpu: float = Field(0, ge=0)
    accelerator_type: Optional[str] = None


class TrialSettings(Strict):
    device: Literal["cpu", "cuda"] = "cpu"
    warmup: int = Field(1, ge=0)
    repeats: int = Field(2, ge=1)
    trust_remote_code: bool = False
    generation: GenerationSettings = GenerationSettings()
    extractive: ExtractiveSettings = ExtractiveSettings()
    structured: StructuredPruningSettings = StructuredPruningSettings()
    timing: TimingSettings = TimingSettings()
    summary_length: SummaryLength = Field("auto", description="as TrialSpec.summary_length")


class TrackingSpec(Strict):
    uri: Optional[str] = None
    experiment: Optional[str] = None


class StorageSpec(Strict):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    path: str = ".infersweep/sweeps"

    @field_validator("path")
    @classmethod
    def _absolute(cls, v):
        # workers run in their own folders: relative paths are resolved here, on the driver
        return str(Path(v).expanduser().resolve())


def _absolute_if_local(value: str) -> str:
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


DEFAULT_OBJECTIVES = [Objective(metric="latency_ms_per_sample", mode="min"),
                      Objective(metric="peak_memory_mb", mode="min"),
                      Objective(metric="rougeLsum", mode="max")]


class SweepSpec(Strict):
    name: str
    model: str = "all-MiniLM-L6-v2"
    task: Literal["extractive", "seq2seq"] = "extractive"
    dataset: DatasetSpec = DatasetSpec()
    baseline: Knobs = Knobs()
    space: Space = Space()
    search: SearchSpec = SearchSpec()
    objectives: list[Objective] = DEFAULT_OBJECTIVES
    constraints: list[str] = ["rouge_drop_pct <= 1.0"]
    #: a quality constraint holds when its interval's worst end meets it (0.5: the point estimate)
    confidence: float = Field(0.95, ge=0.5, lt=1.0)
    resources: Resources = Resources()
    trial: TrialSettings = TrialSettings()
    tracking: TrackingSpec = TrackingSpec()
    storage: StorageSpec = Field(default_factory=StorageSpec)

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        return _absolute_if_local(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not NAME.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64), e.g. 'minilm-cpu'")
        return v

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, v):
        for text in v:
            parse_constraint(text)
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v):
        if not v:
            raise ValueError("list at least one objective, e.g. {metric: latency_ms_per_sample, mode: min}")
        return v

    @model_validator(mode="after")
    def _space_not_empty(self):
        self.space.axes()
        self.trial_spec(self.baseline.model_dump())  # the baseline itself must be a valid trial
        return self

    def trial_spec(self, knobs: dict) -> TrialSpec:
        """The TrialSpec of one point of the space."""
        knobs = dict(knobs)
        pruning = knobs.pop("pruning", "none")
        if ":" in str(pruning):
            method, ratio = pruning.split(":")
            knobs.update(pruning=method, prune_ratio=float(ratio))
        else:
            knobs.setdefault("prune_ratio", 0.0)
            knobs["pruning"] = pruning
        return TrialSpec(
            model=self.model, task=self.task, dataset=self.dataset.path, n=self.dataset.n,
            seed=self.dataset.seed, document_field=self.dataset.document_field,
            summary_field=self.dataset.summary_field, device=self.trial.device,
            cpus=max(int(self.resources.cpu), 1), warmup=self.trial.warmup, repeats=self.trial.repeats,
            trust_remote_code=self.trial.trust_remote_code, generation=self.trial.generation,
            extractive=self.trial.extractive, structured=self.trial.structured,
            summary_length=self.trial.summary_length, timing=self.trial.timing, **knobs)

    def spec_hash(self) -> str:
        return hashlib.sha1(self.model_dump_json().encode()).hexdigest()[:12]

    def sweep_dir(self) -> Path:
        return Path(self.storage.path).expanduser().resolve() / self.name


def parse_constraint(text: str) -> tuple[str, str, float]:
    match = CONSTRAINT.match(text)
    if not match:
        raise ValueError(f"constraint {text!r} must look like 'METRIC <= NUMBER' (operators <=, >=, <, >)")
    metric, op, value = match.group(1), match.group(2), float(match.group(3))
    _all_known([metric], METRICS, "metric")
    return metric, op, value


def constraint_violation(text: str, metrics: dict[str, float]) -> float:
    """How far `metrics` violate a constraint: <= 0 satisfied, > 0 violated (Optuna's sign)."""
    metric, op, bound = parse_constraint(text)
    # with an interval, its worst end must meet the bound: undecided counts as not met
    worst = f"{metric}_ci_high" if op in ("<=", "<") else f"{metric}_ci_low"
    value = metrics.get(worst, metrics.get(metric))
    if value is None:
        return 1.0
    return value - bound if op in ("<=", "<") else bound - value


def load_sweep_spec(path: str | Path, **overrides) -> SweepSpec:
    """Read and validate a sweep YAML; errors name the key path and the fix."""
    path = Path(path)
    if not path.exists():
        raise SweepSpecError(f"sweep file {path} not found; try sweeps/specs/quickstart.yaml")
    if not path.is_file():
        raise SweepSpecError(f"{path} is not a file; give the sweep's YAML file, e.g. sweeps/specs/quickstart.yaml")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SweepSpecError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                             f"save the sweep file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise SweepSpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SweepSpecError(f"{path}: expected a mapping of keys (name, model, space, ...) at the top")
    for dotted, value in overrides.items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepSpecError(f"{path}: " + format_validation(exc)) from None


def _set_dotted(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def format_validation(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (remove it or check its spelling)"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
