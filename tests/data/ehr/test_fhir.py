"""FHIR R4 Bundles and NDJSON into the event format (a stay is an Encounter)."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

from iatros.data.ehr import convert, fhir, get_source
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import CorruptDataError
from tests.data.ehr.builders import (
    encounter,
    heart_rate,
    one_patient,
    patient,
    record_calls,
    write_bundle,
    write_ndjson,
)

SOURCE = get_source("fhir")


def two_files(folder):
    """A Bundle with p1 (two encounters, 10 days apart) and an NDJSON file with p2."""
    write_bundle(folder / "p1.json", [
        *one_patient("p1", "e1", race="Asian"),
        encounter("e2", "p1", "2020-03-14T08:00:00Z", "2020-03-15T08:00:00Z", klass="AMB"),
        heart_rate("e2-hr", "p1", "e2", "2020-03-14T09:00:00Z", 70)])
    write_ndjson(folder / "export" / "p2.ndjson", one_patient(
        "p2", "e3", start="2021-01-01T00:00:00+02:00", end="2021-01-02T12:00:00+02:00",
        gender="male", birth="1940-01-01", deceased="2021-01-02T10:00:00+02:00", race=None))
    return folder


@pytest.fixture
def tables(tmp_path):
    return convert(SOURCE, two_files(tmp_path / "in"), tmp_path / "out")


def test_a_bundle_and_an_ndjson_file_give_patients_encounters_and_events(tables):
    m = tables.manifest
    assert (m["n_subjects"], m["n_stays"], m["n_events"]) == (2, 3, 13)
    assert m["skipped"]["n"] == 0 and len(m["parts"]) == 2
    assert tables.events.schema == EVENT_SCHEMA
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA


def test_each_resource_type_becomes_coded_events(tables):
    ev = tables.events.filter(pl.col("stay_id") == "e1")
    assert ev.select("time", "code", "numeric_value", "text_value", "unit").rows() == [
        (datetime(2020, 3, 1, 9), "LOINC//8462-4", 80.0, None, "mm[Hg]"),   # BP components,
        (datetime(2020, 3, 1, 9), "LOINC//8480-6", 120.0, None, "mm[Hg]"),  # not the panel code
        (datetime(2020, 3, 1, 9), "LOINC//8867-4", 88.0, None, "/min"),
        (datetime(2020, 3, 1, 10), "SNOMED//44054006", None, "Diabetes mellitus type 2", None),
        (datetime(2020, 3, 1, 11), "RXNORM//860975", None, "metformin 500 MG", None),
        (datetime(2020, 3, 2, 11), "SNOMED//430193006", None, "Medication reconciliation", None),
    ]
    assert set(ev["subject_id"]) == {"p1"}
    assert "LOINC//85354-9" not in tables.events["code"].to_list()


def test_encounters_carry_demographics_site_and_class(tables):
    rows = {r["stay_id"]: r for r in tables.stays.iter_rows(named=True)}
    e1 = rows["e1"]
    assert (e1["subject_id"], e1["site_id"], e1["encounter_class"], e1["encounter_type"]) == (
        "p1", "org1", "IMP", "Hospital admission")
    assert (e1["sex"], e1["ethnicity"], e1["died"], e1["los_days"]) == ("F", "Asian", 0, 3.0)
    assert e1["age"] == pytest.approx((datetime(2020, 3, 1) - datetime(1950, 6, 1)).days / 365.25,
                                      abs=0.01)
    assert e1["start_time"] == datetime(2020, 3, 1, 8) and e1["end_time"] == datetime(2020, 3, 4, 8)
    assert rows["e2"]["encounter_class"] == "AMB"


def test_times_are_naive_utc_and_a_death_during_the_encounter_is_an_outcome(tables):
    e3 = tables.stays.filter(pl.col("stay_id") == "e3").row(0, named=True)
    assert e3["start_time"] == datetime(2020, 12, 31, 22) and e3["end_time"] == datetime(2021, 1, 2, 10)
    assert (e3["sex"], e3["ethnicity"], e3["died"]) == ("M", None, 1)
    assert e3["death_time"] == datetime(2021, 1, 2, 8)
    assert e3["readmit_30d"] is None


def test_readmit_30d_links_encounters_of_one_patient(tables):
    labels = dict(zip(tables.stays["stay_id"], tables.stays["readmit_30d"], strict=True))
    assert labels == {"e1": 1, "e2": 0, "e3": None}


def test_an_invalid_resource_is_a_counted_skip_naming_its_id(tmp_path):
    no_status = heart_rate("obs-bad", "p1", "e1", "2020-03-01T09:30:00Z", 90)
    del no_status["status"]                      # Observation.status is required (1..1)
    bad_value = heart_rate("obs-bad2", "p1", "e1", "2020-03-01T09:40:00Z", 91)
    bad_value["valueQuantity"]["value"] = "ninety-one"
    write_bundle(tmp_path / "in" / "b.json", [*one_patient(), no_status, bad_value])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    skips = tables.manifest["skipped"]["examples"]
    assert [s["where"] for s in skips] == ["b.json#entry7 Observation/obs-bad",
                                           "b.json#entry8 Observation/obs-bad2"]
    assert "status" in skips[0]["reason"] and "valueQuantity.value" in skips[1]["reason"]
    assert tables.manifest["skipped"]["by_reason"] == {"invalid FHIR resource": 2}
    assert not {90.0, 91.0} & set(tables.events["numeric_value"].to_list())
    assert tables.manifest["n_events"] == 6


def test_an_observation_with_a_status_outside_its_required_value_set_is_skipped(tmp_path):
    bad = heart_rate("obs-bogus", "p1", "e1", "2020-03-01T09:30:00Z", 90, status="bogus")
    write_bundle(tmp_path / "in" / "b.json", [*one_patient(), bad])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [s["where"] for s in tables.manifest["skipped"]["examples"]] == [
        "b.json#entry7 Observation/obs-bogus"]
    assert 90.0 not in tables.events["numeric_value"].to_list()


def test_a_malformed_ndjson_line_is_a_skip_naming_file_and_line(tmp_path):
    resources = one_patient()
    write_ndjson(tmp_path / "in" / "x.ndjson", [*resources[:2], '{"resourceType": "Observ', "",
                                                *resources[2:]])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [(s["where"], s["reason"].split(":")[0]) for s in tables.manifest["skipped"]["examples"]] \
        == [("x.ndjson:3", "malformed JSON")]
    assert (tables.manifest["n_stays"], tables.manifest["n_events"]) == (1, 6)


def test_a_malformed_bundle_file_is_a_skip_and_the_other_files_still_convert(tmp_path):
    write_bundle(tmp_path / "in" / "good.json", one_patient())
    (tmp_path / "in" / "broken.json").write_text('{\n  "resourceType": "Bundle",\n  "entry": [\n')
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    (skip,) = tables.manifest["skipped"]["examples"]
    assert skip["where"].startswith("broken.json:") and skip["reason"].startswith("malformed JSON")
    assert tables.manifest["n_stays"] == 1


def test_an_encounter_of_an_unknown_patient_and_events_without_time_are_skipped(tmp_path):
    hr = heart_rate("hr-untimed", "p1", "e1", "2020-03-01T09:00:00Z", 60)
    del hr["effectiveDateTime"]
    write_bundle(tmp_path / "in" / "b.json", [*one_patient(), encounter("e9", "ghost", "2020-01-01", None),
                                              hr])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    # events are checked per file; encounters once the patients of every file are known
    assert skipped == [("b.json patient p1", "event without time or code: LOINC//8867-4"),
                       ("b.json#entry7 Encounter/e9", "encounter without a known patient or start time")]


def test_a_single_file_can_be_converted(tmp_path):
    path = write_bundle(tmp_path / "b.json", one_patient())
    tables = convert(SOURCE, path, tmp_path / "out")
    assert (tables.manifest["n_stays"], tables.manifest["n_events"]) == (1, 6)


def test_files_without_any_encounter_are_a_clear_error(tmp_path):
    only_patient = write_bundle(tmp_path / "p.json", [patient("p1")])
    with pytest.raises(CorruptDataError, match="defines no stays"):
        convert(SOURCE, only_patient, tmp_path / "out")


def test_a_bulk_export_with_one_ndjson_file_per_resource_type_converts(tmp_path):
    by_type: dict[str, list] = {}
    for r in one_patient():
        by_type.setdefault(r["resourceType"], []).append(r)
    for rtype, resources in by_type.items():
        write_ndjson(tmp_path / "in" / f"{rtype}.ndjson", resources)
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert (tables.manifest["n_stays"], tables.manifest["n_events"]) == (1, 6)


def test_an_ndjson_line_that_is_not_an_object_is_a_counted_skip(tmp_path):
    write_ndjson(tmp_path / "in" / "x.ndjson", [*one_patient(), "[1, 2]"])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [s["where"] for s in tables.manifest["skipped"]["examples"]] == ["x.ndjson:8"]


def test_a_transaction_bundle_with_resources_identified_by_full_url_converts(tmp_path):
    resources = one_patient()
    entries = []
    for r in resources:
        r = dict(r)
        rid = r.pop("id")
        for key in ("subject", "encounter"):
            if key in r:
                r[key] = {"reference": f"urn:uuid:{r[key]['reference'].split('/')[-1]}"}
        entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": r,
                        "request": {"method": "POST", "url": r["resourceType"]}})
    path = tmp_path / "in" / "tx.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert (tables.manifest["n_stays"], tables.manifest["n_events"]) == (1, 6)


@pytest.mark.parametrize(("reference", "expected"), [
    ({"reference": "Patient/p1"}, "p1"),
    ({"reference": "urn:uuid:5f1c-77"}, "5f1c-77"),
    ({"reference": "https://server.org/fhir/Patient/p1/_history/3"}, "p1"),
    ({"reference": "Organization?identifier=https://github.com/synthetichealth/synthea|ef58-9a"},
     "ef58-9a"),
    ({"identifier": {"system": "urn:oid:2.16.840", "value": "org-7"}}, "org-7"),
    ({"display": "no reference"}, None), (None, None),
])
def test_references_resolve_to_the_id_they_name(reference, expected):
    assert fhir._ref(reference) == expected


def test_a_conditional_service_provider_reference_gives_the_organization_identifier_as_site(tmp_path):
    resources = one_patient()
    resources[1]["serviceProvider"] = {
        "reference": "Organization?identifier=https://github.com/synthetichealth/synthea|ef58-9a"}
    tables = convert(SOURCE, write_bundle(tmp_path / "b.json", resources), tmp_path / "out")
    assert tables.stays["site_id"].to_list() == ["ef58-9a"]


def test_integer_boolean_and_string_values_are_kept(tmp_path):
    def obs(oid, code, **value):
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
                "effectiveDateTime": "2020-03-01T12:00:00Z", **value}

    panel = obs("o4", "72166-2", component=[
        {"code": {"coding": [{"system": "http://loinc.org", "code": "c-int"}]}, "valueInteger": 3},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "c-str"}]}, "valueString": "x"}])
    write_bundle(tmp_path / "in" / "b.json", [
        *one_patient(), obs("o1", "9279-1", valueInteger=18), obs("o2", "b-true", valueBoolean=True),
        obs("o3", "b-false", valueBoolean=False), panel])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    noon = tables.events.filter(pl.col("time") == datetime(2020, 3, 1, 12))
    assert noon.select("code", "numeric_value", "text_value").rows() == [
        ("LOINC//9279-1", 18.0, None), ("LOINC//b-false", 0.0, None), ("LOINC//b-true", 1.0, None),
        ("LOINC//c-int", 3.0, None), ("LOINC//c-str", None, "x")]
    assert tables.manifest["skipped"]["n"] == 0


@pytest.mark.parametrize(("index", "change", "where"), [
    (1, {"status": "done"}, "b.json#entry1 Encounter/e1"),
    (4, {"clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "cured"}]}},
     "b.json#entry4 Condition/e1-dx"),
    (5, {"intent": "wish"}, "b.json#entry5 MedicationRequest/e1-rx"),
    (6, {"status": "finished"}, "b.json#entry6 Procedure/e1-px"),
])
def test_a_status_outside_its_required_value_set_is_skipped(tmp_path, index, change, where):
    resources = one_patient()
    resources[index] = {**resources[index], **change}
    write_bundle(tmp_path / "in" / "b.json", [*resources, *one_patient("p2", "e2")])
    if index == 1:    # without its encounter, p1's events stay but e1 is no stay
        tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
        assert tables.stays["stay_id"].to_list() == ["e2"]
    else:
        tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
        assert tables.manifest["n_events"] == 11
    (skip,) = tables.manifest["skipped"]["examples"]
    assert skip["where"] == where
    assert skip["reason"].startswith("invalid FHIR resource: ") and "required value set" in skip["reason"]


def test_a_bundle_that_is_not_an_object_or_has_non_object_entries_is_a_counted_skip(tmp_path):
    write_bundle(tmp_path / "in" / "b.json", one_patient())
    doc = json.loads((tmp_path / "in" / "b.json").read_text())
    doc["entry"].insert(2, {"fullUrl": "urn:uuid:x", "resource": [1]})
    doc["entry"].insert(3, "an entry")
    (tmp_path / "in" / "b.json").write_text(json.dumps(doc))
    (tmp_path / "in" / "list.json").write_text("[1, 2]")
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        ("b.json#entry2", "not a JSON object: a list"), ("b.json#entry3", "not a JSON object: a string"),
        ("list.json", "not a JSON object: a list")]
    assert (tables.manifest["n_stays"], tables.manifest["n_events"]) == (1, 6)


def test_references_to_a_full_url_resolve_to_the_resource_that_carries_another_id(tmp_path):
    resources = one_patient()
    for r in resources:
        for key in ("subject", "encounter"):
            if key in r:
                r[key] = {"reference": f"urn:uuid:uuid-{r[key]['reference'].split('/')[-1]}"}
    doc = {"resourceType": "Bundle", "type": "transaction",
           "entry": [{"fullUrl": f"urn:uuid:uuid-{r['id']}", "resource": r} for r in resources]}
    path = tmp_path / "tx.json"
    path.write_text(json.dumps(doc))
    tables = convert(SOURCE, path, tmp_path / "out")
    assert tables.stays.select("subject_id", "stay_id").rows() == [("p1", "e1")]
    assert set(tables.events.select("subject_id", "stay_id").rows()) == {("p1", "e1")}


def test_a_patient_file_added_to_a_bulk_export_links_the_encounters_already_converted(tmp_path,
                                                                                      monkeypatch):
    resources = one_patient()
    write_ndjson(tmp_path / "in" / "Encounter.ndjson", [resources[1]])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", resources[2:4])
    with pytest.raises(CorruptDataError, match="defines no stays: .*encounter without a known patient"):
        convert(SOURCE, tmp_path / "in", tmp_path / "out")
    calls = record_calls(monkeypatch, fhir, "convert_file")
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [resources[0]])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [p.name for p in calls] == ["Patient.ndjson"]
    assert (tables.manifest["n_stays"], tables.manifest["n_events"], tables.manifest["skipped"]["n"]) \
        == (1, 3, 0)
    assert tables.stays.row(0, named=True)["sex"] == "F"


def test_a_patient_repeated_across_bundles_is_one_patient_and_a_conflicting_copy_is_reported(tmp_path):
    write_bundle(tmp_path / "in" / "a.json", one_patient("p1", "e1"))
    write_bundle(tmp_path / "in" / "b.json", [patient("p1"), encounter(
        "e2", "p1", "2020-05-01T08:00:00Z", "2020-05-02T08:00:00Z")])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert tables.manifest["skipped"]["n"] == 0
    assert (tables.manifest["n_subjects"], tables.manifest["n_stays"]) == (1, 2)
    write_bundle(tmp_path / "in" / "c.json", [patient("p1", gender="male")])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        ("c.json#entry0 Patient/p1", "conflicting duplicate Patient: kept the one in a.json#entry0")]
    assert set(tables.stays["sex"]) == {"F"}


def test_an_encounter_repeated_in_one_file_is_kept_once(tmp_path):
    resources = one_patient()
    write_bundle(tmp_path / "in" / "b.json", [*resources, resources[1]])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert tables.stays["stay_id"].to_list() == ["e1"]
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        ("b.json#entry7 Encounter/e1", "duplicate resource: already in b.json#entry1")]


def test_an_observation_entered_in_error_is_a_skip_not_an_event(tmp_path):
    retracted = heart_rate("obs-retracted", "p1", "e1", "2020-03-01T09:30:00Z", 90,
                           status="entered-in-error")
    write_bundle(tmp_path / "in" / "b.json", [*one_patient(), retracted])
    tables = convert(SOURCE, tmp_path / "in", tmp_path / "out")
    assert tables.manifest["skipped"]["by_reason"] == {"entered in error": 1}
    assert 90.0 not in tables.events["numeric_value"].to_list()
