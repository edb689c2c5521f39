"""HLA-B*57:01 carrier status and abacavir (CPIC).

Source: CPIC guidelines for HLA-B genotype and abacavir dosing, Martin et al., Clin Pharmacol
Ther 2012;91:734-8 (PMID 22378157) and the 2014 update, Clin Pharmacol Ther 2014;95:499-500
(PMID 24561393), which left the recommendations unchanged (both cited in pypgx's cpic-table.csv).
Table of the guideline, both rows classified strong:

- HLA-B*57:01 carrier (one or two copies): significantly increased risk of abacavir
  hypersensitivity; abacavir is not recommended.
- Non-carrier: low or reduced risk of abacavir hypersensitivity; use abacavir per standard
  dosing guidelines.

pypgx ships no HLA-B allele table, so the carrier status comes from an HLA typing result given
by the user: two alleles (``HLA-B=*57:01/*08:01``) or a test result (``HLA-B*57:01=positive``).
HLA alleles are not typed from the short variants of a VCF here: no tag SNP is used, so a VCF
gives "indeterminate" and names the typing result that is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iatros.errors import ConfigError
from iatros.pgx.phenotypes import GeneResult

GENE = "HLA-B"
POSITIVE, NEGATIVE = "*57:01 positive", "*57:01 negative"   # CPIC's phenotype terms
RECOMMENDATION = {
    POSITIVE: ("Significantly increased risk of abacavir hypersensitivity. Abacavir is not "
               "recommended (CPIC, strong)."),
    NEGATIVE: ("Low or reduced risk of abacavir hypersensitivity. Use abacavir per standard "
               "dosing guidelines (CPIC, strong)."),
}
SOURCE = ("CPIC guidelines for HLA-B genotype and abacavir dosing, Clin Pharmacol Ther "
          "2012;91:734-8 and 2014 update, Clin Pharmacol Ther 2014;95:499-500 (PMID 24561393)")
VCF_REASON = ("HLA-B*57:01 needs an HLA typing result (give it with --diplotype "
              "HLA-B=*57:01/*08:01 or HLA-B*57:01=positive|negative): HLA alleles are not typed "
              "from the short variants of a VCF here, and no tag SNP is used in their place")
_ALLELE = re.compile(r"(?:HLA-)?(?:B)?\*?(\d{2,3})((?::\d{2,4}){0,3})([A-Z]?)", re.IGNORECASE)
_OLD_ALLELE = re.compile(r"(?:HLA-)?(?:B)?\*?(\d{2})(\d{2})([A-Z]?)", re.IGNORECASE)  # B*5701
_RESULT_WORDS = {"positive": POSITIVE, "carrier": POSITIVE, "present": POSITIVE,
                 "detected": POSITIVE, "negative": NEGATIVE, "non-carrier": NEGATIVE,
                 "noncarrier": NEGATIVE, "absent": NEGATIVE, "not detected": NEGATIVE}


@dataclass(frozen=True)
class HlaAllele:
    """An HLA-B allele name: its fields ('57', '01', ...) and expression suffix ('N', 'L', ...)."""

    fields: tuple[str, ...]
    suffix: str = ""

    @property
    def name(self) -> str:
        return "*" + ":".join(self.fields) + self.suffix


def parse_allele(text: str) -> HlaAllele:
    """'*57:01', 'B*57:01:01', 'HLA-B*08:01', '57:01' or the older 'B*5701' -> an HlaAllele; a
    ConfigError otherwise."""
    m = _ALLELE.fullmatch(text.strip())
    old = None if m else _OLD_ALLELE.fullmatch(text.strip())
    if old:
        return HlaAllele((old.group(1), old.group(2)), old.group(3).upper())
    if not m:
        raise ConfigError(f"HLA-B allele {text!r}: expected an HLA-B allele name such as *57:01 "
                          "or *08:01 (fields separated by ':')")
    fields = (m.group(1), *[f for f in m.group(2).split(":") if f])
    return HlaAllele(fields, m.group(3).upper())


def carries_5701(allele: HlaAllele) -> bool | None:
    """True for *57:01 (any higher-resolution field), False for an allele that is not, None when
    the name cannot tell (one field only, *57; or *57:01 with an expression suffix)."""
    if allele.fields[0].lstrip("0") != "57":
        return False
    if len(allele.fields) < 2:
        return None
    if allele.fields[1] != "01":
        return False
    return None if allele.suffix else True


def is_hla_b(text: str) -> bool:
    """Whether a --diplotype text is an HLA-B typing result (HLA-B=... or HLA-B*57:01=...)."""
    return text.strip().upper().startswith(GENE)


def from_text(text: str) -> GeneResult:
    """'HLA-B=*57:01/*08:01' or 'HLA-B*57:01=positive' -> HLA-B*57:01 carrier status."""
    head, sep, rest = text.partition("=")
    head, rest = head.strip(), rest.strip()
    if not sep or not rest:
        raise ConfigError(f"{text!r}: expected HLA-B=ALLELE/ALLELE (e.g. HLA-B=*57:01/*08:01) or "
                          "HLA-B*57:01=positive|negative")
    if head.upper() != GENE:
        allele = parse_allele(head)
        if allele.fields[:2] != ("57", "01") or allele.suffix:
            raise ConfigError(f"{text!r}: a test result is read for HLA-B*57:01 only "
                              "(HLA-B*57:01=positive|negative)")
        status = _RESULT_WORDS.get(rest.lower())
        if status is None:
            raise ConfigError(f"{text!r}: expected positive or negative after HLA-B*57:01=")
        return GeneResult(GENE, None, status, notes=[f"HLA-B*57:01 test result: {rest.lower()}"])
    parts = rest.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"{text!r}: expected HLA-B=ALLELE/ALLELE, e.g. HLA-B=*57:01/*08:01")
    alleles = [parse_allele(p) for p in parts]
    diplotype = "/".join(a.name for a in alleles)
    calls = [carries_5701(a) for a in alleles]
    if True in calls:
        return GeneResult(GENE, diplotype, POSITIVE)
    if None in calls:
        unclear = [a.name for a, c in zip(alleles, calls, strict=True) if c is None]
        return GeneResult(GENE, diplotype, "Indeterminate", status="indeterminate", reasons=[
            f"{', '.join(unclear)} does not tell whether HLA-B*57:01 is carried (two-field "
            "resolution without an expression suffix is needed, e.g. *57:01 or *57:03)"])
    return GeneResult(GENE, diplotype, NEGATIVE)


def from_vcf() -> GeneResult:
    """What a VCF gives for HLA-B: indeterminate, naming the typing result needed."""
    return GeneResult(GENE, None, "Indeterminate", status="indeterminate", reasons=[VCF_REASON])
