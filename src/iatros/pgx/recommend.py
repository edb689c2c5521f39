"""Phenotypes to CPIC recommendations (recommendation-table.csv, guideline links, levels and RxNorm
codes from cpic-table.csv), for star-allele diplotypes or a VCF; the report as a dict and as text.
Warfarin (CYP2C9 + VKORC1, the IWPC equation) is answered by `warfarin.py` and abacavir
(HLA-B*57:01) by `hla.py`, the two pairs pypgx has no recommendation rows for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iatros.errors import ConfigError
from iatros.pgx import diplotypes, hla, vcf, warfarin
from iatros.pgx.phenotypes import GeneResult, not_covered, parse_diplotype, phenotype, single_snv_bases
from iatros.pgx.tables import INDETERMINATE, SUPPORTED_GENES, Tables, load
from iatros.pgx.warfarin import Patient

# the gene-drug pairs answered for a VCF when no --drugs are given (issue 24)
DEFAULT_DRUGS = ("clopidogrel", "codeine", "warfarin", "azathioprine", "mercaptopurine",
                 "thioguanine", "fluorouracil", "capecitabine", "simvastatin", "abacavir",
                 "tacrolimus")
# genes a user may state as not genotyped (GENE=unknown): the IWPC equation has a category for it
UNKNOWN_ALLOWED = ("VKORC1", "CYP2C9")


@dataclass
class DrugResult:
    """One drug's answer and what it rests on."""

    drug: str
    genes: list[str]
    status: str                      # recommendation | no recommendation | indeterminate | not covered
    recommendation: str | None = None
    phenotypes: dict[str, str] = field(default_factory=dict)
    priority: str | None = None
    guideline: str | None = None
    cpic_level: str | None = None
    reasons: list[str] = field(default_factory=list)
    dosing_inputs: dict[str, str] = field(default_factory=dict)
    dose: dict[str, object] | None = None          # warfarin: the IWPC equation's answer
    caveats: list[str] = field(default_factory=list)
    rxnorm: str | None = None                      # RxNorm ingredient code (cpic-table.csv)
    source: str | None = None                      # where a recommendation not from pypgx comes from

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


def drug_genes(tables: Tables, drug: str) -> list[str]:
    """The genes a drug's CPIC recommendation rests on; a ConfigError for a drug with no pair."""
    d = drug.strip().lower()
    rows = tables.recommendations.get(d)
    if rows:
        return list(dict.fromkeys(g for r in rows for g in (r["Gene1"], r["Gene2"]) if g != "None"))
    pairs = [r for r in tables.cpic_pairs.get(d, []) if r["Guideline"]]
    if pairs:
        return list(dict.fromkeys(r["Gene"] for r in pairs))
    raise ConfigError(f"no CPIC gene-drug pair for {drug!r} in pypgx {tables.version}'s "
                      "recommendation-table.csv or cpic-table.csv")


def _guideline(tables: Tables, drug: str, genes: list[str]) -> tuple[str | None, str | None]:
    rows = [r for r in tables.cpic_pairs.get(drug, []) if r["Gene"] in genes and r["Guideline"]]
    return (rows[0]["Guideline"], rows[0]["CPICLevel"]) if rows else (None, None)


def _rxnorm(tables: Tables, drug: str) -> str | None:
    """The drug's RxNorm code as cpic-table.csv gives it (one code for all its rows), else None."""
    codes = {r.get("RxNorm", "").strip() for r in tables.cpic_pairs.get(drug, [])}
    codes.discard("")
    return codes.pop() if len(codes) == 1 and next(iter(codes)).isdigit() else None


def _vkorc1_genotype(tables: Tables, v: GeneResult | None) -> tuple[str | None, str]:
    """VKORC1 -1639G>A (rs9923231) as an IWPC category (G/G, A/G, A/A or unknown) and how."""
    if v is None:
        return None, "VKORC1 rs9923231 was not genotyped"
    if v.status == "not tested":
        return "unknown", "VKORC1 stated as not genotyped: the IWPC 'unknown' category"
    if not v.diplotype:
        why = "; ".join(v.reasons) or "indeterminate"
        return None, f"VKORC1 rs9923231 is not resolved ({why}); it is never read as reference"
    by_allele = {a: b for b, a in single_snv_bases(tables, "VKORC1").items()}
    calls = sorted(by_allele[x] for x in v.diplotype.split("/"))
    return "/".join(calls), ""


def _cyp2c9_genotype(c: GeneResult | None) -> tuple[str | None, list[str], str]:
    if c is None:
        return None, [], "CYP2C9 was not genotyped"
    if c.status == "not tested":
        return "unknown", [], "CYP2C9 stated as not genotyped: the IWPC 'unknown' category"
    if not c.diplotype:
        why = "; ".join(c.reasons) or "indeterminate"
        return None, [], f"CYP2C9 is not resolved ({why})"
    a, b = c.diplotype.split("/")
    return warfarin.cyp2c9_category(a, b, c.functions)


def _warfarin(tables: Tables, result: DrugResult, genes: dict[str, GeneResult],
              patient: Patient | None) -> DrugResult:
    """Warfarin: CPIC 2017's genotype-guided text and, with every covariate given, the IWPC dose."""
    result.source = f"{warfarin.GUIDELINE}; {warfarin.SOURCE}"
    vk, vk_why = _vkorc1_genotype(tables, genes.get("VKORC1"))
    cyp, extra, cyp_why = _cyp2c9_genotype(genes.get("CYP2C9"))
    result.dosing_inputs["VKORC1 rs9923231"] = (f"{vk} (gene strand, -1639G>A)" if vk and vk != "unknown"
                                                else vk or "unresolved")
    result.dosing_inputs["CYP2C9"] = cyp or "unresolved"
    f = genes.get("CYP4F2")
    star3 = bool(f and f.diplotype and "*3" in f.diplotype.split("/"))
    if f and f.diplotype:
        result.dosing_inputs["CYP4F2"] = f.diplotype
    race = patient.race if patient else None
    for g in ("CYP2C9", "VKORC1"):
        r = genes.get(g)
        if r and r.phenotype and r.status == "called":
            result.phenotypes[g] = r.phenotype
    result.caveats = [warfarin.NOT_IN_EQUATION, warfarin.TARGET_INR_NOTE]
    c = genes.get("CYP2C9")
    if c and c.phenotype == "Poor Metabolizer":
        result.caveats.append(warfarin.POOR_METABOLIZER)
    if cyp_why:
        (result.reasons if cyp is None else result.caveats).append(cyp_why)
    if vk_why:
        (result.reasons if vk is None else result.caveats).append(vk_why)
    if star3 and race == "black":
        result.caveats.append("CPIC 2017 makes no CYP4F2 recommendation for African ancestry")
    resolved = vk not in (None, "unknown") and cyp not in (None, "unknown")
    if vk is None or cyp is None:
        result.status = "indeterminate"
        result.reasons.append("the genotype-guided warfarin dose needs both the VKORC1 -1639G>A "
                              "and the CYP2C9 genotype")
        return result
    result.status = "recommendation" if resolved else "indeterminate"
    if not resolved:
        result.reasons.append("a genotype was stated as unknown: the IWPC estimate below is not "
                              "genotype-guided")
    result.recommendation = warfarin.cpic_text(race) if resolved else None
    if patient is None or patient.missing():
        missing = patient.missing() if patient else Patient().missing()
        result.reasons.append(f"the IWPC dose needs {', '.join(missing)} (not given; none is "
                              "assumed)")
        return result
    try:
        dose = warfarin.iwpc_dose(patient, vk, cyp)
    except ConfigError as e:
        result.reasons.append(str(e))
        return result
    dose.adjustments = warfarin.adjustments(dose, extra, race, star3)
    result.dose = dose.as_dict()
    said = (f"IWPC estimate: {dose.weekly_mg:.1f} mg/week (about {dose.weekly_mg / 7:.2f} "
            "mg/day)")
    result.recommendation = f"{result.recommendation}. {said}" if result.recommendation else said
    return result


def _abacavir(result: DrugResult, genes: dict[str, GeneResult]) -> DrugResult:
    """Abacavir: CPIC's two rows, by HLA-B*57:01 carrier status."""
    result.source = hla.SOURCE
    h = genes.get(hla.GENE)
    if h is None:
        result.reasons.append("HLA-B was not typed: CPIC's abacavir recommendation needs the "
                              "HLA-B*57:01 carrier status")
        return result
    if h.status != "called" or h.phenotype not in hla.RECOMMENDATION:
        result.reasons.extend(f"HLA-B: {x}" for x in h.reasons or ["indeterminate"])
        return result
    result.phenotypes[hla.GENE] = h.phenotype
    result.recommendation = hla.RECOMMENDATION[h.phenotype]
    result.status = "recommendation"
    # the FHIR severity: CPIC's "significantly increased risk" row is the abnormal one
    result.priority = "Abnormal" if h.phenotype == hla.POSITIVE else "Normal"
    return result


def drug_result(tables: Tables, drug: str, genes: dict[str, GeneResult],
                patient: Patient | None = None) -> DrugResult:
    """The recommendation row matching the genes' phenotypes (a gene not genotyped is 'None',
    as the table spells it for thiopurines); warfarin and abacavir by their own modules."""
    d = drug.strip().lower()
    needed = drug_genes(tables, d)
    guideline, level = _guideline(tables, d, needed)
    result = DrugResult(d, needed, "indeterminate", guideline=guideline, cpic_level=level,
                        rxnorm=_rxnorm(tables, d))
    unsupported = [g for g in needed if g not in SUPPORTED_GENES]
    if unsupported:
        result.status = "not covered"
        result.reasons.append(f"{', '.join(unsupported)} not among the supported genes "
                              f"({', '.join(SUPPORTED_GENES)})")
        return result
    if d == "warfarin":
        return _warfarin(tables, result, genes, patient)
    if d == "abacavir":
        return _abacavir(result, genes)
    rows = tables.recommendations.get(d)
    if not rows:
        result.status = "not covered"
        result.reasons.append(f"pypgx {tables.version} has no recommendation rows for {d} "
                              f"({', '.join(needed)}); see the CPIC guideline"
                              + ("; HLA-B is read here for *57:01 (abacavir) only"
                                 if hla.GENE in needed else ""))
        return result
    phen = {}
    for g in needed:
        r = genes.get(g)
        phen[g] = r.phenotype if r and r.phenotype else "None"
        if r is None:
            result.reasons.append(f"{g} was not genotyped")
        elif r.status != "called":
            result.reasons.extend(f"{g}: {x}" for x in r.reasons)
    result.phenotypes = {g: p for g, p in phen.items() if p != "None"}
    match = [r for r in rows if phen.get(r["Gene1"]) == r["Phenotype1"]
             and (r["Gene2"] == "None" or phen.get(r["Gene2"]) == r["Phenotype2"])]
    if not match:
        said = (f"{g} {p if p != 'None' else 'not genotyped'}" for g, p in phen.items())
        result.reasons.append(f"no row of recommendation-table.csv for {', '.join(said)}")
        return result
    text = match[0]["Recommendation"]
    priorities = [tables.priorities.get((g, p)) for g, p in phen.items() if p != "None"]
    result.priority = next((p for p in priorities if p and p.lower().startswith("abnormal")),
                           next((p for p in priorities if p and p != "None"), None))
    if text and text != "None":
        result.recommendation = text
        result.status = "recommendation"
    elif all(p in ("None", INDETERMINATE) for p in phen.values()):
        result.reasons.append("the table has no recommendation for an indeterminate phenotype")
    else:
        result.status = "no recommendation"
        result.reasons.append("the table lists this phenotype without a recommendation")
    return result


def _report(tables: Tables, genes: dict[str, GeneResult], drugs: list[str],
            source: dict[str, object], patient: Patient | None) -> dict[str, object]:
    if patient is not None and patient.given():
        source = {**source, "patient": patient.as_dict()}
    return {"source": tables.source(), "input": source,
            "genes": [r.as_dict() for r in genes.values()],
            "drugs": [drug_result(tables, d, genes, patient).as_dict() for d in drugs]}


def gene_result(tables: Tables, text: str) -> GeneResult:
    """One --diplotype text: GENE=A/B, an HLA-B typing result, or VKORC1/CYP2C9=unknown."""
    if hla.is_hla_b(text):
        return hla.from_text(text)
    name, _, rest = text.partition("=")
    if rest.strip().lower() == "unknown" and name.strip().upper() in UNKNOWN_ALLOWED:
        return GeneResult(name.strip().upper(), None, None, status="not tested",
                          reasons=["stated as not genotyped (unknown)"])
    gene, a, b = parse_diplotype(text)
    if gene in SUPPORTED_GENES and gene not in tables.genes:
        return not_covered(gene, tables)
    return phenotype(gene, a, b, tables)


def from_diplotypes(diplotype_texts: list[str], drugs: list[str] | None = None,
                    patient: Patient | None = None) -> dict[str, object]:
    """`CYP2C19=*1/*2` style diplotypes (and drugs; default: every drug with a row for the
    given genes) to a report; `patient` holds the warfarin dose's covariates."""
    tables = load()
    if not diplotype_texts:
        raise ConfigError("give at least one --diplotype GENE=ALLELE/ALLELE")
    genes: dict[str, GeneResult] = {}
    for text in diplotype_texts:
        result = gene_result(tables, text)
        if result.gene in genes:
            raise ConfigError(f"{result.gene} is given twice")
        genes[result.gene] = result
    if not drugs:
        drugs = [d for d in sorted(set(tables.recommendations) | set(tables.cpic_pairs))
                 if _has_pair(tables, d) and set(drug_genes(tables, d)) & set(genes)]
        drugs = [d for d in drugs if set(drug_genes(tables, d)) <= set(SUPPORTED_GENES)]
    for d in drugs:
        drug_genes(tables, d)            # unknown drugs fail before any answer is printed
    return _report(tables, genes, [d.strip().lower() for d in drugs],
                   {"kind": "diplotypes", "diplotypes": list(diplotype_texts)}, patient)


def _has_pair(tables: Tables, drug: str) -> bool:
    try:
        return bool(drug_genes(tables, drug))
    except ConfigError:
        return False


def from_vcf(path: str | Path, drugs: list[str] | None = None, build: str | None = None,
             sample: str | None = None, patient: Patient | None = None) -> dict[str, object]:
    """A VCF (one sample, GRCh37 or GRCh38) to a report for the drugs (default DEFAULT_DRUGS);
    HLA-B is not typed from a VCF (indeterminate, naming the typing result needed)."""
    tables = load()
    drugs = [d.strip().lower() for d in (drugs or DEFAULT_DRUGS)]
    wanted = list(dict.fromkeys(g for d in drugs for g in drug_genes(tables, d)))
    if "warfarin" in drugs:
        wanted = list(dict.fromkeys([*wanted, "CYP2C9", "VKORC1", "CYP4F2"]))
    wanted = [g for g in wanted if g in SUPPORTED_GENES]
    callable_genes = [g for g in wanted if g in tables.genes]
    genotypes = vcf.read(path, tables, callable_genes, build=build, sample=sample)
    genes = {g: (diplotypes.call(tables, g, genotypes) if g in tables.genes
                 else hla.from_vcf() if g == hla.GENE else not_covered(g, tables))
             for g in wanted}
    return _report(tables, genes, drugs, {
        "kind": "vcf", "file": Path(path).name, "sample": genotypes.sample,
        "build": genotypes.build, "build_evidence": genotypes.build_evidence}, patient)


def as_text(report: dict[str, object]) -> str:
    """The report as lines a clinician can read."""
    src = report["source"]
    inp = report["input"]
    lines = [f"Pharmacogenomic report (CPIC tables from {src['package']} {src['version']})"]
    if inp["kind"] == "vcf":
        lines.append(f"VCF {inp['file']}, sample {inp['sample']}, build {inp['build']} "
                     f"({inp['build_evidence']})")
    lines.append("")
    for g in report["genes"]:
        more = " ..." if len(g.get("candidates", [])) > 4 else ""
        call = g.get("diplotype") or (" or ".join(g["candidates"][:4]) + more
                                      if g.get("candidates") else "-")
        score = f", activity score {g['activity_score']:g}" if g.get("activity_score") is not None else ""
        lines.append(f"{g['gene']:8} {call}: {g.get('phenotype') or 'no phenotype'}{score} [{g['status']}]")
        for r in g.get("reasons", []):
            lines.append(f"         reason: {r}")
        for n in g.get("notes", []):
            lines.append(f"         note: {n}")
        if g.get("missing_positions"):
            lines.append(f"         missing: {', '.join(g['missing_positions'][:12])}"
                         + (" ..." if len(g["missing_positions"]) > 12 else ""))
    lines.append("")
    for d in report["drugs"]:
        phen = ", ".join(f"{k} {v}" for k, v in d.get("phenotypes", {}).items())
        lines.append(f"{d['drug']} ({', '.join(d['genes'])}{'; ' + phen if phen else ''}): {d['status']}")
        if d.get("recommendation"):
            lines.append(f"  {d['recommendation']}")
        for k, v in d.get("dosing_inputs", {}).items():
            lines.append(f"  dosing input {k}: {v}")
        if d.get("dose"):
            dose = d["dose"]
            used = ", ".join(f"{k} {v}" for k, v in dose["inputs"].items())
            lines.append(f"  IWPC weekly dose {dose['weekly_dose_mg']} mg (sqrt "
                         f"{dose['sqrt_weekly_dose']}; about {dose['daily_dose_mg']} mg/day) from {used}")
            for a in dose.get("cpic_adjustments", []):
                low, high = a["weekly_dose_mg"]
                lines.append(f"  CPIC adjustment for {a['for']} ({a['strength']}): {a['change']}, "
                             f"{low}-{high} mg/week")
        for r in d.get("reasons", []):
            lines.append(f"  reason: {r}")
        for c in d.get("caveats", []):
            lines.append(f"  caveat: {c}")
        if d.get("guideline"):
            lines.append(f"  CPIC level {d.get('cpic_level') or '?'}: {d['guideline']}")
        if d.get("source"):
            lines.append(f"  source: {d['source']}")
    return "\n".join(lines)
