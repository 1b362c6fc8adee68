"""The finalists head to head (sweeps.finalists): the order is interleaved and rotated, the
speedup is the median of same-round ratios, and results, tables and promotion read it. The real
re-timing runs in the sweep end-to-end test (tests/sweeps/test_sweep_e2e.py)."""
import json

import pytest

from infersweep.sweeps.finalists import (FINALISTS_FILE, SPEEDUP_IN_TRIAL, finalist_metrics, round_orders,
                                         summarize)
from infersweep.sweeps.results import load_results

from tests.sweeps.test_results import write_sweep


def test_rounds_interleave_and_rotate_so_every_variant_takes_every_position():
    orders = round_orders(["base", "a", "b"], 3)
    assert orders == [["base", "a", "b"], ["a", "b", "base"], ["b", "base", "a"]]
    assert [order.index("base") for order in orders] == [0, 2, 1]
    assert round_orders(["base", "a"], 3) == [["base", "a"], ["a", "base"], ["base", "a"]]
    assert round_orders([], 3) == []


def test_the_speedup_is_the_median_of_ratios_within_each_round():
    # the machine slows down in round 2: per-round ratios cancel it where pooled medians would not
    latencies = {"base": [10.0, 20.0, 10.0], "a": [5.0, 10.0, 4.0], "b": [10.0, 25.0, 10.0]}
    result = summarize(latencies, "base")
    assert set(result) == {"a", "b"}
    assert result["a"]["rounds"] == [2.0, 2.0, 2.5] and result["a"]["speedup"] == 2.0
    assert result["a"]["latency_ms_per_sample"] == 5.0
    assert result["b"]["rounds"] == [1.0, 0.8, 1.0] and result["b"]["speedup"] == 1.0


def _write_finalists(sweep, baseline_id: str, speedups: dict[str, float]) -> None:
    finalists = {tid: {"speedup": s, "latency_ms_per_sample": 1.0, "rounds": [s]} for tid, s in speedups.items()}
    (sweep.sweep_dir() / FINALISTS_FILE).write_text(json.dumps({"baseline": baseline_id, "finalists": finalists}))


def test_results_take_the_finalists_speedup_and_keep_the_trials_own(tmp_path):
    sweep = write_sweep(tmp_path)
    before = load_results(sweep)
    finalist = next(r for r in before.frontier if not r.baseline)
    trial_speedup = finalist.metrics["speedup"]
    _write_finalists(sweep, before.baseline.trial_id, {finalist.trial_id: 1.7})
    after = load_results(sweep)
    row = next(r for r in after.frontier if r.trial_id == finalist.trial_id)
    assert row.metrics["speedup"] == 1.7 and row.metrics[SPEEDUP_IN_TRIAL] == pytest.approx(trial_speedup)
    assert {r.trial_id for r in after.frontier} == {r.trial_id for r in before.frontier}


def test_a_head_to_head_against_another_baseline_is_ignored(tmp_path):
    sweep = write_sweep(tmp_path)
    results = load_results(sweep)
    finalist = next(r for r in results.frontier if not r.baseline)
    _write_finalists(sweep, "another-launch", {finalist.trial_id: 9.0})
    assert finalist_metrics(sweep, results.baseline.trial_id, {finalist.trial_id: finalist.metrics}) == {}
    assert next(r for r in load_results(sweep).frontier if r.trial_id == finalist.trial_id).metrics["speedup"] != 9.0
