"""Pruning sensitivity scan: ROUGE drop and latency per pruning kind and ratio (and per layer).

One model is loaded once; every variant is a deep copy pruned one way, prepared by the spec's
runtime and precision, and measured on the same evaluation slice as the unpruned baseline.
Importance scores use a calibration slice kept apart from the evaluation slice.

Kinds:
  heads         attention heads only (structured, physically removed)
  ffn           FFN intermediate neurons only (structured)
  structured    heads and FFN neurons at the same ratio (what `--pruning structured` does)
  unstructured  global magnitude pruning to zeros (same shapes)

The scan suggests the ratios a sweep should search: those whose ROUGE-Lsum drop stays within a
bound, plus the first one past it (so the search sees the edge).
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from trials.measure import LATENCY_PER_SAMPLE, LatencyTracker, pin_threads
from trials.pruning import (apply_pruning, attention_shape, count_parameters, find_encoder, importance_scores,
                            prune_structured)
from trials.quality import rouge
from trials.spec import TrialSpec

KINDS = ("heads", "ffn", "structured", "unstructured")
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_LAYER_RATIO = 0.5
PALETTE = {"heads": "#1f77b4", "ffn": "#ff7f0e", "structured": "#2ca02c", "unstructured": "#7f7f7f"}
CALIBRATION_DOCS = 8


@dataclass
class ScanRow:
    kind: str  # one of KINDS, or "baseline"
    ratio: float
    layer: int | None = None  # per-layer head rows
    rougeLsum: float = 0.0
    rouge_drop_pct: float = 0.0
    latency_ms_per_sample: float | None = None
    speedup: float | None = None
    params: int = 0
    model_size_mb: float = 0.0


@dataclass
class ScanResult:
    spec: TrialSpec
    importance: str
    baseline: ScanRow
    rows: list[ScanRow] = field(default_factory=list)
    seconds: float = 0.0

    def of_kind(self, kind: str, per_layer: bool = False) -> list[ScanRow]:
        return [r for r in self.rows if r.kind == kind and (r.layer is not None) == per_layer]

    def to_dict(self) -> dict:
        return {"spec": self.spec.model_dump(mode="json"), "importance": self.importance,
                "baseline": dataclasses.asdict(self.baseline),
                "rows": [dataclasses.asdict(r) for r in self.rows], "seconds": self.seconds}


class Scanner:
    """Loads the spec's model and data once; measures pruned variants against the baseline."""

    def __init__(self, spec: TrialSpec, importance: str | None = "activation",
                 calibration_docs: int = CALIBRATION_DOCS, workdir: Path | None = None):
        from trials.data import calibration_slice, eval_slice, load_examples
        from trials.models import get_adapter

        from trials import feasibility
        from trials.hardware import detect
        from trials.runtimes import Infeasible

        if spec.task != "extractive":
            raise ValueError("the sensitivity scan runs the extractive task (encoder models)")
        reason = feasibility.check(spec, detect())  # the reason a trial would give, before anything loads
        if reason:
            raise Infeasible(reason)
        pin_threads(spec.cpus)
        self.spec = spec
        examples = load_examples(spec.dataset, spec.document_field, spec.summary_field)
        self.evaluation = eval_slice(examples, spec.n, spec.seed)
        calibration = calibration_slice(examples, spec.n, calibration_docs, spec.seed)
        self.adapter = get_adapter(spec.task)(spec)
        self.prepared = self.adapter.prepared_model([e.document for e in calibration])
        self.importance = importance or "weight"
        self.batches = self.adapter.batches([e.document for e in self.evaluation], spec.batch_size)
        self.references = [e.summary for e in self.evaluation]
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="infersweep-sensitivity-"))
        self._count = 0
        self._scores = None

    # -- variants
    def scores(self):
        """Importance scores of the unpruned model (computed once, shared by every variant)."""
        if self._scores is None:
            calibration = self.prepared.calibration_inputs if self.importance == "activation" else None
            self._scores = importance_scores(self.prepared.module, self.importance, calibration)
        return self._scores

    def variant(self, kind: str, ratio: float, layer: int | None = None):
        """A deep copy of the unpruned module, pruned as `kind` at `ratio` (one layer if given)."""
        module = copy.deepcopy(self.prepared.module)
        if ratio <= 0 or kind == "baseline":
            return module
        if kind == "unstructured":
            apply_pruning(module, "unstructured", ratio)
        elif kind in ("heads", "ffn", "structured"):
            heads = ratio if kind in ("heads", "structured") else 0.0
            ffn = ratio if kind in ("ffn", "structured") else 0.0
            prune_structured(module, heads, ffn, importance=self.importance, scores=self.scores(),
                             layers=None if layer is None else [layer])
        else:
            raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        return module

    # -- measurement
    def prepare(self, module):
        """The spec's runtime and precision applied to `module`: (engine, parameters, size MB)."""
        from trials import runtimes

        self._count += 1
        workdir = self.workdir / f"v{self._count}"
        workdir.mkdir(parents=True, exist_ok=True)
        params = count_parameters(module)
        heads, attention_hidden = attention_shape(find_encoder(module).config)
        variant = dataclasses.replace(self.prepared, module=module, num_heads=heads, hidden_size=attention_hidden)
        engine = runtimes.prepare(variant, self.spec, workdir)
        size = engine.size_mb()
        for f in workdir.glob("*"):  # the size is read; the artifact is not needed any more
            if f.is_file():
                f.unlink()
        return engine, params, size

    def quality(self, engine) -> dict[str, float]:
        """ROUGE-1/2/Lsum of `engine` on the evaluation slice."""
        summaries = [s for batch in self.batches for s in self.adapter.summarize_batch(batch, engine)]
        return rouge(summaries, self.references)

    def latency(self, engine, batches=None, repeats: int | None = None, warmup: int | None = None) -> list[float]:
        """Per-sample latencies (ms) of timed batches, after warm-up batches."""
        batches = batches if batches is not None else self.batches
        warmup = self.spec.warmup if warmup is None else warmup
        for batch in (batches * max(warmup, 1))[:warmup]:
            self.adapter.summarize_batch(batch, engine)
        tracker = LatencyTracker(self.spec.device)
        for _ in range(self.spec.repeats if repeats is None else repeats):
            for batch in batches:
                tracker.time(lambda: self.adapter.summarize_batch(batch, engine), batch.size)
        return [ms / n for ms, n in zip(tracker.batch_ms, tracker.batch_sizes)]

    def measure(self, module, timed: bool = True) -> dict:
        """ROUGE-Lsum (always), per-sample latency (if `timed`), params and size on disk."""
        import statistics

        engine, params, size = self.prepare(module)
        try:
            out = {"rougeLsum": self.quality(engine)["rougeLsum"], "params": params, "model_size_mb": size}
            if timed:
                out[LATENCY_PER_SAMPLE] = statistics.median(self.latency(engine))
        finally:
            engine.close()
        return out

    def row(self, kind: str, ratio: float, layer: int | None = None, timed: bool = True,
            baseline: ScanRow | None = None) -> ScanRow:
        m = self.measure(self.variant(kind, ratio, layer), timed=timed)
        row = ScanRow(kind=kind, ratio=ratio, layer=layer, rougeLsum=m["rougeLsum"], params=m["params"],
                      model_size_mb=m["model_size_mb"], latency_ms_per_sample=m.get(LATENCY_PER_SAMPLE))
        if baseline is not None:
            if baseline.rougeLsum:
                row.rouge_drop_pct = 100 * (baseline.rougeLsum - row.rougeLsum) / baseline.rougeLsum
            if baseline.latency_ms_per_sample and row.latency_ms_per_sample:
                row.speedup = baseline.latency_ms_per_sample / row.latency_ms_per_sample
        return row

    def num_layers(self) -> int:
        from trials.pruning import blocks

        return len(blocks(self.prepared.module))

    def run(self, kinds: Iterable[str] = KINDS, ratios: Iterable[float] = DEFAULT_RATIOS,
            layer_ratio: float | None = DEFAULT_LAYER_RATIO, time_layers: bool = False,
            progress: Callable[[str], None] | None = None) -> ScanResult:
        """Baseline, then every (kind, ratio), then heads per layer at `layer_ratio` (None: skip)."""
        start = time.perf_counter()
        kinds, ratios = list(kinds), sorted(set(float(r) for r in ratios))
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        say = progress or (lambda _msg: None)
        say("baseline")
        baseline = self.row("baseline", 0.0)
        result = ScanResult(self.spec, self.importance, baseline)
        for kind in kinds:
            for ratio in ratios:
                say(f"{kind} {ratio:g}")
                result.rows.append(self.row(kind, ratio, baseline=baseline))
        if layer_ratio:
            for layer in range(self.num_layers()):
                say(f"heads {layer_ratio:g} in layer {layer}")
                result.rows.append(self.row("heads", layer_ratio, layer=layer, timed=time_layers,
                                            baseline=baseline))
        result.seconds = time.perf_counter() - start
        return result


def scan(spec: TrialSpec, **kwargs) -> ScanResult:
    """Convenience: Scanner(spec, importance=...).run(**rest)."""
    importance = kwargs.pop("importance", "activation")
    return Scanner(spec, importance=importance).run(**kwargs)


# ---------------------------------------------------------------------- what to search

def suggest_ratios(result: ScanResult, max_drop_pct: float = 1.0, kind: str = "structured") -> list[float]:
    """Ratios of `kind` within `max_drop_pct` ROUGE-Lsum drop, plus the first one past the bound."""
    rows = sorted(result.of_kind(kind), key=lambda r: r.ratio)
    if not rows:
        raise ValueError(f"the scan has no {kind!r} rows; scan that kind to suggest its ratios")
    picked = []
    for r in rows:
        picked.append(r.ratio)
        if r.rouge_drop_pct > max_drop_pct:
            break
    return picked


def space_yaml(ratios: list[float], method: str = "structured") -> str:
    """The sweep snippet for these ratios (block style YAML)."""
    import yaml

    return yaml.safe_dump({"pruning": {"methods": [method], "ratios": [round(r, 4) for r in ratios]}},
                          sort_keys=False, default_flow_style=None).strip()


# ---------------------------------------------------------------------- table and plot

def table(result: ScanResult, max_drop_pct: float = 1.0):
    """A rich Table: one line per measured variant, the baseline first."""
    from rich.table import Table

    t = Table(title=f"pruning sensitivity — {result.spec.model} on {result.spec.dataset} "
                    f"(n={result.spec.n}, batch {result.spec.batch_size}, {result.spec.precision}, "
                    f"{result.importance} importance)")
    for col in ("kind", "ratio", "layer", "params", "size MB", "ms/sample", "speedup", "ROUGE-Lsum", "drop %"):
        t.add_column(col, justify="left" if col == "kind" else "right")

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    b = result.baseline
    t.add_row("none", "0", "", f"{b.params:,}", f"{b.model_size_mb:.1f}", fmt(b.latency_ms_per_sample, ".1f"),
              "1.00", f"{b.rougeLsum:.2f}", "0.00")
    for r in result.rows:
        colour = "green" if r.rouge_drop_pct <= max_drop_pct else "red"
        t.add_row(r.kind, f"{r.ratio:g}", "all" if r.layer is None else str(r.layer), f"{r.params:,}",
                  f"{r.model_size_mb:.1f}", fmt(r.latency_ms_per_sample, ".1f"), fmt(r.speedup, ".2f"),
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
    for kind in KINDS:
        rows = sorted(result.of_kind(kind), key=lambda r: r.ratio)
        if not rows:
            continue
        x = [0.0] + [r.ratio for r in rows]
        style = dict(color=PALETTE[kind])
        fig.add_trace(go.Scatter(x=x, y=[0.0] + [r.rouge_drop_pct for r in rows], name=kind,
                                 mode="lines+markers", line=style, legendgroup=kind), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[1.0] + [r.speedup or float("nan") for r in rows], name=kind,
                                 mode="lines+markers", line=style, legendgroup=kind, showlegend=False),
                      row=1, col=2)
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
    for kind in KINDS:
        rows = sorted(result.of_kind(kind), key=lambda r: r.ratio)
        if not rows:
            continue
        x = [0.0] + [r.ratio for r in rows]
        axes[0].plot(x, [0.0] + [r.rouge_drop_pct for r in rows], "o-", color=PALETTE[kind], label=kind)
        axes[1].plot(x, [1.0] + [r.speedup or float("nan") for r in rows], "o-", color=PALETTE[kind], label=kind)
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
