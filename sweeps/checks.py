"""The checks a launch makes before anything starts. `validate` and `launch` run the same ones.

Each failure names the sweep-file key that is wrong and the fix; nothing (Ray, MLflow, a folder)
has been created when one fails.
"""
from __future__ import annotations

import dataclasses

from infersweep.sweeps.spec import SweepSpec, SweepSpecError
from infersweep.trials.measure import ROUGE_DROP

__all__ = ["declared_hardware", "preflight"]


def preflight(sweep: SweepSpec) -> list[str]:
    """Raise SweepSpecError for the first thing that would stop the launch; return warnings."""
    warnings: list[str] = []
    _check_model(sweep)
    warnings += _check_dataset(sweep)
    _check_resources(sweep)
    _check_baseline(sweep)
    _check_space(sweep)
    return warnings + _check_document_budget(sweep)


#: the spread of per-document ROUGE-Lsum differences between a variant and its baseline, relative
#: to the baseline's mean, for a variant that changes many summaries: 3.6-11.5% (median ~4.5%)
#: over the quickstart's variants on the 36 bundled documents (AMD EPYC, 2026-11-30)
TYPICAL_PAIRED_SPREAD_PCT = 6.0


def _check_document_budget(sweep: SweepSpec) -> list[str]:
    """A quality bound the interval cannot resolve with this many documents: said, not refused
    (variants that change few summaries are still decided)."""
    import math
    import statistics

    from infersweep.sweeps.constraints import parse_constraint

    if sweep.confidence <= 0.5:
        return []
    z = statistics.NormalDist().inv_cdf(0.5 + sweep.confidence / 2)
    documents = _dataset_size(sweep)
    halfwidth = z * TYPICAL_PAIRED_SPREAD_PCT / math.sqrt(documents)
    notes = []
    for text in sweep.constraints:
        metric, _, bound = parse_constraint(text)
        if metric == ROUGE_DROP and halfwidth > abs(bound):
            needed = math.ceil((z * TYPICAL_PAIRED_SPREAD_PCT / abs(bound)) ** 2)
            notes.append(f"{text!r} at {sweep.confidence:.0%} confidence: on {documents} documents a variant "
                         f"that changes many summaries gets an interval of about ±{halfwidth:.1f}% and stays "
                         f"undecided; about {needed} documents decide it (dataset.n), or lower `confidence`")
    return notes


def _dataset_size(sweep: SweepSpec) -> int:
    from infersweep.trials.data import HF_PREFIX, load_examples

    if sweep.dataset.path.startswith(HF_PREFIX):
        return sweep.dataset.n
    examples = load_examples(sweep.dataset.path, sweep.dataset.document_field, sweep.dataset.summary_field)
    return min(sweep.dataset.n, len(examples))


#: Ray's accelerator type names (ray.util.accelerators) -> CUDA compute capability
COMPUTE_CAPABILITY = {"V100": (7, 0), "T4": (7, 5), "A10G": (8, 6), "L4": (8, 9), "A100": (8, 0), "A10": (8, 6),
                      "L40S": (8, 9), "H100": (9, 0), "H200": (9, 0), "B200": (10, 0), "P100": (6, 0), "P4": (6, 1)}


def declared_hardware(sweep: SweepSpec):
    """The hardware the trials will run on: this machine, or the GPU the sweep declares when the
    driver has none (a laptop launching onto a GPU cluster)."""
    from infersweep.trials.hardware import detect

    local = detect()
    if sweep.trial.device == "cpu" or local.cuda_available:
        return local
    accelerator = sweep.resources.accelerator_type or ""
    return dataclasses.replace(
        local, cuda_available=True, gpu_count=max(1, int(sweep.resources.gpu)),
        gpu_name=accelerator or "declared GPU",
        # a known accelerator type's generation decides what runs (TensorRT needs 7.5); unknown
        # until a worker reports otherwise: assume a current GPU
        gpu_compute_capability=COMPUTE_CAPABILITY.get(accelerator.upper(), (8, 0)))


def _check_model(sweep: SweepSpec) -> None:
    from infersweep.trials.models import ModelNotFound, check_model

    try:
        check_model(sweep.model)
    except ModelNotFound as exc:
        raise SweepSpecError(f"model: {exc}") from None


def _check_dataset(sweep: SweepSpec) -> list[str]:
    from infersweep.trials.data import HF_PREFIX, DatasetError, load_examples

    data = sweep.dataset
    if data.path.startswith(HF_PREFIX):  # loaded (and downloaded) by the workers
        return []
    try:
        examples = load_examples(data.path, data.document_field, data.summary_field)
    except DatasetError as exc:
        raise SweepSpecError(f"dataset.path: {exc}") from None
    if data.n > len(examples):
        return [f"dataset.n is {data.n} but {data.path} has {len(examples)} examples: "
                f"each trial evaluates all {len(examples)}"]
    return []


def _check_resources(sweep: SweepSpec) -> None:
    if sweep.trial.device == "cuda" and sweep.resources.gpu <= 0:
        raise SweepSpecError("resources.gpu: trial.device is cuda but resources.gpu is 0; "
                             "set resources.gpu (e.g. 1) or trial.device: cpu")


def _check_space(sweep: SweepSpec) -> None:
    """SweepSpecError when no combination of the space can run on the trials' device."""
    from infersweep.sweeps.space import feasible_space

    feasible_space(sweep)


def _check_baseline(sweep: SweepSpec) -> None:
    from infersweep.trials.feasibility import check

    spec = sweep.baseline_spec()
    reason = check(spec, declared_hardware(sweep))
    if reason:
        raise SweepSpecError(f"baseline ({spec.short_name()} on {spec.device}) cannot run: {reason}. "
                             f"Change `baseline:` (default: fp32 on torch) or `trial.device`")
