"""A promoted model summarizes each document it is given, whatever the input shape or the way in.

One real registered model (the bundled extractive summarizer, promoted with the same code path
`infersweep promote` uses) in a temporary sqlite MLflow store, shared by the module's tests.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infersweep.cli import app

ROOT = Path(__file__).resolve().parents[2]
MODEL = "summ"

PROMOTE = """
import json, sys
from infersweep.quiet import quiet_libraries
quiet_libraries()  # what the CLI's `promote` does before it promotes
from infersweep.trials import TrialSpec
from infersweep.trials.hardware import library_versions
from infersweep.trials.spec import TrialReport
from infersweep.tracking.registry import promote_variant
spec = TrialSpec(n=3, warmup=0, repeats=1, batch_size=2, cpus=1)
report = TrialReport(spec=spec, status="ok", metrics={"latency_ms_per_sample": 1.0}, versions=library_versions())
done = promote_variant(spec, report, None, sys.argv[1], %r, "champion", {"sweep": "test"})
print("PROMOTED " + json.dumps(done.model_uri))
""" % MODEL


def _documents(n: int) -> list[str]:
    from infersweep.trials.data import load_examples

    return [e.document for e in load_examples("sample")[:n]]


def _words(text: str) -> str:
    return " ".join(text.split())


def _check(summaries: list[str], documents: list[str]) -> None:
    """One summary per document, made of that document's own sentences, and no list reprs."""
    assert len(summaries) == len(documents), summaries
    for summary, document in zip(summaries, documents):
        assert "['" not in summary and summary.strip()
        sentences = [s for s in summary.splitlines() if s.strip()]
        assert sentences and all(_words(s) in _words(document) for s in sentences), (summary, document[:200])
        assert len(_words(summary)) < len(_words(document))  # a summary, not the document


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """(tracking uri, model uri, the promotion's stderr), promoted in a process of its own."""
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cwd = root / "cwd"
    cwd.mkdir()
    done = subprocess.run([sys.executable, "-c", PROMOTE, uri], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    model_uri = json.loads(done.stdout.split("PROMOTED ", 1)[1])
    assert not (cwd / "mlruns").exists()  # artifacts go next to the store, never into the working dir
    (mlmodel,) = (root / "mlartifacts").rglob("MLmodel")  # the one logged model, with its code and variant
    model = mlmodel.parent
    assert (model / "pyfunc.py").is_file() and (model / "artifacts" / "variant").is_dir()
    assert "mlflow.pyfunc.loaders.code_model" in mlmodel.read_text() and not list(model.rglob("*.pkl"))
    previous = mlflow.get_tracking_uri()
    yield uri, model_uri, done.stderr
    mlflow.set_tracking_uri(previous)  # the in-process CLI calls point MLflow at this store
    mlflow.set_registry_uri(previous)


def test_promotion_is_quiet(registered):
    _, _, stderr = registered
    assert "CloudPickle" not in stderr
    assert "Downloading artifacts" not in stderr and "Uploading artifacts" not in stderr
    assert "it/s]" not in stderr  # no progress bar of any kind


def summarize(uri: str, model_uri: str, *args: str, stdin: bytes | None = None):
    return CliRunner().invoke(app, ["summarize", model_uri, *args, "--tracking-uri", uri], input=stdin)


def _summaries(stdout: str) -> list[str]:
    return [s for s in stdout.strip().split("\n\n") if s.strip()]


def test_cli_summarizes_one_document_from_stdin(registered):
    uri, model_uri, _ = registered
    (document,) = _documents(1)
    result = summarize(uri, model_uri, stdin=document.encode())
    assert result.exit_code == 0, result.output
    _check(_summaries(result.stdout), [document])


def test_cli_gives_one_summary_per_jsonl_document(registered, tmp_path):
    uri, model_uri, _ = registered
    documents = _documents(3)
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "document": d}) for i, d in enumerate(documents)) + "\n\n")
    result = summarize(uri, model_uri, str(path), "--jsonl")
    assert result.exit_code == 0, result.output
    _check(_summaries(result.stdout), documents)


@pytest.mark.parametrize("content, jsonl, message", [
    (b'{"document": "One. Two."}\n{"document": "Three.",\n', True, "line 2: not valid JSON"),
    (b'{"document": "One. Two."}\n\n{"text": "Three."}\n', True, "line 3: missing field 'document'"),
    (b'["One. Two."]\n', True, "line 1: missing field 'document'"),
    (b'{"document": 5}\n', True, "line 1: field 'document' must be non-empty text"),
    (b"Caf\xe9 society. It is open late.", False, "is not UTF-8 text"),
    (b"  \n", False, "no documents"),
])
def test_cli_bad_input_is_one_clear_line(registered, tmp_path, content, jsonl, message):
    uri, model_uri, _ = registered
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    for args, stdin in (([str(path)], None), ([], content)):  # a file, then the same bytes on stdin
        result = summarize(uri, model_uri, *args, *(["--jsonl"] if jsonl else []), stdin=stdin)
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert message in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_missing_file_and_missing_model(registered, tmp_path):
    uri, model_uri, _ = registered
    missing = summarize(uri, model_uri, str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr and "nope.txt" in missing.stderr
    unknown = summarize(uri, "models:/no-such-model@champion", stdin=b"One sentence. Another one.")
    assert unknown.exit_code == 1 and "cannot load models:/no-such-model@champion" in unknown.stderr
    assert "Traceback" not in unknown.output


LOAD_AND_PREDICT = """
import json, sys
import mlflow, mlflow.pyfunc, pandas as pd
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
docs = json.loads(sys.stdin.read())
model = mlflow.pyfunc.load_model(sys.argv[2])
out = {
    "list": model.predict(docs),
    "string": model.predict(docs[0]),
    "dict": model.predict({"document": docs}),
    "dataframe": model.predict(pd.DataFrame({"document": docs})),
}
print("RESULT " + json.dumps({k: v["summary"].tolist() for k, v in out.items()}))
"""


def test_pyfunc_in_a_fresh_process_takes_every_input_shape(registered, tmp_path):
    uri, model_uri, _ = registered
    documents = _documents(3)
    # a fresh interpreter that has imported nothing of ours: MLflow loads the model's own code
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, uri, model_uri], input=json.dumps(documents),
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.split("RESULT ", 1)[1])
    _check(results["string"], documents[:1])
    for shape in ("list", "dict", "dataframe"):
        _check(results[shape], documents)
        assert results[shape] == results["list"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_mlflow_models_serve_gives_one_summary_per_document(registered, tmp_path):
    uri, model_uri, _ = registered
    documents = _documents(3)
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its uvicorn
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(base + "/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "server did not start:\n" + log.read_text()[-3000:]
                time.sleep(0.5)
        by_inputs = _post(base + "/invocations", {"inputs": documents})["predictions"]
        by_records = _post(base + "/invocations",
                           {"dataframe_records": [{"document": d} for d in documents]})["predictions"]
        _check([p["summary"] for p in by_inputs], documents)
        assert by_records == by_inputs
        for single in (documents[:1], documents[0]):  # a list of one, and a bare string
            one = _post(base + "/invocations", {"inputs": single})["predictions"]
            _check([p["summary"] for p in one], documents[:1])
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own session: it and its uvicorn worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
