"""Nested cross-validation inside the DeepSurv training files: one DeepSurv network, a 5-seed
ensemble and a 5-member cross-fit ensemble, scored on outer folds (the test files untouched).

This is how DeepSurv's default (the cross-fit ensemble) was chosen without looking at test:
each outer fold of the training file plays the test part, and everything else runs as in
`benchmarks/survival.py` (validation carved from the rest, or the rest's own folds).

    python benchmarks/survival_nested.py --data-root ../shared/data [--datasets metabric ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

VARIANTS = {"one network": {"ensemble": 1}, "5-seed ensemble": {"ensemble": 5, "cross_fit": False},
            "cross-fit x5": {"ensemble": 5, "cross_fit": True}}


def outer_task(name: str, fold: int, n_folds: int, seed: int):
    """survival-NAME restricted to its training file, with outer fold `fold` as the test part."""
    from iatros.tasks import TaskData, get_task

    base = get_task(f"survival-{name}")

    def loader(root: Path) -> TaskData:
        data = base.loader(root)
        keep = np.flatnonzero(data.split == "train")
        folds = np.random.default_rng(seed).permutation(len(keep)) % n_folds
        return TaskData(data.inputs[keep], data.targets[keep], data.patient_ids[keep],
                        data.attributes.iloc[keep].reset_index(drop=True), data.feature_names,
                        np.where(folds == fold, "test", "train"), data.source)

    return dataclasses.replace(base, loader=loader, name=f"nested-{name}-{fold}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--datasets", nargs="*", default=["whas", "gbsg", "metabric", "support"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outer-seed", type=int, default=123, help="seed of the outer folds")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    from iatros import api

    print(f"Harrell's C on {args.folds} outer folds of each DeepSurv training file, DeepSurv "
          f"defaults otherwise, seed {args.seed}, {os.cpu_count()} CPU cores.\n")
    columns = ["dataset", "variant", "mean outer-fold C", *(f"fold {k}" for k in range(args.folds)),
               "folds at or above one network", "seconds"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    rows = []
    for name in args.datasets:
        single: list[float] = []
        for label, options in VARIANTS.items():
            t0, scores = time.perf_counter(), []
            for fold in range(args.folds):
                with tempfile.TemporaryDirectory() as tmp:
                    run = api.train(outer_task(name, fold, args.folds, args.outer_seed),
                                    data_root=args.data_root, model="deepsurv", seed=args.seed,
                                    out=Path(tmp) / "r", register=False,
                                    eval_options=api.EvalOptions(n_boot=0), **options)
                    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
                    scores.append(test["c_index"]["value"])
            single = single or scores
            above = "-" if scores is single else (
                f"{sum(s >= o for s, o in zip(scores, single, strict=True))} of {args.folds}")
            rows.append([name.upper(), label, f"{np.mean(scores):.3f}", *(f"{v:.3f}" for v in scores),
                         above, f"{time.perf_counter() - t0:.0f}"])
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
    write_tables("survival_nested", {"nested": Table(columns, rows, command_line(), [
        f"DeepSurv (defaults otherwise) scored on {args.folds} outer folds of each DeepSurv training file "
        f"(outer folds drawn with seed {args.outer_seed}; the test files untouched); seed {args.seed}; "
        "Harrell's C on each outer fold, no bootstrap. One network and the 5-seed ensemble stop early "
        "on a validation part carved from the other folds; the cross-fit ensemble's member k stops on "
        "fold k of them (`iatros train survival-NAME --model deepsurv --ensemble 1`, `--ensemble 5 "
        "--no-cross-fit`, `--ensemble 5 --cross-fit`: the default). Seconds: all folds of one variant.",
        note])})

if __name__ == "__main__":
    main()
