"""`infersweep sensitivity`: how much ROUGE and latency each pruning kind and ratio costs.

Registered in infersweep/cli.py with ``app.command()(sensitivity)``.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List

import typer
from rich.console import Console

from infersweep.errors import fail as _fail, user_errors, validation_message
from infersweep.trials.precision import PRECISIONS
from infersweep.trials.runtimes import RUNTIMES

console = Console()
err = Console(stderr=True)


def _ratios(text: str) -> list[float]:
    try:
        values = sorted({float(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError:
        _fail(f"--ratios {text!r}: give comma-separated numbers, e.g. 0.1,0.2,0.3")
    if not values or any(not 0 < v <= 0.95 for v in values):
        _fail(f"--ratios {text!r}: every ratio must be in (0, 0.95]")
    return values


@contextmanager
def _progress(where: Console):
    """A live spinner on a terminal; timestamped lines on stderr otherwise (a CI log, `| tee`), so a
    scan of many minutes is never silent."""
    if where.is_terminal:
        with where.status("") as live:
            yield live.update
        return
    started = time.monotonic()
    yield lambda message: err.print(f"[{time.monotonic() - started:6.0f} s] {message}", soft_wrap=True,
                                    markup=False, highlight=False)


@user_errors
def sensitivity(
    model: str = typer.Option("all-MiniLM-L6-v2", help="save_pretrained() dir, hub id, or bundled name"),
    dataset: str = typer.Option("sample", help="JSONL/CSV path, 'sample', or hf:NAME[:CONFIG]:SPLIT"),
    n: int = typer.Option(30, help="documents to evaluate (a deterministic subset)"),
    kinds: List[str] = typer.Option(["heads", "ffn", "structured", "unstructured"], "--kind",
                                    help="kinds to scan (repeat): heads, ffn, structured, unstructured"),
    ratios: str = typer.Option("0.1,0.2,0.3,0.4,0.5", help="comma-separated pruning ratios"),
    layer_ratio: float = typer.Option(0.5, help="share of one layer's heads removed in the per-layer "
                                                "scan (0 skips it)"),
    time_layers: bool = typer.Option(False, help="also time the per-layer variants (ROUGE only by default)"),
    importance: str = typer.Option("activation", help="activation (calibration slice) | weight"),
    precision: str = typer.Option("fp32", help=f"precision every variant runs in: {', '.join(PRECISIONS)}"),
    runtime: str = typer.Option("torch", help=f"runtime every variant runs on: {', '.join(RUNTIMES)}"),
    batch_size: int = typer.Option(8, help="documents per batch"),
    cpus: int = typer.Option(2, help="threads for torch / ONNX Runtime"),
    warmup: int = typer.Option(1, help="warm-up batches per variant"),
    repeats: int = typer.Option(1, help="timed passes per variant"),
    seed: int = typer.Option(0),
    document_field: str = typer.Option("document", help="dataset field holding the document"),
    summary_field: str = typer.Option("summary", help="dataset field holding the reference summary"),
    max_drop: float = typer.Option(1.0, help="ROUGE-Lsum drop bound (%) for the suggested ratios"),
    out: Path = typer.Option(Path(".infersweep") / "sensitivity", help="folder for the plot and JSON"),
    png: bool = typer.Option(True, help="also write a PNG of the plot (matplotlib)"),
    emit_space: bool = typer.Option(False, "--emit-space",
                                    help="print only the sweep snippet `pruning: {methods, ratios}` (YAML)"),
    as_json: bool = typer.Option(False, "--json", help="print the scan as JSON instead of a table"),
):
    """Measure ROUGE drop and latency per pruning kind and ratio (and per layer for heads)."""
    from pydantic import ValidationError

    from infersweep.quiet import quiet_libraries

    quiet_libraries()
    from infersweep.dashboards.sensitivity import table, write_plot
    from infersweep.trials.data import load_examples
    from infersweep.trials.models import resolve_model
    from infersweep.trials.sensitivity import KINDS, Scanner, space_yaml, suggest_ratios
    from infersweep.trials.spec import TrialSpec

    for kind in kinds:
        if kind not in KINDS:
            _fail(f"--kind {kind!r}: valid kinds are {', '.join(KINDS)}")
    if importance not in ("activation", "weight"):
        _fail(f"--importance {importance!r}: use activation or weight")
    if not 0 <= layer_ratio <= 0.95:
        _fail(f"--layer-ratio {layer_ratio}: must be in [0, 0.95]")
    values = _ratios(ratios)
    try:
        spec = TrialSpec(model=model, dataset=dataset, n=n, precision=precision, runtime=runtime,
                         batch_size=batch_size, cpus=cpus, warmup=warmup, repeats=repeats, seed=seed,
                         document_field=document_field, summary_field=summary_field)
    except ValidationError as exc:
        _fail(validation_message(exc))
    resolve_model(spec.model)  # a missing model or dataset (InfersweepErrors) ends here, before anything loads
    load_examples(spec.dataset, spec.document_field, spec.summary_field)

    quiet = emit_space or as_json
    status = err if quiet else console
    with _progress(status) as say:
        say("loading the model and data...")
        scanner = Scanner(spec, importance=importance)
        result = scanner.run(kinds, values, layer_ratio=layer_ratio or None, time_layers=time_layers,
                             progress=lambda msg: say(f"measuring {msg} ..."))
    out.mkdir(parents=True, exist_ok=True)
    (out / "sensitivity.json").write_text(json.dumps(result.to_dict(), indent=2))
    html, png_path, why = write_plot(result, out / "sensitivity.html", png=png, max_drop_pct=max_drop)
    method_kind = "structured" if "structured" in kinds else None
    snippet = space_yaml(suggest_ratios(result, max_drop, method_kind)) if method_kind else ""

    if emit_space:
        if not snippet:
            _fail("--emit-space needs the 'structured' kind in the scan (it is what a sweep's method runs)")
        print(snippet)
        return
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    # piped or logged: the whole table, not one cut to 80 columns
    wide = console if console.is_terminal else Console(width=200)
    wide.print(table(result, max_drop))
    console.print(f"plot: {html}" + (f" and {png_path}" if png_path else f"  ({why})"))
    console.print(f"data: {out / 'sensitivity.json'}  ({result.seconds:.0f} s)")
    if snippet:
        console.print(f"ratios within {max_drop:g}% ROUGE-Lsum drop (and the first past it), for a sweep:")
        console.print(snippet, markup=False, highlight=False)
