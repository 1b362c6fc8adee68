"""What the report shows, as plain data: points, frontier table, constraint bands, status counts.

Pure functions of the sweep's rows (no plotting, no MLflow): the tests check these numbers and
the HTML and PNG are drawn from them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from infersweep.sweeps.pareto import TrialRow, fastest_first, satisfies
from infersweep.sweeps.spec import parse_constraint
from infersweep.trials import measure
from infersweep.trials.measure import (LATENCY_P95, LATENCY_PER_SAMPLE, MEMORY_REDUCTION, MODEL_SIZE, PEAK_MEMORY, ROUGE1,
                            ROUGE2, ROUGE_DROP, ROUGE_LSUM, SPEEDUP, THROUGHPUT, metric_text)
from infersweep.trials.precision import Precision
from infersweep.trials.spec import STATUSES

__all__ = ["LATENCY", "ROUGE", "MEMORY", "AXIS_TITLES", "RUNTIME_ORDER", "PRECISION_ORDER", "Point", "Band",
           "ReportData", "ordered", "colour_of", "symbol_of", "knob_text", "relative_text", "plottable", "marker_size",
           "hover_text", "constraint_band", "axis_range", "frontier_rows", "problem_rows", "report_data", "headline",
           "staircase", "step_line"]

# the three metrics the charts have an axis for
LATENCY = LATENCY_PER_SAMPLE
ROUGE = ROUGE_LSUM
MEMORY = PEAK_MEMORY

# Okabe-Ito: tells colours apart for colour-blind readers too; runtimes keep their colour across sweeps
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
RUNTIME_ORDER = ["torch", "torch_compile", "torchscript", "onnxruntime", "tensorrt"]
PRECISION_ORDER = [p.value for p in Precision]
# precision -> (plotly symbol, matplotlib marker)
SYMBOLS = [("circle", "o"), ("square", "s"), ("diamond", "D"), ("triangle-up", "^"),
           ("triangle-down", "v"), ("star", "*"), ("pentagon", "p"), ("hexagon", "h"), ("cross", "P")]
AXIS_TITLES = {LATENCY: "latency per sample (ms)", ROUGE: "ROUGE-Lsum (F1 × 100)", MEMORY: "peak memory (MiB)"}
MIN_SIZE, MAX_SIZE = 9.0, 38.0  # marker diameters in px (plotly) / points (matplotlib)


@dataclass
class Point:
    """One trial that ran: where it sits and how it is drawn."""

    trial_id: str
    knobs: dict
    metrics: dict
    runtime: str
    precision: str
    size: float
    on_frontier: bool
    meets_constraints: bool
    baseline: bool
    link: str = ""
    hover: str = ""


@dataclass
class Band:
    """A constraint drawn on one axis: values between lo and hi meet it."""

    constraint: str
    axis: str  # the metric on that axis
    lo: float  # -inf or the bound
    hi: float  # the bound or +inf
    bound: float  # the edge, in the axis' units


@dataclass
class ReportData:
    title: str
    points: list[Point]
    frontier: list[dict]  # table rows, best speedup first
    frontier_metrics: list[str]  # the table's metric columns, in order
    counts: dict[str, int]
    meets_constraints: int
    problems: list[dict]  # non-ok trials grouped by (status, reason)
    bands: list[Band]
    unplotted_constraints: list[str]
    objectives: list[tuple[str, str]]
    constraints: list[str]
    runtimes: list[str]
    precisions: list[str]
    headline: str
    baseline: dict = field(default_factory=dict)


def ordered(values, order: list[str]) -> list[str]:
    present = set(values)
    return [v for v in order if v in present] + sorted(present - set(order))


def _index(value: str, values: list[str], order: list[str]) -> int:
    """Known values keep a fixed slot (same colour / symbol in every sweep); others follow."""
    return (order + sorted(set(values) - set(order))).index(value)


def colour_of(runtime: str, runtimes: list[str]) -> str:
    return PALETTE[_index(runtime, runtimes, RUNTIME_ORDER) % len(PALETTE)]


def symbol_of(precision: str, precisions: list[str]) -> tuple[str, str]:
    """(plotly symbol, matplotlib marker)."""
    return SYMBOLS[_index(precision, precisions, PRECISION_ORDER) % len(SYMBOLS)]


def knob_text(knobs: dict) -> str:
    """'torch int8_dynamic unstructured 0.3 b8' (dense when not pruned)."""
    pruning = knobs.get("pruning", "none")
    prune = f"{pruning} {float(knobs.get('prune_ratio', 0)):g}" if pruning not in ("none", None) else "dense"
    device = f" {knobs['device']}" if knobs.get("device") not in (None, "cpu") else ""
    return f"{knobs.get('runtime', '?')} {knobs.get('precision', '?')} {prune} b{knobs.get('batch_size', '?')}{device}"


def relative_text(m: dict, sep: str = " · ") -> str:
    """'memory −48.0 % · ROUGE drop 0.58 %', worded by sign: 'memory +12.0 %', 'ROUGE +0.15 %'."""
    memory, drop = m.get(MEMORY_REDUCTION), m.get(ROUGE_DROP)
    parts = []
    if memory is not None:
        parts.append(f"memory −{memory:.1f} %" if memory >= 0 else f"memory +{-memory:.1f} %")
    if drop is not None:
        parts.append(f"ROUGE drop {drop:.2f} %" if drop >= 0 else f"ROUGE +{-drop:.2f} %")
    return sep.join(parts)


def plottable(row: TrialRow) -> bool:
    return row.status == "ok" and all(isinstance(row.metrics.get(m), (int, float)) for m in (LATENCY, ROUGE, MEMORY))


def marker_size(memory: float, largest: float) -> float:
    """Marker area proportional to peak memory (a floor keeps tiny ones visible)."""
    if largest <= 0:
        return MIN_SIZE
    return MIN_SIZE + (MAX_SIZE - MIN_SIZE) * math.sqrt(max(memory, 0.0) / largest)


def hover_text(row: TrialRow, on_frontier: bool, meets: bool) -> str:
    m, k = row.metrics, row.knobs

    def text(name: str) -> str:
        return metric_text(name, m)

    lines = [f"<b>{row.trial_id}</b>{' (baseline)' if row.baseline else ''}"
             f"{' · Pareto frontier' if on_frontier else ''}",
             f"runtime {k.get('runtime')} · precision {k.get('precision')}",
             f"pruning {k.get('pruning')} {float(k.get('prune_ratio', 0)):g} · batch {k.get('batch_size')}"
             f" · {k.get('device', 'cpu')}",
             f"latency {text(LATENCY)} ms/sample (p95 batch {text(LATENCY_P95)} ms)",
             f"throughput {text(THROUGHPUT)} samples/s",
             f"ROUGE-Lsum {text(ROUGE)} (R1 {text(ROUGE1)}, R2 {text(ROUGE2)})",
             f"peak memory {text(MEMORY)} MiB · model {text(MODEL_SIZE)} MiB",
             f"speedup {text(SPEEDUP)} · {relative_text(m)}"]
    if not meets:
        lines.append("<i>misses a constraint</i>")
    return "<br>".join(lines)


def constraint_band(text: str, baseline: dict) -> Band | None:
    """Where a constraint lies on the latency, ROUGE or memory axis; None if it has no axis.

    Relative constraints are turned into absolute values through the baseline:
    rouge_drop_pct <= d  ->  rougeLsum >= base * (1 - d/100);  speedup >= s  ->  latency <= base / s;
    memory_reduction_pct >= r  ->  peak memory <= base * (1 - r/100).  The band is the side that
    meets the constraint; the open end is infinite and the charts clip it to their axis range.
    """
    metric, op, value = parse_constraint(text)
    upper = op in ("<=", "<")  # the metric must stay below `value`
    if metric in (LATENCY, ROUGE, MEMORY):
        axis, bound, below = metric, value, upper
    elif metric == ROUGE_DROP and baseline.get(ROUGE):
        axis, bound, below = ROUGE, baseline[ROUGE] * (1 - value / 100), not upper
    elif metric == SPEEDUP and baseline.get(LATENCY) and value > 0:
        axis, bound, below = LATENCY, baseline[LATENCY] / value, not upper
    elif metric == MEMORY_REDUCTION and baseline.get(MEMORY):
        axis, bound, below = MEMORY, baseline[MEMORY] * (1 - value / 100), not upper
    else:
        return None
    return Band(text, axis, -math.inf if below else bound, bound if below else math.inf, bound)


def axis_range(points: list[Point], axis: str, bands: list[Band], pad: float = 0.08) -> tuple[float, float]:
    """The data range of `axis` (and any constraint edge on it), padded; never empty."""
    values = [p.metrics[axis] for p in points] + [b.bound for b in bands if b.axis == axis]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    span = hi - lo or max(abs(hi) * 0.1, 1.0)
    return lo - pad * span, hi + pad * span


def frontier_rows(rows: list[TrialRow], frontier_ids: set[str], run_links: dict[str, str],
                  metrics: tuple[str, ...]) -> list[dict]:
    """The frontier table: fastest first, each of `metrics` formatted as the page shows it."""
    table = []
    for r in fastest_first([r for r in rows if r.trial_id in frontier_ids]):
        pruning = r.knobs.get("pruning", "none")
        table.append({
            "trial_id": r.trial_id, "baseline": r.baseline, "link": run_links.get(r.trial_id, ""),
            "knobs": knob_text(r.knobs), "runtime": r.knobs.get("runtime", ""),
            "precision": r.knobs.get("precision", ""),
            "pruning": f"{pruning} {float(r.knobs.get('prune_ratio', 0)):g}" if pruning != "none" else "none",
            "batch_size": r.knobs.get("batch_size"),
            "cells": {name: metric_text(name, r.metrics) for name in metrics},
        })
    return table


def problem_rows(rows: list[TrialRow]) -> list[dict]:
    """Trials that did not run, grouped by status and reason (most frequent first)."""
    groups: dict[tuple[str, str], list[TrialRow]] = {}
    for r in rows:
        if r.status != "ok":
            groups.setdefault((r.status, r.reason.strip() or "(no reason recorded)"), []).append(r)
    order = {s: i for i, s in enumerate(STATUSES)}
    out = [{"status": status, "reason": reason, "count": len(group),
            "trials": [f"{g.trial_id} ({knob_text(g.knobs)})" for g in group]}
           for (status, reason), group in groups.items()]
    out.sort(key=lambda p: (order.get(p["status"], 9), -p["count"], p["reason"]))
    return out


def report_data(rows: list[TrialRow], frontier_ids, objectives: list[tuple[str, str]],
                constraints: list[str], run_links: dict[str, str] | None = None,
                title: str = "Sweep report") -> ReportData:
    run_links = run_links or {}
    frontier_ids = set(frontier_ids)
    baseline_row = next((r for r in rows if r.baseline and r.status == "ok"), None)
    baseline = dict(baseline_row.metrics) if baseline_row else {}
    drawn = [r for r in rows if plottable(r)]
    largest = max((r.metrics[MEMORY] for r in drawn), default=0.0)
    points = []
    for r in drawn:
        meets = satisfies(r, constraints)
        on = r.trial_id in frontier_ids
        points.append(Point(r.trial_id, dict(r.knobs), dict(r.metrics), str(r.knobs.get("runtime", "?")),
                            str(r.knobs.get("precision", "?")), marker_size(r.metrics[MEMORY], largest),
                            on, meets, r.baseline, run_links.get(r.trial_id, ""), hover_text(r, on, meets)))
    bands, unplotted = [], []
    for text in constraints:
        band = constraint_band(text, baseline)
        (bands.append(band) if band else unplotted.append(text))
    counts = {s: 0 for s in STATUSES}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    columns = measure.frontier_metrics(r.metrics for r in rows)
    table = frontier_rows(rows, frontier_ids, run_links, columns)
    return ReportData(
        title=title, points=points, frontier=table, frontier_metrics=list(columns), counts=counts,
        meets_constraints=sum(1 for r in rows if satisfies(r, constraints)),
        problems=problem_rows(rows), bands=bands, unplotted_constraints=unplotted,
        objectives=list(objectives), constraints=list(constraints),
        runtimes=ordered((p.runtime for p in points), RUNTIME_ORDER),
        precisions=ordered((p.precision for p in points), PRECISION_ORDER),
        headline=headline(rows, frontier_ids, constraints), baseline=baseline)


def headline(rows: list[TrialRow], frontier_ids: set[str], constraints: list[str]) -> str:
    """One sentence: the fastest frontier trial, against the baseline."""
    front = [r for r in rows if r.trial_id in frontier_ids and r.status == "ok" and not r.baseline]
    within = " within " + " and ".join(constraints) if constraints else ""
    if not front:
        return f"No trial besides the baseline is on the Pareto frontier{within} yet."
    best = max(front, key=lambda r: r.metrics.get(SPEEDUP, 0.0))
    m = best.metrics
    return (f"Fastest on the frontier{within}: {metric_text(SPEEDUP, m)} the baseline's speed, "
            f"{relative_text(m, ', ')} "
            f"({knob_text(best.knobs)}, trial {best.trial_id}).")


def staircase(points: list[Point], x: str, y: str, y_mode: str) -> list[Point]:
    """The frontier trials that are best in this 2-D view (x minimized), sorted by x.

    The sweep's frontier may span more objectives than the two axes; the step line shows the
    trade-off on these two and the other frontier trials keep their ring.
    """
    front = sorted((p for p in points if p.on_frontier), key=lambda p: (p.metrics[x], -p.metrics[y] if y_mode == "max" else p.metrics[y]))
    best, out = None, []
    for p in front:
        value = p.metrics[y]
        if best is None or (value > best if y_mode == "max" else value < best):
            out.append(p)
            best = value
    return out


def step_line(steps: list[Point], x: str, y: str, y_mode: str, x_range: tuple[float, float],
              y_range: tuple[float, float], bands: list[Band] = ()) -> tuple[list[float], list[float]]:
    """The frontier's boundary for a step plot (horizontal, then vertical), x minimized: from the
    worst y the frontier allows (a constraint's edge on y, else the axis edge) up to the fastest
    trial, through each staircase trial, out to the right edge."""
    if not steps:
        return [], []
    worst = y_range[0] if y_mode == "max" else y_range[1]
    for band in bands:
        if band.axis == y:
            worst = max(worst, band.lo) if y_mode == "max" else min(worst, band.hi)
    xs = [steps[0].metrics[x]] + [p.metrics[x] for p in steps] + [x_range[1]]
    ys = [worst] + [p.metrics[y] for p in steps] + [steps[-1].metrics[y]]
    return xs, ys
