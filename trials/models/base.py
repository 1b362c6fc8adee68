"""The task adapter protocol: what the trial runner, sensitivity, and the served package use of a task.

A new task is one adapter module implementing TaskAdapter plus one line in trials.models.ADAPTERS
(and its entries in the support tables of the runtimes that run it).
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from infersweep.trials.runtimes.base import Engine, GeneratingEngine, PreparedModel

__all__ = ["Batch", "TaskAdapter", "TokenTimed", "Engine", "GeneratingEngine"]


@runtime_checkable
class Batch(Protocol):
    """Pre-tokenized documents; `size` is how many documents it holds (latency per sample)."""

    @property
    def size(self) -> int: ...


@runtime_checkable
class TaskAdapter(Protocol):
    """Built from a TrialSpec: `adapter_class(spec)` loads the spec's model and tokenizer."""

    task: str
    #: the torch model pruning edits and runtimes optimize; None once an engine serves alone
    module: Any
    #: the Hugging Face tokenizer (saved beside a promoted variant)
    tokenizer: Any

    def prepared_model(self, calibration_documents: Sequence[str] = (),
                       calibration_references: Sequence[str] = ()) -> PreparedModel:
        """The torch module a runtime optimizes, with example inputs for export and, from
        `calibration_documents`, the inputs that static quantization and pruning calibrate on;
        given their reference summaries too, a QualityProbe where the task can score a forward
        (accuracy-controlled quantization steers by it)."""

    def batches(self, documents: list[str], batch_size: int) -> list[Batch]:
        """Pre-tokenized batches of `batch_size` documents (tokenization is not timed)."""

    def summarize_batch(self, batch: Batch, engine: Engine) -> list[str]:
        """Summaries of one batch, newline-separated sentences (a GeneratingEngine for decoding tasks)."""


@runtime_checkable
class TokenTimed(Protocol):
    """Optional, for decoding tasks (causal): an adapter that clocks its tokens while
    `summarize_batch` runs. The runner resets `token_timings` before the timed passes and adds
    its metrics (ttft_ms, tpot_ms, output_tokens_per_s) to the report, and the notes of
    `input_notes` (how `batches` cut long documents) to the report's notes."""

    token_timings: Any  # trials.measure.TokenTimings

    def input_notes(self) -> list[str]:
        """What the last `batches` call did to the documents (truncation), for the report."""
