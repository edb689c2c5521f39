"""MIMIC-III tables into the event format (a stay is a hospital admission)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from iatros.data.ehr import convert, get_source
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import CorruptDataError, MissingDataError
from tests.data.ehr.builders import write_csv, write_mimic

SOURCE = get_source("mimic3")
ADMISSIONS = [
    # subject, hadm, admit, discharge, death, hospital_expire_flag
    (1, 10, "2100-01-01 00:00:00", "2100-01-05 00:00:00", None, 0),
    (1, 11, "2100-02-04 00:00:00", "2100-02-06 12:00:00", None, 0),  # exactly 30 days after 10
    (1, 12, "2100-06-01 00:00:00", "2100-06-10 00:00:00", "2100-06-10 00:00:00", 1),
    (2, 20, "2150-03-01 00:00:00", "2150-03-02 00:00:00", None, 0),
    (2, 21, "2150-04-02 00:00:01", "2150-04-05 00:00:00", None, 0),  # 31 days after 20
    (3, 30, "2100-01-01 00:00:00", "2100-01-02 00:00:00", None, 0),
]
PATIENTS = [(1, "M", "2050-01-01 00:00:00"), (2, "F", "2100-01-01 00:00:00"),
            (3, "F", "1800-01-01 00:00:00")]  # MIMIC shifts ages over 89 to ~300 years
LAB_HEADER = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM",
              "VALUEUOM", "FLAG")
CHART_HEADER = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUE",
                "VALUENUM", "VALUEUOM", "ERROR")


def tables_only(folder: Path) -> Path:
    return write_mimic(folder, ADMISSIONS, PATIENTS)


def with_events(folder: Path) -> Path:
    tables_only(folder)
    write_csv(folder / "LABEVENTS.csv", LAB_HEADER, [
        (1, 1, 10, 50912, "2100-01-01 06:00:00", "1.1", "1.1", "mg/dL", None),
        (2, 1, 10, 50912, "2100-01-02 06:00:00", "1.3", "1.3", "mg/dL", "abnormal"),
        (3, 1, 10, 50912, "2100-01-03 06:00:00", "97", "97", "umol/L", None),  # other unit
        (4, 2, 20, 50912, None, "1.0", "1.0", "mg/dL", None),                  # no time
        (5, 2, 20, 50971, "2150-03-01 06:00:00", "4.1", "4.1", "mEq/L", None),
    ])
    write_csv(folder / "CHARTEVENTS.csv", CHART_HEADER, [
        (1, 1, 10, 100, 211, "2100-01-01 01:00:00", "80", "80", "bpm", "0"),
        (2, 1, 10, 100, 220045, "2100-01-01 02:00:00", "-10", "-10", "bpm", None),  # impossible
        (3, 1, 10, 100, 211, "2100-01-01 03:00:00", "82", "82", "bpm", "1"),       # charting error
        (4, 1, 10, 100, 224650, "2100-01-01 04:00:00", "Normal", None, None, None),
    ])
    return folder


def by_stay(stays: pl.DataFrame) -> dict[str, dict]:
    return {r["stay_id"]: r for r in stays.iter_rows(named=True)}


def test_admissions_and_patients_give_one_stay_per_admission(tmp_path):
    tables = convert(SOURCE, tables_only(tmp_path / "in"), tmp_path / "out")
    assert (tables.manifest["n_subjects"], tables.manifest["n_stays"]) == (3, 6)
    assert tables.manifest["n_events"] == 0 and tables.events.schema == EVENT_SCHEMA
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    stays = by_stay(tables.stays)
    first = stays["10"]
    assert (first["subject_id"], first["site_id"], first["sex"], first["ethnicity"]) == (
        "1", "mimic3", "M", "WHITE")
    assert first["start_time"] == datetime(2100, 1, 1) and first["end_time"] == datetime(2100, 1, 5)
    assert first["los_days"] == 4.0 and first["age"] == pytest.approx(50.0, abs=0.01)
    assert (first["admission_type"], first["insurance"], first["admit_diagnosis"]) == (
        "EMERGENCY", "Medicare", "SEPSIS")
    assert stays["12"]["died"] == 1 and stays["12"]["death_time"] == datetime(2100, 6, 10)
    assert stays["10"]["died"] == 0 and stays["10"]["death_time"] is None
    assert stays["30"]["age"] == 90.0


def test_readmit_30d_follows_the_30_day_window_and_is_null_after_death(tmp_path):
    tables = convert(SOURCE, tables_only(tmp_path / "in"), tmp_path / "out")
    labels = dict(zip(tables.stays["stay_id"], tables.stays["readmit_30d"], strict=True))
    assert labels == {"10": 1, "11": 0, "12": None, "20": 0, "21": 0, "30": 0}


def test_lab_and_chart_events_are_read_when_present(tmp_path):
    tables = convert(SOURCE, with_events(tmp_path / "in"), tmp_path / "out")
    assert set(tables.manifest["parts"]) == {"stays", "chartevents", "labevents"}
    ev = tables.events
    labs = ev.filter(pl.col("code") == "MIMIC3_LAB//50912")
    assert labs.select("stay_id", "numeric_value", "unit").rows() == [
        ("10", 1.1, "mg/dL"), ("10", 1.3, "mg/dL")]
    assert labs["text_value"].to_list() == ["1.1", "1.3"]
    hr = ev.filter(pl.col("code") == "MIMIC3_ITEM//211")
    assert hr.select("time", "numeric_value").rows() == [(datetime(2100, 1, 1, 1), 80.0)]
    text = ev.filter(pl.col("code") == "MIMIC3_ITEM//224650").row(0, named=True)
    assert (text["numeric_value"], text["text_value"]) == (None, "Normal")
    reasons = tables.manifest["skipped"]["by_reason"]
    assert reasons == {"no time or code": 1, "impossible value": 1, "unit mismatch": 1}
    wheres = {s["reason"].split(":")[0]: s["where"] for s in tables.manifest["skipped"]["examples"]}
    assert wheres["no time or code"] == "mimic3/LABEVENTS.csv:5"
    assert wheres["impossible value"] == "mimic3/CHARTEVENTS stay 10 2100-01-01 02:00:00"
    assert wheres["unit mismatch"] == "mimic3 stay 10 2100-01-03 06:00:00"
    assert ev.height == tables.manifest["n_events"] == 5


def test_without_admissions_the_error_names_the_missing_table(tmp_path):
    folder = tables_only(tmp_path / "in")
    (folder / "ADMISSIONS.csv").unlink()
    with pytest.raises(MissingDataError, match=r"ADMISSIONS\.csv\(\.gz\) not found .* required"):
        convert(SOURCE, folder, tmp_path / "out")


def test_a_missing_column_is_a_clear_error(tmp_path):
    folder = tables_only(tmp_path / "in")
    write_csv(folder / "PATIENTS.csv", ("SUBJECT_ID", "GENDER"), [(1, "M")])
    with pytest.raises(CorruptDataError, match=r"missing column\(s\) \['dob'\]"):
        convert(SOURCE, folder, tmp_path / "out")


def test_gzipped_lower_case_tables_are_found(tmp_path):
    folder = tables_only(tmp_path / "plain")
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("ADMISSIONS", "PATIENTS"):
        text = (folder / f"{name}.csv").read_text().splitlines()
        write_csv(gz / f"{name.lower()}.csv.gz", text[0].split(","),
                  [line.split(",") for line in text[1:]])
    tables = convert(SOURCE, gz, tmp_path / "out")
    assert tables.manifest["n_stays"] == 6


def test_bad_admissions_are_counted_skips(tmp_path):
    folder = write_mimic(tmp_path / "in", [
        *ADMISSIONS,
        (1, 10, "2100-01-01 00:00:00", "2100-01-09 00:00:00", None, 0),  # repeated hadm_id
        (4, 40, "2100-01-01 00:00:00", "2100-01-02 00:00:00", None, 0),  # no PATIENTS row
        (2, 22, "2150-09-02 00:00:00", "2150-09-01 00:00:00", None, 0),  # discharged before admit
    ], PATIENTS)
    tables = convert(SOURCE, folder, tmp_path / "out")
    skipped = {(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]}
    assert skipped == {
        ("ADMISSIONS hadm_id 10", "duplicate admission: kept the first row"),
        ("ADMISSIONS hadm_id 40", "no PATIENTS row: 4"),
        ("ADMISSIONS hadm_id 22",
         "impossible times: admit 2150-09-02 00:00:00, discharge 2150-09-01 00:00:00")}
    assert tables.manifest["n_stays"] == 6
    assert by_stay(tables.stays)["10"]["los_days"] == 4.0


def test_diagnosis_codes_are_dated_at_discharge(tmp_path):
    folder = tables_only(tmp_path / "in")
    write_csv(folder / "DIAGNOSES_ICD.csv", ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"),
              [(1, 1, 10, 1, "4280"), (2, 1, 99, 1, "4019"), (3, 2, 20, 1, None)])
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert tables.events.select("stay_id", "time", "code").rows() == [
        ("10", datetime(2100, 1, 5), "ICD9CM//4280")]
    assert [s["where"] for s in tables.manifest["skipped"]["examples"]] == [
        "mimic3/DIAGNOSES_ICD:3", "mimic3/DIAGNOSES_ICD:4"]


def test_a_skip_after_a_charting_error_row_names_its_own_line(tmp_path):
    folder = tables_only(tmp_path / "in")
    write_csv(folder / "CHARTEVENTS.csv", CHART_HEADER, [
        (1, 1, 10, 100, 211, "2100-01-01 01:00:00", "80", "80", "bpm", "1"),  # line 2: error row
        (2, 1, 10, 100, 211, None, "81", "81", "bpm", "0"),                   # line 3: no time
    ])
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert [s["where"] for s in tables.manifest["skipped"]["examples"]] == [
        "mimic3/CHARTEVENTS.csv:3"]
