"""DeepSurv with the published settings, trained by iatros, on the DeepSurv test files.

Separates our implementation from our protocol: each set's network gets the hyperparameters the
DeepSurv repository ships for it (experiments/deepsurv/models/*_model_selu_revision.0.json in
github.com/jaredleekatzman/DeepSurv, commit 3c20b35 / 45e5a9c) and is trained the way its
experiment script trains: the whole training file, full batch, Adam, a fixed number of epochs with
no validation and no early stopping, the final weights kept, L2 on the output weights only,
Breslow ties (its likelihood has no tie correction). Its loss is a sum over events and ours a
mean, so the L2 weight is divided by the number of training events (Adam is unaffected by the
loss's scale). Not reproduced: Glorot-uniform initial weights (torch's default init is used).

    python benchmarks/survival_published.py --data-root ../shared/data [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables
from survival import PUBLISHED_DEEPSURV_C as PUBLISHED_C
from survival import PUBLISHED_SOURCE, _fmt

# learning rate, dropout, L2 weight, hidden layers: the DeepSurv repository's
# experiments/deepsurv/models/{whas,gbsg,metabric,support}_model_selu_revision.0.json
# (github.com/jaredleekatzman/DeepSurv, commits 3c20b35 / 45e5a9c), the settings behind the
# published figures of Katzman et al. 2018.
SETTINGS = {
    "whas": (0.023094, 0.017244, 2.364681, (26, 26, 26)),
    "gbsg": (0.000499, 0.078394, 1.591799, (20, 20, 20)),
    "metabric": (0.002007, 0.034404, 4.659397, (42, 42, 42)),
    "support": (0.032792, 0.198276, 3.544342, (33, 33, 33)),
}


def fit_published(name: str, root: str, seed: int, epochs: int, n_boot: int, tmp: Path) -> dict:
    """Train the published setting on survival-NAME's training file; C-index on its test file."""
    from iatros.evaluate import metrics as M
    from iatros.kinds import TargetKind
    from iatros.models.registry import get_model_spec
    from iatros.models.survival import to_structured
    from iatros.tasks import get_task
    from iatros.train.predictors import fit_torch
    from iatros.train.trainer import TrainConfig

    data = get_task(f"survival-{name}").loader(Path(root))
    train, test = data.split == "train", data.split == "test"
    x, y = data.inputs[train], data.targets[train]
    lr, dropout, l2, hidden = SETTINGS[name]
    n_events = int(y[:, 1].sum())
    params = {"hidden": hidden, "dropout": dropout, "activation": "selu", "batch_norm": False,
              "out_l2": l2 / n_events, "ties": "breslow"}
    config = TrainConfig(epochs=epochs, batch_size=len(x), lr=lr, optimizer="adam", weight_decay=0.0,
                         scheduler="none", patience=0, keep="last", grad_clip=None, seed=seed,
                         progress=False)
    run_dir = tmp / f"{name}-{seed}"
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    predictor, _ = fit_torch(get_model_spec("deepsurv"), TargetKind.SURVIVAL, 0, (x, y), (x, y),
                             config, device="cpu", run_dir=run_dir, params=params)
    seconds = time.perf_counter() - t0
    risk, _, _ = predictor.predict_survival(data.inputs[test])
    target = to_structured(data.targets[test, 0], data.targets[test, 1].astype(int))
    c = M.evaluate(target, risk, "survival", metrics=("c_index",), n_boot=n_boot, seed=seed)["c_index"]
    return {"dataset": name, "seed": seed, "n_test": int(test.sum()), "c_index": c, "seconds": seconds}


def table(rows: list[dict], seeds: list[int]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows: the first seed with its CI, and the mean (min-max) over all seeds run,
    beside the paper."""
    columns = ["dataset", "n test", "published DeepSurv C", f"published settings, seed {seeds[0]}",
               f"seeds {seeds[0]}-{seeds[-1]} mean (min-max)", "seconds per run"]
    lines = []
    for name in PUBLISHED_C:
        mine = [r for r in rows if r["dataset"] == name]
        if not mine:
            continue
        values = np.array([r["c_index"]["value"] for r in mine])
        lines.append([name.upper(), str(mine[0]["n_test"]), f"{PUBLISHED_C[name]:.3f}",
                      _fmt(mine[0]["c_index"]),
                      f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})",
                      f"{np.mean([r['seconds'] for r in mine]):.0f}"])
    return columns, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--datasets", nargs="*", default=list(PUBLISHED_C), choices=list(PUBLISHED_C))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=500,
                        help="fixed epochs (the DeepSurv experiment script's default: 500)")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    from iatros.settings import get_settings

    get_settings()  # applies IATROS_THREADS to torch, as every iatros command does
    note = timing_note()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            for seed in args.seeds:
                row = fit_published(name, args.data_root, seed, args.epochs, args.n_boot, Path(tmp))
                rows.append(row)
                print(f"{name} seed {seed}: C {row['c_index']['value']:.3f} in {row['seconds']:.1f} s",
                      flush=True)
    columns, lines = table(rows, args.seeds)
    result = Table(columns, lines, command_line(), [
        f"DeepSurv with the hyperparameters the DeepSurv repository ships for each set "
        f"(SELU layers, no batch norm, its dropout, learning rate and output-weight L2), trained as its "
        f"experiment script trains: the whole training file, full batch, Adam, {args.epochs} epochs, no "
        f"validation and no early stopping, final weights; Harrell's C on the test file with a 95% "
        f"bootstrap CI ({args.n_boot} resamples) for the first seed. Not reproduced: their Glorot-uniform "
        "initial weights. Trained through iatros' trainer (`fit_torch`) on the whole training file: "
        "`iatros train` always holds out a validation part, so no `iatros train` command reproduces "
        "this protocol exactly.",
        PUBLISHED_SOURCE, note])
    print(result.markdown())
    write_tables("survival_published", {"published": result})
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))

if __name__ == "__main__":
    main()
