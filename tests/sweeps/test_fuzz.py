"""Fuzzing the sweep-file and dataset loaders: any mutation ends in exit code 0 or 2 and, on an
error, one line naming the problem; never a traceback."""
import copy
import csv
import io
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infersweep.cli import SPECS_DIR, app

runner = CliRunner()
BASE = yaml.safe_load((SPECS_DIR / "quickstart.yaml").read_text())
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)


def _paths(node, prefix=()):
    """Every key path of a nested mapping/list."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutated_specs(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped this path
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    if draw(st.booleans()):  # damage the bytes themselves sometimes (not UTF-8, stray characters)
        at = draw(st.integers(0, len(text)))
        junk = st.one_of(st.binary(max_size=6), st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\x80", b"\t", b"\x00"]))
        text = text[:at] + draw(junk) + text[at:]
    return text


def _one_line_or_ok(result):
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output


@FUZZ
@given(text=mutated_specs())
def test_any_mutated_sweep_file_is_accepted_or_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_bytes(text)
    _one_line_or_ok(runner.invoke(app, ["validate", str(path)]))


rows = st.lists(st.dictionaries(st.sampled_from(["document", "summary", "id", "x"]), values, max_size=4),
                min_size=0, max_size=4)


@st.composite
def dataset_files(draw):
    kind = draw(st.sampled_from(["jsonl", "csv", "bytes"]))
    good = [{"document": "A cat sat. It slept.", "summary": "A cat sat."}]
    records = good + draw(rows) if draw(st.booleans()) else draw(rows)
    if kind == "jsonl":
        lines = [json.dumps(r) if draw(st.booleans()) else draw(st.text(max_size=20)) for r in records]
        return "jsonl", "\n".join(lines).encode("utf-8", "surrogatepass")
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        header = draw(st.lists(st.sampled_from(["document", "summary", "x", ""]), min_size=0, max_size=3))
        writer.writerow(header)
        for r in records:
            writer.writerow([str(r.get(h, "")) for h in header])
        return "csv", out.getvalue().encode("utf-8", "surrogatepass")
    return "jsonl", draw(st.binary(max_size=200))


@FUZZ
@given(file=dataset_files())
def test_any_dataset_file_is_accepted_or_one_line(tmp_path_factory, file):
    suffix, content = file
    folder = tmp_path_factory.mktemp("fuzzdata")
    data = folder / f"data.{suffix}"
    data.write_bytes(content)
    spec = folder / "sweep.yaml"
    spec.write_text(f"name: fuzz\ndataset: {{path: '{data}'}}\n")
    _one_line_or_ok(runner.invoke(app, ["validate", str(spec)]))
