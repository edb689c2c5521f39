"""Survival benchmark on the DeepSurv splits, beside the published DeepSurv and pycox figures.

Each model trains on DeepSurv's published training file (validation carved from it, by patient,
for early stopping) and is scored on the published test file: Harrell's C-index, Uno's C and the
integrated Brier score (IPCW), each with a 95% bootstrap CI.

    python benchmarks/survival.py --data-root ../shared/data [--models deepsurv coxph ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

PUBLISHED_DEEPSURV_C = {"whas": 0.863, "gbsg": 0.668, "metabric": 0.643, "support": 0.618}
PYCOX_METABRIC = "pycox METABRIC notebooks: C-td 0.654-0.675, IBS about 0.16"
MODELS = ("deepsurv", "logistic-hazard", "deephit", "coxph", "rsf")


def _fmt(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['value']:.3f} ({lo:.3f}-{hi:.3f})"


def main() -> None:
    from iatros import api

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--datasets", nargs="*", default=list(PUBLISHED_DEEPSURV_C))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    rows = []
    for name in args.datasets:
        for model in args.models:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                run = api.train(f"survival-{name}", data_root=args.data_root, model=model,
                                seed=args.seed, out=Path(tmp) / "run", register=False,
                                eval_options=api.EvalOptions(n_boot=args.n_boot, seed=args.seed))
                metrics = json.loads((run / "metrics.json").read_text())
            test = metrics["splits"]["test"]
            rows.append({"dataset": name, "model": model, "c_index": test["c_index"],
                         "c_index_uno": test.get("c_index_uno"), "ibs": test.get("ibs"),
                         "seconds": time.perf_counter() - t0})
            print(f"# {name} {model}: C {_fmt(test['c_index'])} IBS {_fmt(test.get('ibs'))}",
                  flush=True)
    print(f"\nDeepSurv test splits, seed {args.seed}, {os.cpu_count()} CPU cores; 95% bootstrap CIs "
          f"({args.n_boot} resamples); n = test patients.\n")
    print("| dataset | n test | published DeepSurv C | " + " | ".join(f"{m} C" for m in args.models)
          + " | best IBS (model) |")
    print("|---|---|---|" + "---|" * len(args.models) + "---|")
    for name in args.datasets:
        mine = {r["model"]: r for r in rows if r["dataset"] == name}
        n = next(iter(mine.values()))["c_index"]["n"]
        best = min((r for r in mine.values() if r["ibs"] and r["ibs"]["value"] is not None),
                   key=lambda r: r["ibs"]["value"], default=None)
        ibs = f"{_fmt(best['ibs'])} ({best['model']})" if best else "n/a"
        print(f"| {name} | {n} | {PUBLISHED_DEEPSURV_C[name]:.3f} | "
              + " | ".join(_fmt(mine[m]["c_index"]) for m in args.models) + f" | {ibs} |")
    print(f"\nReference: {PYCOX_METABRIC}.")
    print("\n| dataset | model | Uno's C | IBS | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {_fmt(r['c_index_uno'])} | {_fmt(r['ibs'])} | "
              f"{r['seconds']:.0f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the benchmark process: {peak:.0f} MB")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
