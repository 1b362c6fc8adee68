"""Platform overhead: where a sweep's wall time goes besides its trials' own phases.

Runs a small sweep end to end in a fresh interpreter (as `infersweep launch` does: driver imports,
Ray init, baseline, the search through Ray Tune, MLflow logging, finalists, report) and breaks its
wall time down: driver start and imports, setup, Ray init, each trial's worker start and imports,
the trial phases (data, load, prune, save, prepare, tokenize, warmup, timed, serving, rouge),
sequential evaluation, the driver's MLflow callbacks, Tune's state saves, the finalists' re-timing,
reconcile / report / close. Overhead = sweep wall time minus the trials' own work (their phases,
plus sequential evaluation where a quality verdict needed more documents, plus the finalists'
head-to-head timings: each variant rebuilt, warmed up and timed again, the phases a trial's
count), as a share of that work (the search benchmark's definition). The finalists' process and
actor starts stay overhead.

    python bench/overhead.py [--spec sweeps/specs/quickstart.yaml] [--num-trials 4]
    python bench/overhead.py --grid [--n 8]             # the search bench's grid (36 points)
    python bench/overhead.py --compare OLD_TREE --pairs 2  # before/after, interleaved runs

`--compare` runs OLD_TREE (a checkout of the code before a change; only its code is used) and
this checkout alternately under the same conditions, and reports both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import machine, markdown_table, write_section  # noqa: E402

QUICKSTART = ROOT / "sweeps" / "specs" / "quickstart.yaml"
#: the trial phases (trials.runner.PhaseTimer) in the order a trial runs them
PHASES = ("data", "load", "prune", "save", "prepare", "tokenize", "warmup", "timed", "timed_again", "serving",
          "rouge")


# ----------------------------------------------------------------------------------------- child
def _patch_timers(totals: dict[str, float]) -> None:
    """Accumulate the driver's blocking time in the MLflow callbacks and Tune's state saves."""
    from ray.tune.execution.tune_controller import TuneController

    from infersweep.sweeps import callbacks

    def timed(cls, name: str, key: str):
        original = getattr(cls, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

        setattr(cls, name, wrapper)

    for name in ("on_trial_start", "on_trial_complete", "on_trial_error", "on_experiment_end"):
        if hasattr(callbacks.MlflowTrialCallback, name):
            timed(callbacks.MlflowTrialCallback, name, "mlflow_callbacks")
    for name in ("on_trial_start", "on_trial_complete"):
        timed(callbacks.ProgressCallback, name, "progress_callbacks")
    timed(TuneController, "checkpoint", "tune_state_saves")


def child(args) -> None:
    """One sweep in this fresh interpreter; writes the raw figures as JSON to args.child."""
    import psutil

    process_started = psutil.Process().create_time()
    from infersweep import cli  # noqa: F401  (the CLI's imports, as `infersweep launch` pays them)
    from infersweep.sweeps.driver import run_sweep
    from infersweep.sweeps.spec import load_sweep_spec

    totals: dict[str, float] = {}
    _patch_timers(totals)
    workdir = Path(args.workdir)
    overrides = {"storage.path": str(workdir / "sweeps")}
    if args.num_trials:
        overrides["search.num_trials"] = args.num_trials
    if args.n:
        overrides["dataset.n"] = args.n
    sweep = load_sweep_spec(Path(args.spec), **overrides)
    imported = time.time()
    started = time.perf_counter()
    result = run_sweep(sweep, tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", progress=False,
                       say=lambda text: print(text, flush=True), fresh=True)
    wall = time.perf_counter() - started
    out = {"process_started": process_started, "imported": imported, "wall_s": wall,
           "stages_s": getattr(result, "stages_s", {}), "driver_s": totals, "trials": _trials(sweep),
           "baseline_id": result.baseline.trial_id, "rows": len(result.rows),
           "finalists_phases_s": _finalists_phases(sweep),
           "mlflow_runs_not_ended": _unended_runs(workdir / "mlflow.db")}
    Path(args.child).write_text(json.dumps(out, indent=1))


def _finalists_phases(sweep) -> dict[str, float]:
    """The finalists' head-to-head: seconds spent rebuilding, warming up and timing the variants
    (sweeps.finalists writes them into finalists.json); {} without a head-to-head."""
    from infersweep.sweeps.finalists import FINALISTS_FILE

    path = sweep.sweep_dir() / FINALISTS_FILE
    return json.loads(path.read_text()).get("phases_s", {}) if path.exists() else {}


def _trials(sweep) -> list[dict]:
    """Each trial's phases (report.json) and its worker's marks (Tune's result.json)."""
    from infersweep.sweeps.trainable import trials_dir
    from infersweep.trials.spec import TrialReport

    marks = {}
    for path in (sweep.sweep_dir() / "tune").glob("*/result.json"):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            last = json.loads(lines[-1])
            if last.get("reused") and last.get("spec_id") in marks:  # a duplicate point: keep the run's marks
                continue
            marks[last.get("spec_id")] = {k: v for k, v in last.items() if k.startswith("worker_")}
    found = []
    for path in sorted(trials_dir(sweep).glob("*/report.json")):
        report = TrialReport.from_json(path.read_text())
        found.append({"trial_id": report.trial_id, "status": report.status, "phases_s": report.phases_s,
                      **marks.get(report.trial_id, {})})
    return found


def _unended_runs(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]


# ---------------------------------------------------------------------------------------- parent
def run_once(tree: Path, spec: Path, num_trials: int | None, n: int | None = None) -> dict:
    """One sweep in a fresh interpreter with `tree`'s code; its raw figures plus the process wall."""
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        out = Path(tmp) / "figures.json"
        env = {**os.environ, "PYTHONPATH": str(tree), "INFERSWEEP_CPU_LOCKS": str(Path(tmp) / "cpu-locks")}
        command = [sys.executable, str(ROOT / "bench" / "overhead.py"), "--child", str(out), "--workdir", tmp,
                   "--spec", str(spec)] + (["--num-trials", str(num_trials)] if num_trials else []) + (
                   ["--n", str(n)] if n else [])
        load = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        process_wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the sweep failed ({tree}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        figures = json.loads(out.read_text())
    return {**figures, "process_wall_s": process_wall, "load_before": load, "load_after": os.getloadavg()[0],
            "tree": str(tree)}


def breakdown(figures: dict) -> dict[str, float]:
    """Seconds per part of the wall time (see the module doc); keys in display order."""
    stages = figures["stages_s"]
    trials = figures["trials"]
    baseline = next(t for t in trials if t["trial_id"] == figures["baseline_id"])
    searched = [t for t in trials if t is not baseline and "worker_entered_at" in t]
    phase = lambda t: sum(t["phases_s"].values())  # noqa: E731
    own = sum(phase(t) for t in trials)
    parts: dict[str, float] = {}
    parts["driver start + imports (before run_sweep)"] = figures["imported"] - figures["process_started"]
    parts["setup: preflight, MLflow experiment, space"] = stages.get("setup", 0.0)
    parts["Ray init"] = stages.get("ray_init", 0.0)
    parts["baseline: worker start, imports, outside phases"] = stages.get("baseline", 0.0) - phase(baseline)
    parts["baseline: MLflow logging"] = stages.get("mlflow_baseline", 0.0)
    in_worker = sum(t["worker_run_s"] - phase(t) for t in searched)
    extend = sum(t.get("worker_extend_s", 0.0) for t in searched)
    in_trials = sum(t["worker_left_at"] - t["worker_entered_at"] for t in searched)
    between = stages.get("search", 0.0) - in_trials
    driver = figures["driver_s"]
    mlflow = driver.get("mlflow_callbacks", 0.0)
    saves = driver.get("tune_state_saves", 0.0)
    spawn = _spawn_seconds(searched, figures)
    parts["trials: worker process start to trainable (Ray actor, imports)"] = spawn
    parts["trials: in worker outside phases (torch/ORT imports, hardware, provenance, report)"] = in_worker
    parts["trials: driver MLflow callbacks (blocking)"] = mlflow
    parts["trials: Tune state saves"] = saves
    parts["trials: other scheduling between trials"] = between - spawn - mlflow - saves
    parts["trials: result hand-back inside worker"] = in_trials - sum(t["worker_run_s"] for t in searched) - extend
    finalist_work = finalists_work(figures)
    parts["finalists: actor and process start, imports, driver"] = stages.get("finalists", 0.0) - finalist_work
    for stage in ("frontier", "reconcile", "report", "close"):
        parts[f"end: {stage}"] = stages.get(stage, 0.0)
    clocked = sum(v for k, v in parts.items() if not k.startswith("driver start"))
    parts["end: unclocked (Ray shutdown, between stages)"] = figures["wall_s"] - clocked - own - extend - finalist_work
    parts["TRIAL WORK: phases + sequential evaluation + finalists' timings"] = own + extend + finalist_work
    for name in PHASES:
        seconds = sum(t["phases_s"].get(name, 0.0) for t in trials)
        if seconds:
            parts[f"  phase {name}"] = seconds
    for name, seconds in figures.get("finalists_phases_s", {}).items():
        parts[f"  finalists {name}"] = seconds
    return parts


def _spawn_seconds(searched: list[dict], figures: dict) -> float:
    """Per trial: from the later of its worker process's start and the previous trial's end to
    the trainable's entry."""
    total, previous = 0.0, None
    for t in sorted(searched, key=lambda t: t["worker_entered_at"]):
        since = max(t["worker_started_at"], previous or t["worker_started_at"])
        total += max(0.0, t["worker_entered_at"] - since)
        previous = t["worker_left_at"]
    return total


def trial_work(figures: dict) -> float:
    """The trials' own seconds: their phases plus sequential evaluation (quality on more documents),
    plus the finalists' head-to-head phases (each variant rebuilt, warmed up and timed again: the
    same phases a trial's count)."""
    trials = sum(sum(t["phases_s"].values()) + t.get("worker_extend_s", 0.0) for t in figures["trials"])
    return trials + finalists_work(figures)


def finalists_work(figures: dict) -> float:
    """The finalists' head-to-head phases (rebuild, warm-up, timed), summed over every timing."""
    return sum(figures.get("finalists_phases_s", {}).values())


def summary(figures: dict) -> dict[str, float]:
    own = trial_work(figures)
    finalists = figures["stages_s"].get("finalists", 0.0)
    finalist_work = finalists_work(figures)
    wall = figures["wall_s"]
    return {"trials": len(figures["trials"]), "sweep wall s": wall, "process wall s": figures["process_wall_s"],
            "trial work s": own, "overhead": (wall - own) / own,
            "overhead excl. finalists": (wall - finalists - (own - finalist_work)) / (own - finalist_work),
            "process overhead": (figures["process_wall_s"] - own) / own,
            "load": f"{figures['load_before']:.2f}->{figures['load_after']:.2f}",
            "runs left RUNNING": figures.get("mlflow_runs_not_ended", "?")}


def tables(results: dict[str, list[dict]]) -> str:
    """The breakdown (median over runs) and the summary, one column per tree."""
    labels = list(results)
    parts = {label: [breakdown(f) for f in runs] for label, runs in results.items()}
    keys = list(dict.fromkeys(k for runs in parts.values() for b in runs for k in b))
    rows = [[k] + [f"{statistics.median(b.get(k, 0.0) for b in parts[label]):.1f}" for label in labels]
            for k in keys]
    text = markdown_table(["seconds (median of runs)"] + labels, rows)
    summary_rows = []
    for label, runs in results.items():
        for i, f in enumerate(runs):
            s = summary(f)
            summary_rows.append([label, i + 1, s["trials"], f"{s['sweep wall s']:.1f}", f"{s['process wall s']:.1f}",
                                 f"{s['trial work s']:.1f}", f"{s['overhead']:.0%}",
                                 f"{s['overhead excl. finalists']:.0%}", f"{s['process overhead']:.0%}", s["load"],
                                 s["runs left RUNNING"]])
    text += "\n\n" + markdown_table(["code", "run", "trials", "sweep wall s", "process wall s", "trial work s",
                                     "overhead", "excl. finalists", "incl. interpreter start", "load 1m",
                                     "MLflow runs left RUNNING"], summary_rows)
    return text


GRID_SPEC = """
name: bench-overhead-grid
dataset: {{path: "{dataset}", n: {n}}}
baseline: {{batch_size: 1}}
space:
  precision: [fp32, int8_dynamic]
  runtime: [torch, onnxruntime]
  pruning: {pruning}
  batch_size: [{batches}]
search: {{algorithm: grid, num_trials: 1000}}
resources: {{cpu: 2}}
trial: {{warmup: 1, repeats: 1}}
finalists: {{rounds: 0}}
sequential: {{max_docs: 0}}
"""


def grid_spec(directory: Path, n: int, short: bool) -> Path:
    """bench/search.py's grid (fp16 left out: it is ruled out before sampling anyway: 36 points);
    `short` keeps batch {1, 8} and no pruning (8 points)."""
    from bench._report import SHARED_CNN

    dataset = str(SHARED_CNN) if SHARED_CNN.exists() else "sample"
    path = directory / "grid.yaml"
    pruning = "{methods: [none]}" if short else "{methods: [none, unstructured], ratios: [0.3, 0.6]}"
    path.write_text(GRID_SPEC.format(dataset=dataset, n=n, pruning=pruning, batches="1, 8" if short else "1, 4, 8"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=QUICKSTART)
    parser.add_argument("--num-trials", type=int, help="searched trials (default 4; --grid: every point)")
    parser.add_argument("--grid", action="store_true", help="the search bench's grid instead of --spec")
    parser.add_argument("--short", action="store_true", help="with --grid: 8 points instead of 36")
    parser.add_argument("--n", type=int, help="documents per trial (dataset.n; --grid: 8 unless given)")
    parser.add_argument("--compare", type=Path, help="a code tree to run alternately with this one (before)")
    parser.add_argument("--pairs", type=int, default=1, help="runs per tree")
    parser.add_argument("--section", default="", help="write the tables into docs/benchmarks.md section "
                        "`overhead` under this heading line")
    parser.add_argument("--save", type=Path, help="keep the raw figures of every run as JSON here")
    parser.add_argument("--load", nargs="+", metavar="LABEL=FILE", help="render runs saved with --save "
                        "(e.g. before=a.json after=b.json; runs made concurrently compare under the same load) "
                        "instead of running")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    line = machine()
    if args.load:
        results = {}
        for item in args.load:
            label, _, path = item.partition("=")
            results[label] = [f for runs in json.loads(Path(path).read_text()).values() for f in runs]
        return report(args, results, line)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-spec-") as tmp:
        if args.grid:
            args.n = args.n or 8
        spec = grid_spec(Path(tmp), args.n, args.short) if args.grid else args.spec.resolve()
        num_trials = None if args.grid else (args.num_trials or 4)
        trees = {"before": args.compare.resolve()} if args.compare else {}
        trees["this checkout"] = ROOT
        results: dict[str, list[dict]] = {label: [] for label in trees}
        for i in range(args.pairs):
            for label, tree in trees.items():
                print(f"run {i + 1}/{args.pairs}: {label} ({tree}), load {os.getloadavg()[0]:.2f}", flush=True)
                figures = run_once(tree, spec, num_trials, None if args.grid else args.n)
                results[label].append(figures)
                print(summary(figures), flush=True)
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
    report(args, results, line)


def report(args, results: dict[str, list[dict]], line: str) -> None:
    """Print the tables; with --section, write them into docs/benchmarks.md."""
    text = tables(results)
    print(text)
    if not args.section:
        return
    if args.grid:
        short = " (shortened to 8 points: no pruning, batch 1 and 8)" if args.short else ""
        name, what = "overhead-grid", f"the search bench's grid{short}, n={args.n or 8}"
    else:
        name, what = "overhead-quickstart", (f"{args.spec.name} with --num-trials {args.num_trials or 4}"
                                             f"{f', dataset.n {args.n}' if args.n else ''}")
    argv = sys.argv[1:]
    if "--section" in argv:  # its text is the section's body, not part of the command
        del argv[argv.index("--section"):argv.index("--section") + 2]
    command = "python bench/overhead.py " + " ".join(argv)
    write_section(name, f"Platform overhead: a sweep's wall time, broken down ({what})", command,
                  f"{args.section}\n\n{text}", line)


if __name__ == "__main__":
    main()
