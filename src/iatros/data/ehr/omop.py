"""OMOP CDM 5.3 / 5.4 into the event format; a stay is a VISIT_OCCURRENCE row.

Input: a folder of CSV tables (`PERSON.csv` or `person.csv`, `.csv` or `.csv.gz`, comma- or
tab-separated as Athena ships CONCEPT), a folder of Parquet tables (`person.parquet`, or a
`person/` folder of Parquet files, as a database dump gives), or a `.zip` of CSV tables.

PERSON and VISIT_OCCURRENCE are required; with DEATH they give the stays (age, sex, race,
death in the visit, visit type from CONCEPT). CONDITION_OCCURRENCE, DRUG_EXPOSURE, MEASUREMENT,
OBSERVATION, PROCEDURE_OCCURRENCE, DEVICE_EXPOSURE, VISIT_DETAIL and NOTE give the events, each
table one part (cached by its files, PERSON's and CONCEPT's); DEATH gives `MEDS_DEATH`.

Codes: a concept id becomes `VOCAB//concept_code` from CONCEPT (`SNOMED//15777000`,
`LOINC//29463-7`, `RXNORM//308182`; vocabulary upper-cased, spaces as `_`). The standard concept
(`*_concept_id`) is kept; where it is 0 the source concept (`*_source_concept_id`, e.g.
`ICD10CM//E11.9`) is used, else the source value as `OMOP_SOURCE//TABLE//value`. A concept id
missing from CONCEPT is kept as `OMOP//ID` and counted in the manifest notes.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from iatros.crypto.parquet import is_encrypted_parquet
from iatros.data.ehr.convert import Part, PartResult, Source, read_parquet
from iatros.data.ehr.schema import STAY_SCHEMA, Frame, SkipLog, add_readmission, events_frame
from iatros.errors import ConfigError, CorruptDataError, MissingDataError

NAME = "omop"
REQUIRED_TABLES = ("PERSON", "VISIT_OCCURRENCE")
STAY_EXTRA = {"visit_type": pl.Utf8, "hispanic": pl.Int8, "readmit_30d": pl.Int8}
CONCEPT_COLUMNS = ["concept_id", "vocabulary_id", "concept_code", "concept_name"]
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d", "%Y%m%d")
SKIP_EXAMPLES = 1000  # skipped rows named by line; the rest are counted without one
# Standard concepts a CDM uses without always shipping them in its CONCEPT table.
GENDER = {"8507": "M", "8532": "F"}
RACE_NAMES = {"8527": "White", "8516": "Black or African American", "8515": "Asian",
              "8557": "Native Hawaiian or Other Pacific Islander",
              "8657": "American Indian or Alaska Native"}
# Synthea's and other ETLs' race source values, named as the race concepts are.
RACE_SOURCE = {"white": "White", "black": "Black or African American", "asian": "Asian",
               "hawaiian": "Native Hawaiian or Other Pacific Islander",
               "native": "American Indian or Alaska Native"}
HISPANIC = {"38003563": 1, "38003564": 0}
HISPANIC_SOURCE = {"hispanic": 1, "hispanic or latino": 1, "nonhispanic": 0, "non-hispanic": 0,
                   "not hispanic or latino": 0, "not hispanic": 0}
VISIT_NAMES = {"9201": "Inpatient Visit", "9202": "Outpatient Visit", "9203": "Emergency Room Visit",
               "262": "Emergency Room and Inpatient Visit", "581476": "Home Visit"}


# --------------------------------------------------------------------------------------------
# Finding and reading tables
# --------------------------------------------------------------------------------------------
class MissingColumnsError(CorruptDataError):
    """A table lacks columns the conversion needs."""


@dataclass(frozen=True)
class TableRef:
    """Where one CDM table lives: file(s) in a folder, or a member of a zip."""

    table: str
    files: tuple[Path, ...]
    member: str | None = None

    @property
    def label(self) -> str:
        if self.member is not None:
            return f"{self.files[0].name}/{self.member}"
        return self.files[0].name if len(self.files) == 1 else f"{self.files[0].parent.name}/"

    @property
    def is_parquet(self) -> bool:
        return self.member is None and self.files[0].suffix.lower() == ".parquet"

    def where(self, line: int | None = None) -> str:
        """`omop/FILE:LINE` (CSV, header = line 1) or `omop/FILE row N` (Parquet)."""
        if line is None:
            return f"{NAME}/{self.label}"
        return f"{NAME}/{self.label} row {line}" if self.is_parquet else f"{NAME}/{self.label}:{line}"


def _table_name(name: str) -> str | None:
    """`PERSON` for person.csv, PERSON.csv.gz or person.parquet; None for other files."""
    lower = name.lower()
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return lower[: -len(suffix)].upper()
    return None


def _add(found: dict[str, TableRef], ref: TableRef) -> None:
    """Record a table; two files for one table are ambiguous and refused."""
    if ref.table in found:
        raise ConfigError(f"{NAME}: two files hold table {ref.table}: {found[ref.table].label} "
                          f"and {ref.label}; keep one")
    found[ref.table] = ref


def _zip_tables(path: Path) -> dict[str, TableRef]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as e:
        raise CorruptDataError(f"{NAME}: {path} is not a readable zip: {e}") from e
    found: dict[str, TableRef] = {}
    for member in names:
        base = member.rsplit("/", 1)[-1]
        if member.startswith("__MACOSX/") or base.startswith("._") or member.endswith("/"):
            continue
        table = _table_name(base)
        if table is not None and not base.lower().endswith(".parquet"):
            _add(found, TableRef(table, (path,), member))
    return found


def _folder_tables(path: Path) -> dict[str, TableRef]:
    found: dict[str, TableRef] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and (table := _table_name(entry.name)):
            _add(found, TableRef(table, (entry,)))
        elif entry.is_dir() and (files := tuple(sorted(entry.glob("*.parquet")))):
            _add(found, TableRef(entry.name.upper(), files))
    return found


def find_tables(path: Path) -> dict[str, TableRef]:
    """The CDM tables in a folder or zip, by upper-case table name."""
    if path.is_file() and path.suffix.lower() == ".zip":
        return _zip_tables(path)
    if path.is_dir():
        return _folder_tables(path)
    raise ConfigError(f"{NAME}: {path} is neither a folder of CDM tables nor a .zip of CSV tables")


def _csv_bytes(ref: TableRef) -> bytes:
    """The raw CSV of a zip member or a .csv.gz file, decompressed."""
    if ref.member is not None:
        with zipfile.ZipFile(ref.files[0]) as archive:
            data = archive.read(ref.member)
    else:
        data = ref.files[0].read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _separator(head: bytes) -> str:
    """Tab for Athena's vocabulary files (tab-separated though named .csv), else comma."""
    first = head.split(b"\n", 1)[0]
    return "\t" if b"\t" in first and b"," not in first else ","


def _csv_options(head: bytes) -> dict[str, Any]:
    sep = _separator(head)
    return {"separator": sep, "quote_char": None if sep == "\t" else '"', "infer_schema": False,
            "null_values": [""], "encoding": "utf8-lossy"}


def _as_text(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Parquet columns as the text a CSV export would hold (ids, numbers, ISO dates)."""
    cols = []
    for name, dtype in frame.collect_schema().items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            col = col.dt.strftime("%Y-%m-%d %H:%M:%S%.f")
        elif dtype == pl.Date:
            col = col.dt.strftime("%Y-%m-%d")
        cols.append(col.cast(pl.Utf8).alias(name))
    return frame.select(cols)


def _lazy(ref: TableRef) -> pl.LazyFrame:
    """All columns of a table as text, with the file's own column names."""
    if ref.is_parquet:
        if any(is_encrypted_parquet(f) for f in ref.files):  # a database copy iatros encrypted
            return pl.concat([read_parquet(f).lazy() for f in ref.files], how="vertical")
        return pl.scan_parquet(list(ref.files))
    if ref.member is None and not ref.files[0].name.lower().endswith(".gz"):
        with ref.files[0].open("rb") as f:
            head = f.read(65536)
        return pl.scan_csv(ref.files[0], **_csv_options(head))
    data = _csv_bytes(ref)
    return pl.read_csv(data, **_csv_options(data[:65536])).lazy()


def _line_numbers(frame: pl.DataFrame, ref: TableRef) -> pl.DataFrame:
    """`_line`: the row's line in a CSV (header = 1; quoted line breaks counted) or row in Parquet."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    if ref.is_parquet:
        return frame.with_columns((index + 1).alias("_line"))
    text = [pl.col(c).str.count_matches("\n").fill_null(0) for c in frame.columns]
    breaks = pl.sum_horizontal(text).cast(pl.Int64).cum_sum().shift(1, fill_value=0) if text else 0
    return frame.with_columns((index + 2 + breaks).alias("_line"))


def id_text(column: str) -> pl.Expr:
    """An id as a plain integer in text (`123`, not ` 123` or `123.0` from a float column)."""
    return pl.col(column).str.strip_chars().str.replace(r"\.0+$", "")


def _normalise_ids(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns([id_text(c) for c in frame.columns if c.endswith("_id")])


def read_table(ref: TableRef, required: Iterable[str], optional: Iterable[str] = (), *,
               keep: pl.Expr | None = None, lines: bool = True) -> pl.DataFrame:
    """Columns of a table as text (lower-case names, missing optional ones null), `_line` numbers.

    `keep` filters rows (lazily where the file allows); a missing required column raises
    MissingColumnsError naming the file and the columns.
    """
    required, optional = list(required), list(optional)
    try:
        lazy = _lazy(ref)
        names = {n.lstrip("\ufeff").strip().lower(): n for n in lazy.collect_schema().names()}
        missing = [c for c in required if c not in names]
        if missing:
            raise MissingColumnsError(f"{ref.label} lacks required column(s) {', '.join(missing)}")
        present = [c for c in [*required, *optional] if c in names]
        lazy = _as_text(lazy.select([pl.col(names[c]).alias(c) for c in present]))
        frame = lazy.collect() if keep is None or lines else lazy.filter(keep).collect()
    except (pl.exceptions.PolarsError, OSError, zipfile.BadZipFile, gzip.BadGzipFile) as e:
        raise CorruptDataError(f"{ref.label}: cannot read as a CDM table: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    frame = frame.with_columns([pl.lit(None, pl.Utf8).alias(c) for c in optional if c not in names])
    frame = _normalise_ids(frame)
    if lines:
        frame = _line_numbers(frame, ref)
        frame = frame.filter(keep) if keep is not None else frame
    return frame


# --------------------------------------------------------------------------------------------
# Values: times, numbers, concepts
# --------------------------------------------------------------------------------------------
def parse_time(column: str) -> pl.Expr:
    """A CDM date or datetime (ISO, with or without time or fraction; or YYYYMMDD)."""
    text = pl.col(column).str.strip_chars()
    return pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in TIME_FORMATS])


def _time_problem(columns: Iterable[str], required: str) -> pl.Expr:
    """Why a row's time cannot be used (an unparseable value, or none), or null."""
    expr = pl.when(False).then(pl.lit(None, pl.Utf8))
    for col in columns:
        bad = pl.col(col).is_not_null() & parse_time(col).is_null()
        expr = expr.when(bad).then(pl.lit(f"unparseable date: {col} = '") + pl.col(col) + pl.lit("'"))
    return expr.otherwise(pl.lit(None, pl.Utf8)).fill_null(
        pl.when(pl.coalesce([parse_time(c) for c in columns]).is_null())
        .then(pl.lit(f"no date: {required} is empty")))


def _to_number(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def drop_flagged(frame: pl.DataFrame, ref: TableRef, skips: SkipLog) -> pl.DataFrame:
    """Skip the rows whose `_reason` is set, each named by file and line; drop the column."""
    bad = frame.filter(pl.col("_reason").is_not_null())
    for line, reason in bad.head(SKIP_EXAMPLES).select("_line", "_reason").iter_rows():
        skips.add(ref.where(line), reason)
    for reason in bad["_reason"].slice(SKIP_EXAMPLES).to_list():
        skips.add(ref.where(), reason)
    return frame.filter(pl.col("_reason").is_null()).drop("_reason")


def vocab_code() -> pl.Expr:
    """`VOCAB//concept_code` of a CONCEPT row (vocabulary upper-cased, spaces as `_`)."""
    vocab = pl.col("vocabulary_id").str.strip_chars().str.to_uppercase().str.replace_all(r"\s+", "_")
    return vocab + pl.lit("//") + pl.col("concept_code").str.strip_chars()


def _concept_ids(frame: pl.DataFrame, columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    values = pl.concat([frame[c] for c in columns]) if columns else pl.Series([], dtype=pl.Utf8)
    values = values.drop_nulls().unique()
    return values.filter(values != "0").to_list()


def read_concepts(tables: dict[str, TableRef], ids: list[str]) -> pl.DataFrame:
    """The CONCEPT rows of `ids` (one per id): concept_id, code (`VOCAB//code`), concept_code, name."""
    schema = {"concept_id": pl.Utf8, "code": pl.Utf8, "concept_code": pl.Utf8, "name": pl.Utf8}
    ref = tables.get("CONCEPT")
    if ref is None or not ids:
        return pl.DataFrame(schema=schema)
    frame = read_table(ref, CONCEPT_COLUMNS, keep=id_text("concept_id").is_in(ids),
                       lines=False)
    return frame.unique("concept_id", keep="first", maintain_order=True).select(
        "concept_id", vocab_code().alias("code"), pl.col("concept_code").str.strip_chars(),
        pl.col("concept_name").alias("name"))


def _join_concept(frame: pl.DataFrame, concepts: pl.DataFrame, column: str, field: str,
                  alias: str) -> pl.DataFrame:
    """Add `alias` = the CONCEPT `field` (code, concept_code or name) of the id in `column`."""
    right = concepts.select(pl.col("concept_id").alias(column), pl.col(field).alias(alias))
    return frame.join(right, on=column, how="left", coalesce=True)


def _person_ids(tables: dict[str, TableRef]) -> pl.Series:
    return read_table(tables["PERSON"], ["person_id"], lines=False)["person_id"].drop_nulls()


def _unknown_person(persons: pl.Series) -> pl.Expr:
    """Reason to skip a row whose person_id is not in PERSON, else null."""
    return (pl.when(pl.col("person_id").is_null()).then(pl.lit("unknown person: no person_id"))
            .when(~pl.col("person_id").is_in(persons.implode()))
            .then(pl.lit("unknown person: person_id ") + pl.col("person_id") + pl.lit(" not in PERSON")))


def _nonblank(column: str) -> pl.Expr:
    text = pl.col(column).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


# --------------------------------------------------------------------------------------------
# Event tables
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventSpec:
    """One clinical table: its concept, date, source value and value columns.

    `text` lists the columns tried in order for `text_value` when there is no number; a
    `*_concept_id` column there gives the concept's name.
    """

    table: str
    concept: str
    date: str
    datetime: str | None
    source: str
    source_concept: str | None
    number: str | None = None
    text: tuple[str, ...] = ()
    unit: str | None = None
    unit_concept: str | None = None

    @property
    def required(self) -> list[str]:
        return ["person_id", self.concept, self.date]

    @property
    def optional(self) -> list[str]:
        cols = ["visit_occurrence_id", self.datetime, self.source, self.source_concept, self.number,
                *self.text, self.unit, self.unit_concept]
        return [c for c in dict.fromkeys(cols) if c]

    @property
    def concept_columns(self) -> list[str]:
        cols = [self.concept, self.source_concept, self.unit_concept,
                *[c for c in self.text if c.endswith("_concept_id")]]
        return [c for c in cols if c]


EVENT_SPECS = (
    EventSpec("CONDITION_OCCURRENCE", "condition_concept_id", "condition_start_date",
              "condition_start_datetime", "condition_source_value", "condition_source_concept_id"),
    EventSpec("DRUG_EXPOSURE", "drug_concept_id", "drug_exposure_start_date",
              "drug_exposure_start_datetime", "drug_source_value", "drug_source_concept_id"),
    EventSpec("MEASUREMENT", "measurement_concept_id", "measurement_date", "measurement_datetime",
              "measurement_source_value", "measurement_source_concept_id", number="value_as_number",
              text=("value_as_concept_id", "value_source_value"), unit="unit_source_value",
              unit_concept="unit_concept_id"),
    EventSpec("OBSERVATION", "observation_concept_id", "observation_date", "observation_datetime",
              "observation_source_value", "observation_source_concept_id", number="value_as_number",
              text=("value_as_string", "value_as_concept_id", "value_source_value"),
              unit="unit_source_value", unit_concept="unit_concept_id"),
    EventSpec("PROCEDURE_OCCURRENCE", "procedure_concept_id", "procedure_date", "procedure_datetime",
              "procedure_source_value", "procedure_source_concept_id"),
    EventSpec("DEVICE_EXPOSURE", "device_concept_id", "device_exposure_start_date",
              "device_exposure_start_datetime", "device_source_value", "device_source_concept_id"),
    EventSpec("VISIT_DETAIL", "visit_detail_concept_id", "visit_detail_start_date",
              "visit_detail_start_datetime", "visit_detail_source_value",
              "visit_detail_source_concept_id"),
)
NOTE_REQUIRED = ["person_id", "note_date"]
NOTE_KINDS = ["note_class_concept_id", "note_type_concept_id"]  # the code: class, else type
NOTE_OPTIONAL = ["note_datetime", "note_type_concept_id", "note_class_concept_id", "note_title",
                 "note_text", "visit_occurrence_id"]


def _code(spec: EventSpec) -> pl.Expr:
    """The standard concept's code; for concept 0 the source concept's, else the source value."""
    cid = pl.col(spec.concept)
    source = pl.lit(f"OMOP_SOURCE//{spec.table}//") + _nonblank(spec.source)
    return (pl.when(cid.is_null() | (cid == "0")).then(pl.coalesce("_source_code", source))
            .otherwise(pl.coalesce("_code", pl.lit("OMOP//") + cid)))


def _unknown_note(frame: pl.DataFrame, ref: TableRef, column: str) -> list[str]:
    """A manifest note counting rows whose concept id is not in CONCEPT (they keep OMOP//ID)."""
    unknown = frame.filter(pl.col("_unknown"))
    if unknown.is_empty():
        return []
    first = unknown.row(0, named=True)
    return [f"{ref.table}: {unknown.height} rows with concept ids not in CONCEPT (first: "
            f"{ref.where(first['_line'])}, concept {first[column]}); kept as OMOP//ID"]


def _with_codes(frame: pl.DataFrame, concepts: pl.DataFrame, spec: EventSpec) -> pl.DataFrame:
    """Join the concept codes, value names and unit codes the events need."""
    frame = _join_concept(frame, concepts, spec.concept, "code", "_code")
    source_concept = spec.source_concept or "_no_source_concept"
    if spec.source_concept is None:
        frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(source_concept))
    frame = _join_concept(frame, concepts, source_concept, "code", "_source_code")
    for col in spec.text:
        if col.endswith("_concept_id"):
            frame = _join_concept(frame, concepts, col, "name", f"_{col}_name")
    if spec.unit_concept:
        frame = _join_concept(frame, concepts, spec.unit_concept, "concept_code", "_unit_code")
    cid = pl.col(spec.concept)
    return frame.with_columns(
        _code(spec).alias("code"),
        (cid.is_not_null() & (cid != "0") & pl.col("_code").is_null()).alias("_unknown"))


def _values(spec: EventSpec) -> list[pl.Expr]:
    """numeric_value, text_value (when no number) and unit of a table's rows."""
    number = _to_number(spec.number) if spec.number else pl.lit(None, pl.Float64)
    texts = [pl.col(f"_{c}_name") if c.endswith("_concept_id") else _nonblank(c) for c in spec.text]
    if spec.number:
        texts.append(_nonblank(spec.number))  # a value_as_number that is not a number
    text = pl.when(number.is_null()).then(pl.coalesce(texts)) if texts else pl.lit(None, pl.Utf8)
    units = [*([_nonblank(spec.unit)] if spec.unit else []),
             *([pl.col("_unit_code")] if spec.unit_concept else [])]
    unit = pl.coalesce(units) if units else pl.lit(None, pl.Utf8)
    return [number.alias("numeric_value"), text.alias("text_value"), unit.alias("unit")]


def _read_events_table(ref: TableRef, required: list[str], optional: list[str],
                       skips: SkipLog) -> pl.DataFrame | None:
    """A clinical table's rows, or None (skipped, with the reason) when it cannot be used."""
    try:
        return read_table(ref, required, optional)
    except CorruptDataError as e:
        skips.add(ref.where(), f"table skipped: {e}")
        return None


def _checked_rows(frame: pl.DataFrame, tables: dict[str, TableRef], ref: TableRef,
                  time_columns: list[str], skips: SkipLog) -> pl.DataFrame:
    """Rows of known persons with a usable time (`time`); the others skipped by file and line."""
    frame = drop_flagged(frame.with_columns(_unknown_person(_person_ids(tables)).alias("_reason")),
                         ref, skips)
    frame = drop_flagged(frame.with_columns(_time_problem(time_columns, time_columns[-1])
                                            .alias("_reason")), ref, skips)
    return frame.with_columns(pl.coalesce([parse_time(c) for c in time_columns]).alias("time"))


def convert_events(tables: dict[str, TableRef], spec: EventSpec) -> PartResult:
    """One clinical table's rows as coded events."""
    skips, ref = SkipLog(), tables[spec.table]
    frame = _read_events_table(ref, spec.required, spec.optional, skips)
    if frame is None:
        return PartResult(events_frame(), None, skips)
    times = [c for c in (spec.datetime, spec.date) if c]
    frame = _checked_rows(frame, tables, ref, times, skips)
    concepts = read_concepts(tables, _concept_ids(frame, spec.concept_columns))
    frame = _with_codes(frame, concepts, spec)
    frame = drop_flagged(frame.with_columns(
        pl.when(pl.col("code").is_null())
        .then(pl.lit(f"no code: {spec.concept} is 0 and {spec.source} is empty")).alias("_reason")),
        ref, skips)
    events = frame.select(pl.col("person_id").alias("subject_id"),
                          pl.col("visit_occurrence_id").alias("stay_id"), "time", "code",
                          *_values(spec))
    return PartResult(events, None, skips, _unknown_note(frame, ref, spec.concept))


def convert_notes(tables: dict[str, TableRef]) -> PartResult:
    """NOTE rows as `NOTE//<class or type concept code>` events carrying the note's text."""
    skips, ref = SkipLog(), tables["NOTE"]
    frame = _read_events_table(ref, NOTE_REQUIRED, NOTE_OPTIONAL, skips)
    if frame is None:
        return PartResult(events_frame(), None, skips)
    frame = _checked_rows(frame, tables, ref, ["note_datetime", "note_date"], skips)
    concepts = read_concepts(tables, _concept_ids(frame, NOTE_KINDS))
    for col in NOTE_KINDS:
        frame = _join_concept(frame, concepts, col, "concept_code", f"_{col}_code")
    known = [pl.when(pl.col(c) != "0").then(pl.col(c)) for c in NOTE_KINDS]
    kind = pl.coalesce([pl.col(f"_{c}_code") for c in NOTE_KINDS] + known + [pl.lit("UNKNOWN")])
    events = frame.select(pl.col("person_id").alias("subject_id"),
                          pl.col("visit_occurrence_id").alias("stay_id"), "time",
                          (pl.lit("NOTE//") + kind).alias("code"),
                          pl.col("note_text").alias("text_value"))
    return PartResult(events, None, skips)


# --------------------------------------------------------------------------------------------
# Stays: PERSON + VISIT_OCCURRENCE + DEATH
# --------------------------------------------------------------------------------------------
PERSON_REQUIRED = ["person_id", "gender_concept_id", "year_of_birth"]
PERSON_OPTIONAL = ["month_of_birth", "day_of_birth", "birth_datetime", "race_concept_id",
                   "ethnicity_concept_id", "gender_source_value", "race_source_value",
                   "ethnicity_source_value"]
VISIT_REQUIRED = ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                  "visit_end_date"]
VISIT_OPTIONAL = ["visit_start_datetime", "visit_end_datetime", "care_site_id"]
DEATH_REQUIRED = ["person_id", "death_date"]
DEATH_OPTIONAL = ["death_datetime", "cause_concept_id", "cause_source_value"]


def _required_table(ref: TableRef, required: list[str], optional: list[str]) -> pl.DataFrame:
    """A table the stays cannot do without: a problem with it stops the conversion."""
    try:
        return read_table(ref, required, optional)
    except MissingColumnsError as e:
        raise CorruptDataError(f"{NAME}: {e}; {ref.table} is required") from e


def _first_rows(frame: pl.DataFrame, key: str, ref: TableRef, skips: SkipLog, what: str,
                kept: str = "the first") -> pl.DataFrame:
    """Keep the first row of each `key`; later duplicates are skipped by line."""
    dup = pl.int_range(pl.len()).over(key) > 0
    flagged = frame.with_columns(pl.when(dup).then(
        pl.lit(f"duplicate {what}: {key} ") + pl.col(key)
        + pl.lit(f" has more than one row; {kept} is kept")).alias("_reason"))
    return drop_flagged(flagged, ref, skips)


def _birth() -> pl.Expr:
    """birth_datetime, else year/month/day_of_birth (month and day default to 1)."""
    parts = [pl.col("year_of_birth").str.strip_chars(),
             pl.col("month_of_birth").str.strip_chars().fill_null("1").str.zfill(2),
             pl.col("day_of_birth").str.strip_chars().fill_null("1").str.zfill(2)]
    ymd = pl.concat_str(parts, separator="-").str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False)
    return pl.coalesce(parse_time("birth_datetime"), ymd)


def _persons(person: pl.DataFrame, concepts: pl.DataFrame, ref: TableRef,
             skips: SkipLog) -> pl.DataFrame:
    """One row per person: subject_id, birth, sex, ethnicity (race name), hispanic."""
    person = _first_rows(person, "person_id", ref, skips, "person")
    person = _join_concept(person, concepts, "race_concept_id", "name", "_race")
    gender_source = pl.col("gender_source_value").str.strip_chars().str.to_uppercase()
    sex = pl.col("gender_concept_id").replace_strict(GENDER, default=None, return_dtype=pl.Utf8)
    sex = sex.fill_null(gender_source.replace_strict(
        {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}, default=None, return_dtype=pl.Utf8))
    race_source = _nonblank("race_source_value")
    race = pl.coalesce("_race", pl.col("race_concept_id").replace_strict(
        RACE_NAMES, default=None, return_dtype=pl.Utf8),
        race_source.str.to_lowercase().replace_strict(RACE_SOURCE, default=None, return_dtype=pl.Utf8),
        race_source)
    hispanic = pl.col("ethnicity_concept_id").replace_strict(
        HISPANIC, default=None, return_dtype=pl.Int8).fill_null(
        pl.col("ethnicity_source_value").str.strip_chars().str.to_lowercase().replace_strict(
            HISPANIC_SOURCE, default=None, return_dtype=pl.Int8))
    return person.select(
        pl.col("person_id").alias("subject_id"), _birth().alias("_birth"), sex.alias("sex"),
        pl.coalesce(race, pl.when(hispanic == 1).then(pl.lit("Hispanic or Latino"))).alias("ethnicity"),
        hispanic.alias("hispanic"))


def _visits(visits: pl.DataFrame, ref: TableRef, persons: pl.Series, concepts: pl.DataFrame,
            skips: SkipLog) -> pl.DataFrame:
    """Usable visits (known person, parseable times, end not before start), one per id."""
    visits = _first_rows(visits, "visit_occurrence_id", ref, skips, "visit")
    visits = drop_flagged(visits.with_columns(_unknown_person(persons).alias("_reason")), ref, skips)
    for col in ("start", "end"):
        cols = [f"visit_{col}_datetime", f"visit_{col}_date"]
        visits = drop_flagged(visits.with_columns(_time_problem(cols, cols[-1]).alias("_reason")),
                              ref, skips)
        visits = visits.with_columns(pl.coalesce([parse_time(c) for c in cols]).alias(f"{col}_time"))
    backwards = pl.when(pl.col("end_time") < pl.col("start_time")).then(
        pl.lit("impossible times: visit ends (") + pl.col("end_time").dt.to_string()
        + pl.lit(") before it starts (") + pl.col("start_time").dt.to_string() + pl.lit(")"))
    visits = drop_flagged(visits.with_columns(backwards.alias("_reason")), ref, skips)
    visits = _join_concept(visits, concepts, "visit_concept_id", "name", "_visit_name")
    kind = pl.coalesce("_visit_name", pl.col("visit_concept_id").replace_strict(
        VISIT_NAMES, default=None, return_dtype=pl.Utf8),
        pl.when(pl.col("visit_concept_id") != "0").then(pl.lit("OMOP//") + pl.col("visit_concept_id")))
    return visits.with_columns(kind.alias("visit_type"))


DEATH_SCHEMA = {"person_id": pl.Utf8, "death_date": pl.Utf8, "death_datetime": pl.Utf8,
                "cause_concept_id": pl.Utf8, "cause_source_value": pl.Utf8, "_line": pl.Int64}


def _read_deaths(tables: dict[str, TableRef], skips: SkipLog) -> pl.DataFrame:
    """DEATH's rows (none when the table is absent or skipped for missing columns)."""
    ref = tables.get("DEATH")
    frame = _read_events_table(ref, DEATH_REQUIRED, DEATH_OPTIONAL, skips) if ref else None
    return frame if frame is not None else pl.DataFrame(schema=DEATH_SCHEMA)


def _deaths(frame: pl.DataFrame, tables: dict[str, TableRef], skips: SkipLog) -> pl.DataFrame:
    """One row per dead person (the earliest DEATH row): subject_id, death_time, cause."""
    if "DEATH" in tables:
        ref = tables["DEATH"]
        frame = _checked_rows(frame, tables, ref, ["death_datetime", "death_date"], skips)
        frame = _first_rows(frame.sort("person_id", "time"), "person_id", ref, skips, "death",
                            "the earliest")
    else:
        frame = frame.with_columns(pl.lit(None, pl.Datetime("us")).alias("time"))
    return frame.select(pl.col("person_id").alias("subject_id"), pl.col("time").alias("death_time"),
                        "cause_concept_id", "cause_source_value")


def _stay_rows(visits: pl.DataFrame, persons: pl.DataFrame, deaths: pl.DataFrame) -> pl.DataFrame:
    """The stays table: standard columns, visit_type and hispanic."""
    frame = (visits.rename({"person_id": "subject_id"}).join(persons, on="subject_id", how="left")
             .join(deaths.select("subject_id", pl.col("death_time").alias("_death")), on="subject_id",
                   how="left"))
    died = (pl.col("_death").is_not_null() & (pl.col("start_time") <= pl.col("_death"))
            & (pl.col("_death") <= pl.col("end_time") + pl.duration(days=1)))
    days = (pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 86400
    frame = frame.with_columns(
        pl.col("visit_occurrence_id").alias("stay_id"), pl.col("care_site_id").alias("site_id"),
        ((pl.col("start_time") - pl.col("_birth")).dt.total_seconds() / 86400 / 365.25).alias("age"),
        died.cast(pl.Int8).alias("died"), pl.when(died).then(pl.col("_death")).alias("death_time"),
        days.alias("los_days"), pl.lit(None, pl.Int8).alias("readmit_30d"))
    return frame.select([pl.col(c).cast(t) for c, t in {**STAY_SCHEMA, **STAY_EXTRA}.items()])


def _death_events(deaths: pl.DataFrame, concepts: pl.DataFrame) -> pl.DataFrame:
    """`MEDS_DEATH` at each death, its cause (concept name or source value) as text."""
    frame = _join_concept(deaths, concepts, "cause_concept_id", "name", "_cause")
    return frame.select("subject_id", pl.lit(None, pl.Utf8).alias("stay_id"),
                        pl.col("death_time").alias("time"), pl.lit("MEDS_DEATH").alias("code"),
                        pl.coalesce("_cause", _nonblank("cause_source_value")).alias("text_value"))


def convert_stays(tables: dict[str, TableRef]) -> PartResult:
    """Visits joined with persons and deaths: one stay per visit; deaths as MEDS_DEATH events."""
    skips, notes = SkipLog(), []
    person_ref, visit_ref = tables["PERSON"], tables["VISIT_OCCURRENCE"]
    person = _required_table(person_ref, PERSON_REQUIRED, PERSON_OPTIONAL)
    visits = _required_table(visit_ref, VISIT_REQUIRED, VISIT_OPTIONAL)
    deaths = _read_deaths(tables, skips)
    ids = sorted({*_concept_ids(person, ["race_concept_id"]),
                  *_concept_ids(visits, ["visit_concept_id"]),
                  *_concept_ids(deaths, ["cause_concept_id"])})
    concepts = read_concepts(tables, ids)
    if "CONCEPT" not in tables:
        notes.append("no CONCEPT table: concept ids are kept as OMOP//ID; visit types only for "
                     "the standard visit concepts")
    persons = _persons(person, concepts, person_ref, skips)
    visits = _visits(visits, visit_ref, persons["subject_id"], concepts, skips)
    deaths = _deaths(deaths, tables, skips)
    return PartResult(_death_events(deaths, concepts), _stay_rows(visits, persons, deaths), skips, notes)


def finish(events: Frame, stays: pl.DataFrame, skips: SkipLog) -> tuple[Frame, pl.DataFrame]:
    """readmit_30d once all stays are known (null for stays ending in death)."""
    return events, add_readmission(stays, days=30)


# --------------------------------------------------------------------------------------------
# Parts, source, code descriptions
# --------------------------------------------------------------------------------------------
def _inputs(tables: dict[str, TableRef], names: Iterable[str]) -> tuple[Path, ...]:
    """The files the named tables are read from (the zip once, for a zip)."""
    return tuple(dict.fromkeys(f for n in names if n in tables for f in tables[n].files))


def parts(path: Path) -> list[Part]:
    """The stays part (PERSON, VISIT_OCCURRENCE, DEATH) and one part per clinical table found."""
    tables = find_tables(path)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise MissingDataError(
            f"{NAME}: {path} lacks {' and '.join(missing)}; an OMOP CDM needs PERSON and "
            f"VISIT_OCCURRENCE tables (.csv, .csv.gz or .parquet; CONCEPT for vocabulary codes)")
    result = [Part("stays", _inputs(tables, ["PERSON", "VISIT_OCCURRENCE", "DEATH", "CONCEPT"]),
                   lambda: convert_stays(tables))]
    for spec in EVENT_SPECS:
        if spec.table in tables:
            result.append(Part(spec.table.lower(), _inputs(tables, [spec.table, "PERSON", "CONCEPT"]),
                               lambda s=spec: convert_events(tables, s)))
    if "NOTE" in tables:
        result.append(Part("note", _inputs(tables, ["NOTE", "PERSON", "CONCEPT"]),
                           lambda: convert_notes(tables)))
    return result


def _used_ids(ref: TableRef, columns: list[str]) -> list[str]:
    """The concept ids in a table's columns (none when it cannot be read: it was skipped too)."""
    try:
        return _concept_ids(read_table(ref, [], columns, lines=False), columns)
    except CorruptDataError:
        return []


def _emitted_concepts(tables: dict[str, TableRef]) -> tuple[list[str], list[str]]:
    """The concept ids the clinical tables code events with, and those NOTE codes use."""
    coded = {i for spec in EVENT_SPECS if spec.table in tables
             for i in _used_ids(tables[spec.table], [c for c in (spec.concept, spec.source_concept) if c])}
    notes = _used_ids(tables["NOTE"], NOTE_KINDS) if "NOTE" in tables else []
    return sorted(coded), notes


def code_descriptions(path: str | Path, codes: Iterable[str] | None = None) -> pl.DataFrame:
    """`code, description` (the concept name) of the `VOCAB//code` and `NOTE//code` codes.

    Without `codes`, of every code a conversion of `path` emits from CONCEPT (the concept ids
    its tables use); with `codes`, of those. CONCEPT is filtered while it is read (a full one
    has millions of rows).
    """
    tables = find_tables(Path(path))
    ref = tables.get("CONCEPT")
    if ref is None:
        return pl.DataFrame(schema={"code": pl.Utf8, "description": pl.Utf8})
    if codes is None:
        coded, notes = _emitted_concepts(tables)
        is_coded, is_note = id_text("concept_id").is_in(coded), id_text("concept_id").is_in(notes)
    else:
        codes = list(codes)
        note_codes = [c.removeprefix("NOTE//") for c in codes if c.startswith("NOTE//")]
        is_coded = vocab_code().is_in(codes)
        is_note = pl.col("concept_code").str.strip_chars().is_in(note_codes)
    frame = read_table(ref, CONCEPT_COLUMNS, keep=is_coded | is_note, lines=False)
    named = frame.filter(is_coded).select(vocab_code().alias("code"),
                                          pl.col("concept_name").alias("description"))
    note = frame.filter(is_note).select(
        (pl.lit("NOTE//") + pl.col("concept_code").str.strip_chars()).alias("code"),
        (pl.lit("note: ") + pl.col("concept_name")).alias("description"))
    return pl.concat([named, note]).unique("code", keep="first", maintain_order=True)


def concept_names(path: str | Path, codes: Iterable[str] | None = None) -> dict[str, str]:
    """`code_descriptions` as a dict (for the MEDS codes.parquet writer)."""
    frame = code_descriptions(path, codes)
    return dict(zip(frame["code"].to_list(), frame["description"].to_list(), strict=True))


SOURCE = Source(NAME, "OMOP CDM 5.3 / 5.4 tables (CSV or Parquet folder, or a zip of CSVs)", parts,
                finish, descriptions=concept_names)
