"""Warm start: a new sweep reuses what earlier sweeps measured on the same weights and hardware.

A result is reusable when its trial id matches a point of this sweep's runnable space (the id
hashes the whole trial spec: model path, task, dataset slice, knobs, trial settings, CPUs), it
ran `ok`, and it was measured where this launch's baseline was: the same hardware fingerprint
(CPU model and flags, GPU, driver) and the same provenance (library versions and the model's
weights fingerprint). Anything else never reuses. A reused trial's folder is linked into this
sweep (its model files too, so it can be promoted), its report says where it came from, and the
search study gets it as a completed trial, so the sampler starts from it instead of re-running it.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import TrialPlan, trials_dir, tune_result
from infersweep.trials.spec import TrialReport

__all__ = ["REUSED_NOTE", "Reused", "find_reusable", "reuse", "same_conditions"]

REUSED_NOTE = "reused from sweep"
#: hardware fields that change a measurement (`extras` are descriptive)
_HARDWARE_KEYS = ("cpu_model", "cpu_count", "cpu_flags", "cuda_available", "gpu_name", "gpu_count",
                  "gpu_compute_capability", "gpu_driver")


@dataclass(frozen=True)
class Reused:
    point: dict  # the sampler's parameters (sweeps.space)
    report: TrialReport
    source: Path  # the earlier trial's folder


def same_conditions(report: TrialReport, baseline: TrialReport) -> bool:
    """Was `report` measured on the hardware, libraries and weights `baseline` was just measured on?"""
    hardware = all(report.hardware.get(k) == baseline.hardware.get(k) for k in _HARDWARE_KEYS)
    return hardware and bool(report.versions.get("model_weights")) and report.versions == baseline.versions


def find_reusable(sweep: SweepSpec, baseline: TrialReport) -> list[Reused]:
    """Earlier sweeps' results (same storage folder) for points of this sweep's runnable space
    that it has not run itself, measured under the same conditions as `baseline`."""
    from infersweep.sweeps.space import feasible_space

    storage, own = sweep.sweep_dir().parent, trials_dir(sweep)
    found = []
    for point in feasible_space(sweep).grid():
        trial_id = sweep.trial_spec(point).trial_id()
        if trial_id == baseline.trial_id or (own / trial_id / "report.json").exists():
            continue
        for path in sorted(storage.glob(f"*/trials/{trial_id}/report.json")):
            report = _readable(path)
            if report and report.ok and same_conditions(report, baseline):
                found.append(Reused(point, report, path.parent))
                break
    return found


def _readable(path: Path) -> TrialReport | None:
    try:
        return TrialReport.from_json(path.read_text())
    except (OSError, ValueError):
        return None


def reuse(sweep: SweepSpec, plan: TrialPlan, baseline: TrialReport, found: list[Reused]) -> None:
    """Link each reused trial's folder into this sweep (report noted) and add it to the sweep's
    study as a completed trial with its objectives and constraint values."""
    for item in found:
        target = trials_dir(sweep) / item.report.trial_id
        _link_tree(item.source, target)
        origin = item.source.parent.parent.name
        report = item.report.model_copy(update={"notes": [*item.report.notes, f"{REUSED_NOTE} {origin!r} "
                                                         f"({item.source})"]})
        (target / "report.json").unlink()  # a link to the earlier sweep's file: never edit that one
        (target / "report.json").write_text(report.to_json())
    _tell_study(sweep, plan, baseline, found)


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows (no copy of model weights), else copies."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, copy_function=link, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".running"))


def _tell_study(sweep: SweepSpec, plan: TrialPlan, baseline: TrialReport, found: list[Reused]) -> None:
    import warnings

    import optuna

    from infersweep.sweeps.search import optuna_space, study_name, study_storage
    from infersweep.sweeps.trainable import constraint_keys

    if not found:
        return
    directions = ["minimize" if o.mode == "min" else "maximize" for o in sweep.objectives]
    study = optuna.create_study(study_name=study_name(sweep), storage=study_storage(sweep), directions=directions,
                                load_if_exists=True)
    distributions = optuna_space(sweep)
    for item in found:
        result = tune_result(plan, item.report, baseline)
        trial = optuna.trial.create_trial(
            params=item.point, distributions={k: distributions[k] for k in item.point},
            values=[result[o.metric] for o in sweep.objectives],
            constraints={key: result[key] for key in constraint_keys(plan)},
            user_attrs={"reused": True, "reused_from": str(item.source)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.add_trial(trial)
