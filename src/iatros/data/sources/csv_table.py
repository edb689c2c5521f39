"""A user's own table (CSV): read it, check the columns, encode categories, report skipped rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.sources.table_encoding import (
    TableEncoding,
    file_lines,
    fit_encoding,
    is_free_text,
)
from iatros.errors import ConfigError, CorruptDataError, MissingDataError

log = logging.getLogger("iatros")


@dataclass
class CsvTable:
    """Features (numeric, categories one-hot encoded), raw target, ids and attribute columns."""

    features: pd.DataFrame
    encoding: TableEncoding
    target: pd.Series  # indexed by each row's position in the file, so errors can name lines
    patient_ids: np.ndarray
    attributes: pd.DataFrame
    path: Path
    skipped: dict[str, int]


def one_hot_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every non-numeric column one-hot encoded (float), numeric columns untouched."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return pd.get_dummies(frame, columns=text, dummy_na=False, dtype=float)


def resolve_path(path: str, root: Path) -> Path:
    """An absolute path, else relative to the working directory, else to the data root."""
    candidate = Path(path).expanduser()
    for option in (candidate, Path(root) / path):
        if option.is_file():
            return option.resolve()
    raise MissingDataError(f"CSV file {path!r} not found (looked at {candidate.resolve()} and "
                           f"{Path(root) / path}); check the path or --data-root")


def read_table(path: Path) -> pd.DataFrame:
    """The CSV as a DataFrame; an unreadable or malformed file names the file and the problem."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise CorruptDataError(f"{path}: cannot parse as CSV ({e})") from e
    if frame.empty:
        raise CorruptDataError(f"{path}: the table has no rows")
    return frame


def _require(frame: pd.DataFrame, columns: list[str], path: Path, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: {what} column(s) {missing} not found; columns are "
                          f"{', '.join(map(str, frame.columns))}")


def load_csv_table(path: Path, target: str, *, patient_id: str | None = None,
                   attributes: tuple[str, ...] = (), drop: tuple[str, ...] = (),
                   allow_text: bool = False, encoding: dict[str, Any] | None = None) -> CsvTable:
    """Split a table into features / target / ids / attributes; rows without a target are skipped
    and counted (a log line names their lines). `encoding`, a trained run's, is applied as it is
    (another copy of the table); otherwise features follow `fit_encoding`: free-text or
    identifier columns are refused unless `allow_text`; an attribute must hold groups."""
    frame = read_table(path)
    _require(frame, [target], path, "target")
    _require(frame, [c for c in (patient_id,) if c], path, "patient id")
    _require(frame, list(attributes) + list(drop), path, "attribute/drop")
    missing_target = frame[target].isna().to_numpy()
    skipped = {}
    if missing_target.any():
        rows = np.flatnonzero(missing_target)
        skipped["missing target"] = int(len(rows))
        log.warning("%s: skipped %d row(s) with no %r value (%s)", path, len(rows), target,
                    file_lines(rows))
        frame = frame.loc[~missing_target]
    positions = frame.index.to_numpy()  # each kept row's position in the file (line = it + 2)
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise CorruptDataError(f"{path}: no row has a value in the target column {target!r}")
    ids = (frame[patient_id].astype(str).to_numpy() if patient_id
           else np.array([f"row-{i}" for i in range(len(frame))]))
    for column in attributes:
        if is_free_text(frame[column]):
            raise ConfigError(f"{path}: attribute {column!r} has {frame[column].nunique()} distinct "
                              f"values; audits compare groups (sex, age band, site), so an "
                              f"identifier or free-text column cannot be one")
    excluded = {target, *(c for c in (patient_id,) if c), *drop}
    raw = frame.drop(columns=[c for c in frame.columns if c in excluded])
    if raw.shape[1] == 0:
        raise ConfigError(f"{path}: no feature columns left after removing target, id and drops")
    encoding = (TableEncoding.from_dict(encoding) if encoding is not None
                else fit_encoding(raw, path, allow_text=allow_text))
    features = encoding.transform(raw, path, positions)
    attrs = frame[list(attributes)].astype(object).where(frame[list(attributes)].notna(), "unknown")
    return CsvTable(features, encoding, pd.Series(frame[target].to_numpy(), index=positions,
                                                          name=target), ids,
                    attrs.astype(str).reset_index(drop=True), path, skipped)
