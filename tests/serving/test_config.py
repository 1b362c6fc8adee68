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
