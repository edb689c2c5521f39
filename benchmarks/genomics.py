"""Genomics: TCGA-BRCA PAM50 subtype (Basal / Her2 / LumA) from mRNA, miRNA and protein, each
fusion mode of `omics-fusion` against each single omic and the concatenation baselines (`--part
tcga`); GDSC drug response per drug, our network against the per-drug elastic net on held-out
cell lines and held-out drugs (`--part gdsc`); GSE7390 time to distant metastasis, expression and
clinical variables fused against today's flat survival models (`--part gse7390`).

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

GDSC (v17 via gdsctools, 988 cell lines x 265 drugs, log IC50): `gdsc-drug-response` holds out
15% of the cell lines (every pair of a held-out line is in test), `gdsc-drug-response-new-drugs`
15% of the drugs. Per drug, the Spearman and Pearson correlation of predicted and measured log
IC50 over its test lines; the table gives their median over drugs (mean ± SD over seeds, which
change the held-out lines or drugs), the first seed's IQR and the median's 95% CI (drugs
resampled), the pooled RMSE, and, paired by drug and seed, how often the network's Spearman
beats the elastic net's with a Wilcoxon signed-rank test over all (drug, seed) pairs. Both
models run with their defaults (network: early stopping on validation RMSE; elastic net: penalty
by 3-fold CV within each drug's training lines).

GSE7390 (198 patients, 76 genes, age, size, ER, grade): `survival-gse7390-omics` gives the genes
and the clinical variables to `omics-fusion` as two omics under a Cox head; the flat models of
`survival-gse7390` see them as one table. Same patients and splits per seed (5 seeds: 30 test
patients each, so single-split CIs are wide).

    python benchmarks/genomics.py --data-root ../shared/data --work /tmp/genbench [--part gdsc]
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
PARTS = ("tcga", "gdsc", "gse7390")
GDSC_TASKS = (("held-out cell lines", "gdsc-drug-response"),
              ("held-out drugs", "gdsc-drug-response-new-drugs"))
GDSC_MODELS = ("drug-response-net", "drug-mixed", "drug-enet")
GDSC_TABLES = {"lines": "gdsc_lines", "drugs": "gdsc_drugs"}
# (label, task, model, params)
GSE_ROWS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("fusion (attention): genes + clinical", "survival-gse7390-omics", "omics-fusion", {}),
    ("fusion (concat): genes + clinical", "survival-gse7390-omics", "omics-fusion",
     {"fusion": "concat"}),
    ("flat: Cox PH", "survival-gse7390", "coxph", {}),
    ("flat: DeepSurv", "survival-gse7390", "deepsurv", {}),
    ("flat: random survival forest", "survival-gse7390", "rsf", {}),
)
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
    from iatros.tasks.omics import tcga_subtype_task

    out = Path(args.work) / f"{model}-{'+'.join(omics)}-{params.get('fusion', 'default')}-s{seed}"
    run, seconds = _train(tcga_subtype_task(omics), model, seed, params, out, args)
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


def _train(task: Any, model: str, seed: int, params: dict[str, Any] | None, out: Path,
           args: argparse.Namespace) -> tuple[Path, float]:
    from iatros import api

    t0 = time.perf_counter()
    run = api.train(task, data_root=args.data_root, model=model, seed=seed, params=params or None,
                    out=out, register=False, progress=False,
                    eval_options=api.EvalOptions(n_boot=args.n_boot, seed=seed))
    return run, time.perf_counter() - t0


def _mean_sd(values: list[float]) -> str:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {sd:.3f}"


def tcga(args: argparse.Namespace) -> dict[str, Table]:
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
    return {"tcga_brca": Table(["model", "zoo name", "omics in training", "accuracy",
                                "balanced accuracy", "macro-F1", "macro AUROC", "s per run"],
                               rows, command_line(), notes)}


def gdsc_run(task: str, model: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One GDSC run (a complete run folder from an earlier call is reused, its seconds read from
    its status): per-drug test correlations from its predictions, and the pooled RMSE."""
    from datetime import datetime

    from iatros.pipeline.drug_response import per_group_correlations
    from iatros.pipeline.options import EvalOptions
    from iatros.run_folder import RunFolder

    out = Path(args.work) / f"{task}-{model}-s{seed}"
    if not (out.is_dir() and RunFolder(out).is_complete):
        _train(task, model, seed, None, out, args)
    status = json.loads((out / "status.json").read_text())
    seconds = (datetime.fromisoformat(status["finished"])
               - datetime.fromisoformat(status["started"])).total_seconds()
    test = per_group_correlations(RunFolder(out).predictions(), "drug", "test",
                                  EvalOptions(n_boot=args.n_boot, seed=seed))
    metrics = json.loads((out / "metrics.json").read_text())
    return {"task": task, "model": model, "seed": seed, "seconds": seconds,
            "spearman": test["spearman"], "pearson": test["pearson"],
            "constant": test["constant_prediction"], "n_drugs": test["n_groups"],
            "by_drug": {g["drug"]: g["spearman"]["value"] for g in test["groups"]
                        if g.get("spearman")},
            "rmse": metrics["splits"]["test"]["rmse"]}


def _distribution_cell(runs: list[dict[str, Any]], name: str) -> str:
    first = runs[0][name]
    iqr, ci = first.get("iqr") or [np.nan, np.nan], first.get("median_ci95") or [np.nan] * 2
    return (f"{_mean_sd([r[name]['median'] for r in runs])} (IQR {iqr[0]:.3f} to {iqr[1]:.3f}; "
            f"CI {ci[0]:.3f}-{ci[1]:.3f})")


def _paired(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    """How often our per-drug Spearman beats theirs, paired by (seed, drug); Wilcoxon p."""
    from scipy.stats import wilcoxon

    a, b = [], []
    for mine, other in zip(ours, theirs, strict=True):
        for drug in sorted(mine["by_drug"].keys() & other["by_drug"].keys()):
            a.append(mine["by_drug"][drug])
            b.append(other["by_drug"][drug])
    if not a:
        return "n/a"
    wins = float(np.mean(np.array(a) > np.array(b)))
    p = wilcoxon(a, b).pvalue
    return f"{wins:.0%} of {len(a)} (p = {p:.2g})"


def gdsc(args: argparse.Namespace) -> dict[str, Table]:
    """One table per held-out split (`--gdsc-held-out` picks which run)."""
    chosen = GDSC_TABLES if args.gdsc_held_out == "both" else {
        args.gdsc_held_out: GDSC_TABLES[args.gdsc_held_out]}
    tables = {}
    for (split_label, task), key in zip(GDSC_TASKS, GDSC_TABLES, strict=True):
        if key in chosen:
            tables[GDSC_TABLES[key]] = gdsc_table(split_label, task, args)
    return tables


def gdsc_table(split_label: str, task: str, args: argparse.Namespace) -> Table:
    rows = []
    runs = {model: [gdsc_run(task, model, seed, args) for seed in args.seeds]
            for model in GDSC_MODELS}
    for model in GDSC_MODELS:
        found = runs[model]
        versus = (_paired(found, runs["drug-enet"]) if model != "drug-enet" else "-")
        rows.append([split_label, model, _distribution_cell(found, "spearman"),
                     _distribution_cell(found, "pearson"),
                     _mean_sd([r["rmse"]["value"] for r in found]), versus,
                     f"{found[0]['n_drugs']} ({found[0]['constant']})",
                     f"{np.mean([r['seconds'] for r in found]):.0f}"])
        print(f"# {split_label} {model}: median Spearman "
              f"{_distribution_cell(found, 'spearman')}", flush=True)
    notes = [f"GDSC v17 (gdsctools), 213,787 measured (cell line, drug) pairs, 988 lines, 265 "
             f"drugs, 705 binary features per line. Median over test drugs of the per-drug "
             f"correlation (a drug needs 5 test lines), mean ± SD over seeds "
             f"{', '.join(map(str, args.seeds))}; IQR and the median's 95% CI (1000 resamples "
             f"of drugs) of seed {args.seeds[0]}. 'Spearman above the elastic net': share of "
             f"(seed, drug) pairs where the model's Spearman is higher than drug-enet's, "
             f"Wilcoxon signed-rank p. A drug the model predicts as one value for all its lines "
             f"counts as 0 (their number in brackets after the test drugs of seed "
             f"{args.seeds[0]}). Held-out drugs have no structure in the data: the models rank "
             f"their lines by what sensitises lines to drugs in general. Seconds: the whole run "
             f"(load, train, evaluate, report), from its status.json.", timing_note()]
    return Table(["held out", "zoo name", "per-drug Spearman, median",
                  "per-drug Pearson, median", "pooled RMSE (log IC50)",
                  "Spearman above the elastic net", "test drugs (constant)", "s per run"],
                 rows, command_line(), notes)


def gse7390(args: argparse.Namespace) -> dict[str, Table]:
    rows = []
    for label, task, model, params in GSE_ROWS:
        runs = []
        for seed in args.gse_seeds:
            name = f"{task}-{model}-{params.get('fusion', 'default')}-s{seed}"
            run, seconds = _train(task, model, seed, params, Path(args.work) / name, args)
            test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
            runs.append({"c_index": test["c_index"], "seconds": seconds})
        rows.append([label, task, model, _cell(runs, "c_index"), str(runs[0]["c_index"]["n"]),
                     f"{np.mean([r['seconds'] for r in runs]):.0f}"])
        print(f"# {label}: C-index {_cell(runs, 'c_index')}", flush=True)
    notes = [f"Test C-index (Harrell), mean ± SD over seeds {', '.join(map(str, args.gse_seeds))} "
             f"(each a different patient split, the same for every row), then seed "
             f"{args.gse_seeds[0]}'s 95% bootstrap CI ({args.n_boot} resamples). Every model "
             f"with its defaults; the networks stop early on validation C-index.", timing_note()]
    return {"gse7390": Table(["model", "task", "zoo name", "test C-index", "n test",
                              "s per run"], rows, command_line(), notes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "iatros-genbench"))
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all",
                        help="which benchmark to run (each writes its own table)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--gse-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--gdsc-held-out", choices=(*GDSC_TABLES, "both"), default="both",
                        help="GDSC: held-out cell lines, held-out drugs or both (one table each)")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-genbench-"))
    args.data_root = str(Path(args.data_root).resolve())
    parts = PARTS if args.part == "all" else (args.part,)
    for part in parts:
        tables = {"tcga": tcga, "gdsc": gdsc, "gse7390": gse7390}[part](args)
        for table in tables.values():
            print(table.markdown())
        write_tables("genomics", tables)
    print(f"run folders: {shown(args.work)}")


if __name__ == "__main__":
    main()
