"""Paired statistics for verdicts: the ROUGE drop against the baseline with a bootstrap interval,
and the confidence rule that turns an interval into passed / failed / undecided.

Pure numpy and deterministic (fixed seed): the same per-document scores always give the same
interval, so a resumed or re-logged sweep reports the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "Verdict", "DEFAULT_RESAMPLES", "paired_drop", "verdict"]

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
#: resamples per vectorized block: bounds memory at ~block x n indices
_BLOCK = 500


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float
    confidence: float
    n: int

    def as_metrics(self, name: str) -> dict[str, float]:
        return {name: self.point, f"{name}_ci_low": self.low, f"{name}_ci_high": self.high}


def paired_drop(baseline: list[float] | np.ndarray, trial: list[float] | np.ndarray,
                confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED) -> Interval:
    """Relative drop of the mean score in percent, 100 * (mean(b) - mean(t)) / mean(b), with a
    paired percentile bootstrap interval: documents are resampled together, so the interval
    reflects how the two variants differ on the same documents, not how documents differ."""
    base = np.asarray(baseline, dtype=np.float64)
    other = np.asarray(trial, dtype=np.float64)
    if base.shape != other.shape or base.ndim != 1:
        raise ValueError(f"paired scores need equal 1-d shapes, got {base.shape} and {other.shape}")
    if base.size == 0:
        raise ValueError("no documents to compare")
    point = _drop(base.mean(), other.mean())
    if base.size == 1 or confidence <= 0.5:
        return Interval(point, point, point, confidence, int(base.size))
    rng = np.random.default_rng(seed)
    drops = []
    for start in range(0, resamples, _BLOCK):
        idx = rng.integers(0, base.size, size=(min(_BLOCK, resamples - start), base.size))
        drops.append(_drop(base[idx].mean(axis=1), other[idx].mean(axis=1)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(drops), [tail, 100 - tail])
    return Interval(point, float(low), float(high), confidence, int(base.size))


def _drop(base_mean, trial_mean):
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = 100.0 * (base_mean - trial_mean) / base_mean
    return np.where(base_mean > 0, drop, 0.0) if isinstance(drop, np.ndarray) else \
        (float(drop) if base_mean > 0 else 0.0)


@dataclass(frozen=True)
class Verdict:
    status: str  # "passed" | "failed" | "undecided"
    rule: str


def verdict(interval: Interval, op: str, bound: float) -> Verdict:
    """Does `metric op bound` hold at the interval's confidence? For `<=`/`<` the upper end must
    meet the bound (passed) and a lower end past it fails; anything between is undecided. A
    point estimate (confidence 0.5) decides on the point alone."""
    upper_is_worst = op in ("<=", "<")
    worst, best = (interval.high, interval.low) if upper_is_worst else (interval.low, interval.high)
    holds = _holds(worst, op, bound)
    cannot = not _holds(best, op, bound)
    rule = (f"{op} {bound:g} at {interval.confidence:.0%} confidence (paired bootstrap, n={interval.n})"
            if interval.confidence > 0.5 else f"{op} {bound:g} on the point estimate")
    if holds:
        return Verdict("passed", rule)
    if cannot or interval.confidence <= 0.5:
        return Verdict("failed", rule)
    return Verdict("undecided", rule)


def _holds(value: float, op: str, bound: float) -> bool:
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound, ">": value > bound}[op]
