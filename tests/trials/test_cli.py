import json

from typer.testing import CliRunner

from infersweep.cli import app
from infersweep.trials.errors import InfersweepError

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


def test_a_quality_bound_where_no_accuracy_control_runs_is_an_infeasible_trial_with_the_way_out(tmp_path):
    result = runner.invoke(app, ["trial", "--n", "2", "--runtime", "onnxruntime", "--precision", "int8_static",
                                 "--max-rouge-drop", "1", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "infeasible" and report["spec"]["quantization"]["max_rouge_drop_pct"] == 1.0
    assert "without a quality bound" in report["reason"] and "leave the setting out" in report["reason"]
    bad = runner.invoke(app, ["trial", "--max-rouge-drop", "0"])
    assert bad.exit_code == 2 and "max_rouge_drop_pct" in bad.output


def test_unknown_value_lists_valid_ones():
    result = runner.invoke(app, ["trial", "--runtime", "tvm"])
    assert result.exit_code == 2
    assert "valid: torch" in result.output


def test_missing_dataset_is_a_clear_error():
    result = runner.invoke(app, ["trial", "--dataset", "/no/such.jsonl"])
    assert result.exit_code == 2
    assert "not found" in result.output


class _DeepError(InfersweepError, ValueError):
    """An error a user can fix, raised far below the command."""


def _raise(error):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_an_infersweep_error_from_deep_down_is_one_red_line_and_exit_2(monkeypatch):
    monkeypatch.setattr("infersweep.trials.models.resolve_model", _raise(_DeepError("model: fix the path\nor the name")))
    result = runner.invoke(app, ["trial"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.strip() == "error: model: fix the path or the name"


def test_an_error_that_says_its_exit_code_ends_with_it(monkeypatch):
    error = _DeepError("the server went away")
    error.exit_code = 1
    monkeypatch.setattr("infersweep.trials.models.resolve_model", _raise(error))
    assert runner.invoke(app, ["trial"]).exit_code == 1


def test_other_exceptions_are_not_turned_into_user_errors(monkeypatch):
    monkeypatch.setattr("infersweep.trials.models.resolve_model", _raise(KeyError("a bug")))
    result = runner.invoke(app, ["trial"])
    assert isinstance(result.exception, KeyError)


def test_every_command_catches_infersweep_errors_the_same_way():
    assert app.registered_commands
    for command in app.registered_commands:
        assert getattr(command.callback, "__wrapped__", None), command.callback
