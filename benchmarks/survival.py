"""Survival benchmark on the DeepSurv splits, beside the published DeepSurv and pycox figures.

Each model trains on DeepSurv's published training file (validation carved from it, by patient,
for early stopping) and is scored on the published test file: Harrell's C-index, Uno's C and the
integrated Brier score (IPCW), each with a 95% bootstrap CI, and Antolini's time-dependent C
(C-td, as pycox reports it) for the comparison with pycox's METABRIC figures.

    python benchmarks/survival.py --data-root ../shared/data [--models deepsurv coxph ...] [--tune]

With --tune, DeepSurv and the random survival forest also get a small grid search on the
validation part (`iatros tune`); the test file is scored once, for the chosen setting. A last
table counts test rows that repeat a training row exactly and scores the others alone.
--ensemble N makes every network an N-seed ensemble; with --cross-fit its member k stops early
on fold k of N of the training file, so every training row fits N-1 members (tuned networks
become cross-fit ensembles over the --folds CV folds). --repeat N retrains every model with N
seeds (a tuned model searches again per seed) and prints how much one run's test C moves.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PUBLISHED_DEEPSURV_C = {"whas": 0.863, "gbsg": 0.668, "metabric": 0.643, "support": 0.618}
PYCOX_METABRIC = "pycox METABRIC notebooks: C-td 0.654-0.675, IBS about 0.16"
MODELS = ("deepsurv", "logistic-hazard", "deephit", "coxph", "rsf")
NETWORKS = ("deepsurv", "logistic-hazard", "deephit")
# Searched with --tune on the validation part of the training file (api.tune), never on test.
SPACES = {
    "deepsurv": {"hidden": [(32, 32), (64, 64, 64), (128, 128), (256, 256, 256)],
                 "dropout": [0.0, 0.1, 0.3], "lr": [1e-3, 3e-3]},
    "rsf": {"min_samples_leaf": [1, 3, 5, 15]},
}


def _fmt(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['value']:.3f} ({lo:.3f}-{hi:.3f})"


def copied_test_rows(name: str, data_root: str) -> np.ndarray:
    """Test rows whose features, time and event all appear in a training row (same patient twice)."""
    from iatros.data.sources.deepsurv import load_deepsurv

    table = load_deepsurv(name, Path(data_root))
    frame = table.features.round(4).assign(_t=table.time.round(4), _e=table.event)
    keys = frame.apply(tuple, axis=1)
    train = set(keys[table.split == "train"])
    test = np.flatnonzero(table.split == "test")
    return test[[keys.iloc[i] in train for i in test]]


def c_index_without(run: Path, rows: np.ndarray, n_boot: int, seed: int) -> dict | None:
    """Harrell's C (with CI) on the run's test rows that are not in `rows`."""
    from iatros.evaluate import metrics as M
    from iatros.models.survival import to_structured

    frame = pd.read_csv(run / "predictions.csv")
    frame = frame[(frame["split"] == "test") & ~frame["row"].isin(rows)]
    if frame.empty:
        return None
    target = to_structured(frame["time"].to_numpy(float), frame["event"].to_numpy(int))
    return M.evaluate(target, frame["risk"].to_numpy(float), "survival", metrics=("c_index",),
                      n_boot=n_boot, seed=seed)["c_index"]


def members_of(model: str, tune: bool, args: argparse.Namespace) -> tuple[int, bool]:
    """(ensemble size, cross-fit?) of a model's runs: --ensemble / --cross-fit, else the model's
    defaults (DeepSurv: a 5-member cross-fit ensemble)."""
    from iatros.models.registry import get_model_spec

    if model not in NETWORKS:
        return 1, False
    spec = get_model_spec(model)
    cross_fit = args.cross_fit or (args.ensemble is None and spec.cross_fit)
    if tune:
        if cross_fit and args.folds > 1:
            return args.folds, True
        return args.ensemble or 1, False
    ensemble = spec.ensemble if args.ensemble is None else args.ensemble
    return ensemble, cross_fit and ensemble > 1


def label_of(model: str, tune: bool, args: argparse.Namespace) -> str:
    members, cross_fit = members_of(model, tune, args)
    return (model + (f" {'cross-fit ' if cross_fit else ''}x{members}" if members > 1 else "")
            + (" tuned" if tune else ""))


def run_one(name: str, model: str, args: argparse.Namespace, tmp: Path, tune: bool,
            seed: int | None = None) -> dict:
    """Train (or tune then train) one model on one split; its test metrics and timing."""
    from iatros import api

    seed = args.seed if seed is None else seed
    t0 = time.perf_counter()
    members, cross_fit = members_of(model, tune, args)
    options = api.EvalOptions(n_boot=args.n_boot, seed=seed)
    out = tmp / f"{name}-{model}-{'tuned' if tune else 'default'}-{seed}"
    if tune:
        run = api.tune(f"survival-{name}", SPACES[model], model=model, data_root=args.data_root,
                       seed=seed, max_trials=args.max_trials, out=out, register=False,
                       eval_options=options, folds=args.folds, cross_fit=cross_fit,
                       ensemble=1 if cross_fit else members)
    else:
        run = api.train(f"survival-{name}", data_root=args.data_root, model=model, seed=seed,
                        out=out, register=False, eval_options=options, ensemble=members,
                        cross_fit=cross_fit)
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    chosen = None
    if tune:
        tuning = json.loads((run / "tuning.json").read_text())
        chosen = tuning["trials"][tuning["chosen"]]["settings"]
    label = label_of(model, tune, args)
    return {"dataset": name, "model": label, "c_index": test["c_index"],
            "c_index_uno": test.get("c_index_uno"), "c_td": test.get("c_td"), "ibs": test.get("ibs"),
            "chosen": chosen,
            "run": run, "seconds": time.perf_counter() - t0}


def print_seed_spread(rows: list[dict], args: argparse.Namespace, jobs: list[tuple[str, bool]]) -> None:
    """Test C of each model over `args.repeat` seeds: how far one run's figure moves. A tuned
    model reruns its whole search per seed."""
    seeds = range(args.seed, args.seed + args.repeat)
    print(f"\nHarrell's C on test over seeds {seeds.start}-{seeds.stop - 1} (each seed: new initial "
          "weights and a new validation part or folds; tuned models search again):\n")
    print("| dataset | model | published DeepSurv C | " + " | ".join(f"seed {s}" for s in seeds)
          + " | mean | min-max |")
    print("|---|---|---|" + "---|" * (len(seeds) + 2))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            for model, tune in jobs:
                label = label_of(model, tune, args)
                first = next(r for r in rows if r["dataset"] == name and r["model"] == label)
                values = [first["c_index"]["value"]] + [
                    run_one(name, model, args, Path(tmp), tune, seed)["c_index"]["value"]
                    for seed in seeds[1:]]
                print(f"| {name} | {first['model']} | {PUBLISHED_DEEPSURV_C[name]:.3f} | "
                      + " | ".join(f"{v:.3f}" for v in values)
                      + f" | {np.mean(values):.3f} | {min(values):.3f}-{max(values):.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--datasets", nargs="*", default=list(PUBLISHED_DEEPSURV_C))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--tune", action="store_true",
                        help=f"also search {', '.join(SPACES)} settings on validation (api.tune)")
    parser.add_argument("--max-trials", type=int, default=24)
    parser.add_argument("--folds", type=int, default=1,
                        help="with --tune: score settings by K-fold CV over train + val")
    parser.add_argument("--ensemble", type=int, default=None,
                        help="networks become N-seed ensembles (averaged log-risk / curves); with "
                             "--tune every trial is judged as such an ensemble (default: each "
                             "model's own, DeepSurv a 5-member cross-fit ensemble; 1 for one network)")
    parser.add_argument("--cross-fit", action="store_true",
                        help="with --ensemble N: member k stops early on fold k of N of the training "
                             "file; with --tune --folds K: the chosen setting becomes a cross-fit "
                             "ensemble of K networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1,
                        help="retrain every model with seeds seed+1 .. seed+N-1 (the seed also "
                             "re-draws the validation part or folds; tuned models search again) and "
                             "print each seed's test C")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    jobs = [(m, False) for m in args.models] + [(m, True) for m in args.models
                                                if args.tune and m in SPACES]
    labels = [label_of(m, tune, args) for m, tune in jobs]
    rows, copied = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            copied[name] = copied_test_rows(name, args.data_root)
            for model, tune in jobs:
                r = run_one(name, model, args, Path(tmp), tune)
                r["c_index_unseen"] = c_index_without(r.pop("run"), copied[name], args.n_boot,
                                                      args.seed)
                rows.append(r)
                print(f"# {name} {r['model']}: C {_fmt(r['c_index'])} C-td {_fmt(r['c_td'])} "
                      f"IBS {_fmt(r['ibs'])}"
                      + (f" chosen {r['chosen']}" if r["chosen"] else ""), flush=True)
    print(f"\nDeepSurv test splits, seed {args.seed}, {os.cpu_count()} CPU cores; 95% bootstrap CIs "
          f"({args.n_boot} resamples); n = test patients.\n")
    print("| dataset | n test | published DeepSurv C | " + " | ".join(f"{m} C" for m in labels)
          + " | best IBS (model) |")
    print("|---|---|---|" + "---|" * len(labels) + "---|")
    for name in args.datasets:
        mine = {r["model"]: r for r in rows if r["dataset"] == name}
        n = next(iter(mine.values()))["c_index"]["n"]
        best = min((r for r in mine.values() if r["ibs"] and r["ibs"]["value"] is not None),
                   key=lambda r: r["ibs"]["value"], default=None)
        ibs = f"{_fmt(best['ibs'])} ({best['model']})" if best else "n/a"
        print(f"| {name} | {n} | {PUBLISHED_DEEPSURV_C[name]:.3f} | "
              + " | ".join(_fmt(mine[m]["c_index"]) for m in labels) + f" | {ibs} |")
    print(f"\nReference: {PYCOX_METABRIC}.")
    print("\nTest rows that repeat a training row exactly (features, time, event), and Harrell's C "
          "on the remaining test rows:\n")
    print("| dataset | copied test rows | " + " | ".join(f"{m} C, unseen rows" for m in labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for name in args.datasets:
        mine = {r["model"]: r for r in rows if r["dataset"] == name}
        n_test = next(iter(mine.values()))["c_index"]["n"]
        print(f"| {name} | {len(copied[name])} of {n_test} | "
              + " | ".join(_fmt(mine[m]["c_index_unseen"]) for m in labels) + " |")
    chosen_by = "validation" if args.folds == 1 else f"{args.folds}-fold CV on the training file"
    print(f"\n| dataset | model | chosen by {chosen_by} | Uno's C | C-td (Antolini) | IBS | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['chosen'] or 'defaults'} | "
              f"{_fmt(r['c_index_uno'])} | {_fmt(r['c_td'])} | {_fmt(r['ibs'])} | {r['seconds']:.0f} |")
    if args.repeat > 1:
        print_seed_spread(rows, args, jobs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the benchmark process: {peak:.0f} MB")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
