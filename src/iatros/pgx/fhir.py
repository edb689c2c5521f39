"""A pharmacogenomic report as a FHIR R4 collection Bundle, in the style of the HL7 genomics
reporting implementation guide (STU2/STU3): per gene a genotype Observation and, where there is
one, a phenotype Observation derived from it; per drug a therapeutic-implication Observation and
the recommendation as a DetectedIssue implicating them. Validated with fhir.resources (R4B
models, as elsewhere in iatros).

Codes, each checked against the guide's published profiles and examples (Pgx-geno-1001/1002,
GenotypeExample1, GenotypeExamplePharmVar, TxImp01, OverallInterpExample2 and the FSH sources):
LOINC 84413-4 "Genotype display name" (genotype), 48018-6 "Gene studied [ID]" with HGNC gene ids
(system http://www.genenames.org/geneId), 53040-2 "Genetic variation's effect on drug
metabolism", 51963-7 "Medication assessed [ID]"; the guide's own code system for
"therapeutic-implication" and "conclusion-string"; category laboratory and v2-0074 GE. Drugs
carry the RxNorm code that pypgx's cpic-table.csv gives (system
http://www.nlm.nih.gov/research/umls/rxnorm). A gene whose HGNC id could not be checked against
a published source (CYP4F2) keeps its name as text only: no code is typed unverified.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

GR = "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"
LOINC = "http://loinc.org"
HGNC = "http://www.genenames.org/geneId"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CATEGORY = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                 "code": "laboratory", "display": "Laboratory"}]},
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "GE",
                 "display": "Genetics"}]},
]
GENOTYPE_CODE = {"coding": [{"system": LOINC, "code": "84413-4", "display": "Genotype display name"}]}
GENE_STUDIED = {"coding": [{"system": LOINC, "code": "48018-6", "display": "Gene studied [ID]"}]}
METABOLISM = {"coding": [{"system": LOINC, "code": "53040-2",
                          "display": "Genetic variation's effect on drug metabolism"}]}
MEDICATION = {"coding": [{"system": LOINC, "code": "51963-7", "display": "Medication assessed [ID]"}]}
IMPLICATION_CODE = {"coding": [{"system": TBD, "code": "therapeutic-implication",
                                "display": "Therapeutic Implication"}]}
CONCLUSION = {"coding": [{"system": TBD, "code": "conclusion-string", "display": "Conclusion Text"}]}
# HGNC ids, each as the genomics-reporting guide's examples or at least two independent public
# FHIR/HGNC listings give it; genes not listed here are sent as text
HGNC_IDS = {"CYP2C19": "HGNC:2621", "CYP2C9": "HGNC:2623", "CYP2D6": "HGNC:2625",
            "HLA-B": "HGNC:4932", "VKORC1": "HGNC:23663", "TPMT": "HGNC:12014",
            "NUDT15": "HGNC:23063", "DPYD": "HGNC:3012", "SLCO1B1": "HGNC:10959",
            "CYP3A5": "HGNC:2638"}
# genes whose phenotype is a metabolizer / function status (not HLA carrier status)
NOT_METABOLISM = ("HLA-B",)
SEVERITY = {"abnormal": "high", "normal": "low"}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _note(texts: list[str]) -> list[dict[str, str]]:
    return [{"text": t} for t in texts]


def gene_concept(gene: str) -> dict[str, Any]:
    """The gene as a CodeableConcept: HGNC coded where the id is verified, text always."""
    concept: dict[str, Any] = {"text": gene}
    if gene in HGNC_IDS:
        concept["coding"] = [{"system": HGNC, "code": HGNC_IDS[gene], "display": gene}]
    return concept


def drug_concept(drug: dict[str, Any]) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": drug["drug"]}
    if drug.get("rxnorm"):
        concept["coding"] = [{"system": RXNORM, "code": drug["rxnorm"], "display": drug["drug"]}]
    return concept


def _phenotype_component(gene: str, phenotype: str) -> dict[str, Any]:
    code = METABOLISM if gene not in NOT_METABOLISM else {"text": f"{gene} carrier status"}
    return {"code": code, "valueCodeableConcept": {"text": f"{gene} {phenotype}"}}


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v}


def bundle(report: dict[str, Any], subject: str | None = None) -> dict[str, Any]:
    """The report as a validated FHIR R4 Bundle (a dict ready for json.dumps)."""
    from fhir.resources.R4B.bundle import Bundle

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    src = report["source"]
    method = {"text": f"iatros pgx; CPIC-derived tables of {src['package']} {src['version']}"}
    ref = {"reference": f"Patient/{subject}"} if subject else None
    entries: list[dict[str, Any]] = []
    genotype_urls: dict[str, str] = {}
    phenotype_urls: dict[str, str] = {}
    for g in report["genes"]:
        gene_component = {"code": GENE_STUDIED, "valueCodeableConcept": gene_concept(g["gene"])}
        geno_url = _urn()
        shown = (g.get("diplotype") or " or ".join(g.get("candidates", [])[:6])
                 or (g.get("phenotype") if g["status"] == "called" else None) or "Indeterminate")
        geno: dict[str, Any] = {
            "resourceType": "Observation", "meta": {"profile": [f"{GR}/genotype"]},
            "status": "final" if g["status"] == "called" else "preliminary",
            "category": CATEGORY, "code": GENOTYPE_CODE, "method": method,
            "issued": now, "component": [gene_component],
            "note": _note(g.get("reasons", []) + g.get("notes", []))}
        if g["status"] in ("not covered", "not tested"):
            geno["dataAbsentReason"] = {"text": "; ".join(g.get("reasons", []) + g.get("notes", []))
                                        or g["status"]}
        else:
            geno["valueCodeableConcept"] = {"text": f"{g['gene']} {shown}"}
        if ref:
            geno["subject"] = ref
        entries.append({"fullUrl": geno_url, "resource": _clean(geno)})
        genotype_urls[g["gene"]] = geno_url
        if g["status"] in ("not covered", "not tested") or g.get("phenotype") is None:
            continue
        components = [_phenotype_component(g["gene"], g["phenotype"]), gene_component]
        if g.get("activity_score") is not None:
            components.append({"code": {"text": "CPIC activity score"},
                               "valueQuantity": {"value": g["activity_score"]}})
        phen_url = _urn()
        phen: dict[str, Any] = {
            "resourceType": "Observation", "meta": {"profile": [f"{GR}/therapeutic-implication"]},
            "status": "final" if g["status"] == "called" else "preliminary",
            "category": CATEGORY, "code": IMPLICATION_CODE, "method": method, "issued": now,
            "valueCodeableConcept": {"text": f"{g['gene']} {g['phenotype']}"},
            "component": components, "derivedFrom": [{"reference": geno_url}],
            "note": _note(g.get("reasons", []))}
        if ref:
            phen["subject"] = ref
        entries.append({"fullUrl": phen_url, "resource": _clean(phen)})
        phenotype_urls[g["gene"]] = phen_url
    for d in report["drugs"]:
        implicated = [phenotype_urls[g] for g in d["genes"] if g in phenotype_urls]
        if d["status"] != "not covered":
            implication_url = _urn()
            entries.append({"fullUrl": implication_url,
                            "resource": _implication(d, genotype_urls, method, now, ref)})
            implicated = [implication_url, *implicated]
        detail = d.get("recommendation") or "; ".join(
            [f"{d['status']}"] + d.get("reasons", [])
            + [f"{k}: {v}" for k, v in d.get("dosing_inputs", {}).items()])
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue", "status": "final" if d["status"] == "recommendation"
            else "preliminary",
            "code": {"text": f"Drug-gene interaction: {d['drug']} and {', '.join(d['genes'])}"},
            "identifiedDateTime": now, "detail": detail,
            "implicated": [{"reference": u} for u in implicated],
            "evidence": [{"detail": [{"reference": u}]} for u in implicated]}
        priority = (d.get("priority") or "").split("/")[0].lower()
        if priority in SEVERITY:
            issue["severity"] = SEVERITY[priority]
        if d.get("guideline"):
            issue["reference"] = d["guideline"]
        if ref:
            issue["patient"] = ref
        entries.append({"fullUrl": _urn(), "resource": _clean(issue)})
    data = {"resourceType": "Bundle", "type": "collection", "timestamp": now, "entry": entries}
    Bundle.model_validate(data)
    return data


def _implication(d: dict[str, Any], genotype_urls: dict[str, str], method: dict[str, str],
                 now: str, ref: dict[str, str] | None) -> dict[str, Any]:
    """One drug's therapeutic-implication Observation: the medication (RxNorm), the phenotypes
    it rests on, the conclusion, and for warfarin the IWPC weekly dose (UCUM mg/wk)."""
    components: list[dict[str, Any]] = [{"code": MEDICATION,
                                         "valueCodeableConcept": drug_concept(d)}]
    components += [_phenotype_component(g, p) for g, p in d.get("phenotypes", {}).items()]
    dose = d.get("dose")
    if dose:
        components.append({"code": {"text": "IWPC estimated stable weekly warfarin dose"},
                           "valueQuantity": {"value": dose["weekly_dose_mg"], "unit": "mg/week",
                                             "system": UCUM, "code": "mg/wk"}})
    if d.get("recommendation"):
        components.append({"code": CONCLUSION, "valueString": d["recommendation"]})
    notes = d.get("reasons", []) + d.get("caveats", [])
    if dose:
        notes += [f"IWPC input {k}: {v:g}" if isinstance(v, float) else f"IWPC input {k}: {v}"
                  for k, v in dose["inputs"].items()]
        notes += [f"CPIC adjustment for {a['for']} ({a['strength']}): {a['change']}, "
                  f"{a['weekly_dose_mg'][0]}-{a['weekly_dose_mg'][1]} mg/week"
                  for a in dose.get("cpic_adjustments", [])]
    if d.get("source"):
        notes.append(f"source: {d['source']}")
    obs: dict[str, Any] = {
        "resourceType": "Observation", "meta": {"profile": [f"{GR}/therapeutic-implication"]},
        "status": "final" if d["status"] == "recommendation" else "preliminary",
        "category": CATEGORY, "code": IMPLICATION_CODE, "method": method, "issued": now,
        "component": components,
        "derivedFrom": [{"reference": genotype_urls[g]} for g in d["genes"] if g in genotype_urls],
        "note": _note(notes)}
    if ref:
        obs["subject"] = ref
    return _clean(obs)
