"""The interactive charts (plotly): one point per trial that ran, the frontier as a step line."""
from __future__ import annotations

import plotly.graph_objects as go

from infersweep.dashboards.data import (AXIS_TITLES, MEMORY, ReportData, axis_range, colour_of, staircase, step_line,
                             symbol_of)
from infersweep.trials.measure import METRICS

__all__ = ["scatter", "CLICK_SCRIPT"]
BAND_FILL = "rgba(0,158,115,0.10)"
BAND_EDGE = "#009E73"


def scatter(data: ReportData, x: str, y: str, title: str) -> go.Figure:
    """y against x: colour = runtime, symbol = precision, marker area = peak memory."""
    fig = go.Figure()
    points = data.points
    xr, yr = axis_range(points, x, data.bands), axis_range(points, y, data.bands)
    y_goal = METRICS[y].goal
    xs, ys = step_line(staircase(points, x, y, y_goal), x, y, y_goal, xr, yr, data.bands)
    if xs:  # drawn first: the points sit on top of it
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines",
            line=dict(shape="hv", color="#333333", width=2, dash="dash"), hoverinfo="skip",
            name="Pareto frontier (step)", legendgroup="frontier", legendgrouptitle_text="frontier",
            legendrank=2000))
    for runtime in data.runtimes:
        for precision in data.precisions:
            group = [p for p in points if p.runtime == runtime and p.precision == precision]
            if not group:
                continue
            fig.add_trace(go.Scatter(
                x=[p.metrics[x] for p in group], y=[p.metrics[y] for p in group], mode="markers",
                name=precision, legendgroup=runtime, legendgrouptitle_text=f"runtime {runtime}",
                meta="trials", ids=[p.trial_id for p in group], customdata=[p.link for p in group],
                hovertext=[p.hover for p in group], hovertemplate="%{hovertext}<extra></extra>",
                marker=dict(color=colour_of(runtime, data.runtimes), symbol=symbol_of(precision, data.precisions)[0],
                            size=[p.size for p in group], opacity=[1.0 if p.meets_constraints else 0.35 for p in group],
                            line=dict(color=["#111111" if p.on_frontier else "#ffffff" for p in group],
                                      width=[2.5 if p.on_frontier else 0.8 for p in group]))))
    for band in data.bands:
        if band.axis not in (x, y):
            continue
        if band.axis == y:
            lo, hi = max(band.lo, yr[0]), min(band.hi, yr[1])
            fig.add_hrect(y0=lo, y1=hi, fillcolor=BAND_FILL, line_width=0, layer="below")
            fig.add_hline(y=band.bound, line=dict(color=BAND_EDGE, width=1.5, dash="dot"),
                          annotation_text=f"constraint {band.constraint} ({AXIS_TITLES[y].split(' (')[0]} "
                                          f"{'≥' if band.hi > band.bound else '≤'} {band.bound:.4g})",
                          annotation_position="bottom right", annotation_font_color=BAND_EDGE)
        else:
            lo, hi = max(band.lo, xr[0]), min(band.hi, xr[1])
            fig.add_vrect(x0=lo, x1=hi, fillcolor=BAND_FILL, line_width=0, layer="below")
            fig.add_vline(x=band.bound, line=dict(color=BAND_EDGE, width=1.5, dash="dot"),
                          annotation_text=f"constraint {band.constraint}", annotation_position="top left",
                          annotation_font_color=BAND_EDGE)
    base = next((p for p in points if p.baseline), None)
    if base is not None:
        fig.add_annotation(x=base.metrics[x], y=base.metrics[y], text="<b>baseline</b>", showarrow=True,
                           arrowhead=2, arrowwidth=1.5, ax=40, ay=-40, bgcolor="rgba(255,255,255,0.85)",
                           bordercolor="#333333", borderwidth=1)
    largest = max((p.metrics[MEMORY] for p in points), default=0)
    better = f"{'left' if METRICS[x].goal == 'min' else 'right'} and {'up' if y_goal == 'max' else 'down'} is better"
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{better} · colour = runtime · symbol = precision · "
                        f"marker area ∝ peak memory (largest {largest:.0f} MiB)<br>"
                        f"black ring = on the Pareto frontier · green band = meets the constraints · "
                        f"faded = misses one · click a point to open its MLflow run</sup>", x=0.01),
        template="plotly_white", height=620, margin=dict(l=70, r=20, t=110, b=60),
        xaxis=dict(title=AXIS_TITLES[x], range=list(xr), zeroline=False),
        yaxis=dict(title=AXIS_TITLES[y], range=list(yr), zeroline=False),
        legend=dict(itemsizing="constant", groupclick="toggleitem", tracegroupgap=8),
        hoverlabel=dict(align="left", bgcolor="white", font_size=12), font=dict(size=13))
    return fig


# plotly.js substitutes {plot_id}; opens the trial's MLflow run (customdata) on click
CLICK_SCRIPT = """
var gd = document.getElementById('{plot_id}');
gd.on('plotly_click', function (event) {
  var url = event.points.length ? event.points[0].customdata : '';
  if (url) { window.open(url, '_blank', 'noopener'); }
});
"""
