"""Datasets: the bundled sample, JSONL/CSV files with field mapping, Hugging Face datasets."""
from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from infersweep.trials.errors import InfersweepError

SAMPLE_PATH = Path(__file__).parent / "sample" / "sample.jsonl"
HF_PREFIX = "hf:"
CALIBRATION_DOCS = 8  # examples set aside to calibrate quantization/pruning and derive settings


class DatasetError(InfersweepError, ValueError):
    """A dataset that cannot be used; the message names the file, line and fix."""


@dataclass(frozen=True)
class Example:
    id: str
    document: str
    summary: str


def resolve_path(dataset: str) -> Path:
    if dataset == "sample":
        return SAMPLE_PATH
    path = Path(dataset).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset {dataset!r} not found; give a JSONL or CSV file path, 'sample' for the "
            f"bundled set, or 'hf:NAME[:CONFIG]:SPLIT' for a Hugging Face dataset"
        )
    return path


def load_examples(dataset: str, document_field: str = "document",
                  summary_field: str = "summary") -> list[Example]:
    """Every example of `dataset`, validated: each needs a non-empty document and summary."""
    if dataset.startswith(HF_PREFIX):
        rows = _hf_rows(dataset[len(HF_PREFIX):])
        where = dataset
    else:
        path = resolve_path(dataset)
        rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
        where = str(path)
    examples = [_example(row, number, where, document_field, summary_field) for number, row in rows]
    if not examples:
        raise DatasetError(f"{where}: no examples found")
    return examples


def _example(row, number: int, where: str, doc_field: str, sum_field: str) -> Example:
    missing = [f for f in (doc_field, sum_field) if f not in row]
    if missing:
        raise DatasetError(
            f"{where}, line {number}: missing field(s) {missing}; found {sorted(row)}. "
            f"Map your columns with --document-field/--summary-field (dataset fields in a sweep)"
        )
    document, summary = str(row[doc_field] or "").strip(), str(row[sum_field] or "").strip()
    for name, value in ((doc_field, document), (sum_field, summary)):
        if not value:
            raise DatasetError(f"{where}, line {number}: field {name!r} is empty; remove or fix that line")
    return Example(id=str(row.get("id", number)), document=document, summary=summary)


def read_text(path: Path) -> str:
    """The file's text as UTF-8 (a leading byte-order mark is dropped); anything else is a
    DatasetError naming the line, the byte offset and the fix."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        bad = data[start:start + 1].hex()
        guess = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DatasetError(
            f"{path}, line {line}: not UTF-8{guess}: byte 0x{bad} at offset {start} ({e.reason}); "
            f"re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > fixed{path.suffix}"
        ) from None


def _jsonl_rows(path: Path):
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({e.msg}); "
                               "each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _csv_rows(path: Path):
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for row in reader:
        yield reader.line_num, row  # the line the row ends on (line 1 is the header)


def _hf_rows(name: str):
    try:
        import datasets
    except ImportError:
        raise DatasetError("Hugging Face datasets need `pip install 'infersweep[hf]'`") from None
    parts = name.split(":")
    if len(parts) not in (2, 3):
        raise DatasetError(f"'hf:{name}': use hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT")
    split = parts[-1]
    ds = datasets.load_dataset(parts[0], *(parts[1:-1]), split=split)
    for number, row in enumerate(ds, start=1):
        yield number, row


def document_order(count: int, seed: int = 0) -> list[int]:
    """The dataset's examples in the seed's shuffled order: evaluation slices are its prefixes
    (so a larger n extends a smaller one: sequential evaluation), calibration comes from its end."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order


def eval_slice(examples: list[Example], n: int, seed: int = 0) -> list[Example]:
    """A deterministic subset of n examples (all of them if n >= len), in dataset order; the
    slice for n is contained in the slice for any larger n."""
    if n >= len(examples):
        return list(examples)
    return [examples[i] for i in sorted(document_order(len(examples), seed)[:n])]


def calibration_slice(examples: list[Example], n_eval: int, n_calib: int, seed: int = 0) -> list[Example]:
    """Up to n_calib examples disjoint from eval_slice(examples, n_eval, seed), from the end of the
    document order: the same examples for every n that leaves room for them.

    When every example is evaluated, the first n_calib are used anyway (`slices` says so)."""
    if n_eval >= len(examples):  # tiny datasets: calibrate on the eval set rather than not at all
        return list(examples[:n_calib])
    order = document_order(len(examples), seed)
    tail = order[max(n_eval, len(order) - n_calib):]
    return [examples[i] for i in sorted(tail)]


def extension_slice(examples: list[Example], n_eval: int, upto: int, n_calib: int = 0,
                    seed: int = 0) -> list[Example]:
    """The examples that extend eval_slice(examples, n_eval) to `upto` examples, in dataset
    order, never reaching the calibration slice (the last n_calib of the document order)."""
    order = document_order(len(examples), seed)
    stop = min(upto, len(order) - n_calib)
    return [examples[i] for i in sorted(order[n_eval:stop])] if stop > n_eval else []


@dataclass(frozen=True)
class Slices:
    """The evaluation and calibration slices of a dataset, and what a person should know about them."""

    evaluation: list[Example]
    calibration: list[Example]
    outside: list[Example] = field(default_factory=list)  # every example not evaluated, in order
    overlap: int = 0  # calibration examples that are also evaluated
    notes: list[str] = field(default_factory=list)  # n capped
    calibration_notes: list[str] = field(default_factory=list)  # overlap or fewer than asked


def slices(examples: list[Example], n: int, n_calib: int = CALIBRATION_DOCS, seed: int = 0) -> Slices:
    """eval_slice and calibration_slice together, with notes when n is capped to the dataset or
    the dataset is too small to keep the calibration examples out of the evaluation."""
    total = len(examples)
    evaluation = eval_slice(examples, n, seed)
    calibration = calibration_slice(examples, n, n_calib, seed)
    notes, calibration_notes = [], []
    if n > total:
        notes.append(f"n={n} is more than the dataset's {total} examples: evaluating all {total}")
    room = (f"use n <= {total - n_calib} for {n_calib} calibration examples outside the evaluation"
            if total > n_calib else f"use a dataset of more than {n_calib} examples")
    evaluated = {id(e) for e in evaluation}
    outside = [e for e in examples if id(e) not in evaluated]
    overlap = sum(id(e) in evaluated for e in calibration)
    if overlap:
        calibration_notes.append(
            f"calibration overlaps evaluation: all {len(evaluation)} examples are evaluated, so the "
            f"{len(calibration)} calibration examples are evaluated too; {room}")
    elif len(calibration) < n_calib:
        calibration_notes.append(
            f"calibrating on {len(calibration)} examples, not {n_calib}: only {len(calibration)} are "
            f"outside the evaluation slice of {len(evaluation)}; {room}")
    return Slices(evaluation, calibration, outside, overlap, notes, calibration_notes)
