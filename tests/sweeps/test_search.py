"""The search's startup design: model-based samplers start from a balanced spread of the space."""
from collections import Counter

import pytest

from infersweep.sweeps.search import startup_design, startup_trials
from infersweep.sweeps.space import feasible_space
from infersweep.sweeps.spec import load_sweep_spec
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import detect

SPACE = "space: {precision: [fp32, int8_dynamic], runtime: [torch, onnxruntime], batch_size: [1, 4, 8]}\n"


def sweep_of(tmp_path, algorithm="gp", num_trials=24, seed=0, space=SPACE):
    path = tmp_path / f"{algorithm}-{seed}.yaml"
    path.write_text(f"name: s{seed}\nsearch: {{algorithm: {algorithm}, num_trials: {num_trials}, seed: {seed}}}\n"
                    f"storage: {{path: {tmp_path / 'sweeps'}}}\n{space}")
    return load_sweep_spec(path)


def test_the_design_spreads_every_parameter_evenly_over_runnable_points(tmp_path):
    sweep = sweep_of(tmp_path)
    design = startup_design(sweep)
    assert len(design) == startup_trials(sweep) == 6
    for name, values in feasible_space(sweep).axes().items():
        counts = Counter(point[name] for point in design)
        assert set(counts) == set(values), name  # 6 points cover every value of every parameter
        assert max(counts.values()) - min(counts.values()) <= 1, (name, counts)
    assert len({tuple(point.values()) for point in design}) == len(design)  # no point twice
    for point in design:
        assert check(sweep.trial_spec(point), detect()) is None, point
    assert startup_design(sweep) == design  # the sweep's seed fixes it
    assert startup_design(sweep_of(tmp_path, seed=1)) != design


def test_a_joint_variant_space_spreads_over_its_variants(tmp_path):
    # onnxruntime has no bf16 graph: the runnable set is not a product, the sampler sees `variant`
    sweep = sweep_of(tmp_path, space="space: {precision: [fp32, bf16], runtime: [torch, onnxruntime], "
                                      "batch_size: [1, 4]}\n")
    assert feasible_space(sweep).encoding == "variant"
    design = startup_design(sweep)
    assert len({point["variant"] for point in design}) == len(feasible_space(sweep).variants) == 3
    for point in design:
        assert check(sweep.trial_spec(point), detect()) is None, point


@pytest.mark.parametrize("algorithm", ["random", "nsga2", "grid"])
def test_samplers_without_a_model_get_no_design(tmp_path, algorithm):
    assert startup_design(sweep_of(tmp_path, algorithm=algorithm)) == []


def test_a_new_sweep_asks_the_design_first_and_a_resumed_one_does_not_queue_it_again(tmp_path):
    import optuna

    from infersweep.sweeps.search import optuna_space, searcher, study_name, study_storage

    sweep = sweep_of(tmp_path)
    searcher(sweep, ["infeasible"])
    study = optuna.load_study(study_name=study_name(sweep), storage=study_storage(sweep))
    design = startup_design(sweep)
    asked = []
    for i, _ in enumerate(design):
        trial = study.ask(optuna_space(sweep))
        asked.append(trial.params)
        study.tell(trial, [float(i)] * len(sweep.objectives))
    assert asked == design
    searcher(sweep, ["infeasible"])  # a resume builds the searcher again
    assert not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))


def test_a_warm_started_study_counts_its_reused_results_as_startup_points(tmp_path):
    import optuna

    from infersweep.sweeps.search import optuna_space, searcher, study_name, study_storage

    sweep = sweep_of(tmp_path)
    space = optuna_space(sweep)
    study = optuna.create_study(study_name=study_name(sweep), storage=study_storage(sweep),
                                directions=[o.mode + "imize" for o in sweep.objectives])
    reused = startup_design(sweep)[:2]
    for point in reused:  # as sweeps.warm adds earlier sweeps' results
        study.add_trial(optuna.trial.create_trial(params=point, distributions=space, values=[1.0] * len(sweep.objectives)))
    searcher(sweep, ["infeasible"])
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert [trial.system_attrs["fixed_params"] for trial in waiting] == startup_design(sweep)[2:]
