"""Pruning sensitivity scan: ROUGE drop and latency per pruning kind and ratio (and per layer).

One model is loaded once; every variant is a deep copy pruned one way, prepared by the spec's
runtime and precision, and measured on the same evaluation slice as the unpruned baseline.
Importance scores use a calibration slice kept apart from the evaluation slice.

Kinds:
  heads         attention heads only (structured, physically removed; whole key/value groups
                of a grouped-query-attention decoder)
  ffn           FFN intermediate neurons only (structured)
  structured    heads and FFN neurons at the same ratio (what `--pruning structured` does)
  unstructured  global magnitude pruning to zeros (same shapes)

The scan suggests the ratios a sweep should search: those whose ROUGE-Lsum drop stays within a
bound, plus the first one past it (so the search sees the edge). Its table and plots are drawn
by dashboards/sensitivity.py.
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from infersweep.trials.data import CALIBRATION_DOCS, calibration_slice, eval_slice, load_examples
from infersweep.trials.measure import LATENCY_PER_SAMPLE, MODEL_SIZE, ROUGE_LSUM, LatencyTracker, pin_threads
from infersweep.trials.pruning import (apply_pruning, attention_shape, blocks, count_parameters, find_encoder,
                            importance_scores, prune_structured)
from infersweep.trials.quality import rouge
from infersweep.trials.spec import TrialSpec

KINDS = ("heads", "ffn", "structured", "unstructured")
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_LAYER_RATIO = 0.5


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
        from infersweep.trials.models import get_adapter

        from infersweep.trials import feasibility
        from infersweep.trials.hardware import detect
        from infersweep.trials.runtimes import Infeasible

        if spec.task not in ("extractive", "causal"):
            raise ValueError("the sensitivity scan runs the extractive task (encoder models) and the causal "
                             "task (Llama-layout decoders)")
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
        self.workdir = Path(workdir) if workdir else None  # None: the system's temp dir
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
        from infersweep.trials import runtimes

        self._count += 1
        params = count_parameters(module)
        heads, attention_hidden = attention_shape(find_encoder(module).config)
        variant = dataclasses.replace(self.prepared, module=module, num_heads=heads, hidden_size=attention_hidden)
        with tempfile.TemporaryDirectory(prefix=f"infersweep-sensitivity-v{self._count}-", dir=self.workdir) as scratch:
            engine = runtimes.prepare(variant, self.spec, Path(scratch))
            size = engine.size_mb()  # the size is read; the artifact is not needed any more
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
            out = {ROUGE_LSUM: self.quality(engine)[ROUGE_LSUM], "params": params, MODEL_SIZE: size}
            if timed:
                out[LATENCY_PER_SAMPLE] = statistics.median(self.latency(engine))
        finally:
            engine.close()
        return out

    def row(self, kind: str, ratio: float, layer: int | None = None, timed: bool = True,
            baseline: ScanRow | None = None) -> ScanRow:
        m = self.measure(self.variant(kind, ratio, layer), timed=timed)
        row = ScanRow(kind=kind, ratio=ratio, layer=layer, rougeLsum=m[ROUGE_LSUM], params=m["params"],
                      model_size_mb=m[MODEL_SIZE], latency_ms_per_sample=m.get(LATENCY_PER_SAMPLE))
        if baseline is not None:
            if baseline.rougeLsum:
                row.rouge_drop_pct = 100 * (baseline.rougeLsum - row.rougeLsum) / baseline.rougeLsum
            if baseline.latency_ms_per_sample and row.latency_ms_per_sample:
                row.speedup = baseline.latency_ms_per_sample / row.latency_ms_per_sample
        return row

    def num_layers(self) -> int:
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
