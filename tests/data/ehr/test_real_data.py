"""The converters on the real (demo/sample) datasets beside the checkout; skipped when absent."""

from __future__ import annotations

import csv
import shutil
from datetime import timedelta

import polars as pl
import pytest

from iatros.data.ehr import convert, get_source
from iatros.data.ehr.eicu import ANCHOR as EICU_ANCHOR
from iatros.data.ehr.physionet2012 import ANCHOR as PHYSIONET_ANCHOR
from iatros.data.ehr.physionet2012 import DESCRIPTORS
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA


def check_format(tables) -> None:
    assert tables.events.schema == EVENT_SCHEMA
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    assert tables.stays["stay_id"].n_unique() == tables.stays.height
    assert tables.manifest["n_events"] == tables.events.height
    assert tables.events["time"].null_count() == 0 and tables.events["code"].null_count() == 0


@pytest.fixture(scope="module")
def mimic(shared_data_module, tmp_path_factory):
    return convert(get_source("mimic3"), shared_data_module / "mimic3_demo",
                   tmp_path_factory.mktemp("mimic3"))


@pytest.fixture(scope="module")
def eicu(shared_data_module, tmp_path_factory):
    return convert(get_source("eicu"), shared_data_module / "eicu_demo",
                   tmp_path_factory.mktemp("eicu"))


@pytest.fixture(scope="module")
def synthea(shared_data_module, tmp_path_factory):
    return convert(get_source("fhir"), shared_data_module / "synthea_sample" / "fhir",
                   tmp_path_factory.mktemp("synthea"))


def test_mimic3_demo_has_100_patients_and_129_admissions(mimic):
    check_format(mimic)
    assert (mimic.manifest["n_subjects"], mimic.manifest["n_stays"]) == (100, 129)
    assert set(mimic.stays["site_id"]) == {"mimic3"}
    # the demo has no CHARTEVENTS or LABEVENTS; the tables it has are all converted
    assert {"stays", "diagnoses_icd", "prescriptions", "icustays"} <= set(mimic.manifest["parts"])
    assert "chartevents" not in mimic.manifest["parts"]


def test_mimic3_demo_readmission_is_null_exactly_for_deaths(mimic):
    stays = mimic.stays
    assert stays["died"].null_count() == 0
    assert stays.filter(pl.col("died") == 1).height == stays["readmit_30d"].null_count() > 0
    assert stays.filter(pl.col("readmit_30d") == 1).height > 0


def test_mimic3_demo_diagnoses_are_dated_at_discharge(mimic):
    dx = mimic.events.filter(pl.col("code").str.starts_with("ICD9CM//")).join(
        mimic.stays.select("stay_id", "end_time"), on="stay_id")
    assert dx.height > 0 and (dx["time"] == dx["end_time"]).all()


def test_eicu_demo_keeps_hospital_ids_and_anchors_every_stay(eicu, shared_data_module):
    check_format(eicu)
    patient = pl.read_csv(shared_data_module / "eicu_demo" / "patient.csv.gz", infer_schema=False)
    assert eicu.stays.height == patient.height == 2520
    assert eicu.manifest["n_subjects"] == patient["uniquepid"].n_unique()
    site = dict(zip(patient["patientunitstayid"], patient["hospitalid"], strict=True))
    assert all(site[s] == h for s, h in eicu.stays.select("stay_id", "site_id").iter_rows())
    assert eicu.stays["site_id"].n_unique() == patient["hospitalid"].n_unique() > 100
    assert set(eicu.stays["start_time"]) == {EICU_ANCHOR}
    offset = dict(zip(patient["patientunitstayid"], patient["unitdischargeoffset"], strict=True))
    row = eicu.stays.row(0, named=True)
    assert row["end_time"] == row["start_time"] + timedelta(minutes=int(offset[row["stay_id"]]))


def test_eicu_demo_events_belong_to_known_stays_of_the_right_patient(eicu):
    owners = eicu.stays.select("stay_id", pl.col("subject_id").alias("owner"))
    joined = eicu.events.select("subject_id", "stay_id").unique().join(owners, on="stay_id", how="left")
    assert joined["owner"].null_count() == 0
    assert (joined["owner"] == joined["subject_id"]).all()


def test_synthea_sample_has_5_patients_and_47_encounters(synthea):
    check_format(synthea)
    m = synthea.manifest
    assert (m["n_subjects"], m["n_stays"], m["skipped"]["n"]) == (5, 47, 0)
    prefixes = set(synthea.events["code"].str.split("//").list.first())
    assert prefixes == {"LOINC", "SNOMED", "RXNORM", "CVX", "CAREPLAN_CATEGORY", "NOTE"}
    assert set(synthea.stays["sex"]) <= {"F", "M"}
    assert synthea.stays["readmit_30d"].null_count() == synthea.stays["died"].sum()


@pytest.fixture(scope="module")
def physionet_sample(shared_data_module, tmp_path_factory):
    """20 record files of set-a and their Outcomes rows (the whole set takes ~15 s)."""
    src = shared_data_module / "physionet2012"
    root = tmp_path_factory.mktemp("physionet2012")
    (root / "set-a").mkdir()
    files = sorted((src / "set-a").glob("*.txt"))[:20]
    for path in files:
        shutil.copy2(path, root / "set-a" / path.name)
    ids = {p.stem for p in files}
    with open(src / "Outcomes-a.txt") as f:
        lines = f.read().splitlines()
    rows = [line for line in lines[1:] if line.split(",")[0] in ids]
    (root / "Outcomes-a.txt").write_text("\n".join([lines[0], *rows]) + "\n")
    return root, files, {r.split(",")[0]: r.split(",") for r in rows}


def test_physionet2012_sample_of_20_records_joins_every_outcome(physionet_sample, tmp_path):
    root, files, outcomes = physionet_sample
    tables = convert(get_source("physionet2012"), root, tmp_path / "out")
    check_format(tables)
    assert tables.stays.height == tables.manifest["n_subjects"] == 20 == len(outcomes)
    reasons = tables.manifest["skipped"]["by_reason"]
    assert "no outcome row" not in reasons and "outcome without record" not in reasons
    died = dict(zip(tables.stays["stay_id"], tables.stays["died"], strict=True))
    assert died == {rid: int(float(row[5])) for rid, row in outcomes.items()}
    assert tables.stays["age"].null_count() == 0


def test_physionet2012_sample_every_measurement_is_an_event_or_a_skip(physionet_sample, tmp_path):
    root, files, _ = physionet_sample
    tables = convert(get_source("physionet2012"), root, tmp_path / "out")
    measurements = 0
    for path in files:
        seen: set[str] = set()
        with open(path) as f:
            for row in list(csv.reader(f))[1:]:
                if not row:
                    continue
                if row[0] == "00:00" and row[1] in DESCRIPTORS and row[1] not in seen:
                    seen.add(row[1])
                else:
                    measurements += 1
    assert tables.manifest["n_events"] + tables.manifest["skipped"]["n"] == measurements
    assert tables.events["time"].max() <= PHYSIONET_ANCHOR + timedelta(hours=48)


def test_mimic3_notes_become_text_events_without_errors_or_early_dates(shared_data, tmp_path):
    copy = tmp_path / "mimic3"
    shutil.copytree(shared_data / "mimic3_demo", copy)
    adm = pl.read_csv(copy / "ADMISSIONS.csv", infer_schema=False).row(0, named=True)
    rows = [  # a timed note, a date-only discharge summary, a note marked in error
        ["1", adm["subject_id"], adm["hadm_id"], adm["admittime"][:10], adm["admittime"], "",
         "Nursing", "Progress", "", "", "Pt denies chest pain. No pneumonia."],
        ["2", adm["subject_id"], adm["hadm_id"], adm["dischtime"][:10], "", "",
         "Discharge summary", "Report", "", "", "Discharge diagnosis: sepsis."],
        ["3", adm["subject_id"], adm["hadm_id"], adm["admittime"][:10], adm["admittime"], "",
         "Nursing", "Progress", "", "1", "written in error"],
    ]
    with open(copy / "NOTEEVENTS.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row_id", "subject_id", "hadm_id", "chartdate", "charttime", "storetime",
                         "category", "description", "cgid", "iserror", "text"])
        writer.writerows(rows)
    tables = convert(get_source("mimic3"), copy, tmp_path / "out")
    notes = tables.events.filter(pl.col("code").str.starts_with("NOTE//")).sort("time")
    assert notes["code"].to_list() == ["NOTE//MIMIC3//Nursing", "NOTE//MIMIC3//Discharge summary"]
    assert "written in error" not in notes["text_value"].to_list()
    summary_time = notes["time"][1]
    assert (summary_time.hour, summary_time.minute) == (23, 59)  # end of its chart date
