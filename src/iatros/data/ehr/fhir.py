"""FHIR R4 Bundles (JSON) and NDJSON exports into the event format; a stay is an Encounter.

Each resource read is validated with `fhir.resources` (R4B) and the required value-set bindings of
the elements read; an invalid one is skipped and reported with its file and resource id. Patient
gives age, sex and ethnicity; Encounter the stays (site = service provider). Observation (with
components), Condition, MedicationRequest, Procedure, Immunization (`CVX//...`),
AllergyIntolerance, CarePlan (category and activity codes), MedicationAdministration (dose as the
value) and DiagnosticReport give coded events, `LOINC//...`, `SNOMED//...`, `RXNORM//...` after
their coding system. The plain text of a DocumentReference's attachments and of a
DiagnosticReport's `presentedForm` is a note: an event coded `NOTE//` + the document's type code
with the text in `text_value` (`note_texts` lists them).

Every resource is accounted for: each file's part carries a note counting, per resource type, the
resources used and those not used with the reason (billing, directory entries, not done, invalid,
...); `resource_counts` sums them over a conversion's manifest.

Each file is a part (converted once and cached); its Patients and Encounters are kept as raw
rows and linked across all files in `finish`, so a Bulk Data `$export` (one NDJSON file per
resource type) converts as well as one Bundle per patient. A resource without `id` (a
transaction Bundle entry) is identified by its `fullUrl`, and `urn:uuid:` references resolve.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source
from iatros.data.ehr.schema import EVENT_SCHEMA, Frame, SkipLog, add_readmission, events_frame, stays_frame

NAME = "fhir"
# Part of every part's name, so a part cached by an older FHIR converter is never reused (the
# cache fingerprint covers the name). 2: every resource type is read or counted as not used.
FHIR_PARSER_VERSION = 2
NOTE_PREFIX = "NOTE//"      # events whose text_value is a note's or a report's text
SYSTEMS = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED",
           "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
           "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM", "http://hl7.org/fhir/sid/icd-9-cm": "ICD9CM",
           "http://hl7.org/fhir/sid/icd-10": "ICD10", "http://hl7.org/fhir/sid/cvx": "CVX",
           "http://hl7.org/fhir/sid/ndc": "NDC", "http://www.ama-assn.org/go/cpt": "CPT",
           "http://hl7.org/fhir/us/core/CodeSystem/careplan-category": "CAREPLAN_CATEGORY"}
# Why resources of a type that gives no events are left out (every other type: "not converted").
NOT_USED = {
    **dict.fromkeys(("Claim", "ClaimResponse", "ExplanationOfBenefit", "Coverage", "Account",
                     "Invoice", "ChargeItem", "PaymentNotice", "PaymentReconciliation"), "billing"),
    **dict.fromkeys(("Organization", "Practitioner", "PractitionerRole", "Location",
                     "HealthcareService", "Endpoint", "RelatedPerson"), "directory entry"),
    **dict.fromkeys(("Provenance", "AuditEvent", "Bundle"), "record metadata"),
    "CareTeam": "care team membership", "Device": "no clinical time",
    "ImagingStudy": "imaging metadata", "SupplyDelivery": "supply logistics",
    "SupplyRequest": "supply logistics", "Medication": "medication definition",
}
STAY_EXTRA = {"encounter_class": pl.Utf8, "encounter_type": pl.Utf8}
# What a file's part holds in its stays table: one row per Patient and per Encounter, joined
# across files in `finish` (a Bulk Data export has one file per resource type).
RAW_STAYS = {"_kind": pl.Utf8, "stay_id": pl.Utf8, "subject_id": pl.Utf8,
             "start_time": pl.Datetime("us"), "end_time": pl.Datetime("us"), "site_id": pl.Utf8,
             "encounter_class": pl.Utf8, "encounter_type": pl.Utf8, "birth": pl.Datetime("us"),
             "gender": pl.Utf8, "ethnicity": pl.Utf8, "deceased": pl.Datetime("us"),
             "_where": pl.Utf8}
# Required value-set bindings (FHIR R4) of the coded elements of the resources read here.
REQUIRED_CODES: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "Patient": {"gender": ("AdministrativeGender", frozenset({"male", "female", "other", "unknown"}))},
    "Encounter": {"status": ("EncounterStatus", frozenset({
        "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
        "entered-in-error", "unknown"}))},
    "Observation": {"status": ("ObservationStatus", frozenset({
        "registered", "preliminary", "final", "amended", "corrected", "cancelled",
        "entered-in-error", "unknown"}))},
    "MedicationRequest": {
        "status": ("medicationrequest Status", frozenset({
            "active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft",
            "unknown"})),
        "intent": ("medicationRequest Intent", frozenset({
            "proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
            "instance-order", "option"}))},
    "Procedure": {"status": ("EventStatus", frozenset({
        "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
        "entered-in-error", "unknown"}))},
    "Immunization": {"status": ("ImmunizationStatusCodes", frozenset({
        "completed", "entered-in-error", "not-done"}))},
    "DiagnosticReport": {"status": ("DiagnosticReportStatus", frozenset({
        "registered", "partial", "preliminary", "final", "amended", "corrected", "appended",
        "cancelled", "entered-in-error", "unknown"}))},
    "DocumentReference": {
        "status": ("DocumentReferenceStatus", frozenset({"current", "superseded", "entered-in-error"})),
        "docStatus": ("CompositionStatus", frozenset({"preliminary", "final", "amended",
                                                      "entered-in-error"}))},
    "CarePlan": {"status": ("RequestStatus", frozenset({
        "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}))},
    "MedicationAdministration": {"status": ("MedicationAdministration Status Codes", frozenset({
        "in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped",
        "unknown"}))},
}
REQUIRED_CONCEPTS: dict[str, dict[str, tuple[str, str, frozenset[str]]]] = {
    "Condition": {
        "clinicalStatus": ("ConditionClinicalStatusCodes",
                           "http://terminology.hl7.org/CodeSystem/condition-clinical",
                           frozenset({"active", "recurrence", "relapse", "inactive", "remission",
                                      "resolved"})),
        "verificationStatus": ("ConditionVerificationStatus",
                               "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                               frozenset({"unconfirmed", "provisional", "differential", "confirmed",
                                          "refuted", "entered-in-error"}))},
    "AllergyIntolerance": {
        "clinicalStatus": ("AllergyIntoleranceClinicalStatusCodes",
                           "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                           frozenset({"active", "inactive", "resolved"})),
        "verificationStatus": ("AllergyIntoleranceVerificationStatusCodes",
                               "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                               frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"}))},
}
# (time, code, numeric value, text, unit): one event of a resource, before subject and stay
Row = tuple[datetime | None, str | None, float | None, str | None, str | None]


def _ref(reference: dict[str, Any] | None) -> str | None:
    """The id a Reference points to.

    `Patient/X`, `http://server/fhir/Patient/X/_history/2` and `urn:uuid:X` give X; a conditional
    reference `Organization?identifier=SYSTEM|X` and a logical one (`identifier` only) give the
    identifier's value X.
    """
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.strip():
        identifier = reference.get("identifier")
        value = identifier.get("value") if isinstance(identifier, dict) else None
        return value if isinstance(value, str) and value else None
    ref = ref.strip()
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return ref.rsplit(":", 1)[-1]
    if "?" in ref:
        query = parse_qs(ref.split("?", 1)[1])
        if query.get("identifier"):
            return query["identifier"][0].rsplit("|", 1)[-1]
        return ref
    pieces = [p for p in ref.split("/") if p]
    if "_history" in pieces:
        pieces = pieces[:pieces.index("_history")]
    return pieces[-1].lstrip("#") if pieces else None


def _time(value: str | None) -> datetime | None:
    """An ISO date or dateTime as naive UTC."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def event_code(concept: dict[str, Any] | None) -> str | None:
    """The event code a FHIR CodeableConcept becomes (`LOINC//8867-4`, `SNOMED//...`)."""
    return _code(concept)


def _code(concept: dict[str, Any] | None) -> str | None:
    for coding in (concept or {}).get("coding", []):
        if coding.get("code"):
            vocab = SYSTEMS.get(coding.get("system", ""), coding.get("system", "CODE").rsplit("/", 1)[-1])
            return f"{vocab}//{coding['code']}"
    text = (concept or {}).get("text")
    return f"TEXT//{text}" if text else None


def _display(concept: dict[str, Any] | None) -> str | None:
    concept = concept or {}
    for coding in concept.get("coding", []):
        if coding.get("display"):
            return coding["display"]
    return concept.get("text")


def _resources(path: Path, skips: SkipLog) -> list[tuple[str, dict[str, Any], str | None]]:
    """(where, resource, fullUrl) from a Bundle file or an NDJSON file.

    A line, file or entry that is not a JSON object is a skip naming its file and line (entry).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        skips.add(path.name, f"unreadable file: {e}")
        return []
    if path.suffix == ".ndjson":
        out = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                skips.add(where, f"malformed JSON: {e.msg}")
                continue
            if not isinstance(doc, dict):
                skips.add(where, f"not a JSON object: a {_json_type(doc)}")
                continue
            out.append((where, doc, None))
        return out
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        skips.add(f"{path.name}:{e.lineno}", f"malformed JSON: {e.msg}")
        return []
    if not isinstance(doc, dict):
        skips.add(path.name, f"not a JSON object: a {_json_type(doc)}")
        return []
    if doc.get("resourceType") != "Bundle":
        return [(path.name, doc, None)]
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        skips.add(path.name, f"malformed Bundle: entry is a {_json_type(entries)}, not a list")
        return []
    out = []
    for i, e in enumerate(entries):
        where = f"{path.name}#entry{i}"
        resource = e.get("resource") if isinstance(e, dict) else e
        if resource is None:            # e.g. a transaction-response entry: no resource
            continue
        if not isinstance(resource, dict):
            skips.add(where, f"not a JSON object: a {_json_type(resource)}")
            continue
        full_url = e.get("fullUrl") if isinstance(e, dict) else None
        out.append((where, resource, full_url if isinstance(full_url, str) else None))
    return out


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _resource_id(resource: dict[str, Any], full_url: str | None) -> str | None:
    """`id`, or for a resource without one (a transaction Bundle entry) the id its fullUrl gives."""
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return rid
    return _ref({"reference": full_url}) if full_url else None


def _bad_binding(resource: dict[str, Any]) -> str | None:
    """Why a coded element breaks its required value-set binding (None when all are valid).

    fhir.resources checks types and cardinality but not bindings; these are the required
    bindings of the elements read here, with the codes of their FHIR R4 value sets.
    """
    rtype = resource.get("resourceType")
    for element, (value_set, codes) in REQUIRED_CODES.get(rtype, {}).items():
        value = resource.get(element)
        if value is not None and value not in codes:
            return f"{rtype}.{element} {value!r} is not in the required value set {value_set}"
    for element, (value_set, system, codes) in REQUIRED_CONCEPTS.get(rtype, {}).items():
        concept = resource.get(element)
        if concept is None:
            continue
        codings = concept.get("coding") or []
        if not any(c.get("code") in codes and c.get("system") in (None, system) for c in codings):
            found = [c.get("code") for c in codings] or concept.get("text")
            return f"{rtype}.{element} {found!r} is not in the required value set {value_set}"
    return None


def _valid(where: str, resource: dict[str, Any], rid: str | None, skips: SkipLog) -> bool:
    """Validate against the FHIR R4 (R4B) model and the required bindings of the elements read
    here; an invalid resource is skipped, naming it."""
    from fhir.resources.R4B import get_fhir_model_class

    rtype = resource.get("resourceType")
    try:
        get_fhir_model_class(rtype).model_validate(resource)
    except Exception as e:  # pydantic ValidationError or unknown resource type
        first = str(e).splitlines()
        skips.add(f"{where} {rtype}/{rid}", f"invalid FHIR resource: {' '.join(first[:3])[:300]}")
        return False
    problem = _bad_binding(resource)
    if problem is not None:
        skips.add(f"{where} {rtype}/{rid}", f"invalid FHIR resource: {problem}")
        return False
    if "entered-in-error" in (resource.get("status"), _status_code(resource.get("verificationStatus"))):
        skips.add(f"{where} {rtype}/{rid}", "entered in error: the source retracted this resource")
        return False
    return True


def _status_code(concept: dict[str, Any] | None) -> str | None:
    """The first code of a status CodeableConcept (Condition's, AllergyIntolerance's)."""
    for coding in (concept or {}).get("coding") or []:
        if coding.get("code"):
            return coding["code"]
    return None


@cache
def _known_type(rtype: str) -> bool:
    """Whether `rtype` names a concrete FHIR R4 (R4B) resource type."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, KeyError, AttributeError):
        return False
    return issubclass(model, Resource) and rtype not in ("Resource", "DomainResource")


def _type_label(rtype: Any) -> str:
    """How a resource's type is counted: its name, or a placeholder for a missing or odd one."""
    if rtype is None:
        return "<missing>"
    return rtype if isinstance(rtype, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rtype) else "<invalid>"


def _ethnicity(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension", []):
        if ext.get("url", "").endswith("us-core-race"):
            for sub in ext.get("extension", []):
                if sub.get("url") == "text":
                    return sub.get("valueString")
    return None


def _value(part: dict[str, Any]) -> tuple[float | None, str | None, str | None] | None:
    """(number, unit, text) of an Observation's (or component's) value[x]; None without one."""
    q = part.get("valueQuantity")
    if q is not None and q.get("value") is not None:
        return float(q["value"]), q.get("unit") or q.get("code"), None
    if part.get("valueInteger") is not None:
        return float(part["valueInteger"]), None, None
    if part.get("valueBoolean") is not None:
        return float(bool(part["valueBoolean"])), None, None
    if part.get("valueCodeableConcept"):
        return None, None, _display(part["valueCodeableConcept"])
    for key in ("valueString", "valueDateTime", "valueTime"):
        if part.get(key) is not None:
            return None, None, str(part[key])
    return None


def _observation_events(r: dict[str, Any]) -> list[tuple[str, float | None, str | None, str | None]]:
    """(code, value, unit, text) of an Observation and of each of its components.

    An Observation without a value is an event of its own (its code, no value) unless it is a
    panel whose components carry the values.
    """
    out = []
    for part in [r, *r.get("component", [])]:
        code = _code(part.get("code"))
        if code is None:
            continue
        value = _value(part)
        if value is not None:
            out.append((code, *value))   # (NaN and Infinity fail validation already)
        elif part is r and not r.get("component"):
            out.append((code, None, None, None))
    return out


def _coded(concept: dict[str, Any] | None, when: datetime | None) -> list[Row]:
    """One code event: the concept's code, with its display as text."""
    return [(when, _code(concept), None, _display(concept), None)]


def _charset(content_type: str | None) -> str:
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else "utf-8"


def _attachment_text(attachment: dict[str, Any]) -> str | None:
    """The text of an inline plain-text attachment; None for another kind (a PDF, a URL only).

    Raises ValueError when the data is not base64 or not text in its declared charset (UTF-8
    when none is declared).
    """
    data, content_type = attachment.get("data"), attachment.get("contentType")
    if not data or (content_type and content_type.split(";")[0].strip().lower() != "text/plain"):
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64 ({e})") from e
    charset = _charset(content_type)
    try:
        text = raw.decode(charset)
    except LookupError as e:
        raise ValueError(f"unknown charset {charset!r}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"not {charset} text ({e.reason} at byte {e.start})") from e
    return text if text.strip() else None


def _texts(attachments: list[tuple[str, dict[str, Any]]],
           skip: Callable[[str], None]) -> tuple[list[str], int]:
    """The plain texts of (element path, attachment) pairs, and how many could not be decoded.

    An undecodable one is a skip naming the resource and the attachment; the others still count.
    """
    texts, bad = [], 0
    for element, attachment in attachments:
        try:
            text = _attachment_text(attachment)
        except ValueError as e:
            skip(f"undecodable attachment: {element} is {e}")
            bad += 1
            continue
        if text is not None:
            texts.append(text)
    return texts, bad


def _note_code(concept: dict[str, Any] | None) -> str:
    """`NOTE//` + the document type's code (`NOTE//LOINC//34117-2`), `NOTE//UNTYPED` without one."""
    return NOTE_PREFIX + (_code(concept) or "UNTYPED")


def _observation_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    when = _time(r.get("effectiveDateTime") or r.get("effectiveInstant")
                 or (r.get("effectivePeriod") or {}).get("start"))
    rows = [(when, code, value, text, unit) for code, value, unit, text in _observation_events(r)]
    return rows or "no code"


def _condition_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    return _coded(r.get("code"), _time(r.get("onsetDateTime") or r.get("recordedDate")))


def _medication_request_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    return _coded(r.get("medicationCodeableConcept"), _time(r.get("authoredOn")))


def _procedure_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    return _coded(r.get("code"), _time(r.get("performedDateTime")
                                       or (r.get("performedPeriod") or {}).get("start")))


def _immunization_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    return _coded(r.get("vaccineCode"), _time(r.get("occurrenceDateTime")))


def _allergy_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    return _coded(r.get("code"), _time(r.get("onsetDateTime") or r.get("recordedDate")))


def _care_plan_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    """One event per distinct category and activity code, at the plan's start."""
    when = _time((r.get("period") or {}).get("start") or r.get("created"))
    concepts = [*(r.get("category") or []),
                *((a.get("detail") or {}).get("code") for a in r.get("activity") or [])]
    rows = {row[1]: row for c in concepts if c for row in _coded(c, when) if row[1]}
    return list(rows.values()) or "no category or activity code"


def _administration_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    """The medication given, with the dose (`dosage.dose`) as its value and unit."""
    when = _time(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start"))
    concept = r.get("medicationCodeableConcept")
    dose = (r.get("dosage") or {}).get("dose") or {}
    if dose.get("value") is None:
        return _coded(concept, when)
    return [(when, _code(concept), float(dose["value"]), _display(concept),
             dose.get("unit") or dose.get("code"))]


def _report_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    """The report's code at its effective time, and each plain-text `presentedForm` as a note.

    A note is dated when the report was issued (its text exists from then on).
    """
    when = _time(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start")
                 or r.get("issued"))
    forms = [(f"presentedForm[{i}]", a) for i, a in enumerate(r.get("presentedForm") or [])]
    texts, _ = _texts(forms, skip)
    issued = _time(r.get("issued")) or when
    return [*_coded(r.get("code"), when),
            *((issued, _note_code(r.get("code")), None, text, None) for text in texts)]


def _document_rows(r: dict[str, Any], skip: Callable[[str], None]) -> list[Row] | str:
    """Each plain-text attachment as a note, dated by `date` (else the context period's start)."""
    when = _time(r.get("date") or ((r.get("context") or {}).get("period") or {}).get("start"))
    attachments = [(f"content[{i}].attachment", c.get("attachment") or {})
                   for i, c in enumerate(r.get("content") or [])]
    texts, bad = _texts(attachments, skip)
    rows: list[Row] = [(when, _note_code(r.get("type")), None, text, None) for text in texts]
    return rows or ("undecodable attachment" if bad else "no inline plain-text attachment")


# How each resource type that gives events is read: its rows, or why it gives none.
EVENTS: dict[str, Callable[[dict[str, Any], Callable[[str], None]], list[Row] | str]] = {
    "Observation": _observation_rows, "Condition": _condition_rows,
    "MedicationRequest": _medication_request_rows, "Procedure": _procedure_rows,
    "Immunization": _immunization_rows, "AllergyIntolerance": _allergy_rows,
    "CarePlan": _care_plan_rows, "MedicationAdministration": _administration_rows,
    "DiagnosticReport": _report_rows, "DocumentReference": _document_rows,
}
RESOURCES = ("Patient", "Encounter", *EVENTS)
# The encounter an event resource belongs to, where it is not `encounter`.
ENCOUNTER_OF: dict[str, Callable[[dict[str, Any]], Any]] = {
    "MedicationAdministration": lambda r: r.get("context"),
    "DocumentReference": lambda r: ((r.get("context") or {}).get("encounter") or [None])[0],
}


def _not_read(where: str, r: dict[str, Any], rid: str | None, skips: SkipLog) -> str | None:
    """Why a resource gives nothing (None when it is read).

    A type that is no FHIR R4 resource and an invalid resource are skips, naming the resource;
    a known type this converter does not read, and a resource saying it did not happen (not
    done, refuted), are counted as not used.
    """
    rtype = r.get("resourceType")
    if not isinstance(rtype, str) or not _known_type(rtype):
        skips.add(f"{where} {rtype}/{rid}", f"unknown resource type: {rtype!r} is not a FHIR R4 resource")
        return "unknown resource type"
    if rtype not in RESOURCES:
        return NOT_USED.get(rtype, "not converted")
    if not _valid(where, r, rid, skips):
        return skips.items[-1].reason.split(":")[0]     # the kind of skip _valid just recorded
    if r.get("status") == "not-done":
        return "not done"
    if _status_code(r.get("verificationStatus")) == "refuted":
        return "refuted"
    return None


def _raw_row(rtype: str, r: dict[str, Any], rid: str, subject: str | None, where: str) -> dict[str, Any]:
    """A Patient's or an Encounter's row of `RAW_STAYS`."""
    if rtype == "Patient":
        return {"_kind": "Patient", "stay_id": f"Patient/{rid} {where}", "subject_id": rid,
                "birth": _time(r.get("birthDate")), "gender": r.get("gender"),
                "ethnicity": _ethnicity(r), "deceased": _time(r.get("deceasedDateTime")),
                "_where": where}
    period = r.get("period") or {}
    return {"_kind": "Encounter", "subject_id": subject, "stay_id": rid,
            "start_time": _time(period.get("start")),
            "end_time": _time(period.get("end") or period.get("start")),
            "site_id": _ref(r.get("serviceProvider")),
            "encounter_class": (r.get("class") or {}).get("code"),
            "encounter_type": _display((r.get("type") or [None])[0]), "_where": where}


class _Event(NamedTuple):
    """An event row (the columns of `EVENT_SCHEMA`) and the index of the resource it came from."""

    resource: int
    subject_id: str | None
    stay_id: str | None
    time: datetime | None
    code: str | None
    numeric_value: float | None
    text_value: str | None
    unit: str | None


def _is_note(e: _Event) -> bool:
    """A note event: its code starts with `NOTE_PREFIX`."""
    return bool(e.code) and e.code.startswith(NOTE_PREFIX)


def _drop_repeated_notes(events: list[_Event], types: list[str]) -> tuple[list[_Event], int]:
    """Keep one of the note events with the same subject, stay, time, code and text.

    Synthea (and US Core) put a note's text both in a DocumentReference and in its
    DiagnosticReport's `presentedForm`; the DocumentReference's copy is kept.
    """
    keep: dict[tuple[Any, ...], int] = {}       # the note's key -> index of the copy kept
    for i, e in enumerate(events):
        if not _is_note(e):
            continue
        key = (e.subject_id, e.stay_id, e.time, e.code, e.text_value)
        first = keep.setdefault(key, i)
        if types[events[first].resource] != "DocumentReference" and types[e.resource] == "DocumentReference":
            keep[key] = i
    kept = set(keep.values())
    out = [e for i, e in enumerate(events) if not _is_note(e) or i in kept]
    return out, len(events) - len(out)


def _timed(events: list[_Event], file: str, skips: SkipLog) -> list[_Event]:
    """The events with a time and a code; each other one is a skip."""
    for e in events:
        if e.time is None or e.code is None:
            skips.add(f"{file} patient {e.subject_id}", f"event without time or code: {e.code}")
    return [e for e in events if e.time is not None and e.code is not None]


class _Reader:
    """Reads one file's resources: event rows, raw Patient/Encounter rows, and why each
    resource left out is not used."""

    def __init__(self, path: Path, skips: SkipLog) -> None:
        self.skips = skips
        self.resources = [(where, r, _resource_id(r, full_url), full_url)
                          for where, r, full_url in _resources(path, skips)]
        self.types = [_type_label(r.get("resourceType")) for _, r, _, _ in self.resources]
        # inside a Bundle, a reference to an entry's fullUrl means that entry's resource
        self.aliases = {}
        for _, _r, rid, full_url in self.resources:
            key = _ref({"reference": full_url}) if full_url else None
            if rid and key and key != rid:
                self.aliases[key] = rid
        self.why: dict[int, str] = {}
        self.events: list[_Event] = []
        self.raw: list[dict[str, Any]] = []
        self.seen: dict[tuple[str, str], str] = {}

    def ref(self, reference: dict[str, Any] | None) -> str | None:
        """The id a reference names, an entry's fullUrl resolved to its resource's id."""
        target = _ref(reference)
        return self.aliases.get(target, target) if target is not None else None

    def read(self) -> None:
        """Read every resource, noting in `why` each one that gives nothing and why."""
        for i, (where, r, rid, _) in enumerate(self.resources):
            reason = _not_read(where, r, rid, self.skips)
            if reason is None and r["resourceType"] in ("Patient", "Encounter"):
                reason = self.stay_row(where, r, rid)
            elif reason is None:
                reason = self.event_rows(i, where, r, rid)
            if reason is not None:
                self.why[i] = reason

    def stay_row(self, where: str, r: dict[str, Any], rid: str | None) -> str | None:
        """Keep a Patient's or an Encounter's raw row; why not, when it has no id or is a repeat."""
        rtype = r["resourceType"]
        if rid is None:
            self.skips.add(f"{where} {rtype}/None", "resource without id or fullUrl")
            return "resource without id or fullUrl"
        if (rtype, rid) in self.seen:
            first = self.seen[rtype, rid]
            self.skips.add(f"{where} {rtype}/{rid}", f"duplicate resource: already in {first}")
            return "duplicate resource"
        self.seen[rtype, rid] = where
        self.raw.append(_raw_row(rtype, r, rid, self.ref(r.get("subject")), where))
        return None

    def event_rows(self, i: int, where: str, r: dict[str, Any], rid: str | None) -> str | None:
        """Add an event resource's rows; why it gives none."""
        rtype = r["resourceType"]
        subject = self.ref(r.get("subject") or r.get("patient"))
        stay = self.ref(ENCOUNTER_OF.get(rtype, lambda r: r.get("encounter"))(r))
        got = EVENTS[rtype](r, lambda reason: self.skips.add(f"{where} {rtype}/{rid}", reason))
        if isinstance(got, str):
            return got
        self.events.extend(_Event(i, subject, stay, *row) for row in got)
        return None


def convert_file(path: Path) -> PartResult:
    """One file's events, its Patients and Encounters as raw rows (`RAW_STAYS`), and a note
    counting its resources per type, used and not used (with why).

    References are resolved to ids here (a `urn:uuid:` fullUrl names a resource inside its
    Bundle only); patients and encounters are linked across files in `finish`.
    """
    skips = SkipLog()
    reader = _Reader(path, skips)
    reader.read()
    unique, repeated = _drop_repeated_notes(reader.events, reader.types)
    events = _timed(unique, path.name, skips)
    for gone, reason in ((unique, "repeated note"), (events, "event without time or code")):
        kept = {e.resource for e in gone}
        reader.why.update({e.resource: reason for e in reader.events
                           if e.resource not in kept and e.resource not in reader.why})
    frame = events_frame({k: [getattr(e, k) for e in events] for k in EVENT_SCHEMA})
    stays = pl.DataFrame([{k: r.get(k) for k in RAW_STAYS} for r in reader.raw], schema=RAW_STAYS,
                         orient="row")
    notes = [_counts_note(path.name, reader.types, reader.why)]
    if repeated:
        notes.append(f"{path.name}: {repeated} repeated note text(s) (same patient, stay, time, type "
                     "and text, as a DiagnosticReport and its DocumentReference give) kept once")
    return PartResult(frame, stays, skips, notes)


COUNTS_NOTE = re.compile(
    r"^FHIR resources in (?P<file>.*): used (?P<used>[^;]*); not used (?P<not_used>[^;]*)$")


def _counts_note(file: str, types: list[str], why: dict[int, str]) -> str:
    """`FHIR resources in FILE: used Observation 343, ...; not used Claim 56 (billing), ...`."""
    used = Counter(t for i, t in enumerate(types) if i not in why)
    not_used = Counter((types[i], reason) for i, reason in why.items())
    used_text = ", ".join(f"{t} {n}" for t, n in sorted(used.items())) or "none"
    not_used_text = ", ".join(f"{t} {n} ({reason})" for (t, reason), n in sorted(not_used.items())) or "none"
    return f"FHIR resources in {file}: used {used_text}; not used {not_used_text}"


def resource_counts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resources per type over every file of a conversion: `used`, `not_used`, and
    `not_used_why` ({type: {reason: n}}), read from the parts' notes in `manifest["notes"]`."""
    used: Counter[str] = Counter()
    not_used: Counter[str] = Counter()
    why: dict[str, Counter[str]] = {}
    for note in manifest.get("notes", []):
        match = COUNTS_NOTE.match(note)
        if match is None:
            continue
        for item in _items(match["used"]):
            name, n = item.rsplit(" ", 1)
            used[name] += int(n)
        for item in _items(match["not_used"]):
            head, reason = item[:-1].split(" (", 1)
            name, n = head.rsplit(" ", 1)
            not_used[name] += int(n)
            why.setdefault(name, Counter())[reason] += int(n)
    return {"used": dict(sorted(used.items())), "not_used": dict(sorted(not_used.items())),
            "not_used_why": {t: dict(c) for t, c in sorted(why.items())}}


def _items(text: str) -> list[str]:
    return [] if text == "none" else text.split(", ")


def note_texts(events: pl.DataFrame) -> Iterator[tuple[str, str | None, datetime, str, str]]:
    """(subject_id, stay_id, time, code, text) of every note event (code `NOTE//...`), for the
    NLP pipeline."""
    notes = events.filter(pl.col("code").str.starts_with(NOTE_PREFIX) & pl.col("text_value").is_not_null())
    yield from notes.select("subject_id", "stay_id", "time", "code", "text_value").iter_rows()


def finish(events: Frame, stays: pl.DataFrame, skips: SkipLog) -> tuple[Frame, pl.DataFrame]:
    """Link every file's Encounters to the Patients of all files: the stays, with outcomes."""
    patients: dict[str, dict[str, Any]] = {}
    for p in stays.filter(pl.col("_kind") == "Patient").iter_rows(named=True):
        first = patients.setdefault(p["subject_id"], p)
        if first is not p and any(first[k] != p[k] for k in ("birth", "gender", "deceased")):
            skips.add(f"{p['_where']} Patient/{p['subject_id']}",
                      f"conflicting duplicate Patient: kept the one in {first['_where']}")
    rows = []
    for enc in stays.filter(pl.col("_kind") == "Encounter").iter_rows(named=True):
        patient = patients.get(enc["subject_id"] or "")
        if patient is None or enc["start_time"] is None:
            skips.add(f"{enc['_where']} Encounter/{enc['stay_id']}",
                      "encounter without a known patient or start time")
            continue
        birth, deceased = patient["birth"], patient["deceased"]
        start, end = enc["start_time"], enc["end_time"]
        died = int(deceased is not None and start <= deceased <= end + timedelta(days=1))
        rows.append({**enc, "age": (start - birth).days / 365.25 if birth else None,
                     "sex": {"female": "F", "male": "M"}.get(patient["gender"] or ""),
                     "ethnicity": patient["ethnicity"], "died": died,
                     "death_time": deceased if died else None,
                     "los_days": (end - start).total_seconds() / 86400})
    return events, add_readmission(stays_frame(rows, STAY_EXTRA), days=30)


def parts(root: Path) -> list[Part]:
    """One part per .json / .ndjson file, named after the file and `FHIR_PARSER_VERSION` (so a
    part an older FHIR converter cached has another name, and is converted again)."""
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
    return [Part(f"{p.stem[:60]}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}-v{FHIR_PARSER_VERSION}",
                 (p,), lambda p=p: convert_file(p)) for p in files]


def summarize(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `resources`: every resource type of the input, used or not (and why)."""
    return {"resources": resource_counts(manifest)}


SOURCE = Source(NAME, "FHIR R4 Bundles (.json) or NDJSON exports (.ndjson)", parts, finish,
                summarize=summarize)
