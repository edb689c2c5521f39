"""Tabular benchmark: every demo task x model over several split seeds, through the full pipeline.

Prints the task's primary test metric (AUROC for binary, RMSE for regression: mean and SD over
seeds, and seed 0 with its 95% bootstrap CI), ECE after calibration (classification), wall
time per run and the process's peak memory. Peers: the scikit-learn baselines run
through the same split, calibration and bootstrap, so the MLP is compared like for like.

    python benchmarks/tabular.py [--seeds 5] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

from iatros import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="split/initialisation seeds 0..N-1")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--tasks", nargs="*", default=list(api.DEMO_TASKS))
    parser.add_argument("--models", nargs="*", default=list(api.DEMO_MODELS))
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    t_all = time.perf_counter()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"seeds 0..{args.seeds - 1}; 70/15/15 split by patient; n_boot={args.n_boot}\n")
    columns = ["task", "model", "metric", f"test mean ± SD over {args.seeds} seeds",
               "seed 0 (95% CI), n", "seed 0 ECE", "s / run"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    table = []
    for task in args.tasks:
        for model in args.models:
            values, seconds, first, primary = [], [], None, ""
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    run = api.train(task, model=model, seed=seed, out=Path(tmp) / "run",
                                    eval_options=api.EvalOptions(n_boot=args.n_boot, seed=seed),
                                    register=False)
                    metrics = json.loads((run / "metrics.json").read_text())
                seconds.append(time.perf_counter() - t0)
                test = metrics["splits"]["test"]
                primary = metrics["primary_metric"]
                values.append(test[primary]["value"])
                if first is None:
                    first = test
            head = first[primary]
            lo, hi = head["ci95"]
            ece = f"{first['ece']['value']:.3f}" if "ece" in first else "-"
            spread = np.std(values, ddof=1) if len(values) > 1 else float("nan")
            digits = 3 if abs(head["value"]) < 10 else 1
            table.append([task, model, primary.upper(),
                          f"{np.mean(values):.{digits}f} ± {spread:.{digits}f}",
                          f"{head['value']:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f}), {head['n']}",
                          ece, f"{np.mean(seconds):.1f}"])
            print("| " + " | ".join(table[-1]) + " |", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the benchmark process: {peak_mb:.0f} MB")
    write_tables("tabular", {"tabular": Table(columns, table, command_line(), [
        f"Split seeds 0-{args.seeds - 1} (each seed: a new patient-level 70/15/15 split and new "
        f"initial weights); seed 0 with its 95% bootstrap CI ({args.n_boot} resamples of test "
        "patients); ECE after calibration on validation; `logreg` on the regression task is ridge "
        "regression.",
        f"{note} The whole benchmark took {time.perf_counter() - t_all:.0f} s; peak memory "
        f"{peak_mb:.0f} MB."])})


if __name__ == "__main__":
    main()
