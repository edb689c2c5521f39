"""Finding PHI in clinical text: the stable detector API.

    from iatros.nlp.phi import find_phi, PhiSpan
    spans: list[PhiSpan] = find_phi(text)            # rules and word lists
    spans = find_phi(text, tagger=my_tagger)         # plus a trained token tagger (union)
    for s in spans:
        print(s.start, s.end, s.type, text[s.start:s.end])

`find_phi(text, *, tagger=None, types=None) -> list[PhiSpan]`: non-overlapping spans in text
order; `PhiSpan(start, end, type)` with `text[start:end]` the PHI and `type` one of `PHI_TYPES`.
Overlapping findings merge into one span whose type is the most specific one (an e-mail inside
a URL stays EMAIL, a date inside a record number becomes MRN, a surname in a hospital's name
becomes LOCATION). `types` keeps only those types.
A `tagger` is any callable from token lists to BIO tag names (`iatros.nlp.phi_tokens`), such as
a run of `iatros train deid-physionet` loaded by `iatros.api.nlp.load_tagger`.
A learned span filter (`iatros.nlp.phi_filter`, shipped weights; `filtered=False` turns it off)
drops rule findings that its gradient-boosted trees score as unlikely PHI, at a threshold chosen
for recall first; findings a tagger span overlaps are kept.

The 18 HIPAA Safe Harbor identifiers (45 CFR 164.514(b)(2)) map to these types:
 1 names NAME | 2 geographic subdivisions smaller than a state ADDRESS, ZIP, LOCATION (cities,
 facilities; states too, conservatively) | 3 dates and ages over 89 DATE, AGE | 4 telephone
 PHONE | 5 fax FAX | 6 e-mail EMAIL | 7 SSN SSN | 8 medical record numbers MRN | 9 health plan
 beneficiary numbers HEALTH_PLAN | 10 account numbers ACCOUNT | 11 certificate / licence numbers
 LICENSE | 12 vehicle identifiers and plates VEHICLE | 13 device identifiers and serial numbers
 DEVICE | 14 URLs URL | 15 IP addresses IP | 16 biometric identifiers BIOMETRIC | 17 full-face
 photographs PHOTO (text can only name an image file) | 18 any other unique number or code ID.

Detection is case-insensitive and Unicode-aware; it never fetches anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from iatros.nlp.phi_filter import NoteContext, SpanFilter, default_filter, group_candidates, span_features
from iatros.nlp.phi_names import name_candidates, place_candidates
from iatros.nlp.phi_patterns import pattern_candidates
from iatros.nlp.phi_tokens import Tagger, tagger_spans

# most specific first: decides the type of merged overlapping findings
PHI_TYPES = ("EMAIL", "URL", "IP", "SSN", "MRN", "ACCOUNT", "HEALTH_PLAN", "LICENSE", "VEHICLE",
             "DEVICE", "BIOMETRIC", "PHOTO", "ID", "FAX", "PHONE", "ADDRESS", "ZIP", "AGE", "DATE",
             "LOCATION", "NAME")
_RANK = {t: i for i, t in enumerate(PHI_TYPES)}


@dataclass(frozen=True, order=True)
class PhiSpan:
    """A piece of PHI: `text[start:end]`, of type `type` (one of PHI_TYPES)."""

    start: int
    end: int
    type: str


def rule_candidates(text: str) -> list[tuple[int, int, str, str]]:
    """Every finding of the patterns, name rules and place rules, overlapping or not, as
    (start, end, type, rule) with `rule` naming the rule that fired."""
    return [*pattern_candidates(text), *name_candidates(text), *place_candidates(text)]


def rule_spans(text: str) -> list[tuple[int, int, str]]:
    """Every finding of the patterns, name rules and place rules, overlapping or not."""
    return [(s, e, t) for s, e, t, _ in rule_candidates(text)]


def merge(found: Iterable[tuple[int, int, str]]) -> list[PhiSpan]:
    """Overlapping findings merged into their union, typed by the most specific member."""
    ordered = sorted((s, e, t) for s, e, t in found if 0 <= s < e)
    out: list[list[int | str]] = []
    for s, e, t in ordered:
        if out and s < int(out[-1][1]):
            last = out[-1]
            last[1] = max(int(last[1]), e)
            if _RANK.get(t, len(_RANK)) < _RANK.get(str(last[2]), len(_RANK)):
                last[2] = t
        else:
            out.append([s, e, t])
    return [PhiSpan(int(s), int(e), str(t)) for s, e, t in out]


def find_phi(text: str, *, tagger: Tagger | None = None, rules: bool = True,
             types: Iterable[str] | None = None, filtered: bool = True,
             span_filter: SpanFilter | None = None) -> list[PhiSpan]:
    """PHI spans of `text`, non-overlapping and in order (see the module docstring).

    With `filtered` (default), each merged rule finding goes through the learned span filter
    (`span_filter`, else the shipped one, `iatros.nlp.phi_filter`), which drops the ones it
    scores as unlikely PHI; findings that a `tagger` span overlaps are always kept, and so are
    the tagger's own spans."""
    groups = group_candidates(rule_candidates(text), _RANK) if rules else []
    tagged = tagger_spans(text, tagger) if tagger is not None else []
    keeper = (span_filter or default_filter()) if filtered else None
    if keeper is not None and groups:
        ctx = NoteContext(text)
        groups = [g for g in groups if any(s < g.end and g.start < e for s, e, _ in tagged)
                  or keeper.keep(span_features(ctx, g))]
    spans = merge([(g.start, g.end, g.type) for g in groups] + tagged)
    if types is not None:
        keep = set(types)
        spans = [s for s in spans if s.type in keep]
    return spans
