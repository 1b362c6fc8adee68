"""Constraints like 'rouge_drop_pct <= 1': parsed once here, judged the way Optuna reads them."""
from __future__ import annotations

import re

from infersweep.trials.measure import METRICS

__all__ = ["constraint_violation", "parse_constraint"]

CONSTRAINT = re.compile(r"^\s*([A-Za-z_0-9]+)\s*(<=|>=|<|>)\s*(-?[0-9.]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """(metric, operator, bound); ValueError naming the expected form or the valid metrics."""
    match = CONSTRAINT.match(text)
    if not match:
        raise ValueError(f"constraint {text!r} must look like 'METRIC <= NUMBER' (operators <=, >=, <, >)")
    metric, op, value = match.group(1), match.group(2), float(match.group(3))
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    return metric, op, value


def constraint_violation(text: str, metrics: dict[str, float]) -> float:
    """How far `metrics` violate a constraint: <= 0 satisfied, > 0 violated (Optuna's sign)."""
    metric, op, bound = parse_constraint(text)
    # with an interval, its worst end must meet the bound: undecided counts as not met
    worst = f"{metric}_ci_high" if op in ("<=", "<") else f"{metric}_ci_low"
    value = metrics.get(worst, metrics.get(metric))
    if value is None:
        return 1.0
    return value - bound if op in ("<=", "<") else bound - value
