"""The `infersweep` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from infersweep.errors import fail, validation_message
from infersweep.quiet import quiet_libraries

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find the fastest, smallest variant of a summarization model that keeps its ROUGE.")
console = Console()


@app.command()
def trial(
    model: str = typer.Option("all-MiniLM-L6-v2", help="save_pretrained() dir, hub id, or bundled name"),
    task: str = typer.Option("extractive", help="extractive | seq2seq"),
    dataset: str = typer.Option("sample", help="JSONL/CSV path, 'sample', or hf:NAME[:CONFIG]:SPLIT"),
    n: int = typer.Option(50, help="documents to evaluate (a deterministic subset)"),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | bf16 | int8_dynamic | int8_static | int4_weight"),
    pruning: Optional[str] = typer.Option(None, help="none | unstructured | structured | semi_structured_2_4 (default: unstructured if --prune > 0)"),
    prune: float = typer.Option(0.0, help="pruning ratio in [0, 0.95]"),
    head_ratio: Optional[float] = typer.Option(None, help="structured: share of attention heads removed "
                                                          "(default: --prune)"),
    ffn_ratio: Optional[float] = typer.Option(None, help="structured: share of FFN neurons removed (default: --prune)"),
    importance: str = typer.Option("activation", help="structured: rank by activation (calibration slice) | weight"),
    runtime: str = typer.Option("torch", help="runtime name"),
    batch_size: int = typer.Option(1, help="documents per batch"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    cpus: int = typer.Option(2, help="threads for torch / ONNX Runtime"),
    warmup: int = typer.Option(2, help="warm-up batches"),
    repeats: int = typer.Option(2, help="timed passes over the evaluation slice"),
    seed: int = typer.Option(0),
    document_field: str = typer.Option("document", help="dataset field holding the document"),
    summary_field: str = typer.Option("summary", help="dataset field holding the reference summary"),
    summary_length: str = typer.Option("auto", help="extractive: auto (the median sentence count of the "
                                       "references not evaluated), N sentences (3) or N words (60w)"),
    out: Optional[Path] = typer.Option(None, help="trial directory (default .infersweep/trials/ID)"),
    as_json: bool = typer.Option(False, "--json", help="print the JSON report instead of a table"),
):
    """Run one trial and print its latency, memory and ROUGE."""
    quiet_libraries()
    from trials import TrialSpec, run_trial

    fields = dict(model=model, task=task, dataset=dataset, n=n, precision=precision,
                  pruning=pruning or ("unstructured" if prune > 0 else "none"), prune_ratio=prune,
                  runtime=runtime, batch_size=batch_size, device=device, cpus=cpus, warmup=warmup,
                  repeats=repeats, seed=seed, document_field=document_field, summary_field=summary_field,
                  summary_length=summary_length, structured={"head_ratio": head_ratio, "ffn_ratio": ffn_ratio, "importance": importance})
    try:
        spec = TrialSpec(**fields)
    except ValidationError as exc:
        fail(validation_message(exc))
    _check_inputs(spec)
    with console.status(f"running trial {spec.short_name()} on {spec.n} documents..."):
        report = run_trial(spec, out)
    from trials.engine import trial_dir

    where = trial_dir(spec, out) / "report.json"
    if as_json:
        print(report.to_json())
    else:
        print_report(report, where)
    raise typer.Exit(0 if report.status in ("ok", "infeasible") else 1)


def _check_inputs(spec) -> None:
    """Bad model or dataset paths fail here, before anything loads."""
    from trials.data import DatasetError, load_examples
    from trials.models import ModelNotFound, resolve_model

    try:
        resolve_model(spec.model)
        load_examples(spec.dataset, spec.document_field, spec.summary_field)
    except (ModelNotFound, DatasetError) as exc:
        fail(str(exc))


def print_report(report, where: Path) -> None:
    from trials.measure import METRICS

    spec = report.spec
    colour = {"ok": "green", "infeasible": "yellow"}.get(report.status, "red")
    console.print(f"[bold]{spec.short_name()}[/]  model={spec.model} task={spec.task} "
                  f"dataset={spec.dataset} n={spec.n}  status=[{colour}]{report.status}[/]")
    if report.reason:
        console.print(f"reason: {report.reason}")
    if report.metrics:
        table = Table("metric", "value", "unit")
        for name, value in report.metrics.items():
            table.add_row(name, f"{value:,.3f}", METRICS[name].unit if name in METRICS else "")
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(f"report: {where}")


SPECS_DIR = Path(__file__).resolve().parents[1] / "sweeps" / "specs"
TRACKING_HELP = "MLflow tracking URI (default: the local store .infersweep/mlflow.db)"
STORAGE_HELP = "where sweeps keep their state (default .infersweep/sweeps)"


def _load_spec(path: Path, **overrides):
    from sweeps.spec import SweepSpecError, load_sweep_spec

    try:
        return load_sweep_spec(path, **overrides)
    except SweepSpecError as exc:
        fail(str(exc))


@app.command()
def validate(spec: Path = typer.Argument(..., help="sweep YAML file")):
    """Check a sweep file as `launch` would (keys, types, model and dataset paths, the baseline's
    feasibility on the declared device), without starting anything."""
    from sweeps.checks import preflight

    sweep = _load_spec(spec)
    for warning in _preflight(preflight, sweep):
        console.print(f"note: {warning}", soft_wrap=True)
    axes = sweep.space.axes()
    console.print(f"[green]ok[/] {spec}: sweep {sweep.name!r}, {len(sweep.space.grid())} combinations "
                  f"({', '.join(f'{k}: {len(v)}' for k, v in axes.items())}), "
                  f"{sweep.search.algorithm} for {sweep.search.num_trials} trials", soft_wrap=True)


def _preflight(check, sweep) -> list[str]:
    from sweeps.spec import SweepSpecError

    try:
        return check(sweep)
    except SweepSpecError as exc:
        fail(str(exc))


@app.command()
def launch(
    spec: Path = typer.Argument(..., help="sweep YAML file, e.g. sweeps/specs/quickstart.yaml"),
    num_trials: Optional[int] = typer.Option(None, help="override search.num_trials"),
    address: Optional[str] = typer.Option(None, help="Ray address: local (default), auto, or ray://HOST:PORT"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: Optional[str] = typer.Option(None, help=STORAGE_HELP),
    restart: bool = typer.Option(False, "--restart", help="archive this sweep's earlier results (kept "
                                 "beside it) and start over; needed when the model, dataset, baseline, "
                                 "trial settings, objectives or constraints changed"),
):
    """Run a sweep: baseline, then the search; prints the Pareto frontier.

    Launching a sweep that exists continues it: finished trials are reused when only the trial
    budget, the search settings or added space values changed."""
    sweep = _load_spec(spec, **{"search.num_trials": num_trials, "storage.path": storage})
    _run(sweep, address, tracking_uri, resume=False, restart=restart)


@app.command()
def resume(
    sweep_name: str = typer.Argument(..., metavar="SWEEP", help="the sweep's name"),
    address: Optional[str] = typer.Option(None, help="Ray address"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: str = typer.Option(".infersweep/sweeps", help=STORAGE_HELP),
):
    """Continue a sweep stopped by Ctrl-C or a crash; finished trials are not run or logged again."""
    from sweeps.driver import SweepError, load_saved

    try:
        sweep = load_saved(sweep_name, storage)
    except SweepError as exc:
        fail(str(exc))
    _run(sweep, address, tracking_uri, resume=True)


def _run(sweep, address, tracking_uri, resume: bool, restart: bool = False) -> None:
    quiet_libraries()
    from sweeps.driver import SweepError, SweepInterrupted, run_sweep
    from sweeps.report import constraint_rule, frontier_table, reasons_table, status_counts
    from sweeps.spec import SweepSpecError
    from tracking.store import TrackingUnreachable, ui_command

    try:
        result = run_sweep(sweep, address=address, tracking_uri=tracking_uri, resume=resume, restart=restart,
                           say=lambda text: console.print(text, soft_wrap=True))
    except SweepSpecError as exc:
        fail(str(exc))
    except SweepInterrupted as exc:
        fail(str(exc), code=130)
    except KeyboardInterrupt:
        fail(f"interrupted; continue with: infersweep resume {sweep.name}", code=130)
    except (SweepError, TrackingUnreachable) as exc:
        fail(str(exc), code=1)
    console.print(frontier_table(result.frontier, f"Pareto frontier of {sweep.name} "
                                 f"({constraint_rule(sweep.constraints, sweep.confidence)})"))
    reasons = reasons_table(result.rows)
    if reasons:
        console.print(reasons)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status_counts(result.rows).items()))
    console.print(f"{len(result.rows)} trials ({counts}) in {result.wall_s:.0f} s; "
                  f"frontier saved to {sweep.sweep_dir() / 'pareto.csv'}", soft_wrap=True)
    report_html = next((p for p in result.artifacts if p.name == "pareto_report.html"), None)
    if report_html:
        console.print(f"report: {report_html} (also on the sweep's MLflow run, Artifacts tab)", soft_wrap=True)
    # hints are commands to copy: never wrapped mid-command
    console.print(f"browse the runs: {ui_command(result.tracking_uri, result.experiment_id)}", soft_wrap=True)
    console.print(f"promote the fastest: infersweep promote {sweep.name} --where 'rouge_drop_pct <= 1' "
                  f"--minimize latency_ms_per_sample", soft_wrap=True)


@app.command()
def quickstart():
    """Run sweeps/specs/quickstart.yaml offline on a local Ray instance."""
    sweep = _load_spec(SPECS_DIR / "quickstart.yaml")
    _run(sweep, None, None, resume=False)


@app.command()
def status(
    sweep_name: str = typer.Argument(..., metavar="SWEEP"),
    storage: str = typer.Option(".infersweep/sweeps", help=STORAGE_HELP),
):
    """Counts of trials by status and the frontier so far (read from the sweep's folder)."""
    from sweeps import pareto
    from sweeps.driver import SweepError, collect_rows, load_saved
    from sweeps.report import frontier_table, status_counts
    from sweeps.trainable import trials_dir
    from trials.spec import TrialReport

    try:
        sweep = load_saved(sweep_name, storage)
    except SweepError as exc:
        fail(str(exc))
    base_path = trials_dir(sweep) / sweep.trial_spec(sweep.baseline.model_dump()).trial_id() / "report.json"
    if not base_path.exists():
        console.print(f"sweep {sweep_name}: the baseline has not finished yet")
        raise typer.Exit(0)
    rows = collect_rows(sweep, TrialReport.from_json(base_path.read_text()))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status_counts(rows).items()))
    trials = sum(not r.baseline for r in rows)
    console.print(f"sweep {sweep_name}: {trials} of {sweep.search.num_trials} trials finished, and the baseline "
                  f"({counts})", soft_wrap=True)
    front = pareto.frontier(rows, [(o.metric, o.mode) for o in sweep.objectives], sweep.constraints)
    from sweeps.report import constraint_rule

    console.print(frontier_table(front, f"frontier so far ({constraint_rule(sweep.constraints, sweep.confidence)})"))


@app.command()
def ui(
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    port: int = typer.Option(5000),
):
    """Open the MLflow UI on the local store (127.0.0.1 only)."""
    import os

    from tracking.store import resolve_uri

    uri = resolve_uri(tracking_uri)
    console.print(f"MLflow UI on http://127.0.0.1:{port} for {uri}")
    os.execvp("mlflow", ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)])


def _check_where(where: list[str], metric: str) -> None:
    """Bad conditions or metric names are bad input (exit 2), found before anything loads."""
    from sweeps.spec import parse_constraint
    from trials.measure import METRICS

    for text in where:
        try:
            parse_constraint(text)
        except ValueError as exc:
            fail(f"--where: {exc}")
    if metric not in METRICS:
        fail(f"--minimize/--maximize: unknown metric {metric!r}; valid: {', '.join(METRICS)}")


@app.command()
def promote(
    sweep_name: str = typer.Argument(..., metavar="SWEEP"),
    where: list[str] = typer.Option(["rouge_drop_pct <= 1"], metavar="'METRIC OP NUMBER'",
                                    help="condition like 'rouge_drop_pct <= 1'; repeat the flag for several "
                                         "(all must hold)"),
    minimize: Optional[str] = typer.Option(None, help="metric to minimize (default latency_ms_per_sample)"),
    maximize: Optional[str] = typer.Option(None, help="metric to maximize instead"),
    name: Optional[str] = typer.Option(None, help="registered model name (default: the sweep's name)"),
    alias: str = typer.Option("champion", help="alias set on the new version"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    storage: str = typer.Option(".infersweep/sweeps", help=STORAGE_HELP),
):
    """Register the best Pareto trial meeting --where as a new model version with an alias."""
    quiet_libraries()
    from sweeps import pareto
    from sweeps.driver import SweepError, collect_rows, load_saved
    from sweeps.promote import NothingToPromote, choose
    from sweeps.trainable import trials_dir
    from tracking.registry import promote_variant
    from tracking.store import TrackingUnreachable, resolve_uri
    from tracking.sweep_runs import SweepRuns
    from trials.spec import TrialReport

    if minimize and maximize:
        fail("give --minimize or --maximize, not both")
    metric, mode = (maximize, "max") if maximize else (minimize or "latency_ms_per_sample", "min")
    _check_where(where, metric)
    try:
        sweep = load_saved(sweep_name, storage)
    except SweepError as exc:
        fail(str(exc))
    baseline_path = trials_dir(sweep) / sweep.trial_spec(sweep.baseline.model_dump()).trial_id() / "report.json"
    if not baseline_path.exists():
        fail(f"sweep {sweep_name} has no finished baseline yet; run or resume it first", code=1)
    rows = collect_rows(sweep, TrialReport.from_json(baseline_path.read_text()))
    front = pareto.frontier(rows, [(o.metric, o.mode) for o in sweep.objectives], sweep.constraints)
    try:
        row = choose(front, where, metric, mode)
    except (NothingToPromote, ValueError) as exc:
        fail(str(exc), code=1)
    report = TrialReport.from_json((trials_dir(sweep) / row.trial_id / "report.json").read_text())
    uri = resolve_uri(tracking_uri or sweep.tracking.uri)
    runs = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash())
    model_name = name or sweep.name
    try:
        with console.status(f"registering trial {row.trial_id} ({report.spec.short_name()}) as {model_name}..."):
            done = promote_variant(report.spec, report, runs.run_id_of(row.trial_id), uri, model_name, alias,
                                   {"sweep": sweep.name, "trial_id": row.trial_id, "spec_hash": sweep.spec_hash(),
                                    "where": " and ".join(where), "chosen_by": f"{mode} {metric}"})
    except TrackingUnreachable as exc:
        fail(str(exc), code=1)
    console.print(f"registered {done.name} version {done.version} ({report.spec.short_name()}, "
                  f"{metric} = {row.metrics.get(metric, float('nan')):.3f}) with alias @{done.alias}", soft_wrap=True)
    console.print(f"use it: infersweep summarize {done.model_uri} < article.txt", soft_wrap=True)


@app.command()
def summarize(
    model_uri: str = typer.Argument(..., help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/..."),
    file: Optional[Path] = typer.Argument(None, help="text file (default: stdin)"),
    jsonl: bool = typer.Option(False, help="input is JSONL: one document per line (field 'document')"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
):
    """Summarize text with a registered model: one summary per document, each followed by a blank line."""
    quiet_libraries()
    from tracking.registry import load_summarizer

    source = str(file) if file else "stdin"
    if file and not file.is_file():
        fail(f"no such file: {file}" if not file.exists() else f"not a file: {file}")
    try:
        data = file.read_bytes() if file else sys.stdin.buffer.read()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
             f"convert it first, e.g. iconv -f latin1 -t utf-8")
    documents = [text.strip()] if text.strip() else []
    if jsonl:
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{source} line {number}: not valid JSON ({exc.msg}, column {exc.colno})")
            if not isinstance(row, dict) or "document" not in row:
                found = f"fields: {', '.join(map(str, row)) or 'none'}" if isinstance(row, dict) else "not an object"
                fail(f"{source} line {number}: missing field 'document' ({found}); "
                     'expected one JSON object per line like {"document": "text"}')
            if not isinstance(row["document"], str) or not row["document"].strip():
                fail(f"{source} line {number}: field 'document' must be non-empty text")
            documents.append(row["document"])
    if not documents:
        fail(f"no documents in {source}: pass a text file or pipe a document on stdin")
    try:
        model = load_summarizer(model_uri, tracking_uri)
    except Exception as exc:
        fail(f"cannot load {model_uri}: {exc}", code=1)
    try:
        summaries = model.predict(documents)["summary"].tolist()
    except Exception as exc:
        fail(f"{model_uri} failed to summarize: {exc}", code=1)
    if len(summaries) != len(documents):
        fail(f"{model_uri} returned {len(summaries)} summaries for {len(documents)} documents", code=1)
    for summary in summaries:
        print(summary)
        print()


from infersweep.report_cli import report  # noqa: E402  (the Pareto report, dashboards/)

app.command()(report)

from infersweep.sensitivity_cli import sensitivity  # noqa: E402  (pruning sensitivity scan)

app.command()(sensitivity)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
