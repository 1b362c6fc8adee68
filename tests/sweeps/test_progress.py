"""The live progress line: counts, frontier, ETA from measured trial times, unexplored points."""
from types import SimpleNamespace

from infersweep.sweeps.trainable import SPEC_ID


def progress_callback(**kwargs):
    # imported here: sweeps.callbacks imports ray, and ray must not be imported while tests are
    # collected (the cluster tests configure it before its first import)
    from infersweep.sweeps.callbacks import ProgressCallback

    return ProgressCallback(**kwargs)


def finished(spec_id: str, seconds: float, reused: bool = False, latency: float = 10.0):
    result = {SPEC_ID: spec_id, "status": "ok", "time_total_s": seconds, "reused": reused,
              "latency_ms_per_sample": latency, "m_speedup": 1.0}
    return SimpleNamespace(trial_id=spec_id, status="TERMINATED", last_result=result)


def test_eta_comes_from_measured_trials_and_the_concurrency():
    progress = progress_callback(total=10, objectives=[("latency_ms_per_sample", "min")], constraints=[],
                                baseline_id="base", space_size=30, concurrency=2)
    trials = [finished("a", 40.0), finished("b", 60.0), finished("c", 0.5, reused=True)]
    line = progress._describe(trials)
    # 3 of 10 done, 7 to go at 50 s each (the reused one took no measuring), 2 at a time
    assert "ETA 2m55s (50 s/trial, 7 to go)" in line
    assert "27 of 30 points unexplored" in line
    assert "ok 3" in line


def test_no_eta_before_a_trial_has_finished_and_none_once_all_ran():
    progress = progress_callback(total=2, objectives=[("latency_ms_per_sample", "min")], constraints=[],
                                space_size=2)
    assert "ETA" not in progress._describe([])
    done = progress._describe([finished("a", 5.0), finished("b", 5.0, latency=5.0)])
    assert "ETA" not in done and "0 of 2 points unexplored" in done
