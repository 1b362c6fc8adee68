"""Runtimes by name. Adding a runtime is one module plus one line here.

Modules are imported only when their runtime is used, and each imports its heavy package
(onnxruntime, tensorrt, ...) only inside its methods.
"""
from __future__ import annotations

import importlib

RUNTIMES: dict[str, str] = {
    "torch": "trials.runtimes.torch_eager:TorchEagerRuntime",
    "onnxruntime": "trials.runtimes.onnxruntime:OnnxRuntimeRuntime",
    "torchscript": "trials.runtimes.torchscript:TorchScriptRuntime",
    "torch_compile": "trials.runtimes.torch_compile:TorchCompileRuntime",
    "tensorrt": "trials.runtimes.tensorrt:TensorRTRuntime",
    "onnxruntime_trt": "trials.runtimes.ort_tensorrt:OrtTensorRTRuntime",
}


def get_runtime(name: str):
    """The runtime instance registered under `name`."""
    if name not in RUNTIMES:
        raise KeyError(f"unknown runtime {name!r}; valid: {', '.join(RUNTIMES)}")
    module_name, cls_name = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)()
