"""Imaging benchmark against the published MedMNIST v2 figures (test AUC / ACC, 28x28).

MedMNIST protocol: fit on the official train split, select the epoch on val, report on test.
Each row is one `iatros train` run, given by its arguments (`--row "breast-ultrasound --ensemble 5
--param widen_factor=0.5"`), and trains in its own process (peak memory per run). Our ACC is
reported two ways: at the threshold chosen on validation (the pipeline's default; argmax for
multiclass) and at 0.5 on the uncalibrated probability, as MedMNIST computes it.

    python benchmarks/imaging.py --data-root ../shared/data [--row "pneumonia-cxr" ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from readme_tables import Table, command_line, shown, timing_note, write_tables

# Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image
# classification", Scientific Data 10:41 (2023), the 2D benchmark table: test AUC / ACC at 28x28.
PUBLISHED_SOURCE = ("MedMNIST v2 columns: Yang et al., Scientific Data 10:41 (2023), 2D benchmark "
                    "table, test AUC / ACC of each method at 28x28 on the same official splits.")
ROWS = ("pneumonia-cxr",
        "breast-ultrasound --ensemble 5 --param widen_factor=0.5",
        "retinopathy-grade --ensemble 3 --param widen_factor=0.5",
        "breast-ultrasound",
        "retinopathy-grade")
PUBLISHED = {  # MedMNIST v2 (Yang et al., Scientific Data 2023), test AUC / ACC
    "pneumonia-cxr": {"ResNet-18 (28)": (.944, .854), "ResNet-50 (28)": (.948, .854),
                      "AutoKeras": (.947, .878), "Google AutoML Vision": (.991, .946)},
    "breast-ultrasound": {"ResNet-18 (28)": (.901, .863), "ResNet-50 (28)": (.857, .812),
                          "AutoKeras": (.871, .831), "Google AutoML Vision": (.919, .861)},
    "retinopathy-grade": {"ResNet-18 (28)": (.717, .524), "ResNet-50 (28)": (.726, .528),
                          "AutoKeras": (.719, .503), "Google AutoML Vision": (.750, .531)},
}


def parse_row(row: str) -> argparse.Namespace:
    """A row's `iatros train` arguments: TASK [--model M] [--ensemble N] [--param NAME=VALUE ...]."""
    parser = argparse.ArgumentParser(prog="row", add_help=False)
    parser.add_argument("task")
    parser.add_argument("--model")
    parser.add_argument("--ensemble", type=int)
    parser.add_argument("--param", action="append", default=[])
    return parser.parse_args(shlex.split(row))


def run_one(row: str, data_root: str, seed: int, n_boot: int, reuse: str | None = None) -> dict:
    """Train one row's run in this process (or take a run folder it already trained); measure it."""
    from iatros import api
    from iatros.evaluate import metrics as M
    from iatros.kinds import TargetKind
    from iatros.tasks import get_task
    from iatros.train.search import parse_params, split_trial

    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    spec = parse_row(row)
    task = spec.task
    t0 = time.perf_counter()
    if reuse:
        run = Path(reuse)
    else:
        params, train_settings = split_trial(parse_params(spec.param))
        run = api.train(task, data_root=data_root, model=spec.model, seed=seed, ensemble=spec.ensemble,
                        params=params or None, train_overrides=train_settings or None,
                        out=Path(tempfile.mkdtemp()) / "run", progress=False,
                        eval_options=api.EvalOptions(n_boot=n_boot, seed=seed), register=False)
    wall = None if reuse else time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())
    log = pd.read_csv(run / "train_log.csv")
    config = json.loads((run / "config.json").read_text())
    n_train = config["data"]["splits"]["train"]["rows"]
    ensemble = int(config.get("ensemble", 1))
    widen = config["model_params"].get("widen_factor", 1.0)
    preds = pd.read_csv(run / "predictions.csv")
    test = preds[preds.split == "test"]
    kind = get_task(task).target
    if kind is TargetKind.BINARY:
        raw = test["prob_raw"].to_numpy()
    else:
        raw = test[sorted((c for c in test if c.startswith("prob_raw_")),
                          key=lambda c: int(c.rsplit("_", 1)[1]))].to_numpy()
    acc05 = M.evaluate(test["target"].to_numpy(), raw, kind, metrics=["accuracy"], threshold=0.5,
                       n_boot=n_boot, seed=seed)["accuracy"]
    # inference speed: predict the test images again with the saved model
    from iatros.train.predictors import load_predictor

    data = get_task(task).load(Path(data_root))
    rows = np.flatnonzero(data.split == "test")
    predictor = load_predictor(run)
    t1 = time.perf_counter()
    predictor.predict_scores(data.inputs[rows])
    infer_s = time.perf_counter() - t1
    test_metrics = metrics["splits"]["test"]
    return {
        "row": row, "task": task, "model": config["model"], "seed": seed, "auroc": test_metrics["auroc"],
        "accuracy": test_metrics["accuracy"], "accuracy_at_0.5_raw": acc05,
        "kappa": test_metrics.get("kappa"), "threshold": metrics.get("threshold"),
        "ensemble": ensemble, "widen_factor": widen,
        "train_split": config["data"]["splits"]["train"],
        "epochs_run": int(log["epoch"].max()), "best_epoch": int(log.loc[log.val_metric.idxmax(), "epoch"]),
        "train_seconds": float(log["seconds"].sum()), "wall_seconds": wall,
        "train_images_per_s": n_train * len(log) / float(log["seconds"].sum()),
        "inference_images_per_s": len(rows) / infer_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "run": str(run),
    }


def _train_images(split: dict) -> str:
    """`3882 (3494 positive)` or `1080 (class counts 486 / 128 / ...)`."""
    if "positives" in split:
        return f"{split['rows']} ({split['positives']} positive)"
    if "class_counts" in split:
        return f"{split['rows']} (by class {' / '.join(map(str, split['class_counts']))})"
    return str(split["rows"])


def _fmt(entry: dict) -> str:
    lo, hi = entry["ci95"]
    return f"{entry['value']:.3f} ({lo:.3f}-{hi:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--row", nargs="*", default=list(ROWS), dest="rows",
                        help="one row per `iatros train` argument string (TASK [--model M] "
                             "[--ensemble N] [--param NAME=VALUE ...])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", nargs="*", default=[], metavar="ROW=RUN",
                        help="measure a run folder this benchmark already trained for ROW (e.g. after "
                             "the process was interrupted during reporting) instead of training again")
    parser.add_argument("--json-out", help="also write the results as JSON here")
    args = parser.parse_args()
    reuse = dict(item.rsplit("=", 1) for item in args.reuse)
    if args.one:
        print(json.dumps(run_one(args.one, args.data_root, args.seed, args.n_boot, reuse.get(args.one))))
        return
    note = timing_note()
    results = []
    for row in args.rows:
        proc = subprocess.run([sys.executable, __file__, "--one", row, "--data-root", args.data_root,
                               "--seed", str(args.seed), "--n-boot", str(args.n_boot),
                               *(["--reuse", f"{row}={reuse[row]}"] if row in reuse else [])],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{row}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"# {row}: {r['epochs_run']} epochs (best {r['best_epoch']}) in {r['train_seconds']:.0f} s",
              file=sys.stderr, flush=True)
    cli = {r["row"]: f"iatros train {r['row']} --data-root {shown(args.data_root)} --seed {args.seed}"
           for r in results}
    names = list(next(iter(PUBLISHED.values())))
    scores = [[f"{r['task']}, n={r['auroc']['n']}", f"`{cli[r['row']]}`", _fmt(r["auroc"]),
               f"{r['accuracy_at_0.5_raw']['value']:.3f}", _fmt(r["accuracy"]),
               *(f"{a:.3f} / {c:.3f}" for a, c in PUBLISHED[r["task"]].values())] for r in results]
    cost = [[r["task"], _train_images(r["train_split"]),
             f"{r['ensemble']} x {r['model']} (width {r['widen_factor']:g})",
             (f"{r['epochs_run']} ({r['best_epoch']})" if r["ensemble"] == 1
              else f"{r['epochs_run']} per member"),
             f"{r['train_seconds']:.0f}", f"{r['train_images_per_s']:.0f}",
             f"{r['inference_images_per_s']:.0f}", f"{r['peak_rss_mb']:.0f}"] for r in results]
    cmd = command_line()
    tables = {
        "medmnist": Table(
            ["dataset, n test", "run", "ours AUC (95% CI)", "ours ACC @0.5",
             "ours ACC, val threshold (95% CI)", *(f"{n}: AUC / ACC" for n in names)], scores, cmd,
            [f"Seed {args.seed}; 95% bootstrap CIs ({args.n_boot} resamples of test images). ACC @0.5 is "
             "MedMNIST's own definition (0.5 on the uncalibrated probability, argmax for multiclass); "
             "'val threshold' is iatros' default operating point (Youden's J on validation after Platt "
             "scaling; argmax for multiclass).", PUBLISHED_SOURCE]),
        "cost": Table(["dataset", "train images", "networks", "epochs (best)", "train s", "train img/s",
                       "inference img/s", "peak RSS MB"], cost, cmd,
                      ["Rows in the order of the table above; one process per run.", note]),
    }
    for key, table in tables.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("imaging", tables)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
