"""MLflow run URLs for the report, read through tracking.sweep_runs.SweepRuns (no mlflow import here)."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)
LOCAL_UI = "http://127.0.0.1:5000"  # where `infersweep ui` / `make ui` serve a local store


def ui_base(tracking_uri: str, ui_url: str | None = None) -> str:
    """The MLflow UI address: given, the tracking server itself, or the local `infersweep ui`."""
    if ui_url:
        return ui_url.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return LOCAL_UI


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def run_links(runs, ui_url: str | None = None) -> dict[str, str]:
    """trial_id -> MLflow run URL for every trial run of the sweep (one search, not one per trial).

    `runs` is a tracking.sweep_runs.SweepRuns. An unreachable tracking server gives no links
    (logged), not a failed report.
    """
    from infersweep.tracking.sweep_runs import TAG_TRIAL

    base = ui_base(runs.uri, ui_url)
    try:
        experiment_id = runs.experiment_id
        found = runs.trial_runs()
    except Exception as exc:  # the store is down or gone: the report is still worth having
        log.warning("no MLflow links in the report: %s", exc)
        return {}
    links = {}
    for run in found:
        trial_id = run.data.tags.get(TAG_TRIAL)
        if trial_id:
            links[trial_id] = run_url(base, experiment_id, run.info.run_id)
    return links
