"""The paired bootstrap and the confidence rule, against cases worked out by hand."""
import numpy as np
import pytest

from infersweep.trials.stats import Interval, paired_drop, verdict


def test_two_documents_by_hand():
    # resampling 2 documents: (0,0) -> 0% drop, (1,1) -> (3-1)/3 = 66.7%, mixed -> (2-1)/2 = 50%
    # with probabilities 1/4, 1/4, 1/2: the 95% interval spans the extremes, the point is 50%
    interval = paired_drop([1.0, 3.0], [1.0, 1.0])
    assert interval.point == pytest.approx(50.0)
    assert interval.low == pytest.approx(0.0) and interval.high == pytest.approx(200 / 3)
    assert interval.n == 2


def test_identical_outputs_have_a_zero_width_interval():
    scores = np.linspace(10, 40, 30)
    interval = paired_drop(scores, scores)
    assert (interval.point, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_pairing_removes_document_variance():
    rng = np.random.default_rng(1)
    base = rng.uniform(10, 50, 200)  # documents differ a lot ...
    trial = base * 0.99  # ... but the variant loses exactly 1% on each
    interval = paired_drop(base, trial)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)


def test_same_seed_same_interval_and_more_documents_narrow_it():
    rng = np.random.default_rng(2)
    base = rng.uniform(10, 50, 400)
    trial = base + rng.normal(0, 3, 400)
    a, b = paired_drop(base, trial), paired_drop(base, trial)
    assert (a.low, a.high) == (b.low, b.high)
    small = paired_drop(base[:25], trial[:25])
    assert (a.high - a.low) < (small.high - small.low)


def test_shapes_must_pair():
    with pytest.raises(ValueError):
        paired_drop([1.0, 2.0], [1.0])


@pytest.mark.parametrize("low, high, status", [(-1.0, 0.5, "passed"), (1.5, 3.0, "failed"),
                                               (0.2, 1.8, "undecided"), (-0.5, 1.0, "passed")])
def test_confidence_rule_for_an_upper_bound(low, high, status):
    assert verdict(Interval((low + high) / 2, low, high, 0.95, 50), "<=", 1.0).status == status


def test_confidence_rule_for_a_lower_bound_and_the_point_estimate():
    assert verdict(Interval(31.0, 30.5, 31.5, 0.95, 50), ">=", 30.0).status == "passed"
    assert verdict(Interval(30.2, 29.5, 31.0, 0.95, 50), ">=", 30.0).status == "undecided"
    point = verdict(Interval(0.9, 0.9, 0.9, 0.5, 50), "<=", 1.0)
    assert point.status == "passed" and "point estimate" in point.rule
