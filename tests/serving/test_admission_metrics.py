"""The bounded queue refuses with 503 + Retry-After; the metrics are Prometheus text a parser reads."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infersweep.serving.admission import Admission, Overloaded
from infersweep.serving.metrics import ServingMetrics


def test_the_queue_admits_up_to_its_capacity_then_refuses_until_one_leaves():
    depths = []
    admission = Admission(2, retry_after_s=1.5, on_change=depths.append)
    first, second = admission.admit(), admission.admit()
    with pytest.raises(Overloaded) as refused:
        admission.admit()
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "2"}
    assert "at capacity (2 requests" in str(refused.value)
    with first:
        pass
    with admission.admit():
        assert admission.depth == 2
    with second:
        pass
    assert admission.depth == 0 and depths == [1, 2, 1, 2, 1, 0]


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Admission(0)


def _families(metrics: ServingMetrics) -> dict:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_metrics_parse_and_count_requests_errors_batches_and_depth():
    metrics = ServingMetrics()
    metrics.answered(200, 0.12)
    metrics.answered(400, 0.001, "empty")
    metrics.answered(503, 0.0005, "overloaded")
    metrics.batch(documents=8, engine_calls=1)
    metrics.batch(documents=3, engine_calls=1)
    metrics.queue_depth.set(4)
    families = _families(metrics)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("infersweep_requests_total", (("code", "200"),))] == 1
    assert samples[("infersweep_requests_total", (("code", "503"),))] == 1
    assert samples[("infersweep_errors_total", (("reason", "empty"),))] == 1
    assert samples[("infersweep_request_latency_seconds_count", ())] == 3
    assert samples[("infersweep_request_latency_seconds_bucket", (("le", "0.25"),))] == 3
    assert samples[("infersweep_request_latency_seconds_bucket", (("le", "0.1"),))] == 2
    assert samples[("infersweep_batch_size_documents_sum", ())] == 11
    assert samples[("infersweep_batch_size_documents_count", ())] == 2
    assert samples[("infersweep_engine_calls_total", ())] == 2
    assert samples[("infersweep_queue_depth", ())] == 4
    assert families["infersweep_request_latency_seconds"].type == "histogram"


def test_each_server_has_its_own_registry():
    one, two = ServingMetrics(), ServingMetrics()
    one.answered(200, 0.1)
    samples = [s for f in _families(two).values() for s in f.samples if s.name == "infersweep_requests_total"]
    assert samples == []
