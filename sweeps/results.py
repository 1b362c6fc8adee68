"""A sweep's results: its trial reports on disk, relative to its baseline, and their frontier.

The one reader of "baseline -> rows -> frontier" for the end of a sweep and for `status`,
`report` and `promote`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from infersweep.sweeps import pareto
from infersweep.sweeps.errors import SweepError
from infersweep.sweeps.finalists import finalist_metrics
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.measure import relative_to
from infersweep.trials.spec import TrialReport

__all__ = ["FoundTrial", "NoBaselineYet", "SweepResults", "TrialNotFound", "collect_rows", "find_trial",
           "load_results", "read_report"]


class NoBaselineYet(SweepError):
    """The sweep's baseline has no report: nothing can be compared against it yet."""


@dataclass(frozen=True)
class SweepResults:
    baseline: TrialReport
    rows: list[pareto.TrialRow]
    frontier: list[pareto.TrialRow]


class TrialNotFound(SweepError):
    """No trial by that id in the sweeps on disk (or in several: a sweep name to give)."""

    exit_code = 2


@dataclass(frozen=True)
class FoundTrial:
    report: TrialReport
    folder: Path  # the trial's folder (its report.json is here)
    sweep: SweepSpec | None  # None: a single trial (`infersweep trial`), which has no MLflow run


def find_trial(trial_id: str, storage: str | Path, sweep_name: str | None = None,
               single_trials: str | Path | None = None) -> FoundTrial:
    """The trial whose id is (or starts with: `status` shows 8 characters) `trial_id`, in the sweeps
    under `storage` (in `sweep_name` only, when given; archived sweeps are not searched), else in
    the single trials under `single_trials`."""
    from infersweep.sweeps.state import SPEC_FILE, load_saved

    if not re.fullmatch(r"[0-9A-Za-z_-]+", trial_id):
        raise TrialNotFound(f"{trial_id!r} is not a trial id (letters and digits, as `infersweep status SWEEP` "
                            f"shows them)")
    if sweep_name:
        sweeps = [load_saved(sweep_name, str(storage))]
    else:
        root = Path(storage).expanduser().resolve()
        sweeps = [SweepSpec.model_validate_json(path.read_text()) for path in sorted(root.glob(f"*/{SPEC_FILE}"))
                  if ".archived-" not in path.parent.name]
    found = [(sweep, folder) for sweep in sweeps for folder in _matching(trials_dir(sweep), trial_id)]
    if not found and single_trials and not sweep_name:
        found = [(None, folder) for folder in _matching(Path(single_trials), trial_id)]
    ids = sorted({folder.name for _, folder in found})
    if len(ids) > 1:
        raise TrialNotFound(f"{trial_id!r} starts several trial ids ({', '.join(ids[:6])}): give more of the id")
    if len(found) > 1:
        raise TrialNotFound(f"trial {ids[0]} is in sweeps {', '.join(s.name for s, _ in found)}: "
                            f"pass --sweep NAME to say which")
    if found:
        sweep, folder = found[0]
        return FoundTrial(TrialReport.from_json((folder / "report.json").read_text()), folder, sweep)
    where = f"sweep {sweep_name!r}" if sweep_name else f"the sweeps under {Path(storage).resolve()}"
    single = f" or in {single_trials}" if single_trials and not sweep_name else ""
    raise TrialNotFound(f"no trial {trial_id!r} in {where}{single}; `infersweep status SWEEP` shows a sweep's "
                        f"frontier with its trial ids (pass --storage if the sweeps live elsewhere)")


def _matching(folder: Path, trial_id: str) -> list[Path]:
    """The trial folders under `folder` with a report whose name is `trial_id`, or starts with it."""
    exact = folder / trial_id
    if (exact / "report.json").exists():
        return [exact]
    return sorted(path.parent for path in folder.glob(f"{trial_id}*/report.json"))


def read_report(sweep: SweepSpec, trial_id: str) -> TrialReport:
    return TrialReport.from_json((trials_dir(sweep) / trial_id / "report.json").read_text())


def load_results(sweep: SweepSpec, baseline: TrialReport | None = None) -> SweepResults:
    """Every trial report on disk (the source of truth; MLflow is reconciled from it), relative
    to `baseline` (default: the baseline's report on disk), and their Pareto frontier."""
    if baseline is None:
        baseline_id = sweep.baseline_spec().trial_id()
        path = trials_dir(sweep) / baseline_id / "report.json"
        if not path.exists():
            raise NoBaselineYet(f"sweep {sweep.name} has no finished baseline yet ({path}); "
                                f"run or resume it first (infersweep resume {sweep.name})")
        baseline = read_report(sweep, baseline_id)
    rows = collect_rows(sweep, baseline)
    objectives = [(o.metric, o.mode) for o in sweep.objectives]
    frontier = pareto.frontier(rows, objectives, sweep.constraints)  # by the trials' own figures
    overrides = finalist_metrics(sweep, baseline.trial_id, {r.trial_id: r.metrics for r in frontier})
    for row in frontier:
        row.metrics.update(overrides.get(row.trial_id, {}))
    return SweepResults(baseline, rows, frontier)


def collect_rows(sweep: SweepSpec, baseline: TrialReport) -> list[pareto.TrialRow]:
    """One row per trial report on disk, with its metrics relative to `baseline`."""
    rows = []
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        metrics = dict(report.metrics)
        if report.ok:
            metrics.update(relative_to(report, baseline, sweep.confidence))
        rows.append(pareto.TrialRow(report.trial_id, report.status, report.spec.knobs(), metrics,
                                    report.reason, baseline=report.trial_id == baseline.trial_id))
    return rows
