"""A causal champion: a trial of the tiny Llama-layout LM on ONNX Runtime (int8), promoted with the
code path `infersweep promote` uses, loaded by `mlflow.pyfunc.load_model` in a fresh interpreter,
summarizes the trial's documents exactly as the trial did (greedy decoding is deterministic), and
`infersweep summarize models:/NAME@champion` answers too."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infersweep.cli import app

ROOT = Path(__file__).resolve().parents[2]
MODEL = "llm-summ"

PROMOTE = """
import json, sys
from infersweep.quiet import quiet_libraries
quiet_libraries()
from infersweep.trials import TrialSpec, run_trial
from infersweep.tracking.registry import promote_variant
spec = TrialSpec.model_validate_json(sys.argv[2])
report = run_trial(spec, sys.argv[3])
assert report.status == "ok", report.reason
done = promote_variant(spec, report, None, sys.argv[1], %r, "champion", {"sweep": "test"})
print("PROMOTED " + json.dumps({"uri": done.model_uri, "outputs": report.outputs}))
""" % MODEL

LOAD_AND_PREDICT = """
import json, sys
import mlflow, mlflow.pyfunc
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
docs = json.loads(sys.stdin.read())
model = mlflow.pyfunc.load_model(sys.argv[2])
print("RESULT " + json.dumps(model.predict(docs)["summary"].tolist()))
"""


@pytest.fixture(scope="module")
def champion(tiny_llama_dir, tmp_path_factory):
    """(tracking uri, model uri, the trial's outputs, its documents), promoted in a process of its own."""
    from infersweep.trials import TrialSpec
    from infersweep.trials.data import eval_slice, load_examples

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = TrialSpec(model=str(tiny_llama_dir), task="causal", runtime="onnxruntime", precision="int8_dynamic",
                     n=3, batch_size=2, warmup=0, repeats=1, cpus=1,
                     timing={"max_seconds": 1, "min_passes": 1, "min_batches": 1, "rel_halfwidth_pct": 100},
                     causal={"max_new_tokens": 6, "max_input_tokens": 96})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFERSWEEP_CACHE": str(root / "cache")}
    done = subprocess.run([sys.executable, "-c", PROMOTE, uri, spec.model_dump_json(), str(root / "trial")],
                          capture_output=True, text=True, cwd=root, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    promoted = json.loads(done.stdout.split("PROMOTED ", 1)[1])
    documents = [e.document for e in eval_slice(load_examples("sample"), spec.n, spec.seed)]
    return uri, promoted["uri"], promoted["outputs"], documents, env


def test_pyfunc_of_a_causal_champion_summarizes_like_its_trial(champion, tmp_path):
    uri, model_uri, outputs, documents, env = champion
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, uri, model_uri], input=json.dumps(documents),
                          capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert summaries == outputs and all(s.strip() for s in summaries)


def test_cli_summarize_answers_with_the_causal_champion(champion, monkeypatch):
    uri, model_uri, outputs, documents, env = champion
    monkeypatch.setenv("INFERSWEEP_CACHE", env["INFERSWEEP_CACHE"])
    result = CliRunner().invoke(app, ["summarize", model_uri, "--tracking-uri", uri], input=documents[0].encode())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == outputs[0].strip()
