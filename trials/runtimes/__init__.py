"""Runtimes by name, and the one door into them. Adding a runtime is one module plus one line here.

Modules are imported only when their runtime is used, and each imports its heavy package
(onnxruntime, tensorrt, ...) only inside its methods. A runtime that lives outside this package
registers the same line as an entry point (group `infersweep.runtimes`, `name = "module:Class"`)
or in $INFERSWEEP_RUNTIMES (`name=module:Class,...`); either reaches every process a sweep starts
(Ray workers, the serving-memory process), which a change to RUNTIMES made at run time does not.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from infersweep.trials.errors import InfersweepError

__all__ = ["RUNTIMES", "PLUGIN_ENV", "PLUGIN_GROUP", "Infeasible", "get_runtime", "prepare",
           "registered_elsewhere"]

RUNTIMES: dict[str, str] = {
    "torch": "infersweep.trials.runtimes.torch_eager:TorchEagerRuntime",
    "onnxruntime": "infersweep.trials.runtimes.onnxruntime:OnnxRuntimeRuntime",
    "torchscript": "infersweep.trials.runtimes.torchscript:TorchScriptRuntime",
    "torch_compile": "infersweep.trials.runtimes.torch_compile:TorchCompileRuntime",
    "tensorrt": "infersweep.trials.runtimes.tensorrt:TensorRTRuntime",
    "onnxruntime_trt": "infersweep.trials.runtimes.ort_tensorrt:OrtTensorRTRuntime",
    "openvino": "infersweep.trials.runtimes.openvino:OpenVinoRuntime",
}
PLUGIN_GROUP = "infersweep.runtimes"
PLUGIN_ENV = "INFERSWEEP_RUNTIMES"


def registered_elsewhere() -> dict[str, str]:
    """Runtimes registered by entry point or $INFERSWEEP_RUNTIMES: name -> "module:Class"."""
    from importlib.metadata import entry_points

    found = {entry.name: entry.value for entry in entry_points(group=PLUGIN_GROUP)}
    for item in filter(None, (part.strip() for part in os.environ.get(PLUGIN_ENV, "").split(","))):
        name, _, target = item.partition("=")
        if ":" not in target:
            raise ValueError(f"{PLUGIN_ENV}: {item!r} is not name=module:Class")
        found[name.strip()] = target.strip()
    return found


RUNTIMES.update(registered_elsewhere())


class Infeasible(InfersweepError, ValueError):
    """The spec cannot run on this hardware; str() is the reason a trial reports."""


def get_runtime(name: str):
    """The runtime instance registered under `name`."""
    if name not in RUNTIMES:
        raise KeyError(f"unknown runtime {name!r}; valid: {', '.join(RUNTIMES)}")
    module_name, cls_name = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)()


def prepare(model, spec, workdir: Path, hardware=None):
    """The one door into a runtime: check the spec is feasible on `hardware` (detected when None),
    then let the spec's runtime prepare `model` (a PreparedModel) into an engine."""
    from infersweep.trials import feasibility
    from infersweep.trials.hardware import detect

    reason = feasibility.check(spec, hardware or detect())
    if reason:
        raise Infeasible(reason)
    return get_runtime(spec.runtime).prepare(model, spec, Path(workdir))
