"""The sweep spec: YAML validated by pydantic. Unknown keys and wrong types name their path.

`model`, `task`, `dataset`, `baseline`, `resources.cpu` and `trial` are the sweep's trial
template (sweeps/template.py): `trial_spec(point)` is that template with the point's knobs.
"""
from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from infersweep.sweeps.constraints import constraint_violation, parse_constraint
from infersweep.sweeps.template import DatasetSection, Knobs, Strict, TrialSection, absolute_if_local, point_spec, template_spec
from infersweep.trials.errors import InfersweepError
from infersweep.trials.measure import LATENCY_PER_SAMPLE, METRICS, PEAK_MEMORY, ROUGE_LSUM
from infersweep.trials.precision import PRECISIONS
from infersweep.trials.pruning import MAX_PRUNE_RATIO, PRUNING_METHODS
from infersweep.trials.runtimes import RUNTIMES
from infersweep.trials.spec import DEFAULT_MODEL, TrialSpec

# constraint_violation and parse_constraint live in sweeps.constraints; importers of them from
# here (dashboards, tests) keep working
__all__ = ["DEFAULT_OBJECTIVES", "Objective", "Resources", "SearchSpec", "Space", "SweepSpec", "SweepSpecError",
           "constraint_violation", "format_validation", "load_sweep_spec", "parse_constraint"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: TrialSpec's type for `task` (the top-level key of a sweep file)
Task = TrialSpec.model_fields["task"].annotation


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
    #: gp won bench/search.py at small budgets (docs/benchmarks.md, "search"); tpe, nsga2, random, grid remain
    algorithm: Literal["gp", "tpe", "nsga2", "grid", "random"] = "gp"
    num_trials: int = Field(12, ge=1)
    max_concurrent: int = Field(1, ge=1)
    seed: int = 0
    max_failures: int = Field(1, ge=0, description="retries of a trial whose worker died")


class FinalistsSpec(Strict):
    """The finalists head to head: at the end of a sweep the frontier's members and the baseline
    are timed again, interleaved, in fresh processes; their speedups come from that run."""

    rounds: int = Field(3, ge=0, le=20, description="round-robin rounds (0: keep the trials' own speedups)")
    max_seconds: float = Field(4.0, gt=0, description="timing cap of each variant in each round")


class SequentialSpec(Strict):
    """Sequential evaluation: a trial whose quality verdict is undecided (its interval straddles a
    `rouge_drop_pct` bound) is evaluated on the next documents of the dataset's fixed order, the
    baseline extended to match, until the interval decides or `max_docs` documents are used."""

    max_docs: int = Field(200, ge=0, description="the most documents a trial is evaluated on (0: off)")
    chunk: Optional[int] = Field(None, ge=1, description="documents added per round (default: dataset.n)")


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


DEFAULT_OBJECTIVES = [Objective(metric=LATENCY_PER_SAMPLE, mode="min"),
                      Objective(metric=PEAK_MEMORY, mode="min"),
                      Objective(metric=ROUGE_LSUM, mode="max")]


class SweepSpec(Strict):
    name: str
    model: str = DEFAULT_MODEL
    task: Task = "extractive"
    dataset: DatasetSection = DatasetSection()
    baseline: Knobs = Knobs()
    space: Space = Space()
    search: SearchSpec = SearchSpec()
    finalists: FinalistsSpec = FinalistsSpec()
    sequential: SequentialSpec = SequentialSpec()
    objectives: list[Objective] = DEFAULT_OBJECTIVES
    constraints: list[str] = ["rouge_drop_pct <= 1.0"]
    #: a quality constraint holds when its interval's worst end meets it (0.5: the point estimate)
    confidence: float = Field(0.95, ge=0.5, lt=1.0)
    resources: Resources = Resources()
    trial: TrialSection = TrialSection()
    tracking: TrackingSpec = TrackingSpec()
    storage: StorageSpec = Field(default_factory=StorageSpec)

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        return absolute_if_local(v)

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
    def _runnable(self):
        self.space.axes()
        self.baseline_spec()  # the template, then the baseline itself, must be valid trials
        return self

    def template(self) -> TrialSpec:
        """Every trial's spec but for its knobs (which are at TrialSpec's defaults here)."""
        return template_spec(self.model, self.task, self.dataset, self.trial, cpus=max(int(self.resources.cpu), 1))

    def trial_spec(self, knobs: dict) -> TrialSpec:
        """The TrialSpec of one point of the space: the template with the point's knobs."""
        return point_spec(self.template(), knobs)

    def baseline_spec(self) -> TrialSpec:
        return point_spec(self.template(), self.baseline.model_dump(), knobs_in="baseline")

    def spec_hash(self) -> str:
        return hashlib.sha1(self.model_dump_json().encode()).hexdigest()[:12]

    def sweep_dir(self) -> Path:
        return Path(self.storage.path).expanduser().resolve() / self.name


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
