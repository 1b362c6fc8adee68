"""`infersweep trial`: one trial, measured and printed (no Ray, no MLflow)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from infersweep.errors import fail, validation_message
from infersweep.quiet import quiet_libraries
from infersweep.trials.models import ADAPTERS
from infersweep.trials.precision import PRECISIONS
from infersweep.trials.pruning import PRUNING_METHODS
from infersweep.trials.runtimes import RUNTIMES

__all__ = ["print_report", "trial"]

console = Console()


def trial(
    model: str = typer.Option("all-MiniLM-L6-v2", help="save_pretrained() dir, hub id, or bundled name"),
    task: str = typer.Option("extractive", help=" | ".join(ADAPTERS)),
    dataset: str = typer.Option("sample", help="JSONL/CSV path, 'sample', or hf:NAME[:CONFIG]:SPLIT"),
    n: int = typer.Option(50, help="documents to evaluate (a deterministic subset)"),
    precision: str = typer.Option("fp32", help=" | ".join(PRECISIONS)),
    pruning: Optional[str] = typer.Option(None, help=f"{' | '.join(PRUNING_METHODS)} (default: unstructured if "
                                                     "--prune > 0)"),
    prune: float = typer.Option(0.0, help="pruning ratio in [0, 0.95]"),
    head_ratio: Optional[float] = typer.Option(None, help="structured: share of attention heads removed "
                                                          "(default: --prune)"),
    ffn_ratio: Optional[float] = typer.Option(None, help="structured: share of FFN neurons removed (default: --prune)"),
    importance: str = typer.Option("activation", help="structured: rank by activation (calibration slice) | weight"),
    runtime: str = typer.Option("torch", help=" | ".join(RUNTIMES)),
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
    max_new_tokens: Optional[int] = typer.Option(None, help="causal: most new tokens per summary (default 96); "
                                                 "seq2seq: generation.max_new_tokens (default 64)"),
    max_input_tokens: Optional[int] = typer.Option(None, help="causal: prompt budget in tokens, longer articles "
                                                   "are cut (default 1024); seq2seq: generation.max_input_tokens"),
    max_rouge_drop: Optional[float] = typer.Option(
        None, help="int8_static with accuracy control (openvino, NNCF): layers return to float until ROUGE-Lsum "
                   "on the calibration slice drops at most this percentage (relative); default: plain quantization"),
    out: Optional[Path] = typer.Option(None, help="trial directory (default .infersweep/trials/ID)"),
    as_json: bool = typer.Option(False, "--json", help="print the JSON report instead of a table"),
    profile: bool = typer.Option(False, "--profile", help="then profile the variant with its runtime's own "
                                 "profiler: top operators by self time, trace.json in the trial directory"),
):
    """Run one trial and print its latency, memory and ROUGE."""
    quiet_libraries()
    from infersweep.trials import TrialSpec, run_trial

    fields = dict(model=model, task=task, dataset=dataset, n=n, precision=precision,
                  pruning=pruning or ("unstructured" if prune > 0 else "none"), prune_ratio=prune,
                  runtime=runtime, batch_size=batch_size, device=device, cpus=cpus, warmup=warmup,
                  repeats=repeats, seed=seed, document_field=document_field, summary_field=summary_field,
                  summary_length=summary_length, structured={"head_ratio": head_ratio, "ffn_ratio": ffn_ratio, "importance": importance},
                  quantization={"max_rouge_drop_pct": max_rouge_drop})
    decoding = {k: v for k, v in (("max_new_tokens", max_new_tokens), ("max_input_tokens", max_input_tokens))
                if v is not None}
    if decoding and task in ("causal", "seq2seq"):
        fields["causal" if task == "causal" else "generation"] = decoding
    elif decoding:
        fail(f"--max-new-tokens/--max-input-tokens apply to the causal and seq2seq tasks, not {task}")
    try:
        spec = TrialSpec(**fields)
    except ValidationError as exc:
        fail(validation_message(exc))
    _check_inputs(spec)
    with console.status(f"running trial {spec.short_name()} on {spec.n} documents..."):
        report = run_trial(spec, out)
    from infersweep.trials.runner import trial_dir

    where = trial_dir(spec, out) / "report.json"
    if as_json:
        print(report.to_json())
    else:
        print_report(report, where)
    if profile:
        _profile(report, where.parent, as_json)
    raise typer.Exit(0 if report.status in ("ok", "infeasible") else 1)


def _profile(report, folder: Path, as_json: bool) -> None:
    """`--profile`: the trial's variant under its runtime's profiler (a trial that did not end ok
    is an error saying so); with --json the table goes to stderr, stdout stays the report."""
    from infersweep.profile_cli import print_profile
    from infersweep.trials.profile import profile_report

    where = Console(stderr=True) if as_json else console
    with where.status(f"profiling {report.spec.short_name()}..."):
        result = profile_report(report, folder)
    print_profile(result, where=where)


def _check_inputs(spec) -> None:
    """Bad model or dataset paths fail here (ModelNotFound, DatasetError), before anything loads."""
    from infersweep.trials.data import load_examples
    from infersweep.trials.models import resolve_model

    resolve_model(spec.model)
    load_examples(spec.dataset, spec.document_field, spec.summary_field)


def print_report(report, where: Path) -> None:
    from infersweep.trials.measure import METRICS

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
