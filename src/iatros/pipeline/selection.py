"""`--model auto`: the model chosen by cross-validation on the training data, then trained.

Each candidate model is trained K times, each time with one of K patient-level folds of
train + validation as its validation part (test is never touched); the candidate with the best
mean validation score of the task's primary metric is trained as an ordinary run, scored on test
once, and the run's `model_selection.json` lists every candidate's fold scores. Tasks name their
candidates (`Task.selection`); a task that names some trains `auto` when no model is given.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.models import get_model_spec
from iatros.pipeline.cross_validation import fold_runs, fold_value
from iatros.pipeline.fit import check_model
from iatros.report import write_report
from iatros.run_folder import SELECTION, RunFolder, write_json
from iatros.settings import Settings
from iatros.tasks import Task
from iatros.train.search import best_trial

log = logging.getLogger("iatros")

AUTO = "auto"
DEFAULT_FOLDS = 5


def candidates_for(task: Task, names: Sequence[str] | None = None) -> list[str]:
    """The models `auto` compares: the ones asked for (each must fit the task), else those of
    the task's list that predict its target kind."""
    if names:
        return [check_model(task, n).name for n in names]
    chosen = [n for n in task.selection if task.target in get_model_spec(n).kinds]
    if not chosen:
        raise ConfigError(f"task {task.name} names no models to choose from; pass --model NAME "
                          f"(one of {', '.join(task.models)})")
    return chosen


def cross_validate(task: Task, model: str, folds: int, *, settings: Settings, seed: int,
                   epochs: int | None, progress: bool, workdir: Path) -> list[float | None]:
    """The primary metric on each fold's validation part, one fresh training per fold."""
    paths = fold_runs(task, model, folds, settings=settings, seed=seed, epochs=epochs,
                      progress=progress, workdir=workdir)
    return [fold_value(p, task.primary_metric) for p in paths]


def select_model(task: Task, *, settings: Settings, seed: int = 0, folds: int = DEFAULT_FOLDS,
                 epochs: int | None = None, candidates: Sequence[str] | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Cross-validate every candidate; return the table and the chosen model's name."""
    if folds < 2:
        raise ConfigError(f"choosing a model needs at least 2 folds, got {folds}")
    names = candidates_for(task, candidates)
    metric = task.primary_metric
    higher = M.METRICS[metric].higher_is_better if metric in M.METRICS else True
    rows = []
    with tempfile.TemporaryDirectory(prefix="iatros-select-") as tmp:
        for name in names:
            t0 = time.perf_counter()
            scores = cross_validate(task, name, folds, settings=settings, seed=seed,
                                    epochs=epochs, progress=progress, workdir=Path(tmp))
            usable = [s for s in scores if s is not None]
            mean = float(np.mean(usable)) if len(usable) == len(scores) else None
            rows.append({"model": name, "mean": mean,
                         "sd": float(np.std(usable, ddof=1)) if mean is not None else None,
                         "folds": scores, "seconds": round(time.perf_counter() - t0, 1)})
            log.info("cross-validated %s: mean %s %s over %d folds", name, metric, mean, folds)
    chosen = best_trial([r["mean"] for r in rows], higher)
    return {"metric": metric, "higher_is_better": higher, "folds": folds, "seed": seed,
            "split": "train + val, patient-level folds (test untouched)",
            "chosen": rows[chosen]["model"], "candidates": rows}


def record_selection(run: Path, table: dict[str, Any]) -> None:
    """Write the selection table into a finished run, redraw its report, seal it again."""
    write_json(Path(run) / SELECTION, table)
    write_report(Path(run))
    RunFolder(run).seal()
