"""What a launch sets up: quiet libraries, the trials' Ray resources, the baseline, the Tuner."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from infersweep.sweeps.errors import SweepError
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.trainable import TrialPlan, constraint_keys, sweep_trial
from infersweep.trials.spec import TrialReport, TrialSpec

__all__ = ["build_tuner", "check_resources", "custom_resources", "quiet_ray_and_mlflow", "run_baseline",
           "trial_resources"]


def quiet_ray_and_mlflow() -> None:
    """Our progress bar and tables replace Ray's and MLflow's console output."""
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from infersweep.tracking.store import quiet

    quiet()
    for name in ("optuna", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # on Ctrl-C we say how to continue (`infersweep resume`); Tune's own advice is its Python API
    logging.getLogger("ray.tune.tune").addFilter(_drop_tune_restore_advice)
    # GridSampler stops the study when the grid is exhausted; Ray warns about it harmlessly
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _drop_tune_restore_advice(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return "Tuner.restore" not in message and "Stop signal received" not in message


def trial_resources(sweep: SweepSpec) -> dict:
    resources = {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu}
    if sweep.resources.accelerator_type:
        resources[f"accelerator_type:{sweep.resources.accelerator_type}"] = 0.001
    return resources


def custom_resources(resources: dict) -> dict:
    """The resources besides cpu and gpu (accelerator_type:X)."""
    return {k: v for k, v in resources.items() if k not in ("cpu", "gpu")}


def check_resources(sweep: SweepSpec) -> None:
    """SweepError unless some node of the cluster can hold one trial."""
    from infersweep.cluster.connect import missing_resources

    resources = trial_resources(sweep)
    reason = missing_resources({"CPU": resources["cpu"], "GPU": resources["gpu"], **custom_resources(resources)})
    if reason:
        raise SweepError(reason)


def _run_remote_baseline(spec_json: str, trials_dir: str) -> str:
    from infersweep.trials.affinity import claim_cpus, release_cpus
    from infersweep.trials.runner import run_trial

    spec = TrialSpec.from_json(spec_json)
    claim_cpus(spec.cpus)
    try:
        return run_trial(spec, Path(trials_dir) / spec.trial_id()).to_json()
    finally:
        release_cpus()


def run_baseline(sweep: SweepSpec, plan: TrialPlan) -> TrialReport:
    """The baseline, measured anew in every launch (relative metrics never come from a baseline
    measured under other load), in a fresh worker process like every trial."""
    import ray

    from infersweep.trials.runner import write_report

    resources = trial_resources(sweep)
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], resources=custom_resources(resources) or None,
                      max_calls=1)(_run_remote_baseline)
    report = TrialReport.from_json(ray.get(task.remote(sweep.baseline_spec().to_json(), str(plan.trials_dir))))
    local = plan.trials_dir / report.trial_id  # the worker may have written it on another node
    local.mkdir(parents=True, exist_ok=True)
    write_report(report, local)
    if report.status != "ok":
        raise SweepError(f"the baseline ({report.spec.short_name()}) did not run: {report.status}: "
                         f"{report.reason}. Fix `baseline:` in the sweep file and launch it again; "
                         f"no other trial was started")
    return report


def build_tuner(sweep: SweepSpec, plan: TrialPlan, baseline: TrialReport, runs, resume: bool, progress: bool,
                done: frozenset[str] = frozenset(), samples: int | None = None):
    """The Tuner of this launch: restored from the sweep's folder on resume, else a fresh one
    (an earlier one is set aside; its results are reused from the trial reports)."""
    from ray import tune

    from infersweep.sweeps.callbacks import MlflowTrialCallback, ProgressCallback
    from infersweep.sweeps.search import DistinctTrialsStopper, distinct_target, num_samples, searcher, trials_to_show

    directory = sweep.sweep_dir()
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, plan=plan, baseline_json=baseline.to_json()),
                                    trial_resources(sweep))
    tune_dir = directory / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        return tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_errored=True)
    if tune_dir.exists():  # a finished or unrestorable run: start a fresh one, results are reused
        tune_dir.rename(directory / f"tune-{int(time.time())}")
    callbacks = [MlflowTrialCallback(plan, runs, baseline)]
    if progress:
        objectives = [(o.metric, o.mode) for o in sweep.objectives]
        from infersweep.sweeps.space import feasible_space

        callbacks.append(ProgressCallback(trials_to_show(sweep, baseline.trial_id), objectives, sweep.constraints,
                                          baseline.trial_id, done, space_size=len(feasible_space(sweep).grid()),
                                          concurrency=sweep.search.max_concurrent))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher(sweep, constraint_keys(plan)),
                                    num_samples=samples or num_samples(sweep),
                                    # forked trials: a worker (and its zygote's imports) serves them all
                                    reuse_actors=plan.fork_trials),
        run_config=tune.RunConfig(name="tune", storage_path=str(directory), verbose=0, callbacks=callbacks,
                                  stop=DistinctTrialsStopper(distinct_target(sweep), {baseline.trial_id}, done),
                                  failure_config=tune.FailureConfig(max_failures=sweep.search.max_failures)),
    )
