"""R-peak detection on MIT-BIH Arrhythmia records, every neurokit2 detector that runs here, beside
published figures.

Records: the 26 annotated records in DATA_ROOT/mitbih_arrhythmia/mitdb/ (the 22 of de Chazal et al.
2004's training set DS1 and the 4 paced records 102, 104, 107, 217) and record 100
(record100_wfdb/): 27 records, 30 minutes each at 360 Hz. Each detector runs on the first channel
(MLII) at the native rate through `iatros signals rpeaks` (iatros.api.signals.rpeaks); its
detections are matched one-to-one to the cardiologists' beat annotations (.atr) within 150 ms
(ANSI/AAMI EC57), the whole record scored. Se and +P are gross statistics: TP, FN and FP summed
over the records. A detector that fails, or takes more than --max-seconds on record 100, is left
out and named in the notes. The table goes to benchmarks/results/signals.json.

    python benchmarks/signals.py --data-root ../shared/data [--methods neurokit pantompkins1985]
    python benchmarks/signals.py --table af --data-root ../shared/data   # af-ecg models
    python benchmarks/signals.py --table beats --data-root ../shared/data   # mitbih-beats models
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from readme_tables import Table, command_line, shown, timing_note, write_tables

TARGET = 0.995
# names iatros offers that run the same neurokit2 detector as another name in the list
ALIASES = {"asi": "rodrigues2021"}
# neurokit2 detectors iatros's processing module does not offer (so `iatros signals` cannot run them)
NOT_OFFERED = "gamboa2008, slopesumfunction, khamis2016, emrich2023 (needs ts2vg, not installed)"
# method -> (published figure on MIT-BIH, source as published); only figures checked against the
# paper's own abstract; "-" where none is given here.
PUBLISHED: dict[str, tuple[str, str]] = {
    "pantompkins1985": ("99.3% of QRS complexes correctly detected",
                        "Pan & Tompkins, IEEE Trans Biomed Eng 32(3):230-236 (1985), abstract: \"for the "
                        "standard 24 h MIT/BIH arrhythmia database, this algorithm correctly detects 99.3 "
                        "percent of the QRS complexes\" (not split into Se and +P there)"),
    "christov2004": ("Se 99.74, +P 99.65",
                     "Christov, BioMed Eng OnLine 3:28 (2004), abstract, Algorithm 2 (Se 99.74%, "
                     "\"specificity\" Sp 99.65%, which is TP/(TP+FP)); all 48 full-length records, "
                     "tested by an independent expert; the algorithm takes one or more leads"),
    "martinez2004": ("Se and +P over 99.8",
                     "Martinez et al., IEEE Trans Biomed Eng 51(4):570-581 (2004), abstract: Se and "
                     "P+ over 99.8% on the MIT-BIH Arrhythmia Database"),
}


def records(root: Path) -> list[Path]:
    """The 27 annotated records: mitdb/ (DS1 + paced) and record100_wfdb/."""
    base = root / "mitbih_arrhythmia"
    found = sorted(h for h in (base / "mitdb").glob("*.hea") if h.with_suffix(".atr").is_file())
    found += sorted(h for h in (base / "record100_wfdb").glob("*.hea") if h.with_suffix(".atr").is_file())
    if not found:
        sys.exit(f"no annotated MIT-BIH records under {base} (expected mitdb/*.hea with .atr)")
    return found


class _Slow(Exception):
    """A detector ran past the time allowed on the probe record."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Slow


def screen(methods: list[str], probe: Path, max_seconds: float) -> tuple[list[str], dict[str, str]]:
    """Run each detector on one record; keep those that work within `max_seconds`, say why others not."""
    from iatros.api.signals import rpeaks

    kept, dropped = [], {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    for method in methods:
        start = time.perf_counter()
        signal.alarm(int(max_seconds) + 1)
        try:
            (row,) = rpeaks([probe], methods=[method])
        except _Slow:
            dropped[method] = f"stopped after {max_seconds:.0f} s on record {probe.stem}"
            continue
        finally:
            signal.alarm(0)
        if "error" in row:
            dropped[method] = f"fails on record {probe.stem}: {row['error'].split(': ', 1)[-1]}"
        elif row["seconds"] > max_seconds:
            dropped[method] = f"{row['seconds']:.0f} s on record {probe.stem}"
        else:
            kept.append(method)
        print(f"screen {method}: {dropped.get(method, 'ok')} ({time.perf_counter() - start:.1f} s)",
              file=sys.stderr, flush=True)
    signal.signal(signal.SIGALRM, previous)
    return kept, dropped


def _pct(value: float | None) -> str:
    """A ratio in percent with two decimals."""
    return "-" if value is None else f"{100 * value:.2f}"


def _worst(rows: list[dict]) -> str:
    """The record with the lowest min(Se, +P), as `record: Se / +P`."""
    row = min(rows, key=lambda r: min(r["sensitivity"] or 0.0, r["positive_predictivity"] or 0.0))
    return f"{row['record']}: {_pct(row['sensitivity'])} / {_pct(row['positive_predictivity'])}"


def table_rows(results: list[dict], totals: list[dict], n_records: int) -> list[list[str]]:
    """One row per method: counts, pooled Se and +P, worst record, seconds per record, published."""
    rows = []
    for total in totals:
        mine = [r for r in results if r.get("method") == total["method"] and "error" not in r]
        published = PUBLISHED.get(total["method"], ("-", ""))[0]
        met = total["sensitivity"] >= TARGET and total["positive_predictivity"] >= TARGET
        rows.append([f"`{total['method']}`", f"{total['records']} of {n_records}", str(total["beats"]),
                     str(total["tp"]), str(total["fn"]), str(total["fp"]),
                     f"**{_pct(total['sensitivity'])}**", f"**{_pct(total['positive_predictivity'])}**",
                     "yes" if met else "no", _worst(mine), f"{total['seconds'] / len(mine):.2f}",
                     published])
    return rows


def overdetection(results: list[dict]) -> list[str]:
    """A line per method that finds more than twice as many peaks as there are beats on some records."""
    lines = []
    methods = dict.fromkeys(r["method"] for r in results if "error" not in r)
    for method in methods:
        rows = [r for r in results if r.get("method") == method and "error" not in r]
        over = [r for r in rows if r["detected"] > 2 * r["beats"]]
        if over:
            shown = ", ".join(f"{r['record']}: {r['detected']} for {r['beats']}" for r in over[:4])
            lines.append(f"`{method}` finds more than twice as many peaks as there are beats on "
                         f"{len(over)} of {len(rows)} records ({shown}{', ...' if len(over) > 4 else ''}), "
                         "which is where its false positives come from.")
    return lines


def _unscored(results: list[dict], key: str, method: str = "neurokit") -> int:
    return sum(r.get(key, 0) for r in results if r.get("method") == method)


def notes(args: argparse.Namespace, heads: list[Path], results: list[dict], dropped: dict[str, str],
          totals: list[dict]) -> list[str]:
    """What was scored and how, what was left out and why, the published figures' sources, timings."""
    beats = totals[0]["beats"] if totals else 0
    failed = sorted({f"{r['record']} ({r.get('method') or 'all methods'})" for r in results if "error" in r})
    met = [t["method"] for t in totals
           if t["sensitivity"] >= TARGET and t["positive_predictivity"] >= TARGET]
    lines = [
        f"Records: the 26 annotated records in mitbih_arrhythmia/mitdb/ (the 22 of DS1, de Chazal et al. "
        f"2004, and the 4 paced records 102, 104, 107, 217) plus record 100 (record100_wfdb/): {len(heads)} "
        f"records, {beats} reference beats. Channel 0 (MLII) at 360 Hz; reference beats are the .atr "
        "annotations with a beat symbol (N L R B A a J S V r F e j n E / f Q ?); rhythm, noise, "
        "non-conducted P (x) and ventricular flutter wave (!) annotations are not beats. "
        + ("Ventricular flutter / fibrillation episodes (record 207's, from [ to ]) are scored too "
           "(--score-vf): detections in them count as FP."
           if args.score_vf else
           f"As EC57 and PhysioNet's bxb prescribe, ventricular flutter / fibrillation episodes "
           f"(from [ to ], record 207) are not scored: {_unscored(results, 'unscored_beats')} "
           f"reference beats and each method's unpaired detections inside them left out "
           f"(neurokit: {_unscored(results, 'unscored_detections')}); --score-vf scores them."),
        f"Matching: a detection within {args.tolerance * 1000:.0f} ms of a reference beat is a TP, "
        "one-to-one, closest pairs first (ANSI/AAMI EC57's window); the whole record is scored (no "
        "learning period or edge seconds left out). Se = TP/(TP+FN), +P = TP/(TP+FP), in %, pooled as "
        "gross statistics (TP, FN, FP summed over the records); worst record: lowest min(Se, +P). "
        "Seconds: detection only (reading the record not included), mean per 30-minute record.",
        f"Target: Se and +P >= {100 * TARGET:.1f}% pooled; met by {', '.join(met) or 'none'}.",
    ]
    aliases = ", ".join(f"`{a}` (the same detector as `{m}`)" for a, m in ALIASES.items())
    lines.append(f"Every R-peak method iatros offers (iatros.data.signals.processing.RPEAK_METHODS) was "
                 f"tried, except {aliases}; each runs on the signal cleaned by its own neurokit2 "
                 f"cleaning where it has one, else neurokit's. neurokit2 also has {NOT_OFFERED}, "
                 "which iatros does not offer.")
    if any(r.get("method") == "searchback" for r in results):
        lines.append("`searchback` is `manikandan2012` with RR gaps over 1.66 x the mean of the last 8 "
                     "intervals searched again by `neurokit` (Pan & Tompkins 1985's rule, 200 ms "
                     "refractory; constants theirs, not fitted here); added after seeing where "
                     "`manikandan2012` misses on these records, so held-back records are its real test.")
    lines += overdetection(results)
    if dropped:
        lines.append("Left out: " + "; ".join(f"`{m}` ({why})" for m, why in dropped.items()) + ".")
    if failed:
        lines.append("Not scored (error): " + ", ".join(failed) + ".")
    lines.append("Published figures are the authors' own implementations on the MIT-BIH Arrhythmia "
                 "Database (Pan & Tompkins and Christov: all 48 records; this table has 27, the DS2 "
                 "records' annotations are not in the data except 100's), so they "
                 "are context, not a paired comparison; neurokit2's detectors are re-implementations. "
                 "Sources: " + "; ".join(f"`{m}`: {src}" for m, (_, src) in PUBLISHED.items()) + ". "
                 "Other detectors: no figure given here (\"-\").")
    lines.append(timing_note())
    return lines


# ---------------------------------------------------------------- af-ecg (PhysioNet/CinC 2017)

AF_MODELS = ("resnet1d", "hrv-gbm")
AF_TARGET = 0.80
AF_PUBLISHED = ("Clifford et al., \"AF Classification from a Short Single Lead ECG Recording: the "
                "PhysioNet/Computing in Cardiology Challenge 2017\", Computing in Cardiology 44 "
                "(2017): the top entries scored F1 0.83 (mean of Normal, AF and Other F1) on the "
                "hidden test set of 3,658 recordings, trained on all 8,528 training recordings")


def af_run_one(model: str, data_root: str, seed: int, n_boot: int, reuse: str | None = None,
               folds: int = 0) -> dict:
    """Train `iatros train af-ecg --model MODEL [--cv FOLDS]` in this process (or read a run
    folder it trained)."""
    import json
    import resource
    import tempfile

    import numpy as np
    import pandas as pd

    from iatros import api
    from iatros.evaluate import metrics as M
    from iatros.tasks.signals import AF_CLASSES

    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    timing = timing_note()
    if reuse:
        run = Path(reuse)
    else:
        run = api.train("af-ecg", data_root=data_root, model=model, seed=seed,
                        out=Path(tempfile.mkdtemp()) / "run", progress=False, register=False,
                        eval_options=api.EvalOptions(n_boot=n_boot, seed=seed),
                        cv=folds if folds > 1 else None)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    status = json.loads((run / "status.json").read_text())
    test = pd.read_csv(run / "predictions.csv").query("split == 'test'")
    y = test["target"].to_numpy(int)
    probs = test[[f"prob_{k}" for k in range(len(AF_CLASSES))]].to_numpy(float)
    pred = probs.argmax(axis=1)
    truth, hit = np.eye(len(AF_CLASSES))[y], np.eye(len(AF_CLASSES))[pred]
    point = 2 * (truth * hit).sum(0) / (truth.sum(0) + hit.sum(0))
    boots = [2 * (w @ (truth * hit)) / (w @ truth + w @ hit)
             for w in M.bootstrap_weights(len(y), n_boot, seed=seed)]
    lo, hi = np.nanpercentile(np.vstack(boots), [2.5, 97.5], axis=0)
    log = pd.read_csv(run / "train_log.csv") if (run / "train_log.csv").is_file() else None
    cv = (json.loads((run / "cross_validation.json").read_text())
          if (run / "cross_validation.json").is_file() else None)
    return {
        "cv": None if cv is None else {"folds": cv["folds"], "n": cv["n"],
                                       "challenge_f1": cv["pooled"]["challenge_f1"],
                                       "auroc": cv["pooled"]["auroc"],
                                       "fold_values": cv["fold_values"], "seconds": cv["seconds"]},
        "model": model, "seed": seed, "test": metrics["splits"]["test"],
        "per_class_f1": {c: {"value": float(point[k]), "ci95": [float(lo[k]), float(hi[k])]}
                         for k, c in enumerate(AF_CLASSES)},
        "splits": config["data"]["splits"], "loader": config["data"]["loader"],
        "train_seconds": status.get("train_seconds"),
        "epochs_run": None if log is None else int(log["epoch"].max()),
        "best_epoch": None if log is None else int(log.loc[log.val_metric.idxmax(), "epoch"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "run": str(run), "timing": timing,
    }


def _entry(e: dict) -> str:
    lo, hi = e.get("ci95") or (None, None)
    return "-" if e.get("value") is None else (
        f"{e['value']:.3f} ({lo:.3f}-{hi:.3f})" if lo is not None else f"{e['value']:.3f}")


def af_table(results: list[dict], command: str) -> Table:
    """One row per model beside the published challenge figure."""
    from iatros.data.transforms.signals import RHYTHM_FEATURES
    from iatros.tasks.signals import AF_CLASSES

    columns = ["model", "test n", "challenge F1 (95% CI)", *(f"F1 {c}" for c in AF_CLASSES),
               "macro AUROC", "CV challenge F1, out-of-fold (95% CI)", "epochs (best)", "train s",
               "peak MB"]
    rows = []
    for r in results:
        t = r["test"]
        epochs = "-" if r["epochs_run"] is None else f"{r['epochs_run']} ({r['best_epoch']})"
        rows.append([f"`{r['model']}`", str(t["challenge_f1"]["n"]),
                     f"**{_entry(t['challenge_f1'])}**",
                     *(_entry(r["per_class_f1"][c]) for c in AF_CLASSES), _entry(t["auroc"]),
                     (f"{_entry(r['cv']['challenge_f1'])}, {r['cv']['folds']} folds, n={r['cv']['n']}"
                      if r.get("cv") else "not run"),
                     epochs, f"{r['train_seconds']:.0f}", f"{r['peak_rss_mb']:.0f}"])
    rows.append(["published: challenge top entries", "3,658 (hidden test)", "0.83", "-", "-", "-",
                 "-", "-", "-", "-", "-", "-"])
    split = results[0]["splits"] if results else {}
    counts = "; ".join(
        f"{name} {part.get('rows')} (" + ", ".join(
            f"{c} {n}" for c, n in zip(AF_CLASSES, part.get("class_counts", []), strict=False)) + ")"
        for name, part in split.items())
    loaded = results[0]["loader"].split(": ", 1)[-1] if results else ""
    cnn = next((r["test"]["challenge_f1"] for r in results if r["model"] == "resnet1d"), None)
    gbm = next((r["test"]["challenge_f1"] for r in results if r["model"] == "hrv-gbm"), None)
    target = ("" if cnn is None else
              f"Target: challenge F1 >= {AF_TARGET:.2f} with `resnet1d`: "
              f"{'met' if cnn['value'] >= AF_TARGET else 'not met'} ({_entry(cnn)})" +
              ("" if gbm is None else
               f"; at or above `hrv-gbm` ({_entry(gbm)}): "
               f"{'yes' if cnn['value'] >= gbm['value'] else 'no'}") + ".")
    notes = [
        f"Data: {loaded}. The 3,000 of the 8,528 challenge "
        "training recordings that are in DATA_ROOT/physionet2017_af (training2017/ and "
        "validation/), split 70/15/15 stratified by class, one recording per patient (the "
        f"challenge publishes no patient ids), seed {results[0]['seed'] if results else 0}: {counts}.",
        "Challenge F1: the mean of the Normal, AF and Other F1 (the challenge's score; Noisy "
        "predictions count against the others but Noisy F1 is not a term), on the argmax class. "
        "95% CIs: 1000 bootstrap resamples of the test recordings (per-class F1 the same way).",
        "Models: `resnet1d` (width 32, cross-entropy weighted by sqrt(largest class / class), both "
        "chosen on validation challenge F1: 0.818, against 0.811 at width 16 and 0.788 unweighted) "
        "sees the first 30 s (a random 30 s window when training, amplitude x U(0.8, 1.2)), "
        "standardised per recording; the epoch is chosen on validation challenge F1. "
        f"`hrv-gbm`: {len(RHYTHM_FEATURES)} rhythm features of the whole recording (R-peaks by "
        "neurokit2 through iatros.data.signals.processing; RR statistics, RR irregularity and "
        "sample entropy, heart "
        "rate, beat-template agreement) into histogram gradient boosting.",
        f"Published: {AF_PUBLISHED}. Ours is a split of 3,000 training recordings (about a "
        "third of the training data, a test set of 450), so it is not comparable one to one.",
        "CV: `--cv K` trains the model K more times on folds of the 2,550 train + val recordings "
        "(test untouched) and scores every one of them once, by the fold model that did not see "
        "it (CIs: bootstrap of recordings). Not run for a model whose one training takes about "
        "half an hour on these 2 cores (K + 1 trainings).",
        *([target] if target else []),
        *dict.fromkeys(r.get("timing") or timing_note() for r in results),
    ]
    return Table(columns, rows, command, notes)


def run_models(args: argparse.Namespace, models: tuple[str, ...], flag: str,
               folds: Any) -> list[dict]:
    """Each model in its own process (`flag MODEL`: peak memory per model) with `folds(model)`
    cross-validation folds, its last stdout line the result; `--reuse MODEL=RESULT.json`
    tabulates a result saved by `--json-out` instead of training again."""
    import json
    import subprocess

    reuse = dict(r.split("=", 1) for r in args.reuse)
    results = []
    for model in args.models or models:
        if model in reuse:
            results.append(json.loads(Path(reuse[model]).read_text()))
            continue
        cmd = [sys.executable, __file__, flag, model, "--data-root", args.data_root,
               "--seed", str(args.seed), "--n-boot", str(args.n_boot), "--folds", str(folds(model))]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        if args.json_out:
            Path(args.json_out).mkdir(parents=True, exist_ok=True)
            (Path(args.json_out) / f"{model}.json").write_text(json.dumps(results[-1], indent=1))
    return results


def af_main(args: argparse.Namespace) -> None:
    """Train each af-ecg model (`run_models`), then write the `af` table."""
    results = run_models(args, AF_MODELS, "--af-one", lambda model: (
        args.folds or 0 if args.cv_models is None or model in args.cv_models else 0))
    command = " ".join(["python", "benchmarks/signals.py", "--table", "af", "--data-root",
                        shown(args.data_root), *(["--seed", str(args.seed)] if args.seed else []),
                        *(["--folds", str(args.folds)] if args.folds else []),
                        *(["--cv-models", *args.cv_models] if args.cv_models else [])])
    table = af_table(results, command)
    print(write_tables("signals", {"af": table}))
    print(table.markdown())


BEAT_MODELS = ("beat-logreg", "beat-gbm", "beat-cnn")
BEAT_SHOWN = ("N", "S", "V", "F")
# inter-patient (train DS1, test DS2) figures as published, Se / +P in %
BEAT_PUBLISHED = [
    ("de Chazal et al. 2004 (linear discriminants, RR + morphology; DS1 -> DS2)",
     {"N": ("-", "-"), "S": ("75.9", "38.5"), "V": ("77.7", "81.9"), "F": ("-", "-")},
     "de Chazal, O'Dwyer & Reilly, IEEE Trans Biomed Eng 51(7):1196-1206 (2004), abstract: SVEB "
     "sensitivity 75.9% and positive predictivity 38.5%, VEB 77.7% and 81.9% on DS2 (N and F "
     "figures, in the paper's tables, are not repeated here)"),
]


def beats_run_one(model: str, data_root: str, seed: int, n_boot: int, folds: int) -> dict:
    """`iatros train mitbih-beats --model MODEL --cv FOLDS` in this process; per-class Se and +P
    of the pooled out-of-fold beats and of the held-out test records, record-clustered CIs."""
    import json
    import resource
    import tempfile

    import numpy as np
    import pandas as pd

    from iatros import api
    from iatros.data.signals.beats import AAMI_CLASSES
    from iatros.evaluate import metrics as M

    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    timing = timing_note()
    t0 = time.perf_counter()
    run = api.train("mitbih-beats", data_root=data_root, model=model, seed=seed, cv=folds,
                    out=Path(tempfile.mkdtemp()) / "run", progress=False, register=False,
                    eval_options=api.EvalOptions(n_boot=n_boot, seed=seed))
    seconds = time.perf_counter() - t0
    k = len(AAMI_CLASSES)

    def per_class(frame: pd.DataFrame) -> dict:
        y = frame["target"].to_numpy(int)
        pred = frame[[f"prob_{j}" for j in range(k)]].to_numpy(float).argmax(axis=1)
        truth, hit = np.eye(k)[y], np.eye(k)[pred]
        tp = truth * hit
        boots = [(w @ tp / (w @ truth), w @ tp / (w @ hit)) for w in
                 M.bootstrap_weights(len(y), n_boot, seed=seed, clusters=frame["patient_id"])]
        with np.errstate(divide="ignore", invalid="ignore"):
            se_b = np.vstack([b[0] for b in boots])
            ppv_b = np.vstack([b[1] for b in boots])
            se, ppv = tp.sum(0) / truth.sum(0), tp.sum(0) / hit.sum(0)
        out = {}
        for j, c in enumerate(AAMI_CLASSES):
            out[c] = {"n": int(truth[:, j].sum()), "predicted": int(hit[:, j].sum())}
            for name, point, draws in (("se", se[j], se_b[:, j]), ("ppv", ppv[j], ppv_b[:, j])):
                lo, hi = np.nanpercentile(draws, [2.5, 97.5]) if np.isfinite(draws).any() else (None, None)
                out[c][name] = {"value": None if not np.isfinite(point) else float(point),
                                "ci95": None if lo is None else [float(lo), float(hi)]}
        return out

    pooled = pd.read_csv(run / "cv_predictions.csv")
    test = pd.read_csv(run / "predictions.csv").query("split == 'test'")
    cv = json.loads((run / "cross_validation.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    return {
        "model": model, "seed": seed, "folds": folds, "cv": per_class(pooled),
        "cv_f1": cv["pooled"]["f1"], "cv_records": sorted(map(str, pooled["patient_id"].unique())),
        "test": per_class(test), "test_f1": metrics["splits"]["test"]["f1"],
        "test_records": sorted(map(str, test["patient_id"].unique())),
        "loader": config["data"]["loader"], "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "timing": timing,
    }


def _pct_ci(e: dict) -> str:
    if e.get("value") is None:
        return "-"
    lo, hi = e.get("ci95") or (None, None)
    return f"{100 * e['value']:.1f}" + ("" if lo is None else f" ({100 * lo:.0f}-{100 * hi:.0f})")


def beats_table(results: list[dict], command: str) -> Table:
    """Per model: out-of-fold Se / +P per AAMI class over DS1, beside the published DS2 figures."""
    columns = ["model", "scored on", "beats", "macro F1 (95% CI)",
               *(f"{c} Se / +P %" for c in BEAT_SHOWN), "s (train + CV)", "peak MB"]
    rows = []
    for r in results:
        for part, label, f1 in (("cv", f"{r['folds']}-fold CV, {len(r['cv_records'])} DS1 records",
                                 r["cv_f1"]),
                                ("test", f"held-out DS1 records {', '.join(r['test_records'])}",
                                 r["test_f1"])):
            cells = [f"{_pct_ci(r[part][c]['se'])} / {_pct_ci(r[part][c]['ppv'])}" for c in BEAT_SHOWN]
            n = sum(v["n"] for v in r[part].values())
            rows.append([f"`{r['model']}`", label, f"{n:,}", _entry(f1), *cells,
                         f"{r['seconds']:.0f}" if part == "cv" else "",
                         f"{r['peak_rss_mb']:.0f}" if part == "cv" else ""])
    for name, figures, _ in BEAT_PUBLISHED:
        rows.append([f"published: {name}", "DS2 (22 records)", "49,712", "-",
                     *(f"{figures[c][0]} / {figures[c][1]}" for c in BEAT_SHOWN), "-", "-"])
    loaded = results[0]["loader"].split(": ", 1)[-1] if results else ""
    notes = [
        f"Data: {loaded}. Beats at the reference annotation positions, lead MLII, AAMI classes "
        "(de Chazal et al. 2004); the 4 paced records are left out.",
        "Scores: the run's own split holds 3 DS1 records out as a test set; `--cv` then trains the "
        "model afresh on record-level folds of the other 19 (train + val) and pools every beat's "
        "out-of-fold prediction. Se = TP / (TP + FN), +P = TP / (TP + FP) per class on the argmax "
        "class; 95% CIs: 1000 bootstrap resamples of records (all of a record's beats together). "
        "Macro F1 is over the 5 classes (Q, 8 beats in DS1, counts).",
        "Published figures are on DS2 (test records of other patients), ours on DS1 by "
        "cross-validation: the same inter-patient idea, different records, so not comparable one "
        "to one. DS2 is not in the shared data; `iatros evaluate RUN --data-root FULL_COPY` scores "
        "it.",
        *[f"{name}: {source}." for name, _, source in BEAT_PUBLISHED],
        *dict.fromkeys(r.get("timing") or timing_note() for r in results),
    ]
    return Table(columns, rows, command, notes)


def beats_main(args: argparse.Namespace) -> None:
    """Each beat model (`run_models`), then the `beats` table."""
    results = run_models(args, BEAT_MODELS, "--beats-one", lambda model: args.folds or 5)
    command = " ".join(["python", "benchmarks/signals.py", "--table", "beats", "--data-root",
                        shown(args.data_root), *(["--seed", str(args.seed)] if args.seed else [])])
    table = beats_table(results, command)
    print(write_tables("signals", {"beats": table}))
    print(table.markdown())


HOLTER_MODELS = ("hrv-gbm", "resnet1d")
HOLTER_METRICS = ("auroc", "sensitivity", "specificity", "auprc")


def af_episodes(frame, flagged) -> dict:
    """Episode-level AF detection: an episode (a run of consecutive AF windows of one record)
    is found when any of its windows is flagged; false alarms are flagged non-AF windows."""
    import numpy as np

    found = total = false_alarms = 0
    for _, part in frame.groupby("patient_id", sort=False):
        part = part.sort_values("window")
        y = part["target"].to_numpy(int)
        hit = flagged[part.index.to_numpy()]
        false_alarms += int(np.sum(hit & (y == 0)))
        start = None
        for k in range(len(y) + 1):
            if k < len(y) and y[k] == 1 and start is None:
                start = k
            elif (k == len(y) or y[k] == 0) and start is not None:
                total += 1
                found += int(hit[start:k].any())
                start = None
    hours = float(np.sum(frame["target"].to_numpy() == 0)) * 30 / 3600
    return {"episodes": total, "found": found, "false_alarm_windows": false_alarms,
            "non_af_hours": hours}


def holter_run_one(model: str, data_root: str, seed: int, n_boot: int, folds: int) -> dict:
    """`iatros train mitbih-af --model MODEL --cv FOLDS`: pooled out-of-fold window metrics and
    episode detection over the train + val records, and the run's held-out test records."""
    import json
    import resource
    import tempfile

    import pandas as pd

    from iatros import api

    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    timing = timing_note()
    t0 = time.perf_counter()
    run = api.train("mitbih-af", data_root=data_root, model=model, seed=seed, cv=folds,
                    out=Path(tempfile.mkdtemp()) / "run", progress=False, register=False,
                    eval_options=api.EvalOptions(n_boot=n_boot, seed=seed))
    seconds = time.perf_counter() - t0
    cv = json.loads((run / "cross_validation.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    pooled = pd.read_csv(run / "cv_predictions.csv").sort_values("row").reset_index(drop=True)
    pooled["window"] = pooled.groupby("patient_id").cumcount()
    flagged = pooled["prob"].to_numpy() >= cv["threshold"]
    return {
        "model": model, "seed": seed, "folds": folds, "run": str(run),
        "cv": {k: cv["pooled"][k] for k in HOLTER_METRICS}, "cv_threshold": cv["threshold"],
        "cv_episodes": af_episodes(pooled, flagged),
        "cv_af_records": sorted(map(str, pooled.loc[pooled["target"] == 1, "patient_id"].unique())),
        "n_cv": cv["n"], "n_cv_records": cv["n_patients"],
        "test": {k: metrics["splits"]["test"][k] for k in HOLTER_METRICS},
        "loader": json.loads((run / "config.json").read_text())["data"]["loader"],
        "seconds": seconds, "timing": timing,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def holter_transfer(name: str, run: str, data_root: str, n_boot: int, seed: int) -> dict:
    """An af-ecg run (trained on handheld PhysioNet/CinC 2017 recordings) scoring every 30 s
    MIT-BIH window: P(AF) against the rhythm annotations, and its argmax class as the flag."""
    import numpy as np
    import pandas as pd

    from iatros.evaluate import metrics as M
    from iatros.pipeline.scoring import scorer_for
    from iatros.run_folder import RunFolder
    from iatros.settings import get_settings
    from iatros.tasks import get_task
    from iatros.train.predictors import load_predictor

    data = get_task("mitbih-af").load(Path(data_root))
    folder = RunFolder(run)
    task = get_task(folder.config()["task"])
    scores = scorer_for(task.target).scores(folder, load_predictor(folder.path, get_settings().device),
                                            data.inputs)
    af = task.classes.index("AF")
    p = scores[:, af] / scores.sum(axis=1)
    flagged = scores.argmax(axis=1) == af
    frame = pd.DataFrame({"patient_id": data.patient_ids, "target": data.targets,
                          "window": pd.Series(data.patient_ids).groupby(data.patient_ids).cumcount()})
    result = M.evaluate(data.targets, p, "binary", metrics=list(HOLTER_METRICS), threshold=0.5,
                        n_boot=n_boot, seed=seed, clusters=data.patient_ids)
    flagged_metrics = M.evaluate(data.targets, flagged.astype(float), "binary",
                                 metrics=["sensitivity", "specificity"], threshold=0.5,
                                 n_boot=n_boot, seed=seed, clusters=data.patient_ids)
    return {"model": name, "run": run, "auroc": result["auroc"], "auprc": result["auprc"],
            **flagged_metrics, "episodes": af_episodes(frame, flagged),
            "n": int(len(p)), "n_records": int(len(np.unique(data.patient_ids)))}


def holter_table(results: list[dict], transfers: list[dict], command: str) -> Table:
    """AF in 30 s Holter windows: models trained on MIT-BIH DS1 (record CV), and af-ecg models
    trained on handheld recordings scoring the same windows."""
    columns = ["model", "trained on", "scored on", "windows", "AUROC (95% CI)", "Se", "Sp",
               "AF episodes found", "false alarms / h", "s"]
    rows = []
    for r in results:
        e = r["cv_episodes"]
        rows.append([f"`{r['model']}`", f"mitbih-af, {r['folds']}-fold record CV",
                     f"out-of-fold, {r['n_cv_records']} DS1 records (AF: "
                     f"{', '.join(r['cv_af_records'])})", str(r["n_cv"]), _entry(r["cv"]["auroc"]),
                     _entry(r["cv"]["sensitivity"]), _entry(r["cv"]["specificity"]),
                     f"{e['found']} of {e['episodes']}",
                     f"{e['false_alarm_windows'] / max(e['non_af_hours'], 1e-9):.2f}",
                     f"{r['seconds']:.0f}"])
    for t in transfers:
        e = t["episodes"]
        rows.append([f"`{t['model']}`", "af-ecg (PhysioNet/CinC 2017, handheld)",
                     f"all {t['n_records']} DS1 records", str(t["n"]), _entry(t["auroc"]),
                     _entry(t["sensitivity"]), _entry(t["specificity"]),
                     f"{e['found']} of {e['episodes']}",
                     f"{e['false_alarm_windows'] / max(e['non_af_hours'], 1e-9):.2f}", "-"])
    loaded = results[0]["loader"].split(": ", 1)[-1] if results else ""
    notes = [
        f"Data: {loaded}. 30 s windows of lead MLII resampled to 300 Hz, AF when the rhythm "
        "annotations mark (AFIB over at least half the window; DS1 holds AF in two patients "
        "(201, 203).",
        "mitbih-af rows: each run's own split keeps 3 records as its test set (no AF among them "
        "with seed 0, so its test sensitivity is undefined); `--cv` trains the model afresh on "
        "record folds of the other 19 and pools the held-out windows. Se / Sp at the threshold "
        "the run's rule (Youden) picks on those pooled scores, so slightly optimistic. An "
        "episode is a run of consecutive AF windows of one record; found when any of its "
        "windows is flagged. False alarms: flagged non-AF windows per hour of non-AF recording.",
        "af-ecg rows: the af-ecg runs of the `af` table (trained on 2,100 handheld recordings) "
        "score every window unchanged; P(AF) for the AUROC, the window flagged when AF is the "
        "most probable of Normal, AF, Other, Noisy.",
        "95% CIs: 1000 bootstrap resamples of records.",
        *dict.fromkeys(r.get("timing") or timing_note() for r in results),
    ]
    return Table(columns, rows, command, notes)


def holter_main(args: argparse.Namespace) -> None:
    """Each mitbih-af model (`run_models`), then the af-ecg runs named by --af-runs."""
    results = run_models(args, HOLTER_MODELS, "--holter-one", lambda model: args.folds or 5)
    transfers = [holter_transfer(name, run, args.data_root, args.n_boot, args.seed)
                 for name, run in (r.split("=", 1) for r in args.af_runs)]
    command = " ".join(["python", "benchmarks/signals.py", "--table", "af-holter", "--data-root",
                        shown(args.data_root),
                        *(["--af-runs", *(f"{n}=AF_ECG_RUN" for n, _ in
                                          (r.split("=", 1) for r in args.af_runs))]
                          if args.af_runs else [])])
    table = holter_table(results, transfers, command)
    print(write_tables("signals", {"af-holter": table}))
    print(table.markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--methods", nargs="*", help="detectors to score (default: every neurokit2 "
                                                     "method iatros offers)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="leave out a detector slower than this on record 100")
    parser.add_argument("--tolerance", type=float, default=0.150, help="match window in seconds")
    parser.add_argument("--score-vf", action="store_true",
                        help="rpeaks: score ventricular flutter / fibrillation episodes too (EC57 "
                             "leaves them out)")
    parser.add_argument("--table", choices=("rpeaks", "af", "beats", "af-holter"), default="rpeaks",
                        help="rpeaks: R-peak detectors on MIT-BIH; af: the af-ecg models on "
                             "PhysioNet/CinC 2017; beats: mitbih-beats models by DS1 "
                             "cross-validation; af-holter: AF in MIT-BIH 30 s windows")
    parser.add_argument("--models", nargs="*", help="af: models to train (default: resnet1d hrv-gbm)")
    parser.add_argument("--seed", type=int, default=0, help="af: split and training seed")
    parser.add_argument("--n-boot", type=int, default=1000, help="af: bootstrap resamples")
    parser.add_argument("--json-out", help="af: save each model's result here (MODEL.json)")
    parser.add_argument("--reuse", nargs="*", default=[],
                        help="af: MODEL=RESULT.json saved by --json-out, tabulated instead of retrained")
    parser.add_argument("--folds", type=int, default=None,
                        help="cross-validation folds (beats, af-holter: default 5; af: none "
                             "unless given)")
    parser.add_argument("--cv-models", nargs="*", default=None,
                        help="af: the models to cross-validate (default: all, with --folds)")
    parser.add_argument("--af-one", help=argparse.SUPPRESS)
    parser.add_argument("--af-runs", nargs="*", default=[],
                        help="af-holter: NAME=RUN af-ecg run folders to score on the windows")
    parser.add_argument("--beats-one", help=argparse.SUPPRESS)
    parser.add_argument("--holter-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # one model in this process (`--X-one MODEL`, run by `run_models`), or a whole table
    one = {"holter_one": (holter_run_one, 5), "beats_one": (beats_run_one, 5), "af_one": (af_run_one, 0)}
    for flag, (run_one, folds) in one.items():
        if getattr(args, flag):
            import json

            print(json.dumps(run_one(getattr(args, flag), args.data_root, args.seed, args.n_boot,
                                     folds=args.folds or folds)))
            return
    tables = {"af-holter": holter_main, "beats": beats_main, "af": af_main}
    if args.table in tables:
        tables[args.table](args)
        return
    from iatros.api.signals import pooled_by_method, rpeaks
    from iatros.data.signals.processing import RPEAK_METHODS

    note = timing_note()
    heads = records(Path(args.data_root))
    methods = list(args.methods or [m for m in RPEAK_METHODS if m not in ALIASES])
    probe = next((h for h in heads if h.stem == "100"), heads[0])
    kept, dropped = screen(methods, probe, args.max_seconds)
    start = time.perf_counter()
    results = (rpeaks(heads, methods=kept, tolerance_s=args.tolerance, score_vf=args.score_vf,
                      progress=True) if kept else [])
    print(f"scored {len(heads)} records x {len(kept)} methods in {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    totals = pooled_by_method(results)
    columns = ["method", "records", "beats", "TP", "FN", "FP", "Se %", "+P %", "target met",
               "worst record (Se / +P)", "s per record", "published on MIT-BIH"]
    lines = notes(args, heads, results, dropped, totals)
    lines[-1] = note
    table = Table(columns, table_rows(results, totals, len(heads)), command_line(), lines)
    print(write_tables("signals", {"rpeaks": table}))
    print(table.markdown())


if __name__ == "__main__":
    main()
