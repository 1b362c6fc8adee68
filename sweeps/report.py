"""Console tables for a sweep: the frontier with speedup, memory and ROUGE drop vs the baseline."""
from __future__ import annotations

import textwrap

from rich import box
from rich.table import Table

from infersweep.sweeps.pareto import TrialRow, fastest_first
from infersweep.trials import measure
from infersweep.trials.measure import METRICS, metric_text

__all__ = ["frontier_table", "constraint_rule", "status_counts", "reasons_table"]

#: header lines no wider than a number, so headers do not widen the metric columns
HEADER_WIDTH = 6


def _knob_text(knobs: dict) -> str:
    prune = f"{knobs['pruning']} {knobs['prune_ratio']:g}" if knobs.get("pruning", "none") != "none" else "dense"
    return f"{knobs['runtime']} {knobs['precision']} {prune} b{knobs['batch_size']}"


def _header(name: str) -> str:
    """A metric's label, wrapped narrow: 'ROUGE drop %' on two lines, 'ROUGE' over 'drop %'."""
    return textwrap.fill(METRICS[name].label, HEADER_WIDTH, break_long_words=False)


def frontier_table(rows: list[TrialRow], title: str = "Pareto frontier") -> Table:
    """The frontier, fastest first: trial, knobs, then each of trials.measure.frontier_metrics."""
    names = measure.frontier_metrics(r.metrics for r in rows)
    # numbers never wrap; the knobs wrap first, so an 80-column terminal still shows every metric
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    table.add_column("trial", no_wrap=True, overflow="fold")
    table.add_column("knobs", overflow="fold")
    for name in names:
        table.add_column(_header(name), justify="right", no_wrap=True, overflow="fold")
    for r in fastest_first(rows):
        # an interval goes under its value: the column stays as narrow as its numbers
        cells = [metric_text(name, r.metrics, interval_sep="\n") for name in names]
        table.add_row(r.trial_id[:8] + (" base" if r.baseline else ""), _knob_text(r.knobs), *cells)
    return table


def constraint_rule(constraints: list[str], confidence: float) -> str:
    """How the constraints were judged, for table titles and reports."""
    if not constraints:
        return "no constraints"
    how = (f"upper end of the {confidence:.0%} paired-bootstrap interval" if confidence > 0.5
           else "point estimate")
    return f"{', '.join(constraints)} on the {how}"


def status_counts(rows: list[TrialRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def reasons_table(rows: list[TrialRow]) -> Table | None:
    bad = [r for r in rows if r.status != "ok"]
    if not bad:
        return None
    table = Table(title="Trials that did not run")
    for col in ("trial", "knobs", "status", "reason"):
        table.add_column(col)
    for r in bad:
        table.add_row(r.trial_id, _knob_text(r.knobs), r.status, r.reason)
    return table
