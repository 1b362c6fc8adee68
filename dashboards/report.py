"""The Pareto report: one self-contained HTML page (plotly.js embedded) and a PNG preview.

    build_report(rows, frontier_ids, objectives, constraints, run_links, out_dir) -> [html, png]

No MLflow or Ray here: MLflow run links come in as a dict trial_id -> URL (dashboards.links
builds it from tracking.sweep_runs.SweepRuns).
"""
from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path

from infersweep.dashboards.data import LATENCY, MEMORY, ROUGE, ReportData, report_data
from infersweep.dashboards.figures import CLICK_SCRIPT, scatter
from infersweep.dashboards.preview import write_png
from infersweep.sweeps.pareto import TrialRow
from infersweep.trials.measure import METRICS, SPEEDUP

__all__ = ["HTML_NAME", "PNG_NAME", "render_html", "build_report", "sweep_report"]

HTML_NAME = "pareto_report.html"
PNG_NAME = "pareto_latency_rouge.png"
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "toImageButtonOptions": {"format": "png", "scale": 2}}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1320px; padding: 16px 24px 40px; color: #1d1d1d; }
h1 { font-size: 1.6rem; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.15rem; margin: 1.6em 0 0.5em; }
.sub { color: #555; margin: 0 0 0.8em; }
.headline { font-size: 1.08rem; background: #eef7f2; border-left: 4px solid #009E73; padding: 8px 12px; }
.counts { display: flex; gap: 10px; flex-wrap: wrap; margin: 12px 0; }
.chip { border-radius: 6px; padding: 6px 12px; font-weight: 600; border: 1px solid #ddd; }
.chip b { font-size: 1.25rem; margin-right: 4px; }
.chip.ok { background: #e8f5e9; } .chip.infeasible { background: #fff8e1; }
.chip.oom { background: #fdecea; } .chip.failed { background: #fdecea; }
.chip.zero { opacity: 0.45; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { padding: 5px 9px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { background: #f6f6f6; position: sticky; top: 0; }
td.l, th.l { text-align: left; } td.reason { white-space: normal; text-align: left; max-width: 560px; }
tr.baseline td { background: #f3f6fb; }
td.good { color: #006b4e; font-weight: 600; }
.note { color: #666; font-size: 0.88rem; }
a { color: #0063a6; }
"""


def _status_chips(data: ReportData) -> str:
    chips = []
    for status, count in data.counts.items():
        extra = f" ({data.meets_constraints} meet the constraints)" if status == "ok" and data.constraints else ""
        chips.append(f'<span class="chip {escape(status)}{" zero" if not count else ""}" data-status="{escape(status)}">'
                     f"<b>{count}</b>{escape(status)}{escape(extra)}</span>")
    return '<div class="counts" id="counts">' + "".join(chips) + "</div>"


#: the knob columns of the frontier table, before the metrics: (row key, header, cell class)
KNOB_COLUMNS = (("runtime", "runtime", " class='l'"), ("precision", "precision", " class='l'"),
                ("pruning", "pruning", " class='l'"), ("batch_size", "batch", ""))
HIGHLIGHT = " class='good'"  # the speedup cells


def _trial_cell(row: dict) -> str:
    name = escape(row["trial_id"])
    cell = (f'<a href="{escape(row["link"])}" target="_blank" rel="noopener" title="open the MLflow run">{name}</a>'
            if row["link"] else name)
    return f"<td class='l'>{cell}{' (baseline)' if row['baseline'] else ''}</td>"


def _frontier_table(data: ReportData) -> str:
    if not data.frontier:
        return '<p class="note" id="frontier-empty">No trial meets every constraint yet, so the frontier is empty.</p>'
    head = "<th class='l'>trial</th>" + "".join(f"<th{css}>{escape(title)}</th>" for _, title, css in KNOB_COLUMNS)
    head += "".join(f"<th>{escape(METRICS[name].label)}</th>" for name in data.frontier_metrics)
    body = []
    for row in data.frontier:
        knobs = "".join(f"<td{css}>{escape(str(row[key]))}</td>" for key, _, css in KNOB_COLUMNS)
        metrics = "".join(f"<td{HIGHLIGHT if name == SPEEDUP else ''}>{escape(row['cells'][name])}</td>"
                          for name in data.frontier_metrics)
        body.append(f'<tr data-trial="{escape(row["trial_id"])}"{" class=baseline" if row["baseline"] else ""}>'
                    f"{_trial_cell(row)}{knobs}{metrics}</tr>")
    return (f'<div class="scroll"><table id="frontier"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _problems_table(data: ReportData) -> str:
    if not data.problems:
        return '<p class="note" id="problems-empty">Every trial ran.</p>'
    body = "".join(
        f'<tr data-status="{escape(p["status"])}"><td class="l">{escape(p["status"])}</td><td>{p["count"]}</td>'
        f'<td class="reason">{escape(p["reason"])}</td>'
        f'<td class="reason note">{escape(", ".join(p["trials"]))}</td></tr>'
        for p in data.problems)
    return ("<div class='scroll'><table id='problems'><thead><tr><th class='l'>status</th><th>trials</th><th class='l'>reason</th>"
            f"<th class='l'>which</th></tr></thead><tbody>{body}</tbody></table></div>")


def render_html(data: ReportData, subtitle: str = "") -> str:
    main = scatter(data, LATENCY, ROUGE, "Latency vs ROUGE-Lsum")
    memory = scatter(data, LATENCY, MEMORY, "Latency vs peak memory")
    # plotly.js once, inline (include_plotlyjs=True): the page works offline and inside the MLflow UI
    main_html = main.to_html(full_html=False, include_plotlyjs=True, div_id="chart-rouge",
                             config=PLOT_CONFIG, post_script=CLICK_SCRIPT)
    memory_html = memory.to_html(full_html=False, include_plotlyjs=False, div_id="chart-memory",
                                 config=PLOT_CONFIG, post_script=CLICK_SCRIPT)
    objectives = ", ".join(f"{mode} {metric}" for metric, mode in data.objectives)
    constraints = ", ".join(data.constraints) or "none"
    unplotted = (f'<p class="note">Not drawn (no axis for them): {escape(", ".join(data.unplotted_constraints))}</p>'
                 if data.unplotted_constraints else "")
    not_drawn = sum(data.counts.values()) - len(data.points)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(data.title)} · infersweep Pareto report</title><style>{STYLE}</style></head>
<body>
<h1>{escape(data.title)}</h1>
<p class="sub">{escape(subtitle) + " · " if subtitle else ""}objectives: {escape(objectives)} · constraints: {escape(constraints)}</p>
<p class="headline" id="headline">{escape(data.headline)}</p>
{_status_chips(data)}
{unplotted}
<section id="rouge">{main_html}</section>
<p class="note">One point per trial that ran ({len(data.points)}); {not_drawn} did not run and are listed at the end.
Hover a point for its knobs and metrics; click the legend to hide a precision.</p>
<h2>Pareto frontier ({len(data.frontier)} trials, fastest first)</h2>
{_frontier_table(data)}
<p class="note">Speedup, memory −% and ROUGE drop are against the baseline. Trial ids link to their MLflow
runs (open this page from a file or the MLflow artifact's download to follow them).</p>
<section id="memory">{memory_html}</section>
<h2>Trials that did not run</h2>
{_problems_table(data)}
<p class="note">Generated by infersweep at {escape(stamp)}.</p>
</body></html>
"""


def build_report(rows: list[TrialRow], frontier_ids, objectives: list[tuple[str, str]], constraints: list[str],
                 run_links: dict[str, str] | None, out_dir: Path, title: str = "Sweep report",
                 subtitle: str = "") -> list[Path]:
    """Write the HTML page and the PNG preview into `out_dir`; returns [html, png]."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(rows, frontier_ids, objectives, constraints, run_links or {}, title)
    html_path = out_dir / HTML_NAME
    html_path.write_text(render_html(data, subtitle), encoding="utf-8")
    png_path = write_png(data, out_dir / PNG_NAME)
    return [html_path, png_path]


def sweep_report(sweep, rows: list[TrialRow], frontier: list[TrialRow], run_links: dict[str, str] | None = None,
                 out_dir: Path | None = None) -> list[Path]:
    """build_report for a SweepSpec: its objectives, constraints and names; <sweep_dir>/report by default."""
    subtitle = (f"{sweep.model} ({sweep.task}) on {sweep.dataset.path}, {sweep.dataset.n} documents · "
                f"{sweep.trial.device} · {sweep.search.algorithm} search")
    return build_report(rows, [r.trial_id for r in frontier], [(o.metric, o.mode) for o in sweep.objectives],
                        sweep.constraints, run_links, out_dir or sweep.sweep_dir() / "report",
                        title=f"Sweep {sweep.name}", subtitle=subtitle)
