"""Tables and plots of a pruning sensitivity scan (trials.sensitivity.ScanResult).

The plot is written twice from the same data: interactive HTML (plotly) and a PNG drawn by
matplotlib, which needs no browser.
"""
from __future__ import annotations

from pathlib import Path

from infersweep.trials.sensitivity import KINDS, ScanResult

PALETTE = {"heads": "#1f77b4", "ffn": "#ff7f0e", "structured": "#2ca02c", "unstructured": "#7f7f7f"}


def table(result: ScanResult, max_drop_pct: float = 1.0):
    """A rich Table: one line per measured variant, the baseline first."""
    from rich.table import Table

    t = Table(title=f"pruning sensitivity — {result.spec.model} on {result.spec.dataset} "
                    f"(n={result.spec.n}, batch {result.spec.batch_size}, {result.spec.precision}, "
                    f"{result.importance} importance)")
    for col in ("kind", "ratio", "layer", "params", "size MB", "ms/sample", "speedup", "ROUGE-Lsum", "drop %"):
        t.add_column(col, justify="left" if col == "kind" else "right")
    b = result.baseline
    t.add_row("none", "0", "", f"{b.params:,}", f"{b.model_size_mb:.1f}", _fmt(b.latency_ms_per_sample, ".1f"),
              "1.00", f"{b.rougeLsum:.2f}", "0.00")
    for r in result.rows:
        colour = "green" if r.rouge_drop_pct <= max_drop_pct else "red"
        t.add_row(r.kind, f"{r.ratio:g}", "all" if r.layer is None else str(r.layer), f"{r.params:,}",
                  f"{r.model_size_mb:.1f}", _fmt(r.latency_ms_per_sample, ".1f"), _fmt(r.speedup, ".2f"),
                  f"{r.rougeLsum:.2f}", f"[{colour}]{r.rouge_drop_pct:.2f}[/]")
    return t


def figure(result: ScanResult, max_drop_pct: float = 1.0):
    """Plotly figure: ROUGE drop and speedup vs ratio per kind; head drop per layer."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    layers = result.of_kind("heads", per_layer=True)
    cols = 3 if layers else 2
    titles = ["ROUGE-Lsum drop (%) vs ratio", "speedup vs ratio"]
    if layers:
        titles.append(f"ROUGE-Lsum drop (%), {layers[0].ratio:g} of one layer's heads removed")
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles)
    for kind, x, drops, speedups in _curves(result):
        style = dict(color=PALETTE[kind])
        fig.add_trace(go.Scatter(x=x, y=drops, name=kind, mode="lines+markers", line=style, legendgroup=kind),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=speedups, name=kind, mode="lines+markers", line=style, legendgroup=kind,
                                 showlegend=False), row=1, col=2)
    fig.add_hline(y=max_drop_pct, line_dash="dot", row=1, col=1, annotation_text=f"{max_drop_pct:g}% bound")
    if layers:
        fig.add_trace(go.Bar(x=[str(r.layer) for r in layers], y=[r.rouge_drop_pct for r in layers],
                             name="heads per layer", marker_color=PALETTE["heads"], showlegend=False),
                      row=1, col=3)
        fig.update_xaxes(title_text="layer", row=1, col=3)
    fig.update_xaxes(title_text="pruning ratio", row=1, col=1)
    fig.update_xaxes(title_text="pruning ratio", row=1, col=2)
    spec = result.spec
    fig.update_layout(title=f"Pruning sensitivity: {spec.model}, {spec.dataset} (n={spec.n}, "
                            f"batch {spec.batch_size}, {spec.precision}); baseline ROUGE-Lsum "
                            f"{result.baseline.rougeLsum:.2f}", width=480 * cols, height=460)
    return fig


def write_plot(result: ScanResult, html_path: Path, png: bool = True,
               max_drop_pct: float = 1.0) -> tuple[Path, Path | None, str]:
    """Write the plot as interactive HTML and (unless `png` is False) a PNG drawn by matplotlib.

    Returns (html, png or None, why the PNG was skipped or "").
    """
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    figure(result, max_drop_pct).write_html(str(html_path), include_plotlyjs=True)
    if not png:
        return html_path, None, "PNG not requested"
    return html_path, write_png(result, html_path.with_suffix(".png"), max_drop_pct), ""


def write_png(result: ScanResult, path: Path, max_drop_pct: float = 1.0) -> Path:
    """The same panels as figure(), drawn with matplotlib (no browser needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = result.of_kind("heads", per_layer=True)
    fig = Figure(figsize=(5.2 * (3 if layers else 2), 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if layers else 2)
    for kind, x, drops, speedups in _curves(result):
        axes[0].plot(x, drops, "o-", color=PALETTE[kind], label=kind)
        axes[1].plot(x, speedups, "o-", color=PALETTE[kind], label=kind)
    axes[0].axhline(max_drop_pct, ls=":", color="#555", label=f"{max_drop_pct:g}% bound")
    axes[0].set(title="ROUGE-Lsum drop (%)", xlabel="pruning ratio")
    axes[1].set(title="speedup vs unpruned", xlabel="pruning ratio")
    axes[0].legend(fontsize=8)
    if layers:
        axes[2].bar([str(r.layer) for r in layers], [r.rouge_drop_pct for r in layers], color=PALETTE["heads"])
        axes[2].set(title=f"drop (%), {layers[0].ratio:g} of one layer's heads removed", xlabel="layer")
    fig.suptitle(f"Pruning sensitivity: {result.spec.model} (n={result.spec.n}, {result.spec.precision}); "
                 f"baseline ROUGE-Lsum {result.baseline.rougeLsum:.2f}", fontsize=10)
    fig.savefig(path)
    return Path(path)


def _curves(result: ScanResult):
    """(kind, ratios, ROUGE drops, speedups) per scanned kind, each starting at the unpruned point."""
    for kind in KINDS:
        rows = sorted(result.of_kind(kind), key=lambda r: r.ratio)
        if rows:
            yield (kind, [0.0] + [r.ratio for r in rows], [0.0] + [r.rouge_drop_pct for r in rows],
                   [1.0] + [r.speedup or float("nan") for r in rows])


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)
