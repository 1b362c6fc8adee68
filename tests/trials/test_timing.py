"""Latency until stable: the median's interval, partial batches kept out, the stop rule."""
import pytest

from infersweep.trials.timing import LatencyRun, StabilityRule, median_interval


def test_median_interval_is_order_statistics():
    values = list(range(1, 101))  # median 50.5; 95%: ranks 50 -+ 1.96*sqrt(100)/2 = 40.2..59.8
    low, high = median_interval([float(v) for v in values])
    assert (low, high) == (41.0, 61.0)


def test_partial_batches_are_timed_but_not_counted():
    run = LatencyRun(full_size=8)
    for _ in range(4):
        run.add(80.0, 8)  # 10 ms per document
        run.add(60.0, 3)  # a partial last batch: 20 ms per document
    assert run.per_sample() == [10.0] * 4
    assert run.metrics()["latency_ms_per_sample"] == 10.0
    assert run.metrics()["latency_ms_p99"] == 80.0
    assert run.summary()["timed_batches"] == 8 and run.summary()["counted_batches"] == 4


def test_all_partial_when_no_batch_is_full():
    run = LatencyRun(full_size=16)
    run.add(30.0, 3)
    assert run.per_sample() == [10.0]


def test_stops_when_stable_and_not_before_the_minimum():
    run = LatencyRun(full_size=1, rule=StabilityRule(min_batches=8, rel_halfwidth_pct=5, max_seconds=1e9))
    for _ in range(7):
        run.add(10.0, 1)
    assert not run.done()  # steady, but fewer than 8 batches
    run.add(10.0, 1)
    assert run.done() and run.summary()["stable"] and not run.summary()["noisy"]


def test_noisy_runs_stop_at_the_cap_and_say_so():
    run = LatencyRun(full_size=1, rule=StabilityRule(min_batches=2, rel_halfwidth_pct=1, max_seconds=0.0))
    for ms in (5.0, 50.0, 9.0, 30.0):
        run.add(ms, 1)
    assert run.done() and not run.stable()
    summary = run.summary()
    # mean 23.5, sample stdev sqrt(1297 / 3) = 20.79: CV 88.48%; median 19.5 with the 95%
    # interval of 4 values = (min, max) = (5, 50): +-30.5 / 19.5 = 156.41%
    assert summary["noisy"] and summary["cv_pct"] == 88.48
    assert summary["median_halfwidth_pct"] == 156.41


@pytest.mark.parametrize("values", [[10.0, 10.4, 9.8, 10.1, 9.9, 10.2, 10.0, 9.7, 10.3, 10.0]])
def test_spread_of_a_tight_run_is_small(values):
    run = LatencyRun(full_size=1)
    for v in values:
        run.add(v, 1)
    # median 10.0; 95% ranks 5 -+ 1.96 * sqrt(10) / 2 -> sorted[1] = 9.8 .. sorted[9] = 10.4:
    # the wider side, 0.4, is 4% of the median
    assert run.spread_pct() == pytest.approx(4.0)


def test_documents_of_different_lengths_are_not_noise():
    """At batch 1 a long and a short document alternate: per batch that is a 10x spread, per pass
    (the same work each time) it is none, and the run is stable after the minimum passes."""
    run = LatencyRun(full_size=1, rule=StabilityRule(min_batches=2, rel_halfwidth_pct=5, max_seconds=1e9,
                                                     min_passes=3))
    for done in range(3):
        run.add(100.0, 1)
        run.add(10.0, 1)
        run.end_pass()
        assert run.stable() == (done == 2)
    assert run.per_pass() == [55.0, 55.0, 55.0]
    assert run.metrics()["latency_ms_per_sample"] == 55.0
    assert run.summary()["passes"] == 3 and run.summary()["cv_pct"] == 0.0
