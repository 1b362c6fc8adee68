"""A sweep's folder: the spec it holds, and whether a changed spec may continue its results."""
from __future__ import annotations

import time
from pathlib import Path

from infersweep.sweeps.errors import SweepError, SweepNotFound
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.spec import TrialReport

__all__ = ["RESULT_FIELDS", "SPEC_FILE", "changed_fields", "load_saved", "prepare_dir", "reported_ids"]

SPEC_FILE = "sweep.json"

#: what a trial's result depends on: a change here makes earlier results a different sweep
RESULT_FIELDS = ("model", "task", "dataset", "baseline", "trial", "resources", "objectives", "constraints",
                 "confidence", "sequential")


def prepare_dir(sweep: SweepSpec, resume: bool = False, restart: bool = False, say=print,
                on_archive=lambda archived_name: None) -> Path:
    """The sweep's folder, holding `sweep`. A changed spec continues the sweep when earlier
    results stay valid (more trials, values added to the space, search or tracking settings);
    otherwise it needs a new name or `restart`, which archives the old folder first (and calls
    `on_archive` with the archived folder's name, e.g. to move the MLflow runs along)."""
    directory = sweep.sweep_dir()
    saved = directory / SPEC_FILE
    if saved.exists() and not restart and not resume:
        old = SweepSpec.model_validate_json(saved.read_text())
        changed = changed_fields(old, sweep)
        if changed and _has_results(old):
            raise SweepError(
                f"sweep {sweep.name!r} in {directory} has results for a different {', '.join(changed)}; "
                f"give this sweep another name, or relaunch with --restart to archive those results "
                f"and start over")
        restart = bool(changed)  # nothing worth keeping (e.g. a failed baseline): start clean
        if old.spec_hash() != sweep.spec_hash() and not changed:
            say(f"continuing sweep {sweep.name!r} with the changed settings: finished trials are reused")
    if saved.exists() and restart:
        archived = directory.with_name(f"{sweep.name}.archived-{time.strftime('%Y%m%d-%H%M%S')}")
        directory.rename(archived)
        on_archive(archived.name)
        say(f"archived the earlier results of {sweep.name!r} to {archived}")
    directory.mkdir(parents=True, exist_ok=True)
    saved.write_text(sweep.model_dump_json(indent=2))
    return directory


def changed_fields(old: SweepSpec, new: SweepSpec) -> list[str]:
    """The keys whose change makes earlier results invalid (see RESULT_FIELDS); a space that
    loses values counts too (the search's history would hold values it no longer knows)."""
    changed = [f for f in RESULT_FIELDS if getattr(old, f) != getattr(new, f)]
    old_axes, new_axes = old.space.axes(), new.space.axes()
    changed += [f"space.{axis} (values removed)" for axis, values in old_axes.items()
                if not set(values) <= set(new_axes[axis])]
    return changed


def _has_results(sweep: SweepSpec) -> bool:
    """Any finished trial besides a failed baseline (a failed baseline is fixed by relaunching)."""
    for path in trials_dir(sweep).glob("*/report.json"):
        if TrialReport.from_json(path.read_text()).status == "ok":
            return True
    return False


def load_saved(name: str, storage: str = ".infersweep/sweeps") -> SweepSpec:
    path = Path(storage).expanduser().resolve() / name / SPEC_FILE
    if not path.exists():
        raise SweepNotFound(f"no sweep named {name!r} under {Path(storage).resolve()}; "
                            f"launch it first (infersweep launch SPEC) or pass --storage")
    return SweepSpec.model_validate_json(path.read_text())


def reported_ids(sweep: SweepSpec) -> set[str]:
    """The trial ids with a report on disk (the baseline's among them, once it ran)."""
    return {p.parent.name for p in trials_dir(sweep).glob("*/report.json")}
