"""One list of frontier metrics (trials.measure.FRONTIER_METRICS) drives pareto.csv, the console
frontier table and the HTML report's frontier table: same columns, same order, same text."""
import csv
import re

import pytest
from rich.console import Console

from infersweep.dashboards.data import report_data
from infersweep.dashboards.report import render_html
from infersweep.sweeps.pareto import frontier, write_frontier
from infersweep.sweeps.report import frontier_table
from tests.dashboards.conftest import CONSTRAINTS, OBJECTIVES, known_rows
from infersweep.trials import measure
from infersweep.trials.measure import METRICS

# what the three tables showed before the list existed (pareto.csv's header, byte for byte)
CSV_HEADER = ["trial_id", "runtime", "precision", "pruning", "prune_ratio", "batch_size",
              "speedup", "memory_reduction_pct", "rouge_drop_pct", "rouge_drop_pct_ci_low",
              "rouge_drop_pct_ci_high", "latency_ms_per_sample", "peak_memory_mb", "model_size_mb", "rougeLsum"]
P95 = "latency_ms_p95"


@pytest.fixture
def front():
    rows = known_rows()
    for r in rows:
        if r.trial_id == "t-int8-b8":  # one trial with a measured interval
            r.metrics.update(rouge_drop_pct_ci_low=-0.31, rouge_drop_pct_ci_high=0.92)
    return frontier(rows, OBJECTIVES, CONSTRAINTS)


def csv_table(front, tmp_path) -> tuple[list[str], list[dict]]:
    _, path = write_frontier(front, tmp_path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def console_text(front) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))
    console.print(frontier_table(front))
    return console.export_text()


def squeezed(text: str) -> str:
    """`text` without whitespace: the console wraps labels onto two lines ('ROUGE-' over 'Lsum')."""
    return re.sub(r"\s", "", text)


def console_headers(front) -> list[str]:
    return [squeezed(str(c.header)) for c in frontier_table(front).columns]


def html_table(front) -> str:
    data = report_data(front, [r.trial_id for r in front], OBJECTIVES, CONSTRAINTS)
    html = render_html(data)
    return html[html.index('<table id="frontier">'):html.index("</table>", html.index('<table id="frontier">'))]


def html_headers(table: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]


def test_the_csv_header_is_unchanged(front, tmp_path):
    assert csv_table(front, tmp_path)[0] == CSV_HEADER


def test_the_three_tables_show_the_same_metrics_in_the_same_order(front, tmp_path):
    labels = [METRICS[name].label for name in measure.FRONTIER_METRICS]
    header, _ = csv_table(front, tmp_path)
    assert [c for c in header if c in METRICS and not c.endswith(("_ci_low", "_ci_high"))] == \
        list(measure.FRONTIER_METRICS)
    assert console_headers(front)[2:] == [squeezed(label) for label in labels]
    assert html_headers(html_table(front))[5:] == labels


def test_both_tables_write_a_value_and_its_interval_alike(front):
    table, text = html_table(front), console_text(front)
    row = table[table.index('data-trial="t-int8-b8"'):]
    assert ">0.58% [-0.3, 0.9]</td>" in row[:row.index("</tr>")]
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("t-int8-b"))
    assert "0.58%" in lines[at] and "[-0.3, 0.9]" in lines[at + 1]
    for cell in ("2.27×", "48.0%", "110.00", "180", "23.0", "41.00"):
        assert cell in lines[at] and f">{cell}</td>" in row


def test_a_metric_added_to_the_list_appears_in_all_three_tables(front, tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "FRONTIER_METRICS", (*measure.FRONTIER_METRICS, P95))
    header, csv_rows = csv_table(front, tmp_path)
    assert header[-1] == P95
    fast = next(r for r in csv_rows if r["trial_id"] == "t-int8-b8")
    assert float(fast[P95]) == pytest.approx(110 * 8 * 1.2)
    assert console_headers(front)[-1] == squeezed(METRICS[P95].label)
    assert "1056.0" in console_text(front)
    table = html_table(front)
    assert html_headers(table)[-1] == METRICS[P95].label and ">1056.0</td>" in table


def test_a_metric_taken_off_the_list_leaves_all_three_tables(front, tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "FRONTIER_METRICS", tuple(m for m in measure.FRONTIER_METRICS
                                                           if m != measure.MODEL_SIZE))
    assert measure.MODEL_SIZE not in csv_table(front, tmp_path)[0]
    label = METRICS[measure.MODEL_SIZE].label
    assert squeezed(label) not in console_headers(front) and label not in html_headers(html_table(front))


def test_a_task_metric_shows_in_all_three_tables_only_when_some_trial_has_it(front, tmp_path):
    assert measure.AGREEMENT in measure.TASK_FRONTIER_METRICS
    label = METRICS[measure.AGREEMENT].label
    assert label not in html_headers(html_table(front))  # extractive trials: no agreement column
    for r in front:  # as a causal sweep's trials have it
        r.metrics[measure.AGREEMENT] = 100.0 if r.baseline else 87.25
    header, csv_rows = csv_table(front, tmp_path)
    assert header[-1] == measure.AGREEMENT
    assert float(next(r for r in csv_rows if r["trial_id"] == "t-int8-b8")[measure.AGREEMENT]) == 87.25
    assert console_headers(front)[-1] == squeezed(label) and "87.2" in console_text(front)
    table = html_table(front)
    assert html_headers(table)[-1] == label and ">87.2</td>" in table
