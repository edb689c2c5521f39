"""FHIR R4 Bundles and NDJSON into the event format (a stay is an Encounter)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime

import polars as pl
import pytest

from iatros.data.ehr import convert, fhir, get_source
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA
from iatros.errors import CorruptDataError
from tests.data.ehr.builders import (
    allergy,
    care_plan,
    condition,
    diagnostic_report,
    document_reference,
    encounter,
    heart_rate,
    immunization,
    medication_administration,
    one_patient,
    patient,
    procedure,
    record_calls,
    text_attachment,
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


# ---------------------------------------------------------------- every resource: read or counted

NOTE = "History and physical\nPatient is a 70 year-old woman with a cough.\n"


def convert_bundle(tmp_path, resources):
    return convert(SOURCE, write_bundle(tmp_path / "in" / "b.json", resources), tmp_path / "out")


def test_new_resource_types_become_coded_events_and_notes(tmp_path):
    tables = convert_bundle(tmp_path, [
        *one_patient(), immunization("imm", "p1", "e1", "2020-03-01T12:00:00Z"),
        allergy("alg", "p1", "2020-03-01T13:00:00Z", eid="e1"),
        care_plan("cp", "p1", "e1", "2020-03-02T08:00:00Z"),
        medication_administration("ma", "p1", "e1", "2020-03-02T09:00:00Z", 1000),
        diagnostic_report("dr", "p1", "e1", "2020-03-02T10:00:00Z", "2020-03-02T10:30:00Z", [NOTE]),
        document_reference("doc", "p1", "e1", "2020-03-02T11:00:00Z",
                           [text_attachment("Discharge summary\n"), {"contentType": "application/pdf",
                                                                     "data": "JVBERi0="}])])
    new = tables.events.filter(pl.col("time") >= datetime(2020, 3, 1, 12)).filter(
        ~pl.col("code").is_in(["SNOMED//430193006"]))
    assert new.select("time", "code", "numeric_value", "text_value", "unit").rows() == [
        (datetime(2020, 3, 1, 12), "CVX//140", None, "Influenza, seasonal, injectable", None),
        (datetime(2020, 3, 1, 13), "SNOMED//91936005", None, "Allergy to penicillin", None),
        (datetime(2020, 3, 2, 8), "SNOMED//304510005", None, "Recommendation to avoid exercise", None),
        (datetime(2020, 3, 2, 8), "SNOMED//53950000", None, "Respiratory therapy", None),
        (datetime(2020, 3, 2, 9), "RXNORM//1719", 1000.0, "cefazolin", "mg"),
        (datetime(2020, 3, 2, 10), "LOINC//34117-2", None, "History and physical note", None),
        (datetime(2020, 3, 2, 10, 30), "NOTE//LOINC//34117-2", None, NOTE, None),   # dated when issued
        (datetime(2020, 3, 2, 11), "NOTE//LOINC//34117-2", None, "Discharge summary\n", None),
    ]
    assert set(new["stay_id"]) == {"e1"} and tables.manifest["skipped"]["n"] == 0
    assert list(fhir.note_texts(tables.events)) == [
        ("p1", "e1", datetime(2020, 3, 2, 10, 30), "NOTE//LOINC//34117-2", NOTE),
        ("p1", "e1", datetime(2020, 3, 2, 11), "NOTE//LOINC//34117-2", "Discharge summary\n")]


def test_a_note_in_a_diagnostic_report_and_its_document_reference_is_one_event(tmp_path):
    tables = convert_bundle(tmp_path, [
        *one_patient(),
        diagnostic_report("dr", "p1", "e1", "2020-03-02T10:00:00Z", "2020-03-02T10:30:00Z", [NOTE]),
        document_reference("doc", "p1", "e1", "2020-03-02T10:30:00Z", [text_attachment(NOTE)])])
    assert tables.events.filter(pl.col("text_value") == NOTE).height == 1
    counts = fhir.resource_counts(tables.manifest)
    assert counts["used"]["DiagnosticReport"] == counts["used"]["DocumentReference"] == 1
    assert any("1 repeated note text(s)" in n for n in tables.manifest["notes"])


def test_a_non_utf8_attachment_is_a_named_skip_and_the_conversion_goes_on(tmp_path):
    latin1 = "Fièvre à 39 °C".encode("latin-1")
    tables = convert_bundle(tmp_path, [
        *one_patient(),
        document_reference("doc-bad", "p1", "e1", "2020-03-02T11:00:00Z", [text_attachment(latin1)]),
        diagnostic_report("dr", "p1", "e1", "2020-03-02T10:00:00Z", "2020-03-02T10:30:00Z",
                          [latin1, NOTE]),
        document_reference("doc-latin1", "p1", "e1", "2020-03-02T12:00:00Z",
                           [text_attachment(latin1, "text/plain; charset=ISO-8859-1")])])
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        ("b.json#entry7 DocumentReference/doc-bad",
         "undecodable attachment: content[0].attachment is not utf-8 text (invalid continuation byte "
         "at byte 2)"),
        ("b.json#entry8 DiagnosticReport/dr",
         "undecodable attachment: presentedForm[0] is not utf-8 text (invalid continuation byte at byte 2)")]
    notes = [text for *_, text in fhir.note_texts(tables.events)]
    assert notes == [NOTE, "Fièvre à 39 °C"]       # the declared charset is honoured
    assert tables.manifest["n_events"] == 6 + 3     # the report's code and its readable note
    counts = fhir.resource_counts(tables.manifest)
    assert counts["not_used_why"] == {"DocumentReference": {"undecodable attachment": 1}}
    assert counts["used"]["DiagnosticReport"] == 1


@pytest.mark.parametrize("rtype", ["Foo", "Transport"])        # not FHIR; FHIR R5 only
def test_an_unknown_resource_type_is_a_skip_with_its_reason(tmp_path, rtype):
    tables = convert_bundle(tmp_path, [*one_patient(), {"resourceType": rtype, "id": "x1"}])
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        (f"b.json#entry7 {rtype}/x1", f"unknown resource type: {rtype!r} is not a FHIR R4 resource")]
    assert fhir.resource_counts(tables.manifest)["not_used_why"] == {rtype: {"unknown resource type": 1}}
    assert tables.manifest["n_events"] == 6


def test_an_r5_shaped_resource_fails_validation_and_is_a_named_skip(tmp_path):
    r5 = immunization("imm-r5", "p1", "e1", "2020-03-01T12:00:00Z")
    r5["encounter"] = [r5["encounter"]]                     # a list, not R4's single Reference
    tables = convert_bundle(tmp_path, [*one_patient(), r5])
    (skip,) = tables.manifest["skipped"]["examples"]
    assert skip["where"] == "b.json#entry7 Immunization/imm-r5"
    assert skip["reason"].startswith("invalid FHIR resource: ")
    assert fhir.resource_counts(tables.manifest)["not_used_why"] == {
        "Immunization": {"invalid FHIR resource": 1}}


@pytest.mark.parametrize(("resource", "why"), [
    (immunization("imm", "p1", "e1", "2020-03-01T12:00:00Z", status="not-done"), "not done"),
    (medication_administration("ma", "p1", "e1", "2020-03-01T12:00:00Z", 5, status="not-done"),
     "not done"),
    ({**procedure("px", "p1", "e1", "2020-03-01T12:00:00Z"), "status": "not-done"}, "not done"),
    (allergy("alg", "p1", "2020-03-01T12:00:00Z", verification="refuted"), "refuted"),
    ({**condition("dx", "p1", "e1", "2020-03-01T12:00:00Z"), "verificationStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}},
     "refuted"),                                            # a negated problem, as nlp.fhir writes it
])
def test_a_resource_saying_it_did_not_happen_is_counted_as_not_used_and_is_no_event(tmp_path, resource,
                                                                                     why):
    tables = convert_bundle(tmp_path, [*one_patient(), resource])
    assert tables.manifest["n_events"] == 6 and tables.manifest["skipped"]["n"] == 0
    assert fhir.resource_counts(tables.manifest)["not_used_why"] == {resource["resourceType"]: {why: 1}}


@pytest.mark.parametrize(("resource", "element"), [
    (immunization("imm", "p1", "e1", "2020-03-01T12:00:00Z", status="given"), "Immunization.status"),
    (medication_administration("ma", "p1", "e1", "2020-03-01T12:00:00Z", 5, status="given"),
     "MedicationAdministration.status"),
    ({**document_reference("doc", "p1", "e1", "2020-03-01T12:00:00Z", [text_attachment("x")]),
      "status": "final"}, "DocumentReference.status"),
    ({**allergy("alg", "p1", "2020-03-01T12:00:00Z"), "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "cured"}]}},
     "AllergyIntolerance.clinicalStatus"),
])
def test_a_new_resource_with_a_status_outside_its_required_value_set_is_skipped(tmp_path, resource,
                                                                                  element):
    tables = convert_bundle(tmp_path, [*one_patient(), resource])
    (skip,) = tables.manifest["skipped"]["examples"]
    assert skip["where"] == f"b.json#entry7 {resource['resourceType']}/{resource['id']}"
    assert skip["reason"].startswith(f"invalid FHIR resource: {element} ")
    assert tables.manifest["n_events"] == 6


def test_an_allergy_entered_in_error_is_a_skip_not_an_event(tmp_path):
    tables = convert_bundle(tmp_path, [*one_patient(), allergy("alg", "p1", "2020-03-01T12:00:00Z",
                                                                verification="entered-in-error")])
    assert [s["where"] for s in tables.manifest["skipped"]["examples"]] == [
        "b.json#entry7 AllergyIntolerance/alg"]
    assert tables.manifest["skipped"]["by_reason"] == {"entered in error": 1}
    assert tables.manifest["n_events"] == 6


def test_types_it_does_not_read_are_counted_as_not_used_with_why(tmp_path):
    others = [{"resourceType": "Claim", "id": "c1"}, {"resourceType": "Claim", "id": "c2"},
              {"resourceType": "Organization", "id": "o1"}, {"resourceType": "ImagingStudy", "id": "i1"},
              {"resourceType": "Device", "id": "d1", "patient": {"reference": "Patient/p1"}},
              {"resourceType": "Goal", "id": "g1"}]
    tables = convert_bundle(tmp_path, [*one_patient(), *others])
    counts = fhir.resource_counts(tables.manifest)
    assert counts["not_used"] == {"Claim": 2, "Device": 1, "Goal": 1, "ImagingStudy": 1, "Organization": 1}
    assert counts["not_used_why"]["Device"] == {"no clinical time": 1}
    assert counts["not_used_why"]["Goal"] == {"not converted": 1}
    assert counts["used"] == {"Condition": 1, "Encounter": 1, "MedicationRequest": 1, "Observation": 2,
                              "Patient": 1, "Procedure": 1}
    assert tables.manifest["skipped"]["n"] == 0


def test_a_part_cached_by_an_older_fhir_converter_is_converted_again(tmp_path, monkeypatch):
    root, out = tmp_path / "in", tmp_path / "out"
    write_bundle(root / "a.json", one_patient())
    monkeypatch.setattr(fhir, "FHIR_PARSER_VERSION", 1)
    convert(SOURCE, root, out)
    monkeypatch.setattr(fhir, "FHIR_PARSER_VERSION", 2)
    calls = record_calls(monkeypatch, fhir, "convert_file")
    tables = convert(SOURCE, root, out)
    assert [p.name for p in calls] == ["a.json"] and tables.manifest["reused_parts"] == []
    assert all(name.endswith("-v2") for name in tables.manifest["parts"])


# ---------------------------------------------------------------- the Synthea sample (real data)


@pytest.fixture(scope="module")
def synthea_bundles(shared_data_module):
    folder = shared_data_module / "synthea_sample" / "fhir"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent from the data root")
    return folder, [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.fixture(scope="module")
def synthea(synthea_bundles, tmp_path_factory):
    return convert(SOURCE, synthea_bundles[0], tmp_path_factory.mktemp("synthea"))


def synthea_resources(bundles, rtype):
    return [e["resource"] for doc in bundles[1] for e in doc["entry"]
            if e["resource"]["resourceType"] == rtype]


def test_every_resource_type_in_the_synthea_bundles_is_used_or_counted_as_not_used(synthea_bundles,
                                                                                     synthea):
    raw = Counter(e["resource"]["resourceType"] for doc in synthea_bundles[1] for e in doc["entry"])
    counts = fhir.resource_counts(synthea.manifest)
    assert set(counts["used"]) | set(counts["not_used"]) == set(raw)
    for rtype, n in raw.items():
        assert counts["used"].get(rtype, 0) + counts["not_used"].get(rtype, 0) == n, rtype
    assert {"Claim", "ExplanationOfBenefit", "Provenance", "CareTeam"} <= set(counts["not_used"])
    assert {"Immunization", "DiagnosticReport", "DocumentReference", "CarePlan"} <= set(counts["used"])
    assert synthea.manifest["skipped"]["n"] == 0
    assert synthea.manifest["resources"] == counts  # the manifest states the counts itself


def test_synthea_document_references_are_note_events_with_the_decoded_text(synthea_bundles, synthea):
    expected = Counter()
    for doc in synthea_resources(synthea_bundles, "DocumentReference"):
        text = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode("utf-8")
        expected[(fhir._ref(doc["subject"]), fhir._ref(doc["context"]["encounter"][0]),
                  "NOTE//LOINC//" + doc["type"]["coding"][0]["code"], text)] += 1
    got = Counter((s, e, c, t) for s, e, _, c, t in fhir.note_texts(synthea.events))
    assert got == expected and sum(expected.values()) == 47


def test_synthea_immunizations_are_cvx_coded_events(synthea_bundles, synthea):
    given = [r for r in synthea_resources(synthea_bundles, "Immunization") if r["status"] == "completed"]
    cvx = synthea.events.filter(pl.col("code").str.starts_with("CVX//"))
    assert sorted(cvx["code"]) == sorted(f"CVX//{r['vaccineCode']['coding'][0]['code']}" for r in given)
    assert cvx.height == 36 and cvx["time"].null_count() == 0
