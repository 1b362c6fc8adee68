"""`validate` runs every check `launch` runs, before Ray or MLflow start."""
import json
import sys

import pytest
from typer.testing import CliRunner

from infersweep.cli import app
from infersweep.sweeps.checks import declared_hardware, preflight
from infersweep.sweeps.spec import SweepSpecError, load_sweep_spec

runner = CliRunner()


def write(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, needle", [
    ("name: a\nmodel: ./modles/bart\n", "model:"),
    ("name: a\ndataset: {path: /no/such/data.jsonl}\n", "dataset.path:"),
    ("name: a\nbaseline: {precision: fp16}\n", "baseline (torch-fp16-dense-b1 on cpu) cannot run"),
    ("name: a\ntrial: {device: cuda}\nresources: {gpu: 0}\n", "resources.gpu:"),
    ("name: a\nspace: {precision: [fp32, fp32]}\n", "space.precision: precision 'fp32' is listed twice"),
    ("name: a\nspace: {batch_size: [true]}\n", "space.batch_size.0: Input should be a valid integer"),
    ("name: a\ndataset: {n: '12'}\n", "dataset.n: Input should be a valid integer"),
])
def test_validate_rejects_what_launch_would_reject(tmp_path, text, needle):
    result = runner.invoke(app, ["validate", str(write(tmp_path, text))])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / ".infersweep").exists()


def test_a_relative_typo_fails_fast_without_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sweep = load_sweep_spec(write(tmp_path, "name: a\nmodel: my-org/my-summarizer\n"))
    with pytest.raises(SweepSpecError) as info:
        preflight(sweep)
    assert "my-org/my-summarizer" in str(info.value) and "not a local folder" in str(info.value)


def test_a_dataset_with_the_wrong_fields_is_named(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"article": "A. B.", "highlights": "A."}) + "\n")
    result = runner.invoke(app, ["validate", str(write(tmp_path, f"name: a\ndataset: {{path: {data}}}\n"))])
    assert result.exit_code == 2 and "dataset.path:" in result.output and "article" in result.output


def test_a_small_dataset_is_a_note_not_an_error(tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path, "name: a\ndataset: {n: 5000}\n"))])
    assert result.exit_code == 0, result.output
    assert "note: dataset.n is 5000" in result.output


def test_a_gpu_sweep_is_checked_against_the_declared_gpu(tmp_path):
    sweep = load_sweep_spec(write(tmp_path, "name: a\ntrial: {device: cuda}\nresources: {gpu: 1}\n"
                                            "baseline: {precision: fp16}\n"))
    assert declared_hardware(sweep).cuda_available
    notes = preflight(sweep)  # fp16 on the declared GPU is fine even from a CPU-only laptop: no error
    assert not [n for n in notes if "baseline" in n]


def test_shipped_quickstart_passes(tmp_path):
    from infersweep.cli import SPECS_DIR

    result = runner.invoke(app, ["validate", str(SPECS_DIR / "quickstart.yaml")])
    assert result.exit_code == 0, result.output
    assert "combinations" in result.output


def test_launch_checks_before_it_starts_anything(tmp_path):
    import subprocess

    spec = write(tmp_path, f"name: a\ndataset: {{path: {tmp_path / 'missing.jsonl'}}}\n"
                           f"storage: {{path: {tmp_path / 'sweeps'}}}\n")
    done = subprocess.run([sys.executable, "-m", "infersweep", "launch", str(spec),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "dataset.path:" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


def test_promote_rejects_bad_conditions_as_bad_input(tmp_path):
    bad = runner.invoke(app, ["promote", "nosuch", "--where", "rouge falls a bit", "--storage", str(tmp_path)])
    assert bad.exit_code == 2 and "--where:" in bad.output
    metric = runner.invoke(app, ["promote", "nosuch", "--minimize", "speed", "--storage", str(tmp_path)])
    assert metric.exit_code == 2 and "unknown metric 'speed'" in metric.output
    helped = runner.invoke(app, ["promote", "--help"], env={"COLUMNS": "200"})
    assert "repeat the flag" in helped.output


def test_validate_says_when_the_document_budget_cannot_decide_the_constraint(tmp_path):
    small = runner.invoke(app, ["validate", str(write(tmp_path, "name: a\ndataset: {n: 12}\n"))])
    assert small.exit_code == 0, small.output
    assert "on 12 documents" in small.output and "undecided" in small.output
    point = runner.invoke(app, ["validate", str(write(tmp_path, "name: a\ndataset: {n: 12}\nconfidence: 0.5\n"))])
    assert "undecided" not in point.output
    loose = runner.invoke(app, ["validate", str(write(tmp_path, "name: a\nconstraints: ['rouge_drop_pct <= 5']\n"))])
    assert "undecided" not in loose.output
