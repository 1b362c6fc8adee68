"""Serving memory is measured in a fresh process that holds only the variant (trials.serving): it
orders variants as their weights predict, and the trial's own preparation is a separate figure."""
from __future__ import annotations

import pytest

from infersweep.trials import TrialSpec
from infersweep.trials.runner import run_trial
from infersweep.trials.measure import MODEL_SIZE, PEAK_MEMORY, PREPARE_PEAK_MEMORY

#: small batches of sentences: activations (a few MiB) stay well below the weights' differences (~20 MiB)
SMALL = dict(n=6, batch_size=1, warmup=1, repeats=1, extractive=dict(micro_batch_sentences=8),
             timing=dict(min_passes=1, min_batches=1, max_seconds=2))
VARIANTS = {
    "torch fp32": dict(),
    "torch int8_dynamic": dict(precision="int8_dynamic"),
    "onnxruntime int8_dynamic": dict(runtime="onnxruntime", precision="int8_dynamic"),
    "torch fp32 structured 0.5": dict(pruning="structured", prune_ratio=0.5, structured=dict(importance="weight")),
}


@pytest.fixture(scope="module")
def trial_dirs(tmp_path_factory):
    out = tmp_path_factory.mktemp("serving")
    return {name: out / name.replace(" ", "-") for name in VARIANTS}


@pytest.fixture(scope="module")
def reports(trial_dirs, cache_dir):
    found = {}
    for name, knobs in VARIANTS.items():
        report = run_trial(TrialSpec(**SMALL, **knobs), trial_dirs[name])
        assert report.status == "ok", report.reason
        found[name] = report
    return found


def test_serving_memory_orders_variants_as_their_weights_predict(reports):
    for figure in ("serving_peak_mb", "loaded_mb"):
        memory = {name: r.artifact["serving_memory"][figure] for name, r in reports.items()}
        assert memory["torch fp32"] > memory["torch int8_dynamic"] > memory["onnxruntime int8_dynamic"], memory
        assert memory["torch fp32 structured 0.5"] < memory["torch fp32"], memory


def test_serving_memory_holds_at_least_the_weights_and_excludes_preparation(reports):
    for name, report in reports.items():
        serving = report.artifact["serving_memory"]
        # the engine's weights are in memory while it serves (ORT may keep a prepacked copy: not less)
        assert serving["loaded_mb"] >= 0.8 * report.metrics[MODEL_SIZE], (name, serving)
        assert report.metrics[PEAK_MEMORY] == serving["serving_peak_mb"] >= serving["loaded_mb"]
        assert report.metrics[PREPARE_PEAK_MEMORY] > 0
    # exporting and quantizing in the trial process costs more than serving the result
    ort = reports["onnxruntime int8_dynamic"]
    assert ort.metrics[PREPARE_PEAK_MEMORY] > ort.metrics[PEAK_MEMORY] or ort.artifact.get("cache") == "hit"


def test_the_variant_written_for_serving_is_removed(reports, trial_dirs):
    for directory in trial_dirs.values():
        assert (directory / "report.json").exists() and not (directory / "variant").exists()
