"""The finalists head to head: the frontier's members and the baseline timed again, interleaved.

A trial's speedup compares its latency with the baseline's, measured minutes apart under whatever
load the machine had then. At the end of a sweep the driver times the finalists again in one
sequence it controls: round-robin over the baseline and every frontier member, the starting point
rotating each round, each variant in a fresh worker process as in its trial (artifacts come from
the cache). A finalist's speedup is the median over rounds of (baseline / finalist) latency of the
same round; the trial's own figure is kept as `speedup_in_trial`. Both land in finalists.json,
pareto.csv, MLflow and the promotion.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from infersweep.sweeps.spec import SweepSpec
from infersweep.trials.measure import LATENCY_PER_SAMPLE, SPEEDUP
from infersweep.trials.spec import TrialReport, TrialSpec

__all__ = ["FINALISTS_FILE", "SPEEDUP_IN_TRIAL", "finalist_metrics", "head_to_head", "round_orders", "summarize"]

FINALISTS_FILE = "finalists.json"
SPEEDUP_IN_TRIAL = "speedup_in_trial"


def round_orders(ids: list[str], rounds: int) -> list[list[str]]:
    """Round-robin orders, rotated so that each variant takes each position as often as it can
    (a drift of the machine over the run does not favour whoever goes first)."""
    return [ids[r % len(ids):] + ids[:r % len(ids)] for r in range(rounds)] if ids else []


def summarize(latencies: dict[str, list[float]], baseline_id: str) -> dict[str, dict]:
    """Per finalist: the median over rounds of baseline/finalist latency of the same round."""
    base = latencies[baseline_id]
    out = {}
    for trial_id, values in latencies.items():
        if trial_id == baseline_id:
            continue
        ratios = [b / v for b, v in zip(base, values) if v > 0]
        out[trial_id] = {SPEEDUP: statistics.median(ratios), LATENCY_PER_SAMPLE: statistics.median(values),
                         "rounds": [round(r, 4) for r in ratios]}
    return out


def head_to_head(sweep: SweepSpec, baseline: TrialReport, finalists: list[TrialReport], say=print) -> dict:
    """Time the baseline and `finalists` interleaved; write and return finalists.json's content."""
    if sweep.finalists.rounds == 0 or not finalists:
        _path(sweep).unlink(missing_ok=True)
        return {}
    specs = {r.trial_id: _timing_only(r.spec, sweep) for r in [baseline, *finalists]}
    latencies: dict[str, list[float]] = {trial_id: [] for trial_id in specs}
    phases: dict[str, float] = {}  # summed over every timing: what a trial's phases count as work
    orders = round_orders(list(specs), sweep.finalists.rounds)
    say(f"finalists head to head: {len(finalists)} variant(s) and the baseline, {len(orders)} interleaved rounds ...")
    run, done = _remote_timer(sweep)
    try:
        for order in orders:
            for trial_id in order:
                timing = run(specs[trial_id])
                latencies[trial_id].append(timing[LATENCY_PER_SAMPLE])
                for name, seconds in timing.get("phases_s", {}).items():
                    phases[name] = phases.get(name, 0.0) + seconds
    finally:
        done()
    result = {"baseline": baseline.trial_id, "orders": orders,
              "latency_ms_per_sample": latencies, "finalists": summarize(latencies, baseline.trial_id),
              "phases_s": {name: round(seconds, 3) for name, seconds in phases.items()}}
    _path(sweep).write_text(json.dumps(result, indent=2))
    return result


def finalist_metrics(sweep: SweepSpec, baseline_id: str, trial_metrics: dict[str, dict]) -> dict[str, dict]:
    """trial id -> the metrics finalists.json overrides ({speedup, speedup_in_trial}), for the finalists
    of this baseline; {} when there is no head-to-head for it."""
    path = _path(sweep)
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("baseline") != baseline_id:  # timed against another launch's baseline
        return {}
    return {trial_id: {SPEEDUP: figures[SPEEDUP], SPEEDUP_IN_TRIAL: trial_metrics.get(trial_id, {}).get(SPEEDUP)}
            for trial_id, figures in saved["finalists"].items() if trial_id in trial_metrics}


def _path(sweep: SweepSpec) -> Path:
    return sweep.sweep_dir() / FINALISTS_FILE


def _timing_only(spec: TrialSpec, sweep: SweepSpec) -> TrialSpec:
    timing = spec.timing.model_copy(update={"max_seconds": sweep.finalists.max_seconds})
    return spec.model_copy(update={"timing": timing})


def _time_in_worker(spec_json: str) -> dict:
    from infersweep.trials.retime import time_variant

    return time_variant(TrialSpec.from_json(spec_json))


def _remote_timer(sweep: SweepSpec):
    """(time, done): `time(spec)` times one spec in a fresh process with the trials' resources;
    `done()` releases what it held. Each timing runs in a process forked from one warm zygote
    (sweeps.zygote) in one Ray actor, as trials run; with forking off (INFERSWEEP_FORK_TRIALS=0),
    in a fresh Ray worker per timing."""
    import ray

    from infersweep.sweeps.launch import custom_resources, trial_resources
    from infersweep.sweeps.trainable import fork_trials_wanted

    if not ray.is_initialized():  # finish() outside a launch (a test, a tool): nothing to run on
        raise RuntimeError("Ray is not connected")
    resources = trial_resources(sweep)
    options = dict(num_cpus=resources["cpu"], num_gpus=resources["gpu"], resources=custom_resources(resources) or None)
    if not fork_trials_wanted():
        task = ray.remote(max_calls=1, **options)(_time_in_worker)
        return (lambda spec: ray.get(task.remote(spec.to_json()))), (lambda: None)
    timer = ray.remote(**options)(_ForkingTimer).remote()
    return (lambda spec: ray.get(timer.time.remote(spec.to_json()))), (lambda: ray.kill(timer))


class _ForkingTimer:
    """A Ray actor whose zygote forks a fresh process for each timing (the imports paid once)."""

    def time(self, spec_json: str) -> dict:
        from infersweep.sweeps.zygote import shared

        return shared().call("infersweep.sweeps.finalists:_time_in_worker", spec_json)
