"""The zygote forks a fresh process per call: own pid and state, failures reported, nothing orphaned,
and a trial measured in it reports what a trial in a fresh interpreter reports."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from infersweep.sweeps.zygote import Zygote, ZygoteError

MARK = {"set": False}  # module state a forked child changes: the next child must not see it


def mark_and_report() -> dict:
    seen = MARK["set"]
    MARK["set"] = True
    return {"pid": os.getpid(), "seen": seen}


def run_trial_json(spec_json: str, out_dir: str) -> str:
    from infersweep.trials.runner import run_trial
    from infersweep.trials.spec import TrialSpec

    return run_trial(TrialSpec.from_json(spec_json), out_dir).to_json()


def sleep_forever(pid_file: str) -> None:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


@pytest.fixture
def zygote():
    z = Zygote(preload=("json",))
    yield z
    z.close()


def test_each_call_is_a_fresh_process_with_fresh_state(zygote):
    first = zygote.call("tests.sweeps.test_zygote:mark_and_report")
    second = zygote.call("tests.sweeps.test_zygote:mark_and_report")
    assert first["pid"] != second["pid"] and os.getpid() not in (first["pid"], second["pid"])
    assert first["seen"] is False and second["seen"] is False  # the first child's change died with it
    assert not MARK["set"]


def test_a_child_that_raises_or_dies_is_an_error_and_the_zygote_serves_on(zygote):
    with pytest.raises(ZygoteError, match="JSONDecodeError"):
        zygote.call("json:loads", "{not json")
    with pytest.raises(ZygoteError, match="exit status 3"):
        zygote.call("os:_exit", 3)
    assert zygote.call("json:loads", "[1, 2]") == [1, 2]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its (dead) parent is gone too
        return f.read().split(") ")[1].startswith("Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")
def test_a_killed_parent_takes_the_zygote_and_its_running_child_along(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from infersweep.sweeps.zygote import Zygote
        Zygote(preload=()).call("tests.sweeps.test_zygote:sleep_forever", {str(pid_file)!r})
        """)], cwd=os.getcwd())
    deadline = time.time() + 120
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), "the child never started"
    time.sleep(0.5)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 60
    while not _gone(child) and time.time() < deadline:
        time.sleep(0.2)
    assert _gone(child), "the trial process outlived its worker"


@pytest.mark.slow
def test_a_forked_trial_reports_what_a_fresh_interpreter_reports(tmp_path):
    """The same trial (onnxruntime int8, structured pruning) in a fresh interpreter and forked from
    a zygote that preloaded torch, transformers and onnxruntime: the same report but for timings."""
    from infersweep.trials.spec import TrialReport, TrialSpec

    spec = TrialSpec(n=3, warmup=0, repeats=1, batch_size=2, cpus=1, runtime="onnxruntime",
                     precision="int8_dynamic", pruning="structured", prune_ratio=0.2)
    fresh = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from tests.sweeps.test_zygote import run_trial_json
        print(run_trial_json({spec.to_json()!r}, {str(tmp_path / 'fresh')!r}))
        """)], capture_output=True, text=True, timeout=900)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    zygote = Zygote()
    try:
        forked = TrialReport.from_json(zygote.call("tests.sweeps.test_zygote:run_trial_json", spec.to_json(),
                                                   str(tmp_path / "forked")))
    finally:
        zygote.close()
    fresh = TrialReport.from_json((tmp_path / "fresh" / "report.json").read_text())
    assert fresh.status == forked.status == "ok", (fresh.reason, forked.reason)
    timed = {"latency", "throughput", "peak_memory", "prepare_peak"}
    same = lambda metrics: {k: v for k, v in metrics.items() if not any(t in k for t in timed)}  # noqa: E731
    assert same(forked.metrics) == same(fresh.metrics) and set(forked.metrics) == set(fresh.metrics)
    assert forked.metrics["model_size_mb"] == fresh.metrics["model_size_mb"]
    for field in ("per_document", "document_ids", "sample_summaries", "versions", "hardware", "spec"):
        assert getattr(forked, field) == getattr(fresh, field), field
    assert set(forked.phases_s) == set(fresh.phases_s)
    assert set(forked.timing) == set(fresh.timing)
    assert json.loads(forked.to_json()).keys() == json.loads(fresh.to_json()).keys()
