"""Latency measured until stable: timed passes over the evaluation slice go on until the
confidence interval of the median per-document latency is within ±`rel_halfwidth_pct` of it (or
a time cap), never fewer than `min_passes` passes and `min_batches` full batches.

The statistic is per *pass* (the full batches' time over their documents): every pass does the
same work, so passes differ only by noise, whereas batches differ by their documents' lengths
(at batch 1 a long and a short article are not two samples of one latency). Partial (last)
batches are timed but kept out: a batch of 3 in a run of 8s is a different measurement.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field

from infersweep.trials.measure import LATENCY_PER_SAMPLE, percentile

__all__ = ["StabilityRule", "LatencyRun", "median_interval", "machine_state"]


@dataclass(frozen=True)
class StabilityRule:
    min_batches: int = 8
    rel_halfwidth_pct: float = 5.0
    max_seconds: float = 20.0
    confidence: float = 0.95
    min_passes: int = 3


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (binomial ranks, normal
    approximation): no assumption on the shape of latency distributions, which are skewed."""
    ordered = sorted(values)
    n = len(ordered)
    if n < 3:
        return ordered[0], ordered[-1]
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * math.sqrt(n) / 2
    low = max(int(math.floor(n / 2 - half)), 0)
    high = min(int(math.ceil(n / 2 + half)), n - 1)
    return ordered[low], ordered[high]


@dataclass
class LatencyRun:
    """The timed batches of one trial and the verdict on their stability."""

    full_size: int
    rule: StabilityRule = field(default_factory=StabilityRule)
    batch_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    pass_ends: list[int] = field(default_factory=list)  # batch count at the end of each pass

    def add(self, ms: float, size: int) -> None:
        self.batch_ms.append(ms)
        self.batch_sizes.append(size)

    def end_pass(self) -> None:
        self.pass_ends.append(len(self.batch_ms))

    def per_pass(self) -> list[float]:
        """Each finished pass's per-document latency over its counted batches."""
        values, start = [], 0
        for end in self.pass_ends:
            pairs = self._select(self.batch_ms[start:end], self.batch_sizes[start:end])
            if pairs:
                values.append(sum(ms for ms, _ in pairs) / sum(n for _, n in pairs))
            start = end
        return values

    def _select(self, batch_ms: list[float], sizes: list[int]) -> list[tuple[float, int]]:
        """Full batches only; all of them when none is full (fewer documents than a batch)."""
        full = [(ms, n) for ms, n in zip(batch_ms, sizes) if n == self.full_size]
        return full or list(zip(batch_ms, sizes))

    def _counted(self) -> tuple[list[float], list[int]]:
        pairs = self._select(self.batch_ms, self.batch_sizes)
        return [ms for ms, _ in pairs], [n for _, n in pairs]

    def _statistic(self) -> list[float]:
        """Per-pass values once passes are marked; per-batch values before (one pass or none)."""
        return self.per_pass() if len(self.pass_ends) >= 2 else self.per_sample()

    def per_sample(self) -> list[float]:
        ms, sizes = self._counted()
        return [m / n for m, n in zip(ms, sizes)]

    def spread_pct(self) -> float:
        """Half-width of the median's interval relative to the median, in percent."""
        values = self._statistic()
        if len(values) < 2:
            return math.inf
        low, high = median_interval(values, self.rule.confidence)
        median = statistics.median(values)
        return 100 * max(median - low, high - median) / median if median > 0 else math.inf

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def stable(self) -> bool:
        enough_passes = not self.pass_ends or len(self.pass_ends) >= self.rule.min_passes
        return (enough_passes and len(self.per_sample()) >= self.rule.min_batches
                and self.spread_pct() <= self.rule.rel_halfwidth_pct)

    def done(self) -> bool:
        return self.stable() or self.elapsed_s() >= self.rule.max_seconds

    def metrics(self) -> dict[str, float]:
        ms, sizes = self._counted()
        total_s = sum(self.batch_ms) / 1000
        return {
            LATENCY_PER_SAMPLE: statistics.median(self._statistic()),
            "latency_ms_p50": percentile(ms, 50),
            "latency_ms_p95": percentile(ms, 95),
            "latency_ms_p99": percentile(ms, 99),
            "throughput_samples_per_s": sum(self.batch_sizes) / total_s if total_s else 0.0,
        }

    def summary(self) -> dict:
        """What report.json keeps: the raw batch times and how sure the median is."""
        values = self._statistic()
        mean = statistics.fmean(values)
        cv = 100 * statistics.stdev(values) / mean if len(values) > 1 and mean > 0 else 0.0
        return {
            "batch_ms": [round(v, 3) for v in self.batch_ms],
            "batch_sizes": list(self.batch_sizes),
            "timed_batches": len(self.batch_ms),
            "counted_batches": len(self.per_sample()),
            "passes": len(self.pass_ends),
            "pass_ms_per_sample": [round(v, 4) for v in self.per_pass()],
            "cv_pct": round(cv, 2),
            "median_halfwidth_pct": round(self.spread_pct(), 2) if len(values) > 1 else None,
            "rule": (f"median within ±{self.rule.rel_halfwidth_pct:g}% at {self.rule.confidence:.0%}, "
                     f">= {self.rule.min_batches} full batches, cap {self.rule.max_seconds:g} s"),
            "stable": self.stable(),
            "noisy": not self.stable(),
            "seconds": round(self.elapsed_s(), 3),
        }


def machine_state() -> dict[str, float]:
    """Load average and CPU clock: what a latency was measured under."""
    state: dict[str, float] = {}
    try:
        state["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq and freq.current:
            state["cpu_mhz"] = round(freq.current, 0)
    except Exception:  # not every VM exposes a clock
        pass
    return state
