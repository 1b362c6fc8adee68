"""The Pareto frontier among feasible, constraint-satisfying trials (pure functions)."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infersweep.trials import measure
from infersweep.trials.measure import LATENCY_PER_SAMPLE, SPEEDUP, interval_of

__all__ = ["TrialRow", "KNOB_COLUMNS", "satisfies", "dominates", "frontier", "fastest_first", "hypervolume_2d",
           "csv_columns", "write_frontier"]


@dataclass
class TrialRow:
    trial_id: str
    status: str
    knobs: dict
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    baseline: bool = False


def satisfies(row: TrialRow, constraints: list[str]) -> bool:
    from infersweep.sweeps.spec import constraint_violation

    return row.status == "ok" and all(constraint_violation(c, row.metrics) <= 0 for c in constraints)


def dominates(a: dict, b: dict, objectives: list[tuple[str, str]]) -> bool:
    """a is no worse than b on every objective and better on one."""
    better = False
    for metric, mode in objectives:
        x, y = a[metric], b[metric]
        if (x > y) if mode == "min" else (x < y):
            return False
        if x != y:
            better = True
    return better


def frontier(rows: list[TrialRow], objectives: list[tuple[str, str]], constraints: list[str]) -> list[TrialRow]:
    """Non-dominated rows among those that ran and meet every constraint."""
    candidates = [r for r in rows if satisfies(r, constraints)
                  and all(m in r.metrics for m, _ in objectives)]
    return [r for r in candidates
            if not any(dominates(o.metrics, r.metrics, objectives) for o in candidates if o is not r)]


def hypervolume_2d(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both objectives minimized) up to `reference`."""
    inside = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, best_y = 0.0, reference[1]
    for x, y in inside:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


#: the knobs pareto.csv has a column for, before the metrics
KNOB_COLUMNS = ("runtime", "precision", "pruning", "prune_ratio", "batch_size")


def fastest_first(rows: list[TrialRow]) -> list[TrialRow]:
    """The order frontier tables list trials in: best speedup first, then lowest latency."""
    return sorted(rows, key=lambda r: (-r.metrics.get(SPEEDUP, 0.0),
                                       r.metrics.get(LATENCY_PER_SAMPLE, float("inf"))))


def csv_columns(rows: list[TrialRow] = ()) -> list[str]:
    """pareto.csv's header: the trial, its knobs, each frontier metric of `rows` (with its interval's bounds)."""
    names = measure.frontier_metrics(r.metrics for r in rows)
    metrics = [column for name in names for column in (name, *interval_of(name))]
    return ["trial_id", *KNOB_COLUMNS, *metrics]


def write_frontier(rows: list[TrialRow], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = directory / "pareto.json", directory / "pareto.csv"
    json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(rows), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({"trial_id": r.trial_id, **r.knobs, **r.metrics})
    return [json_path, csv_path]
