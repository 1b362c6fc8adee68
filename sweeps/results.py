"""A sweep's results: its trial reports on disk, relative to its baseline, and their frontier.

The one reader of "baseline -> rows -> frontier" for the end of a sweep and for `status`,
`report` and `promote`.
"""
from __future__ import annotations

from dataclasses import dataclass

from infersweep.sweeps import pareto
from infersweep.sweeps.errors import SweepError
from infersweep.sweeps.finalists import finalist_metrics
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import trials_dir
from infersweep.trials.measure import relative_to
from infersweep.trials.spec import TrialReport

__all__ = ["NoBaselineYet", "SweepResults", "collect_rows", "load_results", "read_report"]


class NoBaselineYet(SweepError):
    """The sweep's baseline has no report: nothing can be compared against it yet."""


@dataclass(frozen=True)
class SweepResults:
    baseline: TrialReport
    rows: list[pareto.TrialRow]
    frontier: list[pareto.TrialRow]


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
