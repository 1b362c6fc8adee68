"""Choose the trial to promote: among the frontier, those meeting --where, best on one metric."""
from __future__ import annotations

from infersweep.sweeps.constraints import constraint_violation, parse_constraint
from infersweep.sweeps.pareto import TrialRow
from infersweep.trials.errors import InfersweepError
from infersweep.trials.measure import METRICS

__all__ = ["NothingToPromote", "choose"]


class NothingToPromote(InfersweepError, ValueError):
    """No frontier trial meets the conditions: the sweep ran, the command could not finish."""

    exit_code = 1


def choose(frontier: list[TrialRow], where: list[str], metric: str, mode: str) -> TrialRow:
    for text in where:
        parse_constraint(text)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    meeting = [r for r in frontier if all(constraint_violation(w, r.metrics) <= 0 for w in where)]
    if not meeting:
        raise NothingToPromote(
            f"no Pareto trial meets {' and '.join(where) or 'the conditions'} "
            f"({len(frontier)} on the frontier); loosen --where or run more trials. Nothing was registered")
    key = (lambda r: r.metrics.get(metric, float("inf"))) if mode == "min" else \
          (lambda r: -r.metrics.get(metric, float("-inf")))
    return min(meeting, key=key)
