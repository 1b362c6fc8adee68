import json

from typer.testing import CliRunner

from infersweep.cli import app

runner = CliRunner()


def test_trial_prints_every_metric_and_the_report_path(tmp_path):
    result = runner.invoke(app, ["trial", "--n", "2", "--warmup", "0", "--repeats", "1",
                                 "--cpus", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("latency_ms_per_sample", "peak_memory_mb", "model_size_mb", "rougeLsum"):
        assert name in result.output
    assert str(tmp_path / "report.json") in result.output.replace("\n", "")


def test_trial_json_output(tmp_path):
    result = runner.invoke(app, ["trial", "--n", "2", "--warmup", "0", "--repeats", "1", "--cpus", "1",
                                 "--precision", "int8_dynamic", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["spec"]["precision"] == "int8_dynamic"


def test_unknown_value_lists_valid_ones():
    result = runner.invoke(app, ["trial", "--runtime", "tvm"])
    assert result.exit_code == 2
    assert "valid: torch" in result.output


def test_missing_dataset_is_a_clear_error():
    result = runner.invoke(app, ["trial", "--dataset", "/no/such.jsonl"])
    assert result.exit_code == 2
    assert "not found" in result.output
