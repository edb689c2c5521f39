"""Builders of small synthetic run folders, shared by the report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_VAL, N_TEST = 40, 60


def entry(value: float | None, lo: float | None, hi: float | None, n: int = N_TEST,
          **extra: Any) -> dict[str, Any]:
    """A metrics.json metric entry."""
    return {"value": value, "ci95": [lo, hi], "n": n, **extra}


def reliability(n_bins: int = 5, shift: float = 0.0) -> dict[str, list[Any]]:
    """Reliability bins, with one empty bin (nulls) as the evaluator writes them."""
    lower = np.linspace(0, 1, n_bins, endpoint=False)
    mean = list(np.clip(lower + 0.1, 0, 1))
    observed = list(np.clip(lower + 0.1 + shift, 0, 1))
    counts = [12] * n_bins
    mean[2], observed[2], counts[2] = None, None, 0
    return {"bin_lower": list(lower), "bin_upper": list(lower + 1 / n_bins),
            "mean_predicted": mean, "observed": observed, "count": counts}


def config(task: str, kind: str, classes: list[str], attributes: list[str],
           description: str = "Predict malignancy from fine-needle aspirate features.",
           positives: bool = True) -> dict[str, Any]:
    """A config.json for a run."""
    def split(rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": rows, "patients": rows}
        if positives:
            out["positives"] = rows // 3
        return out

    return {
        "task": task, "description": description, "modality": "tabular",
        "target_kind": kind, "classes": classes, "model": "mlp",
        "model_params": {"hidden": [32, 16], "dropout": 0.1}, "seed": 0, "epochs": 5,
        "data_root": "/data/iatros", "created": "2026-11-28T12:00:00+00:00",
        "iatros_version": "0.1.0",
        "intended_use": "Second reader for breast fine-needle aspirates in adult women.",
        "limitations": ["Single-centre data from one US hospital.",
                        "Not validated on aspirates from men."],
        "source": "Wolberg et al., UCI Machine Learning Repository",
        "sensitive_attributes": attributes,
        "data": {"n_rows": 200, "n_patients": 200, "n_features": 30,
                 "splits": {"train": split(100), "val": split(N_VAL), "test": split(N_TEST)}},
    }


def group(n: int, prevalence: float | None, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"n": n, "prevalence": prevalence, "metrics": metrics}


def binary_subgroups() -> dict[str, Any]:
    """Two attributes: a flagged AUROC gap for sex, a small group for age_group."""
    return {
        "sex": {
            "attribute": "sex",
            "groups": {
                "female": group(35, 0.4, {"auroc": entry(0.86, 0.78, 0.93, 35),
                                          "sensitivity": entry(0.8, 0.6, 0.95, 35)}),
                "male": group(25, 0.3, {"auroc": entry(0.98, 0.94, 1.0, 25),
                                        "sensitivity": entry(0.9, 0.7, 1.0, 25)}),
            },
            "gaps": {"auroc": entry(0.12, 0.03, 0.21, best_group="male", worst_group="female"),
                     "sensitivity": entry(0.1, -0.1, 0.3, best_group="male",
                                          worst_group="female")},
            "equalized_odds_difference": entry(0.08, -0.02, 0.2),
            "demographic_parity_difference": entry(0.04, -0.05, 0.12),
            "small_groups": [], "threshold": 0.5,
        },
        "age_group": {
            "attribute": "age_group",
            "groups": {
                "18-49": group(30, 0.35, {"auroc": entry(0.9, 0.8, 0.97, 30)}),
                "50-79": group(26, 0.38, {"auroc": entry(0.92, 0.85, 0.98, 26)}),
                "80+": group(4, 0.25, {"auroc": entry(None, None, None, 4)}),
            },
            "gaps": {"auroc": entry(0.02, -0.05, 0.09, best_group="50-79",
                                    worst_group="18-49")},
            "equalized_odds_difference": entry(0.03, -0.04, 0.1),
            "demographic_parity_difference": entry(0.02, -0.03, 0.07),
            "small_groups": ["80+"], "threshold": 0.5,
        },
    }


def binary_metrics(task: str, null: bool = False) -> dict[str, Any]:
    """metrics.json for a binary run; ``null`` makes every value and bound null."""
    def e(value: float, lo: float, hi: float, n: int = N_TEST) -> dict[str, Any]:
        return entry(None, None, None, n) if null else entry(value, lo, hi, n)

    test = {"auroc": e(0.912, 0.85, 0.96), "auprc": e(0.88, 0.8, 0.94),
            "sensitivity": e(0.85, 0.7, 0.95), "specificity": e(0.9, 0.8, 0.97),
            "specificity_at_sens90": e(0.8, 0.5, 0.95), "brier": e(0.08, 0.05, 0.11),
            "ece": e(0.04, 0.02, 0.08)}
    val = {key: e(0.9, 0.8, 0.95, N_VAL) for key in test}
    return {
        "task": task, "model": "mlp", "target_kind": "binary", "primary_metric": "auroc",
        "threshold": 0.5, "splits": {"test": test, "val": val},
        "calibration": {
            "method": "platt", "note": "",
            "test_before": {"ece": e(0.09, 0.05, 0.13), "brier": e(0.1, 0.07, 0.13)},
            "test_after": {"ece": e(0.04, 0.02, 0.08), "brier": e(0.08, 0.05, 0.11)},
            "reliability": {"test_before": reliability(shift=0.1),
                            "test_after": reliability()}},
        "subgroups": {} if null else binary_subgroups(),
        "bootstrap": {"n_boot": 200, "seed": 0, "unit": "patient", "ci": 0.95},
    }


def _ids(split: str, n: int) -> list[str]:
    return [f"{split}-{i:03d}" for i in range(n)]


def binary_predictions(rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for split, n in (("val", N_VAL), ("test", N_TEST)):
        target = rng.integers(0, 2, n)
        raw = 1 / (1 + np.exp(-(2.5 * (target - 0.5) + rng.normal(0, 1, n))))
        frames.append(pd.DataFrame({
            "split": split, "row": np.arange(n), "patient_id": _ids(split, n), "target": target,
            "prob": np.clip(raw * 0.9 + 0.05, 0, 1), "prob_raw": raw,
            "attr_sex": rng.choice(["female", "male"], n),
            "attr_age_group": rng.choice(["18-49", "50-79", "80+"], n)}))
    return pd.concat(frames, ignore_index=True)


def train_log(epochs: int = 5) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.2 / epoch,
                         "val_metric": 0.7 + 0.04 * epoch, "lr": 1e-3, "seconds": 0.5})


def write_run(run_dir: Path, cfg: dict[str, Any], metrics: dict[str, Any],
              predictions: pd.DataFrame, log: pd.DataFrame | None = None) -> Path:
    """Write the files of a finished run folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    predictions.to_csv(run_dir / "predictions.csv", index=False)
    if log is not None:
        log.to_csv(run_dir / "train_log.csv", index=False)
    return run_dir


def make_binary_run(run_dir: Path, description: str | None = None) -> Path:
    """Binary run with two sensitive attributes, a training log and one extra evaluation."""
    task = "breast-cancer-wdbc"
    cfg = config(task, "binary", ["benign", "malignant"], ["sex", "age_group"])
    if description is not None:
        cfg["description"] = description
    write_run(run_dir, cfg, binary_metrics(task),
              binary_predictions(np.random.default_rng(0)), train_log())
    extra = binary_metrics(task)
    extra.update({"data_root": "/data/site-b", "split": "test", "external": True,
                  "splits": {"test": {"auroc": entry(0.81, 0.7, 0.9, 120, n_positive=40)}}})
    external = run_dir / "evaluations" / "external-site-b"
    external.mkdir(parents=True)
    (external / "metrics.json").write_text(json.dumps(extra), encoding="utf-8")
    return run_dir


def make_null_run(run_dir: Path) -> Path:
    """Binary run whose metrics are all null and whose subgroup dict is empty."""
    task = "breast-cancer-null"
    cfg = config(task, "binary", ["benign", "malignant"], [])
    return write_run(run_dir, cfg, binary_metrics(task, null=True),
                     binary_predictions(np.random.default_rng(1)))


def make_multiclass_run(run_dir: Path) -> Path:
    """Three-class run with one sensitive attribute."""
    task = "dermatology-3class"
    classes = ["nevus", "melanoma", "keratosis"]
    rng = np.random.default_rng(2)
    frames = []
    for split, n in (("val", N_VAL), ("test", N_TEST)):
        target = rng.integers(0, 3, n)
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), target] += 2.0
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame({"split": split, "row": np.arange(n), "patient_id": _ids(split, n),
                              "target": target})
        for k in range(3):
            frame[f"prob_{k}"] = probs[:, k]
        for k in range(3):
            frame[f"prob_raw_{k}"] = probs[:, k]
        frame["attr_sex"] = rng.choice(["female", "male"], n)
        frames.append(frame)
    test = {"auroc": entry(0.88, 0.82, 0.93), "accuracy": entry(0.74, 0.63, 0.84),
            "balanced_accuracy": entry(0.73, 0.62, 0.83), "kappa": entry(0.6, 0.45, 0.72)}
    subgroups = {"sex": {"attribute": "sex", "groups": {
        "female": group(31, None, {"auroc": entry(0.87, 0.8, 0.93, 31)}),
        "male": group(29, None, {"auroc": entry(0.89, 0.81, 0.95, 29)})},
        "gaps": {"auroc": entry(0.02, -0.06, 0.1, best_group="male", worst_group="female")},
        "small_groups": [], "threshold": None}}
    metrics = {"task": task, "model": "mlp", "target_kind": "multiclass",
               "primary_metric": "auroc", "threshold": None,
               "splits": {"test": test, "val": test},
               "calibration": {"method": "temperature", "note": "",
                               "test_before": {"ece": entry(0.07, 0.04, 0.1)},
                               "test_after": {"ece": entry(0.03, 0.01, 0.06)},
                               "reliability": {"test_before": reliability(shift=0.08),
                                               "test_after": reliability()}},
               "subgroups": subgroups,
               "bootstrap": {"n_boot": 200, "seed": 0, "unit": "patient", "ci": 0.95}}
    cfg = config(task, "multiclass", classes, ["sex"])
    return write_run(run_dir, cfg, metrics, pd.concat(frames, ignore_index=True))


def make_regression_run(run_dir: Path) -> Path:
    """Regression run (no calibration, no classes) with one sensitive attribute."""
    task = "diabetes-progression"
    rng = np.random.default_rng(3)
    frames = []
    for split, n in (("val", N_VAL), ("test", N_TEST)):
        target = rng.normal(150, 50, n)
        frames.append(pd.DataFrame({
            "split": split, "row": np.arange(n), "patient_id": _ids(split, n), "target": target,
            "prediction": target + rng.normal(0, 30, n),
            "attr_sex": rng.choice(["female", "male"], n)}))
    test = {"rmse": entry(31.2, 26.0, 36.5), "mae": entry(24.8, 20.1, 29.0),
            "r2": entry(0.61, 0.48, 0.72)}
    subgroups = {"sex": {"attribute": "sex", "groups": {
        "female": group(30, None, {"rmse": entry(29.0, 23.0, 35.0, 30)}),
        "male": group(30, None, {"rmse": entry(33.0, 26.0, 40.0, 30)})},
        "gaps": {"rmse": entry(4.0, -5.0, 12.0, best_group="female", worst_group="male")},
        "small_groups": [], "threshold": None}}
    metrics = {"task": task, "model": "mlp", "target_kind": "regression",
               "primary_metric": "rmse", "threshold": None,
               "splits": {"test": test, "val": test}, "subgroups": subgroups,
               "bootstrap": {"n_boot": 200, "seed": 0, "unit": "patient", "ci": 0.95}}
    cfg = config(task, "regression", [], ["sex"], positives=False)
    return write_run(run_dir, cfg, metrics, pd.concat(frames, ignore_index=True))


def assert_png(path: Path) -> None:
    """The file exists, starts with the PNG signature and is not trivially small."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5_000, (path, len(data))
