"""Extracted entities as FHIR R4 resources (validated with `fhir.resources`' R4B models, the
4.3 release that keeps R4's Condition, MedicationStatement and Observation shapes).

The note becomes a DocumentReference; each Condition points at it through `evidence.detail`,
each MedicationStatement and Observation through `derivedFrom`, and every resource carries the
mention's character span in an extension. Negated problems become Conditions with
verificationStatus `refuted`, uncertain ones `provisional`; family-history and hypothetical
mentions are not facts about the patient and are left out, and so are drugs named in an
allergies section (they stay in the JSON output).
"""

from __future__ import annotations

import uuid
from typing import Any

from iatros.errors import CorruptDataError

SPAN_URL = "https://iatros.dev/fhir/StructureDefinition/note-span"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ATTRIBUTES = ("negated", "uncertain", "historical", "family", "hypothetical")


def _id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def _span(entity: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"url": SPAN_URL, "extension": [
        {"url": "start", "valueInteger": int(entity["start"])},
        {"url": "end", "valueInteger": int(entity["end"])},
        {"url": "text", "valueString": entity["text"]},
    ]}]


def _note(entity: dict[str, Any]) -> list[dict[str, str]]:
    flags = [a for a in ATTRIBUTES if entity.get(a)]
    return [{"text": f"extracted from the note ({', '.join(flags)})"}] if flags else []


def _condition(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str]) -> dict[str, Any]:
    status = "refuted" if e["negated"] else "provisional" if e["uncertain"] else "confirmed"
    out: dict[str, Any] = {
        "resourceType": "Condition", "extension": _span(e),
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": status}]},
        "category": [{"coding": [{"system": CATEGORY, "code": "problem-list-item"}],
                      "text": e["label"].lower()}],
        "code": {"text": e["text"]}, "subject": subject,
        "evidence": [{"detail": [ref]}],
    }
    if _note(e):
        out["note"] = _note(e)
    return out


def _medication(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str]) -> dict[str, Any]:
    status = "not-taken" if e["negated"] else "completed" if e["historical"] else "active"
    dosage_text = " ".join(str(e[k]) for k in ("dose", "route", "frequency") if e.get(k))
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement", "extension": _span(e), "status": status,
        "medicationCodeableConcept": {"text": e["text"]}, "subject": subject,
        "derivedFrom": [ref],
    }
    if dosage_text:
        dosage: dict[str, Any] = {"text": dosage_text}
        if e.get("route"):
            dosage["route"] = {"text": e["route"]}
        out["dosage"] = [dosage]
    if _note(e):
        out["note"] = _note(e)
    return out


def _observation(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "extension": _span(e), "status": "final",
                           "code": {"text": e["text"]}, "subject": subject, "derivedFrom": [ref]}
    value = str(e.get("value", "")).lstrip("<>")
    try:
        quantity: dict[str, Any] = {"value": float(value)}
        if e.get("unit"):
            quantity["unit"] = e["unit"]
        out["valueQuantity"] = quantity
    except ValueError:
        out["valueString"] = str(e.get("value"))
    return out


def to_fhir_bundle(doc: dict[str, Any], patient_id: str = "unknown") -> dict[str, Any]:
    """A FHIR collection Bundle (as a dict) for one extracted document; every resource is
    validated, and an invalid one raises CorruptDataError naming the mention."""
    from fhir.resources.R4B import get_fhir_model_class

    source = str(doc.get("source") or "note")
    patient = {"resourceType": "Patient", "id": _id(f"patient:{patient_id}"),
               "identifier": [{"value": patient_id}]}
    subject = {"reference": f"urn:uuid:{patient['id']}"}
    docref = {"resourceType": "DocumentReference", "id": _id(f"doc:{source}"), "status": "current",
              "subject": subject, "description": f"clinical note {source}",
              "content": [{"attachment": {"contentType": "text/plain", "title": source}}]}
    ref = {"reference": f"urn:uuid:{docref['id']}"}
    resources = [patient, docref]
    for e in doc.get("entities", []):
        if e.get("family") or e.get("hypothetical"):
            continue
        if e["label"] in ("PROBLEM", "SYMPTOM"):
            r = _condition(e, ref, subject)
        elif e["label"] == "MEDICATION":
            if e.get("allergy"):  # an allergy, not a medication taken (AllergyIntolerance: not yet)
                continue
            r = _medication(e, ref, subject)
        elif e["label"] == "LAB":
            r = _observation(e, ref, subject)
        else:
            continue
        r["id"] = _id(f"{source}:{e['label']}:{e['start']}:{e['end']}")
        resources.append(r)
    entries = []
    for r in resources:
        try:
            get_fhir_model_class(r["resourceType"]).model_validate(r)
        except Exception as err:
            raise CorruptDataError(f"{source}: the {r['resourceType']} built for "
                                   f"{r.get('code', {}).get('text', r['id'])!r} is not valid FHIR: "
                                   f"{str(err).splitlines()[0]}") from err
        entries.append({"fullUrl": f"urn:uuid:{r['id']}", "resource": r})
    bundle = {"resourceType": "Bundle", "id": _id(f"bundle:{source}"), "type": "collection",
              "entry": entries}
    get_fhir_model_class("Bundle").model_validate(bundle)
    return bundle
