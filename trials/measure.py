"""Latency, throughput and memory measurement. Metric names live here and only here."""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDef:
    unit: str
    goal: str  # "min" or "max": which direction is better
    description: str


METRICS: dict[str, MetricDef] = {
    "latency_ms_per_sample": MetricDef("ms", "min", "median batch latency / documents per batch"),
    "latency_ms_p50": MetricDef("ms", "min", "median latency of one batch"),
    "latency_ms_p95": MetricDef("ms", "min", "95th percentile latency of one batch"),
    "latency_ms_p99": MetricDef("ms", "min", "99th percentile latency of one batch"),
    "throughput_samples_per_s": MetricDef("samples/s", "max", "documents per second over the timed passes"),
    "peak_memory_mb": MetricDef("MiB", "min", "serving memory: peak RSS (CPU) or NVML process memory (GPU) of a fresh "
                                              "process that loads only the variant and summarizes the evaluation "
                                              "slice, over that process's memory before loading (trials.serving)"),
    "prepare_peak_memory_mb": MetricDef("MiB", "min", "peak memory growth of the trial process while loading, "
                                                      "pruning and preparing the variant (export, quantization)"),
    "model_size_mb": MetricDef("MiB", "min", "size of the optimized model artifact on disk"),
    "rouge1": MetricDef("F1 x100", "max", "ROUGE-1 F1, stemmed"),
    "rouge2": MetricDef("F1 x100", "max", "ROUGE-2 F1, stemmed"),
    "rougeLsum": MetricDef("F1 x100", "max", "ROUGE-Lsum F1, stemmed, sentences on new lines"),
    "rouge_drop_pct": MetricDef("%", "min", "relative ROUGE-Lsum drop against the baseline"),
    "rouge_drop_pct_ci_low": MetricDef("%", "min", "lower end of rouge_drop_pct's paired-bootstrap interval "
                                                   "(the sweep's confidence, 95% by default)"),
    "rouge_drop_pct_ci_high": MetricDef("%", "min", "upper end of rouge_drop_pct's paired-bootstrap interval; "
                                                    "a `rouge_drop_pct <= X` constraint holds when this meets X"),
    "speedup": MetricDef("x", "max", "baseline latency per sample / this latency per sample"),
    "memory_reduction_pct": MetricDef("%", "max", "relative peak memory reduction against the baseline"),
}
LATENCY_PER_SAMPLE = "latency_ms_per_sample"
PEAK_MEMORY = "peak_memory_mb"
PREPARE_PEAK_MEMORY = "prepare_peak_memory_mb"
MODEL_SIZE = "model_size_mb"
ROUGE_LSUM = "rougeLsum"
ROUGE_DROP = "rouge_drop_pct"
SPEEDUP = "speedup"
MEMORY_REDUCTION = "memory_reduction_pct"


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
    the documents both evaluated (same ids), at `confidence` (0.5: the point estimate alone)."""
    from trials.stats import paired_drop

    out = relative_metrics(report.metrics, baseline.metrics)
    mine, theirs = report.per_document.get(ROUGE_LSUM), baseline.per_document.get(ROUGE_LSUM)
    if not mine or not theirs:  # a report from before per-document scores: no interval
        return out
    position = {doc: i for i, doc in enumerate(baseline.document_ids)}
    pairs = [(theirs[position[doc]], mine[i]) for i, doc in enumerate(report.document_ids) if doc in position]
    if pairs:
        base_scores, trial_scores = zip(*pairs)
        out.update(paired_drop(base_scores, trial_scores, confidence).as_metrics(ROUGE_DROP))
    return out


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
