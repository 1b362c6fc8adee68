"""`infersweep profile TRIAL_ID`: where a trial's time goes, per operator, under its runtime's profiler.

Registered in infersweep/cli.py with ``app.command()(profile)``; `infersweep trial --profile` prints
the same table (print_profile). The files land in the trial's folder and, for a sweep's trial,
on its MLflow run (artifacts `profile/`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from infersweep.options import DEFAULT_STORAGE, STORAGE_HELP, TRACKING_HELP
from infersweep.quiet import quiet_libraries

__all__ = ["print_profile", "profile"]

console = Console()


def profile(
    trial_id: str = typer.Argument(..., metavar="TRIAL_ID",
                                   help="a trial's id, or its start (`infersweep status SWEEP` shows 8 characters)"),
    sweep: Optional[str] = typer.Option(None, help="the sweep holding the trial (needed when several do)"),
    batches: int = typer.Option(3, help="batches of the trial's evaluation slice profiled, after its warm-up"),
    top: int = typer.Option(15, help="operators shown (the files hold them all)"),
    out: Optional[Path] = typer.Option(None, help="folder for trace.json and operators.csv/.txt "
                                                  "(default: the trial's folder)"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
):
    """Profile a trial's variant with its runtime's own profiler: top operators by self time, a Chrome trace."""
    quiet_libraries()
    from infersweep.sweeps.results import find_trial
    from infersweep.trials.profile import profile_report
    from infersweep.trials.runner import DEFAULT_OUT

    found = find_trial(trial_id, storage, sweep, DEFAULT_OUT)
    with console.status(f"profiling trial {trial_id} ({found.report.spec.short_name()}), {batches} batches..."):
        result = profile_report(found.report, out or found.folder, batches)
    print_profile(result, top)
    if found.sweep is not None:
        _log_to_run(found.sweep, found.folder.name, result, tracking_uri)


def print_profile(result, top: int = 15, where: Console | None = None) -> None:
    """The top operators by self time, with their share of all operators' time, and the files."""
    where = where or console
    table = Table("operator", "self ms", "calls", "share",
                  title=f"{result.spec.short_name()}: top {min(top, len(result.operators))} of "
                        f"{len(result.operators)} operators by self time ({_count(result.batches, 'batch')}, "
                        f"{_count(result.documents, 'document')}, {result.total_ms:,.1f} ms in operators)")
    for op in result.top(top):
        table.add_row(op.name, f"{op.self_ms:,.3f}", str(op.calls), f"{op.share_pct:.1f}%")
    where.print(table)
    where.print(f"trace: {result.trace} (open in https://ui.perfetto.dev or chrome://tracing)", soft_wrap=True)
    where.print(f"table: {result.table_csv}", soft_wrap=True)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "es" if noun.endswith("ch") else "s")


def _log_to_run(sweep, trial_id: str, result, tracking_uri: Optional[str]) -> None:
    """The profile's files on the trial's MLflow run; a missing store or run is a note, not an error
    (the files are on disk either way)."""
    from infersweep.tracking.store import TrackingUnreachable, redact, resolve_uri
    from infersweep.tracking.sweep_runs import SweepRuns

    uri = resolve_uri(tracking_uri or sweep.tracking.uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        console.print(f"[yellow]no MLflow store at {uri}: the profile is not logged to a run[/]", soft_wrap=True)
        return
    try:
        run_id = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash()).log_profile(
            trial_id, result.files())
    except TrackingUnreachable as exc:
        console.print(f"[yellow]the profile is not logged to MLflow: {exc}[/]", soft_wrap=True)
        return
    if run_id:
        console.print(f"logged to MLflow run {run_id} (artifacts profile/) in {redact(uri)}", soft_wrap=True)
    else:
        console.print(f"[yellow]trial {trial_id} has no MLflow run in {redact(uri)}: the profile is not "
                      f"logged to one[/]", soft_wrap=True)
