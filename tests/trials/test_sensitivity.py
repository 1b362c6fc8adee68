"""The pruning sensitivity scan and its CLI, on the bundled model and a few bundled documents."""
import json

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from infersweep.dashboards.sensitivity import PALETTE, table, write_plot
from infersweep.sensitivity_cli import sensitivity
from infersweep.trials import TrialSpec
from infersweep.trials.pruning import count_parameters
from infersweep.trials.sensitivity import ScanResult, ScanRow, Scanner, space_yaml, suggest_ratios

SPEC = dict(n=3, batch_size=3, warmup=0, repeats=1, cpus=1)
HEADS, HEAD_SIZE, HIDDEN, FFN, LAYERS = 12, 32, 384, 1536, 6  # all-MiniLM-L6-v2
HEAD_PARAMS = HEAD_SIZE * (3 * (HIDDEN + 1) + HIDDEN)  # its rows of Q, K, V (with bias), its columns of W_o


@pytest.fixture(scope="module")
def scanned():
    scanner = Scanner(TrialSpec(**SPEC), importance="activation")
    result = scanner.run(kinds=["structured", "unstructured"], ratios=[0.2], layer_ratio=0.5)
    return scanner, result


def test_scan_measures_every_kind_ratio_and_layer(scanned):
    scanner, result = scanned
    base = result.baseline
    assert base.rougeLsum > 5 and base.params == count_parameters(scanner.prepared.module)
    structured, = result.of_kind("structured")
    unstructured, = result.of_kind("unstructured")
    # 0.2: 2 of 12 heads in every layer and 0.2 of all FFN neurons (a row of W_in with bias, a column of W_out)
    neurons = round(0.2 * LAYERS * FFN)
    assert base.params - structured.params == LAYERS * 2 * HEAD_PARAMS + neurons * (2 * HIDDEN + 1)
    # fp32 on disk: the file shrinks by the share of parameters removed; zeros shrink nothing
    kept = structured.params / base.params
    assert structured.model_size_mb / base.model_size_mb == pytest.approx(kept, rel=0.01)
    assert unstructured.params == base.params
    assert unstructured.model_size_mb == pytest.approx(base.model_size_mb, rel=0.001)
    assert structured.speedup == pytest.approx(base.latency_ms_per_sample / structured.latency_ms_per_sample)
    assert structured.rouge_drop_pct == pytest.approx(100 * (1 - structured.rougeLsum / base.rougeLsum))
    layers = result.of_kind("heads", per_layer=True)
    assert [r.layer for r in layers] == list(range(scanner.num_layers())) == list(range(LAYERS))
    assert all(r.latency_ms_per_sample is None for r in layers)  # ROUGE only unless asked
    assert {base.params - r.params for r in layers} == {HEADS // 2 * HEAD_PARAMS}  # half of one layer's heads
    assert json.loads(json.dumps(result.to_dict()))["rows"][0]["kind"] == "structured"


def test_table_and_plot(scanned, tmp_path):
    from rich.console import Console

    _, result = scanned
    console = Console(record=True, width=160)
    console.print(table(result))
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in console.export_text().splitlines()
             if line.startswith("│")]
    assert cells[0][:3] == ["none", "0", ""] and cells[0][-1] == "0.00"
    assert [(kind, layer) for kind, _, layer, *_ in cells[1:]] == (
        [("structured", "all"), ("unstructured", "all")] + [("heads", str(i)) for i in range(6)])
    html, png, why = write_plot(result, tmp_path / "scan.html", png=False)
    page = html.read_text()
    assert png is None and why == "PNG not requested" and not (tmp_path / "scan.png").exists()
    assert all(f'"name":"{name}"' in page for name in ("structured", "unstructured", "heads per layer"))
    _, png, why = write_plot(result, tmp_path / "with-png.html")
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert why == "" and pixels.shape == (440, 3 * 520, 3)  # 4.4 x 5.2 in per panel at 100 dpi, 3 panels
    for kind in ("structured", "unstructured", "heads"):  # each curve or bar drawn in its colour
        colour = [int(PALETTE[kind][i:i + 2], 16) for i in (1, 3, 5)]
        assert (pixels == colour).all(-1).sum() > 50, kind


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
    saved = json.loads((tmp_path / "sensitivity.json").read_text())
    assert [(r["kind"], r["ratio"]) for r in saved["rows"]] == [("structured", 0.1), ("structured", 0.3)]
    assert saved["importance"] == "weight" and saved["spec"]["n"] == 2
    assert '"name":"structured"' in (tmp_path / "sensitivity.html").read_text()
    assert not (tmp_path / "sensitivity.png").exists()  # --no-png


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


def test_an_infeasible_precision_ends_with_the_reason_a_trial_gives(tmp_path):
    """sensitivity enters the runtime through the same door as a trial: fp16 on a CPU is refused
    before anything loads, with the trial's own reason, as one line."""
    from infersweep.trials.feasibility import check
    from infersweep.trials.hardware import detect

    hardware = detect()
    if hardware.cuda_available:
        pytest.skip("fp16 runs here")
    result = CliRunner().invoke(_app(), ["--precision", "fp16", "--n", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    reason = check(TrialSpec(precision="fp16", n=2, batch_size=8, warmup=1, repeats=1), hardware)
    assert result.output.strip().splitlines()[-1] == f"error: {reason}"
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written
