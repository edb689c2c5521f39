"""The CPIC-derived tables shipped in the pypgx wheel (pypgx/api/data/*.csv), read as packaged.

Nothing here is typed by hand: alleles (function, activity score, allele-defining variants per
genome build), genes (phenotype method, default allele per build, strand, region), diplotype ->
phenotype, activity score -> phenotype equations, phenotype priorities, recommendations and the
CPIC gene-drug pairs all come from pypgx's files. The files are found through the installed
distribution's metadata, so pypgx (and its plotting stack) is never imported.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

from iatros.errors import ConfigError, MissingDataError

PACKAGE = "pypgx"
PINNED_VERSION = "0.27.0"
BUILDS = ("GRCh37", "GRCh38")
FILES = ("allele-table.csv", "gene-table.csv", "diplotype-table.csv", "equation-table.csv",
         "phenotype-table.csv", "recommendation-table.csv", "cpic-table.csv", "variant-table.csv")
# the genes the engine answers for (each checked against the tables in tests/pgx); HLA-B has a
# CPIC pair (abacavir) in cpic-table.csv but no allele or recommendation table in pypgx: it is
# read from an HLA typing result (hla.py)
SUPPORTED_GENES = ("CYP2C19", "CYP2D6", "CYP2C9", "VKORC1", "CYP4F2", "TPMT", "NUDT15", "DPYD",
                   "SLCO1B1", "CYP3A5", "HLA-B")
INDETERMINATE = "Indeterminate"


@dataclass(frozen=True)
class Variant:
    """One allele-defining variant as pypgx names it: CHROM-POS-REF-ALT on one build."""

    chrom: str
    pos: int
    ref: str
    alt: str

    @classmethod
    def parse(cls, name: str) -> Variant:
        chrom, pos, ref, alt = name.strip().split("-")
        return cls(chrom, int(pos), ref, alt)

    @property
    def name(self) -> str:
        return f"{self.chrom}-{self.pos}-{self.ref}-{self.alt}"


@dataclass(frozen=True)
class Allele:
    """A star allele (or named haplotype) of one gene."""

    gene: str
    name: str
    function: str
    score: float | None                     # CPIC activity value; None where the table has N/A
    core: dict[str, frozenset[Variant] | None] = field(hash=False, compare=False)  # per build
    sv: bool = False                        # defined by a structural variant (deletion, ...)


@dataclass(frozen=True)
class Gene:
    """A gene's row of gene-table.csv."""

    name: str
    method: str                             # "Diplotype", "Score" or "N/A"
    ref_allele: str
    default: dict[str, str] = field(hash=False, compare=False)   # allele with no core variant
    strand: str = "+"
    region: dict[str, tuple[str, int, int]] = field(default_factory=dict, hash=False, compare=False)
    has_sv: bool = False


@dataclass
class Tables:
    """All the packaged tables, indexed for look-ups."""

    version: str
    directory: Path
    digests: dict[str, str]
    genes: dict[str, Gene]
    alleles: dict[str, dict[str, Allele]]                 # gene -> name -> allele
    diplotypes: dict[str, dict[tuple[str, str], str]]     # gene -> (a, b) both orders -> phenotype
    diplotype_rows: dict[str, list[tuple[str, str]]]      # gene -> [(diplotype, phenotype)] as listed
    equations: dict[str, list[tuple[str, str]]]           # gene -> [(phenotype, equation)]
    priorities: dict[tuple[str, str], str]                # (gene, phenotype) -> priority
    recommendations: dict[str, list[dict[str, str]]]      # drug -> rows
    cpic_pairs: dict[str, list[dict[str, str]]]           # drug -> rows of cpic-table.csv
    variants: dict[str, dict[str, str]] = field(default_factory=dict)  # build name -> rsID

    def gene(self, name: str) -> Gene:
        """The gene by name (case-insensitive), or a ConfigError naming the supported ones."""
        key = name.strip().upper()
        if key not in SUPPORTED_GENES:
            raise ConfigError(f"unknown or unsupported gene {name!r}: supported are "
                              f"{', '.join(SUPPORTED_GENES)}")
        if key not in self.genes:
            raise ConfigError(f"{key} has no allele table in {PACKAGE} {self.version}")
        return self.genes[key]

    def source(self) -> dict[str, object]:
        """What the answers were drawn from, to cite next to them."""
        return {"package": PACKAGE, "version": self.version,
                "tables": "CPIC-derived tables packaged with pypgx (pypgx/api/data)",
                "files": dict(self.digests)}


def _na(value: str | None) -> str | None:
    return None if value is None or value.strip() in ("", "N/A", "None") else value.strip()


def data_dir() -> tuple[Path, str]:
    """The installed pypgx's data folder and version (without importing pypgx)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise MissingDataError(
            f"the pharmacogenomic tables come from {PACKAGE}=={PINNED_VERSION}, which is not "
            "installed: pip install -c constraints.txt 'iatros[pgx]'") from None
    folder = Path(str(dist.locate_file("pypgx/api/data")))
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise MissingDataError(f"{PACKAGE} {dist.version} at {folder} lacks {', '.join(missing)}")
    return folder, dist.version


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _region(text: str | None) -> tuple[str, int, int] | None:
    m = re.fullmatch(r"(\w+):(\d+)-(\d+)", text or "")
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


@cache
def load() -> Tables:
    """Read every table once per process."""
    folder, version = data_dir()
    genes = {}
    for r in _rows(folder, "gene-table.csv"):
        genes[r["Gene"]] = Gene(
            name=r["Gene"], method=_na(r["PhenotypeMethod"]) or "N/A", ref_allele=r["RefAllele"],
            default={b: r[f"{b}Default"] for b in BUILDS}, strand=r["Strand"],
            region={b: reg for b in BUILDS if (reg := _region(r[f"{b}Region"]))},
            has_sv=r["SV"].upper() == "TRUE")
    alleles: dict[str, dict[str, Allele]] = {}
    for r in _rows(folder, "allele-table.csv"):
        score = _na(r["ActivityScore"])
        core = {b: (frozenset(Variant.parse(v) for v in text.split(",") if v.strip())
                    if (text := _na(r[f"{b}Core"])) else None) for b in BUILDS}
        alleles.setdefault(r["Gene"], {})[r["StarAllele"]] = Allele(
            gene=r["Gene"], name=r["StarAllele"], function=r["Function"],
            score=float(score) if score is not None else None, core=core,
            sv=r["SV"].upper() == "TRUE")
    diplotypes: dict[str, dict[tuple[str, str], str]] = {}
    listed: dict[str, list[tuple[str, str]]] = {}
    for r in _rows(folder, "diplotype-table.csv"):
        a, b = r["Diplotype"].split("/", 1)
        diplotypes.setdefault(r["Gene"], {})[(a, b)] = r["Phenotype"]
        diplotypes[r["Gene"]].setdefault((b, a), r["Phenotype"])
        listed.setdefault(r["Gene"], []).append((r["Diplotype"], r["Phenotype"]))
    equations: dict[str, list[tuple[str, str]]] = {}
    for r in _rows(folder, "equation-table.csv"):
        equations.setdefault(r["Gene"], []).append((r["Phenotype"], r["Equation"]))
    priorities = {(r["Gene"], r["Phenotype"]): r["Priority"]
                  for r in _rows(folder, "phenotype-table.csv")}
    recommendations: dict[str, list[dict[str, str]]] = {}
    for r in _rows(folder, "recommendation-table.csv"):
        recommendations.setdefault(r["Drug"].lower(), []).append(r)
    cpic: dict[str, list[dict[str, str]]] = {}
    for r in _rows(folder, "cpic-table.csv"):
        cpic.setdefault(r["Drug"].lower(), []).append(r)
    rsids = {}
    for r in _rows(folder, "variant-table.csv"):
        for b in BUILDS:
            if _na(r[f"{b}Name"]) and _na(r["rsID"]):
                rsids[r[f"{b}Name"]] = r["rsID"]
    return Tables(version=version, directory=folder,
                  digests={f: _digest(folder / f) for f in FILES}, genes=genes, alleles=alleles,
                  diplotypes=diplotypes, diplotype_rows=listed, equations=equations,
                  priorities=priorities, recommendations=recommendations, cpic_pairs=cpic,
                  variants=rsids)
