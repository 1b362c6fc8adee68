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
  runtime: [torch, onnxruntime]
  pruning: {{methods: [none, unstructured], ratios: [0.3, 0.6]}}
  batch_size: [1, 4, 8]
search: {{algorithm: grid, num_trials: 1000}}
resources: {{cpu: 2}}
trial: {{warmup: 1, repeats: 1}}
finalists: {{rounds: 0}}
sequential: {{max_docs: 0}}  # the replay needs each point as measured on its n documents
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


def key(knobs: dict) -> str:
    return f"{knobs['runtime']}/{knobs['precision']}/{knobs['pruning']}:{knobs['prune_ratio']:g}/b{knobs['batch_size']}"


def measured_table(rows) -> dict[str, dict]:
    """The grid as a lookup table: point -> (status, latency, ROUGE-Lsum)."""
    return {key(r.knobs): {"status": r.status, "latency": r.metrics.get("latency_ms_per_sample"),
                           "rouge": r.metrics.get("rougeLsum")} for r in rows}


def hv(entries, reference):
    from infersweep.sweeps.pareto import hypervolume_2d

    ok = [(e["latency"], -e["rouge"]) for e in entries if e["status"] == "ok"]
    return hypervolume_2d(ok, reference)


def candidate_samplers(sweep, budget: int) -> dict:
    """name -> factory(seed) -> (sampler, startup points to queue): the default (sweeps.search) and the
    alternatives compared."""
    import optuna

    from infersweep.sweeps.search import sampler, startup_design

    def ours(algorithm, design=True):
        def make(seed):
            swept = sweep.model_copy(update={"search": sweep.search.model_copy(
                update={"algorithm": algorithm, "seed": seed, "num_trials": budget})})
            return sampler(swept), startup_design(swept) if design else []
        return make

    def plain(factory):
        return lambda seed: (factory(seed), [])

    population = max(4, budget // 3)
    startup = min(6, max(2, budget // 3))
    return {
        "random": ours("random"),
        "gp (default: balanced startup)": ours("gp"),
        "gp, random startup": ours("gp", design=False),
        "tpe (balanced startup)": ours("tpe"),
        "tpe, random startup": ours("tpe", design=False),
        "tpe group, no startup cap": plain(lambda seed: optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=max(2, budget // 4))),
        "tpe independent": plain(lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)),
        f"nsga2 (population {population})": ours("nsga2"),
        f"nsga3 (population {population})": plain(lambda seed: optuna.samplers.NSGAIIISampler(
            population_size=population, seed=seed)),
    }


def replay(sweep, table: dict, make_sampler, budget: int, seed: int) -> list[dict]:
    """Ask the sampler until it has proposed `budget` distinct points (a repeated suggestion
    reuses its result in a sweep, as here), answering from the measured table."""
    import optuna

    from infersweep.sweeps.search import optuna_space
    from infersweep.sweeps.trainable import WORST

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, design = make_sampler(seed)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    for point in design:  # as sweeps.search queues it in a new sweep's study
        study.enqueue_trial(point)
    space = optuna_space(sweep)
    seen: dict[str, dict] = {}
    for _ in range(budget * 20):
        if len(seen) >= budget:
            break
        trial = study.ask(space)
        spec = sweep.trial_spec(trial.params)
        point = key(spec.knobs())
        entry = table[point]
        ok = entry["status"] == "ok"
        trial.set_constraint("infeasible", 0.0 if ok else 1.0)
        study.tell(trial, [entry["latency"], entry["rouge"]] if ok else [WORST["min"], WORST["max"]])
        seen[point] = entry
    return list(seen.values())


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="documents per trial")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--budget", type=float, default=0.25, help="the headline fraction of the grid")
    parser.add_argument("--table", type=Path, help="JSON of a measured grid: written after a run, read "
                        "instead of running when it exists (samplers only; no overhead figure)")
    args = parser.parse_args()
    line = machine()
    overhead_table = ""
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        from infersweep.sweeps.spec import load_sweep_spec

        path = Path(tmp) / "grid.yaml"
        dataset = str(SHARED_CNN) if SHARED_CNN.exists() else "sample"
        path.write_text(grid_yaml(args.n, Path(tmp) / "sweeps", dataset))
        sweep = load_sweep_spec(path)
        if args.table and args.table.exists():
            table = json.loads(args.table.read_text())
        else:
            started = time.perf_counter()
            sweep, result = run_grid(args.n, Path(tmp))
            wall = time.perf_counter() - started
            own = trial_seconds(sweep, result.rows)
            table = measured_table(result.rows)
            if args.table:
                args.table.write_text(json.dumps(table, indent=1))
            count = len(result.rows)
            overhead_table = markdown_table(
                ["grid trials (incl. baseline)", "sweep wall s", "trials' own s", "overhead s/trial",
                 "overhead / trials' own"],
                [[count, f"{wall:.1f}", f"{own:.1f}", f"{(wall - own) / count:.2f}", f"{(wall - own) / own:.0%}"]])
    entries = list(table.values())
    lat = [e["latency"] for e in entries if e["status"] == "ok"]
    rouge = [e["rouge"] for e in entries if e["status"] == "ok"]
    reference = (max(lat) * 1.05, -min(rouge) + 0.5)
    full = hv(entries, reference)
    fractions_of_grid = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
    curve_rows, headline_rows = [], []
    for fraction in fractions_of_grid:
        budget = max(2, round(fraction * len(table)))
        for name, make in candidate_samplers(sweep, budget).items():
            got = [hv(replay(sweep, table, make, budget, seed), reference) / full for seed in range(args.seeds)]
            row = [name, f"{fraction:.0%}", budget, f"{statistics.mean(got):.3f}", f"{min(got):.3f}"]
            curve_rows.append(row)
            if abs(fraction - args.budget) < 1e-9:
                headline_rows.append(row)
            print(row, flush=True)
    search_table = markdown_table(["sampler", "budget (of grid)", "trials", "HV fraction mean", "worst"],
                                  headline_rows)
    curve_table = markdown_table(["sampler", "budget (of grid)", "trials", "HV fraction mean", "worst"], curve_rows)
    body = (f"Grid: runtime {{torch, onnxruntime}} × precision {{fp32, int8_dynamic, fp16}} × pruning {{none, "
            f"unstructured 0.3, 0.6}} × batch {{1, 4, 8}}, {args.n} documents per trial "
            f"({'CNN/DailyMail' if SHARED_CNN.exists() else 'bundled sample'}); fp16 cannot run on a CPU and is "
            f"ruled out before sampling (sweeps.space): {len(table)} runnable points. Hypervolume of "
            f"(latency per sample ↓, ROUGE-Lsum ↑) found with a budget of distinct trials, as a fraction of "
            f"the full grid's, over {args.seeds} seeds (samplers replay the measured grid; a repeated "
            f"suggestion costs nothing, as in a sweep).\n\nAt {args.budget:.0%} of the grid:\n\n{search_table}"
            f"\n\nThe curve:\n\n{curve_table}")
    if overhead_table:
        body += (f"\n\nPlatform overhead (Ray Tune scheduling, worker start, driver-side MLflow logging): "
                 f"sweep wall time minus the sum of the trials' own phase times.\n\n{overhead_table}")
    print(body)
    write_section("search", "Search: samplers at small budgets, and overhead per trial",
                  f"python bench/search.py --n {args.n} --seeds {args.seeds} --budget {args.budget}", body, line)


if __name__ == "__main__":
    main()
