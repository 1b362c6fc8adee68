"""Timing a variant again (trials/retime.py), as the finalists' head-to-head does."""
import tempfile

from infersweep.trials import TrialSpec
from infersweep.trials.measure import LATENCY_PER_SAMPLE
from infersweep.trials.retime import time_variant


def test_a_variant_is_rebuilt_warmed_up_and_timed_and_says_how_long_each_took(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = TrialSpec(n=2, batch_size=1, warmup=1, repeats=1, cpus=1,
                     timing={"max_seconds": 1.0, "min_passes": 1, "min_batches": 2})
    timing = time_variant(spec)
    assert list(tmp_path.glob("infersweep-*")) == []  # its files went to a temporary directory, removed since
    assert timing[LATENCY_PER_SAMPLE] > 0 and timing["passes"] >= 1
    assert set(timing["phases_s"]) == {"build", "warmup", "timed"}
    assert all(seconds > 0 for seconds in timing["phases_s"].values())
    # the timed phase holds the timed passes (their own clock) and little else
    assert timing["phases_s"]["timed"] >= timing["seconds"] - 1e-3  # each is rounded (to 4 and 3 places)
