"""MIMIC-IV (hosp/ and icu/ tables) into the event format; a stay is a hospital admission.

No MIMIC-IV data is available here: the input files are written by us (tests/data/ehr/
mimic4_files.py) in MIMIC-IV v2.2/v3.1's exact column layout, with values as MIMIC-IV holds them.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from iatros.data.ehr.convert import EventTables, convert
from iatros.data.ehr.mimic4 import SOURCE, is_mimic4
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import ConfigError, MissingDataError
from tests.data.ehr.builders import write_mimic
from tests.data.ehr.mimic4_files import HEADERS, LABEVENTS, TABLES, write_mimic4, write_table

STAYS_ONLY = ("hosp/patients", "hosp/admissions")


def converted(tmp_path: Path, **kwargs) -> EventTables:
    return convert(SOURCE, write_mimic4(tmp_path / "in", **kwargs), tmp_path / "out")


def by_stay(stays: pl.DataFrame) -> dict[str, dict]:
    return {r["stay_id"]: r for r in stays.iter_rows(named=True)}


def coded(events: pl.DataFrame, prefix: str) -> list[tuple]:
    """(stay, time, code, value, text, unit) of the events whose code starts with `prefix`."""
    return events.filter(pl.col("code").str.starts_with(prefix)).select(
        "stay_id", "time", "code", "numeric_value", "text_value", "unit").rows()


def skips(tables: EventTables) -> list[tuple[str, str]]:
    return [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]


def test_admissions_and_patients_give_one_stay_per_admission_with_age_from_the_anchor(tmp_path):
    tables = converted(tmp_path, tables=STAYS_ONLY)
    assert (tables.manifest["n_subjects"], tables.manifest["n_stays"]) == (6, 9)
    assert tables.events.schema == EVENT_SCHEMA and tables.events.is_empty()
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    stays = by_stay(tables.stays)
    icu = stays["28662225"]
    assert (icu["subject_id"], icu["site_id"], icu["sex"], icu["ethnicity"]) == (
        "10002428", "mimic4", "F", "WHITE")
    assert (icu["start_time"], icu["end_time"]) == (datetime(2156, 4, 12, 14, 16),
                                                    datetime(2156, 4, 29, 16, 26))
    assert (icu["admission_type"], icu["insurance"]) == ("EW EMER.", "Medicare")
    assert icu["age"] == 80.0
    assert stays["23559586"]["age"] == 75.0            # anchor_age 72 in 2134, admitted in 2137
    assert stays["20626031"]["age"] == 91.0            # anchor_age 91: older than 89, kept as 91
    assert stays["24181354"]["ethnicity"] == "BLACK/CAPE VERDEAN"


def test_outcomes_died_death_time_los_and_readmit_30d(tmp_path):
    stays = by_stay(converted(tmp_path, tables=STAYS_ONLY).stays)
    died = stays["24181354"]
    assert (died["died"], died["death_time"]) == (1, datetime(2196, 2, 27, 12))
    assert stays["28662225"]["los_days"] == pytest.approx(17.0903, abs=1e-4)
    assert stays["28662225"]["los_days"] > 7 and stays["22595853"]["los_days"] < 1
    # dod on the discharge day (discharged to hospice): dated at discharge; no in-hospital death flag
    hospice = stays["23559586"]
    assert (hospice["died"], hospice["death_time"]) == (0, datetime(2137, 9, 2, 17, 5))
    assert stays["29079034"]["death_time"] is None     # dod 2180-09-09 is after every admission
    readmit = {stay: row["readmit_30d"] for stay, row in stays.items()}
    assert readmit == {"22595853": 0, "22841357": 1, "29079034": 0, "24597018": 1, "27703517": 0,
                       "28662225": 0, "23559586": 0, "24181354": None, "20626031": 0}


def test_chartevents_keep_numbers_with_units_and_text_only_without_a_number(tmp_path):
    ev = converted(tmp_path).events
    hr = coded(ev, "MIMIC4_ITEM//220045")
    assert [(stay, value, unit) for stay, _, _, value, _, unit in hr] == [
        ("28662225", 92.0, "bpm"), ("28662225", 151.0, "bpm"), ("24181354", 105.0, "bpm")]
    assert coded(ev, "MIMIC4_ITEM//223762")[0][3:] == (37.2, None, "°C")
    assert coded(ev, "MIMIC4_ITEM//220739")[0][3:] == (4.0, None, None)   # GCS eye: its number
    assert coded(ev, "MIMIC4_ITEM//220048") == [
        ("28662225", datetime(2156, 4, 12, 17), "MIMIC4_ITEM//220048", None, "SR (Sinus Rhythm)", None)]


def test_an_impossible_heart_rate_is_dropped_and_counted_and_a_warning_row_is_kept(tmp_path):
    tables = converted(tmp_path)
    values = tables.events.filter(pl.col("code") == "MIMIC4_ITEM//220045")["numeric_value"].to_list()
    assert 400.0 not in values and 151.0 in values     # 151 bpm carries MIMIC-IV's warning flag
    assert skips(tables) == [("mimic4/icu/chartevents stay 28662225 2156-04-12 18:00:00",
                              "impossible value: MIMIC4_ITEM//220045 = 400.0")]
    assert tables.manifest["skipped"]["by_reason"] == {"impossible value": 1}


def test_input_output_and_procedure_events_are_item_codes_with_amounts(tmp_path):
    ev = converted(tmp_path).events
    assert coded(ev, "MIMIC4_ITEM//225158") == [
        ("28662225", datetime(2156, 4, 12, 17, 30), "MIMIC4_ITEM//225158", 500.0, None, "ml")]
    assert coded(ev, "MIMIC4_ITEM//226559")[0][3:] == (350.0, None, "ml")
    assert coded(ev, "MIMIC4_ITEM//225792")[0][2:] == ("MIMIC4_ITEM//225792", 1440.0, None, "min")


def test_labs_are_coded_by_itemid_with_values_units_and_text_and_outpatient_labs_kept(tmp_path):
    ev = converted(tmp_path).events
    labs = coded(ev, "MIMIC4_LAB//")
    assert ("28662225", datetime(2156, 4, 12, 15, 10), "MIMIC4_LAB//50813", 2.8, None, "mmol/L") in labs
    assert ("28662225", datetime(2156, 4, 13, 8, 2), "MIMIC4_LAB//51508", None, "Yellow", None) in labs
    assert (None, datetime(2180, 3, 23, 11, 51), "MIMIC4_LAB//50971", 4.1, None, "mEq/L") in labs
    assert len(labs) == 4


def test_labs_are_coded_by_loinc_when_d_labitems_has_a_loinc_code_as_in_mimic_iv_1_0(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=(*STAYS_ONLY, "hosp/labevents"))
    write_table(root, "hosp/d_labitems", [(50912, "Creatinine", "Blood", "Chemistry", "2160-0"),
                                          (50813, "Lactate", "Blood", "Blood Gas", "32693-4"),
                                          (50971, "Potassium", "Blood", "Chemistry", None)],
                header=(*HEADERS["hosp/d_labitems"], "loinc_code"))
    codes = set(convert(SOURCE, root, tmp_path / "out").events["code"])
    assert codes == {"LOINC//2160-0", "LOINC//32693-4", "MIMIC4_LAB//50971", "MIMIC4_LAB//51508"}


def test_prescriptions_are_coded_by_ndc_else_by_drug_name_and_emar_only_when_administered(tmp_path):
    ev = converted(tmp_path).events
    drugs = {code: text for _, _, code, _, text, _ in coded(ev, "NDC//") + coded(ev, "MIMIC4_DRUG//")}
    assert drugs == {"NDC//63323026201": "5000 UNIT", "NDC//00338004904": "1000 mL",
                     "MIMIC4_DRUG//sodium chloride 0.9% flush": "3 mL"}   # NDC "0": by name
    assert coded(ev, "MIMIC4_EMAR//") == [
        ("28662225", datetime(2156, 4, 12, 21, 7), "MIMIC4_EMAR//heparin", None, None, None)]


def test_diagnoses_are_icd9_or_icd10_dated_at_discharge_and_unknown_admissions_skipped(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=STAYS_ONLY)
    write_table(root, "hosp/diagnoses_icd", [*TABLES["hosp/diagnoses_icd"],
                                             (10004235, 29999999, 1, "I10", 10),   # line 7
                                             (10004235, 24181354, 2, "E119", 11)])  # line 8
    tables = convert(SOURCE, root, tmp_path / "out")
    dx = {(stay, time, code) for stay, time, code, *_ in coded(tables.events, "ICD")}
    assert dx == {("22595853", datetime(2180, 5, 7, 17, 15), "ICD9CM//5723"),
                  ("22595853", datetime(2180, 5, 7, 17, 15), "ICD9CM//78959"),
                  ("28662225", datetime(2156, 4, 29, 16, 26), "ICD10CM//A419"),
                  ("28662225", datetime(2156, 4, 29, 16, 26), "ICD10CM//N179"),
                  ("24181354", datetime(2196, 2, 27, 12), "ICD10CM//I214")}
    assert [where for where, _ in skips(tables)] == ["mimic4/hosp/diagnoses_icd.csv.gz:7",
                                                     "mimic4/hosp/diagnoses_icd.csv.gz:8"]


def test_procedures_are_icd10pcs_or_icd9proc_dated_at_their_chartdate(tmp_path):
    ev = converted(tmp_path).events
    assert {(stay, time, code) for stay, time, code, *_ in coded(ev, "ICD10PCS//") + coded(ev, "ICD9PROC//")
            } == {("28662225", datetime(2156, 4, 13), "ICD10PCS//5A1955Z"),
                  ("22595853", datetime(2180, 5, 7), "ICD9PROC//5491")}


def test_icu_stays_transfers_and_microbiology_become_events(tmp_path):
    ev = converted(tmp_path).events
    assert [(stay, time, code) for stay, time, code, *_ in coded(ev, "MIMIC4_ICU//")] == [
        ("29079034", datetime(2180, 7, 23, 14), "MIMIC4_ICU//Medical Intensive Care Unit (MICU)"),
        ("28662225", datetime(2156, 4, 12, 16, 24, 18), "MIMIC4_ICU//Medical Intensive Care Unit (MICU)"),
        ("24181354", datetime(2196, 2, 24, 16, 17, 25), "MIMIC4_ICU//Surgical Intensive Care Unit (SICU)")]
    transfers = [(stay, code) for stay, _, code, *_ in coded(ev, "MIMIC4_TRANSFER//")]
    assert transfers == [(None, "MIMIC4_TRANSFER//Emergency Department"),   # ED visit, no admission
                         ("28662225", "MIMIC4_TRANSFER//Emergency Department"),
                         ("28662225", "MIMIC4_TRANSFER//Medical Intensive Care Unit (MICU)"),
                         ("28662225", "MIMIC4_TRANSFER//Medicine")]         # discharge row: no unit
    # one event per specimen and organism (the two antibiotic rows), chartdate when no charttime
    assert [(stay, time, code, text) for stay, time, code, _, text, _ in coded(ev, "MIMIC4_MICRO//")] == [
        ("28662225", datetime(2156, 4, 12, 10, 15), "MIMIC4_MICRO//BLOOD CULTURE", "ESCHERICHIA COLI"),
        ("24181354", datetime(2196, 2, 24), "MIMIC4_MICRO//URINE", None)]


def test_an_unparseable_time_is_a_counted_skip_naming_the_file_and_line(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=STAYS_ONLY)
    rows = [LABEVENTS[0], (*LABEVENTS[1][:6], "2156-04-12 25:61:00", *LABEVENTS[1][7:])]
    write_table(root, "hosp/labevents", rows)
    tables = convert(SOURCE, root, tmp_path / "out")
    assert skips(tables) == [("mimic4/hosp/labevents.csv.gz:3", "no time or code")]
    assert tables.events["code"].to_list() == ["MIMIC4_LAB//50912"]


def test_a_table_missing_a_column_it_needs_is_skipped_with_its_name_and_the_rest_converts(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=(*STAYS_ONLY, "icu/chartevents"))
    header = [c for c in HEADERS["hosp/labevents"] if c != "valuenum"]
    write_table(root, "hosp/labevents", [[v for c, v in zip(HEADERS["hosp/labevents"], row, strict=True)
                                          if c != "valuenum"] for row in LABEVENTS], header=header)
    tables = convert(SOURCE, root, tmp_path / "out")
    reason = "table skipped: missing column(s) ['valuenum']"
    assert ("mimic4/hosp/labevents.csv.gz", reason) in skips(tables)
    assert tables.manifest["notes"] == [f"mimic4/hosp/labevents.csv.gz: {reason}"]
    assert not tables.events.filter(pl.col("code").str.starts_with("MIMIC4_LAB//")).height
    assert tables.events.filter(pl.col("code").str.starts_with("MIMIC4_ITEM//")).height == 9


def test_without_admissions_the_error_names_both_required_tables(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=("hosp/patients", "icu/chartevents"))
    with pytest.raises(MissingDataError, match=r"hosp/admissions\.csv\.gz and hosp/patients\.csv\.gz "
                                               r"\(or \.csv\) are required"):
        convert(SOURCE, root, tmp_path / "out")


def test_without_patients_the_error_names_what_is_missing(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=("hosp/admissions",))
    with pytest.raises(MissingDataError, match=r"not found in .*: hosp/patients\.csv\.gz$"):
        convert(SOURCE, root, tmp_path / "out")


def test_uncompressed_csvs_convert_like_gzipped_ones(tmp_path):
    gz = converted(tmp_path / "gz")
    plain = converted(tmp_path / "plain", gz=False)
    assert (tmp_path / "plain/in/hosp/admissions.csv").exists()
    assert plain.events.equals(gz.events) and plain.stays.equals(gz.stays)


def test_a_folder_holding_one_release_folder_or_the_hosp_folder_itself_is_found(tmp_path):
    write_mimic4(tmp_path / "mimic4" / "mimic-iv-3.1")
    tables = convert(SOURCE, tmp_path / "mimic4", tmp_path / "out")
    assert (tables.manifest["n_stays"], "chartevents" in tables.manifest["parts"]) == (9, True)
    from_hosp = convert(SOURCE, tmp_path / "mimic4" / "mimic-iv-3.1" / "hosp", tmp_path / "out2")
    assert from_hosp.events.equals(tables.events)   # icu/ found beside hosp/


def test_two_release_folders_are_a_clear_error_asking_for_one(tmp_path):
    write_mimic4(tmp_path / "mimic4" / "mimic-iv-2.2", tables=STAYS_ONLY)
    write_mimic4(tmp_path / "mimic4" / "mimic-iv-3.1", tables=STAYS_ONLY)
    with pytest.raises(ConfigError, match=r"holds 2 MIMIC-IV releases .*mimic-iv-2\.2.*point at one"):
        convert(SOURCE, tmp_path / "mimic4", tmp_path / "out")


def test_a_folder_without_a_release_names_the_required_files(tmp_path):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(MissingDataError, match=r"holds no MIMIC-IV release: hosp/admissions\.csv\.gz"):
        convert(SOURCE, tmp_path / "empty", tmp_path / "out")


def test_a_second_conversion_reads_the_cache_and_a_changed_table_is_the_only_part_redone(tmp_path):
    first = converted(tmp_path)
    assert first.manifest["from_cache"] is False
    again = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert again.manifest["from_cache"] is True and again.events.equals(first.events)
    emar = tmp_path / "in" / "hosp" / "emar.csv.gz"
    os.utime(emar, ns=(emar.stat().st_atime_ns, emar.stat().st_mtime_ns + 10**9))
    third = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert set(third.manifest["parts"]) - set(third.manifest["reused_parts"]) == {"emar"}
    assert third.events.equals(first.events)


def test_duplicate_admissions_missing_patients_and_impossible_times_are_counted_skips(tmp_path):
    root = write_mimic4(tmp_path / "in", tables=STAYS_ONLY)
    extra = [(10002428, 28662225, "2156-05-01 10:00:00", "2156-05-09 10:00:00"),   # line 11: repeat
             (19999999, 21111111, "2150-01-01 10:00:00", "2150-01-02 10:00:00"),   # line 12: no patient
             (10001217, 22222222, "2158-01-02 10:00:00", "2158-01-01 10:00:00")]   # line 13: backwards
    rows = [*TABLES["hosp/admissions"],
            *[(s, h, a, d, None, "EW EMER.", None, "EMERGENCY ROOM", "HOME", "Medicare", "ENGLISH",
               "SINGLE", "WHITE", None, None, 0) for s, h, a, d in extra]]
    write_table(root, "hosp/admissions", rows)
    tables = convert(SOURCE, root, tmp_path / "out")
    where = "mimic4/hosp/admissions.csv.gz"
    assert skips(tables) == [
        (f"{where}:11 hadm_id 28662225", "duplicate admission: kept the first row"),
        (f"{where}:12 hadm_id 21111111", "no hosp/patients row: subject 19999999"),
        (f"{where}:13 hadm_id 22222222",
         "impossible times: admit '2158-01-02 10:00:00', discharge '2158-01-01 10:00:00'")]
    assert tables.manifest["n_stays"] == 9
    assert by_stay(tables.stays)["28662225"]["end_time"] == datetime(2156, 4, 29, 16, 26)


def test_meds_code_metadata_carries_labels_from_d_items_and_d_labitems(tmp_path):
    tables = converted(tmp_path)
    codes = dict(pl.read_parquet(tables.path / "metadata" / "codes.parquet")
                 .select("code", "description").iter_rows())
    assert codes["MIMIC4_ITEM//220045"] == "Heart Rate"
    assert codes["MIMIC4_LAB//50912"] == "Creatinine, Blood"
    assert codes["ICD10CM//A419"] is None   # no d_icd_diagnoses written here


def test_is_mimic4_tells_a_mimic_iv_release_from_mimic_iii_tables(tmp_path):
    write_mimic4(tmp_path / "mimic4" / "mimic-iv-3.1", tables=STAYS_ONLY)
    flat = write_mimic4(tmp_path / "flat", tables=STAYS_ONLY)
    for table in STAYS_ONLY:       # all tables in one folder, no hosp/
        (flat / f"{table}.csv.gz").rename(flat / f"{table.split('/')[1]}.csv.gz")
    write_mimic(tmp_path / "mimic3", [(1, 10, "2100-01-01 00:00:00", "2100-01-05 00:00:00", None, 0)],
                [(1, "M", "2050-01-01 00:00:00")])
    (tmp_path / "empty").mkdir()
    assert is_mimic4(tmp_path / "mimic4") and is_mimic4(tmp_path / "flat")
    assert not is_mimic4(tmp_path / "mimic3") and not is_mimic4(tmp_path / "empty")
    assert convert(SOURCE, flat, tmp_path / "out").manifest["n_stays"] == 9


def test_mimic_iv_note_discharge_and_radiology_reports_are_note_events_with_their_text(tmp_path):
    tables = converted(tmp_path, tables=(*STAYS_ONLY, "note/discharge", "note/radiology"))
    notes = coded(tables.events, "NOTE//MIMIC4//")
    assert sorted((stay or "", code) for stay, _, code, *_ in notes) == [
        ("", "NOTE//MIMIC4//RR"),                    # an outpatient report: no admission
        ("28662225", "NOTE//MIMIC4//DS"), ("28662225", "NOTE//MIMIC4//RR")]
    texts = {code: text for _, _, code, _, text, _ in notes if text.startswith(("Name", "FIND"))}
    assert "urosepsis" in texts["NOTE//MIMIC4//DS"] and "pleural effusion" in texts["NOTE//MIMIC4//RR"]


def test_note_concepts_of_mimic_iv_notes_keep_negation(tmp_path):
    from iatros.tasks.ehr_notes import with_note_concepts

    tables = converted(tmp_path, tables=(*STAYS_ONLY, "note/discharge"))
    concepts = [c for c in with_note_concepts(tables.events)["code"].to_list()
                if c.startswith("NOTE_CONCEPT//")]
    assert any(c.endswith("//negated") for c in concepts)   # "No pneumonia on chest film"
    assert any(not c.endswith(("//negated", "//uncertain")) for c in concepts)
