"""Per-patient problem and medication lists across several notes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def problem_and_medication_lists(docs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Aggregate extractions [(patient_id, extracted doc), ...] into, per patient:
    problems (affirmed, not family or hypothetical; `status` active, or historical when only
    ever mentioned as history; notes that mention it; times negated) and medications (latest
    dose / route / frequency seen, notes)."""
    patients: dict[str, dict[str, Any]] = {}
    for patient, doc in docs:
        p = patients.setdefault(str(patient), {"notes": [], "problems": {}, "medications": {}})
        source = str(doc.get("source", len(p["notes"])))
        p["notes"].append(source)
        for e in doc.get("entities", []):
            if e.get("family") or e.get("hypothetical"):
                continue
            key = e["text"].lower()
            if e["label"] in ("PROBLEM", "SYMPTOM"):
                item = p["problems"].setdefault(key, {"name": key, "label": e["label"],
                                                      "notes": [], "affirmed": 0, "negated": 0,
                                                      "historical_only": True})
                if e.get("negated"):
                    item["negated"] += 1
                    continue
                item["affirmed"] += 1
                item["historical_only"] &= bool(e.get("historical"))
                if source not in item["notes"]:
                    item["notes"].append(source)
            elif e["label"] == "MEDICATION" and not e.get("negated") and not e.get("allergy"):
                item = p["medications"].setdefault(key, {"name": key, "notes": []})
                for field in ("dose", "route", "frequency"):
                    if e.get(field):
                        item[field] = e[field]
                if source not in item["notes"]:
                    item["notes"].append(source)
    out = {}
    for patient, p in patients.items():
        problems = []
        for item in p["problems"].values():
            if not item["affirmed"]:
                continue
            status = "historical" if item.pop("historical_only") else "active"
            problems.append({**item, "status": status})
        problems.sort(key=lambda x: (-len(x["notes"]), x["name"]))
        meds = sorted(p["medications"].values(), key=lambda x: (-len(x["notes"]), x["name"]))
        out[patient] = {"notes": p["notes"], "problems": problems, "medications": meds}
    return out
