"""ICU mortality benchmark on PhysioNet 2012 set A, beside published figures.

Every model trains on the same patient-level split of set A (70/15/15, stratified on the outcome,
seed 0 unless --seed): early stopping and calibration on validation, scores on test. AUROC and
AUPRC with 95% bootstrap CIs (patients resampled), ECE after calibration. The published figures
are the papers' own (set A, their splits; most report means over 5 splits), so they are context,
not a paired comparison. Also prints conversion time and peak memory for the MIMIC-III demo and
set A, each converted from scratch in a fresh process.

    python benchmarks/ehr.py --data-root ../shared/data [--models grud gbm ...] [--ensemble 5]
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

import numpy as np

PUBLISHED = (  # (model, AUROC, AUPRC) on PhysioNet 2012 in-hospital mortality
    ("GRU-D (Che et al. 2018; as reported by Raindrop)", 81.9, 46.1),
    ("Raindrop (Zhang et al. 2022)", 82.8, 44.0),
    ("mTAND (Shukla & Marlin 2021)", 84.2, 48.2),
    ("ViTST (Li et al. 2023)", 85.1, 51.1),
    ("Warpformer (Zhang et al. 2023)", 86.5, 54.3),
)
MODELS = ("gbm", "gbm-bag", "logreg", "logreg-cv", "grud", "event-transformer")
CONVERT = """
import resource, sys, time
from iatros.data.ehr import convert, get_source
t0 = time.perf_counter()
tables = convert(get_source(sys.argv[1]), sys.argv[2], sys.argv[3])
print(tables.manifest["n_stays"], tables.manifest["n_events"], time.perf_counter() - t0,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _fmt(entry: dict | None, scale: float = 1.0) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['value'] * scale:.1f} ({lo * scale:.1f}-{hi * scale:.1f})"


def _seconds(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0f}"


def conversion(source: str, path: Path) -> dict:
    """Convert from scratch in a fresh interpreter: stays, events, seconds, peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as out:
        line = subprocess.run([sys.executable, "-c", CONVERT, source, str(path), out],
                              check=True, capture_output=True, text=True).stdout.split()
    return {"source": source, "stays": int(line[0]), "events": int(line[1]),
            "seconds": float(line[2]), "peak_mb": float(line[3])}


def train(model: str, args: argparse.Namespace, ensemble: int) -> dict:
    from iatros import api

    t0 = time.perf_counter()
    members = ensemble if model == "grud" else 1
    tag = f"-e{members}" if members > 1 else ""
    out = Path(args.runs) / f"icu-mortality-{model}{tag}-s{args.seed}" if args.runs else None
    reused = out is not None and (out / "metrics.json").exists()
    if reused:
        run = out
    else:
        run = api.train("icu-mortality", data_root=args.data_root, model=model, seed=args.seed,
                        out=out, register=False, ensemble=members,
                        eval_options=api.EvalOptions(n_boot=args.n_boot, seed=args.seed))
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    return {"model": model + (f" ({members} members)" if members > 1 else ""), "name": model,
            "run": str(run), "auroc": test["auroc"], "auprc": test["auprc"],
            "ece": test.get("ece"),
            "seconds": (json.loads((run / "status.json").read_text()).get("train_seconds", float("nan"))
                        if reused else time.perf_counter() - t0)}


def averaged(rows: list[dict], names: list[str], args: argparse.Namespace) -> dict:
    """Mean of the calibrated test probabilities of several runs, scored like a single run."""
    import pandas as pd

    from iatros.evaluate.metrics import evaluate

    frames = [pd.read_csv(Path(r["run"]) / "predictions.csv") for r in rows if r["name"] in names]
    tests = [f[f["split"] == "test"].reset_index(drop=True) for f in frames]
    prob = np.mean([t["prob"].to_numpy() for t in tests], axis=0)
    scores = evaluate(tests[0]["target"].to_numpy(), prob, "binary",
                                  metrics=("auroc", "auprc", "ece"), n_boot=args.n_boot,
                                  seed=args.seed, clusters=tests[0]["patient_id"].astype(str).to_numpy())
    return {"model": " + ".join(names) + " (mean prob.)", "auroc": scores["auroc"],
            "auprc": scores["auprc"], "ece": scores.get("ece"), "seconds": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--ensemble", type=int, default=5, help="GRU-D members (seeds) averaged")
    parser.add_argument("--average", nargs="*", default=["grud", "gbm-bag"],
                        help="also score the mean probability of these models (chosen before "
                             "looking at test: one sequence model, one on aggregated features)")
    parser.add_argument("--runs", help="keep run folders here (and reuse finished ones)")
    parser.add_argument("--no-conversion", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    root = Path(args.data_root)
    conv = [] if args.no_conversion else [conversion("mimic3", root / "mimic3_demo"),
                                          conversion("physionet2012", root / "physionet2012")]
    rows = []
    for model in args.models:
        rows.append(train(model, args, args.ensemble))
        r = rows[-1]
        print(f"# {model}: AUROC {_fmt(r['auroc'], 100)} AUPRC {_fmt(r['auprc'], 100)} "
              f"({r['seconds']:.0f} s)", flush=True)
    chosen = [m for m in args.average if m in args.models]
    if len(chosen) >= 2:
        rows.append(averaged(rows, chosen, args))
    n = rows[0]["auroc"]["n"]
    pos = rows[0]["auroc"].get("n_positive")
    print(f"\nPhysioNet 2012 set A, in-hospital death from the first 48 h. Patient-level split "
          f"70/15/15 stratified, seed {args.seed}; test n = {n} ({pos} deaths). 95% bootstrap CIs "
          f"({args.n_boot} patient resamples); ECE after Platt calibration on validation. "
          f"{os.cpu_count()} CPU cores.\n")
    print("| model | test AUROC (95% CI) | test AUPRC (95% CI) | ECE | train s |")
    print("|---|---|---|---|---|")
    for r in rows:
        ece = r["ece"]["value"] if r.get("ece") else float("nan")
        print(f"| iatros {r['model']} | {_fmt(r['auroc'], 100)} | {_fmt(r['auprc'], 100)} | "
              f"{ece:.3f} | {_seconds(r['seconds'])} |")
    for name, auroc, auprc in PUBLISHED:
        print(f"| {name} (published) | {auroc:.1f} | {auprc:.1f} | - | - |")
    if conv:
        print("\n| conversion (fresh process) | stays | events | seconds | peak RSS MB |")
        print("|---|---|---|---|---|")
        for c in conv:
            print(f"| {c['source']} | {c['stays']} | {c['events']} | {c['seconds']:.1f} | "
                  f"{c['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
