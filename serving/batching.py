"""One engine call for many requests, and no request failing for another's fault.

The Ray Serve replica (cluster/serve.py) collects requests with `@serve.batch`; each item is the
documents of one request (or a chunk of a large one, see `chunks`). `run_batch` checks each item
against the model's input limit, summarizes every accepted document in ONE call of the engine,
and splits the summaries back. Should that call fail, each item is retried alone, so only the
item that fails gets the error.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["BatchOutcome", "ItemResult", "chunks", "over_limit", "run_batch"]

_batch_ids = itertools.count(1)


@dataclass
class ItemResult:
    """The answer to one item: its summaries, or why it failed (`status` is an HTTP status)."""

    summaries: list[str] | None = None
    error: str | None = None
    status: int = 200
    reason: str = ""


@dataclass
class BatchOutcome:
    """A batch's results in item order, with what the engine did: how many documents went into
    how many calls (1 unless a failure made it retry items one by one)."""

    results: list[ItemResult]
    documents: int = 0
    engine_calls: int = 0
    batch_id: int = field(default_factory=lambda: next(_batch_ids))


def chunks(documents: list[str], size: int) -> list[list[str]]:
    """`documents` in pieces of at most `size`: an item never exceeds the batch's size."""
    size = max(1, int(size))
    return [documents[i:i + size] for i in range(0, len(documents), size)]


def over_limit(documents: list[str], count_tokens: Callable[[str], int], limit: int | None) -> str | None:
    """Why `documents` exceed the model's input limit (`limit` tokens per document), else None.
    A document of at most `limit` UTF-8 bytes is under it without tokenizing (a token is a byte
    or more)."""
    if not limit:
        return None
    for number, document in enumerate(documents, start=1):
        if len(document.encode("utf-8")) <= limit:
            continue
        tokens = count_tokens(document)
        if tokens > limit:
            return (f"document {number} has {tokens} tokens; this model takes at most {limit} per document: "
                    f"shorten or split it")
    return None


def run_batch(items: list[list[str]], summarize: Callable[[list[str]], list[str]],
              count_tokens: Callable[[str], int] | None = None, limit: int | None = None) -> BatchOutcome:
    """Summaries for every item of a batch, with one `summarize` call over all accepted documents."""
    results: list[ItemResult | None] = [None] * len(items)
    accepted: list[int] = []
    for i, documents in enumerate(items):
        reason = over_limit(documents, count_tokens, limit) if count_tokens else None
        if reason:
            results[i] = ItemResult(error=reason, status=413, reason="too_long")
        else:
            accepted.append(i)
    flat = [d for i in accepted for d in items[i]]
    outcome = BatchOutcome(results=[], documents=len(flat))
    if flat:
        try:
            outcome.engine_calls = 1
            summaries = _checked(summarize(flat), len(flat))
        except Exception:  # somebody's documents broke the call: find whose, one item at a time
            for i in accepted:
                results[i] = _alone(items[i], summarize)
                outcome.engine_calls += 1
        else:
            offset = 0
            for i in accepted:
                results[i] = ItemResult(summaries=summaries[offset:offset + len(items[i])])
                offset += len(items[i])
    outcome.results = results
    return outcome


def _alone(documents: list[str], summarize) -> ItemResult:
    try:
        return ItemResult(summaries=_checked(summarize(documents), len(documents)))
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        return ItemResult(error=f"the model failed on this request: {message}", status=500, reason="model_error")


def _checked(summaries, count: int) -> list[str]:
    summaries = list(summaries)
    if len(summaries) != count:
        raise RuntimeError(f"{count} documents gave {len(summaries)} summaries")
    return summaries
