"""MIMIC-III (full schema or the 100-patient demo) into the event format; a stay is an admission.

ADMISSIONS and PATIENTS are required. Event tables (CHARTEVENTS, LABEVENTS, INPUTEVENTS_MV/CV,
OUTPUTEVENTS, PROCEDUREEVENTS_MV, PRESCRIPTIONS, MICROBIOLOGYEVENTS, DATETIMEEVENTS, ICUSTAYS,
DIAGNOSES_ICD, PROCEDURES_ICD, NOTEEVENTS) are converted when present; the demo lacks CHARTEVENTS
and LABEVENTS, and its NOTEEVENTS is empty. Notes become `NOTE//MIMIC3//CATEGORY` text events
(rows marked ISERROR left out), at their chart time, or at the end of their chart date when they
have only a date, so `ehr:PATH --notes` can read them. Diagnosis and procedure codes carry no
time in MIMIC: they are coded at discharge, so they are dated at the admission's discharge time
(as in MEDS) and never leak into windows that end before discharge.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source, no_finish
from iatros.data.ehr.schema import SkipLog, add_readmission, drop_implausible, events_frame
from iatros.data.ehr.tables import (
    EventTable,
    events_from_table,
    find_table,
    read_table,
    require_table,
    to_number,
    to_time,
)

NAME = "mimic3"
ITEM = "MIMIC3_ITEM"
# CareVue and MetaVision item ids of vital signs, for the impossible-value check.
VITAL_ITEMS = {
    "heart_rate": (211, 220045), "resp_rate": (618, 615, 220210, 224690),
    "sbp": (51, 442, 455, 6701, 220179, 220050), "dbp": (8368, 8440, 8441, 8555, 220180, 220051),
    "spo2": (646, 220277), "temperature_c": (676, 223762), "gcs": (198,),
}
STAY_EXTRA = {"admission_type": pl.Utf8, "insurance": pl.Utf8, "readmit_30d": pl.Int8,
              "admit_diagnosis": pl.Utf8}


def _item() -> pl.Expr:
    return pl.lit(f"{ITEM}//") + pl.col("itemid")


def _end_of_day(column: str) -> pl.Expr:
    """A date-only note (a discharge summary) at the last microsecond of its day: it never
    reaches a window that closes earlier that day."""
    day = pl.col(column).str.slice(0, 10).str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False)
    return day + pl.duration(days=1) - pl.duration(microseconds=1)


EVENT_TABLES = (
    EventTable("CHARTEVENTS", ("charttime", "itemid", "valuenum", "valueuom", "value", "error"),
               lambda: to_time("charttime"), _item, lambda: to_number("valuenum"),
               lambda: pl.col("valueuom"), lambda: pl.col("value"),
               keep=lambda: pl.col("error").is_null() | (pl.col("error") != "1")),
    EventTable("LABEVENTS", ("charttime", "itemid", "valuenum", "valueuom", "value"),
               lambda: to_time("charttime"), lambda: pl.lit("MIMIC3_LAB//") + pl.col("itemid"),
               lambda: to_number("valuenum"), lambda: pl.col("valueuom"), lambda: pl.col("value")),
    EventTable("OUTPUTEVENTS", ("charttime", "itemid", "value", "valueuom"),
               lambda: to_time("charttime"), _item, lambda: to_number("value"),
               lambda: pl.col("valueuom")),
    EventTable("INPUTEVENTS_MV", ("starttime", "itemid", "amount", "amountuom"),
               lambda: to_time("starttime"), _item, lambda: to_number("amount"),
               lambda: pl.col("amountuom")),
    EventTable("INPUTEVENTS_CV", ("charttime", "itemid", "amount", "amountuom"),
               lambda: to_time("charttime"), _item, lambda: to_number("amount"),
               lambda: pl.col("amountuom")),
    EventTable("PROCEDUREEVENTS_MV", ("starttime", "itemid", "value", "valueuom"),
               lambda: to_time("starttime"), _item, lambda: to_number("value"),
               lambda: pl.col("valueuom")),
    EventTable("DATETIMEEVENTS", ("charttime", "itemid"), lambda: to_time("charttime"), _item),
    EventTable("PRESCRIPTIONS", ("startdate", "drug", "dose_val_rx", "dose_unit_rx"),
               lambda: to_time("startdate"),
               lambda: pl.lit("MIMIC3_DRUG//") + pl.col("drug").str.to_lowercase(),
               text=lambda: pl.concat_str([pl.col("dose_val_rx"), pl.col("dose_unit_rx")],
                                          separator=" ", ignore_nulls=True)),
    EventTable("MICROBIOLOGYEVENTS", ("charttime", "chartdate", "spec_type_desc", "org_name"),
               lambda: pl.coalesce(to_time("charttime"), to_time("chartdate")),
               lambda: pl.lit("MIMIC3_MICRO//") + pl.col("spec_type_desc"),
               text=lambda: pl.col("org_name")),
    EventTable("ICUSTAYS", ("intime", "first_careunit"), lambda: to_time("intime"),
               lambda: pl.lit("MIMIC3_ICU//") + pl.col("first_careunit")),
    EventTable("NOTEEVENTS", ("chartdate", "charttime", "category", "iserror", "text"),
               lambda: pl.coalesce(to_time("charttime"), _end_of_day("chartdate")),
               lambda: pl.lit("NOTE//MIMIC3//") + pl.col("category").str.strip_chars(),
               text=lambda: pl.col("text"),
               keep=lambda: pl.col("iserror").is_null() | (pl.col("iserror") != "1")),
)
CODED_TABLES = {"DIAGNOSES_ICD": "ICD9CM", "PROCEDURES_ICD": "ICD9PROC"}


def _age(admit: pl.Expr, dob: pl.Expr) -> pl.Expr:
    """Age in years; MIMIC shifts ages over 89 to about 300, reported here as 90."""
    years = (admit - dob).dt.total_days() / 365.25
    return pl.when(years > 89).then(90.0).otherwise(years)


def convert_stays(folder: Path) -> PartResult:
    """Admissions joined with patients: one stay per admission, with its outcomes."""
    skips = SkipLog()
    adm = read_table(require_table(folder, "ADMISSIONS", NAME),
                     ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                      "admission_type", "insurance", "ethnicity", "hospital_expire_flag",
                      "diagnosis"])
    pat = read_table(require_table(folder, "PATIENTS", NAME), ["subject_id", "gender", "dob"])
    dup = adm.filter(pl.col("hadm_id").is_duplicated())
    for hadm in dup["hadm_id"].unique().to_list():
        skips.add(f"ADMISSIONS hadm_id {hadm}", "duplicate admission: kept the first row")
    adm = adm.unique("hadm_id", keep="first", maintain_order=True)
    frame = adm.join(pat.unique("subject_id"), on="subject_id", how="left").with_columns(
        to_time("admittime").alias("start_time"), to_time("dischtime").alias("end_time"),
        to_time("deathtime").alias("death_time"), to_time("dob").alias("_dob"))
    no_patient = frame.filter(pl.col("gender").is_null())
    for row in no_patient.iter_rows(named=True):
        skips.add(f"ADMISSIONS hadm_id {row['hadm_id']}", f"no PATIENTS row: {row['subject_id']}")
    bad_time = frame.filter(pl.col("start_time").is_null() | pl.col("end_time").is_null()
                            | (pl.col("end_time") < pl.col("start_time")))
    for row in bad_time.iter_rows(named=True):
        skips.add(f"ADMISSIONS hadm_id {row['hadm_id']}",
                  f"impossible times: admit {row['admittime']}, discharge {row['dischtime']}")
    frame = frame.join(pl.concat([no_patient, bad_time]).select("hadm_id"), on="hadm_id",
                       how="anti")
    stays = frame.select(
        "subject_id", pl.col("hadm_id").alias("stay_id"), pl.lit("mimic3").alias("site_id"),
        "start_time", "end_time", _age(pl.col("start_time"), pl.col("_dob")).alias("age"),
        pl.col("gender").alias("sex"), "ethnicity",
        pl.col("hospital_expire_flag").cast(pl.Int8, strict=False).alias("died"), "death_time",
        ((pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 86400).alias("los_days"),
        "admission_type", "insurance", pl.col("diagnosis").alias("admit_diagnosis"),
    )
    stays = add_readmission(stays, days=30)
    return PartResult(events_frame(), stays, skips)


def convert_events(folder: Path, spec: EventTable) -> PartResult:
    skips = SkipLog()
    path = find_table(folder, spec.table)
    assert path is not None
    events = events_from_table(path, spec, skips, NAME)
    ranges = {f"{ITEM}//{i}": key for key, items in VITAL_ITEMS.items() for i in items}
    return PartResult(drop_implausible(events, ranges, skips, f"{NAME}/{spec.table}"), None, skips)


def convert_coded(folder: Path, table: str, vocab: str) -> PartResult:
    """Diagnosis/procedure codes, dated at their admission's discharge."""
    skips = SkipLog()
    codes = read_table(require_table(folder, table, NAME), ["subject_id", "hadm_id", "icd9_code"])
    adm = read_table(require_table(folder, "ADMISSIONS", NAME), ["hadm_id", "dischtime"])
    joined = codes.join(adm.unique("hadm_id"), on="hadm_id", how="left").with_row_index(
        "_row", offset=2)
    bad = joined.filter(pl.col("dischtime").is_null() | pl.col("icd9_code").is_null())
    for row in bad.iter_rows(named=True):
        skips.add(f"{NAME}/{table}:{row['_row']}", "code without admission or code value")
    events = joined.filter(pl.col("dischtime").is_not_null() & pl.col("icd9_code").is_not_null()
                           ).select(
        "subject_id", pl.col("hadm_id").alias("stay_id"), to_time("dischtime").alias("time"),
        (pl.lit(f"{vocab}//") + pl.col("icd9_code")).alias("code"))
    return PartResult(events, None, skips)


def parts(folder: Path) -> list[Part]:
    result = [Part("stays", tuple(p for p in (find_table(folder, "ADMISSIONS"),
                                              find_table(folder, "PATIENTS")) if p),
                   lambda: convert_stays(folder))]
    for spec in EVENT_TABLES:
        path = find_table(folder, spec.table)
        if path is not None:
            result.append(Part(spec.table.lower(), (path,),
                               lambda s=spec: convert_events(folder, s)))
    for table, vocab in CODED_TABLES.items():
        path = find_table(folder, table)
        if path is not None:
            adm = find_table(folder, "ADMISSIONS")
            result.append(Part(table.lower(), (path, *([adm] if adm else [])),
                               lambda t=table, v=vocab: convert_coded(folder, t, v)))
    return result


SOURCE = Source(NAME, "a MIMIC-III folder with ADMISSIONS.csv, PATIENTS.csv and event tables",
                parts, no_finish)
