"""The feasible space: what the sampler may propose, with every combination that cannot run on the
trials' device ruled out before the search starts.

A sweep file lists its axes independently (precision × runtime × pruning × batch size); many of
their combinations cannot run where the trials run (fp16 on a CPU, bf16 on onnxruntime). The
support tables say which, by `trials.feasibility.check`. The sampler then sees two parameters:

    variant     "runtime/precision/pruning" for each runnable combination (categorical)
    batch_size  the sweep's batch sizes

so every suggestion runs, every Optuna sampler (grid included) models the space as it is, and a
grid is exactly the runnable points. Where the runnable combinations are exactly the product of
each axis's runnable values (a rectangular space: nothing ruled out, or whole values such as fp16
on a CPU), the sampler sees the axes themselves instead (runtime, precision, pruning, batch_size),
which lets it learn what an axis's value does across the others. Why: docs/decisions.md, "The
feasible space".
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from infersweep.sweeps.spec import SweepSpec, SweepSpecError
from infersweep.sweeps.template import VARIANT, variant_name

__all__ = ["FeasibleSpace", "RuledOut", "feasible_space"]


@dataclass(frozen=True)
class RuledOut:
    """A combination of the sweep's axes that cannot run on the trials' device, and why."""

    runtime: str
    precision: str
    pruning: str
    reason: str


@dataclass(frozen=True)
class FeasibleSpace:
    device: str
    hardware: str
    variants: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    ruled_out: tuple[RuledOut, ...]
    #: how many pruning choices the sweep lists (a combination out for all of them is shown once)
    pruning_choices: int = 1

    def _factors(self) -> dict[str, list[str]] | None:
        """runtime/precision/pruning -> their runnable values, when the runnable variants are exactly
        their product; else None."""
        parts = [v.split("/") for v in self.variants]
        factors = {name: list(dict.fromkeys(p[i] for p in parts)) for i, name in enumerate(("runtime", "precision",
                                                                                             "pruning"))}
        product = {variant_name(*combo) for combo in itertools.product(*factors.values())}
        return factors if product == set(self.variants) else None

    @property
    def encoding(self) -> str:
        """'axes' (rectangular: each knob its own parameter) or 'variant' (one joint parameter)."""
        return "axes" if self._factors() else VARIANT

    def axes(self) -> dict[str, list]:
        """The sampler's parameters and their values."""
        factors = self._factors()
        if factors:
            return {**factors, "batch_size": list(self.batch_sizes)}
        return {VARIANT: list(self.variants), "batch_size": list(self.batch_sizes)}

    def grid(self) -> list[dict]:
        """Every runnable point, as the sampler's parameters (SweepSpec.trial_spec reads them)."""
        axes = self.axes()
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]

    def by_reason(self) -> dict[str, list[str]]:
        """reason -> the ruled-out combinations ('runtime/precision/pruning', 'runtime/precision/*'
        where every pruning choice is out for that reason), in the sweep's order."""
        grouped: dict[str, dict[tuple[str, str], list[str]]] = {}
        for item in self.ruled_out:
            grouped.setdefault(item.reason, {}).setdefault((item.runtime, item.precision), []).append(item.pruning)
        def names(runtime: str, precision: str, prunings: list[str]) -> list[str]:
            if len(prunings) == self.pruning_choices > 1:
                return [variant_name(runtime, precision, "*")]
            return [variant_name(runtime, precision, pruning) for pruning in prunings]

        return {reason: [name for (runtime, precision), prunings in pairs.items()
                         for name in names(runtime, precision, prunings)]
                for reason, pairs in grouped.items()}

    def table(self) -> list[dict]:
        """One row per ruled-out combination (the parent run's `ruled_out` table)."""
        return [{"runtime": r.runtime, "precision": r.precision, "pruning": r.pruning, "device": self.device,
                 "reason": r.reason} for r in self.ruled_out]

    def describe(self) -> list[str]:
        """What a launch prints once: how many combinations run, then each reason with its combinations."""
        total = len(self.variants) + len(self.ruled_out)
        lines = [f"space on {self.device} ({self.hardware}): {len(self.variants)} of {total} combinations of "
                 f"runtime × precision × pruning can run, × {len(self.batch_sizes)} batch size(s) = "
                 f"{len(self.grid())} points"]
        for reason, combos in self.by_reason().items():
            lines.append(f"  ruled out {', '.join(combos)}: {reason}")
        return lines


_computed: dict[tuple[str, str], FeasibleSpace] = {}


def feasible_space(sweep: SweepSpec, hardware=None) -> FeasibleSpace:
    """The sweep's runnable space on `hardware` (the hardware the sweep declares when None); a
    SweepSpecError naming every reason when nothing in it can run."""
    from infersweep.sweeps.checks import declared_hardware

    hardware = hardware or declared_hardware(sweep)
    key = (sweep.model_dump_json(), repr(hardware))
    if key not in _computed:
        _computed[key] = _feasible_space(sweep, hardware)
    return _computed[key]


def _feasible_space(sweep: SweepSpec, hardware) -> FeasibleSpace:
    from infersweep.trials.feasibility import check
    from infersweep.trials.hardware import detect

    # packages are checked where they are needed: a driver that launches onto GPU workers has
    # neither the GPU nor its packages, and the workers' own check records what they lack
    local = hardware == detect()
    space = sweep.space
    runnable, ruled_out = [], []
    for runtime, precision, pruning in itertools.product(space.runtime, space.precision, space.pruning_choices()):
        spec = sweep.trial_spec({"runtime": runtime, "precision": precision, "pruning": pruning})
        reason = check(spec, hardware, packages=local)
        if reason:
            ruled_out.append(RuledOut(runtime, precision, pruning, reason))
        else:
            runnable.append(variant_name(runtime, precision, pruning))
    found = FeasibleSpace(sweep.trial.device, _hardware_text(hardware, sweep.trial.device), tuple(runnable),
                          tuple(space.batch_size), tuple(ruled_out), len(space.pruning_choices()))
    if not runnable:
        reasons = "; ".join(f"{', '.join(c)}: {r}" for r, c in found.by_reason().items())
        raise SweepSpecError(f"space: no combination of runtime × precision × pruning can run on "
                             f"{sweep.trial.device} ({found.hardware}): {reasons}. Add a runtime and precision "
                             f"that run there (fp32 on torch runs everywhere)")
    return found


def _hardware_text(hardware, device: str) -> str:
    if device == "cuda":
        return hardware.gpu_name or "GPU"
    return hardware.cpu_model or "CPU"
