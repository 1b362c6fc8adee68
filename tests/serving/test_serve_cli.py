"""`infersweep serve` refuses what it cannot serve with one line, before any Ray starts."""
from typer.testing import CliRunner

from infersweep.cli import app


def serve(*args):
    return CliRunner().invoke(app, ["serve", *args])


def test_an_unknown_trial_id_is_one_line_exit_2(tmp_path):
    result = serve("0123456789ab", "--storage", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "no trial '0123456789ab'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_registered_model_is_one_line_exit_1(tmp_path):
    result = serve("models:/nothing-here@champion", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.exit_code == 1, result.output
    assert "cannot load models:/nothing-here@champion" in result.stderr and "Traceback" not in result.output


def test_a_trial_folder_cannot_go_to_a_cluster(tmp_path):
    from infersweep.trials import TrialSpec
    from infersweep.trials.spec import TrialReport

    (tmp_path / "report.json").write_text(TrialReport(spec=TrialSpec(n=3), status="ok").to_json())
    result = serve(str(tmp_path), "--address", "ray://head:10001")
    assert result.exit_code == 2, result.output
    assert "promote it" in result.stderr and len(result.stderr.strip().splitlines()) == 1
