"""Console tables for a sweep: the frontier with speedup, memory and ROUGE drop vs the baseline."""
from __future__ import annotations

from rich import box
from rich.table import Table

from sweeps.pareto import TrialRow


def _knob_text(knobs: dict) -> str:
    prune = f"{knobs['pruning']} {knobs['prune_ratio']:g}" if knobs.get("pruning", "none") != "none" else "dense"
    return f"{knobs['runtime']} {knobs['precision']} {prune} b{knobs['batch_size']}"


FRONTIER_COLUMNS = ("trial", "knobs", "speedup", "mem\n−%", "ROUGE\ndrop %", "ms/doc", "peak\nMiB", "size\nMiB",
                    "ROUGE\nLsum")


def frontier_table(rows: list[TrialRow], title: str = "Pareto frontier") -> Table:
    # numbers never wrap; the knobs wrap first, so an 80-column terminal still shows every metric
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in FRONTIER_COLUMNS:
        table.add_column(col, justify="left" if col in ("trial", "knobs") else "right", no_wrap=col != "knobs",
                         overflow="fold")
    for r in sorted(rows, key=lambda r: -r.metrics.get("speedup", 0)):
        m = r.metrics
        table.add_row(r.trial_id[:8] + (" base" if r.baseline else ""), _knob_text(r.knobs),
                      f"{m.get('speedup', 0):.2f}x", f"{m.get('memory_reduction_pct', 0):.1f}",
                      drop_text(m), f"{m['latency_ms_per_sample']:.1f}",
                      f"{m['peak_memory_mb']:.0f}", f"{m['model_size_mb']:.1f}", f"{m['rougeLsum']:.2f}")
    return table


def drop_text(metrics: dict) -> str:
    """The ROUGE drop with its interval below it: `0.12` over `[-0.3,0.6]`."""
    text = f"{metrics.get('rouge_drop_pct', 0):.2f}"
    if "rouge_drop_pct_ci_low" in metrics:
        text += f"\n[{metrics['rouge_drop_pct_ci_low']:.1f},{metrics['rouge_drop_pct_ci_high']:.1f}]"
    return text


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
