"""VCF writers for the pgx tests: a sample's genotypes at every allele-defining position of a
gene, built from the allele table itself (several ALTs at one position become one multi-allelic
record)."""

from __future__ import annotations

from pathlib import Path

from iatros.pgx.tables import Tables, Variant

HEADER = {"GRCh37": "##reference=GRCh37", "GRCh38": "##reference=GRCh38"}


def positions(tables: Tables, gene: str, build: str) -> list[Variant]:
    return sorted({v for a in tables.alleles[gene].values() if not a.sv
                   for v in (a.core.get(build) or ())}, key=lambda v: (v.pos, v.alt))


def records(tables: Tables, gene: str, build: str, hap1: frozenset, hap2: frozenset,
            phased: bool = False, nocall: set[Variant] = frozenset(),
            drop: set[Variant] = frozenset()) -> list[str]:
    """VCF lines: 1 on a haplotype that carries the variant, 0 otherwise; `nocall` sites get '.'
    for both haplotypes, `drop` sites are left out."""
    by_pos: dict[tuple[str, int], list[Variant]] = {}
    for v in positions(tables, gene, build):
        if v not in drop:
            by_pos.setdefault((v.chrom, v.pos), []).append(v)
    lines = []
    sep = "|" if phased else "/"
    for (chrom, pos), vs in sorted(by_pos.items(), key=lambda kv: kv[0][1]):
        ref = max((v.ref for v in vs), key=len)
        padded = [v.alt + ref[len(v.ref):] for v in vs]       # each ALT against the longest REF
        alts = list(dict.fromkeys(padded))
        index = {hap: next((str(alts.index(alt) + 1) for v, alt in zip(vs, padded, strict=True)
                            if v in hap), "0") for hap in (hap1, hap2)}
        gt = ".|." if any(v in nocall for v in vs) and phased else (
            "./." if any(v in nocall for v in vs) else f"{index[hap1]}{sep}{index[hap2]}")
        lines.append(f"{chrom}\t{pos}\t.\t{ref}\t{','.join(alts)}\t.\tPASS\t.\tGT\t{gt}")
    return lines


def write(path: Path, lines: list[str], build: str | None = "GRCh38", sample: str = "S1") -> Path:
    head = ["##fileformat=VCFv4.2"] + ([HEADER[build]] if build else []) + [
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + sample]
    path.write_text("\n".join(head + lines) + "\n")
    return path
