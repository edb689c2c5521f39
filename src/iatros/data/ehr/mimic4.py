"""MIMIC-IV (v2.x / v3.x: ROOT/hosp/*.csv.gz, ROOT/icu/*.csv.gz) into the event format.

A stay is a hospital admission (`hadm_id`), as in MIMIC-III, so the admission cohorts (mortality,
length of stay, 30-day readmission) read MIMIC-IV unchanged; ICU stays and transfers are events.
`hosp/admissions` and `hosp/patients` are required; every other table is converted when present,
each as its own cached part. ROOT may be the release folder (the one holding `hosp/` and `icu/`),
a folder holding exactly one release (`mimic4/mimic-iv-3.1/hosp/...`), or a flat folder of the
tables. Files are `.csv.gz` or `.csv`, with MIMIC-IV's lower-case names.

Ages: MIMIC-IV gives `anchor_age` in `anchor_year`; the age at admission is anchor_age plus the
years since anchor_year. Ages above 89 are de-identified as 91 and reported as 91 (never more).
Diagnosis codes carry no time: they are dated at the admission's discharge, as for MIMIC-III.

Codes: `MIMIC4_ITEM//itemid` (chart, input, output and procedure events), `MIMIC4_LAB//itemid`
(or `LOINC//` where d_labitems has MIMIC-IV v1.0's loinc_code), `NDC//` (else
`MIMIC4_DRUG//name`) for prescriptions, `MIMIC4_EMAR//name` for administered doses only,
`MIMIC4_MICRO//specimen` with the organism as text (once per organism, not per antibiotic),
`ICD9CM//`, `ICD10CM//`, `ICD9PROC//`, `ICD10PCS//`, `MIMIC4_ICU//first_careunit` at ICU
admission and `MIMIC4_TRANSFER//careunit` (discharge rows, which name no unit, are left out).

Notes: MIMIC-IV-Note (a separate PhysioNet module) is read from ROOT/note/discharge and
ROOT/note/radiology (copy or link the module's `note/` folder into the release folder): each note
is a `NOTE//MIMIC4//<note_type>` event (DS discharge summary, RR radiology report, AR addendum)
at its charttime, its text in `text_value`, for `ehr:PATH --notes` and the NLP pipeline. A
radiology report without an admission stays a patient-level event, as outpatient labs do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source, no_finish
from iatros.data.ehr.schema import SkipLog, add_readmission, drop_implausible, events_frame
from iatros.data.ehr.tables import (
    EventTable,
    events_from_table,
    find_table,
    read_table,
    scan_table,
    to_number,
)
from iatros.errors import ConfigError, CorruptDataError, MissingDataError

NAME = "mimic4"
ITEM = "MIMIC4_ITEM"
LAB = "MIMIC4_LAB"
ADMISSIONS, PATIENTS = "hosp/admissions", "hosp/patients"
# MetaVision item ids of vital signs, for the impossible-value check (GCS is charted per component).
VITAL_ITEMS = {
    "heart_rate": (220045,), "resp_rate": (220210, 224690), "sbp": (220179, 220050),
    "dbp": (220180, 220051), "spo2": (220277,), "temperature_c": (223762,),
}
NOTE = "NOTE//MIMIC4"  # notes: NOTE//MIMIC4//DS (discharge), //RR (radiology), //AR (addendum)
NOTE_TABLES = ("discharge", "radiology")  # MIMIC-IV-Note v2.2, its own module: ROOT/note/
OLDEST = 91.0   # MIMIC-IV's anchor_age for every patient older than 89
RELEASE_DEPTH = 4   # how deep below ROOT a release folder (one holding hosp/) is looked for


# ------------------------------------------------------------------------------ expressions
def _time(column: str) -> pl.Expr:
    """A MIMIC-IV timestamp (`2180-05-06 22:23:00`, fractional seconds allowed); null if unparseable."""
    return pl.col(column).str.strip_chars().str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f",
                                                         strict=False)


def _date(column: str) -> pl.Expr:
    """A date column (`dod`, `chartdate`): a bare date at midnight, or a full timestamp."""
    day = pl.col(column).str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.coalesce(_time(column), day.cast(pl.Datetime("us")))


def _prefixed(prefix: str, column: str, *, lower: bool = False) -> pl.Expr:
    """`PREFIX//value`, the value stripped (free-text names also lower-cased, spaces collapsed)."""
    value = pl.col(column).str.strip_chars()
    value = value.str.to_lowercase().str.replace_all(r"\s+", " ") if lower else value
    return pl.lit(f"{prefix}//") + pl.when(value != "").then(value)


def _item() -> pl.Expr:
    return _prefixed(ITEM, "itemid")


def _icd(vocabularies: dict[str, str]) -> pl.Expr:
    """`VOCAB//icd_code` with the vocabulary chosen by `icd_version`; null for another version."""
    version = pl.col("icd_version").str.strip_chars()
    code = pl.lit(None, pl.Utf8)
    for number, vocab in vocabularies.items():
        code = pl.when(version == number).then(_prefixed(vocab, "icd_code")).otherwise(code)
    return code


def _ndc_or_name() -> pl.Expr:
    """A prescription's NDC (`NDC//...`) when it has one (not 0), else its lower-cased drug name."""
    ndc = pl.col("ndc").str.strip_chars()
    has_ndc = ndc.is_not_null() & ~ndc.is_in(["", "0"])
    return pl.when(has_ndc).then(pl.lit("NDC//") + ndc).otherwise(
        _prefixed("MIMIC4_DRUG", "drug", lower=True))


def _text_without_number(value: str, number: str) -> pl.Expr:
    """The text value, only where the row has no number (a number is kept as numeric_value)."""
    return pl.when(to_number(number).is_null()).then(pl.col(value))


def _age() -> pl.Expr:
    """Age at admission from the anchor: anchor_age + (admission year - anchor_year), at most 91."""
    anchor_age = to_number("anchor_age")
    age = anchor_age + (pl.col("start_time").dt.year() - to_number("anchor_year"))
    return pl.when((anchor_age >= OLDEST) | (age > OLDEST)).then(OLDEST).otherwise(age)


def _death_time() -> pl.Expr:
    """`deathtime`, else the date of death (`dod`) when it falls within the admission.

    A death on the discharge day is dated at discharge; an earlier one at that day's midnight,
    or at admission when that is later.
    """
    dod, start, end = pl.col("_dod"), pl.col("start_time"), pl.col("end_time")
    within = (dod >= start.dt.truncate("1d")) & (dod <= end.dt.truncate("1d"))
    from_dod = (pl.when(within & (dod == end.dt.truncate("1d"))).then(end)
                .when(within).then(pl.max_horizontal(dod, start)))
    return pl.coalesce(pl.col("_deathtime"), from_dod)


# ------------------------------------------------------------------------------ event tables
EVENT_TABLES = (
    EventTable("icu/chartevents", ("charttime", "itemid", "value", "valuenum", "valueuom"),
               lambda: _time("charttime"), _item, lambda: to_number("valuenum"),
               lambda: pl.col("valueuom"), lambda: _text_without_number("value", "valuenum")),
    EventTable("hosp/labevents", ("charttime", "itemid", "value", "valuenum", "valueuom"),
               lambda: _time("charttime"), lambda: _prefixed(LAB, "itemid"),
               lambda: to_number("valuenum"), lambda: pl.col("valueuom"),
               lambda: _text_without_number("value", "valuenum")),
    EventTable("icu/inputevents", ("starttime", "itemid", "amount", "amountuom"),
               lambda: _time("starttime"), _item, lambda: to_number("amount"),
               lambda: pl.col("amountuom")),
    EventTable("icu/outputevents", ("charttime", "itemid", "value", "valueuom"),
               lambda: _time("charttime"), _item, lambda: to_number("value"),
               lambda: pl.col("valueuom")),
    EventTable("icu/procedureevents", ("starttime", "itemid", "value", "valueuom"),
               lambda: _time("starttime"), _item, lambda: to_number("value"),
               lambda: pl.col("valueuom")),
    EventTable("hosp/prescriptions", ("starttime", "drug", "ndc", "dose_val_rx", "dose_unit_rx"),
               lambda: _time("starttime"), _ndc_or_name,
               text=lambda: pl.concat_str([pl.col("dose_val_rx"), pl.col("dose_unit_rx")],
                                          separator=" ", ignore_nulls=True)),
    EventTable("hosp/emar", ("charttime", "medication", "event_txt"), lambda: _time("charttime"),
               lambda: _prefixed("MIMIC4_EMAR", "medication", lower=True),
               keep=lambda: pl.col("event_txt").str.strip_chars() == "Administered"),
    EventTable("hosp/microbiologyevents", ("chartdate", "charttime", "spec_type_desc", "org_name"),
               lambda: pl.coalesce(_time("charttime"), _date("chartdate")),
               lambda: _prefixed("MIMIC4_MICRO", "spec_type_desc"), text=lambda: pl.col("org_name")),
    EventTable("hosp/procedures_icd", ("chartdate", "icd_code", "icd_version"),
               lambda: _date("chartdate"), lambda: _icd({"9": "ICD9PROC", "10": "ICD10PCS"})),
    EventTable("icu/icustays", ("intime", "first_careunit"), lambda: _time("intime"),
               lambda: _prefixed("MIMIC4_ICU", "first_careunit")),
    EventTable("hosp/transfers", ("intime", "careunit", "eventtype"), lambda: _time("intime"),
               lambda: _prefixed("MIMIC4_TRANSFER", "careunit"),
               keep=lambda: pl.col("eventtype").fill_null("").str.strip_chars() != "discharge"),
    *(EventTable(f"note/{name}", ("charttime", "note_type", "text"), lambda: _time("charttime"),
                 lambda: _prefixed(NOTE, "note_type"), text=lambda: pl.col("text"))
      for name in NOTE_TABLES),
)
DIAGNOSES = "hosp/diagnoses_icd"
DIAGNOSIS_VOCABULARIES = {"9": "ICD9CM", "10": "ICD10CM"}
# dictionaries whose labels describe the codes (MEDS metadata/codes.parquet)
DICTIONARIES = {
    "icu/d_items": (["itemid", "label"], lambda: _prefixed(ITEM, "itemid")),
    "hosp/d_labitems": (["itemid", "label", "fluid"], lambda: _prefixed(LAB, "itemid")),
    "hosp/d_icd_diagnoses": (["icd_code", "icd_version", "long_title"],
                             lambda: _icd(DIAGNOSIS_VOCABULARIES)),
    "hosp/d_icd_procedures": (["icd_code", "icd_version", "long_title"],
                              lambda: _icd({"9": "ICD9PROC", "10": "ICD10PCS"})),
}


# ------------------------------------------------------------------------------ finding files
def _holds_release(folder: Path) -> bool:
    """True when `folder/hosp` holds the admissions table."""
    return (folder / "hosp").is_dir() and find_table(folder / "hosp", "admissions") is not None


def resolve_root(path: Path) -> Path:
    """The release folder: `path` itself, or the one release (holding hosp/) a few levels below it."""
    if not path.is_dir():
        raise MissingDataError(f"{NAME}: {path} is not a folder; point at the MIMIC-IV release "
                               "folder (the one holding hosp/ and icu/)")
    if _holds_release(path) or find_table(path, "admissions") is not None:
        return path.parent if path.name == "hosp" and _holds_release(path.parent) else path
    found = sorted({hosp.parent for depth in range(1, RELEASE_DEPTH + 1)
                    for hosp in path.glob("/".join(["*"] * depth) + "/hosp")
                    if _holds_release(hosp.parent)})
    if len(found) > 1:
        raise ConfigError(f"{NAME}: {path} holds {len(found)} MIMIC-IV releases "
                          f"({', '.join(str(f) for f in found)}); point at one of them")
    if not found:
        raise MissingDataError(
            f"{NAME}: {path} holds no MIMIC-IV release: hosp/admissions.csv.gz and "
            f"hosp/patients.csv.gz (or .csv) are required, in {path}/hosp or a release folder "
            f"below it (e.g. {path}/mimic-iv-3.1/hosp)")
    return found[0]


def is_mimic4(path: Path) -> bool:
    """True when `path` holds a MIMIC-IV release: its patients table has MIMIC-IV's anchor_age."""
    try:
        patients = locate(resolve_root(path), PATIENTS)
        return patients is not None and "anchor_age" in scan_table(patients).collect_schema().names()
    except ConfigError:
        return True    # several releases: converting names them and asks for one
    except (MissingDataError, CorruptDataError, OSError):
        return False


def locate(root: Path, table: str) -> Path | None:
    """`ROOT/MODULE/NAME.csv(.gz)` for `MODULE/NAME`, else `ROOT/NAME.csv(.gz)` (a flat folder)."""
    module, name = table.split("/")
    for folder in (root / module, root):
        if folder.is_dir() and (path := find_table(folder, name)) is not None:
            return path
    return None


def _where(path: Path) -> str:
    """`mimic4/hosp/labevents.csv.gz`: the file as skips and errors name it."""
    return f"{NAME}/{path.parent.name}/{path.name}"


def _require_stay_tables(root: Path) -> tuple[Path, Path]:
    """hosp/admissions and hosp/patients, or a MissingDataError naming what is missing."""
    admissions, patients = locate(root, ADMISSIONS), locate(root, PATIENTS)
    if admissions is None or patients is None:
        missing = [f"{t}.csv.gz" for t, p in ((ADMISSIONS, admissions), (PATIENTS, patients)) if p is None]
        raise MissingDataError(
            f"{NAME}: hosp/admissions.csv.gz and hosp/patients.csv.gz (or .csv) are required; "
            f"not found in {root}: {', '.join(missing)}")
    return admissions, patients


# ------------------------------------------------------------------------------ stays
def _drop_rows(frame: pl.DataFrame, bad: pl.DataFrame, skips: SkipLog, where: str,
               reason: Callable[[dict], str]) -> pl.DataFrame:
    """Skip `bad`'s rows (counted, each named by file line and hadm_id) and return the rest."""
    for row in bad.iter_rows(named=True):
        skips.add(f"{where}:{row['_row']} hadm_id {row['hadm_id']}", reason(row))
    return frame.join(bad.select("_row"), on="_row", how="anti")


def convert_stays(admissions: Path, patients: Path) -> PartResult:
    """Admissions joined with patients: one stay per admission, with its outcomes."""
    skips, where = SkipLog(), _where(admissions)
    adm = read_table(admissions, ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                                  "admission_type", "insurance", "race", "hospital_expire_flag"]
                     ).with_row_index("_row", offset=2)
    pat = read_table(patients, ["subject_id", "gender", "anchor_age", "anchor_year", "dod"])
    repeated = adm.filter(pl.col("_row") != pl.col("_row").min().over("hadm_id"))
    adm = _drop_rows(adm, repeated, skips, where, lambda _: "duplicate admission: kept the first row")
    frame = adm.join(pat.unique("subject_id", keep="first"), on="subject_id", how="left").with_columns(
        _time("admittime").alias("start_time"), _time("dischtime").alias("end_time"),
        _time("deathtime").alias("_deathtime"), _date("dod").alias("_dod"))
    frame = _drop_rows(frame, frame.filter(pl.col("gender").is_null()), skips, where,
                       lambda r: f"no hosp/patients row: subject {r['subject_id']}")
    bad_time = frame.filter(pl.col("start_time").is_null() | pl.col("end_time").is_null()
                            | (pl.col("end_time") < pl.col("start_time")))
    frame = _drop_rows(frame, bad_time, skips, where, lambda r: (
        f"impossible times: admit {r['admittime']!r}, discharge {r['dischtime']!r}"))
    stays = frame.sort("_row").select(
        "subject_id", pl.col("hadm_id").alias("stay_id"), pl.lit(NAME).alias("site_id"),
        "start_time", "end_time", _age().cast(pl.Float64).alias("age"), pl.col("gender").alias("sex"),
        pl.col("race").alias("ethnicity"),
        pl.col("hospital_expire_flag").str.strip_chars().cast(pl.Int8, strict=False).alias("died"),
        _death_time().alias("death_time"),
        ((pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 86400).alias("los_days"),
        "admission_type", "insurance",
    )
    return PartResult(events_frame(), add_readmission(stays, days=30), skips)


# ------------------------------------------------------------------------------ events
def _missing_columns(path: Path, spec: EventTable) -> list[str]:
    have = set(scan_table(path).collect_schema().names())
    return [c for c in dict.fromkeys([spec.subject, spec.stay, *spec.columns]) if c not in have]


def _lab_codes_to_loinc(root: Path, events: pl.DataFrame) -> pl.DataFrame:
    """`MIMIC4_LAB//itemid` -> `LOINC//code` where d_labitems has a loinc_code (MIMIC-IV v1.0)."""
    path = locate(root, "hosp/d_labitems")
    if path is None or "loinc_code" not in scan_table(path).collect_schema().names():
        return events
    items = read_table(path, ["itemid", "loinc_code"]).filter(
        pl.col("loinc_code").str.strip_chars().fill_null("") != "")
    loinc = dict(zip(items.select(_prefixed(LAB, "itemid")).to_series().to_list(),
                     items.select(_prefixed("LOINC", "loinc_code")).to_series().to_list(), strict=True))
    return events.with_columns(pl.col("code").replace(loinc)) if loinc else events


def _one_per_organism(root: Path, events: pl.DataFrame) -> pl.DataFrame:
    """One event per specimen and organism: MIMIC-IV repeats them once per antibiotic tested."""
    return events.unique(maintain_order=True)


AFTER: dict[str, Callable[[Path, pl.DataFrame], pl.DataFrame]] = {
    "hosp/labevents": _lab_codes_to_loinc, "hosp/microbiologyevents": _one_per_organism}


def convert_events(root: Path, path: Path, spec: EventTable) -> PartResult:
    """One event table; a table missing a column it needs is skipped whole, with the reason."""
    skips = SkipLog()
    missing = _missing_columns(path, spec)
    if missing:
        reason = f"table skipped: missing column(s) {missing}"
        skips.add(_where(path), reason)
        return PartResult(events_frame(), None, skips, [f"{_where(path)}: {reason}"])
    events = events_from_table(path, spec, skips, f"{NAME}/{path.parent.name}")
    if spec.table in AFTER:
        events = AFTER[spec.table](root, events)
    ranges = {f"{ITEM}//{i}": key for key, items in VITAL_ITEMS.items() for i in items}
    return PartResult(drop_implausible(events, ranges, skips, f"{NAME}/{spec.table}"), None, skips)


def convert_diagnoses(path: Path, admissions: Path) -> PartResult:
    """ICD-9-CM / ICD-10-CM diagnoses, dated at their admission's discharge."""
    skips = SkipLog()
    codes = read_table(path, ["subject_id", "hadm_id", "icd_code", "icd_version"]).with_row_index(
        "_row", offset=2)
    adm = read_table(admissions, ["hadm_id", "dischtime"]).unique("hadm_id", keep="first")
    joined = codes.join(adm, on="hadm_id", how="left").with_columns(
        _time("dischtime").alias("time"), _icd(DIAGNOSIS_VOCABULARIES).alias("code"))
    bad = joined.filter(pl.col("time").is_null() | pl.col("code").is_null())
    for row in bad.head(1000).iter_rows(named=True):
        skips.add(f"{_where(path)}:{row['_row']}",
                  f"code without admission or known ICD version: hadm_id {row['hadm_id']}, "
                  f"icd_version {row['icd_version']!r}")
    for _ in range(max(0, bad.height - 1000)):
        skips.add(_where(path), "code without admission or known ICD version")
    events = joined.filter(pl.col("time").is_not_null() & pl.col("code").is_not_null()).select(
        "subject_id", pl.col("hadm_id").alias("stay_id"), "time", "code")
    return PartResult(events, None, skips)


# ------------------------------------------------------------------------------ the source
def _part_name(table: str) -> str:
    return table.split("/")[1]


def parts(path: Path) -> list[Part]:
    """One part per table file (the cache follows each file); admissions + patients give stays."""
    root = resolve_root(path)
    admissions, patients = _require_stay_tables(root)
    result = [Part("stays", (admissions, patients), lambda: convert_stays(admissions, patients))]
    for spec in EVENT_TABLES:
        table_path = locate(root, spec.table)
        if table_path is None:
            continue
        extra = locate(root, "hosp/d_labitems") if spec.table == "hosp/labevents" else None
        result.append(Part(_part_name(spec.table), (table_path, *([extra] if extra else [])),
                           lambda p=table_path, s=spec: convert_events(root, p, s)))
    diagnoses = locate(root, DIAGNOSES)
    if diagnoses is not None:
        result.append(Part(_part_name(DIAGNOSES), (diagnoses, admissions),
                           lambda: convert_diagnoses(diagnoses, admissions)))
    return result


def descriptions(path: Path) -> dict[str, str]:
    """Labels of the item, lab and ICD codes, from the dictionaries present (d_items, d_labitems, ...)."""
    try:
        root = resolve_root(path)
    except (ConfigError, MissingDataError):
        return {}
    known: dict[str, str] = {}
    for table, (columns, code) in DICTIONARIES.items():
        dictionary = locate(root, table)
        if dictionary is None:
            continue
        try:
            frame = read_table(dictionary, columns)
        except CorruptDataError:
            continue   # a dictionary only adds descriptions; a damaged one gives none
        text = pl.concat_str([pl.col(c) for c in columns[-2:]], separator=", ", ignore_nulls=True) \
            if table == "hosp/d_labitems" else pl.col(columns[-1])
        pairs = frame.select(code().alias("code"), text.alias("text")).drop_nulls()
        known.update(zip(pairs["code"].to_list(), pairs["text"].to_list(), strict=True))
    return known


SOURCE = Source(NAME, "a MIMIC-IV release folder (hosp/ and icu/ with .csv.gz tables; "
                "hosp/admissions and hosp/patients required)", parts, no_finish, descriptions)
