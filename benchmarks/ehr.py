"""ICU mortality and survival benchmark on PhysioNet 2012 set A, beside published figures.

Every model trains on the same patient-level split of set A (70/15/15, stratified on the outcome,
per --seeds): early stopping and calibration on validation, scores on test. icu-mortality: AUROC
and AUPRC with 95% bootstrap CIs (patients resampled), ECE after calibration; icu-survival (days
to death after the 48 h landmark): Harrell's C and the integrated Brier score with CIs. The
published figures are the papers' own (set A, their splits; most report means over 5 splits), so
they are context, not a paired comparison. Also times the conversion of the MIMIC-III demo and
set A, each from scratch in a fresh process. Tables go to benchmarks/results/ehr.json.

    python benchmarks/ehr.py --data-root ../shared/data --runs runs/ehr [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from readme_tables import Table, command_line, shown, timing_note, write_tables

# (model, AUROC, AUPRC, source) on PhysioNet 2012 (P12) in-hospital mortality, in %.
PUBLISHED = (
    ("GRU-D", 81.9, 46.1, "Che et al., Scientific Reports 2018; figure as reported by Raindrop "
                          "(Zhang et al., ICLR 2022), its P12 benchmark table"),
    ("Raindrop", 82.8, 44.0, "Zhang et al., ICLR 2022, P12 benchmark table"),
    ("mTAND", 84.2, 48.2, "Shukla & Marlin, ICLR 2021; figure as reported by Raindrop (Zhang et al., "
                          "ICLR 2022), its P12 benchmark table"),
    ("ViTST", 85.1, 51.1, "Li et al., NeurIPS 2023, P12 benchmark table"),
    ("Warpformer", 86.5, 54.3, "Zhang et al., KDD 2023, P12 results table"),
)
MODELS = ("gbm", "gbm-bag", "logreg", "logreg-cv", "grud", "event-transformer")
SURVIVAL_MODELS = ("grud", "coxph")
CONVERT = """
import resource, sys, time
from iatros.data.ehr import convert, get_source
t0 = time.perf_counter()
tables = convert(get_source(sys.argv[1]), sys.argv[2], sys.argv[3])
print(tables.manifest["n_stays"], tables.manifest["n_events"], time.perf_counter() - t0,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _fmt(entry: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['value'] * scale:.{digits}f} ({lo * scale:.{digits}f}-{hi * scale:.{digits}f})"


def _seconds(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0f}"


def conversion(source: str, path: Path) -> dict:
    """Convert from scratch in a fresh interpreter: stays, events, seconds, peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as out:
        line = subprocess.run([sys.executable, "-c", CONVERT, source, str(path), out],
                              check=True, capture_output=True, text=True).stdout.split()
    return {"source": source, "stays": int(line[0]), "events": int(line[1]),
            "seconds": float(line[2]), "peak_mb": float(line[3])}


def train(task: str, model: str, args: argparse.Namespace, seed: int, ensemble: int) -> dict:
    """One run (or the finished one in --runs): its test metrics, train seconds and CLI command."""
    from iatros import api

    members = ensemble if model == "grud" else 1
    tag = f"-e{members}" if members > 1 else ""
    out = Path(args.runs) / f"{task}-{model}{tag}-s{seed}" if args.runs else None
    if out is not None and (out / "metrics.json").exists():
        run = out
    else:
        run = api.train(task, data_root=args.data_root, model=model, seed=seed, out=out,
                        register=False, ensemble=members if members > 1 else None,
                        eval_options=api.EvalOptions(n_boot=args.n_boot, seed=seed))
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    status = json.loads((run / "status.json").read_text())
    command = (f"iatros train {task} --model {model}" + (f" --ensemble {members}" if members > 1 else "")
               + f" --seed {seed} --data-root {shown(args.data_root)}")
    return {"model": model + (f" ({members} members)" if members > 1 else ""), "name": model,
            "task": task, "seed": seed, "run": str(run), "command": command,
            **{k: test.get(k) for k in ("auroc", "auprc", "ece", "c_index", "ibs")},
            "seconds": status.get("train_seconds", float("nan"))}


def averaged(rows: list[dict], names: list[str], args: argparse.Namespace, seed: int) -> dict:
    """Mean of the calibrated test probabilities of several runs, scored like a single run."""
    import pandas as pd

    from iatros.evaluate.metrics import evaluate

    frames = [pd.read_csv(Path(r["run"]) / "predictions.csv") for r in rows if r["name"] in names]
    tests = [f[f["split"] == "test"].reset_index(drop=True) for f in frames]
    prob = np.mean([t["prob"].to_numpy() for t in tests], axis=0)
    scores = evaluate(tests[0]["target"].to_numpy(), prob, "binary",
                      metrics=("auroc", "auprc", "ece"), n_boot=args.n_boot,
                      seed=seed, clusters=tests[0]["patient_id"].astype(str).to_numpy())
    return {"model": " + ".join(names) + " (mean prob.)", "name": "+".join(names), "seed": seed,
            "command": f"mean of the {' and '.join(names)} runs' calibrated test probabilities",
            "auroc": scores["auroc"], "auprc": scores["auprc"], "ece": scores.get("ece"),
            "seconds": float("nan")}


def _mean(values: list[float], scale: float = 100.0) -> str:
    return f"{scale * np.mean(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--survival-models", nargs="*", default=list(SURVIVAL_MODELS),
                        help="icu-survival models (none: skip the survival table)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0],
                        help="split seeds; the first gets the tables with CIs, all get the means")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--ensemble", type=int, default=5, help="GRU-D members (seeds) averaged")
    parser.add_argument("--average", nargs="*", default=["grud", "gbm-bag"],
                        help="also score the mean probability of these models (chosen before "
                             "looking at test: one sequence model, one on aggregated features)")
    parser.add_argument("--runs", help="keep run folders here (and reuse finished ones)")
    parser.add_argument("--no-conversion", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    root = Path(args.data_root)
    conv = [] if args.no_conversion else [conversion("mimic3", root / "mimic3_demo"),
                                          conversion("physionet2012", root / "physionet2012")]
    rows, surv = [], []
    chosen = [m for m in args.average if m in args.models]
    for seed in args.seeds:
        mine = []
        for model in args.models:
            mine.append(train("icu-mortality", model, args, seed, args.ensemble))
            r = mine[-1]
            print(f"# seed {seed} {model}: AUROC {_fmt(r['auroc'], 100)} AUPRC {_fmt(r['auprc'], 100)} "
                  f"({r['seconds']:.0f} s)", flush=True)
        if len(chosen) >= 2:
            mine.append(averaged(mine, chosen, args, seed))
        rows += mine
        for model in args.survival_models:
            surv.append(train("icu-survival", model, args, seed, 1))
            r = surv[-1]
            print(f"# seed {seed} icu-survival {model}: C {_fmt(r['c_index'])} IBS {_fmt(r['ibs'])} "
                  f"({r['seconds']:.0f} s)", flush=True)
    cmd, seed0 = command_line(), args.seeds[0]
    first = [r for r in rows if r["seed"] == seed0]
    n, pos = first[0]["auroc"]["n"], first[0]["auroc"].get("n_positive")
    main_rows = []
    for r in first:
        ece = f"{r['ece']['value']:.3f}" if r.get("ece") else "-"
        main_rows.append([f"iatros {r['model']}", f"`{r['command']}`" if r["name"] in args.models
                          else r["command"], _fmt(r["auroc"], 100), _fmt(r["auprc"], 100), ece,
                          _seconds(r["seconds"])])
    main_rows += [[f"{name} (published)", "-", f"{auroc:.1f}", f"{auprc:.1f}", "-", "-"]
                  for name, auroc, auprc, _ in PUBLISHED]
    tables = {"mortality": Table(
        ["model", "run", "test AUROC (95% CI)", "test AUPRC (95% CI)", "ECE", "train s"], main_rows, cmd,
        [f"PhysioNet 2012 set A, in-hospital death from the first 48 h; patient-level 70/15/15 split "
         f"stratified on the outcome, seed {seed0}: test n = {n} ({pos} deaths). AUROC and AUPRC in %, "
         f"95% bootstrap CIs ({args.n_boot} patient resamples); ECE after Platt calibration on "
         "validation. Published rows (the papers' own splits, most a mean over 5 splits; context, not a "
         "paired comparison): " + "; ".join(f"{name}: {src}" for name, _, _, src in PUBLISHED) + ".",
         note])}
    if len(args.seeds) > 1:
        spread = []
        for name in dict.fromkeys(r["name"] for r in rows):
            mine = [r for r in rows if r["name"] == name]
            spread.append([f"iatros {mine[0]['model']}",
                           " / ".join(f"{100 * r['auroc']['value']:.1f}" for r in mine),
                           _mean([r["auroc"]["value"] for r in mine]),
                           " / ".join(f"{100 * r['auprc']['value']:.1f}" for r in mine),
                           _mean([r["auprc"]["value"] for r in mine])])
        seeds = " / ".join(map(str, args.seeds))
        tables["seeds"] = Table(
            ["model", f"test AUROC, seeds {seeds}", "mean AUROC", f"test AUPRC, seeds {seeds}",
             "mean AUPRC"], spread, cmd,
            [f"The same models on {len(args.seeds)} patient-level splits (test n = {n} each), in %; "
             "each seed is a new split and new initial weights; runs as in the table above with "
             "`--seed S`."])
    if surv:
        s0 = [r for r in surv if r["seed"] == seed0]
        more = len(args.seeds) > 1
        surv_rows = []
        for r in s0:
            same = [x["c_index"]["value"] for x in surv if x["name"] == r["name"]]
            surv_rows.append([r["model"], f"`{r['command']}`", _fmt(r["c_index"], 1, 3), _fmt(r["ibs"], 1, 3),
                              _seconds(r["seconds"]),
                              *([f"{np.mean(same):.3f} ({min(same):.3f}-{max(same):.3f})"] if more else [])])
        events = s0[0]["c_index"].get("n_positive")
        tables["icu-survival"] = Table(
            ["model", "run", f"test C-index, seed {seed0} (95% CI)", f"test IBS, seed {seed0} (95% CI)",
             "train s", *([f"C-index mean (min-max), seeds {', '.join(map(str, args.seeds))}"]
                          if more else [])], surv_rows, cmd,
            [f"icu-survival: days from the 48 h landmark to in-hospital death, censored at discharge, "
             f"for stays alive and in hospital after day 2; seed {seed0}: test n = {s0[0]['c_index']['n']}"
             + (f" ({events} deaths)" if events is not None else "") + f"; Harrell's C and the "
             f"integrated Brier score with 95% bootstrap CIs ({args.n_boot} patient resamples). GRU-D: "
             "a Cox head on the sequence encoder; coxph: Cox regression on the aggregated features.",
             note])
    if conv:
        tables["conversion"] = Table(
            ["conversion (fresh process)", "stays", "events", "seconds", "peak RSS MB"],
            [[c["source"], str(c["stays"]), str(c["events"]), f"{c['seconds']:.1f}", f"{c['peak_mb']:.0f}"]
             for c in conv], cmd,
            ["`iatros data convert SOURCE PATH --out DIR` from scratch, each in a fresh process (the "
             "MIMIC-III demo and PhysioNet 2012 set A).", note])
    for key, table in tables.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("ehr", tables)

if __name__ == "__main__":
    main()
