"""Datasets: the bundled sample, JSONL/CSV files with field mapping, Hugging Face datasets."""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

SAMPLE_PATH = Path(__file__).parent / "sample" / "sample.jsonl"
HF_PREFIX = "hf:"


class DatasetError(ValueError):
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


def _jsonl_rows(path: Path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
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
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
            yield number, row


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


def eval_slice(examples: list[Example], n: int, seed: int = 0) -> list[Example]:
    """A deterministic subset of n examples (all of them if n >= len), in dataset order."""
    if n >= len(examples):
        return list(examples)
    picked = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in picked]


def calibration_slice(examples: list[Example], n_eval: int, n_calib: int, seed: int = 0) -> list[Example]:
    """Up to n_calib examples disjoint from eval_slice(examples, n_eval, seed)."""
    eval_ids = {id(e) for e in eval_slice(examples, n_eval, seed)}
    rest = [e for e in examples if id(e) not in eval_ids]
    if not rest:  # tiny datasets: calibrate on the eval set rather than not at all
        rest = list(examples)
    return rest[:n_calib]
