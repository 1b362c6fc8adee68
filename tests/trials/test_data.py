import json

import pytest

from infersweep.trials.data import DatasetError, calibration_slice, eval_slice, load_examples


def test_bundled_sample_is_valid_and_large_enough():
    examples = load_examples("sample")
    assert len(examples) == 36  # the slicing tests below count on it
    assert len({e.id for e in examples}) == 36
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


@pytest.mark.parametrize("name, head", [("latin1.jsonl", b'{"document": "a", "summary": "b"}\n'),
                                         ("latin1.csv", b"document,summary\n")])
def test_non_utf8_file_names_the_line_the_byte_and_the_fix(tmp_path, name, head):
    path = tmp_path / name
    bad = '{"document": "Caf\xe9 opens.", "summary": "x"}\n' if name.endswith("jsonl") else "Caf\xe9 opens.,x\n"
    path.write_bytes(head + bad.encode("latin-1"))
    offset = path.read_bytes().index(b"\xe9")
    with pytest.raises(DatasetError) as info:
        load_examples(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "line 2" in message and f"offset {offset}" in message and "0xe9" in message
    assert "re-encode the file as UTF-8" in message


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"document": "Doc.", "summary": "Sum."}).encode() + b"\n")
    (e,) = load_examples(str(path))
    assert (e.document, e.summary) == ("Doc.", "Sum.")


def test_slices_cap_n_and_say_when_calibration_overlaps():
    from infersweep.trials.data import slices

    examples = load_examples("sample")  # 36 examples
    capped = slices(examples, 50, 8)
    assert capped.evaluation == examples and capped.overlap == 8
    assert any("n=50 is more than the dataset's 36 examples" in note for note in capped.notes)
    assert any("calibration overlaps evaluation" in n and "n <= 28" in n for n in capped.calibration_notes)
    short = slices(examples, 30, 8)  # 6 left outside the evaluation
    assert short.overlap == 0 and len(short.calibration) == 6 and not short.notes
    assert any("calibrating on 6 examples, not 8" in note for note in short.calibration_notes)
    disjoint = slices(examples, 28, 8)
    assert disjoint.overlap == 0 and len(disjoint.calibration) == 8
    assert not disjoint.notes and not disjoint.calibration_notes


def test_slices_nest_and_calibration_stays_put_so_evaluation_can_grow():
    from infersweep.trials.data import Example, extension_slice

    examples = [Example(f"d{i}", f"Document {i}.", f"Summary {i}.") for i in range(100)]
    small, large = eval_slice(examples, 10, seed=1), eval_slice(examples, 30, seed=1)
    assert set(e.id for e in small) < set(e.id for e in large)  # nested: n=30 extends n=10
    calib_10, calib_30 = calibration_slice(examples, 10, 8, 1), calibration_slice(examples, 30, 8, 1)
    assert calib_10 == calib_30 and len(calib_10) == 8  # does not move with n
    more = extension_slice(examples, 10, 30, n_calib=8, seed=1)
    assert sorted(e.id for e in small + more) == sorted(e.id for e in large)
    everything = extension_slice(examples, 10, 1000, n_calib=8, seed=1)
    assert len(everything) == 100 - 10 - 8  # up to the calibration slice, never into it
    assert not {e.id for e in everything} & {e.id for e in calib_10 + small}
    assert extension_slice(examples, 95, 1000, n_calib=8, seed=1) == []
