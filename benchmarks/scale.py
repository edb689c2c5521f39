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
- `memory`: peak memory on 1x and 10x data. Health records: PhysioNet 2012 set A copied 1x and
  10x (each copy a `set-` folder whose records get new RecordIDs) converted by
  `iatros data convert physionet2012`. Images: PneumoniaMNIST resized to 64 px and repeated 1x
  and 10x as `pneumoniamnist_64.npz`, loaded as the task `medmnist:pneumoniamnist@64`, split,
  and its training set read once through a DataLoader as the Trainer reads it, once memory-
  mapped (iatros' loader) and once read whole into memory (the loader before memory maps).
  Peak resident memory (VmHWM) and the peak of anonymous memory (RssAnon, sampled every 10 ms:
  what the process owns, as opposed to file pages the kernel can drop).

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

PARTS = ("overhead", "ddp", "ray", "memory")
OVERHEAD_CASES = (("pneumonia-cxr", "resnet18", "images"), ("icu-mortality", "grud", "stays"))
DDP_TASK = ("pneumonia-cxr", "resnet18")
RAY_TASK = ("breast-ultrasound", "resnet18")
RAY_SPACE = ["lr=1e-3,3e-3", "weight_decay=0,1e-4", "batch_size=64,128"]
SCALES = (1, 10)
IMAGE_TASK, IMAGE_SIZE = "medmnist:pneumoniamnist@64", 64


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
                                 ("sequential, 1 thread", [], 1),
                                 ("Ray Tune, 2 workers x 1 CPU",
                                  ["--backend", "ray", "--workers", "2"], 1)):
        run = work / f"ray-{len(out)}"
        wall, _ = _iatros([*common, *extra, "--out", str(run)], threads, work / "home")
        tuning = json.loads((run / "tuning.json").read_text())
        out.append({"setting": name, "wall_s": wall, "search_s": tuning["search_seconds"],
                    "threads": threads, "chosen": tuning["trials"][tuning["chosen"]]["settings"],
                    "vals": [r["val"] for r in tuning["trials"]]})
    return out


def replicate_physionet(source: Path, out: Path, copies: int) -> Path:
    """`copies` copies of set A under `out`, each `set-rK/` with RecordIDs shifted by
    220,000 + 20,000 K (past sets A-C's ids, under the million the outcome reader accepts)."""
    import re

    record = re.compile(r"^(00:00,RecordID,)(\d+)", re.MULTILINE)
    for k in range(copies):
        shift, folder = 220_000 + 20_000 * k, out / f"set-r{k}"
        folder.mkdir(parents=True)
        for path in sorted((source / "set-a").glob("*.txt")):
            text = record.sub(lambda m, s=shift: f"{m.group(1)}{int(m.group(2)) + s}", path.read_text())
            (folder / f"{int(path.stem) + shift}.txt").write_text(text)
        lines = (source / "Outcomes-a.txt").read_text().splitlines()
        rows = [f"{int(line.split(',', 1)[0]) + shift},{line.split(',', 1)[1]}" for line in lines[1:]]
        (out / f"Outcomes-r{k}.txt").write_text("\n".join([lines[0], *rows]) + "\n")
    return out


def replicate_images(data_root: Path, out: Path, copies: int) -> Path:
    """A data root whose pneumoniamnist_64.npz holds the 28-px images resized and repeated."""
    from PIL import Image

    from iatros.data.sources.medmnist import SPLITS, load_medmnist

    arrays = load_medmnist("pneumoniamnist", data_root)
    payload = {}
    for split in SPLITS:
        big = np.stack([np.asarray(Image.fromarray(a).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                             Image.BILINEAR))
                        for a in arrays.images[split]])
        payload[f"{split}_images"] = np.concatenate([big] * copies)
        payload[f"{split}_labels"] = np.concatenate([arrays.labels[split][:, None]] * copies)
    (out / "medmnist").mkdir(parents=True)
    np.savez(out / "medmnist" / f"pneumoniamnist_{IMAGE_SIZE}.npz", **payload)
    return out


class PeakMemory:
    """Peak RSS (the kernel's VmHWM) and peak anonymous memory (RssAnon sampled every 10 ms)."""

    def __enter__(self) -> PeakMemory:
        import threading

        self.anon, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _status() -> dict[str, int]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0]) * 1024
        return fields

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.anon = max(self.anon, self._status().get("RssAnon", 0))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        status = self._status()
        self.anon = max(self.anon, status.get("RssAnon", 0))
        self.peak = status["VmHWM"]


def run_memory(job: dict[str, Any]) -> dict[str, Any]:
    """One memory measurement (conversion or an image pass) in this process."""
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        if job["what"] == "convert":
            from iatros.data.ehr import convert, get_source

            tables = convert(get_source("physionet2012"), job["input"], job["out"])
            rows = tables.manifest["n_events"]
        else:
            rows = _image_pass(job)
    return {**job, "seconds": time.perf_counter() - t0, "rows": rows, "peak_rss": mem.peak,
            "peak_anon": mem.anon}


def _image_pass(job: dict[str, Any]) -> int:
    """Load, split and read the training images once, as training does; returns the row count."""
    from torch.utils.data import DataLoader

    from iatros.data.sources.medmnist import load_medmnist
    from iatros.models import get_model_spec
    from iatros.pipeline.runs import run_split, settings_for, task_for
    from iatros.train.predictors import make_dataset

    settings = settings_for(job["data_root"])
    task = task_for(IMAGE_TASK, None, settings)
    data = task.load(settings.data_root)
    if job["loader"] == "in memory":   # the whole file read, as the loader did before memory maps
        data.inputs = load_medmnist("pneumoniamnist", settings.data_root, IMAGE_SIZE).stacked()[0]
    split = run_split(task, data, 0)
    spec = get_model_spec("resnet18")
    params = {**spec.params, **task.model_params}
    train = make_dataset(spec, data.inputs[split.train], data.targets[split.train], task.target,
                         train=True, params=params)
    seen = 0
    for x, _ in DataLoader(train, batch_size=128, shuffle=True):
        seen += len(x)
    return seen


def run_memory_part(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    for scale in SCALES:
        ehr = replicate_physionet(Path(args.data_root) / "physionet2012", work / f"ehr-{scale}x", scale)
        images = replicate_images(Path(args.data_root), work / f"images-{scale}x", scale)
        jobs = [{"what": "convert", "scale": scale, "input": str(ehr), "out": str(work / f"conv-{scale}x")}]
        jobs += [{"what": "images", "scale": scale, "loader": loader, "data_root": str(images)}
                 for loader in ("memory-mapped", "in memory")]
        for job in jobs:
            rows.append(_in_process(job, work))
            r = rows[-1]
            print(f"# {r['what']} {r.get('loader', '')} {scale}x: {r['peak_rss'] / 2**20:.0f} MiB peak, "
                  f"{r['seconds']:.1f} s", file=sys.stderr)
    return rows


def _in_process(job: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one job in a fresh process of this script; its RESULT line."""
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)], capture_output=True,
                          text=True, env={**os.environ, "IATROS_HOME": str(work / "home")})
    lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{job} failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][7:])


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
    same_threads = {r.get("threads", 2): r for r in rows if not r["setting"].startswith("Ray")}

    def same(r: dict[str, Any]) -> str:
        twin = same_threads.get(r.get("threads", 2))
        if twin is None or twin is r:
            return "-"
        return "yes" if r["chosen"] == twin["chosen"] and r["vals"] == twin["vals"] else "no"

    table = [[r["setting"], f"{r['search_s']:.0f}", f"{base['search_s'] / r['search_s']:.2f}",
              json.dumps(r["chosen"]), "yes" if r["chosen"] == base["chosen"] else "no", same(r)]
             for r in rows]
    notes = [f"`iatros tune {RAY_TASK[0]} --model {RAY_TASK[1]}` over {' '.join(RAY_SPACE)} (8 "
             f"settings, each a full training scored on validation); search seconds from "
             f"tuning.json (all trials, before the chosen run is retrained); Ray's own start-up "
             f"is inside them.", timing_note()]
    notes.insert(1, "same choice: the setting chosen by the first row; same trials: every "
                    "setting's validation score and the choice equal to the sequential search run "
                    "with the same threads per trial.")
    return Table(["search", "search s", "speed-up", "chosen setting", "same choice", "same trials"],
                 table, command_line(), notes)


def memory_table(rows: list[dict[str, Any]]) -> Table:
    table = []
    for what, loader, unit in (("convert", None, "events"), ("images", "memory-mapped", "images"),
                               ("images", "in memory", "images")):
        mine = {r["scale"]: r for r in rows if r["what"] == what and r.get("loader") == loader}
        if set(mine) != set(SCALES):
            continue
        name = ("`iatros data convert physionet2012` (PhysioNet 2012 set A copies)" if what == "convert"
                else f"{IMAGE_TASK}: load, split, one pass over the training images ({loader})")
        for scale in SCALES:
            r = mine[scale]
            table.append([name, f"{scale}x", f"{r['rows']:,} {unit}", f"{r['seconds']:.1f}",
                          f"{r['peak_rss'] / 2**20:.0f}", f"{r['peak_anon'] / 2**20:.0f}",
                          f"{r['peak_rss'] / mine[SCALES[0]]['peak_rss']:.2f}"])
    notes = ["Peak RSS: the kernel's high-water mark of resident memory (VmHWM), file pages of "
             "memory maps included. Peak anonymous: the largest RssAnon sampled every 10 ms (memory "
             "the process owns). Growth: peak RSS over the 1x peak (the issue's target: under 2 "
             "for 10x data). Each row its own process.",
             "Conversion: each copy of set A is one part converted in memory, written to disk, and "
             "the parts merged and sorted out of core (DuckDB, IATROS_SORT_MEMORY default 1GB); the "
             "MEDS copy is written the same way. Images: PneumoniaMNIST 28 px resized to 64 px "
             "(bilinear) and repeated, so 10x holds each image ten times; rows counted are the "
             "training images read. The memory-mapped rows include the one-time unpacking of the "
             "archive into the workspace cache; the in-memory rows reuse it.", timing_note()]
    return Table(["job", "data", "rows", "seconds", "peak RSS MiB", "peak anonymous MiB", "growth"],
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
        job = json.loads(args.one)
        print("RESULT " + json.dumps(run_memory(job) if "what" in job else run_overhead(job)))
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
                rows.append(_in_process(job, work))
                print(f"# {task} {loop}: {rows[-1]['rows_per_s']:.0f}/s", file=sys.stderr)
        tables["overhead"] = overhead_table(rows, args.epochs)
    if "ddp" in args.parts:
        tables["ddp"] = ddp_table(run_ddp(args, work))
    if "ray" in args.parts:
        tables["ray"] = ray_table(run_ray(args, work))
    if "memory" in args.parts:
        tables["memory"] = memory_table(run_memory_part(args, work))
    for name, table in tables.items():
        print(f"\n{name}\n\n{table.markdown()}")
    write_tables("scale", tables)


if __name__ == "__main__":
    main()
