"""The errors a sweep stops with; each is an InfersweepError the CLI prints as one line.

`exit_code` says how the command ends: 2 for input to fix, 1 for a sweep that could not start or
go on, 130 for an interrupted one."""
from __future__ import annotations

from infersweep.trials.errors import InfersweepError

__all__ = ["SweepError", "SweepInterrupted", "SweepNotFound"]


class SweepError(InfersweepError, RuntimeError):
    """A sweep that cannot start or go on; the message says why and what to do."""

    exit_code = 1


class SweepNotFound(SweepError):
    """No saved sweep by that name (a name or --storage to fix)."""

    exit_code = 2


class SweepInterrupted(SweepError):
    """Ctrl-C or SIGTERM: the sweep stopped early; its state is saved for `infersweep resume`."""

    exit_code = 130
