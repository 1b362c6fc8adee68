"""A PNG of the main chart, drawn with matplotlib (Agg): no browser, no Chrome download.

plotly's own image export (kaleido 1.x) drives a Chrome it would have to find or download at
run time, so the preview is drawn here from the same data and the same encoding instead.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.dashboards.data import (AXIS_TITLES, LATENCY, MEMORY, ROUGE, ReportData, axis_range, colour_of,
                             marker_size, staircase, step_line, symbol_of)
from infersweep.trials.measure import METRICS

__all__ = ["write_png"]

BAND_FILL = (0.0, 0.62, 0.45, 0.10)
BAND_EDGE = "#009E73"
SCALE = 0.74  # plotly px diameter -> matplotlib points, so both charts look alike


def write_png(data: ReportData, path: Path, x: str = LATENCY, y: str = ROUGE, dpi: int = 110) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(12, 7.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = data.points
    xr, yr = axis_range(points, x, data.bands), axis_range(points, y, data.bands)
    for band in data.bands:
        if band.axis == y:
            ax.axhspan(max(band.lo, yr[0]), min(band.hi, yr[1]), color=BAND_FILL, lw=0, zorder=0)
            ax.axhline(band.bound, color=BAND_EDGE, ls=":", lw=1.5, zorder=1)
            ax.annotate(f"constraint {band.constraint}", (1, band.bound), xycoords=("axes fraction", "data"),
                        xytext=(-4, -4), textcoords="offset points", ha="right", va="top", color=BAND_EDGE, fontsize=10)
        elif band.axis == x:
            ax.axvspan(max(band.lo, xr[0]), min(band.hi, xr[1]), color=BAND_FILL, lw=0, zorder=0)
            ax.axvline(band.bound, color=BAND_EDGE, ls=":", lw=1.5, zorder=1)
            ax.annotate(f"constraint {band.constraint}", (band.bound, 1), xycoords=("data", "axes fraction"),
                        xytext=(-4, -4), textcoords="offset points", ha="right", va="top", color=BAND_EDGE,
                        fontsize=10, rotation=90)
    y_mode = METRICS[y].goal
    xs, ys = step_line(staircase(points, x, y, y_mode), x, y, y_mode, xr, yr, data.bands)
    if xs:
        ax.step(xs, ys, where="post", color="#333333", ls="--", lw=1.8, zorder=2)
    for p in sorted(points, key=lambda p: -p.size):  # big ones first: small ones stay visible
        ax.scatter(p.metrics[x], p.metrics[y], s=(p.size * SCALE) ** 2, c=colour_of(p.runtime, data.runtimes),
                   marker=symbol_of(p.precision, data.precisions)[1], alpha=1.0 if p.meets_constraints else 0.35,
                   edgecolors="#111111" if p.on_frontier else "white", linewidths=2.2 if p.on_frontier else 0.8,
                   zorder=4 if p.on_frontier else 3)
    base = next((p for p in points if p.baseline), None)
    if base is not None:
        ax.annotate("baseline", (base.metrics[x], base.metrics[y]), xytext=(28, 28), textcoords="offset points",
                    fontsize=11, fontweight="bold", arrowprops=dict(arrowstyle="-|>", color="#333333", lw=1.3),
                    bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#333333", lw=0.8), zorder=5)
    ax.set_xlim(*xr)
    ax.set_ylim(*yr)
    ax.set_xlabel(AXIS_TITLES[x], fontsize=12)
    ax.set_ylabel(AXIS_TITLES[y], fontsize=12)
    ax.grid(True, color="#e6e6e6", lw=0.8, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    largest = max((p.metrics[MEMORY] for p in points), default=0)
    fig.suptitle(f"{data.title}: latency vs ROUGE-Lsum", x=0.01, ha="left", fontsize=14, fontweight="bold")
    ax.set_title("left and up is better · colour = runtime · symbol = precision · marker area ∝ peak memory\n"
                 "black ring = Pareto frontier · green band = meets the constraints · faded = misses one · "
                 f"{_counts_text(data)}", loc="left", fontsize=9.5, color="#555555")
    handles = [Line2D([], [], ls="", marker="s", ms=10, color=colour_of(r, data.runtimes), label=r)
               for r in data.runtimes]
    handles += [Line2D([], [], ls="", marker=symbol_of(q, data.precisions)[1], ms=9, color="#777777", label=q)
                for q in data.precisions]
    for memory in sorted({round(largest), round(largest / 4)} - {0}, reverse=True):
        handles.append(Line2D([], [], ls="", marker="o", ms=marker_size(memory, largest) * SCALE, color="#bbbbbb",
                              label=f"{memory:.0f} MiB peak"))
    handles.append(Line2D([], [], ls="--", color="#333333", lw=1.8, label="Pareto frontier"))
    if points:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=10,
                  labelspacing=1.1)
    else:
        ax.text(0.5, 0.5, "no trial has finished yet", transform=ax.transAxes, ha="center", fontsize=14)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def _counts_text(data: ReportData) -> str:
    parts = [f"{n} {s}" for s, n in data.counts.items() if n or s == "ok"]
    return f"{sum(data.counts.values())} trials: " + ", ".join(parts) if parts else ""

