"""Disjoint CPU sets for trials that share a node.

Ray reserves CPUs by count, not by core: two concurrent 1-CPU trials on a 2-core node may both
run on core 0 while core 1 idles, and each measures the other. A trial process claims `count`
cores by holding an exclusive lock file per core (`$TMPDIR/infersweep-cpus/cpu-N.lock`, flock),
pins itself (and the serving-memory process it starts) to them, and sets its thread pools to
match. The kernel drops the locks when the process exits, crashed or not, so nothing leaks.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

__all__ = ["LOCK_DIR_ENV", "claim_cpus", "current_cpus", "release_cpus"]

LOCK_DIR_ENV = "INFERSWEEP_CPU_LOCKS"
_held: list[int] = []  # the open lock files of this process's claim
_unpinned: list[set[int]] = []  # the affinity before the claim


def _lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "infersweep-cpus")
    path.mkdir(parents=True, exist_ok=True)
    return path


def current_cpus() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def claim_cpus(count: int) -> list[int] | None:
    """Claim and pin to `count` cores no other trial on this node holds; None (unpinned) when the
    trial wants the whole node, or fewer than `count` cores are free (said by the caller)."""
    release_cpus()
    available = current_cpus()
    if count >= len(available):
        return None
    claimed: list[int] = []
    for cpu in available:
        fd = os.open(_lock_dir() / f"cpu-{cpu}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held.append(fd)
        claimed.append(cpu)
        if len(claimed) == count:
            _unpinned.append(set(available))
            os.sched_setaffinity(0, claimed)
            return claimed
    release_cpus()
    return None


def release_cpus() -> None:
    """Give the claimed cores back and unpin (process exit drops the locks too)."""
    while _held:
        os.close(_held.pop())
    if _unpinned:
        os.sched_setaffinity(0, _unpinned.pop())
