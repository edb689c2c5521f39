"""`train --cv K`: a run's model cross-validated over K patient-level folds of train + val.

Each fold trains the model afresh with that fold as its validation part (test is never touched).
Every train + val row is then scored once, by the model that did not train on it; the task's
metrics over these pooled out-of-fold scores carry patient-clustered bootstrap intervals, and each
fold's own value of the primary metric shows how much the score moves from fold to fold. The
table goes into the run as `cross_validation.json` (the pooled rows as `cv_predictions.csv`, in
the predictions.csv layout plus the fold) and into its report.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.runs import load_data
from iatros.pipeline.scoring import scorer_for
from iatros.pipeline.scoring.base import metrics_for
from iatros.report import write_report
from iatros.run_folder import (
    CROSS_VALIDATION,
    CV_PREDICTIONS,
    PREDICTIONS,
    RunFolder,
    read_csv,
    write_csv,
    write_json,
)
from iatros.settings import Settings
from iatros.tasks import Task


def check_cross_validates(task: Task, folds: int) -> Any:
    """The task's scorer, when `folds`-fold cross-validation of its runs can be pooled."""
    if folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {folds}")
    scorer = scorer_for(task.target)
    if not scorer.cross_validates:
        raise ConfigError(f"--cv pools out-of-fold probabilities or values; {task.target.value} runs "
                          f"have none (use `iatros tune --folds K` to compare settings by folds)")
    return scorer


def fold_runs(task: Task, model: str, folds: int, *, settings: Settings, seed: int,
              epochs: int | None, progress: bool, workdir: Path,
              params: dict[str, Any] | None = None,
              train_overrides: dict[str, Any] | None = None) -> list[Path]:
    """One fresh, unregistered training per fold, fold k as validation; their run folders."""
    from iatros.pipeline.training import train

    if folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {folds}")
    return [train(task, settings=settings, out=workdir / f"{model}-fold{fold}", epochs=epochs,
                  seed=seed, model=model, params=params, train_overrides=train_overrides,
                  eval_options=EvalOptions(n_boot=0, seed=seed), progress=progress,
                  register=False, val_fold=(fold, folds))
            for fold in range(folds)]


def fold_value(path: Path, metric: str) -> float | None:
    """A fold run's validation value of `metric` (None when undefined)."""
    value = RunFolder(path).metrics()["splits"]["val"].get(metric, {}).get("value")
    return float(value) if value is not None and np.isfinite(value) else None


def out_of_fold(task: Task, paths: Sequence[Path]) -> pd.DataFrame:
    """The validation rows of every fold run's predictions.csv, one per train + val row."""
    frames = []
    for fold, path in enumerate(paths):
        frame = read_csv(Path(path) / PREDICTIONS)
        frames.append(frame[frame["split"] == "val"].assign(fold=fold))
    pooled = pd.concat(frames, ignore_index=True)
    if pooled["row"].duplicated().any():
        raise ConfigError(f"{task.name}: a row was validated in two folds; the folds overlap")
    return pooled.sort_values("row").reset_index(drop=True)


def cross_validate_run(run: Path, task: Task, folds: int, *, settings: Settings, seed: int,
                       epochs: int | None = None, params: dict[str, Any] | None = None,
                       train_overrides: dict[str, Any] | None = None,
                       eval_options: EvalOptions = EvalOptions(),
                       progress: bool = False) -> dict[str, Any]:
    """Cross-validate the model of finished run `run`, write the table into it, redraw its
    report and seal it again; returns the table."""
    folder = RunFolder(run)
    config = folder.config()
    model = config["model"]
    scorer = check_cross_validates(task, folds)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="iatros-cv-") as tmp:
        paths = fold_runs(task, model, folds, settings=settings, seed=seed, epochs=epochs,
                          progress=progress, workdir=Path(tmp), params=params,
                          train_overrides=train_overrides)
        per_fold = [fold_value(p, task.primary_metric) for p in paths]
        pooled = out_of_fold(task, paths)
    data = load_data(task, config, settings)
    rows = pooled["row"].to_numpy(int)
    scores = scorer.scores_from_frame(pooled)
    targets = data.targets[rows]
    threshold, rule = scorer.threshold(eval_options, targets, scores)
    metrics = M.evaluate(targets, scores, task.target, metrics=metrics_for(task),
                         threshold=float(threshold), n_boot=eval_options.n_boot,
                         seed=eval_options.seed, clusters=data.patient_ids[rows])
    usable = [v for v in per_fold if v is not None]
    table = {
        "folds": folds, "seed": seed, "model": model, "primary_metric": task.primary_metric,
        "split": "train + val, patient-level folds (test untouched)",
        "n": int(len(rows)), "n_patients": int(len(np.unique(data.patient_ids[rows]))),
        "pooled": metrics, "threshold": float(threshold), "threshold_rule": rule,
        "fold_values": per_fold,
        "fold_mean": float(np.mean(usable)) if usable else None,
        "fold_sd": float(np.std(usable, ddof=1)) if len(usable) > 1 else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "note": ("Out-of-fold scores are each fold model's calibrated validation scores (its "
                 "calibrator was fitted on that fold), pooled; intervals are patient-clustered "
                 "percentile bootstraps over the pooled rows."),
    }
    write_csv(folder.path / CV_PREDICTIONS, pooled)
    write_json(folder.path / CROSS_VALIDATION, table)
    write_report(folder.path)
    folder.seal()
    return table
