"""How a user's table becomes model features, fitted on the training table and applied unchanged
to new rows: numeric columns as numbers (a few junk cells become missing, with a warning naming
their lines), categorical columns one-hot by level, and free text or identifier columns refused
unless asked for, and then encoded under opaque names so no value reaches a shareable file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError

log = logging.getLogger("iatros")

JUNK_SHARE = 0.05  # a numeric column may hold this share of non-numbers (typos, "n/a")
MAX_LEVELS = 20    # a categorical column has at most this many values ...
LEVEL_SHARE = 0.2  # ... or values for at most this share of rows; beyond, it is free text / ids


def file_lines(rows: np.ndarray | list[int], limit: int = 5) -> str:
    """Positions in a table (0-based data rows) as the file's line numbers (header = line 1)."""
    rows = list(rows)
    shown = ", ".join(str(int(r) + 2) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"line{'s' if len(rows) > 1 else ''} {shown}{more}"


def _junk(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(numbers, positions of cells that are present but not numbers)."""
    parsed = pd.to_numeric(values, errors="coerce")
    bad = values.notna().to_numpy() & parsed.isna().to_numpy()
    return parsed, np.flatnonzero(bad)


def looks_numeric(values: pd.Series) -> bool:
    """Mostly numbers: at least 10 present cells and at most 5% (and at most half) of them junk."""
    present = int(values.notna().sum())
    if present < 10:
        return False
    _, bad = _junk(values)
    return len(bad) <= max(1, JUNK_SHARE * present) and len(bad) < present / 2


def is_free_text(values: pd.Series) -> bool:
    """Too many distinct values to be categories: names, ids, notes."""
    present = values.dropna().astype(str)
    levels = present.nunique()
    return levels > MAX_LEVELS and levels > LEVEL_SHARE * max(len(present), 1)


@dataclass
class TableEncoding:
    """The fitted encoding; `opaque` levels are raw values and stay out of feature names."""

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    opaque: dict[str, list[str]] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        names = list(self.numeric)
        for column, levels in self.categorical.items():
            names += [f"{column}_{level}" for level in levels]
        for column, levels in self.opaque.items():
            names += [f"{column}=#{k + 1}" for k in range(len(levels))]
        return names

    def summary(self) -> dict[str, Any]:
        """What a report may show: column names and counts, never an opaque column's values."""
        return {"numeric": len(self.numeric), "categorical": {c: len(v) for c, v in
                                                              self.categorical.items()},
                "text_features": {c: len(v) for c, v in self.opaque.items()}}

    def transform(self, frame: pd.DataFrame, path: Path | str,
                  positions: np.ndarray | None = None) -> pd.DataFrame:
        """The features of `frame` (columns it lacks are missing; junk numeric cells are missing
        with a warning naming their lines)."""
        positions = np.arange(len(frame)) if positions is None else np.asarray(positions)
        out: dict[str, Any] = {}
        for column in self.numeric:
            if column not in frame.columns:
                out[column] = np.nan
                continue
            parsed, bad = _junk(frame[column])
            if len(bad):
                shown = ", ".join(repr(str(v)) for v in frame[column].iloc[bad[:3]])
                log.warning("%s: column %r is numeric but %d cell(s) are not numbers (%s: %s); "
                            "they are treated as missing", path, column, len(bad),
                            file_lines(positions[bad]), shown)
            out[column] = parsed.to_numpy(np.float64)
        for groups in (self.categorical, self.opaque):
            for column, levels in groups.items():
                present = column in frame.columns
                values = frame[column].astype(str).where(frame[column].notna()) if present else None
                for k, level in enumerate(levels):
                    name = (f"{column}_{level}" if groups is self.categorical
                            else f"{column}=#{k + 1}")
                    out[name] = ((values == level).astype(np.float64).to_numpy() if present
                                 else np.nan)
        return pd.DataFrame(out, index=range(len(frame)), columns=self.features).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "opaque": self.opaque}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEncoding:
        return cls(list(data.get("numeric", [])), dict(data.get("categorical", {})),
                   dict(data.get("opaque", {})))


def fit_encoding(frame: pd.DataFrame, path: Path | str, *, allow_text: bool = False) -> TableEncoding:
    """Decide each column's encoding from the training table."""
    encoding = TableEncoding()
    free_text = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or looks_numeric(values):
            encoding.numeric.append(str(column))
            continue
        levels = sorted(values.dropna().astype(str).unique())
        if is_free_text(values):
            if not allow_text:
                free_text.append(f"{column!r} ({len(levels)} distinct values in "
                                 f"{int(values.notna().sum())} rows)")
                continue
            counts = values.dropna().astype(str).value_counts()
            encoding.opaque[str(column)] = [str(v) for v in counts.index]
        else:
            encoding.categorical[str(column)] = levels
    if free_text:
        raise ConfigError(f"{path}: column(s) {', '.join(free_text)} look like free text or "
                          f"identifiers (names, ids, notes), not categories; leave them out with "
                          f"--drop COLUMN, or pass --allow-text-feature to one-hot encode them "
                          f"(their values then stay out of config.json, the report and the "
                          f"registry)")
    return encoding
