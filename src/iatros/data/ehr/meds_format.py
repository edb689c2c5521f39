"""The event format as a MEDS dataset (Medical Event Data Standard, `meds` package schemas).

A converted folder is a MEDS root beside iatros' own tables:

    OUT/data/0.parquet                  MEDS data: subject_id (int64), time, code, numeric_value
                                        (float32), text_value, plus stay_id, unit, iatros_subject_id
                                        and iatros_derived as extension columns
    OUT/metadata/dataset.json           dataset name, ETL (iatros and its version), MEDS version
    OUT/metadata/codes.parquet          every code with a description where the source gives one
    OUT/metadata/subject_splits.parquet train / tuning / held_out by patient (70/15/15, seed 0)
    OUT/events.parquet, stays.parquet   iatros' tables (stays carry the outcomes)

Besides the source's events, each stay adds `IATROS//STAY_START` and `IATROS//STAY_END` at its
start and end, each patient a static `GENDER//M|F` (time null), and a death `MEDS_DEATH` at
its time unless the source already recorded one; those rows have `iatros_derived` true, so
reading the folder back as MEDS gives the source's events exactly. Every table is validated
with the `meds` schemas before it is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SHARD = "0"
STAY_START, STAY_END = "IATROS//STAY_START", "IATROS//STAY_END"
DERIVED_PREFIXES = ("IATROS//", "GENDER//")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
DESCRIPTIONS = {STAY_START: "start of an iatros stay (ICU stay, admission or encounter)",
                STAY_END: "end of an iatros stay", "MEDS_DEATH": "death",
                "GENDER//M": "sex: male", "GENDER//F": "sex: female"}


def subject_numbers(subjects: pl.Series) -> dict[str, int]:
    """MEDS wants int64 subject ids: the ids themselves when all are integers, else their rank."""
    ids = sorted(set(subjects.drop_nulls().to_list()))
    if all(s.isdigit() and len(s) < 19 for s in ids):
        return {s: int(s) for s in ids}
    return {s: i for i, s in enumerate(ids)}


def derived_events(events: pl.DataFrame | pl.LazyFrame, stays: pl.DataFrame) -> pl.DataFrame:
    """Stay boundaries, sex and deaths as events (see the module docstring)."""
    def rows(code: pl.Expr, time: pl.Expr, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(pl.col("subject_id"), pl.col("stay_id"), time.cast(pl.Datetime("us"))
                            .alias("time"), code.alias("code"))

    recorded = set(events.lazy().filter(pl.col("code") == "MEDS_DEATH").select("subject_id")
                   .collect()["subject_id"].to_list())
    deaths = (stays.filter(pl.col("death_time").is_not_null()
                           & ~pl.col("subject_id").is_in(list(recorded)))
              .sort("death_time").unique("subject_id", keep="first", maintain_order=True))
    sexes = (stays.filter(pl.col("sex").is_in(["M", "F"])).sort("start_time")
             .unique("subject_id", keep="first", maintain_order=True))
    parts = [rows(pl.lit(STAY_START), pl.col("start_time"), stays),
             rows(pl.lit(STAY_END), pl.col("end_time"), stays.filter(pl.col("end_time").is_not_null())),
             rows(pl.lit("MEDS_DEATH"), pl.col("death_time"), deaths),
             rows(pl.concat_str(pl.lit("GENDER//"), pl.col("sex")), pl.lit(None), sexes)
             .with_columns(pl.lit(None, pl.Utf8).alias("stay_id"))]
    return pl.concat(parts, how="vertical_relaxed")


DATA_COLUMNS = ("subject_id", "time", "code", "numeric_value", "text_value", "stay_id", "unit",
                "iatros_subject_id", "iatros_derived")
DATA_ORDER = ("subject_id", "time", "code")


def data_frame(events: pl.DataFrame | pl.LazyFrame, stays: pl.DataFrame) -> pl.LazyFrame:
    """The MEDS data rows, unsorted and lazy (the events are read as they are consumed): the
    source's events and the derived ones, with MEDS' int64 subject ids."""
    lazy = events.lazy()
    seen = lazy.select(pl.col("subject_id").unique()).collect()["subject_id"]
    numbers = subject_numbers(pl.concat([stays["subject_id"], seen]))
    # a join with the small id table streams; replace_strict with a dict held every row in memory
    ids = pl.DataFrame({"subject_id": list(numbers), "_number": list(numbers.values())},
                       schema={"subject_id": pl.Utf8, "_number": pl.Int64}).lazy()
    source = lazy.select("subject_id", "stay_id", "time", "code", "numeric_value", "text_value",
                         "unit").with_columns(pl.lit(False).alias("iatros_derived"))
    derived = derived_events(lazy, stays).with_columns(
        pl.lit(None, pl.Float64).alias("numeric_value"), pl.lit(None, pl.Utf8).alias("text_value"),
        pl.lit(None, pl.Utf8).alias("unit"), pl.lit(True).alias("iatros_derived"))
    return (pl.concat([source, derived.lazy().select(source.collect_schema().names())],
                      how="vertical_relaxed")
            .filter(pl.col("subject_id").is_not_null() & pl.col("code").is_not_null())
            .join(ids, on="subject_id", how="left", maintain_order="left")
            .with_columns(pl.col("subject_id").alias("iatros_subject_id"),
                          pl.col("_number").alias("subject_id"),
                          pl.col("numeric_value").cast(pl.Float32))
            .select(DATA_COLUMNS))


def _validated(table: Any) -> Any:
    import meds

    aligned = meds.DataSchema.align(table)
    meds.DataSchema.validate(aligned)
    return aligned


def sorted_table(data: pl.LazyFrame) -> Any:
    """`data_frame` rows as a validated MEDS data table (pyarrow) in memory, sorted by subject,
    then time (static first)."""
    frame = data.sort(list(DATA_ORDER), nulls_last=False, maintain_order=True)
    return _validated(frame.collect().to_arrow())


def data_table(events: pl.DataFrame, stays: pl.DataFrame) -> Any:
    """The MEDS data table (pyarrow), validated and sorted, in memory."""
    return sorted_table(data_frame(events, stays))


def write_validated(sorted_file: Path, path: Path, batch_rows: int = 1 << 20) -> None:
    """Copy a sorted data file to `path` batch by batch, each aligned to and validated against
    the MEDS data schema (memory bounded by one batch)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(sorted_file)
    writer = None
    try:
        for batch in source.iter_batches(batch_size=batch_rows):
            table = _validated(pa.Table.from_batches([batch]))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is None:   # no rows: the empty table, still validated
            empty = _validated(source.schema_arrow.empty_table())
            pq.write_table(empty, path)
    finally:
        if writer is not None:
            writer.close()


def codes_table(data: Any, descriptions: dict[str, str] | None = None) -> Any:
    """metadata/codes.parquet: every code of the data (a MEDS data table or the codes
    themselves) with its description (null when unknown)."""
    import meds
    import pyarrow as pa

    known = {**DESCRIPTIONS, **(descriptions or {})}
    values = data.column("code").to_pylist() if hasattr(data, "column") else list(data)
    codes = sorted(set(values))
    table = pa.table({"code": pa.array(codes, pa.string()),
                      "description": pa.array([known.get(c) for c in codes], pa.string()),
                      "parent_codes": pa.array([[] for _ in codes], pa.list_(pa.string()))})
    meds.CodeMetadataSchema.validate(table)
    return table


def splits_table(data: Any, seed: int = 0) -> Any:
    """metadata/subject_splits.parquet: each patient (of a MEDS data table, or the subject ids
    themselves) in train, tuning or held_out."""
    import meds
    import pyarrow as pa

    values = data.column("subject_id").to_numpy() if hasattr(data, "column") else data
    subjects = np.unique(np.asarray(values, dtype=np.int64))
    order = np.random.default_rng(seed).permutation(len(subjects))
    n = len(subjects)
    n_held = int(round(SPLIT_FRACTIONS[2] * n))
    n_tune = int(round(SPLIT_FRACTIONS[1] * n))
    names = np.array([meds.train_split] * n, dtype=object)
    names[order[n - n_held:]] = meds.held_out_split
    names[order[n - n_held - n_tune:n - n_held]] = meds.tuning_split
    table = pa.table({"subject_id": pa.array(subjects, pa.int64()),
                      "split": pa.array(names.tolist(), pa.string())})
    meds.SubjectSplitSchema.validate(table)
    return table


def dataset_metadata(source: str, input_path: str) -> dict[str, Any]:
    """metadata/dataset.json, validated."""
    from importlib.metadata import PackageNotFoundError, version

    import meds

    try:
        etl_version = version("iatros")
    except PackageNotFoundError:  # running from a source tree that was never installed
        etl_version = "unknown"
    meta = {"dataset_name": source, "dataset_version": Path(input_path).name or input_path,
            "etl_name": "iatros", "etl_version": etl_version,
            "meds_version": getattr(meds, "__version__", "unknown"),
            "created_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "raw_source_id_columns": ["stay_id", "iatros_subject_id"],
            "code_modifier_columns": ["unit"],
            "other_extension_columns": ["iatros_derived"]}
    meds.DatasetMetadataSchema.validate(meta)
    return meta


def meds_files(out: Path) -> dict[str, Path]:
    """The MEDS files of a converted folder, by their path relative to it."""
    import meds

    names = [f"{meds.data_subdirectory}/{SHARD}.parquet", meds.code_metadata_filepath,
             meds.subject_splits_filepath, meds.dataset_metadata_filepath]
    return {name: out / name for name in names}
