"""Shared by the benchmarks: the machine's description, the shared data file, and
writing one section of docs/benchmarks.md (each benchmark owns the section named after it)."""
from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SHARED_CNN = Path(os.environ.get("INFERSWEEP_CNN", ROOT.parent / "shared" / "data" / "cnn_dailymail_dev.jsonl"))
HEADER = "# Benchmarks\n\nEach section is written by the benchmark named in it; rerun it to refresh.\n"


def shared_data_missing() -> bool:
    """True (and says so) when the shared CNN/DailyMail file is not beside the checkout."""
    if SHARED_CNN.exists():
        return False
    print(f"skipped: the shared CNN/DailyMail file {SHARED_CNN} is absent (set INFERSWEEP_CNN)")
    return True


def machine() -> str:
    from infersweep.trials.hardware import detect, library_versions

    hw = detect()
    gpu = f", GPU {hw.gpu_name} (driver {hw.gpu_driver})" if hw.cuda_available else ", no GPU"
    libs = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{hw.cpu_model}, {hw.cpu_count} cores{gpu}; {platform.platform()}; {libs}; "
            f"load average at start {load:.2f}")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:,.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, command: str, body: str, machine_line: str) -> Path:
    """Replace (or append) the section `name` of docs/benchmarks.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = datetime.date.today().isoformat()
    section = (f"<!-- bench:{name} -->\n## {title}\n\n`{command}` — {stamp}\n\n"
               f"Machine: {machine_line}\n\n{body.strip()}\n<!-- /bench:{name} -->")
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
    return DOC
