"""The one error root: every problem a user can fix is an InfersweepError, which the CLI catches
once and prints as one line. Subclasses also keep the builtin they always were (ValueError,
ConnectionError, ...), so callers that caught those still do."""
from __future__ import annotations

__all__ = ["InfersweepError"]


class InfersweepError(Exception):
    """A problem the user can act on; str(error) names it and the fix."""
