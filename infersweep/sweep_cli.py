"""The sweep commands: validate, launch, resume, quickstart, status."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from infersweep.errors import fail
from infersweep.options import DEFAULT_STORAGE, SPECS_DIR, STORAGE_HELP, TRACKING_HELP
from infersweep.quiet import quiet_libraries

__all__ = ["launch", "quickstart", "resume", "status", "validate", "write_sweep_report"]

console = Console()


def validate(spec: Path = typer.Argument(..., help="sweep YAML file")):
    """Check a sweep file as `launch` would (keys, types, model and dataset paths, the baseline's
    feasibility on the declared device), without starting anything."""
    from infersweep.sweeps.checks import preflight
    from infersweep.sweeps.space import feasible_space
    from infersweep.sweeps.spec import load_sweep_spec

    sweep = load_sweep_spec(spec)
    for warning in preflight(sweep):
        console.print(f"note: {warning}", soft_wrap=True)
    space = feasible_space(sweep)
    for line in space.describe():
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(f"[green]ok[/] {spec}: sweep {sweep.name!r}, {len(space.grid())} runnable combinations, "
                  f"{sweep.search.algorithm} for {sweep.search.num_trials} trials", soft_wrap=True)


def launch(
    spec: Path = typer.Argument(..., help="sweep YAML file, e.g. sweeps/specs/quickstart.yaml"),
    num_trials: Optional[int] = typer.Option(None, help="override search.num_trials"),
    address: Optional[str] = typer.Option(None, help="Ray address: local (default), auto, or ray://HOST:PORT"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: Optional[str] = typer.Option(None, help=STORAGE_HELP),
    restart: bool = typer.Option(False, "--restart", help="archive this sweep's earlier results (kept "
                                 "beside it) and start over; needed when the model, dataset, baseline, "
                                 "trial settings, objectives or constraints changed"),
    fresh: bool = typer.Option(False, "--fresh", help="measure every trial anew: do not reuse results earlier "
                               "sweeps (same storage) measured on the same weights, hardware and libraries"),
):
    """Run a sweep: baseline, then the search; prints the Pareto frontier.

    Launching a sweep that exists continues it: finished trials are reused when only the trial
    budget, the search settings or added space values changed."""
    from infersweep.sweeps.spec import load_sweep_spec

    sweep = load_sweep_spec(spec, **{"search.num_trials": num_trials, "storage.path": storage})
    _run(sweep, address, tracking_uri, resume=False, restart=restart, fresh=fresh)


def resume(
    sweep_name: str = typer.Argument(..., metavar="SWEEP", help="the sweep's name"),
    address: Optional[str] = typer.Option(None, help="Ray address"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
):
    """Continue a sweep stopped by Ctrl-C or a crash; finished trials are not run or logged again."""
    from infersweep.sweeps.state import load_saved

    _run(load_saved(sweep_name, storage), address, tracking_uri, resume=True)


def quickstart():
    """Run sweeps/specs/quickstart.yaml offline on a local Ray instance."""
    from infersweep.sweeps.spec import load_sweep_spec

    _run(load_sweep_spec(SPECS_DIR / "quickstart.yaml"), None, None, resume=False)


def write_sweep_report(sweep, rows, frontier, runs) -> list[Path]:
    """The sweep's Pareto report (dashboards/: HTML page + PNG), linked to its trials' MLflow
    runs: the report writer the CLI hands the driver."""
    from infersweep.dashboards.links import run_links
    from infersweep.dashboards.report import sweep_report

    return sweep_report(sweep, rows, frontier, run_links(runs))


def _run(sweep, address, tracking_uri, resume: bool, restart: bool = False, fresh: bool = False) -> None:
    quiet_libraries()
    from infersweep.sweeps.driver import run_sweep

    try:
        result = run_sweep(sweep, address=address, tracking_uri=tracking_uri, resume=resume, restart=restart,
                           say=lambda text: console.print(text, soft_wrap=True, markup=False, highlight=False),
                           report=write_sweep_report, fresh=fresh)
    except KeyboardInterrupt:
        fail(f"interrupted; continue with: infersweep resume {sweep.name}", code=130)
    _show(sweep, result)


def _show(sweep, result) -> None:
    from infersweep.sweeps.report import constraint_rule, frontier_table, reasons_table
    from infersweep.tracking.store import ui_command

    console.print(frontier_table(result.frontier, f"Pareto frontier of {sweep.name} "
                                 f"({constraint_rule(sweep.constraints, sweep.confidence)})"))
    reasons = reasons_table(result.rows)
    if reasons:
        console.print(reasons)
    console.print(f"{len(result.rows)} trials ({_counts(result.rows)}) in {result.wall_s:.0f} s; "
                  f"frontier saved to {sweep.sweep_dir() / 'pareto.csv'}", soft_wrap=True)
    report_html = next((p for p in result.artifacts if p.name == "pareto_report.html"), None)
    if report_html:
        console.print(f"report: {report_html} (also on the sweep's MLflow run, Artifacts tab)", soft_wrap=True)
    # hints are commands to copy: never wrapped mid-command
    console.print(f"browse the runs: {ui_command(result.tracking_uri, result.experiment_id)}", soft_wrap=True)
    console.print(f"promote the fastest: infersweep promote {sweep.name} --where 'rouge_drop_pct <= 1' "
                  f"--minimize latency_ms_per_sample", soft_wrap=True)


def _counts(rows) -> str:
    from infersweep.sweeps.report import status_counts

    return ", ".join(f"{k} {v}" for k, v in sorted(status_counts(rows).items()))


def status(
    sweep_name: str = typer.Argument(..., metavar="SWEEP"),
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
):
    """Counts of trials by status and the frontier so far (read from the sweep's folder)."""
    from infersweep.sweeps.report import constraint_rule, frontier_table
    from infersweep.sweeps.results import NoBaselineYet, load_results
    from infersweep.sweeps.state import load_saved

    sweep = load_saved(sweep_name, storage)
    try:
        results = load_results(sweep)
    except NoBaselineYet:
        console.print(f"sweep {sweep_name}: the baseline has not finished yet")
        raise typer.Exit(0)
    trials = sum(not r.baseline for r in results.rows)
    console.print(f"sweep {sweep_name}: {trials} of {sweep.search.num_trials} trials finished, and the baseline "
                  f"({_counts(results.rows)})", soft_wrap=True)
    console.print(frontier_table(results.frontier,
                                 f"frontier so far ({constraint_rule(sweep.constraints, sweep.confidence)})"))
