"""What a Ray worker runs for one sweep trial. Importable (never __main__): Ray pickles by path."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from infersweep.sweeps.constraints import constraint_violation
from infersweep.sweeps.spec import Objective, SequentialSpec, SweepSpec
from infersweep.sweeps.template import point_spec
from infersweep.trials.measure import relative_to
from infersweep.trials.spec import TrialReport, TrialSpec

__all__ = ["FORK_ENV", "INFEASIBLE_KEY", "SPEC_ID", "WORST", "TrialPlan", "constraint_keys", "fork_trials_wanted",
           "run_or_reuse", "sweep_trial", "trial_process", "trials_dir", "tune_result"]

WORST = {"min": 1e6, "max": -1e6}
INFEASIBLE_KEY = "infeasible"
#: the infersweep trial id in a Tune result ("trial_id" is Ray's own and overwrites ours)
SPEC_ID = "spec_id"
#: set to 0 to run each trial in a fresh Ray worker instead of a process forked from a warm zygote
FORK_ENV = "INFERSWEEP_FORK_TRIALS"


def trials_dir(sweep: SweepSpec) -> Path:
    return sweep.sweep_dir() / "trials"


class TrialPlan(BaseModel):
    """What every trial of a sweep shares, all a worker or a driver callback needs: the trial
    template, where reports go, and how a result is scored (not the whole sweep file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: TrialSpec
    trials_dir: Path
    objectives: tuple[Objective, ...]
    constraints: tuple[str, ...]
    confidence: float
    sequential: SequentialSpec = SequentialSpec(max_docs=0)
    #: each trial in a process forked from its worker's zygote (sweeps.zygote), workers reused
    #: across trials; False: a fresh Ray worker per trial (env INFERSWEEP_FORK_TRIALS=0)
    fork_trials: bool = False

    @classmethod
    def of(cls, sweep: SweepSpec) -> "TrialPlan":
        return cls(template=sweep.template(), trials_dir=trials_dir(sweep), objectives=tuple(sweep.objectives),
                   constraints=tuple(sweep.constraints), confidence=sweep.confidence, sequential=sweep.sequential,
                   fork_trials=fork_trials_wanted())

    def trial_spec(self, knobs: dict) -> TrialSpec:
        """The TrialSpec of one point of the space (as SweepSpec.trial_spec)."""
        return point_spec(self.template, knobs)


def fork_trials_wanted() -> bool:
    """Trials forked from a warm zygote (the default) unless INFERSWEEP_FORK_TRIALS=0, or off Linux."""
    import os
    import sys

    wanted = os.environ.get(FORK_ENV, "1").strip().lower() not in ("0", "false", "no")
    return wanted and sys.platform.startswith("linux")


def constraint_keys(plan: TrialPlan) -> list[str]:
    return [INFEASIBLE_KEY] + [f"constraint_{i}" for i in range(len(plan.constraints))]


def run_or_reuse(plan: TrialPlan, knobs: dict) -> tuple[TrialReport, Path, bool]:
    """Run the trial for `knobs` unless its report already exists (duplicates, resumes)."""
    from infersweep.trials.runner import run_trial

    import fcntl

    spec = plan.trial_spec(knobs)
    directory = plan.trials_dir / spec.trial_id()
    path = directory / "report.json"
    directory.mkdir(parents=True, exist_ok=True)
    # one runner per trial folder: a worker orphaned by a killed driver may still be running this
    # trial when the resumed sweep starts it again; the second waits, then reuses what it wrote
    with open(directory / ".running", "w") as running:
        fcntl.flock(running, fcntl.LOCK_EX)
        if path.exists():
            return TrialReport.from_json(path.read_text()), path, True
        return run_trial(spec, directory), path, False


def tune_result(plan: TrialPlan, report: TrialReport, baseline: TrialReport) -> dict:
    """Every objective finite (worst case when the trial did not run) plus constraint values
    (> 0 = violated) so the sampler learns to avoid infeasible corners."""
    ok = report.status == "ok"
    metrics = {**report.metrics, **relative_to(report, baseline, plan.confidence)} if ok else {}
    result = {o.metric: float(metrics.get(o.metric, WORST[o.mode])) for o in plan.objectives}
    result[INFEASIBLE_KEY] = 0.0 if ok else 1.0
    for i, text in enumerate(plan.constraints):
        result[f"constraint_{i}"] = float(constraint_violation(text, metrics)) if ok else 1.0
    objectives = {o.metric for o in plan.objectives}
    result.update({f"m_{k}": float(v) for k, v in metrics.items() if k not in objectives})
    result.update({"status": report.status, SPEC_ID: report.trial_id})
    return result


def _process_started_at() -> float:
    """This process's start (epoch seconds)."""
    import psutil

    return psutil.Process().create_time()


def sweep_trial(config: dict, plan: TrialPlan, baseline_json: str) -> dict:
    """The Ray Tune function trainable: one trial in a fresh process, forked from this worker's
    zygote (sweeps.zygote: the imports paid once per worker) when `plan.fork_trials`, else run in
    this worker (a fresh Ray worker per trial)."""
    import time

    from ray import tune

    entered = time.time()
    if getattr(plan, "fork_trials", False):
        from infersweep.sweeps.zygote import shared

        # the trial process scores the result too: this worker never imports what scoring needs
        result = shared().call("infersweep.sweeps.trainable:trial_process", plan.model_dump_json(), config,
                               baseline_json)
        run_s, extend_s = result.pop("run_s"), result.pop("extend_s")
    else:
        report, path, reused, run_s, extend_s = _run_claimed(plan, config, TrialReport.from_json(baseline_json))
        result = _result_of(plan, report, TrialReport.from_json(baseline_json), path, reused)
    # where the worker's time went (bench/overhead.py): process start, trainable entered, trial ran
    result.update(worker_started_at=_process_started_at(), worker_entered_at=entered, worker_run_s=run_s,
                  worker_extend_s=extend_s, worker_left_at=time.time())
    tune.report(result)
    return result


def trial_process(plan_json: str, config: dict, baseline_json: str) -> dict:
    """In the forked trial process (sweeps.zygote): run the trial; its Tune result (JSON) and
    the seconds the trial and its sequential evaluation took."""
    plan = TrialPlan.model_validate_json(plan_json)
    baseline = TrialReport.from_json(baseline_json)
    report, path, reused, run_s, extend_s = _run_claimed(plan, config, baseline)
    return {**_result_of(plan, report, baseline, path, reused), "run_s": run_s, "extend_s": extend_s}


def _result_of(plan: TrialPlan, report: TrialReport, baseline: TrialReport, path: Path, reused: bool) -> dict:
    """The Tune result of a trial; the report itself too: the driver keeps a copy when the
    workers' disks are not shared."""
    result = tune_result(plan, report, baseline)
    result.update(report_path=str(path), reused=reused, report_json=report.to_json())
    return result


def _run_claimed(plan: TrialPlan, config: dict, baseline: TrialReport) -> tuple[TrialReport, Path, bool, float, float]:
    """The trial on cores claimed for it: report, its path, whether it was reused, and the
    seconds the trial and its sequential evaluation took."""
    import time

    from infersweep.sweeps.sequential import extend_until_decided
    from infersweep.trials.affinity import claim_cpus, release_cpus

    started = time.time()
    claim_cpus(plan.template.cpus)  # concurrent trials on one node get disjoint cores (trials.affinity)
    try:
        report, path, reused = run_or_reuse(plan, config)
        ran = time.time()
        if not reused:
            report = extend_until_decided(plan, report, baseline, path)
    finally:
        release_cpus()
    return report, path, reused, ran - started, time.time() - ran
