"""OMOP CDM tables into the event format (a stay is a VISIT_OCCURRENCE row).

Real data: the Synthea27Nj CDM 5.4 zip beside the checkout (skipped when absent); bad input: a
small hand-made CDM written into tmp_path.
"""

from __future__ import annotations

import gzip
import zipfile
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from iatros.data.ehr.convert import convert
from iatros.data.ehr.omop import SOURCE, code_descriptions, parts
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import MissingDataError
from tests.data.ehr.builders import write_csv

ZIP = Path("omop_synthea27nj") / "Synthea27Nj_5.4.zip"
TABLES = ("PERSON", "VISIT_OCCURRENCE", "VISIT_DETAIL", "CONDITION_OCCURRENCE", "DRUG_EXPOSURE",
          "MEASUREMENT", "OBSERVATION", "PROCEDURE_OCCURRENCE", "DEVICE_EXPOSURE", "DEATH", "NOTE",
          "CONCEPT")


# ---------------------------------------------------------------- the real CDM (Synthea27Nj)


@pytest.fixture(scope="module")
def cdm_zip(shared_data_module) -> Path:
    path = shared_data_module / ZIP
    if not path.is_file():
        pytest.skip(f"OMOP sample {path} is absent")
    return path


@pytest.fixture(scope="module")
def cdm_csv(cdm_zip) -> dict[str, pl.DataFrame]:
    """The zip's clinical tables, read as text straight from the archive."""
    with zipfile.ZipFile(cdm_zip) as archive:
        return {t: pl.read_csv(archive.read(f"{t}.csv"), infer_schema=False) for t in TABLES}


@pytest.fixture(scope="module")
def real(cdm_zip, tmp_path_factory):
    return convert(SOURCE, cdm_zip, tmp_path_factory.mktemp("omop-zip"))


def concept_code(cdm_csv: dict[str, pl.DataFrame], concept_id: str) -> str:
    row = cdm_csv["CONCEPT"].filter(pl.col("concept_id") == concept_id).row(0, named=True)
    return f"{row['vocabulary_id'].upper()}//{row['concept_code']}"


def unzip_lower_case(cdm_zip: Path, folder: Path) -> Path:
    """The tables this source reads, as lower-case CSV files (MEASUREMENT gzipped)."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(cdm_zip) as archive:
        for table in TABLES:
            name = f"{table.lower()}.csv" + (".gz" if table == "MEASUREMENT" else "")
            data = archive.read(f"{table}.csv")
            (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return folder


def test_real_zip_gives_28_subjects_and_one_stay_per_visit(real, cdm_csv):
    assert real.events.schema == EVENT_SCHEMA
    assert {k: real.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    assert real.manifest["n_subjects"] == 28 == cdm_csv["PERSON"].height
    assert real.manifest["n_stays"] == cdm_csv["VISIT_OCCURRENCE"].height == 1791
    assert set(real.stays["stay_id"]) == set(cdm_csv["VISIT_OCCURRENCE"]["visit_occurrence_id"])
    assert real.manifest["skipped"]["n"] == 0 and real.manifest["notes"] == []
    assert set(real.stays["visit_type"]) == {"Inpatient Visit", "Outpatient Visit", "Emergency Room Visit"}
    assert set(real.stays["sex"]) == {"M", "F"} and real.stays["age"].null_count() == 0
    assert set(real.stays["ethnicity"]) == {"White", "Black or African American", "Asian", "other",
                                            "Native Hawaiian or Other Pacific Islander"}


def test_real_zip_every_clinical_row_is_one_event(real, cdm_csv):
    clinical = sum(cdm_csv[t].height for t in TABLES if t not in ("PERSON", "VISIT_OCCURRENCE", "CONCEPT"))
    assert real.manifest["n_events"] == clinical


def test_real_zip_deaths_match_the_death_table(real, cdm_csv):
    death = dict(cdm_csv["DEATH"].select("person_id", "death_date").iter_rows())
    died = real.stays.filter(pl.col("died") == 1)
    assert set(died["subject_id"]) == set(death)
    assert all(row["death_time"] == datetime.fromisoformat(death[row["subject_id"]])
               for row in died.iter_rows(named=True))
    meds_death = real.events.filter(pl.col("code") == "MEDS_DEATH")
    assert dict(zip(meds_death["subject_id"], meds_death["time"], strict=True)) == {
        p: datetime.fromisoformat(d) for p, d in death.items()}
    assert died["readmit_30d"].null_count() == died.height


def test_real_zip_measurements_carry_loinc_codes_and_the_csv_value(real, cdm_csv):
    keys = ["person_id", "visit_occurrence_id", "measurement_concept_id", "measurement_datetime"]
    table = cdm_csv["MEASUREMENT"]
    for row in table.filter(pl.col("value_as_number").is_not_null()).sample(5, seed=3).iter_rows(named=True):
        code = concept_code(cdm_csv, row["measurement_concept_id"])
        assert code.startswith("LOINC//")
        same = table.filter(*[pl.col(k) == row[k] for k in keys])
        hit = real.events.filter(
            (pl.col("subject_id") == row["person_id"]) & (pl.col("stay_id") == row["visit_occurrence_id"])
            & (pl.col("code") == code)
            & (pl.col("time") == datetime.fromisoformat(row["measurement_datetime"])))
        assert sorted(hit["numeric_value"]) == sorted(float(v) for v in same["value_as_number"])
        assert set(hit["unit"]) == set(same["unit_source_value"])


def test_real_zip_drug_events_carry_rxnorm_codes(real, cdm_csv):
    drugs = real.events.filter(pl.col("code").str.starts_with("RXNORM//"))
    assert drugs.height == cdm_csv["DRUG_EXPOSURE"].height
    row = cdm_csv["DRUG_EXPOSURE"].row(0, named=True)
    assert concept_code(cdm_csv, row["drug_concept_id"]) == f"RXNORM//{row['drug_source_value']}"
    assert drugs.filter((pl.col("subject_id") == row["person_id"])
                        & (pl.col("code") == f"RXNORM//{row['drug_source_value']}")).height > 0


def test_real_zip_code_descriptions_name_every_vocabulary_code_emitted(real, cdm_zip):
    codes = set(real.events.filter(pl.col("code") != "MEDS_DEATH")["code"])
    assert set(code_descriptions(cdm_zip)["code"]) == codes  # without codes: what the tables use
    described = dict(code_descriptions(cdm_zip, ["LOINC//29463-7", "VISIT//IP", "OMOP//1"]).iter_rows())
    assert described == {"LOINC//29463-7": "Body weight", "VISIT//IP": "Inpatient Visit"}
    meds_codes = pl.read_parquet(real.path / "metadata" / "codes.parquet")
    assert meds_codes["description"].null_count() == 0


def test_lower_case_csv_folder_converts_to_the_same_events_as_the_zip(real, cdm_zip, tmp_path):
    folder = unzip_lower_case(cdm_zip, tmp_path / "cdm")
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert tables.events.equals(real.events) and tables.stays.equals(real.stays)


def test_parquet_folder_converts_to_the_same_events_as_the_zip(real, cdm_zip, tmp_path):
    """A database dump: typed columns (integers, floats, dates, datetimes), one file per table."""
    folder = tmp_path / "parquet"
    folder.mkdir()
    with zipfile.ZipFile(cdm_zip) as archive:
        for table in TABLES:
            frame = pl.read_csv(archive.read(f"{table}.csv"), try_parse_dates=True,
                                infer_schema_length=None)
            if table == "MEASUREMENT":  # a table as a folder of Parquet files, as Spark writes it
                (folder / "measurement").mkdir()
                half = frame.height // 2
                frame.head(half).write_parquet(folder / "measurement" / "part-0.parquet")
                frame.slice(half).write_parquet(folder / "measurement" / "part-1.parquet")
            else:
                frame.write_parquet(folder / f"{table.lower()}.parquet")
    assert pl.read_parquet(folder / "person.parquet").schema["birth_datetime"] == pl.Datetime("us")
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert tables.events.equals(real.events) and tables.stays.equals(real.stays)


def test_a_second_conversion_reads_the_cache(cdm_zip, tmp_path):
    first = convert(SOURCE, cdm_zip, tmp_path / "out")
    second = convert(SOURCE, cdm_zip, tmp_path / "out")
    assert not first.manifest["from_cache"] and second.manifest["from_cache"]
    assert second.events.equals(first.events)


# ---------------------------------------------------------------- a small hand-made CDM

PERSON = (("person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
           "birth_datetime", "race_concept_id", "ethnicity_concept_id", "gender_source_value",
           "race_source_value", "ethnicity_source_value"),
          [(1, 8507, 1950, 6, 1, "1950-06-01 00:00:00", 8527, 38003564, "M", "white", "nonhispanic"),
           (2, 0, 1980, None, None, None, 0, 0, "F", "other", "hispanic")])
VISITS = (("visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
           "visit_start_datetime", "visit_end_date", "visit_end_datetime", "care_site_id"),
          [(10, 1, 9201, "2020-01-01", "2020-01-01 08:00:00", "2020-01-05", "2020-01-05 12:00:00", 7),
           (11, 1, 9202, "2020-01-20", None, "2020-01-20", None, None),
           (20, 2, 9203, "2021-03-01", "2021-03-01 10:00:00", "2021-03-02", "2021-03-02 10:00:00", None)])
CONCEPT = (("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
            "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason"),
           [(3025315, "Body weight", "Measurement", "LOINC", "Clinical Observation", "S", "29463-7",
             "1970-01-01", "2099-12-31", None),
            (9529, "kilogram", "Unit", "UCUM", "Unit", "S", "kg", "1970-01-01", "2099-12-31", None),
            (9201, "Inpatient Visit", "Visit", "Visit", "Visit", "S", "IP", "1970-01-01", "2099-12-31", None),
            (9202, "Outpatient Visit", "Visit", "Visit", "Visit", "S", "OP", "1970-01-01", "2099-12-31",
             None),
            (8527, "White", "Race", "Race", "Race", "S", "5", "1970-01-01", "2099-12-31", None),
            (4181412, "Positive", "Meas Value", "SNOMED", "Qualifier Value", "S", "10828004",
             "1970-01-01", "2099-12-31", None),
            (45591453, "Essential (primary) hypertension", "Condition", "ICD10CM", "4-char billing code",
             None, "I10", "1970-01-01", "2099-12-31", None),
            (32817, "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976890",
             "1970-01-01", "2099-12-31", None)])
MEASUREMENT_HEADER = ("measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                      "measurement_datetime", "value_as_number", "value_as_concept_id",
                      "unit_concept_id", "unit_source_value", "visit_occurrence_id",
                      "measurement_source_value", "measurement_source_concept_id")
MEASUREMENT = [  # line 2 onwards
    (1, 1, 3025315, "2020-01-01", "2020-01-01 09:00:00", 70.5, 0, 9529, None, 10, "29463-7", 3025315),
    (2, 1, 3025315, "2020-01-02", None, 71, 0, 9529, "kg", 10, "29463-7", 3025315),
    (3, 1, 999999, "2020-01-03", None, 5, 0, 0, None, 10, "x", 0),           # line 4: unknown concept
    (4, 1, 0, "2020-01-03", None, 6.1, 0, 0, "mmol/L", 10, "local-glucose", 0),  # no concept
    (5, 2, 3025315, "2021-13-45", None, 60, 0, 9529, "kg", 20, "29463-7", 0),    # line 6: bad date
    (6, 99, 3025315, "2021-03-01", None, 60, 0, 9529, "kg", 20, "29463-7", 0),   # line 7: no person
    (7, 2, 3025315, "2021-03-01", None, None, 4181412, 0, None, 20, "29463-7", 0),  # value concept
    (8, 2, 888888, "2021-03-01", None, None, 0, 0, None, None, "y", 0),         # unknown concept
]
CONDITION = (("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
              "condition_start_datetime", "condition_source_value", "condition_source_concept_id",
              "visit_occurrence_id"),
             [(1, 1, 0, "2020-01-01", None, "I10", 45591453, 10),
              (2, 2, 0, "2021-03-01", None, "R07.9", 0, 20),
              (3, 2, 0, "2021-03-01", None, None, 0, 20)])  # line 4: no concept, no source value
NOTE = (("note_id", "person_id", "note_date", "note_datetime", "note_type_concept_id",
         "note_class_concept_id", "note_title", "note_text", "visit_occurrence_id"),
        [(1, 1, "2020-01-02", "2020-01-02 10:00:00", 32817, 0, "Progress",
          "Patient stable.\nNo fever.\nPlan: discharge.", 10),     # lines 2-4
         (2, 1, "2020-01-02", "yesterday", 32817, 0, "Bad", "text", 10)])  # line 5: bad datetime
DEATH = (("person_id", "death_date", "death_datetime", "cause_concept_id", "cause_source_value"),
         [(2, "2021-03-03", None, 0, "chest pain")])


def tiny_cdm(folder: Path, **replace: tuple) -> Path:
    """PERSON, VISIT_OCCURRENCE, CONCEPT, MEASUREMENT, CONDITION_OCCURRENCE, NOTE and DEATH CSVs."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"PERSON": PERSON, "VISIT_OCCURRENCE": VISITS, "CONCEPT": CONCEPT,
              "MEASUREMENT": (MEASUREMENT_HEADER, MEASUREMENT), "CONDITION_OCCURRENCE": CONDITION,
              "NOTE": NOTE, "DEATH": DEATH, **replace}
    for name, table in tables.items():
        if table is not None:
            write_csv(folder / f"{name}.csv", *table)
    return folder


@pytest.fixture
def tiny(tmp_path):
    return convert(SOURCE, tiny_cdm(tmp_path / "cdm"), tmp_path / "out")


def by_stay(stays: pl.DataFrame) -> dict[str, dict]:
    return {r["stay_id"]: r for r in stays.iter_rows(named=True)}


def skips_at(tables, where: str) -> list[str]:
    return [s["reason"] for s in tables.manifest["skipped"]["examples"] if s["where"] == where]


def test_stays_carry_age_sex_race_visit_type_death_and_readmission(tiny):
    stays = by_stay(tiny.stays)
    assert set(stays) == {"10", "11", "20"}
    first = stays["10"]
    assert (first["subject_id"], first["site_id"], first["sex"], first["ethnicity"], first["hispanic"]) == (
        "1", "7", "M", "White", 0)
    assert first["start_time"] == datetime(2020, 1, 1, 8) and first["los_days"] == pytest.approx(4 + 4 / 24)
    assert first["age"] == pytest.approx(69.58, abs=0.01) and first["visit_type"] == "Inpatient Visit"
    assert first["readmit_30d"] == 1 and stays["11"]["readmit_30d"] == 0
    assert stays["11"]["start_time"] == datetime(2020, 1, 20)  # the date when no datetime
    other = stays["20"]  # gender concept 0: sex from the source value; birth from year only
    assert (other["sex"], other["ethnicity"], other["hispanic"], other["visit_type"]) == (
        "F", "other", 1, "Emergency Room Visit")
    assert other["age"] == pytest.approx(41.16, abs=0.01)
    assert (other["died"], other["death_time"], other["readmit_30d"]) == (1, datetime(2021, 3, 3), None)
    assert first["died"] == 0 and first["death_time"] is None


def test_measurements_keep_values_units_and_value_concept_names(tiny):
    m = tiny.events.filter(pl.col("code") == "LOINC//29463-7").sort("time")
    assert m["numeric_value"].to_list()[:2] == [70.5, 71.0]
    assert m["unit"].to_list()[:2] == ["kg", "kg"]   # unit concept's code, then the source value
    assert m["time"].to_list()[:2] == [datetime(2020, 1, 1, 9), datetime(2020, 1, 2)]
    positive = m.filter(pl.col("numeric_value").is_null())
    assert positive["text_value"].to_list() == ["Positive"] and positive["stay_id"].to_list() == ["20"]


def test_concept_zero_uses_the_source_concept_then_the_source_value(tiny):
    codes = set(tiny.events["code"])
    assert {"ICD10CM//I10", "OMOP_SOURCE//CONDITION_OCCURRENCE//R07.9",
            "OMOP_SOURCE//MEASUREMENT//local-glucose"} <= codes
    assert skips_at(tiny, "omop/CONDITION_OCCURRENCE.csv:4") == [
        "no code: condition_concept_id is 0 and condition_source_value is empty"]


def test_an_unknown_concept_id_is_kept_as_omop_id_and_counted_in_the_notes(tiny):
    assert {"OMOP//999999", "OMOP//888888"} <= set(tiny.events["code"])
    assert tiny.manifest["notes"] == [
        "MEASUREMENT: 2 rows with concept ids not in CONCEPT (first: omop/MEASUREMENT.csv:4, "
        "concept 999999); kept as OMOP//ID"]


def test_a_row_with_a_bad_date_or_an_unknown_person_is_named_by_file_and_line(tiny):
    assert skips_at(tiny, "omop/MEASUREMENT.csv:6") == [
        "unparseable date: measurement_date = '2021-13-45'"]
    assert skips_at(tiny, "omop/MEASUREMENT.csv:7") == ["unknown person: person_id 99 not in PERSON"]
    assert tiny.manifest["skipped"]["by_reason"] == {
        "unparseable date": 2, "unknown person": 1, "no code": 1}


def test_notes_keep_their_text_and_lines_count_the_breaks_inside_them(tiny):
    notes = tiny.events.filter(pl.col("code").str.starts_with("NOTE//"))
    assert notes["code"].to_list() == ["NOTE//OMOP4976890"]
    assert dict(code_descriptions(tiny.path.parent / "cdm").iter_rows())["NOTE//OMOP4976890"] == "note: EHR"
    assert notes["text_value"].to_list() == ["Patient stable.\nNo fever.\nPlan: discharge."]
    assert skips_at(tiny, "omop/NOTE.csv:5") == ["unparseable date: note_datetime = 'yesterday'"]
    death = tiny.events.filter(pl.col("code") == "MEDS_DEATH").row(0, named=True)
    assert (death["subject_id"], death["time"], death["text_value"]) == ("2", datetime(2021, 3, 3),
                                                                         "chest pain")


def test_a_table_missing_a_required_column_is_skipped_and_the_rest_converts(tmp_path):
    header = tuple(c for c in MEASUREMENT_HEADER if c != "person_id")
    rows = [tuple(v for c, v in zip(MEASUREMENT_HEADER, r, strict=True) if c != "person_id")
            for r in MEASUREMENT]
    folder = tiny_cdm(tmp_path / "cdm", MEASUREMENT=(header, rows))
    (folder / "NOTE.csv").write_bytes(b"")
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert skips_at(tables, "omop/MEASUREMENT.csv") == [
        "table skipped: MEASUREMENT.csv lacks required column(s) person_id"]
    assert skips_at(tables, "omop/NOTE.csv") == [
        "table skipped: NOTE.csv: cannot read as a CDM table: empty CSV"]
    assert tables.stays.height == 3 and "ICD10CM//I10" in set(tables.events["code"])
    assert not tables.events["code"].str.starts_with("LOINC//").any()


def test_a_missing_person_or_visit_table_is_a_missing_data_error(tmp_path):
    with pytest.raises(MissingDataError, match="lacks VISIT_OCCURRENCE.*PERSON and VISIT_OCCURRENCE"):
        convert(SOURCE, tiny_cdm(tmp_path / "a", VISIT_OCCURRENCE=None), tmp_path / "out-a")
    with pytest.raises(MissingDataError, match="lacks PERSON"):
        convert(SOURCE, tiny_cdm(tmp_path / "b", PERSON=None), tmp_path / "out-b")


def test_every_part_lists_the_files_it_reads(tmp_path):
    folder = tiny_cdm(tmp_path / "cdm")
    inputs = {p.name: {f.name for f in p.inputs} for p in parts(folder)}
    assert inputs["stays"] == {"PERSON.csv", "VISIT_OCCURRENCE.csv", "DEATH.csv", "CONCEPT.csv"}
    assert inputs["measurement"] == {"MEASUREMENT.csv", "PERSON.csv", "CONCEPT.csv"}
    assert set(inputs) == {"stays", "measurement", "condition_occurrence", "note"}


def test_a_tab_separated_athena_concept_file_is_read(tmp_path):
    folder = tiny_cdm(tmp_path / "cdm")
    header, rows = CONCEPT
    lines = ["\t".join(header), *("\t".join("" if v is None else str(v) for v in r) for r in rows)]
    (folder / "CONCEPT.csv").write_text("\n".join(lines) + "\n")
    tables = convert(SOURCE, folder, tmp_path / "out")
    assert {"LOINC//29463-7", "ICD10CM//I10"} <= set(tables.events["code"])
