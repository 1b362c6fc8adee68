"""A known sweep, written by hand: a baseline, eight trials that ran, four that did not."""
from __future__ import annotations

import pytest

from infersweep.sweeps.pareto import TrialRow
from infersweep.trials.measure import relative_metrics

OBJECTIVES = [("latency_ms_per_sample", "min"), ("peak_memory_mb", "min"), ("rougeLsum", "max")]
CONSTRAINTS = ["rouge_drop_pct <= 1.0"]
BASE = {"latency_ms_per_sample": 250.0, "rougeLsum": 41.24, "peak_memory_mb": 346.0}
# trial_id: (runtime, precision, pruning, ratio, batch, latency ms/sample, ROUGE-Lsum, peak MiB)
RAN = {
    "base": ("torch", "fp32", "none", 0.0, 4, 250.0, 41.24, 346.0),
    "t-int8-b8": ("torch", "int8_dynamic", "none", 0.0, 8, 110.0, 41.0, 180.0),
    "t-int8-p03-b8": ("torch", "int8_dynamic", "unstructured", 0.3, 8, 105.0, 39.5, 175.0),
    "t-fp32-b8": ("torch", "fp32", "none", 0.0, 8, 200.0, 41.3, 400.0),
    "ort-fp32-b8": ("onnxruntime", "fp32", "none", 0.0, 8, 150.0, 41.24, 300.0),
    "ort-int8-b8": ("onnxruntime", "int8_dynamic", "none", 0.0, 8, 90.0, 40.9, 150.0),
    "t-fp32-p05-b1": ("torch", "fp32", "unstructured", 0.5, 1, 300.0, 38.0, 350.0),
    "t-int8-b1": ("torch", "int8_dynamic", "none", 0.0, 1, 130.0, 41.0, 170.0),
}
FP16_REASON = "fp16 needs a CUDA device; on a CPU use bf16 or int8_dynamic"
NOT_RUN = {
    "t-fp16-b1": ("infeasible", "torch", "fp16", 1, FP16_REASON),
    "t-fp16-b8": ("infeasible", "torch", "fp16", 8, FP16_REASON),
    "t-fp32-b64": ("oom", "torch", "fp32", 64, "CUDA out of memory: tried to allocate 2.00 GiB"),
    "ort-int4-b8": ("failed", "onnxruntime", "int4_weight", 8, "RuntimeError: <no kernel> for MatMulNBits & co"),
}
# non-dominated on (latency min, memory min, ROUGE max) among trials with a ROUGE drop <= 1 %
EXPECTED_FRONTIER = {"t-fp32-b8", "ort-fp32-b8", "ort-int8-b8", "t-int8-b8", "t-int8-b1"}


def knobs(runtime, precision, pruning="none", ratio=0.0, batch=1):
    return {"precision": precision, "pruning": pruning, "prune_ratio": ratio, "runtime": runtime,
            "batch_size": batch, "device": "cpu"}


def known_rows() -> list[TrialRow]:
    rows = []
    for tid, (runtime, precision, pruning, ratio, batch, lat, rouge, mem) in RAN.items():
        metrics = {"latency_ms_per_sample": lat, "latency_ms_p95": lat * batch * 1.2,
                   "throughput_samples_per_s": 1000 / lat, "rougeLsum": rouge, "rouge1": rouge + 3,
                   "rouge2": rouge / 2, "peak_memory_mb": mem, "model_size_mb": 87.0 if "fp32" in precision else 23.0}
        metrics.update(relative_metrics(metrics, BASE))
        rows.append(TrialRow(tid, "ok", knobs(runtime, precision, pruning, ratio, batch), metrics, "",
                             baseline=tid == "base"))
    for tid, (status, runtime, precision, batch, reason) in NOT_RUN.items():
        rows.append(TrialRow(tid, status, knobs(runtime, precision, batch=batch), {}, reason))
    return rows


@pytest.fixture
def rows() -> list[TrialRow]:
    return known_rows()
