"""Search benchmark: Optuna (TPE, NSGA-II) vs random at equal budgets, and the platform's overhead.

1. Runs a full grid sweep for real (Ray Tune + Optuna GridSampler + MLflow) on a small space
   and measures the platform overhead per trial: sweep wall time minus the trials' own time.
2. Replays the measured grid as a lookup table: each sampler gets a budget of 25% of the grid,
   over several seeds; hypervolume (latency per sample vs ROUGE-Lsum) of the frontier it found,
   as a fraction of the full grid's.

    python bench/search.py [--n 8] [--seeds 8] [--budget 0.25]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import SHARED_CNN, machine, markdown_table, write_section  # noqa: E402


def grid_yaml(n: int, storage: Path, dataset: str) -> str:
    return f"""
name: bench-search
dataset: {{path: "{dataset}", n: {n}}}
baseline: {{batch_size: 1}}
space:
  precision: [fp32, int8_dynamic, fp16]
  pruning: {{methods: [none, unstructured], ratios: [0.3, 0.6]}}
  batch_size: [1, 4, 8]
search: {{algorithm: grid, num_trials: 1000}}
resources: {{cpu: 2}}
trial: {{warmup: 1, repeats: 1}}
storage: {{path: "{storage}"}}
"""


def run_grid(n: int, workdir: Path):
    from infersweep.sweeps.driver import run_sweep
    from infersweep.sweeps.spec import load_sweep_spec

    dataset = str(SHARED_CNN) if SHARED_CNN.exists() else "sample"
    path = workdir / "grid.yaml"
    path.write_text(grid_yaml(n, workdir / "sweeps", dataset))
    sweep = load_sweep_spec(path)
    result = run_sweep(sweep, tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", progress=False, say=print)
    return sweep, result


def trial_seconds(sweep, rows) -> float:
    from infersweep.sweeps.trainable import trials_dir
    from infersweep.trials.spec import TrialReport

    total = 0.0
    for row in rows:
        report = TrialReport.from_json((trials_dir(sweep) / row.trial_id / "report.json").read_text())
        total += sum(report.phases_s.values())
    return total


def points(rows):
    return {(r.knobs["precision"], r.knobs["pruning"], r.knobs["prune_ratio"], r.knobs["batch_size"]): r
            for r in rows}


def hv(rows, reference):
    from infersweep.sweeps.pareto import hypervolume_2d

    ok = [(r.metrics["latency_ms_per_sample"], -r.metrics["rougeLsum"]) for r in rows if r.status == "ok"]
    return hypervolume_2d(ok, reference)


def replay(sweep, table: dict, algorithm: str, budget: int, seed: int):
    """Ask the sampler for `budget` points of the grid, answering from the measured table."""
    import optuna

    from infersweep.sweeps.search import optuna_space, sampler
    from infersweep.sweeps.trainable import WORST

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = sweep.model_copy(update={"search": sweep.search.model_copy(
        update={"algorithm": algorithm, "seed": seed, "num_trials": budget})})
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler(spec))
    space = optuna_space(spec)
    seen = []
    for _ in range(budget):
        trial = study.ask(space)
        knobs = spec.trial_spec(trial.params)
        row = table[(knobs.precision, knobs.pruning, knobs.prune_ratio, knobs.batch_size)]
        ok = row.status == "ok"
        trial.set_constraint("infeasible", 0.0 if ok else 1.0) if hasattr(trial, "set_constraint") else None
        values = ([row.metrics["latency_ms_per_sample"], row.metrics["rougeLsum"]] if ok
                  else [WORST["min"], WORST["max"]])
        study.tell(trial, values)
        seen.append(row)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="documents per trial")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--budget", type=float, default=0.25, help="fraction of the grid per sampler")
    args = parser.parse_args()
    line = machine()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        started = time.perf_counter()
        sweep, result = run_grid(args.n, Path(tmp))
        wall = time.perf_counter() - started
        own = trial_seconds(sweep, result.rows)
    count = len(result.rows)
    overhead = (wall - own) / count
    table = points(result.rows)
    lat = [r.metrics["latency_ms_per_sample"] for r in result.rows if r.status == "ok"]
    rouge = [r.metrics["rougeLsum"] for r in result.rows if r.status == "ok"]
    reference = (max(lat) * 1.05, -min(rouge) + 0.5)
    full = hv(result.rows, reference)
    budget = max(2, round(args.budget * len(table)))
    rows = []
    for algorithm in ("random", "tpe", "nsga2"):
        fractions = [hv(replay(sweep, table, algorithm, budget, seed), reference) / full for seed in range(args.seeds)]
        rows.append([algorithm, budget, f"{statistics.mean(fractions):.3f}", f"{statistics.median(fractions):.3f}",
                     f"{min(fractions):.3f}"])
    search_table = markdown_table(["sampler", "budget (trials)", "HV fraction mean", "median", "worst"], rows)
    overhead_table = markdown_table(
        ["grid trials (incl. baseline)", "sweep wall s", "trials' own s", "overhead s/trial"],
        [[count, f"{wall:.1f}", f"{own:.1f}", f"{overhead:.2f}"]])
    body = (f"Grid: precision {{fp32, int8_dynamic, fp16}} × pruning {{none, unstructured 0.3, 0.6}} × "
            f"batch {{1, 4, 8}} = {len(table)} points, {args.n} documents each "
            f"({'CNN/DailyMail' if SHARED_CNN.exists() else 'bundled sample'}); fp16 cannot run on a CPU and "
            f"is ruled out before sampling (sweeps.space). "
            f"Hypervolume of (latency per sample ↓, ROUGE-Lsum ↑) found with {budget} trials, as a fraction "
            f"of the full grid's, over {args.seeds} seeds (samplers replay the measured grid).\n\n"
            f"{search_table}\n\nPlatform overhead (Ray Tune scheduling, worker start, driver-side MLflow "
            f"logging): sweep wall time minus the sum of the trials' own phase times.\n\n{overhead_table}")
    print(body)
    write_section("search", "Search: Optuna vs random, and overhead per trial",
                  f"python bench/search.py --n {args.n} --seeds {args.seeds} --budget {args.budget}", body, line)


if __name__ == "__main__":
    main()
