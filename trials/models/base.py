"""The task adapter protocol."""
from __future__ import annotations

from typing import Protocol

from trials.runtimes.base import Engine, PreparedModel


class TaskAdapter(Protocol):
    task: str

    def prepared_model(self) -> PreparedModel:
        """The torch module a runtime optimizes, with example inputs for export."""

    def batches(self, documents: list[str], batch_size: int) -> list:
        """Pre-tokenized batches of `batch_size` documents (tokenization is not timed)."""

    def summarize_batch(self, batch, engine: Engine) -> list[str]:
        """Summaries of one batch, newline-separated sentences."""
