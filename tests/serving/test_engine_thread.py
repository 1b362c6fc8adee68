"""A replica's engine thread claims its own cores (serving/engine_thread.py). Replicas are
processes: each engine here lives in a process of its own, as in Ray Serve."""
from __future__ import annotations

import asyncio
import multiprocessing
import os

import pytest

from infersweep.serving.engine_thread import EngineThread
from infersweep.trials.affinity import LOCK_DIR_ENV


def _replica(cpus: int, replies, stop) -> None:
    engine = EngineThread(cpus)
    inside = engine.submit(os.sched_getaffinity, 0).result()
    awaited = asyncio.run(engine.run(os.sched_getaffinity, 0))
    replies.put((engine.cores, sorted(inside), sorted(awaited), sorted(os.sched_getaffinity(0))))
    stop.wait(60)  # hold the cores while the other replica claims
    engine.close()


def _start(count: int, cpus: int):
    context = multiprocessing.get_context("fork")
    replies, stop = context.Queue(), context.Event()
    procs = [context.Process(target=_replica, args=(cpus, replies, stop)) for _ in range(count)]
    answers = []
    for proc in procs:  # one after the other, as replicas start
        proc.start()
        answers.append(replies.get(timeout=60))
    stop.set()
    for proc in procs:
        proc.join(60)
    return answers


@pytest.fixture
def locks(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_two_one_cpu_replicas_get_different_cores_and_run_on_them(locks):
    everything = sorted(os.sched_getaffinity(0))
    (first, *seen_1), (second, *seen_2) = _start(2, 1)
    assert first and second and len(first) == len(second) == 1 and first != second
    for cores, (inside, awaited, caller) in ((first, seen_1), (second, seen_2)):
        assert inside == awaited == cores  # the engine's calls run on the replica's core
        assert caller == everything  # the replica's other threads are not pinned
    (again, *_), = _start(1, 1)
    assert again == first  # cores are given back when a replica ends


def test_a_replica_that_wants_every_core_is_not_pinned(locks):
    everything = sorted(os.sched_getaffinity(0))
    (cores, inside, awaited, caller), = _start(1, len(everything))
    assert cores is None and inside == awaited == caller == everything
