"""A bounded queue: at most `capacity` requests admitted at once; the next one is refused with 503
and Retry-After instead of waiting in memory that grows without bound."""
from __future__ import annotations

import math

from infersweep.serving.wire import RequestError

__all__ = ["Admission", "Overloaded"]


class Overloaded(RequestError):
    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message, status=503, reason="overloaded")
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class Admission:
    """Count the requests in the server; `admit()` is a context manager (single event loop: no lock)."""

    def __init__(self, capacity: int, retry_after_s: float = 1.0, on_change=None):
        if capacity < 1:
            raise ValueError(f"the queue must hold at least one request, got {capacity}")
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        self.depth = 0
        self._on_change = on_change or (lambda depth: None)

    def admit(self) -> "_Ticket":
        if self.depth >= self.capacity:
            raise Overloaded(f"the server is at capacity ({self.capacity} requests in progress); retry after "
                             f"{max(1, math.ceil(self.retry_after_s))} s", self.retry_after_s)
        self.depth += 1
        self._on_change(self.depth)
        return _Ticket(self)

    def _leave(self) -> None:
        self.depth -= 1
        self._on_change(self.depth)


class _Ticket:
    def __init__(self, admission: Admission):
        self._admission = admission

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._admission._leave()
