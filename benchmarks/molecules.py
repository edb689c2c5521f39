"""Molecules: our models and chemprop 2.3.1 on the same MoleculeNet splits, beside chemprop's
published figures.

For each set, split rule (scaffold: balanced Bemis-Murcko scaffolds; random: by molecule) and
seed, the task's split is made once (`iatros.tasks.molecules`, seeded, 80/10/10) and every model
trains on exactly those rows: our models through `iatros.api.train` (the one Trainer, early
stopping on validation), chemprop 2.3.1 through its own CLI (`chemprop train` with the same
train / val / test rows in a `split` column, its default D-MPNN, 50 epochs, best validation
epoch; `chemprop predict` on the test SMILES). Both read the same standardised SMILES (largest
fragment, neutralised; duplicates merged, conflicting labels left out: the task's
data_report.csv) and both are scored by iatros's metrics module on the same test rows: the
primary metric (RMSE for regression, ROC-AUC, the mean over labels for multitask sets) with a
95% bootstrap CI clustered by scaffold (scaffold split) or molecule (random split). Each run is
a fresh process: train seconds (fit only), peak RSS (VmHWM) and peak GPU memory
(torch.cuda.max_memory_allocated) are its own.

Rows report the mean and SD over the seeds, each seed's CI, train time and peak memory. The
"chemprop (published)" column is chemprop's README figure (v1, "Results": D-MPNN with tuned
hyperparameters and RDKit 2D features where useful, no ensemble, on MoleculeNet's own splits:
random for ESOL, FreeSolv, Lipophilicity, Tox21, SIDER, ClinTox, scaffold for BBBP and HIV), so
it is shown only in the rows of that split.

Each run's result is appended to WORK/runs.jsonl as it finishes; a rerun skips the runs already
there (resume after an interruption). chemprop 2.3.1 pins an older RDKit (2026.03, through
cuik-molmaker-pin) than iatros, so it lives in its own venv and runs as a child process:
`python -m venv cp && cp/bin/pip install torch==2.13.0 && cp/bin/pip install chemprop==2.3.1`,
then `--chemprop-bin cp/bin/chemprop`.

    python benchmarks/molecules.py --data-root ../shared/data --work /tmp/molbench
    python benchmarks/molecules.py --sets esol bbbp tox21 --models dmpnn ecfp-rf --seeds 0 1 2
    python benchmarks/molecules.py --no-chemprop --splits scaffold
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from readme_tables import Table, command_line, shown, timing_note, write_tables

SETS = ("esol", "freesolv", "lipophilicity", "bbbp", "bace", "clintox", "sider", "tox21", "hiv",
        "toxcast")
SPLITS = ("scaffold", "random")
# set against chemprop: the first model's single-network variants (e.g. dmpnn, dmpnn+descriptors),
# the one with the better validation metric per set
MODELS = ("dmpnn", "dmpnn+descriptors", "dmpnn+recipe=chemprop", "gin", "ecfp-rf")
SEEDS = (0, 1, 2)
# chemprop 2.3.1's training defaults (`chemprop train --help`), as our training settings: summed
# atom states / 100 ("norm"), 2 warm-up epochs from lr / 10 then exponential decay to lr / 10,
# batches of 64, no gradient clipping, all 50 epochs with the best validation epoch kept
RECIPES = {"chemprop": {"aggregation": "norm", "scheduler": "warmup", "batch_size": 64,
                        "grad_clip": 0, "patience": 0}}
CHEMPROP = "chemprop 2.3.1"
CHEMPROP_EPOCHS = 50
# chemprop's README (v1 series, section "Results"), "Ours" column: mean +- SD over folds of
# MoleculeNet's own split for each set (named here); BACE and ToxCast are not in that table.
PUBLISHED: dict[str, tuple[str, str]] = {
    "esol": ("random", "0.555 ± 0.047"),
    "freesolv": ("random", "1.075 ± 0.054"),
    "lipophilicity": ("random", "0.555 ± 0.023"),
    "hiv": ("scaffold", "0.776 ± 0.007"),
    "bbbp": ("scaffold", "0.737 ± 0.001"),
    "tox21": ("random", "0.851 ± 0.002"),
    "sider": ("random", "0.676 ± 0.014"),
    "clintox": ("random", "0.864 ± 0.017"),
}
PUBLISHED_SOURCE = ("chemprop (published): github.com/chemprop/chemprop README of the v1 series, "
                    "section Results, column 'Ours' (Yang et al., J. Chem. Inf. Model. 59:3370, "
                    "2019): hyperparameters optimised, rdkit_2d_normalized features when useful, "
                    "no ensemble, MoleculeNet's splits (random; scaffold for BBBP and HIV), other "
                    "SMILES handling than ours; shown in the rows of the matching split only.")


def _peaks() -> dict[str, float | None]:
    """This process's peak RSS (VmHWM, MB) and peak GPU memory (MB, None without CUDA)."""
    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    rss = int(hwm.group(1)) / 1024 if hwm else float("nan")
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:  # pragma: no cover
        pass
    return {"peak_rss_mb": rss, "peak_gpu_mb": gpu}


def _task(name: str, split: str) -> Any:
    from iatros.tasks.molecules import moleculenet_task

    return moleculenet_task(name, split, {"split": split}, task_name=f"moleculenet:{name}")


def run_ours(job: dict[str, Any]) -> dict[str, Any]:
    """Train one of our models on the job's set, split and seed; its test metric and costs."""
    from iatros import api

    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-molbench-"))
    task = _task(job["set"], job["split"])
    out = Path(job["work"]) / "runs" / f"{job['set']}-{job['split']}-{job['model']}-s{job['seed']}"
    shutil.rmtree(out, ignore_errors=True)  # an interrupted or rerun job starts afresh
    model, members, params = model_and_members(job["model"])
    params = {**params, "n_jobs": -1} if model == "ecfp-rf" else params or None
    run = api.train(task, data_root=job["data_root"], model=model, seed=job["seed"],
                    epochs=job.get("epochs"), device=job.get("device"), params=params, out=out,
                    ensemble=members, cross_fit=False if members > 1 else None,
                    eval_options=api.EvalOptions(n_boot=job["n_boot"], seed=job["seed"]),
                    register=False, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    status = json.loads((run / "status.json").read_text())
    config = json.loads((run / "config.json").read_text())
    primary = metrics["primary_metric"]
    checks = (metrics.get("uncertainty") or {}).get("test") or {}
    val = metrics["splits"].get("val", {}).get(primary) or {}
    return {**job, "metric": primary, "test": metrics["splits"]["test"][primary],
            "val": val.get("value") if isinstance(val, dict) else val,
            "train_seconds": status.get("train_seconds"), "n_train":
            config["data"]["splits"]["train"]["rows"], "run": str(run),
            "interval_ece": checks.get("interval_ece"), "coverage_95": checks.get("coverage_95"),
            "spearman_uncertainty_error": checks.get("spearman_uncertainty_error"), **_peaks()}


def model_and_members(name: str) -> tuple[str, int, dict[str, Any]]:
    """(model, members, params) of a benchmark model name. 'dmpnn-x5' is an ensemble of 5
    D-MPNNs (each its own seed, the split's validation rows for early stopping and for
    calibrating the spread); 'dmpnn+descriptors' sets the flag parameter `descriptors`,
    'dmpnn+aggregation=sum' the parameter `aggregation` to 'sum' (numbers stay numbers);
    'dmpnn+recipe=chemprop' the settings of a named recipe (`RECIPES`)."""
    found = re.fullmatch(r"(.+)-x(\d+)", name)
    base, *flags = (found.group(1) if found else name).split("+")
    params: dict[str, Any] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if key == "recipe":
            if value not in RECIPES:
                raise ValueError(f"{name}: unknown recipe {value!r} (known: {', '.join(RECIPES)})")
            params.update(RECIPES[value])
        else:
            params[key] = _parameter_value(value) if sep else True
    return base, int(found.group(2)) if found else 1, params


def _parameter_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _chemprop(binary: str, args: list[str]) -> float:
    """chemprop's CLI as a child process (its own environment: chemprop 2.3.1 pins an older
    RDKit than iatros's); returns the child's peak RSS in MB."""
    import resource

    proc = subprocess.run([binary, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chemprop {args[0]} exited with {proc.returncode}: "
                           f"{proc.stderr[-2000:]}")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_chemprop(job: dict[str, Any]) -> dict[str, Any]:
    """chemprop 2.3.1 on exactly the rows of our split; scored by iatros's metrics module."""
    import pandas as pd
    import torch

    from iatros.evaluate import metrics as M

    task = _task(job["set"], job["split"])
    data = task.load(Path(job["data_root"]))
    split = task.split(data, job["seed"])
    work = Path(job["work"]) / "chemprop" / f"{job['set']}-{job['split']}-s{job['seed']}"
    shutil.rmtree(work, ignore_errors=True)  # no checkpoint of an earlier attempt is picked up
    work.mkdir(parents=True)
    targets = list(task.classes) if task.target.label_matrix else ["target"]
    values = np.asarray(data.targets, dtype=float).reshape(len(data), -1)
    frame = pd.DataFrame(values, columns=targets)
    frame.insert(0, "smiles", data.inputs)
    frame["split"] = ""
    for name in ("train", "val", "test"):
        frame.loc[split.part(name), "split"] = name
    frame.to_csv(work / "data.csv", index=False)
    frame.loc[split.test, ["smiles"]].to_csv(work / "test.csv", index=False)
    gpu = torch.cuda.is_available() and job.get("device") != "cpu"
    device = ["--accelerator", "gpu", "--devices", "1"] if gpu else ["--accelerator", "cpu"]
    kind = "classification" if task.target.is_classification else "regression"
    t0 = time.perf_counter()
    binary = job.get("chemprop_bin") or "chemprop"
    peak = _chemprop(binary, ["train", "--data-path", str(work / "data.csv"), "--smiles-columns", "smiles",
               "--target-columns", *targets, "--splits-column", "split", "--task-type", kind,
               "--epochs", str(job.get("epochs") or CHEMPROP_EPOCHS), "--pytorch-seed",
               str(job["seed"]), "--data-seed", str(job["seed"]), "--num-workers", "0",
               "--output-dir", str(work / "model"), *device])
    seconds = time.perf_counter() - t0
    checkpoint = sorted((work / "model").glob("**/best*.pt"))
    if not checkpoint:
        raise RuntimeError(f"chemprop wrote no best*.pt under {work / 'model'}")
    peak = max(peak, _chemprop(binary, [
        "predict", "--test-path", str(work / "test.csv"), "--smiles-columns", "smiles",
        "--model-paths", str(checkpoint[0]), "--preds-path", str(work / "preds.csv"),
        "--num-workers", "0", *device]))
    preds = pd.read_csv(work / "preds.csv")
    columns = [c for c in targets if c in preds.columns] or [c for c in preds.columns
                                                             if c != "smiles"][-len(targets):]
    scores = preds[columns].to_numpy(float)
    scores = scores if task.target.label_matrix else scores[:, 0]
    test = M.evaluate(data.targets[split.test], scores, task.target,
                      metrics=[task.primary_metric], n_boot=job["n_boot"], seed=job["seed"],
                      clusters=data.patient_ids[split.test])[task.primary_metric]
    return {**job, "metric": task.primary_metric, "test": test, "train_seconds": seconds,
            "n_train": int(len(split.train)), "peak_rss_mb": peak, "peak_gpu_mb": None}


def _commit() -> str | None:
    """The commit of the iatros checkout this benchmark runs from (recorded with each run)."""
    proc = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse",
                           "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or None


def _busy_seconds() -> float:
    """CPU seconds all processes of the machine have spent busy since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def disturbed(result: dict[str, Any], threshold: float | None) -> bool:
    """Whether other processes used more than `threshold` CPU seconds while this run trained
    (runs recorded before this was measured count as disturbed); None: never rerun."""
    if threshold is None:
        return False
    return result.get("others_cpu_s") is None or result["others_cpu_s"] > threshold


def _key(job: dict[str, Any]) -> str:
    return f"{job['set']}/{job['split']}/{job['model']}/{job['seed']}"


def _done(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {_key(r): r for r in rows}


def _cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {sd:.3f}"


def _ci(entry: dict[str, Any]) -> str:
    lo, hi = (entry.get("ci95") or [None, None])
    return "n/a" if lo is None or hi is None else f"{lo:.3f}-{hi:.3f}"


def table_for(split: str, results: list[dict[str, Any]], seeds: tuple[int, ...],
              n_boot: int) -> Table:
    rows = []
    for name in SETS:
        runs = [r for r in results if r["set"] == name and r["split"] == split]
        for model in dict.fromkeys(r["model"] for r in runs):
            mine = sorted((r for r in runs if r["model"] == model), key=lambda r: r["seed"])
            values = [r["test"]["value"] for r in mine if r["test"].get("value") is not None]
            gpu = [r["peak_gpu_mb"] for r in mine if r.get("peak_gpu_mb") is not None]
            published = PUBLISHED.get(name)
            rows.append([
                f"{name} ({mine[0]['metric']}), n test {mine[0]['test'].get('n')}", model,
                f"{_cell(values)} ({len(values)} seeds)",
                " / ".join(_ci(r["test"]) for r in mine),
                f"{np.mean([r['train_seconds'] for r in mine]):.0f}",
                f"{max(r['peak_rss_mb'] for r in mine):.0f}",
                f"{max(gpu):.0f}" if gpu else "-",
                _calibration(mine),
                published[1] if published and published[0] == split and model == CHEMPROP
                else "-"])
    notes = [f"Seeds {', '.join(map(str, seeds))}: each seed its own {split} split (80/10/10) "
             f"shared by every model of the row group; mean ± SD over seeds, then each seed's 95% "
             f"bootstrap CI ({n_boot} resamples of test molecules, clustered by "
             f"{'scaffold' if split == 'scaffold' else 'molecule'}). RMSE: lower is better; "
             f"AUROC: the mean over labels for multitask sets, higher is better.",
             "chemprop 2.3.1: its default D-MPNN (hidden 300, depth 3, 50 epochs, best validation "
             "epoch), on our standardised SMILES and rows, scored by our metrics module.",
             "MODEL-xN: an ensemble of N networks (seeds seed..seed+N-1, all early-stopped on the "
             "split's validation rows); its uncertainty is the members' SD, z-scaled on "
             "validation. Interval ECE: mean |observed - nominal| coverage of the test intervals "
             "prediction ± z(p) x uncertainty over p = 5%..95% (0 is perfect; regression "
             "only), mean over seeds, with the mean test coverage of the 95% interval.",
             PUBLISHED_SOURCE, timing_note(load=False), _disturbance([r for r in results
                                                            if r["split"] == split])]
    return Table(["set (metric), n test", "model", "test mean ± SD", "95% CI per seed",
                  "train s (mean)", "peak RSS MB", "peak GPU MB", "interval ECE (95% cover)",
                  "chemprop (published)"], rows, command_line(), notes)


def _disturbance(runs: list[dict[str, Any]]) -> str:
    """How much CPU other processes took while these runs trained (seconds are only comparable
    on a quiet machine)."""
    others = [r["others_cpu_s"] for r in runs if r.get("others_cpu_s") is not None]
    if not others:
        return "Other processes' CPU time during the runs was not measured."
    return (f"Other processes' CPU time while a run ran (from /proc/stat, the run's own process "
            f"tree subtracted): median {np.median(others):.0f} s, max {max(others):.0f} s over "
            f"{len(others)} runs ({len(runs) - len(others)} not measured).")


def _calibration(runs: list[dict[str, Any]]) -> str:
    ece = [r["interval_ece"] for r in runs if r.get("interval_ece") is not None]
    cover = [r["coverage_95"] for r in runs if r.get("coverage_95") is not None]
    return f"{np.mean(ece):.3f} ({np.mean(cover):.2f})" if ece and cover else "-"


def eligible(runs: list[dict[str, Any]], candidates: list[str]) -> dict[str, float]:
    """Mean validation metric of each candidate that ran every seed any candidate ran: a mean
    over fewer splits is not set against one over more."""
    scored = {model: {r.get("seed"): r["val"] for r in runs
                      if r["model"] == model and r.get("val") is not None} for model in candidates}
    seeds = set().union(*scored.values()) if scored else set()
    return {model: float(np.mean(list(values.values()))) for model, values in scored.items()
            if values and set(values) == seeds}


def choose_on_validation(runs: list[dict[str, Any]], candidates: list[str],
                         lower: bool) -> str | None:
    """The candidate with the best mean validation metric (test unseen), among those that ran
    every seed any candidate ran (`eligible`)."""
    means = eligible(runs, candidates)
    if not means:
        return None
    return (min if lower else max)(means, key=means.__getitem__)


def head_to_head(split: str, results: list[dict[str, Any]], candidates: list[str]) -> Table:
    """One row per set: our model (chosen among `candidates` on mean validation metric) against
    chemprop on the same seeds, and which is better on the mean test metric and training time."""
    rows, wins, both = [], 0, 0
    for name in SETS:
        runs = [r for r in results if r["set"] == name and r["split"] == split]
        if not runs:
            continue
        lower = runs[0]["metric"] in ("rmse", "mae")
        ours = choose_on_validation(runs, candidates, lower)
        if ours is None:
            continue
        pair = {m: sorted((r for r in runs if r["model"] == m), key=lambda r: r["seed"])
                for m in (ours, CHEMPROP)}
        seeds = sorted({r["seed"] for r in pair[ours]} & {r["seed"] for r in pair[CHEMPROP]})
        if not seeds:
            continue
        means, times = {}, {}
        for model, mine in pair.items():
            mine = [r for r in mine if r["seed"] in seeds]
            means[model] = float(np.mean([r["test"]["value"] for r in mine]))
            times[model] = float(np.mean([r["train_seconds"] for r in mine]))
        better = means[ours] <= means[CHEMPROP] if lower else means[ours] >= means[CHEMPROP]
        faster = times[ours] <= times[CHEMPROP]
        both += 1
        wins += better and faster
        ran = eligible(runs, candidates)
        label = ours if len(ran) == len(candidates) else f"{ours} (of {len(ran)} run)"
        rows.append([f"{name} ({runs[0]['metric']})", label, f"{means[ours]:.3f}",
                     f"{means[CHEMPROP]:.3f}", "ours" if better else "chemprop",
                     f"{times[ours]:.0f} / {times[CHEMPROP]:.0f}", str(len(seeds))])
    notes = [f"Ours: per set, the one of {', '.join(candidates)} with the better mean validation "
             f"metric (the test rows are not looked at to choose; 'of N run': only N of them "
             f"ran there on all its seeds; one run on fewer seeds is not compared). It matches or beats "
             f"{CHEMPROP} on the mean test metric at equal or lower training time on {wins} of "
             f"{both} sets ({split} split; means over the seeds both ran; spread and CIs in the "
             f"table above).", timing_note(load=False), _disturbance(
                 [r for r in results if r["split"] == split])]
    return Table(["set (metric)", "ours (chosen on validation)", "ours mean",
                  f"{CHEMPROP} mean", "better mean", "train s (ours / chemprop)", "seeds"],
                 rows, command_line(), notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "iatros-molbench"),
                        help="run folders, chemprop's files and runs.jsonl (resumable)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--no-chemprop", action="store_true", help="our models only")
    parser.add_argument("--chemprop-bin", default=shutil.which("chemprop"),
                        help="the `chemprop` executable of an environment with chemprop 2.3.1 "
                             "(it pins an older RDKit, so it gets its own venv)")
    parser.add_argument("--epochs", type=int, help="cap on epochs (default: each model's own; "
                                                   "chemprop 50)")
    parser.add_argument("--device", help="cpu or cuda (default: auto)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--rerun-disturbed", type=float, metavar="SECONDS",
                        help="rerun a recorded run when other processes used more than SECONDS "
                             "of CPU while it ran (its timing is not that of a quiet machine)")
    parser.add_argument("--render-only", action="store_true",
                        help="train nothing: tabulate the runs already in WORK/runs.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        job = json.loads(args.one)
        result = run_chemprop(job) if job["model"] == CHEMPROP else run_ours(job)
        print("RESULT " + json.dumps(result))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "runs.jsonl"
    done = _done(log)
    models = list(args.models) + ([] if args.no_chemprop else [CHEMPROP])
    commit = _commit()
    data_root = str(Path(args.data_root).resolve())
    for name in args.sets:
        for split in args.splits:
            for seed in args.seeds:
                for model in models:
                    job = {"set": name, "split": split, "model": model, "seed": seed,
                           "data_root": data_root, "work": str(work), "n_boot": args.n_boot,
                           "epochs": args.epochs, "device": args.device,
                           "chemprop_bin": args.chemprop_bin}
                    previous = done.get(_key(job))
                    if args.render_only or (previous is not None and not disturbed(
                            previous, args.rerun_disturbed)):
                        continue
                    t0 = time.perf_counter()
                    busy, own = _busy_seconds(), _children_cpu()
                    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)],
                                          capture_output=True, text=True)
                    others = max(_busy_seconds() - busy - (_children_cpu() - own), 0.0)
                    lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
                    if proc.returncode != 0 or not lines:
                        print(f"# {_key(job)} failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                        continue
                    result = json.loads(lines[-1][len("RESULT "):])
                    result.update(others_cpu_s=round(others, 1),
                                  wall_s=round(time.perf_counter() - t0, 1), commit=commit)
                    with log.open("a") as f:
                        f.write(json.dumps(result) + "\n")
                    done[_key(job)] = result
                    print(f"# {_key(job)}: {result['metric']} {result['test'].get('value')} "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    results = [r for r in done.values() if r["set"] in args.sets and r["seed"] in args.seeds
               and r["model"] in models]
    tables = {split: table_for(split, results, tuple(args.seeds), args.n_boot)
              for split in args.splits}
    if not args.no_chemprop:
        candidates = [m for m in args.models if model_and_members(m)[:2] ==
                      (model_and_members(args.models[0])[0], 1)]
        tables.update({f"{split}_vs_chemprop": head_to_head(split, results, candidates)
                       for split in args.splits})
    for split, table in tables.items():
        print(f"\n{split} split\n\n{table.markdown()}")
    write_tables("molecules", tables)
    print(f"run folders and chemprop files: {shown(str(work))}", file=sys.stderr)


if __name__ == "__main__":
    main()
