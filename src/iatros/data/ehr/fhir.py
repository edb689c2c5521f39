"""FHIR R4 Bundles (JSON) and NDJSON exports into the event format; a stay is an Encounter.

Each resource is validated with `fhir.resources`; an invalid one is skipped and reported with
its file and resource id. Patient gives age, sex and ethnicity; Encounter the stays (site =
service provider); Observation (with components), Condition, MedicationRequest and Procedure
the events, coded `LOINC//...`, `SNOMED//...`, `RXNORM//...` after their coding system.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source
from iatros.data.ehr.schema import SkipLog, add_readmission, events_frame, stays_frame

NAME = "fhir"
RESOURCES = ("Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Procedure")
SYSTEMS = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED",
           "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
           "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM", "http://hl7.org/fhir/sid/icd-9-cm": "ICD9CM"}
STAY_EXTRA = {"encounter_class": pl.Utf8, "encounter_type": pl.Utf8}


def _ref(reference: dict[str, Any] | None) -> str | None:
    """`urn:uuid:X` or `Patient/X` -> X."""
    if not reference or not reference.get("reference"):
        return None
    return reference["reference"].split(":")[-1].split("/")[-1]


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


def _resources(path: Path, skips: SkipLog) -> list[tuple[str, dict[str, Any]]]:
    """(where, resource) pairs from a Bundle file or an NDJSON file."""
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
            try:
                out.append((f"{path.name}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                skips.add(f"{path.name}:{lineno}", f"malformed JSON: {e.msg}")
        return out
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        skips.add(f"{path.name}:{e.lineno}", f"malformed JSON: {e.msg}")
        return []
    if doc.get("resourceType") != "Bundle":
        return [(path.name, doc)]
    return [(f"{path.name}#entry{i}", e.get("resource") or {})
            for i, e in enumerate(doc.get("entry") or [])]


def _valid(where: str, resource: dict[str, Any], skips: SkipLog) -> bool:
    """Validate against the FHIR R4 (R4B) model; an invalid resource is skipped, naming it."""
    from fhir.resources.R4B import get_fhir_model_class

    rtype = resource.get("resourceType")
    try:
        get_fhir_model_class(rtype).model_validate(resource)
    except Exception as e:  # pydantic ValidationError or unknown resource type
        first = str(e).splitlines()
        skips.add(f"{where} {rtype}/{resource.get('id')}",
                  f"invalid FHIR resource: {' '.join(first[:3])[:300]}")
        return False
    return True


def _ethnicity(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension", []):
        if ext.get("url", "").endswith("us-core-race"):
            for sub in ext.get("extension", []):
                if sub.get("url") == "text":
                    return sub.get("valueString")
    return None


def _observation_events(r: dict[str, Any]) -> list[tuple[str, float | None, str | None, str | None]]:
    """(code, value, unit, text) of an Observation and of each of its components."""
    out = []
    for part in [r, *r.get("component", [])]:
        code = _code(part.get("code"))
        if code is None:
            continue
        q = part.get("valueQuantity")
        if q is not None and q.get("value") is not None:
            out.append((code, float(q["value"]), q.get("unit"), None))
        elif part.get("valueCodeableConcept"):
            out.append((code, None, None, _display(part["valueCodeableConcept"])))
        elif part is r and not r.get("component"):
            out.append((code, None, None, part.get("valueString")))
    return out


def convert_file(path: Path) -> PartResult:
    skips = SkipLog()
    events: dict[str, list[Any]] = {k: [] for k in ("subject_id", "stay_id", "time", "code",
                                                    "numeric_value", "text_value", "unit")}
    patients: dict[str, dict[str, Any]] = {}
    encounters = []

    def add(subject: str | None, stay: str | None, when: datetime | None, code: str | None,
            value: float | None = None, text: str | None = None, unit: str | None = None) -> None:
        for key, v in zip(events, (subject, stay, when, code, value, text, unit), strict=True):
            events[key].append(v)

    for where, r in _resources(path, skips):
        rtype = r.get("resourceType")
        if rtype not in RESOURCES:
            continue
        if not _valid(where, r, skips):
            continue
        subject = _ref(r.get("subject") or r.get("patient"))
        stay = _ref(r.get("encounter"))
        if rtype == "Patient":
            patients[r["id"]] = {"birth": _time(r.get("birthDate")), "sex": r.get("gender"),
                                 "ethnicity": _ethnicity(r),
                                 "deceased": _time(r.get("deceasedDateTime"))}
        elif rtype == "Encounter":
            period = r.get("period") or {}
            encounters.append({"subject_id": subject, "stay_id": r["id"],
                               "start_time": _time(period.get("start")),
                               "end_time": _time(period.get("end") or period.get("start")),
                               "site_id": _ref(r.get("serviceProvider")),
                               "encounter_class": (r.get("class") or {}).get("code"),
                               "encounter_type": _display((r.get("type") or [None])[0]),
                               "_where": where})
        elif rtype == "Observation":
            when = _time(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start"))
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
    stays = []
    for enc in encounters:
        patient = patients.get(enc["subject_id"] or "")
        if patient is None or enc["start_time"] is None:
            skips.add(f"{enc['_where']} Encounter/{enc['stay_id']}",
                      "encounter without a known patient or start time")
            continue
        birth, deceased = patient["birth"], patient["deceased"]
        start, end = enc["start_time"], enc["end_time"]
        died = int(deceased is not None and start <= deceased <= end + timedelta(days=1))
        stays.append({**enc, "age": (start - birth).days / 365.25 if birth else None,
                      "sex": {"female": "F", "male": "M"}.get(patient["sex"] or ""),
                      "ethnicity": patient["ethnicity"], "died": died,
                      "death_time": deceased if died else None,
                      "los_days": (end - start).total_seconds() / 86400})
    frame = events_frame(events)
    no_time = frame.filter(pl.col("time").is_null() | pl.col("code").is_null())
    for row in no_time.iter_rows(named=True):
        skips.add(f"{path.name} patient {row['subject_id']}", f"event without time or code: {row['code']}")
    return PartResult(frame.filter(pl.col("time").is_not_null() & pl.col("code").is_not_null()),
                      stays_frame(stays, STAY_EXTRA), skips)


def finish(events: pl.DataFrame, stays: pl.DataFrame,
           skips: SkipLog) -> tuple[pl.DataFrame, pl.DataFrame]:
    return events, add_readmission(stays, days=30)


def parts(root: Path) -> list[Part]:
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
    return [Part(f"{p.stem[:60]}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}", (p,),
                 lambda p=p: convert_file(p)) for p in files]


SOURCE = Source(NAME, "FHIR R4 Bundles (.json) or NDJSON exports (.ndjson)", parts, finish)
