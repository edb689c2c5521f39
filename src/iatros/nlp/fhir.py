"""Extracted entities as FHIR R4 resources (validated with `fhir.resources`' R4B models, the
4.3 release that keeps R4's Condition, MedicationStatement and Observation shapes).

The note becomes a DocumentReference; each Condition points at it through `evidence.detail`,
each MedicationStatement and Observation through `derivedFrom`, and every resource carries the
mention's character span in an extension. Negated problems become Conditions with
verificationStatus `refuted`, uncertain ones `provisional`. Drugs named in an allergies section
become AllergyIntolerance (`refuted` when negated, "no known allergy to aspirin"), with symptoms
of the same sentence as reaction manifestations. Family-history mentions become
FamilyMemberHistory, the relative taken from the context cue ("mother" -> MTH); a negated one
("no family history of diabetes") has no FHIR R4 form and stays in the JSON output only, as do
hypothetical mentions. AllergyIntolerance and FamilyMemberHistory have no evidence element, so
they point at the note through a derived-from extension. A mention coded from a terminology
(`nlp.terminology`) gets one `code.coding` per vocabulary (ICD-10-CM
http://hl7.org/fhir/sid/icd-10-cm, HPO http://human-phenotype-ontology.org, DrugBank
https://identifiers.org/drugbank) beside the note's words in `code.text`.
"""

from __future__ import annotations

import uuid
from typing import Any

from iatros.errors import CorruptDataError

SPAN_URL = "https://iatros.dev/fhir/StructureDefinition/note-span"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
DERIVED_URL = "https://iatros.dev/fhir/StructureDefinition/derived-from"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
RELATIVES = {"mother": "MTH", "father": "FTH", "sister": "SIS", "brother": "BRO", "son": "SON",
             "daughter": "DAU", "grandmother": "GRMTH", "grandfather": "GRFTH", "aunt": "AUNT",
             "uncle": "UNCLE", "sibling": "SIB", "siblings": "SIB", "parent": "PRN",
             "parents": "PRN", "cousin": "COUSN", "child": "CHILD", "children": "CHILD"}
ATTRIBUTES = ("negated", "uncertain", "historical", "family", "hypothetical")


def _id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def _span(entity: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"url": SPAN_URL, "extension": [
        {"url": "start", "valueInteger": int(entity["start"])},
        {"url": "end", "valueInteger": int(entity["end"])},
        {"url": "text", "valueString": entity["text"]},
    ]}]


def _code(e: dict[str, Any]) -> dict[str, Any]:
    """A CodeableConcept: the mention's words, and its codings when it was coded."""
    out: dict[str, Any] = {"text": e["text"]}
    codings = [{"system": c["system"], "code": c["concept_id"], "display": c["preferred_name"]}
               for c in e.get("codings") or [] if c.get("concept_id")]
    if codings:
        out["coding"] = codings
    return out


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
        "code": _code(e), "subject": subject,
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
        "medicationCodeableConcept": _code(e), "subject": subject,
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
                           "code": _code(e), "subject": subject, "derivedFrom": [ref]}
    value = str(e.get("value", "")).lstrip("<>")
    try:
        quantity: dict[str, Any] = {"value": float(value)}
        if e.get("unit"):
            quantity["unit"] = e["unit"]
        out["valueQuantity"] = quantity
    except ValueError:
        out["valueString"] = str(e.get("value"))
    return out


def _allergy(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str],
             reactions: list[dict[str, Any]]) -> dict[str, Any]:
    status = "refuted" if e["negated"] else "unconfirmed" if e["uncertain"] else "confirmed"
    out: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "extension": [*_span(e), {"url": DERIVED_URL, "valueReference": ref}],
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": status}]},
        "category": ["medication"], "code": _code(e), "patient": subject,
    }
    if status != "refuted":  # FHIR forbids a clinical status on a refuted allergy
        out["clinicalStatus"] = {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]}
    if reactions and status != "refuted":
        out["reaction"] = [{"manifestation": [_code(r) for r in reactions]}]
    return out


def _relative(e: dict[str, Any]) -> dict[str, Any]:
    for cue in e.get("cues") or []:
        code = RELATIVES.get(str(cue).lower())
        if code:
            return {"coding": [{"system": ROLE_CODE, "code": code}], "text": str(cue).lower()}
    return {"coding": [{"system": ROLE_CODE, "code": "FAMMEMB"}], "text": "family member"}


def _family_history(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str]) -> dict[str, Any]:
    return {"resourceType": "FamilyMemberHistory",
            "extension": [*_span(e), {"url": DERIVED_URL, "valueReference": ref}],
            "status": "partial" if e["uncertain"] else "completed", "patient": subject,
            "relationship": _relative(e), "condition": [{"code": _code(e)}]}


def _allergy_reactions(entities: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """For each allergy (by index), the non-negated symptoms of its sentence in the allergies
    section: the reaction it causes ("penicillin causes rash")."""
    out: dict[int, list[dict[str, Any]]] = {}
    for i, e in enumerate(entities):
        if e["label"] == "MEDICATION" and e.get("allergy"):
            out[i] = [s for s in entities if s["label"] == "SYMPTOM" and not s["negated"]
                      and s.get("section") == "allergies" and s.get("sentence") == e.get("sentence")]
    return out


def _resource(e: dict[str, Any], ref: dict[str, str], subject: dict[str, str],
              reactions: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The FHIR resource for one mention, or None for those with no FHIR form."""
    if e.get("hypothetical"):
        return None
    if e.get("family"):
        return (_family_history(e, ref, subject)
                if e["label"] in ("PROBLEM", "SYMPTOM") and not e["negated"] else None)
    if e["label"] in ("PROBLEM", "SYMPTOM"):
        return _condition(e, ref, subject)
    if e["label"] == "MEDICATION":
        return (_allergy(e, ref, subject, reactions or []) if e.get("allergy")
                else _medication(e, ref, subject))
    if e["label"] == "LAB":
        return _observation(e, ref, subject)
    return None


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
    entities = list(doc.get("entities", []))
    reactions = _allergy_reactions(entities)
    used = {id(s) for group in reactions.values() for s in group}
    for i, e in enumerate(entities):
        r = None if id(e) in used else _resource(e, ref, subject, reactions.get(i))
        if r is None:
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
