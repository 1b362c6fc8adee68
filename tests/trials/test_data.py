import json

import pytest

from trials.data import DatasetError, calibration_slice, eval_slice, load_examples


def test_bundled_sample_is_valid_and_large_enough():
    examples = load_examples("sample")
    assert len(examples) >= 30
    for e in examples:
        assert 120 <= len(e.document.split()) <= 400
        assert 2 <= len(e.summary.split("\n")) <= 4


def test_jsonl_field_mapping(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"article": "Doc text.", "highlights": "Sum."}) + "\n")
    (e,) = load_examples(str(path), "article", "highlights")
    assert (e.document, e.summary) == ("Doc text.", "Sum.")


def test_csv_loader(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('document,summary\n"A doc, with comma.",A sum.\n')
    (e,) = load_examples(str(path))
    assert e.document == "A doc, with comma."


@pytest.mark.parametrize("lines, needle", [
    ([{"document": "x", "summary": "y"}, {"document": "x"}], "line 2: missing field(s) ['summary']"),
    ([{"document": "  ", "summary": "y"}], "line 1: field 'document' is empty"),
])
def test_bad_rows_name_the_line(tmp_path, lines, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    with pytest.raises(DatasetError) as info:
        load_examples(str(path))
    assert needle in str(info.value)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"document": "a", "summary": "b"}\n{oops\n')
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        load_examples(str(path))


def test_missing_file_says_what_to_give():
    with pytest.raises(DatasetError, match="not found; give a JSONL or CSV"):
        load_examples("/no/such/file.jsonl")


def test_subset_is_deterministic_and_calibration_is_disjoint():
    examples = load_examples("sample")
    a, b = eval_slice(examples, 10, seed=3), eval_slice(examples, 10, seed=3)
    assert a == b and len(a) == 10
    assert eval_slice(examples, 10, seed=4) != a
    calib = calibration_slice(examples, 10, 5, seed=3)
    assert len(calib) == 5 and not {e.id for e in calib} & {e.id for e in a}
