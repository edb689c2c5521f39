"""Phenotypes to CPIC recommendations (recommendation-table.csv, guideline links and levels from
cpic-table.csv), for star-allele diplotypes or a VCF; the report as a dict and as text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iatros.errors import ConfigError
from iatros.pgx import diplotypes, vcf
from iatros.pgx.phenotypes import GeneResult, not_covered, parse_diplotype, phenotype, strand_bases
from iatros.pgx.tables import INDETERMINATE, SUPPORTED_GENES, Tables, load

# the gene-drug pairs answered for a VCF when no --drugs are given (issue 24)
DEFAULT_DRUGS = ("clopidogrel", "codeine", "warfarin", "azathioprine", "mercaptopurine",
                 "thioguanine", "fluorouracil", "capecitabine", "simvastatin", "abacavir",
                 "tacrolimus")
# IWPC warfarin equation: CYP2C9 enters as one of these genotypes, VKORC1 as rs9923231
IWPC_CYP2C9 = ("*1", "*2", "*3")


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


def _warfarin(tables: Tables, result: DrugResult, genes: dict[str, GeneResult]) -> DrugResult:
    """Warfarin: pypgx has no recommendation rows, so only the IWPC/CPIC genotype inputs."""
    result.status = "not covered"
    result.reasons.append(f"pypgx {tables.version} has no warfarin recommendation rows; the dose "
                          "is not computed here. The IWPC/CPIC dosing equation also needs age, "
                          "height, weight, race, enzyme-inducer and amiodarone use")
    c = genes.get("CYP2C9")
    if c and c.diplotype:
        a, b = c.diplotype.split("/")
        result.dosing_inputs["CYP2C9"] = (c.diplotype if a in IWPC_CYP2C9 and b in IWPC_CYP2C9
                                          else f"{c.diplotype} (not an IWPC category: the equation "
                                               "takes *1, *2, *3; treat as unknown)")
    else:
        result.dosing_inputs["CYP2C9"] = "unknown (not genotyped or indeterminate)"
    v = genes.get("VKORC1")
    if v and v.diplotype:
        bases = [strand_bases(tables, "VKORC1", x) for x in v.diplotype.split("/")]
        alt = strand_bases(tables, "VKORC1", "rs9923231")
        ref_base, alt_base = alt.split(">") if ">" in alt else ("ref", "alt")
        calls = sorted(alt_base if b == alt else ref_base for b in bases)
        result.dosing_inputs["VKORC1 rs9923231"] = f"{'/'.join(calls)} (gene strand)"
    else:
        result.dosing_inputs["VKORC1 rs9923231"] = "unknown (not genotyped or indeterminate)"
    f = genes.get("CYP4F2")
    if f and f.diplotype:
        result.dosing_inputs["CYP4F2"] = f.diplotype
    return result


def drug_result(tables: Tables, drug: str, genes: dict[str, GeneResult]) -> DrugResult:
    """The recommendation row matching the genes' phenotypes (a gene not genotyped is 'None',
    as the table spells it for thiopurines)."""
    d = drug.strip().lower()
    needed = drug_genes(tables, d)
    guideline, level = _guideline(tables, d, needed)
    result = DrugResult(d, needed, "indeterminate", guideline=guideline, cpic_level=level)
    unsupported = [g for g in needed if g not in SUPPORTED_GENES]
    if unsupported:
        result.status = "not covered"
        result.reasons.append(f"{', '.join(unsupported)} not among the supported genes "
                              f"({', '.join(SUPPORTED_GENES)})")
        return result
    if d == "warfarin":
        return _warfarin(tables, result, genes)
    rows = tables.recommendations.get(d)
    if not rows:
        result.status = "not covered"
        result.reasons.append(f"pypgx {tables.version} has no recommendation rows for {d} "
                              f"({', '.join(needed)}); see the CPIC guideline")
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
            source: dict[str, object]) -> dict[str, object]:
    return {"source": tables.source(), "input": source,
            "genes": [r.as_dict() for r in genes.values()],
            "drugs": [drug_result(tables, d, genes).as_dict() for d in drugs]}


def from_diplotypes(diplotype_texts: list[str], drugs: list[str] | None = None) -> dict[str, object]:
    """`CYP2C19=*1/*2` style diplotypes (and drugs; default: every drug with a row for the
    given genes) to a report."""
    tables = load()
    if not diplotype_texts:
        raise ConfigError("give at least one --diplotype GENE=ALLELE/ALLELE")
    genes: dict[str, GeneResult] = {}
    for text in diplotype_texts:
        gene, a, b = parse_diplotype(text)
        if gene in genes:
            raise ConfigError(f"{gene} is given twice")
        genes[gene] = (not_covered(gene, tables) if gene in SUPPORTED_GENES and gene not in tables.genes
                       else phenotype(gene, a, b, tables))
    if not drugs:
        drugs = [d for d in sorted(set(tables.recommendations) | set(tables.cpic_pairs))
                 if _has_pair(tables, d) and set(drug_genes(tables, d)) & set(genes)]
        drugs = [d for d in drugs if set(drug_genes(tables, d)) <= set(SUPPORTED_GENES)]
    for d in drugs:
        drug_genes(tables, d)            # unknown drugs fail before any answer is printed
    return _report(tables, genes, [d.strip().lower() for d in drugs],
                   {"kind": "diplotypes", "diplotypes": list(diplotype_texts)})


def _has_pair(tables: Tables, drug: str) -> bool:
    try:
        return bool(drug_genes(tables, drug))
    except ConfigError:
        return False


def from_vcf(path: str | Path, drugs: list[str] | None = None, build: str | None = None,
             sample: str | None = None) -> dict[str, object]:
    """A VCF (one sample, GRCh37 or GRCh38) to a report for the drugs (default DEFAULT_DRUGS)."""
    tables = load()
    drugs = [d.strip().lower() for d in (drugs or DEFAULT_DRUGS)]
    wanted = list(dict.fromkeys(g for d in drugs for g in drug_genes(tables, d)))
    if "warfarin" in drugs:
        wanted = list(dict.fromkeys([*wanted, "CYP2C9", "VKORC1", "CYP4F2"]))
    wanted = [g for g in wanted if g in SUPPORTED_GENES]
    callable_genes = [g for g in wanted if g in tables.genes]
    genotypes = vcf.read(path, tables, callable_genes, build=build, sample=sample)
    genes = {g: (diplotypes.call(tables, g, genotypes) if g in tables.genes else not_covered(g, tables))
             for g in wanted}
    return _report(tables, genes, drugs, {
        "kind": "vcf", "file": Path(path).name, "sample": genotypes.sample,
        "build": genotypes.build, "build_evidence": genotypes.build_evidence})


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
        for r in d.get("reasons", []):
            lines.append(f"  reason: {r}")
        if d.get("guideline"):
            lines.append(f"  CPIC level {d.get('cpic_level') or '?'}: {d['guideline']}")
    return "\n".join(lines)
