"""Scaling: the Trainer's overhead against a bare PyTorch loop, one process against two
(data-parallel, torchrun), and Ray Tune against the sequential search.

- `overhead`: the same network, datasets, loss and batch size (the model's, built by iatros'
  model spec exactly as `train` builds it) trained for a few epochs, each followed by a
  validation pass, by (a) a bare loop (DataLoader, AdamW, backward, step; validation outputs
  scored once per epoch) and (b) the Trainer, once keeping the best weights in memory and once
  writing best.pt / last.pt every epoch as `train` does. Rows per second of training data
  (images/s, stays/s) over the whole fit; ratio = bare seconds / Trainer seconds (target 0.9).
- `ddp`: `iatros train TASK` in one process (IATROS_THREADS=2) and with `--nproc 2` (one thread
  each), same seed and global batch: training seconds and the largest difference between their
  validation curves (per-epoch validation metric).
- `ray`: `iatros tune TASK` over an 8-setting grid, sequentially (IATROS_THREADS=2) and with
  `--backend ray --workers 2` (one CPU each): search wall time and whether the choice is the same.

Each measurement runs in its own process. Results go to results/scale.json.

    python benchmarks/scale.py --data-root ../shared/data
    python benchmarks/scale.py --parts overhead --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

PARTS = ("overhead", "ddp", "ray")
OVERHEAD_CASES = (("pneumonia-cxr", "resnet18", "images"), ("icu-mortality", "grud", "stays"))
DDP_TASK = ("pneumonia-cxr", "resnet18")
RAY_TASK = ("breast-ultrasound", "resnet18")
RAY_SPACE = ["lr=1e-3,3e-3", "weight_decay=0,1e-4", "batch_size=64,128"]


def _pieces(task_name: str, model: str, data_root: str, seed: int = 0) -> dict[str, Any]:
    """What `train` builds for a torch model: network, datasets, loss, monitor, settings."""
    from iatros.pipeline.fit import check_model, monitor, train_config
    from iatros.pipeline.runs import run_split, settings_for, task_for
    from iatros.train.heads import head_for
    from iatros.train.predictors import make_dataset
    from iatros.train.seed import seed_everything

    settings = settings_for(data_root)
    task = task_for(task_name, None, settings)
    spec = check_model(task, model)
    data = task.load(settings.data_root)
    split = run_split(task, data, seed)
    params = {**spec.params, **task.model_params}
    x_train, y_train = data.inputs[split.train], data.targets[split.train]
    n_inputs = spec.n_inputs(x_train, params) if spec.n_inputs else int(np.asarray(x_train).shape[1])
    head = head_for(task.target)
    wrapped = head.wraps(spec)
    seed_everything(seed, True)
    network = head.build(spec, n_inputs, head.outputs(spec, len(task.classes)), params, wrapped)
    if spec.prepare is not None:
        spec.prepare(network, x_train)
    score, mode = monitor(task)
    loss_fn, score, mode = head.setup(spec, network, y_train, params,
                                      bool(task.train_params.get("balance", False)), score, mode)
    return {"network": network, "loss": loss_fn, "monitor": score, "mode": mode,
            "config": train_config(spec, task, None, seed, False, None),
            "train": make_dataset(spec, x_train, y_train, task.target, train=True, params=params),
            "val": make_dataset(spec, data.inputs[split.val], data.targets[split.val],
                                task.target, train=False, params=params)}


def _bare(p: dict[str, Any], epochs: int) -> list[float]:
    """A plain PyTorch loop: the scores of each epoch's validation pass."""
    import torch
    from torch.utils.data import DataLoader

    cfg, net, loss_fn = p["config"], p["network"], p["loss"]
    train = DataLoader(p["train"], batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    val = DataLoader(p["val"], batch_size=cfg.batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scores = []
    for _ in range(epochs):
        net.train()
        for x, y in train:
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            outs, ys = zip(*[(net(x).float().numpy(), y.numpy()) for x, y in val], strict=True)
        scores.append(p["monitor"](np.concatenate(outs), np.concatenate(ys)))
    return scores


def run_overhead(job: dict[str, Any]) -> dict[str, Any]:
    """One overhead measurement (bare, trainer or trainer+checkpoints) in this process."""
    from dataclasses import replace

    import torch

    from iatros.train.trainer import Trainer

    torch.set_num_threads(job["threads"])
    p = _pieces(job["task"], job["model"], job["data_root"])
    epochs, rows = job["epochs"], len(p["train"])
    t0 = time.perf_counter()
    if job["loop"] == "bare":
        _bare(p, epochs)
    else:
        folder = tempfile.mkdtemp() if job["loop"] == "trainer+checkpoints" else None
        config = replace(p["config"], epochs=epochs, patience=0, progress=False)
        Trainer(config, checkpoint_dir=Path(folder) if folder else None).fit(
            p["network"], p["loss"], p["train"], p["val"], monitor=p["monitor"], mode=p["mode"])
    seconds = time.perf_counter() - t0
    return {**job, "seconds": seconds, "rows": rows, "rows_per_s": rows * epochs / seconds}


def _iatros(args: list[str], threads: int, home: Path) -> tuple[float, str]:
    env = {**os.environ, "IATROS_THREADS": str(threads), "IATROS_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "iatros.cli", *args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"iatros {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc.stdout.strip().splitlines()[-1]


def run_ddp(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    task, model = DDP_TASK
    common = ["train", task, "--model", model, "--epochs", str(args.epochs), "--data-root",
              args.data_root, "--n-boot", "100", "--param", "patience=0"]
    out = []
    for name, extra, threads in (("1 process, 2 threads", [], 2),
                                 ("2 processes (torchrun, gloo), 1 thread each",
                                  ["--nproc", "2"], 1)):
        run = work / f"ddp-{len(out)}"
        wall, _ = _iatros([*common, *extra, "--out", str(run)], threads, work / "home")
        status = json.loads((run / "status.json").read_text())
        log = [float(v) for v in
               [line.split(",")[3] for line in (run / "train_log.csv").read_text().splitlines()[1:]]]
        rows = json.loads((run / "config.json").read_text())["data"]["splits"]["train"]["rows"]
        out.append({"setting": name, "wall_s": wall, "train_s": status["train_seconds"],
                    "val_curve": log, "rows": rows, "epochs": args.epochs})
    return out


def run_ray(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    task, model = RAY_TASK
    space = [a for s in RAY_SPACE for a in ("--space", s)]
    common = ["tune", task, "--model", model, "--epochs", str(args.ray_epochs), "--data-root",
              args.data_root, "--n-boot", "100", "--max-trials", "8", *space]
    out = []
    for name, extra, threads in (("sequential, 2 threads", [], 2),
                                 ("Ray Tune, 2 workers x 1 CPU",
                                  ["--backend", "ray", "--workers", "2"], 1)):
        run = work / f"ray-{len(out)}"
        wall, _ = _iatros([*common, *extra, "--out", str(run)], threads, work / "home")
        tuning = json.loads((run / "tuning.json").read_text())
        out.append({"setting": name, "wall_s": wall, "search_s": tuning["search_seconds"],
                    "chosen": tuning["trials"][tuning["chosen"]]["settings"],
                    "vals": [r["val"] for r in tuning["trials"]]})
    return out


def overhead_table(rows: list[dict[str, Any]], epochs: int) -> Table:
    table = []
    for task, model, unit in OVERHEAD_CASES:
        mine = {r["loop"]: r for r in rows if r["task"] == task}
        if "bare" not in mine:
            continue
        for loop in ("bare", "trainer", "trainer+checkpoints"):
            if loop in mine:
                r = mine[loop]
                table.append([f"{task} ({model})", loop, f"{r['rows']:,}",
                              f"{r['rows_per_s']:.0f} {unit}/s", f"{r['seconds']:.1f}",
                              f"{mine['bare']['seconds'] / r['seconds']:.2f}"])
    notes = [f"{epochs} epochs, each followed by a validation pass; the model's own batch size "
             f"and learning rate; 2 torch threads; each row its own process. Ratio: bare-loop "
             f"seconds / this loop's seconds (the issue's target: Trainer >= 0.9).",
             "bare: DataLoader, AdamW, backward, step, validation scored per epoch. trainer: "
             "iatros' Trainer (gradient clipping, finite-loss check, deterministic algorithms, "
             "best weights kept in memory). trainer+checkpoints: as `iatros train` runs it, "
             "best.pt and last.pt (weights, optimizer, RNG) written every epoch.", timing_note()]
    return Table(["task (model)", "loop", "training rows", "throughput", "seconds", "ratio"],
                 table, command_line(), notes)


def ddp_table(rows: list[dict[str, Any]]) -> Table:
    base = rows[0]
    table = [[r["setting"], f"{r['train_s']:.1f}", f"{r['rows'] * r['epochs'] / r['train_s']:.0f}",
              f"{base['train_s'] / r['train_s']:.2f}",
              f"{max(abs(a - b) for a, b in zip(r['val_curve'], base['val_curve'], strict=True)):.4f}"]
             for r in rows]
    notes = [f"`iatros train {DDP_TASK[0]} --model {DDP_TASK[1]}`, {base['epochs']} epochs, the "
             f"same seed and global batch; train s from status.json (fit only, rank 0), "
             f"images/s over the training rows. Curve difference: the largest per-epoch "
             f"difference in validation AUROC from the one-process run (batch norm statistics "
             f"are per process, so they are not bit-identical).", timing_note()]
    return Table(["setting", "train s", "images/s", "speed-up", "max val AUROC difference"],
                 table, command_line(), notes)


def ray_table(rows: list[dict[str, Any]]) -> Table:
    base = rows[0]
    table = [[r["setting"], f"{r['search_s']:.0f}", f"{base['search_s'] / r['search_s']:.2f}",
              json.dumps(r["chosen"]), "yes" if r["chosen"] == base["chosen"] else "no"]
             for r in rows]
    notes = [f"`iatros tune {RAY_TASK[0]} --model {RAY_TASK[1]}` over {' '.join(RAY_SPACE)} (8 "
             f"settings, each a full training scored on validation); search seconds from "
             f"tuning.json (all trials, before the chosen run is retrained); Ray's own start-up "
             f"is inside them.", timing_note()]
    return Table(["search", "search s", "speed-up", "chosen setting", "same choice"],
                 table, command_line(), notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--ray-epochs", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_overhead(json.loads(args.one))))
        return
    args.data_root = str(Path(args.data_root).resolve())
    work = Path(tempfile.mkdtemp(prefix="iatros-scale-"))
    tables: dict[str, Table] = {}
    if "overhead" in args.parts:
        rows = []
        for task, model, _ in OVERHEAD_CASES:
            for loop in ("bare", "trainer", "trainer+checkpoints"):
                job = {"task": task, "model": model, "loop": loop, "epochs": args.epochs,
                       "threads": 2, "data_root": args.data_root}
                proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)],
                                      capture_output=True, text=True,
                                      env={**os.environ, "IATROS_HOME": str(work / "home")})
                lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
                if proc.returncode or not lines:
                    raise RuntimeError(f"{job} failed: {proc.stderr[-2000:]}")
                rows.append(json.loads(lines[-1][7:]))
                print(f"# {task} {loop}: {rows[-1]['rows_per_s']:.0f}/s", file=sys.stderr)
        tables["overhead"] = overhead_table(rows, args.epochs)
    if "ddp" in args.parts:
        tables["ddp"] = ddp_table(run_ddp(args, work))
    if "ray" in args.parts:
        tables["ray"] = ray_table(run_ray(args, work))
    for name, table in tables.items():
        print(f"\n{name}\n\n{table.markdown()}")
    write_tables("scale", tables)


if __name__ == "__main__":
    main()
