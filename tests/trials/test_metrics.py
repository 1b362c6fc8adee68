"""The metric catalog: every metric a trial produces is in it, tables format from it, and a
TrialReport refuses a name that is not in it."""
import math

import pytest
from pydantic import ValidationError

from infersweep.trials import measure
from infersweep.trials.measure import (FRONTIER_METRICS, METRICS, MISSING, ROUGE_DROP, SPEEDUP, LatencyTracker, interval_of,
                            metric_text, relative_metrics)
from infersweep.trials.quality import ROUGE_TYPES
from infersweep.trials.spec import TrialReport, TrialSpec
from infersweep.trials.stats import Interval
from infersweep.trials.timing import LatencyRun

NAME_CONSTANTS = ["LATENCY_PER_SAMPLE", "LATENCY_P95", "THROUGHPUT", "PEAK_MEMORY", "MODEL_SIZE", "ROUGE1",
                  "ROUGE2", "ROUGE_LSUM", "ROUGE_DROP", "SPEEDUP", "MEMORY_REDUCTION"]


@pytest.mark.parametrize("constant", NAME_CONSTANTS)
def test_every_name_constant_is_a_metric(constant):
    assert getattr(measure, constant) in METRICS


def test_the_frontier_shows_known_metrics_once():
    assert set(FRONTIER_METRICS) <= set(METRICS)
    assert len(set(FRONTIER_METRICS)) == len(FRONTIER_METRICS)


def test_every_metric_a_trial_produces_is_in_the_catalog():
    clock = LatencyTracker()
    clock.batch_ms, clock.batch_sizes = [10.0, 12.0], [2, 2]
    run = LatencyRun(full_size=2)
    for ms in (10.0, 12.0, 11.0):
        run.add(ms, 2)
    base = {"latency_ms_per_sample": 5.0, "rougeLsum": 30.0, "peak_memory_mb": 100.0}
    produced = {*clock.metrics(), *run.metrics(), *ROUGE_TYPES, *relative_metrics(base, base),
                *Interval(0.5, 0.1, 0.9, 0.95, 10).as_metrics(ROUGE_DROP)}
    assert produced - set(METRICS) == set()


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_has_a_label_and_a_format_that_formats(name):
    metric = METRICS[name]
    assert metric.label.strip() and metric.goal in ("min", "max")
    assert metric.text(1.5) != MISSING and metric.text(None) == MISSING and metric.text(math.nan) == MISSING


def test_a_value_with_its_interval():
    metrics = {ROUGE_DROP: -1.047, "rouge_drop_pct_ci_low": -3.31, "rouge_drop_pct_ci_high": 0.04}
    assert metric_text(ROUGE_DROP, metrics) == "-1.05% [-3.3, 0.0]"
    assert metric_text(ROUGE_DROP, metrics, interval_sep="\n") == "-1.05%\n[-3.3, 0.0]"
    assert metric_text(ROUGE_DROP, {ROUGE_DROP: 0.8244}) == "0.82%"  # no interval measured
    assert metric_text(SPEEDUP, {SPEEDUP: 2.777}) == "2.78×"
    assert metric_text(SPEEDUP, {}) == MISSING


def test_which_metrics_have_an_interval():
    assert interval_of(ROUGE_DROP) == ("rouge_drop_pct_ci_low", "rouge_drop_pct_ci_high")
    assert interval_of(SPEEDUP) == ()


def test_a_report_with_an_unknown_metric_is_refused_naming_the_valid_ones():
    with pytest.raises(ValidationError) as caught:
        TrialReport(spec=TrialSpec(), status="ok", metrics={"latency_ms_per_sample": 1.0, "rouge_lsum": 30.0})
    message = str(caught.value)
    assert "unknown metric 'rouge_lsum'" in message
    assert "valid: " + ", ".join(METRICS) in message


def test_a_report_with_every_known_metric_round_trips():
    report = TrialReport(spec=TrialSpec(), status="ok", metrics={name: 1.0 for name in METRICS})
    assert TrialReport.from_json(report.to_json()).metrics == report.metrics


def test_a_saved_report_with_an_unknown_metric_is_refused():
    text = TrialReport(spec=TrialSpec(), status="ok", metrics={"speedup": 2.0}).to_json()
    with pytest.raises(ValidationError, match="unknown metric 'speedup_x'"):
        TrialReport.from_json(text.replace('"speedup"', '"speedup_x"'))
