"""The one thread a serving replica runs its engine in, pinned to the replica's own cores.

Ray reserves CPUs by count, not by core (trials.affinity), so two 1-CPU replicas on a 2-core node
may share a core while the other idles. The engine thread claims `cpus` cores with the trials'
lock files and pins itself before anything is loaded: the engine's own thread pools, created from
it, inherit the pinning, and with one thread the engine computes in this thread. A replica that
wants every core of its node stays unpinned, as a trial does.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools

__all__ = ["EngineThread"]


class EngineThread:
    def __init__(self, cpus: int):
        self.cpus = cpus
        #: the cores this thread is pinned to; None: not pinned (every core, or none free)
        self.cores: list[int] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine",
                                                           initializer=self._pin)
        self._pool.submit(lambda: None).result()  # pinned before the first call

    def _pin(self) -> None:
        from infersweep.trials.affinity import claim_cpus

        self.cores = claim_cpus(self.cpus)

    def submit(self, function, *args) -> concurrent.futures.Future:
        return self._pool.submit(function, *args)

    async def run(self, function, *args):
        """function(*args) in the engine thread, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(function, *args))

    def close(self) -> None:
        from infersweep.trials.affinity import release_cpus

        self._pool.submit(release_cpus).result()
        self._pool.shutdown(wait=True)
