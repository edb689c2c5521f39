"""eICU gzipped tables into the event format (a stay is an ICU unit stay, offsets anchored)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from iatros.data.ehr import convert, get_source
from iatros.data.ehr.eicu import ANCHOR
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import MissingDataError
from tests.data.ehr.builders import EICU_PATIENT_HEADER, eicu_patient, write_csv

SOURCE = get_source("eicu")


def eicu_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    write_csv(folder / "patient.csv.gz", EICU_PATIENT_HEADER, [
        eicu_patient(100, "001-1", 73, unit_discharge=1440, hosp_discharge=2880),
        eicu_patient(101, "001-1", 73, age="> 89", gender="Male", status="Expired",
                     unit_discharge=600, hosp_discharge=900, health_stay=1100),
        eicu_patient(200, "002-2", 264, unit_discharge=30, status=""),
        eicu_patient(300, "003-3", 264, unit_discharge=-5),
    ])
    write_csv(folder / "vitalPeriodic.csv.gz", ("vitalperiodicid", "patientunitstayid",
                                                "observationoffset", "temperature", "sao2",
                                                "heartrate", "respiration"), [
        (1, 100, 5, 37.0, 98, 80, 16),
        (2, 100, -30, None, None, 75, None),        # before unit admission
        (3, 200, 60, 0, 101, -1, 20),               # three impossible values
        (4, 999, 10, None, None, 90, None),         # a stay not in patient
    ])
    write_csv(folder / "lab.csv.gz", ("labid", "patientunitstayid", "labresultoffset", "labname",
                                      "labresult", "labmeasurenamesystem"), [
        (1, 100, 120, "potassium", "4.1", "mmol/L"),
        (2, 101, 30, " BUN ", "20", "mg/dL"),
        (3, 100, None, "sodium", "140", "mmol/L"),  # no time
    ])
    write_csv(folder / "apacheApsVar.csv.gz", ("apacheapsvarid", "patientunitstayid", "heartrate",
                                               "ph", "urine"), [(1, 100, 88, -1, 1200)])
    write_csv(folder / "medication.csv.gz", (
        "medicationid", "patientunitstayid", "drugstartoffset", "drugname", "drughiclseqno",
        "dosage", "drugordercancelled"), [
        (1, 100, 10, "ASPIRIN 81 MG", "1820", "81 mg", "No"),
        (2, 100, 20, None, "4521", "1 tab", "No"),
        (3, 100, 30, "HEPARIN", "1", "5000 units", "Yes"),  # cancelled order
    ])
    return folder


@pytest.fixture
def tables(tmp_path):
    return convert(SOURCE, eicu_folder(tmp_path / "in"), tmp_path / "out")


def test_unit_stays_keep_the_hospital_id_as_site_and_the_patient_as_subject(tables):
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    rows = {r["stay_id"]: r for r in tables.stays.iter_rows(named=True)}
    assert set(rows) == {"100", "101", "200"}
    assert {k: (r["subject_id"], r["site_id"]) for k, r in rows.items()} == {
        "100": ("001-1", "73"), "101": ("001-1", "73"), "200": ("002-2", "264")}
    assert tables.manifest["n_subjects"] == 2
    assert rows["101"]["hospital_stay_id"] == "1100" and rows["101"]["unit_type"] == "Med-Surg ICU"
    assert (rows["100"]["age"], rows["100"]["sex"], rows["101"]["age"], rows["101"]["sex"]) == (
        70.0, "F", 90.0, "M")


def test_offsets_are_anchored_at_the_nominal_unit_admission(tables):
    rows = {r["stay_id"]: r for r in tables.stays.iter_rows(named=True)}
    assert {r["start_time"] for r in rows.values()} == {ANCHOR}
    assert rows["100"]["end_time"] == ANCHOR + timedelta(minutes=1440)
    assert rows["100"]["los_days"] == 1.0
    assert (rows["100"]["died"], rows["100"]["death_time"]) == (0, None)
    assert (rows["101"]["died"], rows["101"]["death_time"]) == (1, ANCHOR + timedelta(minutes=900))
    assert rows["200"]["died"] is None
    hr = tables.events.filter(pl.col("code") == "EICU_VITAL//heartrate", pl.col("stay_id") == "100")
    assert hr.select("time", "numeric_value").rows() == [
        (datetime(1999, 12, 31, 23, 30), 75.0), (datetime(2000, 1, 1, 0, 5), 80.0)]
    apache = tables.events.filter(pl.col("code").str.starts_with("EICU_APACHE//"))
    assert apache.select("time", "code", "numeric_value").rows() == [
        (datetime(2000, 1, 1, 23, 59), "EICU_APACHE//heartrate", 88.0),
        (datetime(2000, 1, 1, 23, 59), "EICU_APACHE//urine", 1200.0)]   # ph = -1: not measured


def test_events_carry_the_patient_id_codes_and_units(tables):
    ev = tables.events
    assert ev.schema == EVENT_SCHEMA
    assert set(ev.filter(pl.col("stay_id") == "100")["subject_id"]) == {"001-1"}
    assert ev.filter(pl.col("code") == "EICU_LAB//BUN").select(
        "subject_id", "stay_id", "time", "numeric_value", "unit").rows() == [
        ("001-1", "101", datetime(2000, 1, 1, 0, 30), 20.0, "mg/dL")]
    drugs = ev.filter(pl.col("code").str.starts_with("EICU_DRUG//"))
    assert drugs.select("code", "text_value").rows() == [
        ("EICU_DRUG//ASPIRIN 81 MG", "81 mg"), ("EICU_DRUG//HICL 4521", "1 tab")]
    assert ev.filter(pl.col("stay_id") == "200").select("code", "numeric_value").rows() == [
        ("EICU_VITAL//respiration", 20.0)]


def test_bad_stays_impossible_values_and_orphan_events_are_reported(tables):
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    assert ("eicu/patient stay 300", "impossible unit discharge offset: '-5'") in skipped
    assert ("eicu/lab.csv.gz:4", "no time or code") in skipped
    assert ("eicu stay 999", "events for a stay not in patient") in skipped
    impossible = sorted(r for w, r in skipped if w.startswith("eicu/vitalPeriodic stay 200"))
    assert impossible == ["impossible value: EICU_VITAL//heartrate = -1.0",
                          "impossible value: EICU_VITAL//sao2 = 101.0",
                          "impossible value: EICU_VITAL//temperature = 0.0"]
    assert tables.manifest["skipped"]["n"] == 6
    assert "999" not in tables.events["stay_id"].to_list()


def test_without_a_patient_table_the_error_says_it_is_required(tmp_path):
    folder = eicu_folder(tmp_path / "in")
    (folder / "patient.csv.gz").unlink()
    with pytest.raises(MissingDataError, match=r"patient\.csv\(\.gz\) not found .* required"):
        convert(SOURCE, folder, tmp_path / "out")


def test_vital_values_without_an_offset_are_skips_naming_their_line(tmp_path):
    folder = eicu_folder(tmp_path / "in")
    write_csv(folder / "vitalAperiodic.csv.gz", ("vitalaperiodicid", "patientunitstayid",
                                                 "observationoffset", "noninvasivesystolic",
                                                 "noninvasivediastolic"), [
        (1, 100, 15, 120, 80),
        (2, 100, None, 118, 79),      # line 3: two values, no time
        (3, 100, None, None, None),   # line 4: nothing measured, nothing to skip
        (4, 101, "abc", 110, None),   # line 5: an offset that is not a number
    ])
    tables = convert(SOURCE, folder, tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    assert [s for s in skipped if "vitalAperiodic" in s[0]] == [
        ("eicu/vitalAperiodic.csv.gz:3", "no time: values of noninvasivesystolic, noninvasivediastolic"),
        ("eicu/vitalAperiodic.csv.gz:5", "no time: values of noninvasivesystolic")]
    assert tables.events.filter(pl.col("code").str.starts_with("EICU_VITAL//noninvasive")).select(
        "stay_id", "numeric_value").rows() == [("100", 80.0), ("100", 120.0)]
