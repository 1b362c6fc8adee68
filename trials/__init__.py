"""One trial: spec -> build model -> transform -> run -> measure -> report.

Nothing here imports Ray or MLflow: a trial runs the same from a test, the CLI or a Ray worker.
"""
from infersweep.trials.spec import TrialReport, TrialSpec

__all__ = ["TrialSpec", "TrialReport", "run_trial"]


def run_trial(spec, out_dir=None):
    from infersweep.trials.runner import run_trial as _run

    return _run(spec, out_dir)
