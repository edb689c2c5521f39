"""Outcome columns of a user's table or labels file, shared by the `csv:`, `images:` and `ehr:`
families: which kind a column holds, its classes, its encoding, survival (time, event) pairs,
and the default metric and models per kind. Problems name the file and its line numbers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.sources.table_encoding import file_lines
from iatros.errors import ConfigError, CorruptDataError
from iatros.kinds import TargetKind
from iatros.targets import survival_pairs

log = logging.getLogger("iatros")

TABLE_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL, TargetKind.REGRESSION)
PRIMARY_METRIC = {TargetKind.BINARY: "auroc", TargetKind.MULTICLASS: "auroc",
                  TargetKind.ORDINAL: "kappa", TargetKind.REGRESSION: "rmse",
                  TargetKind.SURVIVAL: "c_index", TargetKind.MULTILABEL: "auroc"}
SURVIVAL_MODELS = ("deepsurv", "logistic-hazard", "deephit", "coxph", "rsf")
TABLE_MODELS = {TargetKind.SURVIVAL: SURVIVAL_MODELS}
DEFAULT_TABLE_MODELS = ("mlp", "logreg", "gbm")
N_CLASSES = {TargetKind.BINARY: 2}
STRAY_SHARE = 0.01  # a value this rare beside common ones looks like a typo, not a class


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _stray_values(values: pd.Series) -> list[str]:
    """Values beside a binary-looking outcome (two values of 10+ rows each, every other value at
    most 5 rows and 1% of rows): typos such as "2" or "yes" in a 0/1 column, not classes."""
    counts = values.astype(str).value_counts()
    common, rest = counts[counts >= 10], counts[counts < 10]
    if len(common) != 2 or rest.empty or len(rest) + 2 != len(counts):
        return []
    rare = rest[(rest <= 5) & (rest <= STRAY_SHARE * len(values))]
    return list(rare.index) if len(rare) == len(rest) else []


def infer_kind(values: pd.Series, source: str = "") -> TargetKind:
    """Binary for two values, multiclass for few labels or small integers, else regression.

    A value much rarer than the others (a typo beside 0/1, say) is an error naming its lines,
    rather than silently becoming a class of its own."""
    values = values.dropna()
    stray = _stray_values(values)
    if stray:
        rows = np.flatnonzero(values.astype(str).isin(stray).to_numpy())
        positions = values.index.to_numpy()[rows]
        raise CorruptDataError(f"{source}: the outcome has rare value(s) {stray[:5]} on "
                               f"{file_lines(positions)} beside common ones: fix or remove those rows, "
                               f"or pass --kind multiclass if they are real classes")
    n_unique = values.nunique()
    if n_unique < 2:
        raise ConfigError(f"{source}: the outcome has a single value "
                          f"{values.iloc[0] if len(values) else 'none'!r}: there is nothing to "
                          f"predict; check the column (--target) and the rows kept")
    if n_unique == 2:
        return TargetKind.BINARY
    if not pd.api.types.is_numeric_dtype(values):
        return TargetKind.MULTICLASS
    integral = np.allclose(values, np.round(values))
    return TargetKind.MULTICLASS if integral and n_unique <= 10 else TargetKind.REGRESSION


def class_labels(values: pd.Series, kind: TargetKind, positive: str | None,
                 source: str = "") -> tuple[str, ...]:
    """The classes in natural order (the positive class last for binary outcomes)."""
    labels = sorted(values.dropna().astype(str).unique(), key=_natural)
    if len(labels) < 2:
        raise ConfigError(f"{source}: the outcome has a single value {labels!r}: there is nothing "
                          f"to predict")
    if not kind.is_classification:
        return ()
    if positive is not None:
        if positive not in labels:
            raise ConfigError(f"positive value {positive!r} is not among the target's values "
                              f"{labels}")
        labels = [v for v in labels if v != positive] + [positive]
    if N_CLASSES.get(kind, len(labels)) != len(labels):
        counts = values.dropna().astype(str).value_counts()
        extra = list(counts.index[2:])
        rows = values.index.to_numpy()[np.flatnonzero(values.astype(str).isin(extra).to_numpy())]
        raise CorruptDataError(f"{source}: a binary outcome needs two values, found {len(labels)} "
                               f"({labels[:6]}); unexpected {extra[:5]} on {file_lines(rows)}")
    return tuple(labels)


def _numeric(target: pd.Series, classes: tuple[str, ...], source: str) -> np.ndarray:
    values = pd.to_numeric(target, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & target.notna().to_numpy())
    if len(bad):
        raise CorruptDataError(f"{source}: the outcome is not a number on "
                               f"{file_lines(target.index.to_numpy()[bad])} (e.g. "
                               f"{target.iloc[bad[0]]!r})")
    return values.to_numpy(np.float64)


def _class_index(target: pd.Series, classes: tuple[str, ...], source: str) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    as_text = target.astype(str)
    unknown = ~as_text.isin(lookup).to_numpy()
    if unknown.any():
        values = sorted(set(as_text[unknown]))
        raise CorruptDataError(f"{source}: outcome value(s) {values[:5]} on "
                               f"{file_lines(target.index.to_numpy()[np.flatnonzero(unknown)])} were not "
                               f"seen when the task was defined (classes {list(classes)})")
    return as_text.map(lookup).to_numpy(np.int64)


ENCODERS: dict[TargetKind, Callable[[pd.Series, tuple[str, ...], str], np.ndarray]] = {
    TargetKind.REGRESSION: _numeric,
    TargetKind.BINARY: _class_index,
    TargetKind.MULTICLASS: _class_index,
    TargetKind.ORDINAL: _class_index,
}


def encode_target(target: pd.Series, kind: TargetKind, classes: tuple[str, ...],
                  path: Path | str) -> np.ndarray:
    """Outcome values as the kind's targets (class indices or numbers); the Series index holds
    each value's row position in the file, so errors name its lines."""
    if kind not in ENCODERS:
        raise ConfigError(f"{path}: {kind.value} outcomes cannot come from one column")
    return ENCODERS[kind](target, classes, str(path))


def survival_targets(time: Any, event: Any, source: str = "",
                     positions: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) float array of time and 0/1 event, the pipeline's survival target.

    Checked once (`targets.survival_pairs`): times present and non-negative, events 0/1, at least
    one event; `positions` (row positions in the file) make errors name its lines. A follow-up
    of exactly 0 (an event or censoring on the day of entry, present in some public files)
    becomes half the smallest positive time, with a warning: survival models and IPCW metrics
    need time > 0."""
    def where(rows: np.ndarray) -> str:
        return file_lines(np.asarray(positions)[rows]) if positions is not None else \
            f"rows {', '.join(map(str, rows[:5]))}"
    t, e = survival_pairs(np.asarray(time).ravel(), np.asarray(event).ravel(), source or "survival",
                          allow_zero_time=True, where=where, error=CorruptDataError)
    zero = t == 0
    if zero.any():
        t[zero] = t[~zero].min() / 2
        log.warning("%s: %d row(s) with follow-up time 0 set to %g (half the shortest follow-up)",
                    source, int(zero.sum()), t[zero][0])
    return np.column_stack([t, e.astype(np.float64)])
