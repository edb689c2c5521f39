"""Diplotype -> phenotype from the tables: the diplotype table for genes called by diplotype
(CYP2C19, TPMT, NUDT15, SLCO1B1, CYP3A5), the summed activity score and the gene's equations for
genes called by score (CYP2D6, CYP2C9, DPYD). Anything the tables cannot answer is returned as
"Indeterminate" with the reason, never guessed."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

from iatros.errors import ConfigError
from iatros.pgx.tables import INDETERMINATE, Tables, load

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


@dataclass
class GeneResult:
    """One gene's answer: the diplotype, the phenotype (or why there is none) and its evidence."""

    gene: str
    diplotype: str | None
    phenotype: str | None
    status: str = "called"                 # called | indeterminate | not covered
    activity_score: float | None = None
    functions: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)   # diplotypes consistent with a VCF
    missing_positions: list[str] = field(default_factory=list)
    phased: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


def parse_diplotype(text: str) -> tuple[str, str, str]:
    """'CYP2C19=*1/*2' -> ('CYP2C19', '*1', '*2'); a ConfigError naming what was expected."""
    gene, sep, rest = text.partition("=")
    parts = rest.split("/")
    if not sep or not gene.strip() or len(parts) != 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"diplotype {text!r}: expected GENE=ALLELE/ALLELE, e.g. CYP2C19=*1/*2")
    return gene.strip().upper(), parts[0].strip(), parts[1].strip()


def resolve_allele(tables: Tables, gene: str, name: str) -> str:
    """The table's name for an allele: exact, case-insensitive, or a DPYD-style short name
    ('*2A' for 'c.1905+1G>A (*2A)'); for genes with structural variants also 'A+B' and 'AxN'."""
    known = tables.alleles.get(gene, {})
    if name in known:
        return name
    folded = {k.lower(): k for k in known}
    if name.lower() in folded:
        return folded[name.lower()]
    short = [k for k in known if k.endswith(f"({name})")]
    if len(short) == 1:
        return short[0]
    if tables.genes[gene].has_sv and re.search(r"\+|x\d+$", name):
        parts = [resolve_allele(tables, gene, re.sub(r"x\d+$", "", p)) for p in name.split("+")]
        multiples = [m.group(0) if (m := re.search(r"x\d+$", p)) else "" for p in name.split("+")]
        return "+".join(p + m for p, m in zip(parts, multiples, strict=True))
    bases = single_snv_bases(tables, gene)
    if bases and name.upper() in bases:
        return bases[name.upper()]
    examples = ", ".join(list(known)[:8])
    hint = ""
    if bases:
        ref, alt = bases
        snv = bases[alt]
        hint = (f"; or the {snv} base on the {gene} strand: {ref} (reference) or {alt}, e.g. "
                f"{gene}={alt}/{ref} (the genome's + strand bases are the complement)"
                if tables.genes[gene].strand == "-" else
                f"; or the {snv} base: {ref} (reference) or {alt}")
    raise ConfigError(f"unknown {gene} allele {name!r} (not in the {gene} rows of allele-table.csv "
                      f"of pypgx {tables.version}; e.g. {examples}{hint})")


def single_snv_bases(tables: Tables, gene: str) -> dict[str, str]:
    """For a gene whose only allele besides the default is one SNV (VKORC1: Reference and
    rs9923231), the bases on the gene's strand -> allele names ({'G': 'Reference',
    'A': 'rs9923231'}); empty for other genes."""
    known = tables.alleles.get(gene, {})
    g = tables.genes.get(gene)
    if g is None or len(known) != 2:
        return {}
    defaults = set(g.default.values())
    others = [a for a in known if a not in defaults]
    if len(defaults) != 1 or len(others) != 1:
        return {}
    change = strand_bases(tables, gene, others[0])
    if not re.fullmatch(r"[ACGT]>[ACGT]", change):
        return {}
    ref, alt = change.split(">")
    return {ref: next(iter(defaults)), alt: others[0]}


def allele_score(tables: Tables, gene: str, name: str) -> float | None:
    """An allele's activity value; copies (xN) and tandem arrangements (A+B) add up, as in pypgx.
    None when any part has no value in the table (uncertain or unknown function)."""
    total = 0.0
    parts = name.split("+") if tables.genes[gene].has_sv else [name]
    for part in parts:
        m = re.fullmatch(r"(.+?)x(\d+)", part) if tables.genes[gene].has_sv else None
        base, copies = (m.group(1), int(m.group(2))) if m else (part, 1)
        score = tables.alleles[gene][base].score
        if score is None:
            return None
        total += score * copies
    return total


def _satisfies(equation: str, score: float) -> bool:
    """'0.25 <= score < 1.25' evaluated without eval()."""
    tokens = re.split(r"\s*(<=|>=|==|<|>)\s*", equation.strip())
    values = [score if t == "score" else float(t) for t in tokens[::2]]
    return all(_OPS[op](a, b) for a, op, b in zip(values, tokens[1::2], values[1:], strict=False))


def score_phenotype(tables: Tables, gene: str, score: float) -> str | None:
    """The phenotype whose equation (equation-table.csv) the activity score satisfies."""
    hits = [p for p, eq in tables.equations.get(gene, []) if _satisfies(eq, score)]
    return hits[0] if len(hits) == 1 else None


def strand_bases(tables: Tables, gene: str, allele: str) -> str:
    """The bases of a one-SNV allele on the gene's strand (VKORC1 rs9923231: C>T -> G>A)."""
    a = tables.alleles[gene][allele]
    variants = next((c for c in a.core.values() if c), None)
    if not variants or len(variants) != 1:
        return allele
    v = next(iter(variants))
    ref, alt = v.ref, v.alt
    if tables.genes[gene].strand == "-":
        ref, alt = ref.translate(_COMPLEMENT)[::-1], alt.translate(_COMPLEMENT)[::-1]
    return f"{ref}>{alt}"


def phenotype(gene: str, a: str, b: str, tables: Tables | None = None) -> GeneResult:
    """The phenotype of one diplotype from the tables (unknown alleles are a ConfigError)."""
    tables = tables or load()
    g = tables.gene(gene)
    a, b = resolve_allele(tables, g.name, a), resolve_allele(tables, g.name, b)
    diplotype = f"{a}/{b}"
    result = GeneResult(g.name, diplotype, None)
    for name in dict.fromkeys(x for part in (a, b) for x in (part.split("+") if g.has_sv else [part])):
        base = re.sub(r"x\d+$", "", name) if g.has_sv else name
        result.functions[name] = tables.alleles[g.name][base].function
    if g.method == "Diplotype":
        result.phenotype = tables.diplotypes.get(g.name, {}).get((a, b))
        if result.phenotype is None:
            result.reasons.append(f"{diplotype} is not in the {g.name} rows of diplotype-table.csv")
    elif g.method == "Score":
        sa, sb = allele_score(tables, g.name, a), allele_score(tables, g.name, b)
        if sa is None or sb is None:
            unknown = [x for x, s in ((a, sa), (b, sb)) if s is None]
            result.reasons.append(f"no activity value for {', '.join(unknown)} "
                                  f"({', '.join(result.functions.get(x, '?') for x in unknown)})")
        else:
            result.activity_score = sa + sb
            result.phenotype = score_phenotype(tables, g.name, sa + sb)
            if result.phenotype is None:
                result.reasons.append(f"activity score {sa + sb:g} matches no equation of "
                                      f"{g.name} in equation-table.csv")
    else:
        result.notes.append(f"{g.name} has no phenotype in the tables; its genotype is reported "
                            "as a dosing input")
        return result
    if result.phenotype is None or result.phenotype == INDETERMINATE:
        result.phenotype, result.status = INDETERMINATE, "indeterminate"
        if not result.reasons:
            result.reasons.append(f"the table gives {INDETERMINATE} for {diplotype}")
    return result


def not_covered(gene: str, tables: Tables | None = None) -> GeneResult:
    """A gene the engine names but pypgx's tables do not cover (HLA-B)."""
    tables = tables or load()
    return GeneResult(gene, None, None, status="not covered", reasons=[
        f"pypgx {tables.version} has no {gene} allele, phenotype or recommendation table; "
        f"{gene} typing is not done by this engine"])
