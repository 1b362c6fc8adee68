"""Pruning knob (being split by concern; the modules follow in the next commit)."""
from trials.pruning.structured import *  # noqa: F401,F403
