import pytest

from infersweep.sweeps.pareto import TrialRow, dominates, frontier, hypervolume_2d, write_frontier
from infersweep.sweeps.promote import NothingToPromote, choose

OBJ = [("latency_ms_per_sample", "min"), ("rougeLsum", "max")]


def row(tid, lat, rouge, drop=0.0, status="ok"):
    return TrialRow(tid, status, {"runtime": "torch", "precision": "fp32", "pruning": "none",
                                  "prune_ratio": 0.0, "batch_size": 1},
                    {"latency_ms_per_sample": lat, "rougeLsum": rouge, "rouge_drop_pct": drop,
                     "peak_memory_mb": 1.0, "model_size_mb": 1.0, "speedup": 10 / lat})


def test_dominance():
    assert dominates({"latency_ms_per_sample": 1, "rougeLsum": 30}, {"latency_ms_per_sample": 2, "rougeLsum": 30}, OBJ)
    assert not dominates({"latency_ms_per_sample": 1, "rougeLsum": 30}, {"latency_ms_per_sample": 1, "rougeLsum": 30}, OBJ)
    assert not dominates({"latency_ms_per_sample": 1, "rougeLsum": 20}, {"latency_ms_per_sample": 2, "rougeLsum": 30}, OBJ)


def test_frontier_of_a_known_set():
    rows = [row("base", 10, 30), row("fast", 4, 29.8, drop=0.7), row("slow", 12, 29), row("faster", 2, 25, drop=16.7),
            row("equal-but-worse", 5, 29.7, drop=1.0), row("broken", 1, 0, status="failed")]
    front = frontier(rows, OBJ, ["rouge_drop_pct <= 1.0"])
    assert {r.trial_id for r in front} == {"base", "fast"}
    assert {r.trial_id for r in frontier(rows, OBJ, [])} == {"base", "fast", "faster"}


def test_hypervolume():
    assert hypervolume_2d([(1, 1)], (2, 2)) == pytest.approx(1)
    assert hypervolume_2d([(0, 1), (1, 0)], (2, 2)) == pytest.approx(3)
    assert hypervolume_2d([(3, 3)], (2, 2)) == 0


def test_choose_and_nothing_to_promote():
    rows = [row("base", 10, 30), row("fast", 4, 29.8, drop=0.7)]
    assert choose(rows, ["rouge_drop_pct <= 1"], "latency_ms_per_sample", "min").trial_id == "fast"
    assert choose(rows, [], "rougeLsum", "max").trial_id == "base"
    with pytest.raises(NothingToPromote, match="Nothing was registered"):
        choose(rows, ["rouge_drop_pct <= -5"], "latency_ms_per_sample", "min")


def test_frontier_files(tmp_path):
    paths = write_frontier([row("fast", 4, 29.8)], tmp_path)
    assert [p.name for p in paths] == ["pareto.json", "pareto.csv"]
    assert "fast" in paths[1].read_text()


def test_distinct_stopper_ignores_duplicates_and_the_baseline():
    from infersweep.sweeps.search import DistinctTrialsStopper

    stop = DistinctTrialsStopper(2, {"base"})
    for tid in ("base", "a", "a", "base"):
        stop("ray-trial", {"spec_id": tid, "trial_id": "ray-id-overwrites-ours"})
    assert not stop.stop_all()
    stop("ray-trial", {"spec_id": "b"})
    assert stop.stop_all()


def test_frontier_tables_list_the_fastest_first_and_break_ties_on_latency():
    from infersweep.sweeps.pareto import fastest_first

    rows = [row("slow", 10, 30), row("fast", 2, 30), row("tie-slower", 5, 30), row("tie", 4, 30)]
    rows[2].metrics["speedup"] = rows[3].metrics["speedup"]  # same speedup, higher latency
    assert [r.trial_id for r in fastest_first(rows)] == ["fast", "tie", "tie-slower", "slow"]
