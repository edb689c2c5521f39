"""A FHIR R4 Bundle of one patient in, the EHR model's risk out as FHIR `RiskAssessment`s: the
model version, the calibrated probability, the Observations of that encounter the model used
as `basis`, and the variables that moved the risk most as `rationale`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from iatros import api
from iatros.serve.problems import Problem

MAX_BASIS = 200


def _ref_id(reference: str | None) -> str:
    """`urn:uuid:X`, `Encounter/X` or `X` -> `X`."""
    return (reference or "").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def check_bundle(bundle: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The patient id and the resources of a one-patient Bundle; 422 naming what is wrong."""
    if bundle.get("resourceType") != "Bundle":
        raise Problem(422, f"expected a FHIR Bundle, got resourceType {bundle.get('resourceType')!r}",
                      field="resourceType")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise Problem(422, "the Bundle has no entries", field="entry")
    resources = []
    for k, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise Problem(422, f"entry[{k}] has no resource with a resourceType", field=f"entry[{k}]")
        resources.append(resource)
    _validate(bundle)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if len(patients) != 1 or not patients[0].get("id"):
        raise Problem(422, f"the Bundle must hold exactly one Patient with an id (found "
                      f"{len(patients)})", field="entry")
    if not any(r["resourceType"] == "Encounter" for r in resources):
        raise Problem(422, "the Bundle has no Encounter: risk is assessed per encounter",
                      field="entry")
    return str(patients[0]["id"]), resources


def _validate(bundle: dict[str, Any]) -> None:
    """The whole Bundle against FHIR R4 (fhir.resources' R4B models); 422 naming the place."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(bundle)
    except ValidationError as e:
        errors = [{"field": ".".join(str(x) for x in err.get("loc", ())) or "Bundle",
                   "message": str(err.get("msg", ""))[:200]} for err in e.errors()[:20]]
        first = errors[0] if errors else {"field": "Bundle", "message": "invalid"}
        raise Problem(422, f"the Bundle is not valid FHIR R4: {first['field']}: {first['message']}",
                      field=first["field"], errors=errors) from None


def latest_encounter(resources: list[dict[str, Any]]) -> str:
    encounters = [r for r in resources if r["resourceType"] == "Encounter"]
    return str(max(encounters, key=lambda r: str((r.get("period") or {}).get("start", "")))["id"])


def code_names(resources: list[dict[str, Any]]) -> dict[str, str]:
    """Event code -> the display text the bundle gives it (for showing drivers to people)."""
    names: dict[str, str] = {}
    for r in resources:
        types = r.get("type")
        for concept in [r.get("code"), *(types if isinstance(types, list) else [types])]:
            if not isinstance(concept, dict):
                continue
            code = api.event_code(concept)
            display = next((c.get("display") for c in concept.get("coding") or [] if c.get("display")),
                           concept.get("text"))
            if code and display:
                names.setdefault(code, str(display))
    return names


def _basis(resources: list[dict[str, Any]], stay: str, used: set[str]) -> list[dict[str, str]]:
    out = []
    for r in resources:
        if r["resourceType"] != "Observation" or _ref_id((r.get("encounter") or {}).get("reference")) != stay:
            continue
        codes = {api.event_code(r.get("code"))} | {api.event_code(c.get("code"))
                                                   for c in r.get("component") or []}
        if codes & used and r.get("id"):
            out.append({"reference": f"Observation/{r['id']}"})
    return out[:MAX_BASIS]


def risk_assessment(result: dict[str, Any], resources: list[dict[str, Any]], patient: str,
                    model_label: str, config: dict[str, Any]) -> dict[str, Any]:
    """One validated R4 RiskAssessment for one scored encounter."""
    from fhir.resources.R4B.riskassessment import RiskAssessment

    probabilities = result.get("probabilities") or {}
    positive = list(probabilities)[-1] if probabilities else None
    probability = float(probabilities[positive]) if positive else float(result.get("prediction", 0))
    threshold = result.get("threshold")
    options = config.get("task_options") or {}
    outcome = str(options.get("target") or "outcome")
    window = f" from the first {options['window']} h" if options.get("window") else ""
    drivers = result.get("drivers") or []
    rationale = "; ".join(f"{d['code']} {d['effect']:+.3f}" for d in drivers[:5])
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment", "id": str(uuid.uuid4()), "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "encounter": {"reference": f"Encounter/{result['stay_id']}"},
        "occurrenceDateTime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": {"text": f"iatros model {model_label} ({config.get('model')}; outcome "
                           f"{outcome}{window})"},
        "basis": _basis(resources, str(result["stay_id"]), set(result.get("used") or [])),
        "prediction": [{
            "outcome": {"text": outcome[:200]},
            "probabilityDecimal": round(probability, 6),
            **({"qualitativeRisk": {"text": "high" if probability >= threshold else "low"}}
               if isinstance(threshold, (int, float)) else {}),
            **({"rationale": f"change in risk when each is removed: {rationale}"} if rationale else {}),
        }],
        "note": [{"text": f"calibrated probability ({result.get('calibration') or 'uncalibrated'}); "
                          f"decision threshold {threshold}; model card: GET /api/v1/models/"
                          f"{model_label.split(':')[0]}"}],
    }
    RiskAssessment.model_validate(resource)
    return resource


def assess(loaded: Any, bundle: dict[str, Any], resources: list[dict[str, Any]], patient: str,
           folder: Path, model_label: str, all_encounters: bool) -> dict[str, Any]:
    """Score the bundle's encounters and answer a collection Bundle of RiskAssessments (the
    latest encounter's only, unless `all_encounters`) plus iatros' own per-encounter details."""
    from fhir.resources.R4B.bundle import Bundle

    path = folder / "bundle.json"
    path.write_text(json.dumps(bundle))
    results = loaded.predict_records(path, folder / "work")
    wanted = None if all_encounters else latest_encounter(resources)
    chosen = [r for r in results if wanted is None or str(r["stay_id"]) == wanted]
    if not chosen:
        raise Problem(422, f"encounter {wanted} could not be scored (too short for the model's "
                      f"window, or not converted: see the server log)", field="entry")
    assessments = [risk_assessment(r, resources, patient, model_label, loaded.config)
                   for r in chosen]
    out = {"resourceType": "Bundle", "type": "collection",
           "entry": [{"fullUrl": f"urn:uuid:{a['id']}", "resource": a} for a in assessments]}
    Bundle.model_validate(out)
    names = code_names(resources)
    for r in chosen:
        for d in r.get("drivers") or []:
            code = d["code"].removeprefix("NOTE//")
            d["display"] = names.get(code) and (f"note: {names[code]}" if d["code"] != code
                                                else names[code])
    return {"bundle": out, "encounters": [
        {k: r.get(k) for k in ("stay_id", "probabilities", "prediction", "threshold", "drivers")}
        for r in chosen]}
