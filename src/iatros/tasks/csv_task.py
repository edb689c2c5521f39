"""`csv:PATH`: a task on a user's own table, e.g. `iatros train csv:cohort.csv --target died`.

Options: target (required), kind (binary, multiclass, ordinal, regression; inferred when absent),
positive (the positive value of a binary target), patient_id, attributes (audited columns), drop
(columns to ignore). The resolved kind and classes are saved with the run, so evaluating it on
another copy of the table decodes the target the same way.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.sources.csv_table import load_csv_table, read_table, resolve_path
from iatros.errors import ConfigError, CorruptDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_family

KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL, TargetKind.REGRESSION)
PRIMARY = {TargetKind.BINARY: "auroc", TargetKind.MULTICLASS: "auroc", TargetKind.ORDINAL: "kappa",
           TargetKind.REGRESSION: "rmse", TargetKind.SURVIVAL: "c_index"}


def infer_kind(values: pd.Series) -> TargetKind:
    """Binary for two values, multiclass for few labels or small integers, else regression."""
    values = values.dropna()
    n_unique = values.nunique()
    if n_unique == 2:
        return TargetKind.BINARY
    if not pd.api.types.is_numeric_dtype(values):
        return TargetKind.MULTICLASS
    integral = np.allclose(values, np.round(values))
    return TargetKind.MULTICLASS if integral and n_unique <= 10 else TargetKind.REGRESSION


def class_labels(values: pd.Series, kind: TargetKind, positive: str | None) -> tuple[str, ...]:
    labels = sorted(values.dropna().astype(str).unique(), key=_natural)
    if kind is TargetKind.BINARY and positive is not None:
        if positive not in labels:
            raise ConfigError(f"positive value {positive!r} is not among the target's values "
                              f"{labels}")
        labels = [v for v in labels if v != positive] + [positive]
    return tuple(labels)


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def encode_target(target: pd.Series, kind: TargetKind, classes: tuple[str, ...], path: Path) -> np.ndarray:
    if kind is TargetKind.REGRESSION:
        try:
            return target.astype("float64").to_numpy()
        except ValueError as e:
            raise CorruptDataError(f"{path}: target is not numeric ({e})") from e
    lookup = {c: i for i, c in enumerate(classes)}
    as_text = target.astype(str)
    unknown = sorted(set(as_text) - set(lookup))
    if unknown:
        raise CorruptDataError(f"{path}: target values {unknown[:5]} were not seen when the task "
                               f"was defined (classes {list(classes)})")
    return as_text.map(lookup).to_numpy(np.int64)


def _survival_target(frame: pd.DataFrame, table: Any, options: dict[str, Any], path: Path) -> np.ndarray:
    """(time, event) of the rows kept, with the checks survival models need."""
    from iatros.tasks.survival import survival_targets

    event = frame.loc[table.target.index, options["event"]]
    values = pd.to_numeric(event, errors="coerce")
    bad = np.flatnonzero(~values.isin([0, 1]).to_numpy())
    if len(bad):
        raise CorruptDataError(f"{path}: event column {options['event']!r} must hold 0 or 1; rows "
                               f"{', '.join(str(r + 2) for r in bad[:5])} do not")
    if values.sum() == 0:
        raise CorruptDataError(f"{path}: every row is censored ({options['event']!r} is 0 "
                               f"everywhere): there is no event to learn from")
    return survival_targets(pd.to_numeric(table.target, errors="coerce"), values.to_numpy(), str(path))


def _load(root: Path, *, argument: str, options: dict[str, Any]) -> TaskData:
    path = resolve_path(argument, root)
    kind = TargetKind(options["kind"])
    survival = kind is TargetKind.SURVIVAL
    drop = tuple(options.get("drop", ())) + ((options["event"],) if survival else ())
    table = load_csv_table(path, options["target"], patient_id=options.get("patient_id"),
                           attributes=tuple(options.get("attributes", ())), drop=drop)
    targets = (_survival_target(read_table(path).dropna(subset=[options["target"]]).reset_index(drop=True),
                                table, options, path) if survival
               else encode_target(table.target, kind, tuple(options.get("classes", ())), path))
    return TaskData(
        inputs=table.features.to_numpy(np.float32),
        targets=targets,
        patient_ids=table.patient_ids, attributes=table.attributes,
        feature_names=list(table.features.columns), source=f"csv:{path}",
    )


def csv_task(argument: str, options: dict[str, Any]) -> Task:
    """Build the task for `csv:PATH` from the table itself and the user's options."""
    resolved = dict(options)
    if resolved.get("time") or resolved.get("event"):
        if not (resolved.get("time") and resolved.get("event")):
            raise ConfigError(f"csv:{argument} survival tasks need both --time COLUMN and --event COLUMN")
        resolved.update(target=resolved["time"], kind=TargetKind.SURVIVAL.value, classes=[])
    if not resolved.get("target"):
        raise ConfigError(f"csv:{argument} needs the outcome column: add --target COLUMN "
                          f"(or --time and --event for survival)")
    if "kind" not in resolved or "classes" not in resolved:
        path = resolve_path(argument, Path(options.get("data_root", ".")))
        frame = read_table(path)
        if resolved["target"] not in frame.columns:
            raise ConfigError(f"{path}: target column {resolved['target']!r} not found; columns are "
                              f"{', '.join(map(str, frame.columns))}")
        values = frame[resolved["target"]]
        kind = TargetKind(resolved["kind"]) if resolved.get("kind") else infer_kind(values)
        if kind not in KINDS:
            raise ConfigError(f"csv tasks support kinds {[k.value for k in KINDS]}, not {kind.value}")
        resolved["kind"] = kind.value
        resolved["classes"] = (list(class_labels(values, kind, resolved.get("positive")))
                               if kind is not TargetKind.REGRESSION else [])
    resolved.pop("data_root", None)
    kind = TargetKind(resolved["kind"])
    return Task(
        name=f"csv:{argument}",
        description=f"{resolved['target']} from the other columns of {Path(argument).name}",
        modality=Modality.TABULAR, target=kind,
        loader=partial(_load, argument=argument, options=resolved),
        default_model="deepsurv" if kind is TargetKind.SURVIVAL else "mlp",
        models=(("deepsurv", "logistic-hazard", "deephit", "coxph", "rsf")
                if kind is TargetKind.SURVIVAL else ("mlp", "logreg", "gbm")),
        classes=tuple(resolved["classes"]),
        sensitive_attributes=tuple(resolved.get("attributes", ())),
        primary_metric=PRIMARY[kind],
        source=f"user table {argument}",
        intended_use="Defined by the user who supplied the table.",
        limitations=("A user-supplied table: its provenance, coding and cohort selection are "
                     "not checked by iatros.",),
        extra={"options": resolved},
    )


register_family("csv", csv_task)
