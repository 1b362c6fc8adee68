"""MLflow's /invocations request shapes → documents, and every malformed body → one clear 4xx reason."""
import json

import pytest

from infersweep.serving.wire import Limits, RequestError, error_body, parse_documents, predictions_body

JSON = "application/json"
DOCS = ["First document. It has two sentences.", "Second document here."]


def parse(payload, content_type=JSON, limits=Limits()):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_documents(body, content_type, limits)


@pytest.mark.parametrize("payload", [
    {"inputs": DOCS},
    {"instances": DOCS},
    {"inputs": {"document": DOCS}},
    {"inputs": {"text": DOCS}},  # a dict of one column: its only column
    {"dataframe_records": [{"document": d} for d in DOCS]},
    {"dataframe_split": {"columns": ["document"], "data": [[d] for d in DOCS]}},
    {"dataframe_split": {"columns": ["id", "document"], "data": [[i, d] for i, d in enumerate(DOCS)]}},
    {"inputs": DOCS, "params": {}},
])
def test_every_mlflow_shape_gives_the_documents_in_order(payload):
    assert parse(payload) == DOCS


def test_a_single_string_is_one_document():
    assert parse({"inputs": DOCS[0]}) == DOCS[:1]
    assert parse(b'{"inputs": "caf\\u00e9 society. It opens late."}', "application/json; charset=utf-8") == [
        "café society. It opens late."]


@pytest.mark.parametrize("payload, status, reason, words", [
    (b'{"inputs": ["a", ', 400, "bad_json", "not valid JSON"),
    (b"\xff\xfe{}", 400, "bad_json", "not UTF-8"),
    ([1, 2], 400, "bad_shape", "JSON a list"),
    ({"data": DOCS}, 400, "bad_shape", "expected exactly one of the keys"),
    ({"inputs": DOCS, "instances": DOCS}, 400, "bad_shape", "expected exactly one of the keys"),
    ({"inputs": []}, 400, "empty", "no documents"),
    ({"inputs": ["fine text.", "  "]}, 400, "empty", "document 2 is empty"),
    ({"inputs": ["fine text.", 5]}, 400, "not_text", "document 2 is a number"),
    ({"inputs": [["nested"]]}, 400, "not_text", "document 1 is a list"),
    ({"inputs": None}, 400, "not_text", "document 1 is null"),
    ({"dataframe_records": [{"document": "ok."}, "text"]}, 400, "bad_shape", "record 2"),
    ({"dataframe_records": [{"a": "x", "b": "y"}]}, 400, "bad_shape", "needs a 'document' field"),
    ({"dataframe_split": {"columns": ["a", "b"], "data": [["x", "y"]]}}, 400, "bad_shape", "needs a 'document' column"),
    ({"dataframe_split": {"columns": ["document"], "data": [["x", "y"]]}}, 400, "bad_shape", "row 1"),
    ({"dataframe_split": "x"}, 400, "bad_shape", "'dataframe_split' must be"),
])
def test_bad_bodies_are_refused_with_one_line(payload, status, reason, words):
    with pytest.raises(RequestError) as caught:
        parse(payload)
    error = caught.value
    assert (error.status, error.reason) == (status, reason)
    assert words in str(error) and "\n" not in str(error)
    assert json.loads(error_body(error)) == {"error_code": "BAD_REQUEST", "message": str(error)}


@pytest.mark.parametrize("content_type", [None, "text/csv", "text/plain", "application/json; charset=latin-1"])
def test_other_content_types_are_415(content_type):
    with pytest.raises(RequestError) as caught:
        parse({"inputs": DOCS}, content_type)
    assert caught.value.status == 415 and "\n" not in str(caught.value)


def test_limits_are_413():
    limits = Limits(max_body_bytes=2000, max_documents=3)
    with pytest.raises(RequestError) as big:
        parse({"inputs": ["word " * 500]}, limits=limits)
    assert big.value.status == 413 and big.value.reason == "body_too_large"
    with pytest.raises(RequestError) as many:
        parse({"inputs": ["a."] * 4}, limits=limits)
    assert many.value.status == 413 and "at most 3" in str(many.value)
    assert parse({"inputs": ["a."] * 3}, limits=limits) == ["a."] * 3


def test_predictions_are_mlflow_bytes():
    # what mlflow's scoring server writes: json.dump({"predictions": df.to_dict("records")}) with defaults
    summaries = ["One.\nTwo.", "caf\u00e9 \"quoted\""]
    assert predictions_body(summaries) == json.dumps(
        {"predictions": [{"summary": s} for s in summaries]}).encode()
    assert predictions_body(summaries).startswith(b'{"predictions": [{"summary": "One.\\nTwo."}, ')
