"""A FHIR Bundle of one real (Synthea) patient in, a validated RiskAssessment out: model
version, probability equal to the in-process score, basis pointing at the bundle's own
Observations, care teams enforced, bad bundles refused with the field named."""

from __future__ import annotations

import json

import pytest

from tests.serve.conftest import promote


def _bundle(path) -> dict:
    return json.loads(path.read_text())


def test_bundle_gives_a_valid_risk_assessment_for_the_latest_encounter(client, as_user, fhir_run):
    from fhir.resources.R4B.bundle import Bundle

    run, bundles = fhir_run
    promote(run, "readmission")
    bundle = _bundle(bundles[0])
    r = client.post("/api/v1/models/readmission/fhir", headers=as_user("remy"), json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    Bundle.model_validate(out["bundle"])
    (entry,) = out["bundle"]["entry"]
    ra = entry["resource"]
    encounters = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    latest = max(encounters, key=lambda e: e["period"]["start"])
    patient = next(e["resource"]["id"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    assert ra["encounter"]["reference"] == f"Encounter/{latest['id']}"
    assert ra["subject"]["reference"] == f"Patient/{patient}"
    assert "readmission:v1" in ra["method"]["text"] and "readmit_30d" in ra["method"]["text"]
    assert "/tmp" not in json.dumps(ra)
    p = ra["prediction"][0]["probabilityDecimal"]
    assert p == pytest.approx(out["encounters"][0]["probabilities"]["yes"], abs=1e-6)


def test_probabilities_match_the_in_process_scorer_and_basis_points_into_the_bundle(
        client, as_user, fhir_run, tmp_path):
    from iatros import api

    run, bundles = fhir_run
    promote(run, "readmission")
    bundle = _bundle(bundles[1])
    r = client.post("/api/v1/models/readmission/fhir?all_encounters=true", headers=as_user("remy"),
                    json=bundle)
    assert r.status_code == 200, r.text
    served = {e["stay_id"]: e["probabilities"]["yes"] for e in r.json()["encounters"]}
    local = api.LoadedRun(run).predict_records(bundles[1], tmp_path / "w")
    assert served == pytest.approx({x["stay_id"]: x["probabilities"]["yes"] for x in local})
    observations = {f"Observation/{e['resource']['id']}" for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"}
    basis = [b["reference"] for e in r.json()["bundle"]["entry"] for b in e["resource"].get("basis", [])]
    assert set(basis) <= observations
    assert basis, "no encounter had an Observation the model uses"


def test_clinicians_need_the_patient_in_their_care_team(client, app, as_user, fhir_run):
    run, bundles = fhir_run
    promote(run, "readmission")
    bundle = _bundle(bundles[0])
    h = as_user("clara")
    r = client.post("/api/v1/models/readmission/fhir", headers=h, json=bundle)
    assert r.status_code == 403
    patient = next(e["resource"]["id"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    app.state.store.assign("icu-a", [patient])
    assert client.post("/api/v1/models/readmission/fhir", headers=h, json=bundle).status_code == 200
    assert [e.target for e in app.state.audit.entries() if e.action == "assess risk (FHIR)"] == \
        [f"patient:{patient}"] * 2


@pytest.mark.parametrize(("body", "field"), [
    ({"resourceType": "Patient"}, "resourceType"),
    ({"resourceType": "Bundle", "entry": []}, "entry"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation"}}]}, "entry"),
    ({"resourceType": "Bundle", "entry": [{"nothing": 1}]}, "entry[0]"),
])
def test_malformed_bundles_are_refused_naming_the_field(client, as_user, fhir_run, body, field):
    run, _ = fhir_run
    promote(run, "readmission")
    r = client.post("/api/v1/models/readmission/fhir", headers=as_user("remy"), json=body)
    assert r.status_code == 422 and r.json()["field"].startswith(field)


def test_a_non_ehr_model_refuses_a_bundle(client, as_user, tabular_run, fhir_run):
    promote(tabular_run, "wdbc")
    r = client.post("/api/v1/models/wdbc/fhir", headers=as_user("remy"),
                    json=_bundle(fhir_run[1][0]))
    assert r.status_code == 422 and "health-record" in r.json()["detail"]


def test_drivers_are_named_from_the_bundle(client, as_user, fhir_run):
    run, bundles = fhir_run
    promote(run, "readmission")
    r = client.post("/api/v1/models/readmission/fhir", headers=as_user("remy"), json=_bundle(bundles[0]))
    drivers = r.json()["encounters"][0]["drivers"]
    assert drivers and all(set(d) >= {"code", "effect", "risk_without", "display"} for d in drivers)
    assert any(d["display"] for d in drivers)


def test_model_list_and_card_show_no_server_path(client, as_user, fhir_run):
    run, _ = fhir_run
    promote(run, "readmission")
    h = as_user("remy")
    listed = client.get("/api/v1/models", headers=h).json()
    card = client.get("/api/v1/models/readmission", headers=h).json()
    assert listed[0]["task"] == "ehr:bundles"
    arg = card["task"].partition(":")[2]
    assert arg == "bundles" and str(run.parent) not in str(listed) + str(card)


def test_a_bundle_that_fails_fhir_validation_is_refused_with_the_place(client, as_user, fhir_run):
    run, bundles = fhir_run
    promote(run, "readmission")
    bundle = _bundle(bundles[0])
    k = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Observation")
    bundle["entry"][k]["resource"]["status"] = 42
    r = client.post("/api/v1/models/readmission/fhir", headers=as_user("remy"), json=bundle)
    assert r.status_code == 422, r.text
    assert "not valid FHIR" in r.json()["detail"] and f"entry.{k}" in r.json()["field"]
