"""Concurrent trials on one node get disjoint cores; the claim ends with the process."""
import json
import os
import subprocess
import sys

import pytest

from infersweep.trials.affinity import LOCK_DIR_ENV, claim_cpus, current_cpus, release_cpus

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 or more cores")
CLAIMER = ("import json, sys, os; from infersweep.trials.affinity import claim_cpus; "
           "print(json.dumps([claim_cpus(1), sorted(os.sched_getaffinity(0))]), flush=True); sys.stdin.read()")


def start_claimer(lock_dir):
    proc = subprocess.Popen([sys.executable, "-c", CLAIMER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, LOCK_DIR_ENV: str(lock_dir)})
    return proc, json.loads(proc.stdout.readline())


def test_two_trials_get_disjoint_cores_and_a_claim_ends_with_its_process(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    cores = current_cpus()
    procs = []
    try:
        claims = []
        for _ in cores:  # as many one-core trials as the node has cores
            proc, (claimed, pinned) = start_claimer(tmp_path)
            procs.append(proc)
            assert claimed and pinned == claimed  # pinned to exactly what it claimed
            claims.append(claimed[0])
        assert sorted(claims) == cores  # disjoint: every core once
        assert claim_cpus(1) is None and current_cpus() == cores  # none free: this one runs unpinned
        procs[0].stdin.close()
        procs[0].wait(timeout=30)  # that trial ended: its core is free again
        assert claim_cpus(1) == [claims[0]] and current_cpus() == [claims[0]]
        release_cpus()
        assert current_cpus() == cores
    finally:
        release_cpus()
        for proc in procs:
            proc.kill()


def test_a_trial_that_wants_the_whole_node_is_not_pinned(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    assert claim_cpus(len(current_cpus())) is None and len(current_cpus()) >= 2


def test_a_report_says_which_cores_it_ran_on(quick_spec, tmp_path):
    from infersweep.trials import run_trial

    report = run_trial(quick_spec(cpus=1), tmp_path)
    assert report.hardware["cpu_set"] == current_cpus()
