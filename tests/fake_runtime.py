"""A runtime that exists only in tests: torch eager running fp16 on CPU, which no real runtime
declares there. Registered by monkeypatching trials.runtimes.RUNTIMES (tests/test_extending.py)."""
from __future__ import annotations

from infersweep.trials.precision import Precision
from infersweep.trials.runtimes.base import Recipe
from infersweep.trials.runtimes.torch_eager import TorchEagerRuntime
from infersweep.trials.runtimes.torch_precision import TORCH_CPU, to_fp16

FP16_ON_CPU = Recipe(to_fp16, {"kernel": "torch cpu half"}, min_cosine=0.98)


class FakeFp16CpuRuntime(TorchEagerRuntime):
    name = "fake_fp16_cpu"
    support = {("extractive", "cpu"): {Precision.FP32: TORCH_CPU[Precision.FP32], Precision.FP16: FP16_ON_CPU}}
