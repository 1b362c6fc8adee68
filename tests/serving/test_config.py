import pytest
from pydantic import ValidationError

from infersweep.serving.config import ServeConfig, batching_kind


def test_autoscaling_needs_both_bounds_in_order():
    assert ServeConfig(min_replicas=1, max_replicas=3).autoscaling
    assert not ServeConfig().autoscaling
    for bad in ({"min_replicas": 1}, {"min_replicas": 3, "max_replicas": 2}, {"max_batch_size": 0},
                {"unknown": 1}):
        with pytest.raises(ValidationError):
            ServeConfig(**bad)


def test_the_batching_kind_is_said_per_task():
    assert batching_kind("extractive") == "request-level dynamic batching"
    assert "iteration-level batching is not available" in batching_kind("causal")


def test_replicas_default_to_one_cpu_each_on_a_cpu_and_follow_what_is_given():
    from infersweep.serving.config import replica_layout

    assert replica_layout(2, "cpu", None, None) == (2, 1.0)  # the trial's 2 CPUs as two 1-CPU replicas
    assert replica_layout(1, "cpu", None, None) == (1, 1.0)
    assert replica_layout(0.5, "cpu", None, None) == (1, 1.0)
    assert replica_layout(2, "cpu", 1, None) == (1, 2)  # --replicas 1: the trial's share, as a trial runs
    assert replica_layout(2, "cpu", None, 2) == (1, 2)  # --cpus 2: one replica of 2 CPUs
    assert replica_layout(4, "cpu", 3, 1) == (3, 1)
    assert replica_layout(2, "cuda", None, None) == (1, 2)  # one replica per GPU
