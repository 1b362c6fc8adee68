"""Ctrl-C and SIGTERM stop a sweep as a failure a user can continue, never as a success."""
import signal
import subprocess
import sys
import time

import pytest

from infersweep.sweeps.spec import load_sweep_spec
from tests.sweeps.test_sweep_e2e import small_sweep

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_exits_non_zero_and_says_how_to_resume(tmp_path, signum):
    name = f"stop{int(signum)}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = small_sweep(tmp_path, name=name, algorithm="grid", trials=6)
    sweep = load_sweep_spec(spec)
    trials = sweep.sweep_dir() / "trials"
    proc = subprocess.Popen([sys.executable, "-m", "infersweep", "launch", str(spec), "--tracking-uri", uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials.glob("*/report.json"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the driver did not stop within 120 s of the signal")
    assert proc.returncode == 130, err[-2000:]
    assert f"infersweep resume {name}" in err and "Traceback" not in err
    assert "Pareto frontier" not in out and "promote" not in out
    assert "Tuner.restore" not in out + err

    from infersweep.tracking.sweep_runs import SweepRuns

    runs = SweepRuns(name, uri)
    parent = runs.client.get_run(runs._find("sweep").info.run_id)
    assert parent.info.status == "KILLED"
    assert not [r for r in runs.trial_runs() if r.info.status == "RUNNING"]

    resumed = subprocess.run([sys.executable, "-m", "infersweep", "resume", name, "--tracking-uri", uri,
                              "--storage", str(tmp_path / "sweeps")], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # the runnable grid (fp32, int8_dynamic x 2 batch sizes; fp16 is ruled out on CPU), the baseline among it
    assert len(list(trials.glob("*/report.json"))) == 4
    assert runs.client.get_run(parent.info.run_id).info.status == "FINISHED"
