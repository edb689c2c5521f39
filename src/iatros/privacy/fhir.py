"""FHIR de-identification toward HIPAA Safe Harbor, keyed like `iatros nlp deid`:
- every resource id becomes a keyed pseudonym, and every reference (`Type/id`, `urn:uuid:id`,
  `fullUrl`) is rewritten to match, so the bundle stays linked;
- identifiers keep their system and get a keyed pseudonym as value;
- names, telecom, photos, contacts and links of patients, practitioners, related persons,
  organisations and locations are removed, as is the display text of every reference ("Dr. ...",
  a hospital); addresses keep only state and country (also inside extensions such as birth
  place); a mother's maiden name is removed;
- every full date, dateTime and instant moves by the patient's day shift (the same as the notes'
  of that patient under that key); year-only and year-month values are kept (Safe Harbor allows
  years);
- narrative (`text`) is dropped; notes (`note[].text`), `valueString` and plain-text attachments
  (`content[].attachment.data`, `presentedForm[].data`) go through the caller's text
  de-identifier.
The result is validated against FHIR R4 (fhir.resources' R4B models) before it is written."""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T.*)?$")
REMOVED = ("name", "telecom", "photo", "contact", "link")
PERSONS = {"Patient", "Practitioner", "RelatedPerson", "Person", "PractitionerRole", "Organization",
           "Location"}  # their names, telecom and contacts go (places keep state and country)
NAME_EXTENSIONS = ("mothersMaidenName",)
TEXT_FIELDS = ("valueString",)


class FhirDeidentifier:
    """De-identifies resources of one patient at a time (ids and shifts keyed by the caller)."""

    def __init__(self, pseudonym: Callable[[str], str], shift_days: Callable[[str], int],
                 deid_text: Callable[[str, str], str]) -> None:
        self.pseudonym = pseudonym
        self.shift_days = shift_days
        self.deid_text = deid_text

    def bundle(self, bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(de-identified Bundle, report of counts); the patient is the bundle's Patient."""
        resources = [e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)]
        patient = next((str(r.get("id")) for r in resources
                        if isinstance(r, dict) and r.get("resourceType") == "Patient"), "unknown")
        counts: Counter[str] = Counter()
        ids = {str(r["id"]): self.pseudonym(f"{r.get('resourceType')}/{r['id']}")
               for r in resources if isinstance(r, dict) and r.get("id")}
        out = {k: v for k, v in bundle.items() if k not in ("entry", "id", "identifier")}
        entries = []
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            clean = self.resource(resource, patient, ids, counts)
            new_entry = {k: v for k, v in entry.items() if k not in ("resource", "fullUrl")}
            if "fullUrl" in entry:
                new_entry["fullUrl"] = _rewrite_reference(str(entry["fullUrl"]), ids)
            new_entry["resource"] = clean
            if isinstance(new_entry.get("request"), dict) and "url" in new_entry["request"]:
                new_entry["request"] = {**new_entry["request"],
                                        "url": _rewrite_reference(str(new_entry["request"]["url"]), ids)}
            entries.append(new_entry)
        out["entry"] = entries
        return out, {"patient_pseudonym": self.pseudonym(f"Patient/{patient}")[:16],
                     "resources": len(entries), "counts": dict(sorted(counts.items()))}

    def resource(self, resource: dict[str, Any], patient: str, ids: dict[str, str],
                 counts: Counter[str]) -> dict[str, Any]:
        kind = str(resource.get("resourceType"))
        shift = self.shift_days(patient)
        clean = _walk(resource, lambda key, value, parent: self._value(key, value, parent, shift, patient,
                                                                       ids, counts))
        if resource.get("id"):
            clean["id"] = ids[str(resource["id"])]
            counts["ids pseudonymized"] += 1
        clean.pop("text", None)
        if kind in PERSONS:
            for field in REMOVED:
                if clean.pop(field, None) is not None:
                    counts[f"{field} removed"] += 1
        return clean

    def _value(self, key: str, value: Any, parent: dict[str, Any] | None, shift: int, patient: str,
               ids: dict[str, str], counts: Counter[str]) -> Any:
        if key == "display" and parent is not None and "reference" in parent:
            counts["reference displays removed"] += 1  # "Dr. ...", a hospital's name
            return None
        if key == "reference" and isinstance(value, str):
            counts["references rewritten"] += 1
            return _rewrite_reference(value, ids)
        if key == "identifier":
            items = value if isinstance(value, list) else [value]
            counts["identifiers pseudonymized"] += len(items)
            new = [{k: v for k, v in (i or {}).items() if k in ("system", "use", "type")}
                   | {"value": self.pseudonym(f"identifier/{(i or {}).get('system', '')}/"
                                              f"{(i or {}).get('value', '')}")[:20]} for i in items]
            return new if isinstance(value, list) else new[0]
        if key in ("address", "valueAddress"):
            items = value if isinstance(value, list) else [value]
            counts["addresses reduced to state"] += len(items)
            kept = [{k: v for k, v in (a or {}).items() if k in ("state", "country", "use")}
                    for a in items]
            return kept if isinstance(value, list) else kept[0]
        if key in ("valueHumanName",) or (key == "valueString" and parent is not None and
                                         any(n in str(parent.get("url", "")) for n in NAME_EXTENSIONS)):
            counts["names removed"] += 1
            return None
        if isinstance(value, str) and FULL_DATE.match(value):
            counts["dates shifted"] += 1
            return _shift(value, shift)
        if key == "note" and isinstance(value, list):  # Annotations: free text about the patient
            counts["notes de-identified"] += len(value)
            return [{k: (self.deid_text(v, patient) if k == "text" and isinstance(v, str) else v)
                     for k, v in (n or {}).items() if not k.startswith("author")} for n in value]
        if key in TEXT_FIELDS and isinstance(value, str) and len(value) > 3:
            counts["text values de-identified"] += 1
            return self.deid_text(value, patient)
        if key == "data" and isinstance(value, str) and parent is not None and \
                str(parent.get("contentType", "")).startswith("text/"):
            try:
                text = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                counts["attachments removed (undecodable)"] += 1
                return None
            counts["attachments de-identified"] += 1
            return base64.b64encode(self.deid_text(text, patient).encode("utf-8")).decode("ascii")
        return value


def _walk(value: Any, fn: Callable[[str, Any, dict[str, Any] | None], Any],
          key: str = "", parent: dict[str, Any] | None = None) -> Any:
    """A copy of a JSON value with `fn(key, value, parent)` applied to every member, children
    first for containers it leaves alone."""
    handled = fn(key, value, parent) if key else value
    if handled is not value:
        return handled
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            new = _walk(v, fn, k, value)
            if new is not None:
                out[k] = new
        return out
    if isinstance(value, list):
        return [x for x in (_walk(v, fn, key, parent) if isinstance(v, (dict, list)) else
                            fn(key, v, parent) for v in value) if x is not None]
    return value


def _rewrite_reference(reference: str, ids: dict[str, str]) -> str:
    """`Type/id`, `urn:uuid:id` or a full URL ending in `/Type/id` with the id's pseudonym."""
    for sep in ("urn:uuid:", "/"):
        head, found, tail = reference.rpartition(sep)
        if found and tail in ids:
            return f"{head}{found}{ids[tail]}"
    return reference


def _shift(value: str, days: int) -> str:
    match = FULL_DATE.match(value)
    assert match is not None
    day = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
    return day.isoformat() + (match[4] or "")

