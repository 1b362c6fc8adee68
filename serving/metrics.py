"""The server's Prometheus metrics (prometheus_client), in a registry of their own.

    infersweep_requests_total{code}          answered /invocations requests, by HTTP status
    infersweep_errors_total{reason}          refused or failed requests, by reason
    infersweep_request_latency_seconds       time from arrival to answer (histogram)
    infersweep_batch_size_documents          documents per engine call (histogram)
    infersweep_engine_calls_total            engine calls (one per batch unless a batch is retried)
    infersweep_queue_depth                   requests admitted and not yet answered
"""
from __future__ import annotations

__all__ = ["ServingMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _client():
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - the `serve` extra installs it
        from infersweep.trials.errors import InfersweepError

        raise InfersweepError("serving needs prometheus-client: pip install 'infersweep[serve]'") from exc
    return prometheus_client


class ServingMetrics:
    def __init__(self):
        pc = _client()
        self.registry = pc.CollectorRegistry(auto_describe=True)
        self.requests = pc.Counter("infersweep_requests", "answered /invocations requests by HTTP status",
                                   ["code"], registry=self.registry)
        self.errors = pc.Counter("infersweep_errors", "refused or failed /invocations requests by reason",
                                 ["reason"], registry=self.registry)
        self.latency = pc.Histogram("infersweep_request_latency_seconds", "time from a request's arrival to "
                                    "its answer", buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = pc.Histogram("infersweep_batch_size_documents", "documents per engine call",
                                       buckets=BATCH_BUCKETS, registry=self.registry)
        self.engine_calls = pc.Counter("infersweep_engine_calls", "engine calls", registry=self.registry)
        self.queue_depth = pc.Gauge("infersweep_queue_depth", "requests admitted and not yet answered",
                                    registry=self.registry)

    def answered(self, status: int, seconds: float, reason: str | None = None) -> None:
        self.requests.labels(code=str(status)).inc()
        self.latency.observe(seconds)
        if reason:
            self.errors.labels(reason=reason).inc()

    def batch(self, documents: int, engine_calls: int) -> None:
        """One batch as the replica ran it: its documents, in `engine_calls` calls."""
        if documents:
            self.batch_size.observe(documents)
        self.engine_calls.inc(engine_calls)

    def render(self) -> tuple[bytes, str]:
        """(the Prometheus text exposition, its content type)."""
        pc = _client()
        return pc.generate_latest(self.registry), pc.CONTENT_TYPE_LATEST
