"""FHIR R4 Bundles (JSON) and NDJSON exports into the event format; a stay is an Encounter.

Each resource is validated with `fhir.resources`; an invalid one is skipped and reported with
its file and resource id. Patient gives age, sex and ethnicity; Encounter the stays (site =
service provider); Observation (with components), Condition, MedicationRequest and Procedure
the events, coded `LOINC//...`, `SNOMED//...`, `RXNORM//...` after their coding system.

Each file is a part (converted once and cached); its Patients and Encounters are kept as raw
rows and linked across all files in `finish`, so a Bulk Data `$export` (one NDJSON file per
resource type) converts as well as one Bundle per patient. A resource without `id` (a
transaction Bundle entry) is identified by its `fullUrl`, and `urn:uuid:` references resolve.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source
from iatros.data.ehr.schema import SkipLog, add_readmission, events_frame, stays_frame

NAME = "fhir"
RESOURCES = ("Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Procedure")
SYSTEMS = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED",
           "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
           "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM", "http://hl7.org/fhir/sid/icd-9-cm": "ICD9CM"}
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
}


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
    if resource.get("status") == "entered-in-error":
        skips.add(f"{where} {rtype}/{rid}", "entered in error: the source retracted this resource")
        return False
    return True


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


def convert_file(path: Path) -> PartResult:
    """One file's events, and its Patients and Encounters as raw rows (`RAW_STAYS`).

    References are resolved to ids here (a `urn:uuid:` fullUrl names a resource inside its
    Bundle only); patients and encounters are linked across files in `finish`.
    """
    skips = SkipLog()
    events: dict[str, list[Any]] = {k: [] for k in ("subject_id", "stay_id", "time", "code",
                                                    "numeric_value", "text_value", "unit")}
    raw: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}

    def add(subject: str | None, stay: str | None, when: datetime | None, code: str | None,
            value: float | None = None, text: str | None = None, unit: str | None = None) -> None:
        for key, v in zip(events, (subject, stay, when, code, value, text, unit), strict=True):
            events[key].append(v)

    resources = [(where, r, _resource_id(r, full_url), full_url)
                 for where, r, full_url in _resources(path, skips)]
    # inside a Bundle, a reference to an entry's fullUrl means that entry's resource
    aliases = {}
    for _, _r, rid, full_url in resources:
        key = _ref({"reference": full_url}) if full_url else None
        if rid and key and key != rid:
            aliases[key] = rid

    def ref(reference: dict[str, Any] | None) -> str | None:
        target = _ref(reference)
        return aliases.get(target, target) if target is not None else None

    for where, r, rid, _ in resources:
        rtype = r.get("resourceType")
        if rtype not in RESOURCES:
            continue
        if not _valid(where, r, rid, skips):
            continue
        if rtype in ("Patient", "Encounter"):
            if rid is None:
                skips.add(f"{where} {rtype}/None", "resource without id or fullUrl")
                continue
            if (rtype, rid) in seen:
                skips.add(f"{where} {rtype}/{rid}", f"duplicate resource: already in {seen[rtype, rid]}")
                continue
            seen[rtype, rid] = where
        subject = ref(r.get("subject") or r.get("patient"))
        stay = ref(r.get("encounter"))
        if rtype == "Patient":
            raw.append({"_kind": "Patient", "stay_id": f"Patient/{rid} {where}", "subject_id": rid,
                        "birth": _time(r.get("birthDate")), "gender": r.get("gender"),
                        "ethnicity": _ethnicity(r), "deceased": _time(r.get("deceasedDateTime")),
                        "_where": where})
        elif rtype == "Encounter":
            period = r.get("period") or {}
            raw.append({"_kind": "Encounter", "subject_id": subject, "stay_id": rid,
                        "start_time": _time(period.get("start")),
                        "end_time": _time(period.get("end") or period.get("start")),
                        "site_id": _ref(r.get("serviceProvider")),
                        "encounter_class": (r.get("class") or {}).get("code"),
                        "encounter_type": _display((r.get("type") or [None])[0]),
                        "_where": where})
        elif rtype == "Observation":
            when = _time(r.get("effectiveDateTime") or r.get("effectiveInstant")
                         or (r.get("effectivePeriod") or {}).get("start"))
            for code, value, unit, text in _observation_events(r):
                add(subject, stay, when, code, value, text, unit)
        elif rtype == "Condition":
            when = _time(r.get("onsetDateTime") or r.get("recordedDate"))
            add(subject, stay, when, _code(r.get("code")), text=_display(r.get("code")))
        elif rtype == "MedicationRequest":
            add(subject, stay, _time(r.get("authoredOn")),
                _code(r.get("medicationCodeableConcept")),
                text=_display(r.get("medicationCodeableConcept")))
        elif rtype == "Procedure":
            when = _time(r.get("performedDateTime")
                         or (r.get("performedPeriod") or {}).get("start"))
            add(subject, stay, when, _code(r.get("code")), text=_display(r.get("code")))
    frame = events_frame(events)
    no_time = frame.filter(pl.col("time").is_null() | pl.col("code").is_null())
    for row in no_time.iter_rows(named=True):
        skips.add(f"{path.name} patient {row['subject_id']}", f"event without time or code: {row['code']}")
    stays = pl.DataFrame([{k: r.get(k) for k in RAW_STAYS} for r in raw], schema=RAW_STAYS,
                         orient="row")
    return PartResult(frame.filter(pl.col("time").is_not_null() & pl.col("code").is_not_null()),
                      stays, skips)


def finish(events: pl.DataFrame, stays: pl.DataFrame,
           skips: SkipLog) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
    return [Part(f"{p.stem[:60]}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}", (p,),
                 lambda p=p: convert_file(p)) for p in files]


SOURCE = Source(NAME, "FHIR R4 Bundles (.json) or NDJSON exports (.ndjson)", parts, finish)
