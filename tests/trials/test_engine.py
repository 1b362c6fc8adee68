"""Trials end to end on the bundled model and data, and the seq2seq path on tiny models."""
import json

import pytest

from trials import TrialReport, TrialSpec, run_trial
from trials.measure import METRICS

EXPECTED = {"latency_ms_per_sample", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
            "throughput_samples_per_s", "peak_memory_mb", "model_size_mb", "rouge1", "rouge2", "rougeLsum"}


def test_extractive_trial_measures_everything(quick_spec, tmp_path):
    report = run_trial(quick_spec(), tmp_path)
    assert report.status == "ok", report.reason
    assert set(report.metrics) == EXPECTED
    assert set(report.metrics) <= set(METRICS)
    m = report.metrics
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"] <= m["latency_ms_p99"]
    assert m["model_size_mb"] > 50  # fp32 MiniLM is ~87 MB
    assert 5 < m["rougeLsum"] < 100
    assert len(report.sample_summaries) == 3 and all(report.sample_summaries)
    saved = TrialReport.from_json((tmp_path / "report.json").read_text())
    assert saved == report


def test_int8_trial_is_smaller_than_fp32(quick_spec, tmp_path):
    fp32 = run_trial(quick_spec(), tmp_path / "a")
    int8 = run_trial(quick_spec(precision="int8_dynamic"), tmp_path / "b")
    assert int8.status == "ok", int8.reason
    assert int8.metrics["model_size_mb"] < 0.8 * fp32.metrics["model_size_mb"]


def test_unstructured_pruning_report_is_honest(quick_spec, tmp_path):
    report = run_trial(quick_spec(pruning="unstructured", prune_ratio=0.3), tmp_path)
    assert report.status == "ok", report.reason
    assert report.artifact["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert any("unchanged" in note for note in report.notes)


def test_infeasible_trial_loads_nothing_and_is_recorded(quick_spec, tmp_path):
    report = run_trial(quick_spec(precision="fp16"), tmp_path)
    assert report.status == "infeasible"
    assert "CUDA" in report.reason
    assert report.metrics == {} and "load" not in report.phases_s
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "infeasible"


def test_an_error_becomes_failed_with_its_message(quick_spec, tmp_path):
    report = run_trial(quick_spec(model=str(tmp_path)), tmp_path / "t")  # a dir with no config.json
    assert report.status == "failed"
    assert "config.json" in report.reason


@pytest.mark.parametrize("fixture", ["tiny_t5_dir", "tiny_bart_dir"])
def test_seq2seq_trial_with_tiny_model(request, fixture, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    spec = TrialSpec(model=str(model_dir), task="seq2seq", n=3, batch_size=2, warmup=0, repeats=1, cpus=1,
                     generation={"num_beams": 2, "max_new_tokens": 8, "no_repeat_ngram_size": 2})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert set(report.metrics) == EXPECTED
    assert len(report.sample_summaries) == 3


def test_seq2seq_int8_on_tiny_t5(tiny_t5_dir, tmp_path):
    spec = TrialSpec(model=str(tiny_t5_dir), task="seq2seq", n=2, precision="int8_dynamic", warmup=0,
                     repeats=1, cpus=1, generation={"num_beams": 1, "max_new_tokens": 4})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
