"""Latency, throughput and memory measurement. Metric names live here and only here.

Each metric's MetricDef also says how tables show it (`label`, `format`), and FRONTIER_METRICS
is the one list of metrics that pareto.csv, the console frontier table and the HTML report show.
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

__all__ = ["MetricDef", "METRICS", "FRONTIER_METRICS", "TASK_FRONTIER_METRICS", "frontier_metrics", "MISSING",
           "interval_of", "metric_text",
           "LATENCY_PER_SAMPLE", "LATENCY_P95", "THROUGHPUT", "PEAK_MEMORY", "PREPARE_PEAK_MEMORY", "MODEL_SIZE", "ROUGE1", "ROUGE2",
           "ROUGE_LSUM", "ROUGE_DROP", "SPEEDUP", "MEMORY_REDUCTION",
           "percentile", "LatencyTracker", "rss_mb", "MemoryTracker", "gpu_peak_mb", "pin_threads",
           "relative_to", "relative_metrics", "paired_scores", "agreement", "TTFT", "TPOT", "OUTPUT_TOKENS_PER_S",
           "AGREEMENT", "TokenTimings"]

#: what a table shows for a metric a trial does not have
MISSING = "–"


@dataclass(frozen=True)
class MetricDef:
    unit: str
    goal: Literal["min", "max"]  # which direction is better
    description: str
    label: str  # column header in tables
    format: str  # one value as tables show it, units included: "{:.2f}×", "{:.1f}%"

    def text(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        return self.format.format(value)


def _ms(description: str, label: str, fmt: str = "{:.1f}") -> MetricDef:
    return MetricDef("ms", "min", description, label, fmt)


def _rouge(description: str, label: str) -> MetricDef:
    return MetricDef("F1 x100", "max", description, label, "{:.2f}")


def _drop_bound(description: str, label: str) -> MetricDef:
    return MetricDef("%", "min", description, label, "{:.1f}")


METRICS: dict[str, MetricDef] = {
    "latency_ms_per_sample": _ms("median batch latency / documents per batch", "ms per sample", "{:.2f}"),
    "latency_ms_p50": _ms("median latency of one batch", "p50 ms/batch"),
    "latency_ms_p95": _ms("95th percentile latency of one batch", "p95 ms/batch"),
    "latency_ms_p99": _ms("99th percentile latency of one batch", "p99 ms/batch"),
    "throughput_samples_per_s": MetricDef("samples/s", "max", "documents per second over the timed passes",
                                          "samples/s", "{:.1f}"),
    "peak_memory_mb": MetricDef("MiB", "min", "serving memory: peak RSS (CPU) or NVML process memory (GPU) of a "
                                "fresh process that loads only the variant and summarizes the evaluation slice, over "
                                "that process's memory before loading (trials.serving)", "peak MiB", "{:.0f}"),
    "prepare_peak_memory_mb": MetricDef("MiB", "min", "peak memory growth of the trial process while loading, "
                                        "pruning and preparing the variant (export, quantization)",
                                        "prepare MiB", "{:.0f}"),
    "model_size_mb": MetricDef("MiB", "min", "size of the optimized model artifact on disk", "size MiB", "{:.1f}"),
    "rouge1": _rouge("ROUGE-1 F1, stemmed", "ROUGE-1"),
    "rouge2": _rouge("ROUGE-2 F1, stemmed", "ROUGE-2"),
    "rougeLsum": _rouge("ROUGE-Lsum F1, stemmed, sentences on new lines", "ROUGE-Lsum"),
    "rouge_drop_pct": MetricDef("%", "min", "relative ROUGE-Lsum drop against the baseline", "ROUGE drop %",
                                "{:.2f}%"),
    "rouge_drop_pct_ci_low": _drop_bound("lower end of rouge_drop_pct's paired-bootstrap interval "
                                         "(the sweep's confidence, 95% by default)", "ROUGE drop % low"),
    "rouge_drop_pct_ci_high": _drop_bound("upper end of rouge_drop_pct's paired-bootstrap interval; "
                                          "a `rouge_drop_pct <= X` constraint holds when this meets X",
                                          "ROUGE drop % high"),
    "speedup": MetricDef("x", "max", "baseline latency per sample / this latency per sample; for a sweep's "
                         "finalists, the median over the head-to-head rounds (sweeps.finalists)", "speedup",
                         "{:.2f}×"),
    "speedup_in_trial": MetricDef("x", "max", "a finalist's speedup as its own trial measured it, against the "
                                  "baseline measured earlier in the launch", "speedup (trial)", "{:.2f}×"),
    "memory_reduction_pct": MetricDef("%", "max", "relative peak memory reduction against the baseline",
                                      "memory −%", "{:.1f}%"),
    "agreement_rougeL": MetricDef("F1 x100", "max", "generative tasks: mean ROUGE-L F1 of each summary against "
                                  "the baseline's summary of the same document (100: word for word the same)",
                                  "agreement ROUGE-L", "{:.1f}"),
    # decoding tasks (causal): per batch, from a streamer's clock inside the timed passes
    "ttft_ms": _ms("time to first token: median over batches of the time from calling generate to the "
                   "first new token (the prompt's prefill)", "TTFT ms"),
    "tpot_ms": _ms("time per output token after the first: median over batches of the decode steps' "
                   "mean time", "TPOT ms", "{:.2f}"),
    "output_tokens_per_s": MetricDef("tokens/s", "max", "new tokens generated (up to each summary's end of "
                                     "sequence) per second of generate over the timed passes",
                                     "tokens/s", "{:.1f}"),
}
LATENCY_PER_SAMPLE = "latency_ms_per_sample"
LATENCY_P95 = "latency_ms_p95"
THROUGHPUT = "throughput_samples_per_s"
PEAK_MEMORY = "peak_memory_mb"
PREPARE_PEAK_MEMORY = "prepare_peak_memory_mb"
MODEL_SIZE = "model_size_mb"
ROUGE1 = "rouge1"
ROUGE2 = "rouge2"
ROUGE_LSUM = "rougeLsum"
ROUGE_DROP = "rouge_drop_pct"
SPEEDUP = "speedup"
MEMORY_REDUCTION = "memory_reduction_pct"
AGREEMENT = "agreement_rougeL"
TTFT = "ttft_ms"
TPOT = "tpot_ms"
OUTPUT_TOKENS_PER_S = "output_tokens_per_s"

#: the metrics every frontier table shows, in this order (pareto.csv adds an interval's bounds)
FRONTIER_METRICS: tuple[str, ...] = (SPEEDUP, MEMORY_REDUCTION, ROUGE_DROP, LATENCY_PER_SAMPLE, PEAK_MEMORY,
                                     MODEL_SIZE, ROUGE_LSUM)
#: frontier metrics that only some tasks measure (agreement: the generative ones), shown after
#: FRONTIER_METRICS in a table where some trial has them
TASK_FRONTIER_METRICS: tuple[str, ...] = (AGREEMENT,)


def frontier_metrics(rows_metrics: Iterable[Mapping[str, float]] = ()) -> tuple[str, ...]:
    """The columns of a frontier table of trials with these metrics: FRONTIER_METRICS, then each of
    TASK_FRONTIER_METRICS that some trial has."""
    held = set().union(*(set(m) for m in rows_metrics))
    return (*FRONTIER_METRICS, *(name for name in TASK_FRONTIER_METRICS if name in held))


def interval_of(name: str) -> tuple[str, ...]:
    """The names of `name`'s interval bounds, (low, high), or () when it has none."""
    bounds = (f"{name}_ci_low", f"{name}_ci_high")  # the names trials.stats.Interval.as_metrics writes
    return bounds if all(b in METRICS for b in bounds) else ()


def metric_text(name: str, metrics: Mapping[str, float], interval_sep: str = " ") -> str:
    """`name`'s value in `metrics` as tables show it, with its interval when the trial has one:
    '0.82% [-0.3, 1.6]'."""
    text = METRICS[name].text(metrics.get(name))
    bounds = interval_of(name)
    if bounds and all(b in metrics for b in bounds):
        low, high = (METRICS[b].text(metrics[b]) for b in bounds)
        text += f"{interval_sep}[{low}, {high}]"
    return text


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class LatencyTracker:
    """Times batches; `synchronize` is called before reading the clock (CUDA work is async)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.batch_ms: list[float] = []
        self.batch_sizes: list[int] = []

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def time(self, fn, batch_size: int):
        self._sync()
        start = time.perf_counter()
        out = fn()
        self._sync()
        self.batch_ms.append((time.perf_counter() - start) * 1000)
        self.batch_sizes.append(batch_size)
        return out

    def metrics(self) -> dict[str, float]:
        total_s = sum(self.batch_ms) / 1000
        per_sample = [ms / n for ms, n in zip(self.batch_ms, self.batch_sizes)]
        return {
            "latency_ms_per_sample": statistics.median(per_sample),
            "latency_ms_p50": percentile(self.batch_ms, 50),
            "latency_ms_p95": percentile(self.batch_ms, 95),
            "latency_ms_p99": percentile(self.batch_ms, 99),
            "throughput_samples_per_s": sum(self.batch_sizes) / total_s if total_s else 0.0,
        }


class TokenTimings:
    """Token clocks of a decoding task's batches: `add` one batch's start time, the times a
    streamer's `put` was called (the first put is the prompt, each later one a decode step's new
    tokens) and how many new tokens it produced; `metrics` gives ttft_ms, tpot_ms and
    output_tokens_per_s. Cleared by `reset` (the runner clears it before each timed pass series)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.ttft_ms: list[float] = []
        self.tpot_ms: list[float] = []
        self.generate_s = 0.0
        self.output_tokens = 0

    def add(self, start: float, puts: list[float], end: float, output_tokens: int) -> None:
        self.generate_s += end - start
        self.output_tokens += output_tokens
        if len(puts) >= 2:
            self.ttft_ms.append((puts[1] - start) * 1000)
        if len(puts) >= 3:
            self.tpot_ms.append((puts[-1] - puts[1]) * 1000 / (len(puts) - 2))

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.ttft_ms:
            out[TTFT] = statistics.median(self.ttft_ms)
        if self.tpot_ms:
            out[TPOT] = statistics.median(self.tpot_ms)
        if self.generate_s > 0:
            out[OUTPUT_TOKENS_PER_S] = self.output_tokens / self.generate_s
        return out


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class MemoryTracker:
    """Peak memory while active. CPU: peak RSS over `start_mb` (default: RSS on entry; the
    engine passes the RSS from before the model loaded, so the figure is model + activations).

    GPU: the larger of the torch allocator's peak and this process's memory per pynvml.
    """

    def __init__(self, device: str = "cpu", interval_s: float = 0.005, start_mb: float | None = None):
        self.device = device
        self.interval_s = interval_s
        self._given_start = start_mb
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "MemoryTracker":
        self.peak_mb = rss_mb()
        self.start_mb = self.peak_mb if self._given_start is None else self._given_start
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())

    def peak_growth_mb(self) -> float:
        if self.device == "cuda":
            return gpu_peak_mb()
        return max(self.peak_mb - self.start_mb, 0.0)


def gpu_peak_mb() -> float:
    import os

    import torch

    allocator_peak = torch.cuda.max_memory_allocated() / 2**20
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory]
        nvml_mb = (mine[0] / 2**20) if mine else 0.0
    except Exception:  # NVML absent or not permitted in a container: allocator peak only
        nvml_mb = 0.0
    return max(allocator_peak, nvml_mb)


def pin_threads(cpus: int) -> None:
    """Pin torch's intra- and inter-op pools to the trial's CPU share."""
    import torch

    torch.set_num_threads(cpus)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # can only be set once per process, before any parallel work
        pass


def relative_to(report, baseline, confidence: float = 0.95) -> dict[str, float]:
    """relative_metrics of two TrialReports, plus rouge_drop_pct's paired-bootstrap interval over
    the documents both evaluated (same ids), at `confidence` (0.5: the point estimate alone), and
    for generative tasks agreement_rougeL with the baseline's own outputs on those documents."""
    from infersweep.trials.stats import paired_drop

    out = relative_metrics(report.metrics, baseline.metrics)
    out.update(agreement(report, baseline))
    base_scores, trial_scores = paired_scores(report, baseline)
    if trial_scores:
        out.update(paired_drop(base_scores, trial_scores, confidence).as_metrics(ROUGE_DROP))
    return out


def agreement(report, baseline) -> dict[str, float]:
    """{agreement_rougeL: mean ROUGE-L F1 of the report's outputs against the baseline's for the
    documents both evaluated (same ids)}, or {} where either report kept no outputs (the extractive
    task, or reports written before outputs were kept)."""
    from infersweep.trials.quality import agreement_per_document

    if not report.outputs or not baseline.outputs:
        return {}
    theirs = dict(zip(baseline.document_ids, baseline.outputs))
    pairs = [(out, theirs[doc]) for doc, out in zip(report.document_ids, report.outputs) if doc in theirs]
    if not pairs:
        return {}
    scores = agreement_per_document([p[0] for p in pairs], [p[1] for p in pairs])
    return {AGREEMENT: sum(scores) / len(scores)}


def paired_scores(report, baseline, rouge_type: str = ROUGE_LSUM) -> tuple[list[float], list[float]]:
    """(baseline's, report's) per-document scores on the documents both have: the baseline's own
    slice, and the documents sequential evaluation added, whose baseline scores the report carries
    (`reference_per_document`). Empty for reports from before per-document scores."""
    mine = report.per_document.get(rouge_type)
    theirs = dict(zip(baseline.document_ids, baseline.per_document.get(rouge_type) or []))
    theirs.update(zip(report.reference_document_ids, report.reference_per_document.get(rouge_type) or []))
    if not mine or not theirs:
        return [], []
    # in document-id order: the bootstrap's resamples then do not depend on the order documents
    # were evaluated in (a sequentially extended trial and a plain one of that size agree)
    pairs = sorted((doc, theirs[doc], mine[i]) for i, doc in enumerate(report.document_ids) if doc in theirs)
    return [b for _, b, _ in pairs], [t for _, _, t in pairs]


def relative_metrics(metrics: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """speedup, rouge_drop_pct and memory_reduction_pct of `metrics` against `baseline`."""
    out: dict[str, float] = {}
    if metrics.get(LATENCY_PER_SAMPLE) and baseline.get(LATENCY_PER_SAMPLE):
        out[SPEEDUP] = baseline[LATENCY_PER_SAMPLE] / metrics[LATENCY_PER_SAMPLE]
    if baseline.get(ROUGE_LSUM) and ROUGE_LSUM in metrics:
        out[ROUGE_DROP] = 100 * (baseline[ROUGE_LSUM] - metrics[ROUGE_LSUM]) / baseline[ROUGE_LSUM]
    if baseline.get(PEAK_MEMORY) and PEAK_MEMORY in metrics:
        out[MEMORY_REDUCTION] = 100 * (baseline[PEAK_MEMORY] - metrics[PEAK_MEMORY]) / baseline[PEAK_MEMORY]
    return out
