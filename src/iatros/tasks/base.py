"""What a task is: the data it loads, what it predicts, how it splits, what it audits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.splits import (
    Split,
    assert_no_leak,
    carve_validation,
    group_split,
    predefined_split,
)
from iatros.errors import CorruptDataError
from iatros.kinds import Modality, TargetKind


@dataclass
class TaskData:
    """Loaded records: one row per sample, with the patient each belongs to.

    `inputs` is whatever the task's models consume (a float matrix for tabular tasks).
    `attributes` holds sensitive attributes (sex, age group, ...) for subgroup audits.
    `split` optionally holds a split shipped with the dataset ('train' / 'val' / 'test').
    `model_params` / `train_params` on a Task are defaults its data needs (input channels,
    spatial dims, class balancing) that every model of the right modality receives.
    `row_report` lists what loading did to rows of the source file, one line each (skipped,
    changed, merged: e.g. an invalid SMILES); training keeps it as the run's data_report.csv.
    """

    inputs: Any
    targets: np.ndarray
    patient_ids: np.ndarray
    attributes: pd.DataFrame
    feature_names: list[str] | None = None
    split: np.ndarray | None = None
    source: str = ""
    encoding: dict[str, Any] | None = None  # how raw table rows become features (csv:PATH)
    row_report: pd.DataFrame | None = None  # what loading did to rows of the source, per line
    checks: dict[str, Any] | None = None  # counts of `row_report` (no values), for config.json

    def __post_init__(self) -> None:
        n = len(self.targets)
        self.patient_ids = np.asarray(self.patient_ids).astype(str)
        for name, value in (("inputs", self.inputs), ("patient_ids", self.patient_ids),
                            ("attributes", self.attributes)):
            if len(value) != n:
                raise CorruptDataError(
                    f"{self.source or 'dataset'}: {name} has {len(value)} rows but targets has {n}"
                )

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, rows: np.ndarray) -> TaskData:
        """The subset of rows, e.g. one split part."""
        inputs = self.inputs[rows] if hasattr(self.inputs, "__getitem__") else self.inputs
        return TaskData(
            inputs=inputs,
            targets=self.targets[rows],
            patient_ids=self.patient_ids[rows],
            attributes=self.attributes.iloc[rows].reset_index(drop=True),
            feature_names=self.feature_names,
            split=None if self.split is None else self.split[rows],
            source=self.source, encoding=self.encoding,
        )


@dataclass(frozen=True)
class Task:
    """A prediction problem: name, modality, target kind, loader, split rule, audit attributes."""

    name: str
    description: str
    modality: Modality
    target: TargetKind
    loader: Callable[[Path], TaskData]
    classes: tuple[str, ...] = ()
    sensitive_attributes: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    primary_metric: str = "auroc"
    default_model: str = "mlp"
    models: tuple[str, ...] = ("mlp", "logreg", "gbm")
    # models `--model auto` compares by cross-validation; when set, `auto` is the default
    selection: tuple[str, ...] = ()
    split_by: str = "patient"
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    source: str = ""
    intended_use: str = ""
    limitations: tuple[str, ...] = ()
    model_params: dict[str, Any] = field(default_factory=dict)
    train_params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # the task's own split rule (molecules: random, scaffold or stratified), instead of the
    # patient split; `split_by` names its groups, which the leak check keeps in one part
    splitter: Callable[[TaskData, int], Split] | None = None

    def load(self, data_root: Path) -> TaskData:
        """Read the task's records from the data root (or from an installed package)."""
        data = self.loader(Path(data_root))
        missing = [a for a in self.sensitive_attributes if a not in data.attributes.columns]
        if missing:
            raise CorruptDataError(f"task {self.name}: loader did not provide attributes {missing}")
        return data

    def split(self, data: TaskData, seed: int = 0) -> Split:
        """Train/val/test rows; by patient, stratified on the target when it is categorical."""
        if self.splitter is not None:
            split = self.splitter(data, seed)
            assert_no_leak(split, data.patient_ids, self.split_by)
            return split
        strata = self._strata(data)
        if data.split is not None:
            split = predefined_split(data.split, data.patient_ids)
            return carve_validation(split, data.patient_ids, strata=strata,
                                    fraction=self.split_fractions[1] / sum(self.split_fractions[:2]),
                                    seed=seed)
        split = group_split(data.patient_ids, strata=strata, fractions=self.split_fractions,
                            seed=seed)
        assert_no_leak(split, data.patient_ids, self.split_by)
        return split

    def _strata(self, data: TaskData) -> np.ndarray | None:
        """What to stratify splits on: the class, or the event indicator for survival."""
        if self.target.stratified:
            return data.targets
        column = self.target.strata_column
        return None if column is None else np.asarray(data.targets)[:, column]

    def summary(self) -> dict[str, Any]:
        """One line of the task table."""
        return {
            "name": self.name,
            "modality": self.modality.value,
            "target": self.target.value,
            "classes": list(self.classes),
            "default_model": "auto" if self.selection else self.default_model,
            "selection": list(self.selection),
            "models": list(self.models),
            "sensitive_attributes": list(self.sensitive_attributes),
            "primary_metric": self.primary_metric,
            "description": self.description,
        }

