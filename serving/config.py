"""How a summarizer is served: batching, replicas, limits. Defaults come from the variant's trial."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ServeConfig", "batching_kind", "replica_layout"]


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(8, ge=1, le=1024, description="documents per engine call (the trial's batch size)")
    batch_wait_ms: float = Field(10.0, ge=0, le=10_000, description="longest wait for a batch to fill")
    replicas: int = Field(1, ge=1, le=1024)
    min_replicas: Optional[int] = Field(None, ge=0)
    max_replicas: Optional[int] = Field(None, ge=1)
    cpus_per_replica: float = Field(1.0, gt=0)
    gpus_per_replica: float = Field(0.0, ge=0)
    max_queue: int = Field(64, ge=1, description="requests in the server at once; the next gets 503")
    retry_after_s: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(4 * 2**20, ge=1024)
    max_documents: int = Field(256, ge=1, description="documents per request")
    max_document_tokens: int = Field(8192, ge=16, description="the model's input limit per document")

    @model_validator(mode="after")
    def _bounds(self):
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("give both min_replicas and max_replicas for autoscaling, or neither")
        if self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None

    @property
    def threads_per_replica(self) -> int:
        """A replica's engine threads: its whole CPUs, at least one."""
        return max(1, int(self.cpus_per_replica))


def replica_layout(trial_cpus: float, device: str, replicas: int | None, cpus: float | None) -> tuple[int, float]:
    """(replicas, CPUs per replica) when the user gave `replicas` and/or `cpus` or neither.

    Neither, on a CPU: the trial's CPU share split into single-CPU replicas (2 CPUs: two 1-CPU
    replicas, each engine on a core of its own). On 2 cores serving CNN/DailyMail articles, two
    single-threaded replicas answered 1.35x the requests/s of one two-threaded replica
    (docs/benchmarks.md): the proxy and the gateway take CPU time that a two-thread engine waits
    for at every parallel region. A GPU variant: one replica per GPU."""
    if replicas is None and cpus is None and device == "cpu":
        return max(1, int(trial_cpus)), 1.0
    return replicas or 1, cpus or trial_cpus


def batching_kind(task: str) -> str:
    """What the engine batches. Extractive and seq2seq summarize a batch in one call (request-level);
    causal generation would profit from iteration-level (continuous) batching, which the torch
    `generate` path does not offer: request-level too, and said so."""
    if task == "causal":
        return "request-level dynamic batching (iteration-level batching is not available for causal here)"
    return "request-level dynamic batching"
