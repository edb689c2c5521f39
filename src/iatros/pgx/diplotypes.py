"""Star-allele diplotypes from the genotypes at allele-defining positions.

Every pair of the gene's alleles (core variants for the build from allele-table.csv; the build's
default allele carries none) is tested against what the VCF says: a phased sample haplotype by
haplotype, an unphased one by the number of copies of each variant. Missing positions and
no-calls constrain nothing, so they widen the set of consistent diplotypes instead of being read
as reference. When the consistent diplotypes disagree on the phenotype the answer is
"Indeterminate", naming the positions that would settle it.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

from iatros.pgx.phenotypes import GeneResult, phenotype
from iatros.pgx.tables import INDETERMINATE, Tables, Variant
from iatros.pgx.vcf import SampleGenotypes, Site

MAX_LISTED = 12


def _definitions(tables: Tables, gene: str, build: str) -> tuple[dict[str, frozenset[Variant]], list[str]]:
    """Alleles callable from a VCF on this build (name -> core variants) and notes on the rest."""
    g = tables.genes[gene]
    default = g.default[build]
    defs, skipped = {}, []
    for a in tables.alleles[gene].values():
        core = a.core.get(build)
        if a.sv:
            skipped.append(a.name)
        elif core:
            defs[a.name] = core
        elif a.name == default:
            defs[a.name] = frozenset()
    notes = []
    if skipped:
        notes.append(f"copy number is not assessed from a VCF: structural alleles "
                     f"({', '.join(skipped[:6])}{', ...' if len(skipped) > 6 else ''}) cannot be "
                     "called, and a gene deletion would look like homozygosity")
    undefined = [a.name for a in tables.alleles[gene].values()
                 if not a.sv and not a.core.get(build) and a.name != default]
    if undefined:
        notes.append(f"alleles without core variants on {build} are indistinguishable from "
                     f"{default}: {', '.join(undefined[:6])}{', ...' if len(undefined) > 6 else ''}")
    return defs, notes


def _phased(sites: list[Site]) -> bool:
    """True when every heterozygous call is phased and in one phase set."""
    het = [s for s in sites if None not in s.haps and s.haps[0] != s.haps[1]]
    return bool(het) and all(s.phased for s in het) and len({s.phase_set for s in het}) == 1


def _consistent(a: frozenset[Variant], b: frozenset[Variant], sites: list[Site], phased: bool) -> bool:
    if phased:
        def fits(x: frozenset[Variant], y: frozenset[Variant]) -> bool:
            return all((h0 is None or h0 == (s.variant in x)) and (h1 is None or h1 == (s.variant in y))
                       for s in sites for h0, h1 in (s.haps,))
        return fits(a, b) or fits(b, a)
    for s in sites:
        n = (s.variant in a) + (s.variant in b)
        low = sum(h == 1 for h in s.haps)
        high = 2 - sum(h == 0 for h in s.haps)
        if not low <= n <= high:
            return False
    return True


def call(tables: Tables, gene: str, genotypes: SampleGenotypes) -> GeneResult:
    """The gene's diplotype(s) and phenotype from a sample's genotypes."""
    build = genotypes.build
    defs, notes = _definitions(tables, gene, build)
    positions = {v for core in defs.values() for v in core}
    sites = [genotypes.sites[v] for v in sorted(positions, key=lambda v: (v.pos, v.alt))]
    missing = [s.variant.name for s in sites if s.missing]
    nocalls = [s.variant.name for s in sites if not s.missing and None in s.haps]
    mismatched = [s.ref_mismatch for s in sites if s.ref_mismatch]
    phased = _phased(sites)
    informative = [s for s in sites if s.haps != (None, None)]
    if mismatched:
        r = GeneResult(gene, None, INDETERMINATE, status="indeterminate", phased=phased, notes=notes)
        r.reasons.append(f"REF bases disagree with {build} at {len(mismatched)} allele-defining "
                         f"position(s) (is the VCF on the other build?): {'; '.join(mismatched[:3])}")
        return r
    possible = {n: core for n, core in defs.items()
                if all(genotypes.sites[v].haps != (0, 0) for v in core)}
    found = [(x, y) for x, y in combinations_with_replacement(sorted(possible), 2)
             if _consistent(possible[x], possible[y], informative, phased)]
    unphased_note = [] if phased else ["genotypes are unphased (or in several phase sets): "
                                       "diplotypes were matched on variant copy numbers"]
    result = GeneResult(gene, None, None, phased=phased, notes=notes + unphased_note,
                        missing_positions=missing)
    if nocalls:
        result.notes.append(f"no-call at {len(nocalls)} position(s): {', '.join(nocalls[:MAX_LISTED])}")
    if missing:
        result.notes.append(f"{len(missing)} allele-defining position(s) absent from the VCF "
                            "(not assumed reference)")
    if not found:
        carried = [s.variant.name for s in informative if 1 in s.haps]
        result.phenotype, result.status = INDETERMINATE, "indeterminate"
        result.reasons.append("no pair of defined alleles explains the observed variants "
                              f"({', '.join(carried[:MAX_LISTED]) or 'none'})")
        return result
    answers = {}
    for x, y in found:
        answers[f"{x}/{y}"] = phenotype(gene, x, y, tables)
    phenotypes = {r.phenotype for r in answers.values()}
    result.candidates = list(answers)[:MAX_LISTED]
    if len(answers) == 1:
        only = next(iter(answers.values()))
        only.notes, only.phased, only.missing_positions = result.notes, phased, missing
        return only
    if len(phenotypes) == 1 and INDETERMINATE not in phenotypes and None not in phenotypes:
        result.phenotype = phenotypes.pop()
        result.diplotype = None
        result.notes.append(f"{len(answers)} diplotypes fit the genotypes; all give "
                            f"{result.phenotype}")
        scores = {r.activity_score for r in answers.values()}
        result.activity_score = scores.pop() if len(scores) == 1 else None
        return result
    result.phenotype, result.status = (INDETERMINATE if None not in phenotypes else None), "indeterminate"
    why = ", ".join(f"{d} -> {r.phenotype or 'genotype only'}" for d, r in list(answers.items())[:6])
    cause = ("missing or no-call positions" if missing or nocalls else
             "unphased heterozygous positions" if not phased else "shared allele definitions")
    result.reasons.append(f"{len(answers)} diplotypes fit the genotypes ({why}"
                          f"{', ...' if len(answers) > 6 else ''}); they differ, because of {cause}")
    return result
