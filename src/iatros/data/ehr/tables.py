"""Reading relational EHR exports (MIMIC, eICU): find a table's CSV and map it to events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from iatros.data.ehr.schema import SkipLog
from iatros.errors import CorruptDataError, MissingDataError


def find_table(folder: Path, name: str) -> Path | None:
    """`NAME.csv` or `NAME.csv.gz`, matching the name case-insensitively."""
    wanted = {f"{name.lower()}.csv", f"{name.lower()}.csv.gz"}
    for path in sorted(folder.iterdir()):
        if path.name.lower() in wanted and path.is_file():
            return path
    return None


def require_table(folder: Path, name: str, source: str) -> Path:
    path = find_table(folder, name)
    if path is None:
        raise MissingDataError(f"{source}: {name}.csv(.gz) not found in {folder}; it is required")
    return path


def scan_table(path: Path) -> pl.LazyFrame:
    """A lazy, all-text view of a CSV with lower-case column names (MIMIC ships upper case)."""
    try:
        frame = pl.scan_csv(path, infer_schema=False, quote_char='"', null_values=[""])
        return frame.rename({c: c.lower() for c in frame.collect_schema().names()})
    except pl.exceptions.PolarsError as e:
        raise CorruptDataError(f"{path}: cannot read as CSV: {e}") from e


def read_table(path: Path, columns: list[str]) -> pl.DataFrame:
    """The named columns of a table as text; a missing column is a clear error."""
    frame = scan_table(path)
    have = frame.collect_schema().names()
    missing = [c for c in columns if c not in have]
    if missing:
        raise CorruptDataError(f"{path}: missing column(s) {missing}; found {have[:20]}")
    try:
        return frame.select(columns).collect()
    except pl.exceptions.PolarsError as e:
        raise CorruptDataError(f"{path}: {e}") from e


def to_number(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def to_time(column: str) -> pl.Expr:
    return pl.col(column).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)


@dataclass(frozen=True)
class EventTable:
    """How one table becomes events: its time, code, value, unit and text expressions."""

    table: str
    columns: tuple[str, ...]
    time: Callable[[], pl.Expr]
    code: Callable[[], pl.Expr]
    value: Callable[[], pl.Expr] | None = None
    unit: Callable[[], pl.Expr] | None = None
    text: Callable[[], pl.Expr] | None = None
    keep: Callable[[], pl.Expr] | None = None
    stay: str = "hadm_id"
    subject: str = "subject_id"


def events_from_table(path: Path, spec: EventTable, skips: SkipLog,
                      label: str) -> pl.DataFrame:
    """Map a table to events; rows without a time or code are skipped and counted."""
    cols = list(dict.fromkeys([spec.subject, spec.stay, *spec.columns]))
    # rows are numbered as lines of the file (header = line 1) before any row is filtered out
    frame = read_table(path, cols).with_row_index("_row", offset=2)
    if spec.keep is not None:
        frame = frame.filter(spec.keep())
    none = pl.lit(None)
    mapped = frame.select(
        pl.col(spec.subject).alias("subject_id"), pl.col(spec.stay).alias("stay_id"),
        spec.time().alias("time"), spec.code().alias("code"),
        (spec.value() if spec.value else none.cast(pl.Float64)).alias("numeric_value"),
        (spec.text() if spec.text else none.cast(pl.Utf8)).alias("text_value"),
        (spec.unit() if spec.unit else none.cast(pl.Utf8)).alias("unit"),
        "_row",
    )
    bad = mapped.filter(pl.col("time").is_null() | pl.col("code").is_null())
    for row in bad.head(1000).iter_rows(named=True):
        skips.add(f"{label}/{path.name}:{row['_row']}", "no time or code")
    for _ in range(max(0, bad.height - 1000)):
        skips.add(f"{label}/{path.name}", "no time or code")
    return mapped.filter(pl.col("time").is_not_null() & pl.col("code").is_not_null()).drop("_row")
