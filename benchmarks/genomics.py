"""Genomics: TCGA-BRCA PAM50 subtype (Basal / Her2 / LumA) from mRNA, miRNA and protein, each
fusion mode of `omics-fusion` against each single omic and the concatenation baselines.

Every row trains through `iatros.api.train` on the dataset's own split (mixOmics `breast.TCGA`:
150 training tumours, of which 20% are validation, stratified and seeded; 70 test tumours, which
have no protein, so every test prediction is made without it). Seeds 0-2 change the validation
cut and the initial weights; the test set is the same. Per row: the mean ± SD over seeds of test
accuracy, balanced accuracy, macro-F1 and macro AUROC (one-vs-rest), and the first seed's 95%
bootstrap CI (1000 resamples of test tumours). Nothing was tuned on the test set: every model
runs with its defaults (early stopping on validation AUROC).

A single omic is the task restricted to that omic (`tasks.omics.tcga_subtype_task`); protein
alone cannot be scored, since the test tumours have none. The row's "omics" says what the model
saw in training; "protein (training only)" means the model learnt from protein but was tested
without it.

    python benchmarks/genomics.py --data-root ../shared/data --work /tmp/genbench
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from readme_tables import Table, command_line, shown, timing_note, write_tables

METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc")
ALL = ("mrna", "mirna", "protein")
# (label, model, omics, params)
ROWS: tuple[tuple[str, str, tuple[str, ...], dict[str, Any]], ...] = (
    ("fusion: attention (default)", "omics-fusion", ALL, {"fusion": "attention"}),
    ("fusion: gated", "omics-fusion", ALL, {"fusion": "gated"}),
    ("fusion: concat (mask bits)", "omics-fusion", ALL, {"fusion": "concat"}),
    ("fusion: mean of per-omic heads", "omics-fusion", ALL, {"fusion": "mean"}),
    ("single omic: mRNA", "omics-fusion", ("mrna",), {}),
    ("single omic: miRNA", "omics-fusion", ("mirna",), {}),
    ("mRNA + miRNA (no protein)", "omics-fusion", ("mrna", "mirna"), {}),
    ("concatenation: elastic net", "omics-enet", ALL, {}),
    ("concatenation: gradient boosting", "omics-gbm", ALL, {}),
    ("single omic: mRNA, elastic net", "omics-enet", ("mrna",), {}),
    ("single omic: miRNA, elastic net", "omics-enet", ("mirna",), {}),
)


def run_one(label: str, model: str, omics: tuple[str, ...], params: dict[str, Any], seed: int,
            args: argparse.Namespace) -> dict[str, Any]:
    from iatros import api
    from iatros.tasks.omics import tcga_subtype_task

    task = tcga_subtype_task(omics)
    out = Path(args.work) / f"{model}-{'+'.join(omics)}-{params.get('fusion', 'default')}-s{seed}"
    t0 = time.perf_counter()
    run = api.train(task, data_root=args.data_root, model=model, seed=seed,
                    params=params or None, out=out, register=False, progress=False,
                    eval_options=api.EvalOptions(n_boot=args.n_boot, seed=seed))
    seconds = time.perf_counter() - t0
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    return {"label": label, "seed": seed, "seconds": seconds, "n": test["auroc"].get("n"),
            **{name: test[name] for name in METRICS}}


def _cell(runs: list[dict[str, Any]], name: str) -> str:
    values = [r[name]["value"] for r in runs if r[name].get("value") is not None]
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    first = runs[0][name]
    lo, hi = first.get("ci95") or (None, None)
    ci = f" ({lo:.3f}-{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{np.mean(values):.3f} ± {sd:.3f}{ci}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "iatros-genbench"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-genbench-"))
    args.data_root = str(Path(args.data_root).resolve())
    rows = []
    for label, model, omics, params in ROWS:
        runs = [run_one(label, model, omics, params, seed, args) for seed in args.seeds]
        seen = " + ".join(omics) if omics != ALL else "mRNA + miRNA + protein (training only)"
        rows.append([label, model, seen, *(_cell(runs, name) for name in METRICS),
                     f"{np.mean([r['seconds'] for r in runs]):.0f}"])
        print(f"# {label}: AUROC {_cell(runs, 'auroc')}", flush=True)
    notes = [f"n test = {runs[0]['n']} tumours (the dataset's own test set; none has protein). "
             f"Mean ± SD over seeds {', '.join(map(str, args.seeds))} (validation cut and "
             f"initial weights), then seed {args.seeds[0]}'s 95% bootstrap CI ({args.n_boot} "
             f"resamples). F1 and AUROC are macro averages over the three subtypes. Seconds: the "
             f"whole run (load, train, evaluate, report).", timing_note()]
    table = Table(["model", "zoo name", "omics in training", "accuracy", "balanced accuracy",
                   "macro-F1", "macro AUROC", "s per run"], rows, command_line(), notes)
    print(table.markdown())
    write_tables("genomics", {"tcga_brca": table})
    print(f"run folders: {shown(args.work)}")


if __name__ == "__main__":
    main()
