"""eICU Collaborative Research Database (full or demo, gzipped CSVs); a stay is an ICU unit stay.

`patient` is required. Times in eICU are minute offsets from unit admission, so each stay is
anchored at a nominal 2000-01-01 00:00 (the gap between a patient's stays is not kept). The
hospital id is kept as `site_id` for site-level splits. APACHE first-day variables (worst value
in the first 24 h, -1 when not measured) are dated at 23:59 of day one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source
from iatros.data.ehr.schema import Frame, SkipLog, drop_implausible, events_frame
from iatros.data.ehr.tables import (
    EventTable,
    events_from_table,
    find_table,
    read_table,
    require_table,
    scan_table,
    to_number,
)

NAME = "eicu"
ANCHOR = datetime(2000, 1, 1)
STAY_EXTRA = {"unit_type": pl.Utf8, "admission_dx": pl.Utf8, "hospital_stay_id": pl.Utf8}
WIDE_TABLES = {
    "vitalPeriodic": ("observationoffset", ("temperature", "sao2", "heartrate", "respiration",
                                            "cvp", "systemicsystolic", "systemicdiastolic",
                                            "systemicmean", "etco2")),
    "vitalAperiodic": ("observationoffset", ("noninvasivesystolic", "noninvasivediastolic",
                                             "noninvasivemean", "paop", "cardiacoutput",
                                             "cardiacinput", "svr", "svri", "pvr", "pvri")),
}
VITAL_RANGES = {"temperature": "temperature_c", "sao2": "spo2", "heartrate": "heart_rate",
                "respiration": "resp_rate", "systemicsystolic": "sbp", "noninvasivesystolic": "sbp",
                "systemicdiastolic": "dbp", "noninvasivediastolic": "dbp",
                "systemicmean": "map", "noninvasivemean": "map"}
APACHE_VARS = ("eyes", "motor", "verbal", "urine", "wbc", "temperature", "respiratoryrate",
               "sodium", "heartrate", "meanbp", "ph", "hematocrit", "creatinine", "albumin",
               "pao2", "pco2", "bun", "glucose", "bilirubin", "fio2", "intubated", "vent",
               "dialysis")


def _at(column: str) -> pl.Expr:
    """Minute offset -> timestamp from the nominal anchor."""
    return pl.lit(ANCHOR) + pl.duration(minutes=to_number(column).round(0).cast(pl.Int64))


def _long(table: str, offset: str, code: str, value: str | None = None, unit: str | None = None,
          text: str | None = None, prefix: str = "") -> EventTable:
    cols = tuple(dict.fromkeys(c for c in (offset, code, value, unit, text) if c))
    return EventTable(
        table, cols, lambda: _at(offset),
        lambda: pl.lit(f"EICU_{prefix or table.upper()}//") + pl.col(code).str.strip_chars(),
        (lambda: to_number(value)) if value else None,
        (lambda: pl.col(unit)) if unit else None,
        (lambda: pl.col(text)) if text else None,
        stay="patientunitstayid", subject="patientunitstayid")


LONG_TABLES = (
    _long("lab", "labresultoffset", "labname", "labresult", "labmeasurenamesystem"),
    _long("nurseCharting", "nursingchartoffset", "nursingchartcelltypevalname",
          "nursingchartvalue", text="nursingchartvalue", prefix="NURSE"),
    _long("respiratoryCharting", "respchartoffset", "respchartvaluelabel", "respchartvalue",
          text="respchartvalue", prefix="RESP"),
    _long("customLab", "labotheroffset", "labothername", "labotherresult", prefix="LAB"),
    EventTable("medication", ("drugstartoffset", "drugname", "drughiclseqno", "dosage",
                              "drugordercancelled"),
               lambda: _at("drugstartoffset"),
               lambda: pl.lit("EICU_DRUG//") + pl.coalesce(
                   pl.col("drugname").str.strip_chars(), pl.lit("HICL ") + pl.col("drughiclseqno")),
               text=lambda: pl.col("dosage"),
               keep=lambda: pl.col("drugordercancelled").fill_null("No") != "Yes",
               stay="patientunitstayid", subject="patientunitstayid"),
    _long("infusiondrug", "infusionoffset", "drugname", "drugrate", prefix="INFUSION"),
    _long("diagnosis", "diagnosisoffset", "diagnosisstring", text="icd9code", prefix="DX"),
    _long("treatment", "treatmentoffset", "treatmentstring", prefix="TREATMENT"),
    _long("pastHistory", "pasthistoryoffset", "pasthistorypath", prefix="HISTORY"),
    _long("admissionDx", "admitdxenteredoffset", "admitdxpath", prefix="ADMITDX"),
    _long("physicalExam", "physicalexamoffset", "physicalexampath", "physicalexamvalue",
          text="physicalexamvalue", prefix="EXAM"),
    _long("microLab", "culturetakenoffset", "culturesite", text="organism", prefix="MICRO"),
)


def _age() -> pl.Expr:
    """eICU writes ages over 89 as '> 89'; those become 90."""
    age = pl.col("age").str.strip_chars()
    return pl.when(age == "> 89").then(90.0).otherwise(age.cast(pl.Float64, strict=False))


def convert_stays(folder: Path) -> PartResult:
    skips = SkipLog()
    pat = read_table(require_table(folder, "patient", NAME), [
        "patientunitstayid", "patienthealthsystemstayid", "uniquepid", "gender", "age",
        "ethnicity", "hospitalid", "unittype", "apacheadmissiondx", "hospitaldischargestatus",
        "hospitaldischargeoffset", "unitdischargeoffset"])
    for sid in pat.filter(pl.col("patientunitstayid").is_duplicated())["patientunitstayid"].unique():
        skips.add(f"{NAME}/patient stay {sid}", "duplicate stay: kept the first row")
    pat = pat.unique("patientunitstayid", keep="first", maintain_order=True)
    status = pl.col("hospitaldischargestatus").str.strip_chars()
    died = pl.when(status == "Expired").then(1).when(status == "Alive").then(0).otherwise(None)
    unit_minutes = to_number("unitdischargeoffset")
    bad = pat.filter(unit_minutes.is_null() | (unit_minutes < 0))
    for row in bad.iter_rows(named=True):
        skips.add(f"{NAME}/patient stay {row['patientunitstayid']}",
                  f"impossible unit discharge offset: {row['unitdischargeoffset']!r}")
    pat = pat.join(bad.select("patientunitstayid"), on="patientunitstayid", how="anti")
    sex = pl.col("gender").replace_strict({"Female": "F", "Male": "M"}, default=None)
    stays = pat.select(
        pl.col("uniquepid").alias("subject_id"), pl.col("patientunitstayid").alias("stay_id"),
        pl.col("hospitalid").alias("site_id"), pl.lit(ANCHOR).alias("start_time"),
        _at("unitdischargeoffset").alias("end_time"), _age().alias("age"), sex.alias("sex"),
        pl.col("ethnicity").fill_null("Unknown").alias("ethnicity"),
        died.cast(pl.Int8).alias("died"),
        pl.when(died == 1).then(_at("hospitaldischargeoffset")).otherwise(None).alias("death_time"),
        (unit_minutes / 1440).alias("los_days"), pl.col("unittype").alias("unit_type"),
        pl.col("apacheadmissiondx").alias("admission_dx"),
        pl.col("patienthealthsystemstayid").alias("hospital_stay_id"),
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")),
                   pl.col("end_time").cast(pl.Datetime("us")),
                   pl.col("death_time").cast(pl.Datetime("us")))
    return PartResult(events_frame(), stays, skips)


def convert_long(folder: Path, spec: EventTable) -> PartResult:
    skips = SkipLog()
    path = find_table(folder, spec.table)
    assert path is not None
    return PartResult(events_from_table(path, spec, skips, NAME), None, skips)


def convert_wide(folder: Path, table: str) -> PartResult:
    """Vital-sign tables with one column per variable, melted into one event per value."""
    skips = SkipLog()
    path = find_table(folder, table)
    assert path is not None
    offset, variables = WIDE_TABLES[table]
    present = [v for v in variables if v in scan_table(path).collect_schema().names()]
    frame = read_table(path, ["patientunitstayid", offset, *present]).with_row_index("_row", offset=2)
    events = frame.unpivot(index=["_row", "patientunitstayid", offset], on=present,
                           variable_name="variable", value_name="raw").select(
        "_row", pl.col("patientunitstayid").alias("subject_id"),
        pl.col("patientunitstayid").alias("stay_id"), _at(offset).alias("time"),
        (pl.lit("EICU_VITAL//") + pl.col("variable")).alias("code"),
        to_number("raw").alias("numeric_value"),
    ).filter(pl.col("numeric_value").is_not_null())
    # a value without a usable offset cannot be placed in time: skipped, counted per row
    untimed = (events.filter(pl.col("time").is_null())
               .group_by("_row", maintain_order=True).agg(pl.col("code").str.strip_prefix("EICU_VITAL//"))
               .sort("_row"))
    for row in untimed.head(1000).iter_rows(named=True):
        skips.add(f"{NAME}/{path.name}:{row['_row']}", f"no time: values of {', '.join(row['code'])}")
    for _ in range(max(0, untimed.height - 1000)):
        skips.add(f"{NAME}/{path.name}", "no time: values without an offset")
    events = events.filter(pl.col("time").is_not_null()).drop("_row")
    ranges = {f"EICU_VITAL//{v}": k for v, k in VITAL_RANGES.items()}
    return PartResult(drop_implausible(events, ranges, skips, f"{NAME}/{table}"), None, skips)


def convert_apache(folder: Path) -> PartResult:
    """First-day APACHE variables (-1 = not measured, left out)."""
    path = find_table(folder, "apacheApsVar")
    assert path is not None
    present = [v for v in APACHE_VARS if v in scan_table(path).collect_schema().names()]
    frame = read_table(path, ["patientunitstayid", *present])
    events = frame.unpivot(index="patientunitstayid", on=present, variable_name="variable",
                           value_name="raw").select(
        pl.col("patientunitstayid").alias("subject_id"),
        pl.col("patientunitstayid").alias("stay_id"),
        pl.lit(datetime(2000, 1, 1, 23, 59)).cast(pl.Datetime("us")).alias("time"),
        (pl.lit("EICU_APACHE//") + pl.col("variable")).alias("code"),
        to_number("raw").alias("numeric_value"),
    ).filter(pl.col("numeric_value").is_not_null() & (pl.col("numeric_value") != -1))
    return PartResult(events, None, SkipLog())


def finish(events: Frame, stays: pl.DataFrame, skips: SkipLog) -> tuple[Frame, pl.DataFrame]:
    """Events are keyed by unit stay; give them the stay's patient id (lazily: the merged events
    stay on disk; only the orphans' stay ids are collected)."""
    lazy = events.lazy()
    joined = lazy.drop("subject_id").join(stays.select("stay_id", "subject_id").lazy(),
                                          on="stay_id", how="left", maintain_order="left")
    orphans = (joined.filter(pl.col("subject_id").is_null()).select("stay_id")
               .unique(maintain_order=True).head(200).collect())
    for sid in orphans["stay_id"].to_list():
        skips.add(f"{NAME} stay {sid}", "events for a stay not in patient")
    if orphans.height:
        joined = joined.filter(pl.col("subject_id").is_not_null())
    if isinstance(events, pl.DataFrame):
        joined = joined.collect()
    return joined.select("subject_id", "stay_id", "time", "code", "numeric_value", "text_value",
                         "unit"), stays


def parts(folder: Path) -> list[Part]:
    patient = find_table(folder, "patient")
    result = [Part("stays", (patient,) if patient else (), lambda: convert_stays(folder))]
    for table in WIDE_TABLES:
        path = find_table(folder, table)
        if path:
            result.append(Part(table.lower(), (path,), lambda t=table: convert_wide(folder, t)))
    for spec in LONG_TABLES:
        path = find_table(folder, spec.table)
        if path:
            result.append(Part(spec.table.lower(), (path,), lambda s=spec: convert_long(folder, s)))
    apache = find_table(folder, "apacheApsVar")
    if apache:
        result.append(Part("apacheapsvar", (apache,), lambda: convert_apache(folder)))
    return result


SOURCE = Source(NAME, "an eICU folder with patient.csv(.gz) and event tables", parts, finish)
