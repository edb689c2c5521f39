"""Notes beside structured data: the coded concepts of a record's notes become events, with
negation and uncertainty kept, and an `ehr:PATH --notes` task sees them as features."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from iatros.tasks import get_task
from iatros.tasks.ehr_notes import concept_code, with_note_concepts

NOTE = ("Assessment: no pneumonia. History of hypertension. Mother had breast cancer. "
        "Possible sepsis.")


def _events(text: str) -> pl.DataFrame:
    return pl.DataFrame({"subject_id": ["p1"], "stay_id": ["s1"], "time": [dt.datetime(2020, 1, 1)],
                         "code": ["NOTE//LOINC//34117-2"], "numeric_value": [None],
                         "text_value": [text], "unit": [None]},
                        schema_overrides={"numeric_value": pl.Float64, "unit": pl.Utf8})


def test_note_concepts_keep_negation_and_uncertainty_and_skip_family():
    codes = with_note_concepts(_events(NOTE))["code"].to_list()
    concepts = [c for c in codes if c.startswith("NOTE_CONCEPT//")]
    assert any(c.endswith("//negated") for c in concepts)       # no pneumonia
    assert any(c.endswith("//uncertain") for c in concepts)     # possible sepsis
    assert sum(not c.endswith(("//negated", "//uncertain")) for c in concepts) == 1  # hypertension
    assert len(concepts) == 3                                   # the mother's cancer is not hers


def test_concept_events_sit_at_the_notes_time_and_stay():
    out = with_note_concepts(_events(NOTE))
    assert out.schema == _events(NOTE).schema
    assert set(out["stay_id"]) == {"s1"} and set(out["time"]) == {dt.datetime(2020, 1, 1)}


def test_uncoded_or_other_peoples_mentions_give_no_code():
    assert concept_code({"text": "x", "concept_id": None}) is None
    assert concept_code({"concept_id": "I10", "vocabulary": "ICD-10-CM", "family": True}) is None
    assert concept_code({"concept_id": "I10", "vocabulary": "ICD-10-CM"}) == \
        "NOTE_CONCEPT//ICD-10-CM//I10"


def test_events_without_notes_are_left_as_they_are():
    events = _events(NOTE).with_columns(pl.lit("LOINC//1").alias("code"))
    assert with_note_concepts(events).equals(events)


def test_an_ehr_task_with_notes_sees_note_concepts_as_features(shared_data: Path, tmp_path: Path):
    if not (shared_data / "synthea_sample" / "fhir").is_dir():
        pytest.skip("synthea_sample/fhir is absent from the data root")
    copy = tmp_path / "fhir"
    shutil.copytree(shared_data / "synthea_sample" / "fhir", copy)
    plain = get_task(f"ehr:{copy}", {"target": "readmit_30d"}).load(tmp_path)
    noted = get_task(f"ehr:{copy}", {"target": "readmit_30d", "notes": True}).load(tmp_path)
    concept_features = [f for f in noted.feature_names if "NOTE_CONCEPT//" in f]
    assert concept_features and not [f for f in plain.feature_names if "NOTE_CONCEPT//" in f]
    assert len(noted) == len(plain)
