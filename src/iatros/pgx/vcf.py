"""Germline genotypes at allele-defining positions from a VCF (read with pysam).

Only the positions that define a gene's star alleles on the stated build (allele-table.csv) are
looked at. A position absent from the VCF is *missing* and a `.` allele is a *no-call*: neither is
ever taken as reference. Multi-allelic records and indels are matched in their minimal
representation; phasing is kept per record (with its phase set, PS, when present).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from iatros.errors import ConfigError, CorruptDataError
from iatros.pgx.tables import BUILDS, Tables, Variant

# chromosome lengths that tell the two builds apart (GRC assembly reports)
_LENGTHS = {"GRCh37": {"1": 249250621, "7": 159138663, "10": 135534747, "16": 90354753,
                       "19": 59128983, "22": 51304566},
            "GRCh38": {"1": 248956422, "7": 159345973, "10": 133797422, "16": 90338345,
                       "19": 58617616, "22": 50818468}}
_ALIASES = {"GRCh37": ("grch37", "hg19", "b37", "hs37"), "GRCh38": ("grch38", "hg38", "b38")}


@dataclass
class Site:
    """The sample at one allele-defining variant: per haplotype 1 (carries it), 0 (does not),
    None (no-call or missing); `phased` with its phase set."""

    variant: Variant
    haps: tuple[int | None, int | None]
    phased: bool
    phase_set: int | None = None
    missing: bool = False
    ref_mismatch: str | None = None


@dataclass
class SampleGenotypes:
    """What the VCF says at every allele-defining position of the wanted genes."""

    path: Path
    sample: str
    build: str
    build_evidence: str
    sites: dict[Variant, Site] = field(default_factory=dict)


def _chrom(name: str) -> str:
    return re.sub(r"^chr", "", name, flags=re.IGNORECASE)


def minimal(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """The minimal representation of REF>ALT: shared trailing then leading bases trimmed."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref.upper(), alt.upper()


def _key(v: Variant) -> tuple[str, int, str, str]:
    return (_chrom(v.chrom), *minimal(v.pos, v.ref, v.alt))


def _header_build(header: object) -> tuple[str | None, str]:
    """The build the header declares (##reference, ##assembly or contig lengths), with evidence."""
    for rec in header.records:  # type: ignore[attr-defined]
        if rec.key in ("reference", "assembly") and rec.value:
            text = rec.value.lower()
            for build, words in _ALIASES.items():
                if any(w in text for w in words):
                    return build, f"##{rec.key}={rec.value}"
    for name, contig in header.contigs.items():  # type: ignore[attr-defined]
        length = contig.length
        for build, lengths in _LENGTHS.items():
            if length and lengths.get(_chrom(name)) == length:
                return build, f"length of contig {name} ({length})"
    return None, "the header names no build"


def _bad_line(path: Path) -> str:
    """Find the first data line that does not look like VCF (for a clear error)."""
    import gzip

    opener = gzip.open if path.suffix in (".gz", ".bgz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            columns = None
            for n, line in enumerate(f, 1):
                if line.startswith("##"):
                    continue
                fields = line.rstrip("\n").split("\t")
                if line.startswith("#CHROM"):
                    columns = len(fields)
                    continue
                if columns is None:
                    return f"line {n}: data before the #CHROM header line"
                if len(fields) != columns:
                    return f"line {n}: {len(fields)} tab-separated fields, the header has {columns}"
                if not fields[1].isdigit():
                    return f"line {n}: POS {fields[1]!r} is not a whole number"
                if not re.fullmatch(r"[ACGTNacgtn]+", fields[3]):
                    return f"line {n}: REF {fields[3]!r} is not a sequence of bases"
    except OSError as e:
        return str(e)
    return "a record pysam could not parse"


def read(path: str | Path, tables: Tables, genes: list[str], build: str | None = None,
         sample: str | None = None) -> SampleGenotypes:
    """The sample's genotypes at the allele-defining positions of `genes` on the stated (or
    declared) build; errors name the file, the line or the sample at fault."""
    import pysam

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"VCF {path} does not exist")
    if build is not None and build not in BUILDS:
        raise ConfigError(f"--build {build!r}: expected one of {', '.join(BUILDS)}")
    try:
        vcf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as e:
        raise CorruptDataError(f"{path} is not a readable VCF ({e}; {_bad_line(path)})") from None
    with vcf:
        samples = list(vcf.header.samples)
        if not samples:
            raise CorruptDataError(f"{path} has no sample columns (no genotypes to read)")
        if sample is None:
            if len(samples) > 1:
                raise ConfigError(f"{path} has {len(samples)} samples ({', '.join(samples[:5])}"
                                  f"{', ...' if len(samples) > 5 else ''}): name one with --sample")
            sample = samples[0]
        elif sample not in samples:
            raise ConfigError(f"sample {sample!r} is not in {path} (samples: {', '.join(samples[:10])})")
        declared, evidence = _header_build(vcf.header)
        if build and declared and declared != build:
            raise ConfigError(f"{path} is on {declared} ({evidence}) but --build {build} was given")
        records = []
        try:
            for rec in vcf:
                records.append(rec)
        except (OSError, ValueError) as e:
            raise CorruptDataError(f"{path}: malformed VCF record after {len(records)} good "
                                   f"record(s): {_bad_line(path)} ({e})") from None
        by_pos: dict[tuple[str, int], list] = {}
        for rec in records:
            by_pos.setdefault((_chrom(rec.chrom), rec.pos), []).append(rec)
        chosen = build or declared
        if chosen is None:
            chosen, evidence = _guess_build(tables, genes, by_pos)
        elif build:
            evidence = "--build" + (f" (header agrees: {evidence})" if declared else "")
        found = SampleGenotypes(path, sample, chosen, evidence)
        for gene in genes:
            for allele in tables.alleles.get(gene, {}).values():
                for v in allele.core.get(chosen) or ():
                    if v not in found.sites:
                        found.sites[v] = _site(v, by_pos, sample)
        return found


def _guess_build(tables: Tables, genes: list[str], by_pos: dict) -> tuple[str, str]:
    """With no build declared: the one whose allele-defining positions and REF bases the VCF
    matches; an error when neither or both do."""
    hits = {}
    for b in BUILDS:
        positions = {v for g in genes for a in tables.alleles.get(g, {}).values()
                     for v in (a.core.get(b) or ())}
        hits[b] = sum(1 for v in positions for rec in by_pos.get((_chrom(v.chrom), v.pos), ())
                      if rec.ref[:1].upper() == v.ref[:1].upper())
    best = [b for b in BUILDS if hits[b] and hits[b] == max(hits.values())]
    if len(best) != 1 or min(hits.values()) * 2 > max(hits.values()):
        raise ConfigError("the VCF header names no genome build and its records do not settle it "
                          f"({', '.join(f'{b}: {n} allele-defining positions' for b, n in hits.items())}); "
                          "state it with --build GRCh37 or --build GRCh38")
    return best[0], (f"guessed from REF bases at allele-defining positions "
                     f"({', '.join(f'{b}: {n}' for b, n in hits.items())})")


def _site(v: Variant, by_pos: dict, sample: str) -> Site:
    key = _key(v)
    recs = [r for r in by_pos.get((key[0], key[1]), []) + by_pos.get((_chrom(v.chrom), v.pos), [])]
    recs = list({id(r): r for r in recs}.values())
    if not recs:
        return Site(v, (None, None), phased=False, missing=True)
    mismatch = None
    present: list[bool] = [False, False]
    called: list[bool] = [False, False]
    nocall: list[bool] = [False, False]
    phased, phase_set = True, None
    for rec in recs:
        if rec.pos == v.pos and rec.ref[:1].upper() != v.ref[:1].upper():
            mismatch = f"VCF REF {rec.ref} at {rec.chrom}:{rec.pos}, the table has {v.ref}"
        call = rec.samples[sample]
        gt = call.get("GT") or (None,)
        if len(gt) != 2:
            nocall = [True, True]            # haploid or polyploid: not a diploid call
            continue
        alleles = (rec.ref, *(rec.alts or ()))
        for h, idx in enumerate(gt):
            symbolic = idx is not None and idx < len(alleles) and alleles[idx][:1] in ("*", ".", "<")
            if idx is None or idx >= len(alleles) or symbolic:
                nocall[h] = True
            elif (_chrom(rec.chrom), *minimal(rec.pos, rec.ref, alleles[idx])) == key:
                present[h] = True
            else:
                called[h] = True
        phased = phased and bool(call.phased)
        if "PS" in call and call["PS"] is not None:
            phase_set = call["PS"]
    haps = tuple(1 if present[h] else (None if nocall[h] or not called[h] else 0) for h in (0, 1))
    return Site(v, haps, phased=phased, phase_set=phase_set, ref_mismatch=mismatch)  # type: ignore[arg-type]
