"""Launch and resume sweeps: baseline first, then Ray Tune + Optuna, then frontier and logging."""
from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sweeps import pareto
from sweeps.spec import SweepSpec
from sweeps.trainable import constraint_keys, sweep_trial, trials_dir
from trials.errors import InfersweepError
from trials.measure import relative_to
from trials.spec import TrialReport

SPEC_FILE = "sweep.json"


class SweepError(InfersweepError, RuntimeError):
    """A sweep that cannot start or go on; the message says why and what to do."""


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


#: what a trial's result depends on: a change here makes earlier results a different sweep
RESULT_FIELDS = ("model", "task", "dataset", "baseline", "trial", "resources", "objectives", "constraints",
                 "confidence")


def prepare_dir(sweep: SweepSpec, resume: bool = False, restart: bool = False, say=print,
                on_archive=lambda archived_name: None) -> Path:
    """The sweep's folder, holding `sweep`. A changed spec continues the sweep when earlier
    results stay valid (more trials, values added to the space, search or tracking settings);
    otherwise it needs a new name or `restart`, which archives the old folder first (and calls
    `on_archive` with the archived folder's name, e.g. to move the MLflow runs along)."""
    directory = sweep.sweep_dir()
    saved = directory / SPEC_FILE
    if saved.exists() and not restart and not resume:
        old = SweepSpec.model_validate_json(saved.read_text())
        changed = changed_fields(old, sweep)
        if changed and _has_results(old):
            raise SweepError(
                f"sweep {sweep.name!r} in {directory} has results for a different {', '.join(changed)}; "
                f"give this sweep another name, or relaunch with --restart to archive those results "
                f"and start over")
        restart = bool(changed)  # nothing worth keeping (e.g. a failed baseline): start clean
        if old.spec_hash() != sweep.spec_hash() and not changed:
            say(f"continuing sweep {sweep.name!r} with the changed settings: finished trials are reused")
    if saved.exists() and restart:
        archived = directory.with_name(f"{sweep.name}.archived-{time.strftime('%Y%m%d-%H%M%S')}")
        directory.rename(archived)
        on_archive(archived.name)
        say(f"archived the earlier results of {sweep.name!r} to {archived}")
    directory.mkdir(parents=True, exist_ok=True)
    saved.write_text(sweep.model_dump_json(indent=2))
    return directory


def changed_fields(old: SweepSpec, new: SweepSpec) -> list[str]:
    """The keys whose change makes earlier results invalid (see RESULT_FIELDS); a space that
    loses values counts too (the search's history would hold values it no longer knows)."""
    changed = [f for f in RESULT_FIELDS if getattr(old, f) != getattr(new, f)]
    old_axes, new_axes = old.space.axes(), new.space.axes()
    changed += [f"space.{axis} (values removed)" for axis, values in old_axes.items()
                if not set(values) <= set(new_axes[axis])]
    return changed


def _has_results(sweep: SweepSpec) -> bool:
    """Any finished trial besides a failed baseline (a failed baseline is fixed by relaunching)."""
    for path in trials_dir(sweep).glob("*/report.json"):
        if TrialReport.from_json(path.read_text()).status == "ok":
            return True
    return False


def load_saved(name: str, storage: str = ".infersweep/sweeps") -> SweepSpec:
    path = Path(storage).expanduser().resolve() / name / SPEC_FILE
    if not path.exists():
        raise SweepError(f"no sweep named {name!r} under {Path(storage).resolve()}; "
                         f"launch it first (infersweep launch SPEC) or pass --storage")
    return SweepSpec.model_validate_json(path.read_text())


def trial_resources(sweep: SweepSpec) -> dict:
    resources = {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu}
    if sweep.resources.accelerator_type:
        resources[f"accelerator_type:{sweep.resources.accelerator_type}"] = 0.001
    return resources


def _run_remote_baseline(sweep_json: str) -> str:
    from trials.engine import run_trial

    sweep = SweepSpec.model_validate_json(sweep_json)
    spec = sweep.trial_spec(sweep.baseline.model_dump())
    return run_trial(spec, trials_dir(sweep) / spec.trial_id()).to_json()


def run_baseline(sweep: SweepSpec) -> TrialReport:
    """The baseline, measured anew in every launch (relative metrics never come from a baseline
    measured under other load), in a fresh worker process like every trial."""
    import ray

    resources = trial_resources(sweep)
    custom = {k: v for k, v in resources.items() if k not in ("cpu", "gpu")}  # accelerator_type:X
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], resources=custom or None,
                      max_calls=1)(_run_remote_baseline)
    report = TrialReport.from_json(ray.get(task.remote(sweep.model_dump_json())))
    from trials.engine import write_report

    local = trials_dir(sweep) / report.trial_id  # the worker may have written it on another node
    local.mkdir(parents=True, exist_ok=True)
    write_report(report, local)
    if report.status != "ok":
        raise SweepError(f"the baseline ({report.spec.short_name()}) did not run: {report.status}: "
                         f"{report.reason}. Fix `baseline:` in the sweep file and launch it again; "
                         f"no other trial was started")
    return report


def _check_resources(sweep: SweepSpec) -> None:
    from cluster.connect import missing_resources

    request = {"CPU": sweep.resources.cpu, "GPU": sweep.resources.gpu}
    if sweep.resources.accelerator_type:
        request[f"accelerator_type:{sweep.resources.accelerator_type}"] = 0.001
    reason = missing_resources(request)
    if reason:
        raise SweepError(reason)


def _tuner(sweep: SweepSpec, directory: Path, baseline: TrialReport, runs, resume: bool, progress: bool,
           done: frozenset[str] = frozenset(), samples: int | None = None):
    from ray import tune

    from sweeps.callbacks import MlflowTrialCallback, ProgressCallback
    from sweeps.search import DistinctTrialsStopper, distinct_target, num_samples, searcher, trials_to_show

    baseline_json = baseline.to_json()
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, sweep_json=sweep.model_dump_json(), baseline_json=baseline_json),
        trial_resources(sweep))
    tune_dir = directory / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        return tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_errored=True)
    if tune_dir.exists():  # a finished or unrestorable run: start a fresh one, results are reused
        tune_dir.rename(directory / f"tune-{int(time.time())}")
    callbacks = [MlflowTrialCallback(sweep.model_dump_json(), runs, baseline)]
    if progress:
        objectives = [(o.metric, o.mode) for o in sweep.objectives]
        callbacks.append(ProgressCallback(trials_to_show(sweep, baseline.trial_id), objectives, sweep.constraints,
                                          baseline.trial_id, done))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher(sweep, constraint_keys(sweep)),
                                    num_samples=samples or num_samples(sweep), reuse_actors=False),
        run_config=tune.RunConfig(name="tune", storage_path=str(directory), verbose=0, callbacks=callbacks,
                                  stop=DistinctTrialsStopper(distinct_target(sweep), {baseline.trial_id}, done),
                                  failure_config=tune.FailureConfig(max_failures=sweep.search.max_failures)),
    )


def collect_rows(sweep: SweepSpec, baseline: TrialReport) -> list[pareto.TrialRow]:
    """Every trial report on disk: the source of truth (MLflow is reconciled from it)."""
    rows = []
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        metrics = dict(report.metrics)
        if report.ok:
            metrics.update(relative_to(report, baseline, sweep.confidence))
        rows.append(pareto.TrialRow(report.trial_id, report.status, report.spec.knobs(), metrics,
                                    report.reason, baseline=report.trial_id == baseline.trial_id))
    return rows


def reconcile(sweep: SweepSpec, runs, baseline: TrialReport) -> int:
    """Log every report on disk that MLflow does not have yet (idempotent)."""
    logged = 0
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        relative = relative_to(report, baseline, sweep.confidence) if report.ok else {}
        runs.trial_finished(report, relative, path, update=True)  # relative to this launch's baseline
        logged += 1
    return logged


def quiet_ray_and_mlflow() -> None:
    """Our progress bar and tables replace Ray's and MLflow's console output."""
    import logging
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from tracking.store import quiet

    quiet()
    for name in ("optuna", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # on Ctrl-C we say how to continue (`infersweep resume`); Tune's own advice is its Python API
    logging.getLogger("ray.tune.tune").addFilter(_drop_tune_restore_advice)
    # GridSampler stops the study when the grid is exhausted; Ray warns about it harmlessly
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


class SweepInterrupted(SweepError):
    """Ctrl-C or SIGTERM: the sweep stopped early; its state is saved for `infersweep resume`."""


def _drop_tune_restore_advice(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return "Tuner.restore" not in message and "Stop signal received" not in message


def run_sweep(sweep: SweepSpec, address: str | None = None, tracking_uri: str | None = None,
              resume: bool = False, progress: bool = True, say=print, restart: bool = False) -> SweepResult:
    from sweeps.checks import preflight
    from tracking.store import resolve_uri
    from tracking.sweep_runs import SweepRuns

    started = time.perf_counter()
    quiet_ray_and_mlflow()
    for warning in preflight(sweep):  # bad input stops here (SweepSpecError), before anything starts
        say(f"note: {warning}")
    uri = resolve_uri(tracking_uri or sweep.tracking.uri)
    runs = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash())
    _ = runs.experiment_id  # the tracking store answers (or fails fast) before anything is written
    directory = prepare_dir(sweep, resume, restart, say, on_archive=runs.archive)
    try:
        runs.parent_run_id()
        baseline = _search(sweep, directory, runs, address, uri, resume, progress, say)
    except (KeyboardInterrupt, SweepInterrupted):
        runs.end_sweep("KILLED", "interrupted (Ctrl-C or SIGTERM)")
        raise SweepInterrupted(f"sweep {sweep.name!r} interrupted; finished trials are saved. "
                               f"Continue it with: infersweep resume {sweep.name}") from None
    except BaseException as exc:
        runs.end_sweep("FAILED", str(exc) or type(exc).__name__)
        raise
    return finish(sweep, baseline, runs, uri, started)


def _search(sweep: SweepSpec, directory: Path, runs, address, uri: str, resume: bool, progress: bool,
            say) -> TrialReport:
    """Connect, measure the baseline, run the search; returns the baseline."""
    from cluster.connect import ConnectError, connect

    try:
        connect(address, tracking_uri=uri)
    except (ConnectError, ConnectionError) as exc:
        raise SweepError(str(exc)) from None
    with _interruptible() as interrupted:
        _check_resources(sweep)
        say(f"baseline {sweep.trial_spec(sweep.baseline.model_dump()).short_name()} ...")
        baseline = run_baseline(sweep)
        _log_baseline(runs, sweep, baseline)
        say(f"baseline: {baseline.metrics['latency_ms_per_sample']:.1f} ms/sample, "
            f"ROUGE-Lsum {baseline.metrics['rougeLsum']:.2f}")
        done = _finished_trials(sweep, baseline)
        owed = 0 if resume else _owed(sweep, done)
        if resume or owed:
            if done and not resume:
                say(f"{len(done)} trial(s) already finished are reused; {owed} more to run")
            _fit(_tuner(sweep, directory, baseline, runs, resume, progress, frozenset(done)), interrupted)
            if resume:
                _top_up(sweep, directory, baseline, runs, progress, say, interrupted)
        else:
            say(f"all {len(done)} trial(s) of {sweep.name!r} have finished; raise search.num_trials "
                f"or add values to the space to run more")
    return baseline


def _reported_ids(sweep: SweepSpec) -> set[str]:
    return {p.parent.name for p in trials_dir(sweep).glob("*/report.json")}


def _finished_trials(sweep: SweepSpec, baseline: TrialReport) -> set[str]:
    return _reported_ids(sweep) - {baseline.trial_id}


def _owed(sweep: SweepSpec, done: set[str]) -> int:
    from sweeps.search import distinct_target

    return max(0, distinct_target(sweep) - len(done))


def _log_baseline(runs, sweep: SweepSpec, baseline: TrialReport) -> None:
    try:  # the report is on disk; a tracking server that is down now is reconciled at the end
        runs.trial_finished(baseline, relative_to(baseline, baseline, sweep.confidence),
                            trials_dir(sweep) / baseline.trial_id / "report.json", update=True)
    except Exception as exc:
        logging.getLogger(__name__).warning("MLflow: the baseline is logged at the end (%s)", exc)


@contextmanager
def _interruptible():
    """Ctrl-C / SIGTERM during the search stop Tune gracefully (its state is saved) and then the
    sweep; a second signal, or one outside the search, stops at once. Yields the 'was
    interrupted' event."""
    import os
    import signal
    import threading

    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.is_set() or not _TUNE_RUNNING.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop (it always listens on USR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


#: set while Tuner.fit runs (only then is SIGUSR1 Tune's graceful stop, not a kill)
_TUNE_RUNNING = threading.Event()


def _fit(tuner, interrupted: threading.Event) -> None:
    _TUNE_RUNNING.set()
    try:
        tuner.fit()
    finally:
        _TUNE_RUNNING.clear()
    if interrupted.is_set():
        raise SweepInterrupted("interrupted")


def _top_up(sweep: SweepSpec, directory: Path, baseline: TrialReport, runs, progress: bool, say,
            interrupted: threading.Event) -> None:
    """Run what a resumed sweep still owes: trials a killed driver had started after Tune's last
    state save are unknown to the restored run (and their grid points look taken)."""
    from sweeps.search import missing_trials, release_stale_trials

    reported = _reported_ids(sweep)
    missing, grid_points = missing_trials(sweep, reported, baseline.trial_id)
    if not missing:
        return
    released = release_stale_trials(sweep, grid_points)
    say(f"{missing} more trial(s) to run: started by the interrupted run after its last saved state "
        f"({released} left running in the study)")
    _fit(_tuner(sweep, directory, baseline, runs, False, progress, frozenset(reported),
                samples=len(grid_points) or None), interrupted)


def finish(sweep: SweepSpec, baseline: TrialReport, runs, uri: str, started: float) -> SweepResult:
    rows = collect_rows(sweep, baseline)
    objectives = [(o.metric, o.mode) for o in sweep.objectives]
    front = pareto.frontier(rows, objectives, sweep.constraints)
    artifacts = pareto.write_frontier(front, sweep.sweep_dir())
    summary = sweep.sweep_dir() / "trials.json"
    summary.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    artifacts.append(summary)
    try:
        reconcile(sweep, runs, baseline)
        artifacts.extend(pareto_report(sweep, rows, front, runs))
        runs.close([r.trial_id for r in front], artifacts)
        for row in front:
            runs.log_model_artifacts(row.trial_id, trials_dir(sweep) / row.trial_id)
    except Exception as exc:
        from tracking.store import is_tracking_error

        if not is_tracking_error(exc):
            raise
        raise SweepError(
            f"every trial of {sweep.name!r} finished and its report is in {trials_dir(sweep)} "
            f"(frontier: {sweep.sweep_dir() / 'pareto.csv'}), but logging to MLflow at {uri} failed: "
            f"{exc}. When the server is back, `infersweep resume {sweep.name}` (same --address, "
            f"--tracking-uri, --storage) logs what is missing; nothing is run again") from None
    return SweepResult(sweep, baseline, rows, front, uri, artifacts, time.perf_counter() - started,
                       runs.experiment_id)


def pareto_report(sweep: SweepSpec, rows, front, runs) -> list[Path]:
    """The HTML page + PNG (dashboards/), linked to the trials' MLflow runs and logged with the
    other sweep artifacts. A report that cannot be drawn is a warning, never a failed sweep."""
    import logging

    try:
        from dashboards.links import run_links
        from dashboards.report import sweep_report

        return sweep_report(sweep, rows, front, run_links(runs))
    except Exception as exc:  # results are already safe on disk and in MLflow
        logging.getLogger(__name__).warning("the Pareto report was not written: %s", exc)
        return []
