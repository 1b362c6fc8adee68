"""Driver-side Ray Tune callbacks: MLflow logging and the live progress display."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from ray.tune import Callback

from infersweep.sweeps.trainable import SPEC_ID, TrialPlan
from infersweep.trials.measure import SPEEDUP
from infersweep.trials.spec import TrialReport

__all__ = ["MlflowTrialCallback", "ProgressCallback"]

log = logging.getLogger(__name__)


class MlflowTrialCallback(Callback):
    """Logs each trial from the driver; MLflow being down loses nothing (reconciled at the end)."""

    def __init__(self, plan: TrialPlan, runs, baseline: TrialReport):
        self.plan = plan
        self.runs = runs
        self.baseline = baseline

    def __setstate__(self, state):
        # Tune pickles callbacks with its state: a sweep interrupted before TrialPlan existed
        # resumes with the sweep's JSON in their place
        if "sweep_json" in state:
            from infersweep.sweeps.spec import SweepSpec

            state["plan"] = TrialPlan.of(SweepSpec.model_validate_json(state.pop("sweep_json")))
        self.__dict__.update(state)

    def _safely(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:  # the tracking server may be down: results stay on disk
            log.warning("MLflow %s failed (%s); it will be logged when the sweep finishes", what, exc)

    def on_trial_start(self, iteration, trials, trial, **info):
        spec = self.plan.trial_spec(trial.config)
        self._safely("start", self.runs.trial_started, spec.trial_id(), spec.short_name(), spec.knobs())

    def on_trial_complete(self, iteration, trials, trial, **info):
        from infersweep.trials.measure import relative_to

        path = Path(trial.last_result.get("report_path", ""))
        if not path.is_file() and trial.last_result.get("report_json") and path.name == "report.json":
            from infersweep.trials.runner import write_report  # written on another node's disk: keep a copy

            path.parent.mkdir(parents=True, exist_ok=True)
            write_report(TrialReport.from_json(trial.last_result["report_json"]), path.parent)
        if not path.is_file():
            return
        report = TrialReport.from_json(path.read_text())
        relative = relative_to(report, self.baseline, self.plan.confidence) if report.ok else {}
        self._safely("log", self.runs.trial_finished, report, relative, path)

    def on_trial_error(self, iteration, trials, trial, **info):
        spec = self.plan.trial_spec(trial.config)
        error = str(getattr(trial, "error_file", "") or "the trial's worker died")
        self._safely("error", self.runs.trial_errored, spec.trial_id(), spec.short_name(), spec.knobs(), error)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressCallback(Callback):
    """Trials done / running / failed and the current frontier, live."""

    def __init__(self, total: int, objectives: list[tuple[str, str]], constraints: list[str],
                 baseline_id: str = "", done: frozenset[str] = frozenset(), space_size: int = 0,
                 concurrency: int = 1):
        self.total = total
        self.space_size = space_size  # runnable points of the space (sweeps.space)
        self.concurrency = max(1, concurrency)
        self.done = frozenset(done)  # combinations finished before this run
        self.objectives = objectives
        self.constraints = constraints
        self.baseline_id = baseline_id
        self._progress = None
        self._task = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_progress"] = state["_task"] = None
        return state

    def _bar(self):
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from rich.console import Console

            # stderr, like other progress bars; Ray may wrap the driver's stdout
            self._progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.description}"), transient=False,
                                      console=Console(file=sys.__stderr__))
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self._progress

    def _describe(self, trials) -> str:
        from infersweep.sweeps.pareto import TrialRow, frontier

        counts: dict[str, int] = {}
        rows, seen = [], set()
        for t in trials:
            if t.status not in ("TERMINATED", "ERROR"):
                continue
            spec_id = t.last_result.get(SPEC_ID)
            if spec_id and spec_id in seen:  # a repeated suggestion reused an earlier result
                continue
            seen.add(spec_id)
            status = t.last_result.get("status", "failed") if t.status == "TERMINATED" else "error"
            counts[status] = counts.get(status, 0) + 1
            metrics = {k.removeprefix("m_"): v for k, v in t.last_result.items() if isinstance(v, float)}
            rows.append(TrialRow(t.trial_id, status, {}, metrics))
        front = frontier(rows, self.objectives, self.constraints)
        parts = [f"{k} {v}" for k, v in sorted(counts.items())]
        if front:
            best = max(r.metrics.get(SPEEDUP, 0.0) for r in front)
            parts.append(f"frontier {len(front)} (best {best:.2f}x)")
        parts += self._plan(trials, seen)
        return " · ".join(parts)

    def _plan(self, trials, seen: set) -> list[str]:
        """The ETA (measured seconds per trial × trials still to run / concurrency) and how much of
        the runnable space is still unexplored."""
        finished = (seen | set(getattr(self, "done", frozenset()))) - {None}
        explored = len(finished)
        parts = []
        measured = [t.last_result["time_total_s"] for t in trials
                    if t.status == "TERMINATED" and not t.last_result.get("reused") and "time_total_s" in t.last_result]
        left = self.total - len(finished - {self.baseline_id})
        if measured and left > 0:
            per_trial = sum(measured) / len(measured)
            parts.append(f"ETA {_duration(per_trial * left / getattr(self, 'concurrency', 1))} "
                         f"({per_trial:.0f} s/trial, {left} to go)")
        if getattr(self, "space_size", 0):
            parts.append(f"{max(0, self.space_size - explored)} of {self.space_size} points unexplored")
        return parts

    def on_trial_start(self, iteration, trials, trial, **info):
        self._bar().update(self._task, description=self._describe(trials))

    def on_trial_complete(self, iteration, trials, trial, **info):
        distinct = {t.last_result.get(SPEC_ID) for t in trials if t.status in ("TERMINATED", "ERROR")}
        done = len((distinct | getattr(self, "done", frozenset())) - {None, self.baseline_id})
        self._bar().update(self._task, completed=min(done, self.total), description=self._describe(trials))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.on_trial_complete(iteration, trials, trial)

    def on_experiment_end(self, trials, **info):
        if self._progress is not None:
            # Tune calls on_trial_complete before it marks that trial TERMINATED: count them all now
            self.on_trial_complete(None, trials, None)
            self._progress.stop()
