"""Benchmark: two concurrent 1-CPU trials on one node against the same trial alone (issue 15, item 5).

Each trial is `infersweep trial` in its own process, claiming its cores as a sweep's worker does
(trials.affinity), on the bundled MiniLM at batch 4. Rounds alternate: the trial alone, then two
copies at once; the table gives each one's latency per sample (median over rounds) and the
concurrent/alone ratio, with pinning (disjoint cores) and without (both free to share).

    .venv/bin/python bench/concurrency.py [--rounds 3] [--n 24]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import machine, markdown_table, write_section  # noqa: E402

TRIAL = """
import json, sys
from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.affinity import claim_cpus
if sys.argv[1] == "pin":
    claim_cpus(1)
spec = TrialSpec(n=int(sys.argv[2]), batch_size=4, cpus=1, warmup=1, repeats=3, seed=int(sys.argv[3]))
report = run_trial(spec, sys.argv[4])
print(json.dumps([report.metrics["latency_ms_per_sample"], report.hardware["cpu_set"]]))
"""


def trials(count: int, pin: str, n: int, out: Path) -> list[tuple[float, list[int]]]:
    env = {**os.environ, "INFERSWEEP_CPU_LOCKS": str(out / "locks")}
    procs = [subprocess.Popen([sys.executable, "-c", TRIAL, pin, str(n), "0", str(out / f"t{i}")],
                              stdout=subprocess.PIPE, text=True, env=env) for i in range(count)]
    return [tuple(json.loads(p.communicate()[0].strip().splitlines()[-1])) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=24)
    args = parser.parse_args()
    line = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        for pin in ("pin", "nopin"):
            alone, together, cores = [], [], set()
            for _ in range(args.rounds):
                alone.append(trials(1, pin, args.n, Path(tmp))[0][0])
                pair = trials(2, pin, args.n, Path(tmp))
                together.extend(latency for latency, _ in pair)
                cores.add(tuple(tuple(cpu_set) for _, cpu_set in pair))
            ratio = statistics.median(together) / statistics.median(alone)
            rows.append([pin == "pin" and "disjoint cores (trials.affinity)" or "unpinned",
                         f"{statistics.median(alone):.2f}", f"{statistics.median(together):.2f}",
                         f"{ratio:.2f}", "; ".join(str(list(c)) for c in sorted(cores))])
            print(rows[-1], flush=True)
    table = markdown_table(["two 1-CPU trials", "alone ms/sample", "concurrent ms/sample", "concurrent / alone",
                            "cores of the pair"], rows)
    body = (f"MiniLM extractive, batch 4, {args.n} bundled documents, 1 CPU per trial; medians over "
            f"{args.rounds} rounds (alone, then two at once). Target: concurrent within 10% of alone.\n\n{table}")
    print(body)
    write_section("concurrency", "Concurrent trials on one node",
                  f"python bench/concurrency.py --rounds {args.rounds} --n {args.n}", body, line)


if __name__ == "__main__":
    main()
