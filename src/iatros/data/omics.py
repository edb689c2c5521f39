"""Omics matrices: samples x features from CSV, gzipped CSV or Parquet, checked cell by cell, and
several omics of the same samples joined by sample id.

A matrix file holds one row per sample: the sample id in its first column (or the column named
by `sample_id`), then one numeric column per feature (gene, miRNA, protein, ...). Empty cells and
NA / NaN / null are missing values; any other cell that is not a number is an error naming the
file, the line, the sample and the column. Joining keeps every labelled sample measured by at
least one omic: an omic a sample lacks becomes an all-missing block of the joined matrix (the
models treat it as absent, never as zeros), and `OmicsTable.report()` lists, one line each,
which ids are present in one omic and not another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.errors import ConfigError, CorruptDataError, MissingDataError

MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a", "#n/a"})
PARQUET_SUFFIXES = (".parquet", ".pq")
H5AD_SUFFIXES = (".h5ad",)
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
REPORT_COLUMNS = ["sample", "omic", "problem", "action"]


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _anndata() -> object:
    try:
        import anndata
    except ImportError as e:
        raise ConfigError("reading .h5ad needs anndata: pip install 'iatros[omics]'") from e
    return anndata


def _read_h5ad(path: Path) -> pd.DataFrame:
    """An AnnData file as one frame: the sample id (`obs_names`), the `obs` columns (labels,
    covariates), then `X` with the `var_names` as columns; `attrs["annotations"]` names the obs
    columns, which are never features."""
    anndata = _anndata()
    try:
        adata = anndata.read_h5ad(path)  # type: ignore[attr-defined]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CorruptDataError(f"{path}: cannot read as AnnData .h5ad ({e})") from e
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    obs = adata.obs.reset_index(drop=True)
    clash = [c for c in obs.columns if c in set(map(str, adata.var_names)) or c == "sample"]
    if clash:
        raise CorruptDataError(f"{path}: obs column(s) {clash[:5]} have a feature's name (or "
                               f"'sample'); rename them")
    features = pd.DataFrame(x, columns=[str(v) for v in adata.var_names])
    frame = pd.concat([pd.DataFrame({"sample": [str(o) for o in adata.obs_names]}), obs,
                       features], axis=1)
    frame.attrs["annotations"] = [str(c) for c in obs.columns]
    return frame


def annotation_columns(raw: pd.DataFrame) -> set[str]:
    """Columns of a read file that are never features (an .h5ad file's obs columns)."""
    return set(raw.attrs.get("annotations") or ())


def matrix_header(path: Path) -> tuple[list[str], set[str]]:
    """A matrix file's column names (sample id first) and those that are not features, without
    reading its values where the format allows."""
    name = path.name.lower()
    if name.endswith(H5AD_SUFFIXES):
        anndata = _anndata()
        try:
            adata = anndata.read_h5ad(path, backed="r")  # type: ignore[attr-defined]
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise CorruptDataError(f"{path}: cannot read as AnnData .h5ad ({e})") from e
        obs = [str(c) for c in adata.obs.columns]
        columns = ["sample", *obs, *(str(v) for v in adata.var_names)]
        adata.file.close()
        return columns, set(obs)
    if _is_parquet(path):
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names
                if not c.startswith("__index_level")], set()
    sep = "\t" if ".tsv" in name else ","
    try:
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns], set()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise CorruptDataError(f"{path}: cannot read the header ({e})") from e


def _read_raw(path: Path) -> pd.DataFrame:
    """The file as a frame of strings (CSV) or its own types (Parquet, .h5ad); parse errors
    name it."""
    if not path.is_file():
        raise MissingDataError(f"omics matrix {path} not found")
    name = path.name.lower()
    if name.endswith(H5AD_SUFFIXES):
        return _read_h5ad(path)
    try:
        if _is_parquet(path):
            return pd.read_parquet(path)
        if name.endswith(CSV_SUFFIXES):
            sep = "\t" if ".tsv" in name else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, OSError,
            ValueError) as e:
        raise CorruptDataError(f"{path}: cannot read as an omics matrix ({e})") from e
    raise ConfigError(f"{path}: unknown matrix format; expected one of "
                      f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES + H5AD_SUFFIXES)}")


def _numeric_column(values: pd.Series, path: Path, column: str, ids: np.ndarray) -> np.ndarray:
    """A column as float64; a cell that is neither a number nor a missing token is an error
    naming the file's line, the sample and the column."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    missing = text.str.lower().isin(MISSING_TOKENS).to_numpy()
    parsed = pd.to_numeric(text.where(~missing, None), errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(np.isnan(parsed) & ~missing)
    if len(bad):
        k = int(bad[0])
        more = f" ({len(bad) - 1} more cell(s) in this column)" if len(bad) > 1 else ""
        raise CorruptDataError(
            f"{path}: line {k + 2}, sample {ids[k]!r}, column {column!r}: {text.iloc[k]!r} is "
            f"not a number{more}; expected numbers, or an empty cell / NA for a missing value")
    return parsed


def _with_ids(raw: pd.DataFrame, path: Path, sample_id: str | None) -> tuple[str, np.ndarray]:
    """The sample-id column's name and its values; empty or repeated ids are errors."""
    id_column = sample_id if sample_id is not None else str(raw.columns[0])
    if id_column not in raw.columns:
        raise ConfigError(f"{path}: sample-id column {id_column!r} not found; columns start "
                          f"{', '.join(map(str, raw.columns[:5]))}")
    ids = raw[id_column].astype(str).str.strip().to_numpy()
    empty = np.flatnonzero((ids == "") | (ids == "nan"))
    if len(empty):
        raise CorruptDataError(f"{path}: line {int(empty[0]) + 2} has no sample id")
    duplicated = pd.Index(ids)[pd.Index(ids).duplicated()].unique()
    if len(duplicated):
        raise CorruptDataError(f"{path}: sample id(s) {list(duplicated[:5])} appear more than once")
    return id_column, ids


def _raw(path: Path, sample_id: str | None) -> pd.DataFrame:
    raw = _read_raw(path)
    if _is_parquet(path) and sample_id is None and not isinstance(raw.index, pd.RangeIndex):
        raw = raw.reset_index()
    return raw


def read_table_columns(path: Path | str, columns: Sequence[str],
                       sample_id: str | None = None) -> pd.DataFrame:
    """Named columns of a table (e.g. the outcome) as text, indexed by sample id."""
    path = Path(path)
    raw = _raw(path, sample_id)
    if raw.empty:
        raise CorruptDataError(f"{path}: the table has no rows")
    id_column, ids = _with_ids(raw, path, sample_id)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ConfigError(f"{path}: column(s) {missing} not found; columns start "
                          f"{', '.join(map(str, raw.columns[:8]))}")
    out = raw[list(columns)].copy()
    out.index = pd.Index(ids, name="sample")
    return out


def read_matrix(path: Path | str, sample_id: str | None = None,
                skip: Sequence[str] = ()) -> pd.DataFrame:
    """A samples x features float matrix indexed by sample id (strings), features as columns;
    `skip` columns (an outcome kept in the same file) are left out.

    Duplicate sample ids or feature names, an empty matrix and non-numeric cells are errors
    naming the file (and line, sample and column for a cell)."""
    path = Path(path)
    raw = _raw(path, sample_id)
    if raw.shape[1] < 2 or raw.empty:
        raise CorruptDataError(f"{path}: an omics matrix needs a sample-id column and at least "
                               f"one feature column, and one row per sample; found "
                               f"{raw.shape[0]} row(s) and {raw.shape[1]} column(s)")
    id_column, ids = _with_ids(raw, path, sample_id)
    never = set(map(str, skip)) | annotation_columns(raw)
    features = [c for c in raw.columns if c != id_column and str(c) not in never]
    names = [str(c) for c in features]
    if len(set(names)) != len(names):
        seen = pd.Index(names)
        raise CorruptDataError(f"{path}: feature column(s) {list(seen[seen.duplicated()][:5])} "
                               f"appear more than once")
    values = (np.column_stack([_numeric_column(raw[c], path, str(c), ids) for c in features])
              if features else np.zeros((len(ids), 0)))
    return pd.DataFrame(values, index=pd.Index(ids, name="sample"), columns=names)


@dataclass
class OmicsTable:
    """Several omics joined on sample id: one float32 matrix (blocks side by side, NaN where a
    value or a whole omic is missing), the block layout and what the join did to each id."""

    samples: np.ndarray
    values: np.ndarray
    blocks: list[tuple[str, int]]
    feature_names: list[str]
    issues: list[dict[str, str]] = field(default_factory=list)

    def present(self) -> np.ndarray:
        """(samples, omics) True where the sample has at least one value of that omic."""
        out, start = [], 0
        for _, width in self.blocks:
            out.append(~np.isnan(self.values[:, start:start + width]).all(axis=1))
            start += width
        return np.column_stack(out) if out else np.zeros((len(self.samples), 0), bool)

    def report(self) -> pd.DataFrame:
        """One line per id missing from an omic, or dropped: sample, omic, problem, action."""
        return pd.DataFrame(self.issues, columns=REPORT_COLUMNS)

    def summary(self) -> dict[str, object]:
        """Counts only (no ids), for config.json and log lines."""
        present = self.present()
        return {"samples": int(len(self.samples)),
                "omics": {name: {"features": int(width), "samples": int(present[:, j].sum())}
                          for j, (name, width) in enumerate(self.blocks)},
                "issues": int(len(self.issues))}


def join_omics(matrices: Mapping[str, pd.DataFrame], samples: Sequence[str],
               widths: Mapping[str, int] | None = None) -> OmicsTable:
    """The labelled `samples` across every omic, in order; `widths`, when given, is the
    layout a task declares, checked against each matrix.

    A sample an omic lacks gets that block all-missing and a report line; a sample no omic has is
    dropped (reported); ids in an omic without a label are reported and left out."""
    samples = [str(s) for s in samples]
    issues: list[dict[str, str]] = []
    wanted = pd.Index(samples)
    blocks, names, parts = [], [], []
    presence = np.zeros((len(samples), len(matrices)), bool)
    for j, (omic, matrix) in enumerate(matrices.items()):
        width, columns = matrix.shape[1], list(matrix.columns)
        block = matrix.reindex(wanted).to_numpy(np.float32)
        presence[:, j] = wanted.isin(matrix.index)
        for s in wanted[~presence[:, j]]:
            issues.append({"sample": s, "omic": omic, "problem": "sample id absent from this "
                           "omic's matrix", "action": "omic treated as missing"})
        for s in matrix.index[~matrix.index.isin(wanted)]:
            issues.append({"sample": str(s), "omic": omic, "problem": "sample id in this "
                           "omic but without a label", "action": "left out"})
        if widths and omic in widths and int(widths[omic]) != width:
            raise CorruptDataError(f"omic {omic!r}: {width} feature columns, expected "
                                   f"{widths[omic]} (the task's declared layout)")
        blocks.append((omic, int(width)))
        names += [f"{omic}:{c}" for c in columns]
        parts.append(block)
    values = np.concatenate(parts, axis=1) if parts else np.zeros((len(samples), 0), np.float32)
    keep = np.ones(len(samples), bool)
    if matrices:
        observed = np.zeros(len(samples), bool)
        start = 0
        for _, width in blocks:
            observed |= ~np.isnan(values[:, start:start + width]).all(axis=1)
            start += width
        keep = observed
    for s in np.asarray(samples)[~keep]:
        issues.append({"sample": str(s), "omic": "(all)", "problem": "no omic measures this "
                       "sample", "action": "sample dropped"})
    return OmicsTable(np.asarray(samples)[keep], values[keep], blocks, names, issues)
