"""A pharmacogenomic report as a FHIR R4 collection Bundle, in the style of the HL7 genomics
reporting guide: a genotype Observation per gene, a phenotype Observation derived from it, and
each drug's recommendation as a DetectedIssue implicating the phenotypes; validated with
fhir.resources (R4B models, as elsewhere in iatros)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

GR = "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition"
LOINC = "http://loinc.org"
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory"}]}
GENOTYPE_CODE = {"coding": [{"system": LOINC, "code": "84413-4", "display": "Genotype display name"}]}
PHENOTYPE_CODE = {"coding": [{"system": LOINC, "code": "53040-2",
                              "display": "Genetic variation's effect on drug metabolism"}]}
GENE_STUDIED = {"coding": [{"system": LOINC, "code": "48018-6", "display": "Gene studied [ID]"}]}
SEVERITY = {"abnormal": "high", "normal": "low"}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _note(texts: list[str]) -> list[dict[str, str]]:
    return [{"text": t} for t in texts]


def bundle(report: dict[str, Any], subject: str | None = None) -> dict[str, Any]:
    """The report as a validated FHIR R4 Bundle (a dict ready for json.dumps)."""
    from fhir.resources.R4B.bundle import Bundle

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    src = report["source"]
    method = {"text": f"iatros pgx; CPIC-derived tables of {src['package']} {src['version']}"}
    ref = {"reference": f"Patient/{subject}"} if subject else None
    entries: list[dict[str, Any]] = []
    phenotype_urls: dict[str, str] = {}
    for g in report["genes"]:
        gene_component = {"code": GENE_STUDIED, "valueCodeableConcept": {"text": g["gene"]}}
        geno_url = _urn()
        shown = g.get("diplotype") or " or ".join(g.get("candidates", [])[:6]) or "Indeterminate"
        geno: dict[str, Any] = {
            "resourceType": "Observation", "meta": {"profile": [f"{GR}/genotype"]},
            "status": "final" if g["status"] == "called" else "preliminary",
            "category": [CATEGORY], "code": GENOTYPE_CODE, "method": method,
            "issued": now, "component": [gene_component],
            "note": _note(g.get("reasons", []) + g.get("notes", []))}
        if g["status"] == "not covered":
            geno["dataAbsentReason"] = {"text": "; ".join(g.get("reasons", []))}
        else:
            geno["valueCodeableConcept"] = {"text": f"{g['gene']} {shown}"}
        if ref:
            geno["subject"] = ref
        entries.append({"fullUrl": geno_url, "resource": {k: v for k, v in geno.items() if v}})
        if g["status"] == "not covered" or g.get("phenotype") is None:
            continue
        phen_url = _urn()
        phen_urls_component = [gene_component]
        if g.get("activity_score") is not None:
            phen_urls_component.append({"code": {"text": "CPIC activity score"},
                                        "valueQuantity": {"value": g["activity_score"]}})
        phen: dict[str, Any] = {
            "resourceType": "Observation", "meta": {"profile": [f"{GR}/therapeutic-implication"]},
            "status": "final" if g["status"] == "called" else "preliminary",
            "category": [CATEGORY], "code": PHENOTYPE_CODE, "method": method, "issued": now,
            "valueCodeableConcept": {"text": f"{g['gene']} {g['phenotype']}"},
            "component": phen_urls_component, "derivedFrom": [{"reference": geno_url}],
            "note": _note(g.get("reasons", []))}
        if ref:
            phen["subject"] = ref
        entries.append({"fullUrl": phen_url, "resource": {k: v for k, v in phen.items() if v}})
        phenotype_urls[g["gene"]] = phen_url
    for d in report["drugs"]:
        detail = d.get("recommendation") or "; ".join(
            [f"{d['status']}"] + d.get("reasons", [])
            + [f"{k}: {v}" for k, v in d.get("dosing_inputs", {}).items()])
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue", "status": "final" if d["status"] == "recommendation"
            else "preliminary",
            "code": {"text": f"Drug-gene interaction: {d['drug']} and {', '.join(d['genes'])}"},
            "identifiedDateTime": now, "detail": detail,
            "implicated": [{"reference": phenotype_urls[g]} for g in d["genes"] if g in phenotype_urls],
            "evidence": [{"detail": [{"reference": phenotype_urls[g]}]}
                         for g in d["genes"] if g in phenotype_urls]}
        priority = (d.get("priority") or "").split("/")[0].lower()
        if priority in SEVERITY:
            issue["severity"] = SEVERITY[priority]
        if d.get("guideline"):
            issue["reference"] = d["guideline"]
        if ref:
            issue["patient"] = ref
        entries.append({"fullUrl": _urn(), "resource": {k: v for k, v in issue.items() if v}})
    data = {"resourceType": "Bundle", "type": "collection", "timestamp": now, "entry": entries}
    Bundle.model_validate(data)
    return data
