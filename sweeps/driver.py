"""Launch and resume sweeps: baseline first, then Ray Tune + Optuna, then frontier and logging."""
from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from infersweep.sweeps import pareto
from infersweep.sweeps.errors import SweepError, SweepInterrupted
from infersweep.sweeps.finalists import SPEEDUP_IN_TRIAL, head_to_head
from infersweep.sweeps.interrupt import fit, interruptible
from infersweep.sweeps.launch import build_tuner, check_resources, quiet_ray_and_mlflow, run_baseline
from infersweep.sweeps.results import load_results
from infersweep.sweeps.space import feasible_space
from infersweep.sweeps.spec import SweepSpec
from infersweep.sweeps.state import prepare_dir, reported_ids
from infersweep.sweeps.trainable import TrialPlan, trials_dir
from infersweep.trials.measure import SPEEDUP, relative_to
from infersweep.trials.spec import TrialReport

# SweepError and SweepInterrupted are what run_sweep raises: importable from here too
__all__ = ["ReportWriter", "SweepError", "SweepInterrupted", "SweepResult", "reconcile", "run_sweep"]

#: writes a sweep's report from (sweep, rows, frontier, its tracking.sweep_runs.SweepRuns) and returns
#: the files written; the CLI passes one (dashboards/): sweeps/ never imports a layer above it
ReportWriter = Callable[[SweepSpec, list[pareto.TrialRow], list[pareto.TrialRow], Any], list[Path]]


@dataclass
class SweepResult:
    sweep: SweepSpec
    baseline: TrialReport
    rows: list[pareto.TrialRow]
    frontier: list[pareto.TrialRow]
    tracking_uri: str
    artifacts: list[Path]
    wall_s: float
    experiment_id: str | None = None
    #: wall seconds of the launch's stages (setup, ray_init, baseline, search, finalists, reconcile,
    #: report, close): where a sweep's time went besides its trials (bench/overhead.py)
    stages_s: dict[str, float] = field(default_factory=dict)


class StageClock:
    """Wall seconds per named stage of a launch (a stage entered twice adds up)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


def run_sweep(sweep: SweepSpec, address: str | None = None, tracking_uri: str | None = None,
              resume: bool = False, progress: bool = True, say=print, restart: bool = False,
              report: Optional[ReportWriter] = None, fresh: bool = False) -> SweepResult:
    """Check, connect, measure the baseline, search, then log the frontier (and `report` it).
    `fresh`: run everything anew rather than reuse earlier sweeps' results (sweeps.warm)."""
    from infersweep.sweeps.checks import preflight
    from infersweep.tracking.store import resolve_uri
    from infersweep.tracking.sweep_runs import SweepRuns

    started = time.perf_counter()
    clock = StageClock()
    with clock("setup"):
        quiet_ray_and_mlflow()
        for warning in preflight(sweep):  # bad input stops here (SweepSpecError), before anything starts
            say(f"note: {warning}")
        uri = resolve_uri(tracking_uri or sweep.tracking.uri)
        runs = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash())
        _ = runs.experiment_id  # the tracking store answers (or fails fast) before anything is written
        prepare_dir(sweep, resume, restart, say, on_archive=runs.archive)
        space = feasible_space(sweep)
        for line in space.describe():
            say(line)
    try:
        with clock("setup"):
            runs.log_ruled_out(space.table())
        baseline = _search(sweep, runs, address, uri, resume, progress, say, fresh, clock)
    except (KeyboardInterrupt, SweepInterrupted):
        runs.end_sweep("KILLED", "interrupted (Ctrl-C or SIGTERM)")
        raise SweepInterrupted(f"sweep {sweep.name!r} interrupted; finished trials are saved. "
                               f"Continue it with: infersweep resume {sweep.name}") from None
    except BaseException as exc:
        runs.end_sweep("FAILED", str(exc) or type(exc).__name__)
        raise
    return finish(sweep, baseline, runs, uri, started, report, say, clock)


def _search(sweep: SweepSpec, runs, address, uri: str, resume: bool, progress: bool, say,
            fresh: bool = False, clock: StageClock | None = None) -> TrialReport:
    """Connect, measure the baseline, run the search; returns the baseline."""
    from infersweep.cluster.connect import ConnectError, connect

    clock = clock or StageClock()
    try:
        with clock("ray_init"):
            connect(address, tracking_uri=uri)
    except (ConnectError, ConnectionError) as exc:
        raise SweepError(str(exc)) from None
    plan = TrialPlan.of(sweep)
    with interruptible() as interrupted:
        check_resources(sweep)
        say(f"baseline {sweep.baseline_spec().short_name()} ...")
        with clock("baseline"):
            baseline = run_baseline(sweep, plan)
        with clock("mlflow_baseline"):
            _log_baseline(runs, sweep, baseline)
        say(f"baseline: {baseline.metrics['latency_ms_per_sample']:.1f} ms/sample, "
            f"ROUGE-Lsum {baseline.metrics['rougeLsum']:.2f}")
        if not resume and not fresh:
            _warm_start(sweep, plan, baseline, say)
        done = reported_ids(sweep) - {baseline.trial_id}
        owed = 0 if resume else _owed(sweep, done)
        if resume or owed:
            if done and not resume:
                say(f"{len(done)} trial(s) already finished are reused; {owed} more to run")
            with clock("search"):
                fit(build_tuner(sweep, plan, baseline, runs, resume, progress, frozenset(done)), interrupted)
                if resume:
                    _top_up(sweep, plan, baseline, runs, progress, say, interrupted)
        else:
            say(f"all {len(done)} trial(s) of {sweep.name!r} have finished; raise search.num_trials "
                f"or add values to the space to run more")
    return baseline


def _warm_start(sweep: SweepSpec, plan: TrialPlan, baseline: TrialReport, say) -> None:
    from infersweep.sweeps.warm import find_reusable, reuse

    found = find_reusable(sweep, baseline)
    if found:
        reuse(sweep, plan, baseline, found)
        sources = sorted({item.source.parent.parent.name for item in found})
        say(f"warm start: {len(found)} result(s) measured by {', '.join(sources)} on these weights, hardware "
            f"and libraries are reused (launch --fresh runs them again)")


def _owed(sweep: SweepSpec, done: set[str]) -> int:
    from infersweep.sweeps.search import distinct_target

    return max(0, distinct_target(sweep) - len(done))


def _log_baseline(runs, sweep: SweepSpec, baseline: TrialReport) -> None:
    try:  # the report is on disk; a tracking server that is down now is reconciled at the end
        runs.trial_finished(baseline, relative_to(baseline, baseline, sweep.confidence),
                            trials_dir(sweep) / baseline.trial_id / "report.json", update=True)
    except Exception as exc:
        logging.getLogger(__name__).warning("MLflow: the baseline is logged at the end (%s)", exc)


def _top_up(sweep: SweepSpec, plan: TrialPlan, baseline: TrialReport, runs, progress: bool, say,
            interrupted: threading.Event) -> None:
    """Run what a resumed sweep still owes: trials a killed driver had started after Tune's last
    state save are unknown to the restored run (and their grid points look taken)."""
    from infersweep.sweeps.search import missing_trials, release_stale_trials

    reported = reported_ids(sweep)
    missing, grid_points = missing_trials(sweep, reported, baseline.trial_id)
    if not missing:
        return
    released = release_stale_trials(sweep, grid_points)
    say(f"{missing} more trial(s) to run: started by the interrupted run after its last saved state "
        f"({released} left running in the study)")
    fit(build_tuner(sweep, plan, baseline, runs, False, progress, frozenset(reported),
                    samples=len(grid_points) or None), interrupted)


def reconcile(sweep: SweepSpec, runs, baseline: TrialReport, finalists: dict[str, dict] | None = None) -> int:
    """Log every report on disk that MLflow does not have yet, or holds with other relative values
    (another launch's baseline, no head-to-head yet); idempotent. `finalists` (trial id -> frontier
    row metrics) carry the head-to-head speedups onto the finalists' runs. Returns how many were
    logged."""
    from infersweep.tracking.sweep_runs import relative_key

    logged = _logged_runs(runs)
    count = 0
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        relative = relative_to(report, baseline, sweep.confidence) if report.ok else {}
        relative.update({k: v for k, v in (finalists or {}).get(report.trial_id, {}).items()
                         if k in (SPEEDUP, SPEEDUP_IN_TRIAL) and v is not None})
        if logged.get(report.trial_id) == relative_key(relative):
            continue  # logged during the search with these very values
        runs.trial_finished(report, relative, path, update=True)  # relative to this launch's baseline
        count += 1
    return count


def _logged_runs(runs) -> dict[str, str]:
    """trial id -> relative_key of the runs logged completely (tracking.sweep_runs), in one query;
    {} (log everything) where `runs` cannot say."""
    known = getattr(runs, "logged_runs", None)
    return known() if known else {}


def finish(sweep: SweepSpec, baseline: TrialReport, runs, uri: str, started: float,
           report: Optional[ReportWriter] = None, say=print, clock: StageClock | None = None) -> SweepResult:
    """The frontier written and logged with every trial; MLflow down is a SweepError that says
    nothing is lost."""
    clock = clock or StageClock()
    with clock("finalists"):
        _time_finalists(sweep, baseline, load_results(sweep, baseline).frontier, say)
    with clock("frontier"):
        results = load_results(sweep, baseline)  # the finalists' speedups from the head-to-head
        artifacts = pareto.write_frontier(results.frontier, sweep.sweep_dir())
        summary = sweep.sweep_dir() / "trials.json"
        summary.write_text(json.dumps([r.__dict__ for r in results.rows], indent=2))
        artifacts.append(summary)
    try:
        with clock("reconcile"):
            reconcile(sweep, runs, baseline, {r.trial_id: r.metrics for r in results.frontier})
        if report:
            with clock("report"):
                artifacts.extend(_report(report, sweep, results.rows, results.frontier, runs))
        with clock("close"):
            runs.close([r.trial_id for r in results.frontier], artifacts)
            for row in results.frontier:
                runs.log_model_artifacts(row.trial_id, trials_dir(sweep) / row.trial_id)
    except Exception as exc:
        from infersweep.tracking.store import is_tracking_error

        if not is_tracking_error(exc):
            raise
        raise SweepError(
            f"every trial of {sweep.name!r} finished and its report is in {trials_dir(sweep)} "
            f"(frontier: {sweep.sweep_dir() / 'pareto.csv'}), but logging to MLflow at {uri} failed: "
            f"{exc}. When the server is back, `infersweep resume {sweep.name}` (same --address, "
            f"--tracking-uri, --storage) logs what is missing; nothing is run again") from None
    return SweepResult(sweep, baseline, results.rows, results.frontier, uri, artifacts,
                       time.perf_counter() - started, runs.experiment_id, dict(clock.seconds))


def _time_finalists(sweep: SweepSpec, baseline: TrialReport, frontier: list[pareto.TrialRow], say=print) -> None:
    """The head-to-head (sweeps.finalists); one that cannot run leaves the trials' own speedups."""
    from infersweep.sweeps.results import read_report

    finalists = [read_report(sweep, r.trial_id) for r in frontier if r.trial_id != baseline.trial_id]
    try:
        head_to_head(sweep, baseline, finalists, say)
    except Exception as exc:  # the trials' figures stand; the results are safe on disk
        logging.getLogger(__name__).warning("finalists head to head not run (%s); speedups are the trials' own", exc)


def _report(write: ReportWriter, sweep: SweepSpec, rows, front, runs) -> list[Path]:
    """The sweep's report, logged with the other sweep artifacts. A report that cannot be drawn
    is a warning, never a failed sweep."""
    try:
        return list(write(sweep, rows, front, runs))
    except Exception as exc:  # results are already safe on disk and in MLflow
        logging.getLogger(__name__).warning("the Pareto report was not written: %s", exc)
        return []
