"""A sweep's trial template: the sweep-file sections that set TrialSpec fields, and the one
mapping from a sweep to the TrialSpec of each point of its space.

Every TrialSpec field is set in one place of a sweep file (`sweep_key` says where). The sections
holding them are generated from TrialSpec: each key has its field's type, bounds and default
(SWEEP_DEFAULTS aside), so a field added to TrialSpec is a `trial:` key at once and nothing here
mirrors TrialSpec by hand.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from infersweep.trials.spec import TrialSpec

__all__ = ["DATASET_KEYS", "KNOBS", "SWEEP_DEFAULTS", "VARIANT", "DatasetSection", "Knobs", "Strict", "TrialSection",
           "absolute_if_local", "point_spec", "sweep_key", "template_spec", "variant_name"]


class Strict(BaseModel):
    # strict: `batch_size: [true]` or `n: "12"` is an error, not a silent 1 or 12
    model_config = ConfigDict(extra="forbid", strict=True)


#: what sweep files have always meant where they say nothing; every other default is TrialSpec's
SWEEP_DEFAULTS = {"n": 30, "warmup": 1}
#: the swept knobs, in sweep-file order: `baseline:` sets them, `space:` lists their values
KNOBS = ("precision", "runtime", "pruning", "prune_ratio", "batch_size")
#: the sampler's parameter naming one runnable (runtime, precision, pruning): "runtime/precision/pruning"
VARIANT = "variant"
#: `dataset:` key -> TrialSpec field
DATASET_KEYS = {"path": "dataset", "n": "n", "seed": "seed", "document_field": "document_field",
                "summary_field": "summary_field"}
#: TrialSpec field -> its key path, for the fields a sweep file sets outside `trial:` and `baseline:`
#: (a trial's threads are the CPUs Ray reserves for it: resources.cpu)
_ELSEWHERE = {"model": "model", "task": "task", "cpus": "resources.cpu",
              **{field: f"dataset.{key}" for key, field in DATASET_KEYS.items()}}


def sweep_key(field: str, knobs_in: str = "baseline") -> str:
    """Where a sweep file sets a TrialSpec field: n -> dataset.n, warmup -> trial.warmup, ..."""
    if field in KNOBS:
        return f"{knobs_in}.{field}"
    return _ELSEWHERE.get(field, f"trial.{field}")


def absolute_if_local(value: str) -> str:
    # workers run in their own folders: an existing relative path is resolved here, on the driver
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def _fields(keys: dict[str, str]) -> dict[str, Any]:
    """create_model definitions: each sweep-file key typed, bounded and defaulted as its TrialSpec field."""
    definitions = {}
    for key, field in keys.items():
        info = TrialSpec.model_fields[field]
        if field in SWEEP_DEFAULTS:
            info = FieldInfo.merge_field_infos(info, default=SWEEP_DEFAULTS[field])
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            # a YAML file spells an enum member as its value; TrialSpec checks it (and says what is valid)
            annotation = str
            info = FieldInfo.merge_field_infos(info, annotation=str, default=str(info.default.value))
        definitions[key] = (annotation, info)
    return definitions


class _Dataset(Strict):
    @field_validator("path", check_fields=False)
    @classmethod
    def _local(cls, v):
        return v if v == "sample" or v.startswith("hf:") else absolute_if_local(v)


class _Trial(Strict):
    @model_validator(mode="before")
    @classmethod
    def _set_elsewhere(cls, data):
        misplaced = [key for key in data if key in _ELSEWHERE or key in KNOBS] if isinstance(data, dict) else []
        if misplaced:
            key = misplaced[0]
            raise ValueError(f"{key} is set by `{sweep_key(key)}` in a sweep file; move it there")
        return data


DatasetSection = create_model("DatasetSection", __base__=_Dataset, __doc__="`dataset:` (TrialSpec's data fields)",
                              **_fields(DATASET_KEYS))
Knobs = create_model("Knobs", __base__=Strict, __doc__="One point of the space (`baseline:`)",
                     **_fields({knob: knob for knob in KNOBS}))
TrialSection = create_model(
    "TrialSection", __base__=_Trial, __doc__="`trial:`: every TrialSpec field not set elsewhere",
    **_fields({field: field for field in TrialSpec.model_fields if field not in _ELSEWHERE and field not in KNOBS}))


def template_spec(model: str, task: str, dataset: BaseModel, trial: BaseModel, cpus: int) -> TrialSpec:
    """The sweep's trial template: every TrialSpec field as the sweep file sets it, the knobs at
    TrialSpec's defaults (each point of the space sets its own)."""
    fields = {"model": model, "task": task, "cpus": cpus, **dict(trial),
              **{DATASET_KEYS[key]: value for key, value in dataset}}
    return _validated(fields, "trial")


def variant_name(runtime: str, precision: str, pruning: str) -> str:
    """The `variant` parameter's value for one (runtime, precision, pruning choice)."""
    return f"{runtime}/{precision}/{pruning}"


def point_spec(template: TrialSpec, knobs: dict, knobs_in: str = "space") -> TrialSpec:
    """The TrialSpec of one point of the space: `template` with `knobs` (a pruning choice may be
    'method:ratio'; a `variant` stands for runtime, precision and pruning). Validated; errors
    name the sweep-file key (`knobs_in`: baseline or space)."""
    knobs = dict(knobs)
    if VARIANT in knobs:
        knobs["runtime"], knobs["precision"], knobs["pruning"] = knobs.pop(VARIANT).split("/")
    pruning = knobs.pop("pruning", "none")
    if ":" in str(pruning):
        method, ratio = pruning.split(":")
        knobs.update(pruning=method, prune_ratio=float(ratio))
    else:
        knobs.setdefault("prune_ratio", 0.0)
        knobs["pruning"] = pruning
    return _validated({**dict(template), **knobs}, knobs_in)


def _validated(fields: dict, section: str) -> TrialSpec:
    """TrialSpec(**fields), each error located where a sweep file sets its field (`section` for
    the spec as a whole), so it reads like the sweep-file errors around it."""
    try:
        return TrialSpec.model_validate(fields)
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            "SweepSpec", [_relocated(error, section) for error in exc.errors()]) from None


def _relocated(error: dict, section: str) -> InitErrorDetails:
    loc = error["loc"]
    where = (*sweep_key(str(loc[0]), section).split("."), *loc[1:]) if loc else (section,)
    reason = error["msg"].removeprefix("Value error, ")
    return InitErrorDetails(type=PydanticCustomError("trial_spec", "{reason}", {"reason": reason}),
                            loc=where, input=error.get("input"))
