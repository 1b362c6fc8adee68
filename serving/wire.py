"""MLflow's `/invocations` wire format for the summarizer, without MLflow.

A client that talks to `mlflow models serve` talks to `infersweep serve` unchanged: the same
request shapes in, the same bytes out. Request bodies (JSON, UTF-8) MLflow's scoring server
accepts for the pyfunc's one string column (tracking/pyfunc.py):

    {"inputs": ["doc 1", "doc 2"]}   {"inputs": "one doc"}   {"instances": [...]}
    {"inputs": {"document": [...]}}
    {"dataframe_records": [{"document": "doc 1"}, ...]}
    {"dataframe_split": {"columns": ["document"], "data": [["doc 1"], ...]}}

Answer: `{"predictions": [{"summary": "..."}, ...]}` serialized as MLflow does (json.dumps
defaults), one prediction per document in order. Errors are MLflow's error shape,
`{"error_code": "BAD_REQUEST", "message": "..."}`, with a one-line message; unlike MLflow, empty
documents and documents that are not text are refused (MLflow would summarize "" or str(x)).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from infersweep.trials.errors import InfersweepError

__all__ = ["INPUT_COLUMN", "Limits", "OUTPUT_COLUMN", "RequestError", "error_body", "parse_documents",
           "predictions_body"]

INPUT_COLUMN = "document"
OUTPUT_COLUMN = "summary"
JSON_TYPE = "application/json"
FORMATS = ("inputs", "instances", "dataframe_records", "dataframe_split")
IGNORED_KEYS = ("params",)  # MLflow takes prediction params beside the data; the summarizer has none


class RequestError(InfersweepError, ValueError):
    """A request the server refuses: `status` is the HTTP status, str() the one-line reason."""

    def __init__(self, message: str, status: int = 400, reason: str = "bad_request"):
        super().__init__(" ".join(str(message).split()))
        self.status = status
        self.reason = reason  # the label of the errors metric

    @property
    def error_code(self) -> str:
        return {413: "RESOURCE_LIMIT_EXCEEDED", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}.get(
            self.status, "BAD_REQUEST")


@dataclass(frozen=True)
class Limits:
    """What one request may hold; beyond it the server answers 413 instead of growing memory."""

    max_body_bytes: int = 4 * 2**20
    max_documents: int = 256


def parse_documents(body: bytes, content_type: str | None, limits: Limits = Limits()) -> list[str]:
    """The documents of one request body, in order; RequestError names what is wrong."""
    _check_content_type(content_type)
    if len(body) > limits.max_body_bytes:
        raise body_too_large(limits)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})",
                           reason="bad_json") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                           f'send {{"inputs": ["document text", ...]}}', reason="bad_json") from None
    documents = _documents(payload)
    if not documents:
        raise RequestError("no documents in the request; send at least one", reason="empty")
    if len(documents) > limits.max_documents:
        raise RequestError(f"{len(documents)} documents in one request; at most {limits.max_documents}: "
                           f"split it into several requests", status=413, reason="too_many_documents")
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, str):
            raise RequestError(f"document {number} is {_json_type(document)}, expected text", reason="not_text")
        if not document.strip():
            raise RequestError(f"document {number} is empty", reason="empty")
    return documents


def body_too_large(limits: Limits) -> RequestError:
    return RequestError(f"the body is larger than {limits.max_body_bytes} bytes; send fewer or shorter documents "
                        f"per request", status=413, reason="body_too_large")


def _check_content_type(content_type: str | None) -> None:
    mime, _, parameters = (content_type or "").partition(";")
    if mime.strip().lower() != JSON_TYPE:
        raise RequestError(f"content type {content_type or 'none'!r} is not supported; send {JSON_TYPE}",
                           status=415, reason="content_type")
    charset = parameters.strip().lower().removeprefix("charset=").strip('"') if parameters.strip() else "utf-8"
    if charset != "utf-8":
        raise RequestError(f"charset {charset!r} is not supported; send UTF-8", status=415, reason="content_type")


def _documents(payload) -> list:
    if not isinstance(payload, dict):
        raise RequestError(f"the body is a JSON {_json_type(payload)}; expected an object like "
                           f'{{"inputs": ["document text", ...]}}', reason="bad_shape")
    keys = [k for k in payload if k in FORMATS]
    unknown = [k for k in payload if k not in FORMATS and k not in IGNORED_KEYS]
    if len(keys) != 1 or unknown:
        found = ", ".join(map(repr, payload)) or "none"
        raise RequestError(f"expected exactly one of the keys {', '.join(FORMATS)}; got keys {found}",
                           reason="bad_shape")
    key = keys[0]
    value = payload[key]
    if key in ("inputs", "instances"):
        return _column(value, key)
    if key == "dataframe_records":
        return _records(value)
    return _split(value)


def _column(value, key: str) -> list:
    """`inputs`/`instances`: a string, a list of strings, or {column: list} with the document column."""
    if isinstance(value, dict):
        value = _pick_column(value, f"{key!r}")
    if isinstance(value, list):
        return value
    return [value]  # a single document (or something that is not text: refused by the caller)


def _records(value) -> list:
    if not isinstance(value, list):
        raise RequestError(f"'dataframe_records' must be a list of objects, got {_json_type(value)}",
                           reason="bad_shape")
    documents = []
    for number, record in enumerate(value, start=1):
        if not isinstance(record, dict):
            raise RequestError(f"record {number} of 'dataframe_records' is {_json_type(record)}, expected an "
                               f"object like {{{INPUT_COLUMN!r}: \"text\"}}", reason="bad_shape")
        documents.append(_pick_column(record, f"record {number}"))
    return documents


def _split(value) -> list:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise RequestError("'dataframe_split' must be an object with 'columns' and 'data' (a list of rows)",
                           reason="bad_shape")
    columns = value.get("columns") or [INPUT_COLUMN]
    if not isinstance(columns, list):
        raise RequestError("'dataframe_split.columns' must be a list of column names", reason="bad_shape")
    index = columns.index(INPUT_COLUMN) if INPUT_COLUMN in columns else 0 if len(columns) == 1 else None
    if index is None:
        raise RequestError(f"'dataframe_split' needs a {INPUT_COLUMN!r} column; got columns {columns}",
                           reason="bad_shape")
    documents = []
    for number, row in enumerate(value["data"], start=1):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(f"row {number} of 'dataframe_split.data' must be a list of {len(columns)} "
                               f"value(s)", reason="bad_shape")
        documents.append(row[index])
    return documents


def _pick_column(mapping: dict, where: str):
    if INPUT_COLUMN in mapping:
        return mapping[INPUT_COLUMN]
    if len(mapping) == 1:
        return next(iter(mapping.values()))
    raise RequestError(f"{where} needs a {INPUT_COLUMN!r} field; got fields {sorted(mapping)}", reason="bad_shape")


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def predictions_body(summaries: list[str]) -> bytes:
    """What MLflow's scoring server writes for the pyfunc's `summary` DataFrame, byte for byte."""
    return json.dumps({"predictions": [{OUTPUT_COLUMN: s} for s in summaries]}).encode()


def error_body(error: RequestError) -> bytes:
    """MLflow's error shape: {"error_code": ..., "message": ...}."""
    return json.dumps({"error_code": error.error_code, "message": str(error)}).encode()
