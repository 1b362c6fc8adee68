"""The report's numbers from a known set of trials, and the files it writes (no browser here)."""
import math
import re

import pytest

from infersweep.dashboards.data import (LATENCY, MEMORY, ROUGE, colour_of, constraint_band, report_data, staircase,
                             symbol_of)
from infersweep.dashboards.figures import scatter
from infersweep.dashboards.links import LOCAL_UI, run_links, ui_base
from infersweep.dashboards.report import HTML_NAME, PNG_NAME, build_report
from infersweep.sweeps.pareto import frontier
from tests.dashboards.conftest import CONSTRAINTS, EXPECTED_FRONTIER, FP16_REASON, OBJECTIVES, RAN

LINKS = {tid: f"http://127.0.0.1:5000/#/experiments/7/runs/run-{tid}" for tid in RAN}


def front_ids(rows):
    return [r.trial_id for r in frontier(rows, OBJECTIVES, CONSTRAINTS)]


def test_frontier_of_the_known_set(rows):
    assert set(front_ids(rows)) == EXPECTED_FRONTIER


def test_one_point_per_trial_that_ran(rows):
    data = report_data(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS, LINKS)
    assert sorted(p.trial_id for p in data.points) == sorted(RAN)
    assert {p.trial_id for p in data.points if p.on_frontier} == EXPECTED_FRONTIER
    assert {p.trial_id for p in data.points if not p.meets_constraints} == {"t-int8-p03-b8", "t-fp32-p05-b1"}
    assert [p.trial_id for p in data.points if p.baseline] == ["base"]
    sizes = {p.trial_id: p.size for p in data.points}
    assert sizes["t-fp32-b8"] == max(sizes.values()) and sizes["ort-int8-b8"] == min(sizes.values())
    hover = next(p.hover for p in data.points if p.trial_id == "t-int8-p03-b8")
    for text in ("int8_dynamic", "unstructured 0.3", "batch 8", "105.00 ms", "misses a constraint"):
        assert text in hover


def test_frontier_table_fastest_first_with_links(rows):
    data = report_data(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS, LINKS)
    assert [r["trial_id"] for r in data.frontier] == ["ort-int8-b8", "t-int8-b8", "t-int8-b1", "ort-fp32-b8", "t-fp32-b8"]
    first = data.frontier[0]
    cells = first["cells"]
    assert (cells["speedup"], cells["memory_reduction_pct"], cells["rouge_drop_pct"]) == ("2.78×", "56.6%", "0.82%")
    assert (cells["latency_ms_per_sample"], cells["peak_memory_mb"], cells["model_size_mb"], cells["rougeLsum"]) == \
        ("90.00", "150", "23.0", "40.90")
    assert (first["runtime"], first["precision"], first["pruning"], first["batch_size"]) == ("onnxruntime", "int8_dynamic", "none", 8)
    assert first["link"] == LINKS["ort-int8-b8"]
    last = data.frontier[-1]
    assert last["cells"]["rouge_drop_pct"] == "-0.15%" and last["cells"]["memory_reduction_pct"] == "-15.6%"
    assert "2.78×" in data.headline and "ort-int8-b8" in data.headline


def test_counts_and_reasons(rows):
    data = report_data(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS)
    assert data.counts == {"ok": 8, "infeasible": 2, "oom": 1, "failed": 1}
    assert data.meets_constraints == 6
    assert [(p["status"], p["count"]) for p in data.problems] == [("infeasible", 2), ("oom", 1), ("failed", 1)]
    assert data.problems[0]["reason"] == FP16_REASON
    assert data.problems[0]["trials"][0].startswith("t-fp16-b1 (torch fp16 dense b1")


def test_constraint_bands_through_the_baseline():
    base = {LATENCY: 250.0, ROUGE: 41.24, MEMORY: 346.0}
    band = constraint_band("rouge_drop_pct <= 1.0", base)
    assert band.axis == ROUGE and band.bound == pytest.approx(40.8276) and band.hi == math.inf
    band = constraint_band("speedup >= 2", base)
    assert band.axis == LATENCY and band.bound == pytest.approx(125) and band.lo == -math.inf
    band = constraint_band("memory_reduction_pct >= 50", base)
    assert band.axis == MEMORY and band.bound == pytest.approx(173) and band.lo == -math.inf
    band = constraint_band("latency_ms_per_sample < 100", base)
    assert (band.axis, band.lo, band.hi) == (LATENCY, -math.inf, 100)
    assert constraint_band("model_size_mb <= 50", base) is None
    assert constraint_band("rouge_drop_pct <= 1.0", {}) is None  # no baseline: nothing to anchor it to


def test_unplottable_constraints_are_listed(rows):
    data = report_data(rows, [], OBJECTIVES, CONSTRAINTS + ["model_size_mb <= 50"])
    assert [b.constraint for b in data.bands] == CONSTRAINTS
    assert data.unplotted_constraints == ["model_size_mb <= 50"]


def test_staircase_is_the_2d_tradeoff_of_the_frontier(rows):
    data = report_data(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS)
    # t-int8-b1 is on the frontier for its memory, but no better than t-int8-b8 on these two axes
    assert [p.trial_id for p in staircase(data.points, LATENCY, ROUGE, "max")] == \
        ["ort-int8-b8", "t-int8-b8", "ort-fp32-b8", "t-fp32-b8"]
    assert [p.trial_id for p in staircase(data.points, LATENCY, MEMORY, "min")] == ["ort-int8-b8"]


def test_encoding_is_stable_across_sweeps():
    assert colour_of("torch", ["torch"]) == colour_of("torch", ["onnxruntime", "torch", "mystery"])
    assert colour_of("onnxruntime", ["onnxruntime"]) != colour_of("torch", ["torch"])
    assert symbol_of("fp32", ["fp32"]) == ("circle", "o")
    assert symbol_of("int8_dynamic", ["int8_dynamic"]) == ("triangle-up", "^")
    assert symbol_of("my_quant", ["fp32", "my_quant"])[0] not in {symbol_of(p, [p])[0] for p in ("fp32", "fp16")}


def test_figure_has_each_trial_once_with_its_encoding(rows):
    data = report_data(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS, LINKS)
    fig = scatter(data, LATENCY, ROUGE, "t")
    trials = [t for t in fig.data if t.meta == "trials"]
    ids = [i for t in trials for i in t.ids]
    assert sorted(ids) == sorted(RAN)
    for trace in trials:
        runtime = trace.legendgroup
        assert trace.marker.color == colour_of(runtime, data.runtimes)
        assert trace.marker.symbol == symbol_of(trace.name, data.precisions)[0]
        assert list(trace.customdata) == [LINKS[i] for i in trace.ids]
    step = [t for t in fig.data if t.mode == "lines"]
    assert len(step) == 1 and step[0].line.shape == "hv"
    # from the ROUGE constraint's edge up to the fastest trial, along the staircase, out to the right edge
    assert list(step[0].x) == [90, 90, 110, 150, 200, fig.layout.xaxis.range[1]]
    assert list(step[0].y) == [pytest.approx(41.24 * 0.99), 40.9, 41.0, 41.24, 41.3, 41.3]
    no_band = scatter(report_data(rows, front_ids(rows), OBJECTIVES, [], LINKS), LATENCY, ROUGE, "t")
    assert [t for t in no_band.data if t.mode == "lines"][0].y[0] == no_band.layout.yaxis.range[0]
    assert any(a.text == "<b>baseline</b>" for a in fig.layout.annotations)
    assert len(fig.layout.shapes) == 2  # the constraint band and its edge


def test_build_report_writes_a_self_contained_page_and_a_png(rows, tmp_path):
    paths = build_report(rows, front_ids(rows), OBJECTIVES, CONSTRAINTS, LINKS, tmp_path / "out", title="Sweep demo")
    assert [p.name for p in paths] == [HTML_NAME, PNG_NAME]
    html = paths[0].read_text()
    assert not re.search(r"<script[^>]+src=", html), "plotly.js must be embedded, not loaded from a CDN"
    assert "cdn.plot.ly" not in html.split("</style>")[0]
    assert html.count("Plotly.newPlot") == 2 and len(html) > 3_000_000  # plotly.js inline, once
    assert re.findall(r'<tr data-trial="([^"]+)"', html) == ["ort-int8-b8", "t-int8-b8", "t-int8-b1", "ort-fp32-b8", "t-fp32-b8"]
    assert f'href="{LINKS["ort-int8-b8"]}"' in html
    assert "&lt;no kernel&gt; for MatMulNBits &amp; co" in html  # reasons are escaped
    for status, count in (("ok", 8), ("infeasible", 2), ("oom", 1), ("failed", 1)):
        assert f'data-status="{status}"><b>{count}</b>' in html
    png = paths[1].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    pixels = imread(paths[1])
    assert pixels.shape[:2] == (792, 1320)
    assert (pixels[..., :3] < 0.9).any(axis=-1).mean() > 0.01  # something is drawn


def test_report_of_a_sweep_where_nothing_ran(tmp_path):
    from infersweep.sweeps.pareto import TrialRow

    rows = [TrialRow("x", "infeasible", {"runtime": "torch", "precision": "fp16", "pruning": "none",
                                         "prune_ratio": 0.0, "batch_size": 1}, {}, "fp16 needs CUDA")]
    html, png = build_report(rows, [], OBJECTIVES, CONSTRAINTS, {}, tmp_path)
    text = html.read_text()
    assert 'id="frontier-empty"' in text and "fp16 needs CUDA" in text and png.exists()


class FakeRun:
    def __init__(self, trial_id, run_id):
        self.data = type("D", (), {"tags": {"infersweep.trial_id": trial_id}})()
        self.info = type("I", (), {"run_id": run_id})()


class FakeRuns:
    def __init__(self, uri, fail=False):
        self.uri, self.fail = uri, fail

    @property
    def experiment_id(self):
        if self.fail:
            raise ConnectionError("server down")
        return "3"

    def trial_runs(self):
        return [FakeRun("a", "r1"), FakeRun("b", "r2")]


def test_run_links():
    assert ui_base("sqlite:////tmp/mlflow.db") == LOCAL_UI
    assert ui_base("http://mlflow:5000/") == "http://mlflow:5000"
    assert ui_base("http://mlflow:5000", "https://mlflow.example.com/") == "https://mlflow.example.com"
    assert run_links(FakeRuns("http://mlflow:5000")) == {"a": "http://mlflow:5000/#/experiments/3/runs/r1",
                                                         "b": "http://mlflow:5000/#/experiments/3/runs/r2"}
    assert run_links(FakeRuns("http://mlflow:5000", fail=True)) == {}



def test_every_catalog_precision_has_its_own_symbol_in_catalog_order():
    from infersweep.dashboards.data import PRECISION_ORDER
    from infersweep.trials.precision import Precision

    assert PRECISION_ORDER == [p.value for p in Precision]
    symbols = [symbol_of(p.value, [p.value]) for p in Precision]
    assert len(set(symbols)) == len(symbols) and symbols[0] == ("circle", "o")
