"""The pruning sensitivity scan and its CLI, on the bundled model and a few bundled documents."""
import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from infersweep.sensitivity_cli import sensitivity
from trials import TrialSpec
from trials.sensitivity import (ScanResult, ScanRow, Scanner, space_yaml, suggest_ratios, table,
                                write_plot)

SPEC = dict(n=3, batch_size=3, warmup=0, repeats=1, cpus=1)


@pytest.fixture(scope="module")
def scanned():
    scanner = Scanner(TrialSpec(**SPEC), importance="activation")
    result = scanner.run(kinds=["structured", "unstructured"], ratios=[0.2], layer_ratio=0.5)
    return scanner, result


def test_scan_measures_every_kind_ratio_and_layer(scanned):
    scanner, result = scanned
    base = result.baseline
    assert base.rougeLsum > 5 and base.latency_ms_per_sample > 0 and base.params > 20_000_000
    structured, = result.of_kind("structured")
    unstructured, = result.of_kind("unstructured")
    assert structured.params < base.params and structured.model_size_mb < base.model_size_mb
    assert unstructured.params == base.params  # zeros, same shapes
    assert structured.speedup and structured.speedup > 0
    layers = result.of_kind("heads", per_layer=True)
    assert [r.layer for r in layers] == list(range(scanner.num_layers())) == list(range(6))
    assert all(r.latency_ms_per_sample is None for r in layers)  # ROUGE only unless asked
    assert all(r.params < base.params for r in layers)
    assert json.loads(json.dumps(result.to_dict()))["rows"][0]["kind"] == "structured"


def test_table_and_plot(scanned, tmp_path):
    from rich.console import Console

    _, result = scanned
    console = Console(record=True, width=160)
    console.print(table(result))
    text = console.export_text()
    assert "structured" in text and "unstructured" in text and "ROUGE-Lsum" in text
    html, png, why = write_plot(result, tmp_path / "scan.html", png=False)
    assert html.exists() and "plotly" in html.read_text()[:5000].lower() and png is None
    _, png, why = write_plot(result, tmp_path / "with-png.html")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000 and why == ""


def _result(drops: dict[float, float]) -> ScanResult:
    base = ScanRow("baseline", 0.0, rougeLsum=30.0, latency_ms_per_sample=10.0)
    rows = [ScanRow("structured", r, rouge_drop_pct=d) for r, d in drops.items()]
    return ScanResult(TrialSpec(), "weight", base, rows)


def test_suggested_ratios_stop_past_the_bound():
    result = _result({0.1: 0.2, 0.2: 0.5, 0.3: 1.4, 0.4: 3.0})
    assert suggest_ratios(result, max_drop_pct=1.0) == [0.1, 0.2, 0.3]
    assert suggest_ratios(result, max_drop_pct=5.0) == [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(ValueError, match="no 'heads' rows"):
        suggest_ratios(result, kind="heads")
    snippet = space_yaml([0.1, 0.2, 0.3])
    assert yaml.safe_load(snippet) == {"pruning": {"methods": ["structured"], "ratios": [0.1, 0.2, 0.3]}}


def _app():
    app = typer.Typer()
    app.command()(sensitivity)
    return app


def test_cli_emits_a_sweep_space(tmp_path):
    args = ["--n", "2", "--batch-size", "2", "--kind", "structured", "--ratios", "0.1,0.3",
            "--layer-ratio", "0", "--warmup", "0", "--cpus", "1", "--importance", "weight",
            "--out", str(tmp_path), "--no-png", "--emit-space"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    space = yaml.safe_load(result.stdout)
    assert space["pruning"]["methods"] == ["structured"]
    assert set(space["pruning"]["ratios"]) <= {0.1, 0.3} and space["pruning"]["ratios"][0] == 0.1
    assert (tmp_path / "sensitivity.html").exists() and (tmp_path / "sensitivity.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--kind", "rows"], "valid kinds"),
    (["--ratios", "0.1,x"], "comma-separated"),
    (["--ratios", "0.99"], "(0, 0.95]"),
    (["--dataset", "/nonexistent.jsonl"], "not found"),
    (["--importance", "gradient"], "activation or weight"),
])
def test_cli_rejects_bad_input_before_loading(args, message):
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")


def test_cli_piped_shows_progress_lines_and_the_whole_table(tmp_path):
    import subprocess
    import sys

    args = ["--n", "2", "--batch-size", "2", "--kind", "structured", "--ratios", "0.3", "--layer-ratio", "0",
            "--warmup", "0", "--cpus", "1", "--importance", "weight", "--out", str(tmp_path), "--no-png"]
    done = subprocess.run([sys.executable, "-m", "infersweep", "sensitivity", *args], capture_output=True,
                          text=True, timeout=600, env={**__import__("os").environ, "COLUMNS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "s] loading the model and data..." in done.stderr and "s] measuring" in done.stderr
    assert "…" not in done.stdout, done.stdout  # no column cut to fit 80 characters
