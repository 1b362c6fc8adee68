"""The model commands: promote a sweep's trial to the MLflow registry, summarize with it, the UI."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from infersweep.errors import fail
from infersweep.options import DEFAULT_STORAGE, STORAGE_HELP, TRACKING_HELP
from infersweep.quiet import quiet_libraries

__all__ = ["promote", "summarize", "ui"]

console = Console()


def _check_where(where: list[str], metric: str) -> None:
    """Bad conditions or metric names are bad input (exit 2), found before anything loads."""
    from infersweep.sweeps.constraints import parse_constraint
    from infersweep.trials.measure import METRICS

    for text in where:
        try:
            parse_constraint(text)
        except ValueError as exc:
            fail(f"--where: {exc}")
    if metric not in METRICS:
        fail(f"--minimize/--maximize: unknown metric {metric!r}; valid: {', '.join(METRICS)}")


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
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
):
    """Register the best Pareto trial meeting --where as a new model version with an alias."""
    quiet_libraries()
    from infersweep.sweeps.promote import choose
    from infersweep.sweeps.results import load_results, read_report
    from infersweep.trials.measure import LATENCY_PER_SAMPLE
    from infersweep.sweeps.state import load_saved
    from infersweep.tracking.registry import promote_variant
    from infersweep.tracking.store import resolve_uri
    from infersweep.tracking.sweep_runs import SweepRuns

    if minimize and maximize:
        fail("give --minimize or --maximize, not both")
    metric, mode = (maximize, "max") if maximize else (minimize or LATENCY_PER_SAMPLE, "min")
    _check_where(where, metric)
    sweep = load_saved(sweep_name, storage)
    row = choose(load_results(sweep).frontier, where, metric, mode)
    report = read_report(sweep, row.trial_id)
    uri = resolve_uri(tracking_uri or sweep.tracking.uri)
    runs = SweepRuns(sweep.name, uri, sweep.tracking.experiment, sweep.spec_hash())
    model_name = name or sweep.name
    with console.status(f"registering trial {row.trial_id} ({report.spec.short_name()}) as {model_name}..."):
        done = promote_variant(report.spec, report, runs.run_id_of(row.trial_id), uri, model_name, alias,
                               {"sweep": sweep.name, "trial_id": row.trial_id, "spec_hash": sweep.spec_hash(),
                                "where": " and ".join(where), "chosen_by": f"{mode} {metric}",
                                # against the baseline: the finalists' speedup from the head-to-head
                                **{f"metric.{k}": f"{v:.6g}" for k, v in row.metrics.items()
                                   if isinstance(v, (int, float)) and k not in report.metrics}})
    console.print(f"registered {done.name} version {done.version} ({report.spec.short_name()}, "
                  f"{metric} = {row.metrics.get(metric, float('nan')):.3f}) with alias @{done.alias}", soft_wrap=True)
    console.print(f"use it: infersweep summarize {done.model_uri} < article.txt", soft_wrap=True)


def summarize(
    model_uri: str = typer.Argument(..., help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/..."),
    file: Optional[Path] = typer.Argument(None, help="text file (default: stdin)"),
    jsonl: bool = typer.Option(False, help="input is JSONL: one document per line (field 'document')"),
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
):
    """Summarize text with a registered model: one summary per document, each followed by a blank line."""
    quiet_libraries()
    from infersweep.tracking.registry import load_summarizer

    documents, source = _read_documents(file, jsonl)
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


def _read_documents(file: Optional[Path], jsonl: bool) -> tuple[list[str], str]:
    """The documents of `file` (stdin without one) and where they came from; bad input fails here."""
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
    documents = _jsonl_documents(text, source) if jsonl else [text.strip()] if text.strip() else []
    if not documents:
        fail(f"no documents in {source}: pass a text file or pipe a document on stdin")
    return documents, source


def _jsonl_documents(text: str, source: str) -> list[str]:
    """The `document` field of each JSON line; a line that has none fails, naming its number."""
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
    return documents


def ui(
    tracking_uri: Optional[str] = typer.Option(None, help=TRACKING_HELP),
    port: int = typer.Option(5000),
):
    """Open the MLflow UI on the local store (127.0.0.1 only)."""
    import os

    from infersweep.tracking.store import resolve_uri

    uri = resolve_uri(tracking_uri)
    console.print(f"MLflow UI on http://127.0.0.1:{port} for {uri}")
    os.execvp("mlflow", ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)])
