"""`infersweep serve`'s Ray Serve application, started for real on 127.0.0.1 with a promoted model.

One registered model (the bundled extractive summarizer, promoted as `infersweep promote` does) in a
temporary sqlite store; one local Ray instance (2 CPUs) serving it with max_batch_size 4 and a long
batch wait, so that requests sent together are batched together. MLflow's own scoring server app
(what `mlflow models serve` runs) serves the same registered model in this process, for the
byte-for-byte comparison.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = "served"
BATCH = 4

pytestmark = pytest.mark.slow  # promotes a model (~90 MB) and starts Ray Serve: a minute or more

PROMOTE = """
import json, sys
from infersweep.quiet import quiet_libraries
quiet_libraries()
from infersweep.trials import TrialSpec
from infersweep.trials.hardware import library_versions
from infersweep.trials.spec import TrialReport
from infersweep.tracking.registry import promote_variant
spec = TrialSpec(n=3, warmup=0, repeats=1, batch_size=%d, cpus=1)
report = TrialReport(spec=spec, status="ok", metrics={"latency_ms_per_sample": 1.0}, versions=library_versions())
done = promote_variant(spec, report, None, sys.argv[1], %r, "champion", {"sweep": "test"})
print("PROMOTED " + json.dumps(done.model_uri))
""" % (BATCH, MODEL)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _documents(n: int) -> list[str]:
    from infersweep.trials.data import load_examples

    return [e.document for e in load_examples("sample")[:n]]


def http(url: str, body=None, content_type: str = "application/json", timeout: float = 120):
    """(status, headers with lowercase names, body bytes) of a GET (no body) or POST."""
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _metrics(base: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = http(base + "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def _together(calls) -> list:
    """Run the calls at the same moment (threads released by one barrier), results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    import mlflow

    root = tmp_path_factory.mktemp("serve-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", PROMOTE, uri], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    previous = mlflow.get_tracking_uri()
    yield uri, json.loads(done.stdout.split("PROMOTED ", 1)[1])
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


@pytest.fixture(scope="module")
def server(registered):
    """(base URL, health and invocation answers seen right after deploying, before warm-up ended)."""
    import ray

    from infersweep.cluster import serve as serving
    from infersweep.cluster.connect import connect
    from infersweep.serving.config import ServeConfig

    uri, model_uri = registered
    connect("local", num_cpus=2, tracking_uri=uri)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config = ServeConfig(max_batch_size=BATCH, batch_wait_ms=1500, cpus_per_replica=1, max_queue=6,
                         max_body_bytes=64 * 1024, max_documents=16, max_document_tokens=300)
    try:
        # the replica downloads the model itself: loading and warming up take seconds after deploying
        serving.start(model_uri, config, "127.0.0.1", port, uri)
        early = {"health": http(base + "/health"),
                 "invocations": http(base + "/invocations", {"inputs": _documents(1)})}
        deadline = time.monotonic() + 600
        while http(base + "/health")[0] != 200:
            assert time.monotonic() < deadline, "the model did not warm up"
            time.sleep(0.5)
        yield base, early
    finally:
        serving.stop()
        ray.shutdown()


def test_health_is_503_until_warm_up_then_200(server):
    base, early = server
    status, headers, body = early["health"]
    assert status == 503 and json.loads(body) == {"status": "warming up"} and headers.get("retry-after") == "1"
    status, headers, body = early["invocations"]
    assert status == 503 and "warming up" in json.loads(body)["message"] and headers.get("retry-after")
    assert http(base + "/health")[:3:2] == (200, b'{"status": "ready"}')
    assert http(base + "/ping")[0] == 200  # MLflow's health path too


def test_concurrent_requests_are_summarized_in_one_engine_call(server):
    base, _ = server
    documents = _documents(BATCH)
    before = _metrics(base)
    answers = _together([lambda d=d: http(base + "/invocations", {"inputs": [d]}) for d in documents])
    after = _metrics(base)
    assert [a[0] for a in answers] == [200] * BATCH
    summaries = [json.loads(a[2])["predictions"][0]["summary"] for a in answers]
    for summary, document in zip(summaries, documents):  # each request got its own document's summary
        assert summary and all(" ".join(line.split()) in " ".join(document.split()) for line in summary.splitlines())
    calls = ("infersweep_engine_calls_total", ())
    batch_sum, batch_count = ("infersweep_batch_size_documents_sum", ()), ("infersweep_batch_size_documents_count", ())
    assert after[calls] - before[calls] == 1
    assert after[batch_count] - before[batch_count] == 1 and after[batch_sum] - before[batch_sum] == BATCH


@pytest.fixture(scope="module")
def mlflow_server(registered):
    """MLflow's scoring server app (what `mlflow models serve` runs) for the same model, on 127.0.0.1."""
    import mlflow.pyfunc
    import uvicorn
    from mlflow.pyfunc import scoring_server

    uri, model_uri = registered
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    app = scoring_server.init(mlflow.pyfunc.load_model(model_uri))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the MLflow scoring server did not start"
        time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(timeout=30)


def test_the_wire_format_is_mlflows_byte_for_byte(server, mlflow_server):
    base, _ = server
    documents = _documents(3)
    bodies = [{"inputs": documents}, {"inputs": documents[0]}, {"instances": documents[:2]},
              {"dataframe_records": [{"document": d} for d in documents]},
              {"dataframe_split": {"columns": ["document"], "data": [[d] for d in documents]}}]
    for body in bodies:
        ours, theirs = http(base + "/invocations", body), http(mlflow_server + "/invocations", body)
        assert ours[0] == theirs[0] == 200, (body, ours, theirs)
        assert ours[2] == theirs[2], body
        assert ours[1]["content-type"] == theirs[1]["content-type"] == "application/json"
    predictions = json.loads(ours[2])["predictions"]
    assert len(predictions) == 3 and all(set(p) == {"summary"} for p in predictions)


BAD = [  # (body, content type, status, words in the one-line reason)
    (b'{"inputs": ["unfinished', "application/json", 400, "not valid JSON"),
    ({"inputs": []}, "application/json", 400, "no documents"),
    ({"inputs": ["A fine document. Really.", ""]}, "application/json", 400, "document 2 is empty"),
    ({"inputs": ["A fine document. Really.", 42]}, "application/json", 400, "document 2 is a number"),
    ({"documents": ["A fine document."]}, "application/json", 400, "expected exactly one of the keys"),
    (b"document\nA fine document.\n", "text/csv", 415, "send application/json"),
    ({"inputs": ["x" * 70_000]}, "application/json", 413, "larger than 65536 bytes"),
    ({"inputs": ["A short one."] * 17}, "application/json", 413, "at most 16"),
    ({"inputs": ["A fine document.", "word " * 400]}, "application/json", 413, "document 2 has 400 tokens"),
]


@pytest.mark.parametrize("body, content_type, status, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_each_bad_input_is_a_4xx_with_one_line_and_the_server_keeps_serving(server, body, content_type, status,
                                                                            words):
    base, _ = server
    got, _, answer = http(base + "/invocations", body, content_type)
    assert got == status, answer
    message = json.loads(answer)["message"]
    assert words in message and "\n" not in message and "Traceback" not in message
    ok, _, answer = http(base + "/invocations", {"inputs": _documents(1)})
    assert ok == 200 and len(json.loads(answer)["predictions"]) == 1


def test_a_bad_request_in_a_batch_does_not_fail_the_others(server):
    base, _ = server
    documents = _documents(3)
    before = _metrics(base)
    calls = [lambda d=d: http(base + "/invocations", {"inputs": [d]}) for d in documents]
    calls.append(lambda: http(base + "/invocations", {"inputs": ["word " * 400]}))  # beyond the model's limit
    answers = _together(calls)
    after = _metrics(base)
    assert [a[0] for a in answers] == [200, 200, 200, 413]
    assert all(len(json.loads(a[2])["predictions"]) == 1 for a in answers[:3])
    # all four went to the replica together; the refused one never reached the engine
    key = ("infersweep_engine_calls_total", ())
    assert after[key] - before[key] == 1
    assert after[("infersweep_errors_total", (("reason", "too_long"),))] - before.get(
        ("infersweep_errors_total", (("reason", "too_long"),)), 0) == 1


def test_overload_is_503_with_retry_after_and_the_server_recovers(server):
    base, _ = server
    (document,) = _documents(1)
    answers = _together([lambda: http(base + "/invocations", {"inputs": [document]}) for _ in range(16)])
    statuses = [a[0] for a in answers]
    assert set(statuses) == {200, 503} and statuses.count(200) >= 1
    for status, headers, body in answers:
        if status == 503:
            assert headers.get("retry-after") == "1" and "at capacity (6 requests" in json.loads(body)["message"]
    assert http(base + "/invocations", {"inputs": [document]})[0] == 200
    metrics = _metrics(base)
    assert metrics[("infersweep_errors_total", (("reason", "overloaded"),))] >= statuses.count(503)
    assert metrics[("infersweep_queue_depth", ())] == 0


def test_metrics_parse_with_a_prometheus_parser(server):
    from prometheus_client.parser import text_string_to_metric_families

    base, _ = server
    http(base + "/invocations", {"inputs": _documents(1)})
    status, headers, body = http(base + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(body.decode())}
    assert families["infersweep_requests"] == "counter" and families["infersweep_errors"] == "counter"
    assert families["infersweep_request_latency_seconds"] == "histogram"
    assert families["infersweep_batch_size_documents"] == "histogram"
    assert families["infersweep_queue_depth"] == "gauge"
    assert _metrics(base)[("infersweep_requests_total", (("code", "200"),))] >= 1
