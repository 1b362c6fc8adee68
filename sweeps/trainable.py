"""What a Ray worker runs for one sweep trial. Importable (never __main__): Ray pickles by path."""
from __future__ import annotations

from pathlib import Path

from sweeps.spec import SweepSpec, constraint_violation
from trials.measure import relative_to
from trials.spec import TrialReport

WORST = {"min": 1e6, "max": -1e6}
INFEASIBLE_KEY = "infeasible"
#: the infersweep trial id in a Tune result ("trial_id" is Ray's own and overwrites ours)
SPEC_ID = "spec_id"


def constraint_keys(sweep: SweepSpec) -> list[str]:
    return [INFEASIBLE_KEY] + [f"constraint_{i}" for i in range(len(sweep.constraints))]


def trials_dir(sweep: SweepSpec) -> Path:
    return sweep.sweep_dir() / "trials"


def run_or_reuse(sweep: SweepSpec, knobs: dict) -> tuple[TrialReport, Path, bool]:
    """Run the trial for `knobs` unless its report already exists (duplicates, resumes)."""
    from trials.engine import run_trial

    spec = sweep.trial_spec(knobs)
    directory = trials_dir(sweep) / spec.trial_id()
    path = directory / "report.json"
    if path.exists():
        return TrialReport.from_json(path.read_text()), path, True
    return run_trial(spec, directory), path, False


def tune_result(sweep: SweepSpec, report: TrialReport, baseline: TrialReport) -> dict:
    """Every objective finite (worst case when the trial did not run) plus constraint values
    (> 0 = violated) so the sampler learns to avoid infeasible corners."""
    ok = report.status == "ok"
    metrics = {**report.metrics, **relative_to(report, baseline, sweep.confidence)} if ok else {}
    result = {o.metric: float(metrics.get(o.metric, WORST[o.mode])) for o in sweep.objectives}
    result[INFEASIBLE_KEY] = 0.0 if ok else 1.0
    for i, text in enumerate(sweep.constraints):
        result[f"constraint_{i}"] = float(constraint_violation(text, metrics)) if ok else 1.0
    objectives = {o.metric for o in sweep.objectives}
    result.update({f"m_{k}": float(v) for k, v in metrics.items() if k not in objectives})
    result.update({"status": report.status, SPEC_ID: report.trial_id})
    return result


def sweep_trial(config: dict, sweep_json: str, baseline_json: str) -> dict:
    """The Ray Tune function trainable: one trial in this (fresh) worker process."""
    from ray import tune

    sweep = SweepSpec.model_validate_json(sweep_json)
    baseline = TrialReport.from_json(baseline_json)
    report, path, reused = run_or_reuse(sweep, config)
    result = tune_result(sweep, report, baseline)
    # the report itself too: the driver keeps a copy when the workers' disks are not shared
    result.update(report_path=str(path), reused=reused, report_json=report.to_json())
    tune.report(result)
    return result
