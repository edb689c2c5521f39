"""Survival benchmark on the DeepSurv splits, beside the published DeepSurv and pycox figures.

Each model trains on DeepSurv's published training file (validation carved from it, by patient,
for early stopping) and is scored on the published test file: Harrell's C-index, Uno's C and the
integrated Brier score (IPCW), each with a 95% bootstrap CI, and Antolini's time-dependent C
(C-td, as pycox reports it) for the comparison with pycox's METABRIC figures.

    python benchmarks/survival.py --data-root ../shared/data [--models deepsurv coxph ...] [--tune]

With --tune, DeepSurv and the random survival forest also get a small grid search on the
validation part (`iatros tune`; with --folds K by K-fold CV over the training file); the test file
is scored once, for the chosen setting. A table counts test rows that repeat a training row
exactly and scores the others alone. --ensemble N makes every network an N-seed ensemble; with
--cross-fit its member k stops early on fold k of N of the training file, so every training row
fits N-1 members (tuned networks become cross-fit ensembles over the --folds CV folds). --repeat N
retrains every model with N seeds (a tuned model searches again per seed) and tabulates how much
one run's test C moves. The tables go to benchmarks/results/survival.json under --name
(NAME, NAME-seeds, NAME-metrics, NAME-unseen, NAME-chosen); --cache DIR keeps each finished
run's scores so an interrupted benchmark resumes where it stopped.
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
from readme_tables import Table, command_line, timing_note, write_tables

# Katzman et al., "DeepSurv: personalized treatment recommender system using a Cox proportional
# hazards deep neural network", BMC Medical Research Methodology 18:24 (2018): DeepSurv's test
# C-index on the same published train / test files (the paper's results table, DeepSurv column).
PUBLISHED_DEEPSURV_C = {"whas": 0.863, "gbsg": 0.668, "metabric": 0.643, "support": 0.618}
PUBLISHED_SOURCE = ("Published DeepSurv C: Katzman et al., BMC Medical Research Methodology 18:24 "
                    "(2018), results table, DeepSurv column (same train / test files).")
# pycox's METABRIC example notebooks (Kvamme et al., github.com/havakv/pycox, examples/*.ipynb),
# on their own random splits of METABRIC: Antolini's C-td and the integrated Brier score.
PYCOX_METABRIC = ("pycox's METABRIC example notebooks (github.com/havakv/pycox, examples/, their own "
                  "random splits): C-td 0.654-0.675, IBS about 0.16")
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


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _setting(chosen: dict | None) -> str:
    """A chosen setting in a few words: `64x64x64, dropout 0.1, lr 3e-3`."""
    if not chosen:
        return "defaults"
    words = []
    for key, value in chosen.items():
        if isinstance(value, (list, tuple)):
            words.append("x".join(str(v) for v in value))
        elif key == "lr":
            words.append(f"lr {value:.0e}".replace("e-0", "e-"))
        else:
            words.append(f"{key.replace('_', ' ')} {value:g}")
    return ", ".join(words)


def space_options(model: str) -> str:
    """SPACES[model] as `iatros tune` options."""
    def value(v: object) -> str:
        return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}"
    return " ".join(f"--space {k}={','.join(value(v) for v in vs)}" for k, vs in SPACES[model].items())


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


def cli_of(model: str, tune: bool, args: argparse.Namespace) -> str:
    """The `iatros` command that trains one cell of the tables (dataset NAME, seed S)."""
    members, cross_fit = members_of(model, tune, args)
    if tune:
        extra = (f" --max-trials {args.max_trials}" + (f" --folds {args.folds}" if args.folds > 1 else "")
                 + (" --cross-fit" if cross_fit else "")
                 + (f" --ensemble {members}" if members > 1 and not cross_fit else ""))
        return (f"iatros tune survival-NAME --model {model} {space_options(model)}{extra} "
                f"--seed S --n-boot {args.n_boot}")
    default = members_of(model, False, argparse.Namespace(ensemble=None, cross_fit=False, folds=1))
    extra = "" if (members, cross_fit) == default else (
        f" --ensemble {members}" + (" --cross-fit" if cross_fit else ""))
    return f"iatros train survival-NAME --model {model}{extra} --seed S --n-boot {args.n_boot}"


def run_one(name: str, model: str, args: argparse.Namespace, tmp: Path, tune: bool,
            seed: int, copied: np.ndarray) -> dict:
    """Train (or tune then train) one model on one split; its test metrics and timing (read from
    --cache when this run finished before)."""
    from iatros import api

    label = label_of(model, tune, args)
    cached = (Path(args.cache) / f"{name}-{label.replace(' ', '_')}-n{args.n_boot}-s{seed}.json"
              if args.cache else None)
    if cached and cached.is_file():
        return json.loads(cached.read_text())
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
    seconds = time.perf_counter() - t0
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    chosen = None
    if tune:
        tuning = json.loads((run / "tuning.json").read_text())
        chosen = tuning["trials"][tuning["chosen"]]["settings"]
    row = {"dataset": name, "model": label, "seed": seed, "c_index": test["c_index"],
           "c_index_uno": test.get("c_index_uno"), "c_td": test.get("c_td"), "ibs": test.get("ibs"),
           "chosen": chosen, "seconds": seconds,
           "c_index_unseen": c_index_without(run, copied, args.n_boot, seed)}
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(row, default=_plain))
    return row


def tables(rows: list[dict], labels: list[str], copied: dict[str, np.ndarray],
           args: argparse.Namespace, jobs: list[tuple[str, bool]], notes: list[str]) -> dict[str, Table]:
    """The benchmark's tables: seed S with CIs, the spread over seeds, other metrics, unseen rows
    and the settings tuning chose."""
    seeds = list(range(args.seed, args.seed + args.repeat))
    first = [r for r in rows if r["seed"] == args.seed]
    cmd = command_line()
    cli = "; ".join(f"{label}: `{cli_of(m, t, args)}`" for label, (m, t) in zip(labels, jobs, strict=True))
    about = (f"Seed {args.seed}: Harrell's C on the DeepSurv test file with a 95% bootstrap CI "
             f"({args.n_boot} resamples of test patients); n = test patients. One cell is one run: {cli}.")
    out: dict[str, Table] = {}
    main = []
    for name in args.datasets:
        mine = {r["model"]: r for r in first if r["dataset"] == name}
        best = min((r for r in mine.values() if r["ibs"] and r["ibs"].get("value") is not None),
                   key=lambda r: r["ibs"]["value"], default=None)
        main.append([name.upper(), str(next(iter(mine.values()))["c_index"]["n"]),
                     f"{PUBLISHED_DEEPSURV_C[name]:.3f}", *(_fmt(mine[m]["c_index"]) for m in labels),
                     f"{_fmt(best['ibs'])} ({best['model']})" if best else "n/a"])
    out[args.name] = Table(["dataset", "n test", "published DeepSurv C", *(f"{m}, seed {args.seed}"
                                                                         for m in labels),
                            "best IBS (model)"], main, cmd, [about, PUBLISHED_SOURCE, *notes])
    if len(seeds) > 1:
        spread = []
        for name in args.datasets:
            cells = [_spread([r["c_index"]["value"] for r in rows
                              if r["dataset"] == name and r["model"] == m]) for m in labels]
            spread.append([name.upper(), f"{PUBLISHED_DEEPSURV_C[name]:.3f}", *cells])
        out[f"{args.name}-seeds"] = Table(
            ["dataset", "published DeepSurv C",
             *(f"{m}, mean (min-max) over seeds {seeds[0]}-{seeds[-1]}" for m in labels)], spread, cmd,
            [f"Harrell's C on the test file; each seed draws new initial weights and a new validation "
             "part (or new folds); a tuned model searches again per seed. Runs as in the table for seed "
             f"{args.seed}.", PUBLISHED_SOURCE])
    detail = []
    for r in first:
        same = [x for x in rows if x["dataset"] == r["dataset"] and x["model"] == r["model"]]
        seed_ibs = [x["ibs"]["value"] for x in same if x["ibs"] and x["ibs"].get("value") is not None]
        detail.append([r["dataset"].upper(), r["model"], _fmt(r["c_index_uno"]), _fmt(r["c_td"]),
                       _fmt(r["ibs"]), _spread(seed_ibs) if len(seed_ibs) > 1 else "-",
                       f"{np.mean([x['seconds'] for x in same]):.0f}"])
    out[f"{args.name}-metrics"] = Table(
        ["dataset", "model", f"Uno's C, seed {args.seed}", f"C-td (Antolini), seed {args.seed}",
         f"IBS, seed {args.seed}", "IBS mean (min-max) over seeds", "seconds per run"], detail, cmd,
        [f"95% bootstrap CIs ({args.n_boot} resamples). C-td and IBS from each model's survival "
         "curves (discrete-time models' curves interpolated between their cut points); C-td equals "
         f"Harrell's C for the Cox-type models. For reference, {PYCOX_METABRIC}.", *notes])
    with_copies = [n for n in args.datasets if len(copied[n])]
    if with_copies:
        unseen = []
        for name in with_copies:
            mine = {r["model"]: r for r in first if r["dataset"] == name}
            n_test = next(iter(mine.values()))["c_index"]["n"]
            unseen.append([name.upper(), f"{len(copied[name])} of {n_test}",
                           str(n_test - len(copied[name])),
                           *(f"{_fmt(mine[m]['c_index'])} / {_fmt(mine[m]['c_index_unseen'])}"
                             for m in labels)])
        others = [n.upper() for n in args.datasets if n not in with_copies]
        out[f"{args.name}-unseen"] = Table(
            ["dataset", "test rows copied from training", "unseen test rows",
             *(f"{m}: C all / unseen rows" for m in labels)], unseen, cmd,
            [f"A copied test row repeats a training row exactly (features, time and event). Seed "
             f"{args.seed}, Harrell's C with 95% bootstrap CIs on all test rows and on the unseen ones."
             + (f" {', '.join(others)}: no copied rows." if others else "")])
    tuned = [m for m in labels if m.endswith(" tuned")]
    if tuned:
        chosen = []
        for name in args.datasets:
            for m in tuned:
                picks = {r["seed"]: r for r in rows if r["dataset"] == name and r["model"] == m}
                chosen.append([name.upper(), m, *(f"{_setting(picks[s]['chosen'])} "
                                                  f"({picks[s]['c_index']['value']:.3f})" for s in seeds)])
        folds = "validation part" if args.folds == 1 else f"{args.folds}-fold CV over the training file"
        out[f"{args.name}-chosen"] = Table(
            ["dataset", "model", *(f"seed {s}: chosen (test C)" for s in seeds)], chosen, cmd,
            [f"Settings chosen by {folds} from a {args.max_trials}-setting grid ("
             + "; ".join(f"{m}: `{space_options(m)}`" for m in SPACES if any(m == j for j, t in jobs if t))
             + "); the test file is scored once, for the chosen setting."])
    return out


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
                             "tabulate each model's test C over the seeds")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--name", default="main", help="table name in benchmarks/results/survival.json")
    parser.add_argument("--cache", help="keep each finished run's scores here and reuse them")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    t_all = time.perf_counter()
    jobs = [(m, False) for m in args.models] + [(m, True) for m in args.models
                                                if args.tune and m in SPACES]
    labels = [label_of(m, tune, args) for m, tune in jobs]
    rows, copied = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seed, args.seed + args.repeat):
            for name in args.datasets:
                copied.setdefault(name, copied_test_rows(name, args.data_root))
                for model, tune in jobs:
                    r = run_one(name, model, args, Path(tmp), tune, seed, copied[name])
                    rows.append(r)
                    print(f"# seed {seed} {name} {r['model']}: C {_fmt(r['c_index'])} C-td {_fmt(r['c_td'])} "
                          f"IBS {_fmt(r['ibs'])} ({r['seconds']:.0f} s)"
                          + (f" chosen {r['chosen']}" if r["chosen"] else ""), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = sum(r["seconds"] for r in rows)
    notes = [f"{note} All runs together took {total / 60:.0f} min; peak memory {peak / 1024:.1f} GB "
             f"(this process: {(time.perf_counter() - t_all) / 60:.0f} min)."]
    out = tables(rows, labels, copied, args, jobs, notes)
    for key, table in out.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("survival", out)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
