"""The MLflow side of a sweep: a parent run, one nested run per trial, idempotent by trial id.

Every method is safe to call again (a retry, a resume, a reconcile after the server was down):
runs are found by tag before anything is created, and a FINISHED run is never logged twice.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from infersweep.tracking import store
from infersweep.trials.measure import LATENCY_PER_SAMPLE, MODEL_SIZE, PEAK_MEMORY, ROUGE_DROP, ROUGE_LSUM, SPEEDUP

log = logging.getLogger(__name__)
TAG_SWEEP = "infersweep.sweep"
TAG_TRIAL = "infersweep.trial_id"
TAG_KIND = "infersweep.kind"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI
TAG_RELATIVE = "infersweep.relative_key"  # which relative values (baseline, finalists) a run holds
# A trial's outcome (tag `status`) -> its MLflow run status. An infeasible combination is a
# result of the sweep (recorded with its reason, reported to Optuna), not an error: FINISHED,
# never a red FAILED run (docs/decisions.md). KILLED stays for runs the sweep did not let finish.
STATUS_TO_RUN = {"ok": "FINISHED", "infeasible": "FINISHED", "oom": "FAILED", "failed": "FAILED"}
END_STATUSES = ("FINISHED", "FAILED", "KILLED")
# the metrics a trial's description shows, in this order: (name, format)
NOTE_METRICS = ((LATENCY_PER_SAMPLE, "{:.2f} ms/sample"), (SPEEDUP, "{:.2f}x the baseline"),
                (PEAK_MEMORY, "peak memory {:.0f} MB"), (MODEL_SIZE, "model {:.1f} MB"),
                (ROUGE_LSUM, "ROUGE-Lsum {:.2f}"), (ROUGE_DROP, "ROUGE drop {:.2f}%"))


class SweepRuns:
    """Picklable (holds no client): Ray stores it with the sweep for resume."""

    def __init__(self, sweep_name: str, uri: str, experiment: str | None = None, spec_hash: str = ""):
        self.sweep_name = sweep_name
        self.uri = uri
        self.experiment_name = experiment or f"infersweep/{sweep_name}"
        self.spec_hash = spec_hash
        self._client = None
        self._experiment_id = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_client"] = None
        state.pop("_parent_id", None)
        return state

    @property
    def client(self):
        if self._client is None:  # set only once the server answered (a failure leaves no half state)
            client = store.client(self.uri)
            self._experiment_id = store.ensure_experiment(client, self.experiment_name, self.uri)
            self._client = client
        return self._client

    @property
    def experiment_id(self) -> str:
        _ = self.client
        return self._experiment_id

    def _find(self, kind: str, trial_id: str | None = None):
        query = f"tags.`{TAG_SWEEP}` = '{self.sweep_name}' and tags.`{TAG_KIND}` = '{kind}'"
        if trial_id:
            query += f" and tags.`{TAG_TRIAL}` = '{trial_id}'"
        runs = self.client.search_runs([self.experiment_id], filter_string=query, max_results=50)
        return runs[0] if runs else None

    def parent_run_id(self) -> str:
        """The sweep's parent run, created once and re-opened on resume."""
        run = self._find("sweep")
        if run is None:
            run = self.client.create_run(self.experiment_id, run_name=self.sweep_name,
                                         tags={TAG_SWEEP: self.sweep_name, TAG_KIND: "sweep",
                                               "infersweep.spec_hash": self.spec_hash})
        elif run.info.status != "RUNNING":  # resumed or relaunched: running again, no stale reason
            self.client.update_run(run.info.run_id, status="RUNNING")
            for key in ("reason", NOTE_TAG):
                if key in run.data.tags:
                    self.client.delete_tag(run.info.run_id, key)
        return run.info.run_id

    def log_ruled_out(self, rows: list[dict]) -> None:
        """The combinations the sweep ruled out before sampling (sweeps.space), as one table on the
        parent run (`ruled_out.json`, shown by the MLflow UI's artifact view); idempotent."""
        parent = self.parent_run_id()
        self.client.set_tag(parent, "infersweep.ruled_out", str(len(rows)))
        if rows:  # the layout log_table writes, but overwritten (log_table appends on a resume)
            columns = list(rows[0])
            self.client.log_dict(parent, {"columns": columns, "data": [[row[c] for c in columns] for row in rows]},
                                 "ruled_out.json")

    def trial_started(self, trial_id: str, name: str, knobs: dict) -> str | None:
        """Create (or re-open) the trial's run as RUNNING; a completely logged one is left alone."""
        return self._open_trial(trial_id, name, knobs).info.run_id

    def _parent_tag(self) -> str:
        """The parent run's id for a trial's tag (found or created once per SweepRuns)."""
        if getattr(self, "_parent_id", None) is None:
            self._parent_id = self.parent_run_id()
        return self._parent_id

    def _open_trial(self, trial_id: str, name: str, knobs: dict):
        """The trial's run (created RUNNING with its tags and knobs in one batch, or re-opened)."""
        from mlflow.entities import Param

        run = self._find("trial", trial_id)
        if run is None:
            run = self.client.create_run(
                self.experiment_id, run_name=name,
                tags={TAG_SWEEP: self.sweep_name, TAG_KIND: "trial", TAG_TRIAL: trial_id,
                      PARENT_TAG: self._parent_tag()})
            if knobs:
                self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in knobs.items()])
        elif run.data.tags.get("infersweep.logged") != "1":  # a complete one is left as it is
            self.client.update_run(run.info.run_id, status="RUNNING")
        return run

    def trial_finished(self, report, relative: dict[str, float], report_path: Path | None = None,
                       update: bool = False) -> str:
        """Log a finished trial's report once: params, metrics, tags, the report as an artifact.

        A run logged before is left as it is; with `update`, its metrics (e.g. those relative to
        a newly measured baseline) and description are logged again (latest values win). The
        values logged are tagged with `relative_key(relative)`: `logged_runs` tells a reconcile
        which runs already hold them."""
        run = self._open_trial(report.trial_id, report.spec.short_name(), report.spec.knobs())
        run_id = run.info.run_id
        metrics = {**report.metrics, **relative}
        if run.data.tags.get("infersweep.logged") == "1":
            if update:
                tags = {TAG_RELATIVE: relative_key(relative)}
                if report.status == "ok":
                    tags[NOTE_TAG] = describe(metrics)
                self._log_batch(run_id, metrics, tags)
                self._log_report(run_id, report, report_path)  # the artifact matches the metrics
                if run.info.status != STATUS_TO_RUN[report.status]:  # logged under an older mapping
                    self.client.set_terminated(run_id, status=STATUS_TO_RUN[report.status],
                                               end_time=run.info.end_time)
            return run_id
        tags = {"status": report.status, "reason": report.reason[:4000], "model": report.spec.model,
                "task": report.spec.task, "dataset": report.spec.dataset, TAG_RELATIVE: relative_key(relative),
                **{f"hardware.{k}": str(v) for k, v in report.hardware.items() if k != "extras"},
                **{f"version.{k}": v for k, v in report.versions.items()}}
        if report.reason:
            tags[NOTE_TAG] = f"**{report.status}**: {report.reason}"
        elif report.status == "ok":
            tags[NOTE_TAG] = describe(metrics)
        self._log_batch(run_id, metrics, tags)
        self._log_report(run_id, report, report_path)
        self.client.set_terminated(run_id, status=STATUS_TO_RUN[report.status])
        self.client.set_tag(run_id, "infersweep.logged", "1")  # last: a run cut short before is logged again
        return run_id

    def logged_runs(self) -> dict[str, str]:
        """trial id -> the `relative_key` its logged values carry, for every completely logged trial
        run of the sweep (one query)."""
        return {run.data.tags[TAG_TRIAL]: run.data.tags.get(TAG_RELATIVE, "") for run in self.trial_runs()
                if run.data.tags.get("infersweep.logged") == "1" and TAG_TRIAL in run.data.tags
                and run.info.status != "RUNNING"}  # (tagged by an older version, then cut short)

    def _log_report(self, run_id: str, report, report_path: Path | None) -> None:
        """report.json as the run's artifact (a second upload replaces the first)."""
        if report_path and Path(report_path).exists() and Path(report_path).name == "report.json":
            self.client.log_artifact(run_id, str(report_path))
        else:
            self.client.log_text(run_id, report.to_json(), "report.json")

    def _log_batch(self, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Metrics and tags in one request (MLflow's limits: 1000 metrics, 100 tags per batch)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, max(len(metric_list), len(tag_list), 1), 100):
            if metric_list[start:start + 100] or tag_list[start:start + 100]:
                self.client.log_batch(run_id, metrics=metric_list[start:start + 100], tags=tag_list[start:start + 100])

    def trial_errored(self, trial_id: str, name: str, knobs: dict, error: str) -> None:
        """A worker died (not a trial outcome): the run ends FAILED with the error visible."""
        run_id = self.trial_started(trial_id, name, knobs)
        self.client.set_tag(run_id, "status", "failed")
        self.client.set_tag(run_id, "reason", error[:4000])
        self.client.set_tag(run_id, NOTE_TAG, f"**worker error**: {error[:2000]}")
        self.client.set_terminated(run_id, status="FAILED")

    def close(self, pareto_ids: list[str], artifacts: list[Path], status: str = "FINISHED") -> None:
        """Tag the frontier, log sweep artifacts, end leftover RUNNING runs as KILLED."""
        parent = self.parent_run_id()
        for run in self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{self.sweep_name}' and "
                                                    f"tags.`{TAG_KIND}` = 'trial'", max_results=5000):
            trial_id = run.data.tags.get(TAG_TRIAL)
            self.client.set_tag(run.info.run_id, "pareto", str(trial_id in pareto_ids).lower())
            if run.info.status == "RUNNING":
                self.client.set_tag(run.info.run_id, "reason", "the sweep ended before this trial finished")
                self.client.set_terminated(run.info.run_id, status="KILLED")
        for path in artifacts:
            if Path(path).exists():
                self.client.log_artifact(parent, str(path))
        self.client.set_terminated(parent, status=status)

    def end_sweep(self, status: str, reason: str) -> bool:
        """End the sweep's parent run with `status` (FAILED, KILLED) and `reason` (tag `reason` and
        the run's description); trial runs still RUNNING end KILLED. For a launch that stops
        early. Never raises: with the server down (or no parent run yet) it logs a warning and
        returns False; MLflow is not retried for minutes meanwhile. `resume` re-opens the run."""
        if status not in END_STATUSES:  # never raise here: callers are handling another error
            log.warning("end_sweep: unknown run status %r, using FAILED", status)
            status = "FAILED"
        reason = str(reason)[:4000] or status.lower()
        try:
            with store.fail_fast():
                parent = self._find("sweep")
                if parent is None:
                    return False
                for run in self.trial_runs():
                    if run.info.status == "RUNNING":
                        self.client.set_tag(run.info.run_id, "reason", f"the sweep stopped: {reason}"[:4000])
                        self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.set_tag(parent.info.run_id, "reason", reason)
                self.client.set_tag(parent.info.run_id, NOTE_TAG, f"**{status}**: {reason}")
                self.client.set_terminated(parent.info.run_id, status=status)
            return True
        except Exception as exc:  # the server is down or refuses: the sweep's own error matters more
            log.warning("MLflow: could not end the sweep's run %s as %s (%s)", self.sweep_name, status,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return False

    def archive(self, archived_name: str) -> int:
        """Move this sweep's runs under `archived_name` (the archived folder's name), so a sweep
        restarted under the same name starts with no runs; returns how many were moved."""
        self._parent_id = None
        moved = 0
        for run in self.client.search_runs([self.experiment_id],
                                           filter_string=f"tags.`{TAG_SWEEP}` = '{self.sweep_name}'",
                                           max_results=5000):
            self.client.set_tag(run.info.run_id, TAG_SWEEP, archived_name)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, status="KILLED")
            moved += 1
        return moved

    def log_model_artifacts(self, trial_id: str, directory: Path) -> None:
        run = self._find("trial", trial_id)
        if run is not None and Path(directory).exists():
            self.client.log_artifacts(run.info.run_id, str(directory), "model")

    def log_profile(self, trial_id: str, files: list[Path]) -> str | None:
        """Attach a profile's files (operator table, trace) to the trial's run under `profile/`;
        the run's id, or None where the trial has no run (then nothing is logged)."""
        run_id = self.run_id_of(trial_id)
        for path in files if run_id else ():
            self.client.log_artifact(run_id, str(path), "profile")
        return run_id

    def run_id_of(self, trial_id: str) -> str | None:
        run = self._find("trial", trial_id)
        return run.info.run_id if run else None

    def trial_runs(self) -> list:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_SWEEP}` = '{self.sweep_name}' and tags.`{TAG_KIND}` = 'trial'",
            max_results=5000)


def relative_key(relative: dict[str, float]) -> str:
    """A short fingerprint of the relative values logged with a trial (they change with the
    launch's baseline and the finalists' head-to-head)."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(relative, sort_keys=True, default=str).encode()).hexdigest()[:12]


def describe(metrics: dict[str, float]) -> str:
    """A trial's key numbers in one line (its run's description in the MLflow UI)."""
    parts = [fmt.format(metrics[name]) for name, fmt in NOTE_METRICS if name in metrics]
    return " · ".join(parts)

