"""Runtimes by name, and the one door into them. Adding a runtime is one module plus one line here.

Modules are imported only when their runtime is used, and each imports its heavy package
(onnxruntime, tensorrt, ...) only inside its methods.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from trials.errors import InfersweepError

__all__ = ["RUNTIMES", "Infeasible", "get_runtime", "prepare"]

RUNTIMES: dict[str, str] = {
    "torch": "trials.runtimes.torch_eager:TorchEagerRuntime",
    "onnxruntime": "trials.runtimes.onnxruntime:OnnxRuntimeRuntime",
    "torchscript": "trials.runtimes.torchscript:TorchScriptRuntime",
    "torch_compile": "trials.runtimes.torch_compile:TorchCompileRuntime",
    "tensorrt": "trials.runtimes.tensorrt:TensorRTRuntime",
    "onnxruntime_trt": "trials.runtimes.ort_tensorrt:OrtTensorRTRuntime",
}


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
    from trials import feasibility
    from trials.hardware import detect

    reason = feasibility.check(spec, hardware or detect())
    if reason:
        raise Infeasible(reason)
    return get_runtime(spec.runtime).prepare(model, spec, Path(workdir))
