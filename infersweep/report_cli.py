"""`infersweep report SWEEP`: the Pareto report (HTML page + PNG preview) of a sweep on disk.

Registered in infersweep/cli.py with ``app.command()(report)``. Reads the trial reports in the
sweep's folder (so it also works while a sweep runs, or after it stopped) and links each
frontier trial to its MLflow run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from infersweep.errors import user_errors

console = Console()


def _links(sweep, tracking_uri: Optional[str], ui_url: Optional[str]) -> dict[str, str]:
    """trial_id -> MLflow run URL; none (with a note) when the store is missing or unreachable."""
    from infersweep.dashboards.links import run_links
    from infersweep.tracking.store import resolve_uri
    from infersweep.tracking.sweep_runs import SweepRuns

    uri = resolve_uri(tracking_uri or sweep.tracking.uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        console.print(f"[yellow]no MLflow store at {uri}: the report has no run links[/]")
        return {}
    links = run_links(SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash()), ui_url)
    if not links:
        console.print(f"[yellow]no MLflow runs of {sweep.name} found in {uri}: the report has no run links[/]")
    return links


@user_errors  # as every command in infersweep/cli.py, and also on an app of its own
def report(
    sweep_name: str = typer.Argument(..., metavar="SWEEP", help="the sweep's name"),
    out: Optional[Path] = typer.Option(None, help="folder for the report (default: <sweep folder>/report)"),
    storage: str = typer.Option(".infersweep/sweeps", help="where sweeps keep their state (default .infersweep/sweeps)"),
    tracking_uri: Optional[str] = typer.Option(
        None, help="MLflow tracking URI for the run links (default: the sweep's, else .infersweep/mlflow.db)"),
    ui_url: Optional[str] = typer.Option(
        None, help="MLflow UI address the links point to (default: the tracking server, or "
                   "http://127.0.0.1:5000 as served by `infersweep ui` for a local store)"),
    links: bool = typer.Option(True, "--links/--no-links", help="look up MLflow run links"),
):
    """Write the sweep's Pareto report: an interactive HTML page and a PNG of the main chart."""
    from infersweep.dashboards.report import sweep_report
    from infersweep.sweeps.results import load_results
    from infersweep.sweeps.state import load_saved

    sweep = load_saved(sweep_name, storage)
    results = load_results(sweep)
    rows, front = results.rows, results.frontier
    run_links = _links(sweep, tracking_uri, ui_url) if links else {}
    paths = sweep_report(sweep, rows, front, run_links, out)
    console.print(f"{len(rows)} trials, {len(front)} on the Pareto frontier")
    for path in paths:
        console.print(f"report: {path}", soft_wrap=True)
    console.print(f"open it: file://{paths[0].resolve()}", soft_wrap=True)
