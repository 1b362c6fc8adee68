"""Is a spec runnable on this hardware? A pure function: (spec, hardware) -> None | reason.

Reasons say what to do instead, because a person reads them in the MLflow UI.
"""
from __future__ import annotations

from trials.hardware import Hardware
from trials.pruning import pruning_infeasible_reason
from trials.runtimes import get_runtime
from trials.runtimes.base import missing_requirement


def _runtimes_supporting(spec, hardware: Hardware) -> list[str]:
    """Runtimes that run the spec's precision for its task and device (by their own reasons too)."""
    from trials.runtimes import RUNTIMES

    names = []
    for name in RUNTIMES:
        rt = get_runtime(name)
        there = spec.model_copy(update={"runtime": name})
        if (spec.precision in rt.precisions.get(spec.device, ()) and spec.task in rt.tasks
                and _runtime_reason(rt, there, hardware) is None):
            names.append(name)
    return names


def check(spec, hardware: Hardware) -> str | None:
    """None if `spec` can run on `hardware`, else a reason a person can act on."""
    runtime = get_runtime(spec.runtime)
    if spec.device == "cuda" and not hardware.cuda_available:
        return "device 'cuda' requested but no CUDA GPU is visible; use device 'cpu' or run on a GPU node"
    if spec.precision == "fp16" and spec.device == "cpu":
        return "fp16 needs a CUDA device; on CPU use int8_dynamic or fp32"
    if spec.task not in runtime.tasks:
        return (f"runtime {spec.runtime!r} does not run the {spec.task} task; "
                f"use one of: {', '.join(_runtimes_for_task(spec.task))}")
    supported = runtime.precisions.get(spec.device, ())
    if spec.precision not in supported:
        others = _runtimes_supporting(spec, hardware)
        where = f"runtimes that do: {', '.join(others)}" if others else "no installed runtime does"
        return (f"runtime {spec.runtime!r} has no {spec.precision} kernel on {spec.device} "
                f"(it runs {', '.join(supported) or 'nothing there'}); {where}")
    pruning = pruning_infeasible_reason(spec.pruning, spec.device, hardware, precision=spec.precision,
                                        ratio=spec.prune_ratio, runtime=spec.runtime, task=spec.task)
    return pruning or missing_requirement(runtime) or _runtime_reason(runtime, spec, hardware)


def _runtime_reason(runtime, spec, hardware: Hardware) -> str | None:
    """A runtime's own reason (a package build, a GPU generation), when it declares one."""
    unavailable = getattr(runtime, "unavailable_reason", None)
    return unavailable(spec, hardware) if unavailable else None


def _runtimes_for_task(task: str) -> list[str]:
    from trials.runtimes import RUNTIMES

    return [name for name in RUNTIMES if task in get_runtime(name).tasks]
