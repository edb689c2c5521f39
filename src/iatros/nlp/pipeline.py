"""The extraction pipeline: sentences, sections, entities with attributes, as JSON-ready dicts.

`ClinicalPipeline().extract(text)` returns `{"entities": [...], "sections": [...], ...}` where
each entity has text, label (PROBLEM, SYMPTOM, MEDICATION, LAB, PROCEDURE), character offsets
into the note, the five ConText attributes, the section it sits in, and for medications dose /
route / frequency, for labs value / unit. A trained tagger (a callable from token lists to BIO
tag names) adds disease and chemical mentions the term lists miss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import spacy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from iatros.nlp import chest_findings
from iatros.nlp import lexicon as L
from iatros.nlp.context import ConText
from iatros.nlp.io import CHUNK_CHARS, chunks
from iatros.nlp.radiology import list_item_number, trim_placeholders
from iatros.nlp.sections import Section, find_sections, is_placeholder, section_at
from iatros.nlp.terminology import ConceptIndex, UserTerm, load_index, term_key

Tagger = Callable[[list[list[str]]], list[list[str]]]
LABELS = ("PROBLEM", "SYMPTOM", "MEDICATION", "LAB", "PROCEDURE")
# a tie between lists of the same span goes to the earlier label
_PRIORITY = {"LAB": 0, "MEDICATION": 1, "PROCEDURE": 2, "SYMPTOM": 3, "PROBLEM": 4}
_TAGGER_LABELS = {"Disease": "PROBLEM", "Chemical": "MEDICATION"}
_HISTORY_SECTIONS = {"past_medical_history", "past_surgical_history"}
_NOT_MODIFIERS = {"normal", "denies", "denied", "possible", "history", "no", "without", "mild",
                  "moderate", "severe", "significant", "evidence", "signs", "likely", "probable"}
_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "etc", "no", "approx",
                  "fig", "pt", "pts", "jr", "sr", "inc", "co", "dept", "mg", "ml", "cc"}


@dataclass
class Entity:
    """One extracted mention; `start`/`end` are character offsets into the note."""

    text: str
    label: str
    start: int
    end: int
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    section: str | None = None
    sentence: int = 0
    source: str = "rules"
    cues: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entity as a flat dict (attributes merged in); shallow, without asdict's deep copy
        (a coded entity's codings made that copy a tenth of the extraction time)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "attributes"}
        out["cues"] = list(self.cues)
        out.update(self.attributes)
        return out


@Language.component("clinical_sentences")
def clinical_sentences(doc: Doc) -> Doc:
    """Sentence starts for clinical text: after . ! ? (not after abbreviations), after line
    breaks that end a line with punctuation or a header, before list items and run-together
    ",HEADER:" sections. A numbered item ("1. ... 2. ...") is one sentence with its number, also
    when items run on without a period; "XXXX" placeholders are never headers."""
    prev_i = -1  # the previous non-space token
    last_item = 0  # the number of the last list item that opened a sentence
    starts = np.full(len(doc), -1, dtype=np.int64)  # set all at once: per-token setting is O(n^2)
    if len(doc):
        starts[0] = 1
    toks = list(doc)  # one Token object per token: indexing the Doc builds a new one each time
    for i, tok in enumerate(toks):
        if tok.is_space:
            continue
        if prev_i < 0:
            prev_i = i
            continue
        prev = toks[prev_i]
        gap = prev.whitespace_ + "".join(t.text_with_ws for t in toks[prev_i + 1:i])
        before = toks[prev_i - 1] if prev_i >= 1 else None
        start = False
        item = list_item_number(doc, i) if tok.text.isdigit() else 0
        if prev.text == "." and before is not None and before.text.isdigit() \
                and starts[before.i] == 1:
            start = False  # "1. No acute disease": the item's number already opened it
        elif item and (item == last_item + 1 and item > 1 or item == 1 and (
                prev.text in (":", ".", ";") or "\n" in gap)):
            start = True
        elif prev.text in (".", "!", "?"):
            word = before.text.lower().rstrip(".") if before is not None else ""
            start = word not in _ABBREVIATIONS and not tok.text[:1].islower() \
                and not (tok.like_num and before is not None and before.like_num and not gap)
        elif "\n" in gap:
            upper = prev.text.isupper() and not is_placeholder(prev.text)
            start = ("\n\n" in gap or prev.is_punct or upper
                     or not (tok.text[:1].islower() or is_placeholder(tok.text)))
        elif prev.text == ":" and before is not None and before.text.isupper() and len(before) > 1 \
                and not is_placeholder(before.text):
            start = True
        elif prev.text == "," and tok.text.isupper() and len(tok) > 1 and _header_follows(doc, i) \
                and not is_placeholder(tok.text):
            start = True  # MTSamples runs sections together as ",HEADER:"
        if start and item:
            last_item = item
        if start:
            starts[i] = 1
        prev_i = i
    if len(doc):
        doc.from_array([SENT_START], starts.astype(np.int64).view(np.uint64).reshape(-1, 1))
    return doc


def _header_follows(doc: Doc, i: int) -> bool:
    """Whether tokens from i form an ALL-CAPS header ending in ':' (within 8 tokens)."""
    for tok in doc[i:i + 8]:
        if tok.text == ":":
            return True
        if not (tok.text.isupper() or tok.is_punct or tok.is_space):
            return False
    return False


def make_nlp() -> Language:
    """spaCy's blank English tokenizer plus the clinical sentence splitter."""
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    nlp.max_length = 2 * CHUNK_CHARS
    return nlp


class ClinicalPipeline:
    """Clinical entity extraction with concepts from terminologies (`nlp.terminology`: HPO,
    ICD-10-CM, DrugBank names, the curated lists of `lexicon`, a user's `terms`), ConText
    attributes and an optional trained tagger. `cache_dir` holds the built dictionary (JSON);
    without one it is built in memory (once per process). Chest radiograph findings
    (`nlp.chest_findings`) are added in notes with a FINDINGS section (a radiology report; an
    IMPRESSION alone is common in consult notes too), and in every note with `radiology=True`."""

    def __init__(self, tagger: Tagger | None = None, *, terms: Iterable[UserTerm] = (),
                 cache_dir: str | Path | None = None, radiology: bool = False) -> None:
        self.nlp = make_nlp()
        self.tagger = tagger
        self.concepts = concept_index(cache_dir, terms)
        self.context = ConText(self.nlp)
        self.radiology = radiology
        self._observation_codes: dict[str, dict[str, Any]] = {}

    # -- public -------------------------------------------------------------------------------
    def extract(self, text: str, source: str = "") -> dict[str, Any]:
        """Entities, sections and sentence count of one note (long notes run in chunks)."""
        sections = find_sections(text)
        entities: list[Entity] = []
        n_sent = 0
        for offset, piece in chunks(text):
            doc = self.nlp(piece)
            found = self._entities(doc, piece, offset, sections)
            for e in found:
                e.sentence += n_sent
            entities += found
            n_sent += sum(1 for _ in doc.sents)
        return {"source": source, "entities": [e.to_dict() for e in entities],
                "sections": [s.to_dict() for s in sections], "n_sentences": n_sent,
                "n_characters": len(text)}

    def tag(self, text: str) -> list[dict[str, Any]]:
        """Entities from the trained tagger alone, with its own labels and character offsets."""
        if self.tagger is None:
            raise ValueError("this pipeline has no trained tagger")
        out = []
        for offset, piece in chunks(text):
            doc = self.nlp(piece)
            for start, end, _, _, attrs in self._tagged(doc, []):
                span = doc[start:end]
                out.append({"text": span.text, "label": attrs["type"],
                            "start": span.start_char + offset, "end": span.end_char + offset})
        return out

    def pipe(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        return [self.extract(t) for t in texts]

    # -- internals ----------------------------------------------------------------------------
    def _entities(self, doc: Doc, text: str, offset: int, sections: list[Section]) -> list[Entity]:
        spans = self._candidates(doc, text)
        if self.radiology or any(s.name == "findings" for s in sections):
            spans = _with_observations(spans, self._chest_findings(doc))
        if self.tagger is not None:
            spans += self._tagged(doc, spans)
        spans = _resolve_overlaps(trim_placeholders(doc, spans))
        cues = self.context.by_sentence(doc, self.context.cues(doc))
        inside = {i for s in spans for i in range(s[0], s[1])}  # list items do not use up a scope
        sent_index = {s.start: k for k, s in enumerate(doc.sents)}
        out = []
        for start, end, label, source, attrs in spans:
            span = doc[start:end]
            flags, used = self.context.attributes(doc, span, cues.get(span.sent.start, []), inside)
            if "size" in attrs:
                flags = chest_findings.flags_for(attrs["size"], flags)
            char_start, char_end = span.start_char + offset, span.end_char + offset
            section = section_at(sections, char_start)
            if section is not None and section.start <= char_start < section.body_start:
                continue  # a section header's words ("HISTORY OF PRESENT ILLNESS") are no mention
            if section is not None and label != "MEDICATION" and label != "LAB":
                flags["historical"] |= section.name in _HISTORY_SECTIONS
                flags["family"] |= section.name == "family_history"
            if section is not None and section.name == "allergies" and label == "MEDICATION":
                attrs = {**attrs, "allergy": True}
            attrs = {"concept_id": None, "vocabulary": None, "preferred_name": None, **attrs}
            out.append(Entity(span.text, label, char_start, char_end, **flags,
                              section=section.name if section else None,
                              sentence=sent_index.get(span.sent.start, 0), source=source,
                              cues=used, attributes=attrs))
        return out

    def _candidates(self, doc: Doc, text: str) -> list[tuple[int, int, str, str, dict[str, Any]]]:
        spans = []
        for start, end, hits in self._term_matches(doc):
            span = doc[start:end]
            for label, ids in hits.items():
                if label == "LAB":
                    attrs = _lab_value(text, span.end_char)
                    if attrs is None:
                        continue
                elif label == "MEDICATION":
                    attrs = _medication_details(text, span.end_char, span.sent.end_char)
                else:
                    attrs = {}
                if len(span.text) <= 2 and label != "LAB" and not span.text.isupper():
                    continue  # "mi", "pe", "ct" in lower case are more often words than terms
                spans.append((start, end, label, "rules", {**attrs, **self._coded(ids)}))
        for tok in doc:
            low = tok.lower_
            if L.MED_SUFFIX.match(low):
                spans.append((tok.i, tok.i + 1, "MEDICATION", "rules",
                              _medication_details(text, tok.idx + len(tok), tok.sent.end_char)))
            elif L.PROBLEM_SUFFIX.match(low):
                spans.append((tok.i, tok.i + 1, "PROBLEM", "rules", {}))
            elif low in L.PROBLEM_HEADS:  # "left atrial enlargement", "Lyme disease"
                first = tok.i
                while first > tok.i - 2 and first > tok.sent.start and doc[first - 1].is_alpha \
                        and not doc[first - 1].is_stop and doc[first - 1].lower_ not in _NOT_MODIFIERS:
                    first -= 1
                if first < tok.i:
                    spans.append((first, tok.i + 1, "PROBLEM", "rules", {}))
        return spans

    def _chest_findings(self, doc: Doc) -> list[tuple[int, int, str, str, dict[str, Any]]]:
        """Spans of the CheXpert phrases, coded by their observation's vocabulary term."""
        out = []
        for m in chest_findings.mentions(doc):
            attrs = {**chest_findings.entity_attributes(m), **self._observation_code(m.phrase)}
            out.append((m.start, m.end, "PROBLEM", "rules", attrs))
        return out

    def _observation_code(self, phrase: chest_findings.Phrase) -> dict[str, Any]:
        """The coding of an observation (its code term's concepts), else its name alone."""
        key = phrase.observation
        if key not in self._observation_codes:
            hit = self.concepts.lookup(phrase.code_term) if phrase.code_term else {}
            ids = hit.get("PROBLEM", []) + [i for i in hit.get("SYMPTOM", [])
                                            if i not in hit.get("PROBLEM", [])]
            self._observation_codes[key] = self._coded(ids) or {"preferred_name": key}
        return self._observation_codes[key]

    def _term_matches(self, doc: Doc) -> Iterable[tuple[int, int, dict[str, list[int]]]]:
        """Token spans that form a dictionary term (every length), with the term's {label:
        concepts} (`ConceptIndex.match_tokens` over the non-space tokens)."""
        toks = [t for t in doc if not t.is_space]
        for i, j, hits in self.concepts.match_tokens([t.text for t in toks]):
            yield toks[i].i, toks[j - 1].i + 1, hits

    def _coded(self, ids: list[int]) -> dict[str, Any]:
        """The concept fields of an entity: the preferred coding's id, vocabulary and name, and
        every coding (one per vocabulary) for FHIR."""
        if not ids:
            return {}
        codings = self.concepts.codings(ids)
        return {"concept_id": codings[0]["concept_id"], "vocabulary": codings[0]["vocabulary"],
                "preferred_name": codings[0]["preferred_name"], "codings": codings}

    def _tagged(self, doc: Doc, rule_spans: list[Any]) -> list[tuple[int, int, str, str, dict]]:
        """Spans from the trained tagger, sentence by sentence, over word tokens."""
        sents = [[t for t in s if not t.is_space] for s in doc.sents]
        sents = [s for s in sents if s]
        if not sents:
            return []
        tags = self.tagger([[t.text for t in s] for s in sents])
        out = []
        for tokens, row in zip(sents, tags, strict=True):
            start, kind = None, None
            for k, tag in enumerate([*row, "O"]):
                if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
                    label = _TAGGER_LABELS.get(kind or "", "PROBLEM")
                    first, last = tokens[start].i, tokens[k - 1].i + 1
                    hit = self.concepts.lookup(doc[first:last].text)
                    ids = hit.get(label) or (hit.get("SYMPTOM", []) if label == "PROBLEM" else [])
                    out.append((first, last, label, "ner", {"type": kind or "", **self._coded(ids)}))
                    start = None
                if tag.startswith("B-") or (tag.startswith("I-") and start is None):
                    start, kind = k, tag[2:]
        return out


def concept_index(cache_dir: str | Path | None = None, terms: Iterable[UserTerm] = ()) -> ConceptIndex:
    """The vocabularies' index (cached) plus the curated lists of `lexicon` (their common
    abbreviations coded as the term they stand for) and a user's terms, which come first."""
    index = load_index(cache_dir).derive()
    for label, block in (("PROBLEM", L.PROBLEMS), ("SYMPTOM", L.SYMPTOMS),
                         ("MEDICATION", L.MEDICATIONS), ("PROCEDURE", L.PROCEDURES),
                         ("LAB", L.LABS)):
        for t in L.terms(block):
            index.add_list_term(t, label)
    for short, full in L.ABBREVIATIONS.items():
        hit = index.get(term_key(full)) or {}
        for label, ids in hit.items():
            for i in reversed(ids):
                index.add(term_key(short), label, i)
    for t in terms:
        concept = index.concept(t.vocabulary or "user", t.concept_id, t.term) if t.concept_id else None
        key = term_key(t.term)
        index.add(key, t.label, concept)
        index.extra[key] = {t.label: index.extra[key][t.label]}  # the user's label only
    return index


def _with_observations(spans: list[Any], chest: list[Any]) -> list[Any]:
    """Dictionary spans that contain a chest finding's phrase (or an enlarged structure) take its
    observation ("pleural effusions" is Pleural Effusion, "pulmonary nodule" a Lung Lesion,
    "widened mediastinum" an Enlarged Cardiomediastinum); then the chest spans."""
    out = []
    for s in spans:
        inner = [c for c in chest if s[0] <= c[0] and c[1] <= s[1]
                 and c[4].get("size") in (None, "enlarged")]
        if inner and s[2] in ("PROBLEM", "SYMPTOM") and "observation" not in s[4]:
            s = (*s[:4], {**s[4], "observation": inner[0][4]["observation"]})
        out.append(s)
    return out + chest


def _resolve_overlaps(spans: list[Any]) -> list[Any]:
    """Rule spans first (the longest where they overlap, ties by `_PRIORITY`), then tagger spans
    where no rule span lies: the tagger complements the term lists, it does not override them."""
    ranked = sorted(spans, key=lambda s: (s[3] != "rules", -(s[1] - s[0]), _PRIORITY[s[2]], s[0]))
    taken: set[int] = set()
    kept = []
    for s in ranked:
        if any(i in taken for i in range(s[0], s[1])):
            continue
        taken.update(range(s[0], s[1]))
        kept.append(s)
    return sorted(kept, key=lambda s: s[0])


def _medication_details(text: str, end: int, limit: int) -> dict[str, Any]:
    """Dose, route and frequency written just after a medication name (same sentence)."""
    window = text[end:min(limit, end + 80)]
    out: dict[str, Any] = {}
    for name, pattern in (("dose", L.DOSE), ("route", L.ROUTE), ("frequency", L.FREQUENCY)):
        m = pattern.search(window)
        if m:
            value = m.group(0).strip()
            out[name] = value[:-1] if value.endswith(".") and value.count(".") == 1 else value
    return out


def _lab_value(text: str, end: int) -> dict[str, Any] | None:
    """The value (and unit) written right after a lab name, or None when there is none."""
    m = L.LAB_VALUE.match(text[end:end + 40])
    if not m:
        return None
    value = re.sub(r"\s+", "", m.group("value"))
    out: dict[str, Any] = {"value": value}
    if m.group("unit"):
        out["unit"] = m.group("unit")
    return out


_DEFAULT: ClinicalPipeline | None = None


def extract_text(text: str, source: str = "") -> dict[str, Any]:
    """Extract with a shared rule-only pipeline (built on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ClinicalPipeline()
    return _DEFAULT.extract(text, source)
