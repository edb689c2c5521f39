"""What every scorer does, and the pieces all of them share (metrics header, bootstrap block,
prediction frame, finiteness check), so `metrics.json` and `predictions.csv` are built once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from iatros.data.splits import Split
from iatros.errors import RunError
from iatros.evaluate import metrics as M
from iatros.pipeline.options import EvalOptions
from iatros.run_folder import RunFolder
from iatros.tasks import Task, TaskData
from iatros.train.predictors import Predictor


@dataclass
class FinishContext:
    """Everything a scorer needs to finish a freshly trained run."""

    run: RunFolder
    task: Task
    predictor: Predictor
    data: TaskData
    split: Split
    options: EvalOptions


@dataclass
class Finished:
    """metrics.json's content, and the test scores explanations pick examples from (None: the
    kind has no per-row example explanations)."""

    metrics: dict[str, Any]
    test_scores: np.ndarray | None = None


@dataclass
class Scored:
    """A run scored on some rows: metrics of that split, subgroup audits, predictions frame."""

    metrics: dict[str, Any]
    subgroups: dict[str, Any]
    frame: pd.DataFrame


class Scorer(Protocol):
    """One family of target kinds: how a run is finished, re-scored, audited and used."""

    supports_cross_fit: bool  # out-of-fold scoring of a cross-fit ensemble means something
    cross_validates: bool  # `train --cv K` can pool out-of-fold scores read from predictions.csv
    hands_test_scores: bool  # `finish` returns the test scores the explainers pick examples by

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        """Outcome counts of one split part for config.json (positives, class counts)."""

    def finish(self, ctx: FinishContext) -> Finished:
        """Predict val/test, calibrate and threshold on val, write predictions; metrics."""

    def score_rows(self, run: RunFolder, task: Task, predictor: Any, data: TaskData,
                   rows: np.ndarray, split_name: str, options: EvalOptions) -> Scored:
        """Score a finished run on `rows` of (a copy of) its data, as saved."""

    def audit(self, run: RunFolder, task: Task, by: str, split: str,
              options: EvalOptions, trust: bool = False) -> dict[str, Any]:
        """Subgroup audit of a finished run by one attribute."""

    def scores(self, run: RunFolder, predictor: Any, batch: Any) -> np.ndarray:
        """The scores explanations are about (calibrated probabilities, values, risks)."""

    def predict(self, run: RunFolder, task: Task, predictor: Any, batch: Any,
                names: Sequence[str], out_dir: Path) -> tuple[list[dict[str, Any]], Any]:
        """Predictions for new inputs (one dict each) and the scores explanations start from."""

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """The one line the CLI prints after training."""

    def prediction_cells(self, result: Mapping[str, Any]) -> tuple[str, str, str]:
        """(prediction, probabilities or details, figure) of one `predict` result, for tables."""

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        """Test rows worth explaining."""

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        """(output unit to explain, what was predicted, what the explanation is for)."""

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Each row's loss under the model's scores (what a membership-inference attack reads);
        ConfigError for kinds without a per-row loss."""
        ...

    def true_label(self, task: Task, target: Any) -> str:
        """The reference label of one row as text."""


def metrics_for(task: Task) -> tuple[str, ...]:
    return task.metrics or M.default_metrics(task.target)


def metrics_header(task: Task, model: str | None) -> dict[str, Any]:
    return {"task": task.name, "model": model, "target_kind": task.target.value,
            "primary_metric": task.primary_metric}


def bootstrap_block(task: Task, options: EvalOptions) -> dict[str, Any]:
    return {"n_boot": options.n_boot, "seed": options.seed, "unit": task.split_by, "ci": 0.95}


def target_columns(targets: np.ndarray) -> dict[str, np.ndarray]:
    """One `target` column, or `target_j` per column of a 2-D target."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        return {"target": targets}
    return {f"target_{j}": targets[:, j] for j in range(targets.shape[1])}


def prediction_frame(split_name: str, rows: np.ndarray, data: TaskData,
                     columns: Mapping[str, Any]) -> pd.DataFrame:
    """The one predictions.csv layout: split, row, patient id, the scorer's columns, then the
    sensitive attributes as `attr_NAME`."""
    frame = pd.DataFrame({"split": split_name, "row": rows, "patient_id": data.patient_ids[rows]})
    for name, values in columns.items():
        frame[name] = values
    for column in data.attributes.columns:
        frame[f"attr_{column}"] = data.attributes[column].to_numpy()[rows]
    return frame


def require_finite(values: Any, split_name: str, rows: np.ndarray, data: TaskData) -> None:
    """Refuse non-finite model outputs, naming a few of the patients they belong to."""
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if bad.any():
        hit = rows[np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))]
        raise RunError(f"the trained model gives non-finite predictions for {len(hit)} {split_name} "
                       f"row(s) (e.g. {', '.join(map(str, data.patient_ids[hit[:3]]))}); training "
                       f"may have diverged: lower the learning rate or turn off mixed precision")


def class_name(task: Task, index: int) -> str:
    return task.classes[index] if index < len(task.classes) else str(index)


def fmt_entry(entry: Mapping[str, Any] | None) -> str:
    """A metric entry as "0.842 (0.749-0.921)", or "n/a"."""
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry.get("ci95") or [None, None]
    ci = f" ({lo:.3f}-{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{entry['value']:.3f}{ci}"


def primary_summary(metrics: Mapping[str, Any]) -> str:
    """"test auroc 0.842 (0.749-0.921), n=75": the headline every scorer starts its line with."""
    primary = metrics["primary_metric"]
    test = metrics["splits"]["test"].get(primary) or {}
    return f"test {primary} {fmt_entry(test)}, n={test.get('n')}"
