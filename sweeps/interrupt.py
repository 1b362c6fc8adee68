"""Ctrl-C and SIGTERM during a sweep: Tune stops gracefully (its state saved), then the sweep."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from infersweep.sweeps.errors import SweepInterrupted

__all__ = ["fit", "interruptible"]

#: set while Tuner.fit runs (only then is SIGUSR1 Tune's graceful stop, not a kill)
_TUNE_RUNNING = threading.Event()


@contextmanager
def interruptible():
    """Ctrl-C / SIGTERM during the search stop Tune gracefully (its state is saved) and then the
    sweep; a second signal, or one outside the search, stops at once. Yields the 'was
    interrupted' event."""
    import os
    import signal

    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.is_set() or not _TUNE_RUNNING.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop (it always listens on USR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def fit(tuner, interrupted: threading.Event) -> None:
    """tuner.fit(); SweepInterrupted when a signal stopped it."""
    _TUNE_RUNNING.set()
    try:
        tuner.fit()
    finally:
        _TUNE_RUNNING.clear()
    if interrupted.is_set():
        raise SweepInterrupted("interrupted")
