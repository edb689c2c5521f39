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
# peak memory from VmHWM: ru_maxrss survives exec, so a child of a large process would report
# its parent's peak
CONVERT = """
import re, sys, time
from iatros.data.ehr import convert, get_source
t0 = time.perf_counter()
tables = convert(get_source(sys.argv[1]), sys.argv[2], sys.argv[3])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
print(tables.manifest["n_stays"], tables.manifest["n_events"], time.perf_counter() - t0,
      int(hwm.group(1)) / 1024)
"""


def _fmt(entry: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['value'] * scale:.{digits}f} ({lo * scale:.{digits}f}-{hi * scale:.{digits}f})"


def _seconds(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0f}"


def conversion(source: str, path: Path, out: Path | None = None, label: str | None = None) -> dict:
    """Convert from scratch in a fresh interpreter: stays, events, seconds, peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        line = subprocess.run([sys.executable, "-c", CONVERT, source, str(path), str(out or tmp)],
                              check=True, capture_output=True, text=True).stdout.split()
    return {"source": label or source, "stays": int(line[0]), "events": int(line[1]),
            "seconds": float(line[2]), "peak_mb": float(line[3])}


def conversions(root: Path, work: Path) -> list[dict]:
    """Every source from scratch, and the MEDS round trip of the largest (set A)."""
    rows = [conversion("mimic3", root / "mimic3_demo", label="mimic3 (MIMIC-III demo)"),
            conversion("eicu", root / "eicu_demo", label="eicu (eICU demo)"),
            conversion("fhir", root / "synthea_sample" / "fhir", label="fhir (5 Synthea bundles)"),
            conversion("omop", root / "omop_synthea27nj" / "Synthea27Nj_5.4.zip",
                       label="omop (Synthea27Nj CDM 5.4 zip)"),
            conversion("physionet2012", root / "physionet2012", work / "p12",
                       label="physionet2012 (set A)")]
    rows.append(conversion("meds", work / "p12", work / "p12-back",
                           label="meds (set A's MEDS copy read back)"))
    return rows


def selection(args: argparse.Namespace) -> Table:
    """`iatros train icu-mortality` with its default, `--model auto`: each candidate's CV score on
    train + val, the chosen one's test score."""
    from iatros import api

    out = Path(args.runs) / "icu-mortality-auto-s0" if args.runs else None
    if out is not None and (out / "model_selection.json").exists():
        run = out
    else:
        run = api.train("icu-mortality", data_root=args.data_root, seed=0, out=out, register=False,
                        select_folds=args.select_folds,
                        eval_options=api.EvalOptions(n_boot=args.n_boot, seed=0))
    table = json.loads((run / "model_selection.json").read_text())
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    rows = [[r["model"] + (" (chosen)" if r["model"] == table["chosen"] else ""),
             f"{100 * r['mean']:.1f} ({100 * r['sd']:.1f})" if r["mean"] is not None else "n/a",
             " / ".join(f"{100 * v:.1f}" for v in r["folds"]), f"{r['seconds']:.0f}",
             _fmt(test["auroc"], 100) if r["model"] == table["chosen"] else "-"]
            for r in table["candidates"]]
    return Table(
        ["candidate", f"CV AUROC, mean (SD) of {table['folds']} folds", "fold AUROCs", "CV seconds",
         "test AUROC (95% CI)"], rows, command_line(),
        [f"`iatros train icu-mortality --seed 0 --data-root {shown(args.data_root)}` (the default "
         f"model, auto): each candidate trained on {table['folds']} patient-level folds of train + "
         "val (the seed-0 split's 3,400 stays; test untouched), scored on the held-out fold; the best "
         "mean AUROC is trained on the usual split and scored on test once (n = "
         f"{test['auroc']['n']}). AUROC in %. grud is one network here (the table above averages 5).",
         timing_note()])


def _eicu_subset(src: Path, hospitals: set[str], out: Path) -> Path:
    """A copy of the eICU demo with only the stays of some hospitals (same file layout)."""
    import polars as pl

    out.mkdir(parents=True, exist_ok=True)
    patients = pl.read_csv(src / "patient.csv.gz", infer_schema=False)
    stays = patients.filter(pl.col("hospitalid").is_in(sorted(hospitals)))["patientunitstayid"]
    for path in sorted(src.glob("*.csv.gz")):
        frame = pl.read_csv(path, infer_schema=False)
        if "patientunitstayid" in frame.columns:
            frame = frame.filter(pl.col("patientunitstayid").is_in(stays.implode()))
        elif "hospitalid" in frame.columns:
            frame = frame.filter(pl.col("hospitalid").is_in(sorted(hospitals)))
        with __import__("gzip").open(out / path.name, "wb") as f:
            frame.write_csv(f)
    return out


def eicu_sites(args: argparse.Namespace, work: Path) -> Table:
    """Leave-hospital-group-out on the eICU demo: train on the other groups' hospitals (internal
    test split as usual), then `iatros evaluate RUN --data-root HELD_OUT` on the held-out group."""
    import polars as pl

    from iatros import api

    src = Path(args.data_root) / "eicu_demo"
    ids = sorted(pl.read_csv(src / "patient.csv.gz", infer_schema=False)["hospitalid"].unique())
    order = np.random.default_rng(0).permutation(len(ids))
    groups = [{ids[i] for i in order[k::args.site_groups]} for k in range(args.site_groups)]
    rows = []
    for k, held in enumerate(groups):
        train_root = work / f"g{k}-train"
        test_root = work / f"g{k}-test"
        _eicu_subset(src, set(ids) - held, train_root / "eicu_demo")
        _eicu_subset(src, held, test_root / "eicu_demo")
        out = Path(args.runs) / f"eicu-sites-g{k}-{args.site_model}" if args.runs else None
        if out is not None and (out / "metrics.json").exists():
            run = out
        else:
            run = api.train("eicu-mortality", data_root=train_root, model=args.site_model, seed=0,
                            out=out, register=False,
                            eval_options=api.EvalOptions(n_boot=args.n_boot))
        internal = json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]
        external = api.evaluate(run, data_root=test_root,
                                eval_options=api.EvalOptions(n_boot=args.n_boot))
        auroc = external["splits"]["all"]["auroc"]
        rows.append([str(k + 1), str(len(held)), str(internal["n"]), _fmt(internal, 100),
                     f"{auroc['n']} ({auroc.get('n_positive')})", _fmt(auroc, 100)])
        print(f"# eicu group {k + 1}: internal {_fmt(internal, 100)} external {_fmt(auroc, 100)}",
              flush=True)
    return Table(
        ["held-out group", "hospitals", "internal test n", "internal test AUROC (95% CI)",
         "external n (deaths)", "external AUROC (95% CI)"], rows, command_line(),
        [f"eICU demo (186 hospitals), `eicu-mortality` with `--model {args.site_model}`: hospitals "
         f"split at random (seed 0) into {args.site_groups} groups; each row trains on the other "
         "groups' hospitals (patient-level split inside them: internal test) and scores every stay "
         "of the held-out hospitals with `iatros evaluate RUN --data-root HELD_OUT`. AUROC in %, "
         f"95% bootstrap CIs ({args.n_boot} resamples).", timing_note()])


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
    parser.add_argument("--parts", nargs="*", default=["models", "conversion"],
                        choices=["models", "conversion", "selection", "eicu-sites"],
                        help="which tables to (re)make; others in ehr.json are kept")
    parser.add_argument("--select-folds", type=int, default=5)
    parser.add_argument("--site-groups", type=int, default=5)
    parser.add_argument("--site-model", default="gbm")
    args = parser.parse_args()
    if args.no_conversion and "conversion" in args.parts:
        args.parts.remove("conversion")
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    root = Path(args.data_root)
    work = Path(tempfile.mkdtemp(prefix="iatros-bench-ehr-"))
    tables: dict[str, Table] = {}
    if "selection" in args.parts:
        tables["selection"] = selection(args)
    if "eicu-sites" in args.parts:
        tables["eicu-sites"] = eicu_sites(args, work / "sites")
    conv = conversions(root, work) if "conversion" in args.parts else []
    if "models" not in args.parts:
        args.models, args.survival_models, args.seeds = [], [], []
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
    cmd = command_line()
    if rows:
        tables.update(model_tables(rows, surv, args, cmd, note))
    if conv:
        tables["conversion"] = Table(
            ["conversion (fresh process)", "stays", "events", "seconds", "peak RSS MB"],
            [[c["source"], str(c["stays"]), str(c["events"]), f"{c['seconds']:.1f}", f"{c['peak_mb']:.0f}"]
             for c in conv], cmd,
            ["`iatros data convert SOURCE PATH --out DIR` from scratch, each in a fresh process; the "
             "time includes writing the MEDS copy (data/, metadata/) beside iatros' tables. The meds "
             "row reads set A's converted folder back as a MEDS dataset.", note])
    for key, table in tables.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("ehr", tables)


def model_tables(rows: list[dict], surv: list[dict], args: argparse.Namespace, cmd: str,
                 note: str) -> dict[str, Table]:
    """The mortality, seeds and icu-survival tables."""
    seed0 = args.seeds[0]
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
    return tables

if __name__ == "__main__":
    main()
