"""The search: Optuna samplers inside Ray Tune, with constraints Optuna can learn from."""
from __future__ import annotations

from ray.tune import Stopper
from ray.tune.search.optuna import OptunaSearch

from infersweep.sweeps.space import feasible_space
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import SPEC_ID

__all__ = ["ConstrainedOptunaSearch", "DistinctTrialsStopper", "distinct_target", "missing_trials", "num_samples",
           "optuna_space", "release_stale_trials", "sampler", "searcher", "startup_design", "startup_trials",
           "study_name", "study_storage", "trials_to_show"]


class ConstrainedOptunaSearch(OptunaSearch):
    """OptunaSearch that passes constraint values to Optuna (value > 0 = violated).

    Ray's OptunaSearch never calls `set_constraint`; TPE and NSGA-II read it, and
    `study.best_trials` then leaves violating trials out.
    """

    def __init__(self, *args, constraint_keys=("infeasible",), **kwargs):
        self._constraint_keys = tuple(constraint_keys)
        super().__init__(*args, **kwargs)

    def on_trial_complete(self, trial_id, result=None, error=False):
        import warnings

        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and not error:
            with warnings.catch_warnings():  # a trial restored after a driver crash has them already
                warnings.filterwarnings("ignore", message="The constraint value is ignored")
                for key in self._constraint_keys:
                    if key in result:
                        ot_trial.set_constraint(key, float(result[key]))
        super().on_trial_complete(trial_id, result=result, error=error)


def optuna_space(sweep: SweepSpec) -> dict:
    """The sampler's parameters: the runnable variants and the batch sizes (sweeps.space)."""
    import optuna

    return {name: optuna.distributions.CategoricalDistribution(values)
            for name, values in feasible_space(sweep).axes().items()}


def sampler(sweep: SweepSpec):
    import optuna

    seed, algorithm = sweep.search.seed, sweep.search.algorithm
    if algorithm == "grid":
        return optuna.samplers.GridSampler(feasible_space(sweep).axes(), seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "gp":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(sweep),
                                             warn_independent_sampling=False)
    if algorithm == "nsga2":
        # the default population (50) would be random search for small budgets
        population = max(4, min(50, sweep.search.num_trials // 3))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup_trials(sweep))


def startup_trials(sweep: SweepSpec) -> int:
    """How many trials the model-based samplers (gp, tpe) take before their model steers."""
    if sweep.search.algorithm == "gp":
        return min(6, max(3, sweep.search.num_trials // 4))
    if sweep.search.algorithm == "tpe":
        return min(6, max(2, sweep.search.num_trials // 3))
    return 0


def startup_design(sweep: SweepSpec) -> list[dict]:
    """The model-based samplers' first points: a balanced (Latin hypercube) design over the
    sampler's parameters, in place of independent random draws.

    Each parameter's values are spread evenly over the startup points (every value once before any
    twice), shuffled per parameter with the sweep's seed. Random startup points can all land on one
    batch size or one runtime; the model then starts from one corner and a small budget misses
    frontier points elsewhere (bench/search.py: worst seed 0.85 of the grid's hypervolume with
    random startup, 0.93 with this design, at 25% of the grid).
    """
    import random

    count = startup_trials(sweep)
    if not count:
        return []
    rng = random.Random(sweep.search.seed)
    axes = feasible_space(sweep).axes()
    count = min(count, len(feasible_space(sweep).grid()))
    for _ in range(100):  # reshuffle until no point repeats (a repeat would be a wasted startup trial)
        columns = {name: _balanced_column(values, count, rng) for name, values in axes.items()}
        design = [{name: column[i] for name, column in columns.items()} for i in range(count)]
        if len({tuple(point.values()) for point in design}) == count:
            break
    return list({tuple(point.values()): point for point in design}.values())


def _balanced_column(values, count: int, rng) -> list:
    """`count` values, each of `values` as often as the others (±1), in random order."""
    levels = list(values)
    rng.shuffle(levels)
    column = (levels * (count // len(levels) + 1))[:count]
    rng.shuffle(column)
    return column


def distinct_target(sweep: SweepSpec) -> int:
    """How many distinct combinations the sweep runs (never more than can run)."""
    return min(sweep.search.num_trials, len(feasible_space(sweep).grid()))


def trials_to_show(sweep: SweepSpec, baseline_id: str) -> int:
    """The progress bar's total: the distinct combinations besides the baseline's."""
    if sweep.search.algorithm == "grid":
        return len({sweep.trial_spec(p).trial_id() for p in feasible_space(sweep).grid()} - {baseline_id})
    return distinct_target(sweep)


def num_samples(sweep: SweepSpec) -> int:
    """Ray trials to allow: samplers re-suggest combinations already run (reused, not re-run),
    so leave room for them; DistinctTrialsStopper ends the sweep at the distinct target."""
    if sweep.search.algorithm == "grid":
        return distinct_target(sweep)
    return 3 * sweep.search.num_trials


class DistinctTrialsStopper(Stopper):
    """Stop the whole sweep once `target` distinct combinations have results (`done`: already)."""

    def __init__(self, target: int, ignore: frozenset[str] = frozenset(), done: frozenset[str] = frozenset()):
        self.target = target
        self.ignore = frozenset(ignore)  # the baseline, when the sampler proposes it again
        self.seen: set[str] = set(done) - self.ignore

    def __call__(self, trial_id, result) -> bool:
        if result.get(SPEC_ID) and result[SPEC_ID] not in self.ignore:
            self.seen.add(result[SPEC_ID])
        return False

    def stop_all(self) -> bool:
        return len(self.seen) >= self.target


def study_storage(sweep: SweepSpec):
    """The sweep's Optuna study in sqlite next to its trials, for optuna-dashboard. Only the
    driver writes it; RDBStorage reconnects when Ray unpickles the searcher on resume."""
    import optuna

    path = sweep.sweep_dir() / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{path}")


def missing_trials(sweep: SweepSpec, reported: set[str], baseline_id: str) -> tuple[int, list[dict]]:
    """(how many combinations the sweep still owes, the grid points among them, as the sampler's
    parameters) given the trial ids with a report on disk."""
    if sweep.search.algorithm == "grid":
        points = [p for p in feasible_space(sweep).grid() if sweep.trial_spec(p).trial_id() not in reported]
        return len(points), points
    return max(0, distinct_target(sweep) - len(reported - {baseline_id})), []


def release_stale_trials(sweep: SweepSpec, points: list[dict]) -> int:
    """Mark the study's RUNNING trials FAIL and queue `points`; only while no Tune run is active.

    A driver killed mid-sweep leaves Optuna trials RUNNING whose Ray trials started after Tune's
    last state save: the restored run never knows them. Samplers suggest anew past FAIL trials,
    but the grid sampler counts them as visited, so the grid points still owed are enqueued.
    """
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=study_name(sweep), storage=study_storage(sweep))
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    for point in points:
        study.enqueue_trial(point, skip_if_exists=False)
    return len(stale)


def study_name(sweep: SweepSpec) -> str:
    return f"infersweep-{sweep.name}"


def searcher(sweep: SweepSpec, constraint_keys: list[str]):
    import warnings

    import optuna
    from ray.tune.search import ConcurrencyLimiter

    storage = study_storage(sweep)
    search = ConstrainedOptunaSearch(
        space=optuna_space(sweep),
        metric=[o.metric for o in sweep.objectives],
        mode=[o.mode for o in sweep.objectives],
        sampler=sampler(sweep),
        study_name=study_name(sweep),
        storage=storage,
        constraint_keys=constraint_keys,
    )
    study = optuna.load_study(study_name=study_name(sweep), storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in sweep.objectives])
    _enqueue_startup(sweep, study)
    return ConcurrencyLimiter(search, max_concurrent=sweep.search.max_concurrent)


def _enqueue_startup(sweep: SweepSpec, study) -> None:
    """Queue what the startup design still lacks: a study warm-started with earlier results counts
    them as startup points; a resumed one has its design queued or run already."""
    trials = study.get_trials(deepcopy=False)
    taken = [trial.params or trial.system_attrs.get("fixed_params", {}) for trial in trials]
    wanted = [point for point in startup_design(sweep) if point not in taken]
    for point in wanted[:max(0, startup_trials(sweep) - len(trials))]:
        study.enqueue_trial(point, skip_if_exists=True)
