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
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.outcomes import (
    DEFAULT_TABLE_MODELS,
    PRIMARY_METRIC,
    TABLE_KINDS,
    TABLE_MODELS,
    class_labels,
    encode_target,
    infer_kind,
    survival_targets,
)
from iatros.tasks.registry import register_family


def _survival_target(frame: pd.DataFrame, table: Any, options: dict[str, Any], path: Path) -> np.ndarray:
    """(time, event) of the rows kept, checked, errors naming the file's lines."""
    event = frame.loc[table.target.index, options["event"]]
    return survival_targets(table.target, event.to_numpy(), str(path),
                            positions=table.target.index.to_numpy())


def _load(root: Path, *, argument: str, options: dict[str, Any]) -> TaskData:
    path = resolve_path(argument, root)
    kind = TargetKind(options["kind"])
    drop = tuple(options.get("drop", ())) + ((options["event"],) if options.get("event") else ())
    table = load_csv_table(path, options["target"], patient_id=options.get("patient_id"),
                           attributes=tuple(options.get("attributes", ())), drop=drop,
                           allow_text=bool(options.get("allow_text_feature")),
                           encoding=options.get("encoding"))
    targets = (_survival_target(read_table(path), table, options, path) if options.get("event")
               else encode_target(table.target, kind, tuple(options.get("classes", ())), path))
    return TaskData(
        inputs=table.features.to_numpy(np.float32),
        targets=targets,
        patient_ids=table.patient_ids, attributes=table.attributes,
        feature_names=list(table.features.columns), source=f"csv:{path}",
        encoding=table.encoding.to_dict(),
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
        kind = (TargetKind(resolved["kind"]) if resolved.get("kind")
                else infer_kind(values, f"{path}, column {resolved['target']!r}"))
        if kind not in TABLE_KINDS:
            raise ConfigError(f"csv tasks support kinds {[k.value for k in TABLE_KINDS]}, "
                              f"not {kind.value}")
        resolved["kind"] = kind.value
        resolved["classes"] = list(class_labels(values, kind, resolved.get("positive"),
                                                f"{path}, column {resolved['target']!r}"))
    resolved.pop("data_root", None)
    kind = TargetKind(resolved["kind"])
    return Task(
        name=f"csv:{argument}",
        description=f"{resolved['target']} from the other columns of {Path(argument).name}",
        modality=Modality.TABULAR, target=kind,
        loader=partial(_load, argument=argument, options=resolved),
        default_model=TABLE_MODELS.get(kind, DEFAULT_TABLE_MODELS)[0],
        models=TABLE_MODELS.get(kind, DEFAULT_TABLE_MODELS),
        classes=tuple(resolved["classes"]),
        sensitive_attributes=tuple(resolved.get("attributes", ())),
        primary_metric=PRIMARY_METRIC[kind],
        source=f"user table {argument}",
        intended_use="Defined by the user who supplied the table.",
        limitations=("A user-supplied table: its provenance, coding and cohort selection are "
                     "not checked by iatros.",),
        extra={"options": resolved},
    )


register_family("csv", csv_task)
