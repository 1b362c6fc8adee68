"""The report page in headless Chromium: it loads without console errors, draws one point per
trial in each chart, shows the frontier table, and a screenshot is written.

Needs Debian's `chromium` (.ci/run installs it); skipped only where /usr/bin/chromium is missing.
"""
import re
import subprocess
from pathlib import Path

import pytest

from infersweep.dashboards.report import build_report
from infersweep.sweeps.pareto import frontier
from tests.dashboards.conftest import CONSTRAINTS, OBJECTIVES, RAN

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--window-size=1400,1000",
         "--virtual-time-budget=10000"]
# what Chromium writes to stderr for each console message and uncaught exception of a page:
# [pid:tid:time:INFO:CONSOLE:12] "Uncaught Error: boom", source: file:///... (12)
CONSOLE = re.compile(r"CONSOLE[^\]]*\]\s*(.*)")


def chromium(url: str, tmp_path: Path, *args: str) -> tuple[str, list[str]]:
    """Run headless Chromium on `url`; returns (stdout, console messages of the page)."""
    profile = tmp_path / "chromium-profile"
    done = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, CONSOLE.findall(done.stderr)


def points_in(dom: str, start: str, end: str | None) -> int:
    section = dom[dom.index(f'id="{start}"'):dom.index(f'id="{end}"') if end else None]
    return len(re.findall(r'class="point[ "]', section))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from tests.dashboards.conftest import known_rows

    rows = known_rows()
    front = [r.trial_id for r in frontier(rows, OBJECTIVES, CONSTRAINTS)]
    links = {tid: f"http://127.0.0.1:5000/#/experiments/1/runs/{tid}" for tid in RAN}
    out = tmp_path_factory.mktemp("report")
    html, _ = build_report(rows, front, OBJECTIVES, CONSTRAINTS, links, out, title="Sweep demo")
    return html


def test_console_errors_are_caught(tmp_path):
    """The check below is not vacuous: an uncaught error and console.error both show up."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('bad thing')</script>"
                   "<script>throw new Error('boom')</script></body></html>")
    _, console = chromium(bad.as_uri(), tmp_path, "--dump-dom")
    assert any("bad thing" in m for m in console) and any("Uncaught Error: boom" in m for m in console)


def test_page_loads_cleanly_with_every_point_and_the_table(page, tmp_path):
    dom, console = chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert console == [], f"the page wrote to the console: {console}"
    # plotly drew one SVG point per trial that ran, in both charts
    assert points_in(dom, "chart-rouge", "chart-memory") == len(RAN)
    assert points_in(dom, "chart-memory", None) == len(RAN)
    assert re.findall(r'<tr data-trial="([^"]+)"', dom) == ["ort-int8-b8", "t-int8-b8", "t-int8-b1", "ort-fp32-b8", "t-fp32-b8"]
    assert "Latency vs ROUGE-Lsum" in dom and "constraint rouge_drop_pct &lt;= 1.0" in dom
    assert dom.count('class="legendtext"') >= 5  # runtimes x precisions + the frontier line


def coloured_share(png: Path) -> float:
    """Share of pixels that are clearly coloured (markers, band), not white/grey/black."""
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    return float(((pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.2).mean())


def test_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    _, console = chromium(page.as_uri(), tmp_path, f"--screenshot={shot}")
    from matplotlib.image import imread

    assert imread(shot).shape[:2] == (1000, 1400)
    assert coloured_share(shot) > 0.002, "the screenshot shows no coloured markers"  # a blank page: 0
    assert console == []


def test_page_works_inside_the_mlflow_ui_sandbox(page, tmp_path):
    """MLflow shows an HTML artifact in <iframe sandbox="allow-scripts">: no storage, opaque origin."""
    wrapper = tmp_path / "mlflow_like.html"
    wrapper.write_text(f'<html><body><iframe sandbox="allow-scripts" src="{page.as_uri()}" '
                       'width="1300" height="900"></iframe></body></html>')
    shot = tmp_path / "framed.png"
    _, console = chromium(wrapper.as_uri(), tmp_path, "--allow-file-access-from-files", f"--screenshot={shot}")
    assert console == [], f"the page wrote to the console in a sandboxed frame: {console}"
    assert coloured_share(shot) > 0.002, "the framed page drew nothing"
