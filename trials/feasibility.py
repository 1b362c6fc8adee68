"""Is a spec runnable on this hardware? A pure function: (spec, hardware) -> None | reason.

What runs where is read from the runtimes' support tables (trials.runtimes.base.SupportTable) and
the pruning catalog; nothing here knows a precision or a runtime by name. Reasons say what to do
instead, because a person reads them in the MLflow UI.
"""
from __future__ import annotations

from infersweep.trials.hardware import Hardware
from infersweep.trials.precision import Precision
from infersweep.trials.pruning import pruning_infeasible_reason
from infersweep.trials.runtimes import RUNTIMES, get_runtime
from infersweep.trials.runtimes.base import (Unsupported, accuracy_reason, devices_of, missing_requirement,
                                             precisions_for, tasks_of)

__all__ = ["check", "precision_reason"]


def check(spec, hardware: Hardware, packages: bool = True) -> str | None:
    """None if `spec` can run on `hardware`, else a reason a person can act on. `packages`: also
    whether this process has the packages the runtime needs (False where the trials run elsewhere)."""
    runtime = get_runtime(spec.runtime)
    if spec.device == "cuda" and not hardware.cuda_available:
        return "device 'cuda' requested but no CUDA GPU is visible; use device 'cpu' or run on a GPU node"
    if spec.task not in tasks_of(runtime):
        return (f"runtime {spec.runtime!r} does not run the {spec.task} task; "
                f"use one of: {', '.join(_runtimes_for_task(spec.task))}")
    reason = precision_reason(runtime, spec, hardware) or accuracy_reason(runtime, spec)
    if reason:
        return reason
    pruning = pruning_infeasible_reason(spec.pruning, spec.device, hardware, precision=spec.precision,
                                        ratio=spec.prune_ratio, runtime=spec.runtime, task=spec.task)
    hardware_says = pruning or runtime.hardware_reason(spec, hardware)
    if hardware_says or not packages:
        return hardware_says
    return missing_requirement(runtime, spec) or runtime.unavailable_reason(spec, hardware)


def precision_reason(runtime, spec, hardware: Hardware) -> str | None:
    """Why the runtime's table has no recipe for the spec's (task, device, precision), or None."""
    supported = precisions_for(runtime, spec.task, spec.device)
    if spec.precision in supported:
        return None
    entry = runtime.support.get((spec.task, spec.device), {}).get(spec.precision)
    if isinstance(entry, Unsupported):
        return f"runtime {spec.runtime!r} does not run {spec.precision} for {spec.task} on {spec.device}: {entry.reason}"
    if not supported:
        devices = devices_of(runtime, spec.task)
        return (f"runtime {spec.runtime!r} does not run on {spec.device} (it runs on {', '.join(devices)}); "
                f"{_alternatives(spec, hardware)}")
    return (f"runtime {spec.runtime!r} has no {spec.precision} kernel on {spec.device} "
            f"(it runs {', '.join(supported)}); {_alternatives(spec, hardware)}")


def _alternatives(spec, hardware: Hardware) -> str:
    """Where the spec's precision does run: other runtimes on this device, else other devices."""
    here = _runtimes_supporting(spec, hardware)
    if here:
        return f"runtimes that do: {', '.join(here)}"
    elsewhere = sorted({device for name in RUNTIMES for device in devices_of(get_runtime(name), spec.task)
                        if device != spec.device
                        and spec.precision in precisions_for(get_runtime(name), spec.task, device)})
    if elsewhere:
        instead = ", ".join(_precisions_on(spec.task, spec.device))
        return (f"no installed runtime does: {spec.precision} runs on {', '.join(elsewhere)}; "
                f"on {spec.device} use {instead}")
    return "no installed runtime does"


def _runtimes_supporting(spec, hardware: Hardware) -> list[str]:
    """Runtimes that run the spec's precision for its task and device (by their own reasons too)."""
    names = []
    for name in RUNTIMES:
        runtime = get_runtime(name)
        there = spec.model_copy(update={"runtime": name})
        if (spec.precision in precisions_for(runtime, spec.task, spec.device)
                and missing_requirement(runtime, there) is None
                and runtime.hardware_reason(there, hardware) is None
                and runtime.unavailable_reason(there, hardware) is None):
            names.append(name)
    return names


def _precisions_on(task: str, device: str) -> list[str]:
    found = {p for name in RUNTIMES for p in precisions_for(get_runtime(name), task, device)}
    return [str(p) for p in Precision if p in found]


def _runtimes_for_task(task: str) -> list[str]:
    return [name for name in RUNTIMES if task in tasks_of(get_runtime(name))]
