"""Names and places that have no fixed shape: found by context and by word lists.

Names (type NAME): words after a title (dr, mr, mrs, ms, prof ...; any case, with or without
the dot), after a relative (son, wife, sister, proxy ...), after a label (name:, signed:, pcp:),
before a credential (", RN", " MD", " RRT" ...), around "per", "aware", "paged", "spoke with";
an initial before a name-like word; any word of the name lists that is not a common or clinical
word; and every later mention of a word found so. Words are Unicode letters with inner
apostrophes or hyphens (José, O'Driscoll, García-Márquez).

Places (type LOCATION): facility names (words before hospital, medical center, memorial, clinic,
rehab, nursing home ...; after st., saint, holy, sacred, mount; university of X), hospital
acronyms ending in H or MC (GH, VAMC), and US cities of 5,000 people or more and states (a city
that is also a common word only when capitalised after in / from / to / at / near).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from iatros.nlp.phi_lexicon import is_clinical, is_name, is_safe, places

WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
TITLES = frozenset(["dr", "doctor", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "rev",
                    "reverend"])
_DOTTED_TITLES = frozenset(["mr", "ms"])  # MR, MS in capitals: mitral regurgitation, mental status
RELATIVES = frozenset(["son", "sons", "daughter", "daughters", "dtr", "dau", "wife", "husband", "hus",
                       "spouse", "partner", "sister", "sisters", "sis", "brother", "brothers", "bro",
                       "mother", "mom", "mum", "father", "dad", "niece", "nephew", "grandson",
                       "granddaughter", "grandchild", "granddtr", "gd", "gs", "aunt", "uncle", "cousin",
                       "friend", "friends", "boyfriend", "girlfriend", "fiance", "fiancee", "fiancé",
                       "fiancée", "neighbor", "neighbour", "proxy", "hcp", "guardian", "stepson",
                       "stepdaughter", "stepmother", "stepfather", "sibling", "siblings", "in-law",
                       "sister-in-law", "brother-in-law", "son-in-law", "daughter-in-law", "mother-in-law",
                       "father-in-law", "godson", "goddaughter", "caregiver"])
LABELS = re.compile(r"\b(?:patient name|pt name|name|patient|pt|signed|signature|"
                    r"electronically signed by|"
                    r"dictated by|transcribed by|attending|pcp|primary care|cc|provider|surgeon|"
                    r"physician|resident|fellow|intern|nurse|rn|contact|emergency contact|proxy|"
                    r"health care proxy|hcp|guardian|from|to|by)\s*[:=]\s*", re.I)
CREDENTIALS = frozenset(["rn", "rrt", "np", "md", "m.d.", "do", "pa", "pa-c", "phd", "cns", "lpn", "crnp",
                         "msw", "licsw", "lcsw", "ot", "pt-c", "rph", "pharmd", "dds", "cna", "crt", "rt",
                         "cnm"])
CONTEXT_BEFORE = frozenset(["per", "paged", "page", "called", "notified", "caseworker", "worker", "therapist",
                            "chaplain", "rabbi", "priest", "pastor", "coordinator", "nurse", "physician",
                            "surgeon", "attending", "resident", "fellow", "intern", "pcp", "cardiologist",
                            "oncologist", "nephrologist", "neurologist", "intensivist", "hospitalist",
                            "np", "rn", "sw", "reach", "reached", "contacted"])
# a contact's phone label or number right after a name ("Lopie Certusi cell# 410-...", "SON ROB 285-...")
PHONE_AFTER = re.compile(r"\s*(?:\([^)\n]{1,20}\)\s*)?(?:(?:cell|home|work|phone|tel|pager|beeper|mobile|"
                         r"office)\b\s*(?:#|no\.?|number)?\s*[:#]?(?=\s*#?\s*\(?\d)|"
                         r"\(?\d{3}\)?[\s./-]{0,2}\d{3}[\s./-]{1,2}\d{4})",
                         re.I)
CONTEXT_PAIRS = frozenset([("spoke", "with"), ("spoke", "to"), ("talked", "with"), ("talked", "to"),
                           ("discussed", "with"), ("seen", "by"), ("evaluated", "by"), ("met", "with"),
                           ("d", "w"), ("signed", "by"), ("dictated", "by")])
CONTEXT_AFTER = frozenset(["aware", "notified", "paged", "called", "informed", "here", "in", "spoke"])
FACILITY = re.compile(r"\b(?:hospital|hosp|medical center|med ctr|medical ctr|memorial|clinic|"
                      r"health center|rehab|rehabilitation|nursing home|nursing facility|"
                      r"assisted living|manor|hospice|vamc|va|healthcare|health system|infirmary|"
                      r"sanatorium|convalescent|regional|campus)\b", re.I)
FACILITY_BEFORE = re.compile(r"\b(?:st\.?|saint|holy|sacred|mount|mt\.?)\s+"
                             r"(?P<name>[^\W\d_]+(?:['’\-][^\W\d_]+)*)", re.I)
UNIVERSITY = re.compile(r"\b(?:university|univ|u)\.?\s*of\s+(?P<name>[^\W\d_]+)", re.I)
ACRONYM = re.compile(r"\b(?:[A-Z]{0,3}(?:H|MC)|[a-z]{0,1}h)\b")
GENERIC = frozenset(["the", "a", "an", "this", "that", "our", "other", "outside", "osh", "local",
                     "community", "previous", "prior", "same", "another", "any", "which", "state", "county",
                     "city", "private", "public", "teaching", "university", "rehab", "acute", "chronic",
                     "nursing", "children's", "women's", "veterans"])
NOT_ACRONYMS = frozenset(["ICH", "SAH", "IVH", "DOH", "PPH", "BPH", "HH", "NH", "OH", "AH", "EH", "UH",
                          "IH", "SH", "CH", "TH", "BH", "DH", "FH", "LH", "MH", "RH", "PH", "ADH", "ACH",
                          "ANH", "ASH", "BMH", "CAH", "DAH", "GAH", "HAH", "HOH", "HTH", "LAH", "LVH",
                          "RVH", "NPH", "PIH", "SIH", "SVH", "TSH", "VH", "PMH", "FMH", "SOH", "CVH", "HSH",
                          "CHH", "FSH", "LDH", "ALH", "AVH", "MCH", "SMC", "ACMC", "VMC", "NMC", "CMC",
                          "EMC", "GMC", "HMC", "IMC", "LMC", "PMC", "RMC", "TMC", "DMC", "ah", "oh", "eh",
                          "uh", "sh", "th", "ch"])
MOVED_TO = re.compile(r"\b(?:transfer(?:red|ed|s)?|trans|admitted|adm|sent|went|came|come|comes|coming|"
                      r"brought|taken|returned|returning|return|discharged|dc'?d|d/c'?d|flighted|moved|"
                      r"referred|go|goes|going|enroute|en route|arrived|arrives|arriving|flown|flew|"
                      r"transported|driven|followed)\s+"
                      r"(?:back\s+)?(?:in)?(?:to|from|at)\s+(?:the\s+)?(?=\w)|\b(?:at|@)\s+(?=[A-Za-z]{2,4}\b)|"
                      r"\b(?:leave|leaves|leaving)\s+(?=[A-Za-z]{2,4}\b)",
                      re.I)
# a ward or unit: an unknown word and its number after a preposition ("on Quartermain 6")
WARD = re.compile(r"\b(?:to|from|on|onto|at|in)\s+(?:the\s+)?(?P<name>[^\W\d_]{4,})\s?\d{1,2}"
                  r"(?![\w/:%-]|\.\d)", re.I)
# an employer or a business: "works at X", "employed by X", "CEO of X", "his business X"
EMPLOYER = re.compile(r"\b(?:works?|worked|working|employed|employee|retired|job|ceo|president|owner|"
                      r"manager|engineer|business|company|firm)\s+(?:(?:at|for|by|of|from|with|in)\s+)?"
                      r"(?:the\s+)?(?=[^\W\d_])", re.I)
NAMED_FACILITY = frozenset(["memorial", "general", "regional", "adventist", "baptist", "methodist",
                            "presbyterian", "lutheran", "mercy", "union", "deaconess", "episcopal"])
_FACILITY_NAMES = frozenset(["heart", "cross", "sinai", "hope", "shepherd", "samaritan", "harbor", "bay",
                             "square", "valley", "county", "city", "university", "children's"])
PLACE_CONTEXT = frozenset(["in", "from", "to", "at", "near", "of", "lives", "live", "living", "moved"])


@dataclass(frozen=True)
class Word:
    """A word token: its text, offsets, and whether the note writes in mixed case."""

    text: str
    start: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower()


def words(text: str) -> list[Word]:
    """The note's word tokens (letters with inner apostrophes or hyphens), in order."""
    return [Word(m[0], m.start(), m.end()) for m in WORD.finditer(text)]


def mixed_case(text: str) -> bool:
    """Whether the note uses both cases (capitalisation then carries information)."""
    letters = [c for c in text[:5000] if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    return bool(letters) and 0.02 < upper / len(letters) < 0.6


def namey(w: Word, cased: bool) -> bool:
    """Could be (part of) a name: not a common or clinical word, or a listed name that the
    note capitalises."""
    if len(w.text) < 2 or w.lower in _NEVER:
        return False
    if not is_safe(w.text):
        return True
    return cased and w.text[0].isupper() and not w.text.isupper() and is_name(w.text)


def _listed(w: Word) -> bool:
    """A listed name that is no function word or clinical term (for runs next to a name)."""
    return len(w.text) > 1 and w.lower not in _NEVER and is_name(w.text) and not is_clinical(w.text)


def namey_word(text: str, cased: bool) -> bool:
    """`namey` for a bare string."""
    return namey(Word(text, 0, len(text)), cased)


def _initial(text: str, w: Word) -> bool:
    return len(w.text) == 1 and text[w.end:w.end + 1] == "."


def _gap(text: str, a: Word, b: Word) -> str:
    return text[a.end:b.start]


def _follow(text: str, toks: list[Word], i: int, cased: bool, *, first_ok: bool = False,
            limit: int = 3) -> int:
    """Index past the run of name words starting at toks[i] (initials allowed; with
    `first_ok` the first word is taken without checking it)."""
    j = i
    while j < len(toks) and j - i < limit:
        w = toks[j]
        if j > i and not re.fullmatch(r"\.? ?|\s", _gap(text, toks[j - 1], w)):
            break
        if _initial(text, w) and j + 1 < len(toks):
            j += 1
            continue
        if not (namey(w, cased) or (first_ok and j == i) or (j > i and _listed(w))):
            break
        j += 1
    while j > i and _initial(text, toks[j - 1]):
        j -= 1
    return j


def _span(toks: list[Word], i: int, j: int) -> tuple[int, int]:
    return toks[i].start, toks[j - 1].end


def name_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, "NAME") for each name the context rules and the lists find."""
    for start, end, kind, _ in name_candidates(text):
        yield start, end, kind


def name_candidates(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, "NAME", rule) for each name found, `rule` naming the rule that found it
    (name:title, name:relative, name:context, name:initial, name:label, name:credential,
    name:after, name:listed, name:repeat)."""
    toks = words(text)
    cased = mixed_case(text)
    found: list[tuple[int, int, str]] = []
    for i, w in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if nxt is None:
            continue
        gap = _gap(text, w, nxt)
        if w.lower in TITLES and re.fullmatch(r"\.?\s{1,3}|\.", gap) and nxt.lower not in _STOP \
                and not (w.lower in _DOTTED_TITLES and w.text.isupper() and not gap.startswith(".")
                         and is_safe(nxt.text)):
            j = _follow(text, toks, i + 1, cased, first_ok=True)
            if j > i + 1:
                found.append((*_span(toks, i + 1, j), "name:title"))
        elif (w.lower in RELATIVES or w.lower in CONTEXT_BEFORE
              or (i > 0 and (toks[i - 1].lower, w.lower) in CONTEXT_PAIRS)) \
                and re.fullmatch(r"[\s,:(\-/]{1,4}", gap) \
                and (namey(nxt, cased) or (w.lower in RELATIVES and _listed(nxt))):
            rule = "name:relative" if w.lower in RELATIVES else "name:context"
            found.append((*_span(toks, i + 1, _follow(text, toks, i + 1, cased, first_ok=True)), rule))
        elif _initial(text, w) and w.text.isupper() and re.fullmatch(r"\. ?", gap) \
                and (w.start == 0 or text[w.start - 1].isspace()) \
                and (namey(nxt, cased) or (_listed(nxt) and nxt.text[0].isupper())):
            found.append((*_span(toks, i, _follow(text, toks, i + 1, cased, first_ok=True)), "name:initial"))
    for m in LABELS.finditer(text):
        k = next((n for n, t in enumerate(toks) if t.start >= m.end()), None)
        if k is not None and toks[k].start - m.end() <= 1 and namey(toks[k], cased):
            found.append((*_span(toks, k, _follow(text, toks, k, cased)), "name:label"))
    found += list(_credential_names(text, toks, cased))
    found += [(s, e, "name:contact") for s, e in _contact_names(text, toks, cased)]
    found += [(s, e, "name:listed") for s, e in _listed_names(text, toks, cased)]
    found += [(s, e, "name:repeat") for s, e in _repeats(text, toks, [(s, e) for s, e, _ in found])]
    for start, end, rule in found:
        yield start, end, "NAME", rule


def _credential_names(text: str, toks: list[Word], cased: bool) -> Iterator[tuple[int, int, str]]:
    """Names before a credential ("J. Smith, RN", "q. lander rrt") or a context word ("aware")."""
    for i, w in enumerate(toks):
        cred = w.lower in CREDENTIALS and (len(w.text) > 2 or w.text.isupper()
                                           or text[max(0, w.start - 2):w.start].strip() == ",")
        after = w.lower in CONTEXT_AFTER and w.lower not in ("here", "in")
        if not (cred or after) or i == 0:
            continue
        j = i
        while j > 0 and i - j < 3:
            prev = toks[j - 1]
            gap = _gap(text, prev, toks[j])
            if not re.fullmatch(r",?\s{1,3}|\.\s{0,2}", gap):
                break
            if not (namey(prev, cased) or _initial(text, prev) or (j < i and _listed(prev))
                    or (cred and is_name(prev.text))):
                break
            j -= 1
        if j < i and (cred or j < i - 1 or _initial(text, toks[j]) or toks[j].text[0].isupper()):
            if after and not any(namey(t, cased) and is_name(t.text) for t in toks[j:i]):
                continue
            yield (*_span(toks, j, i), "name:credential" if cred else "name:after")


def _contact_names(text: str, toks: list[Word], cased: bool) -> Iterator[tuple[int, int]]:
    """One to three name-like words right before a phone label or number ("Lopie Certusi cell#")."""
    for m in PHONE_AFTER.finditer(text):
        k = next((n for n, t in enumerate(toks) if t.end > m.start()), len(toks))
        j = k
        while j > 0 and k - j < 3 and toks[j - 1].end <= m.start() \
                and (j == k or re.fullmatch(r" {1,2}", _gap(text, toks[j - 1], toks[j]))) \
                and toks[j - 1].lower not in _NEVER and not is_clinical(toks[j - 1].text) \
                and (namey(toks[j - 1], cased) or (cased and toks[j - 1].text[0].isupper()
                                                   and not is_safe(toks[j - 1].text))
                     or _listed(toks[j - 1])):
            j -= 1
        if j < k and re.fullmatch(r"\s*", text[toks[k - 1].end:m.start()]):
            yield toks[j].start, toks[k - 1].end


def _listed_names(text: str, toks: list[Word], cased: bool) -> Iterator[tuple[int, int]]:
    """Words of the name lists that are no common or clinical word (length 3 or more), with
    the name-like words right before and after them."""
    for i, w in enumerate(toks):
        if len(w.text) >= 3 and is_name(w.text) and not is_safe(w.text) \
                and (not cased or w.text[0].isupper()):
            j = i
            while j > 0 and i - j < 2 and _gap(text, toks[j - 1], toks[j]) == " " \
                    and (namey(toks[j - 1], cased) or _listed(toks[j - 1])):
                j -= 1
            yield toks[j].start, toks[_follow(text, toks, i, cased, first_ok=True) - 1].end


def _repeats(text: str, toks: list[Word], found: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Every other mention of a word already found as (part of) a name."""
    names: set[str] = set()
    for start, end in found:
        for m in WORD.finditer(text, start, end):
            if len(m[0]) > 2 and m[0].lower() not in _STOP and not is_safe(m[0]):
                names.add(m[0].lower())
    for w in toks:
        if w.lower in names:
            yield w.start, w.end


def place_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, "LOCATION") for facilities, hospital acronyms, cities and states."""
    for start, end, kind, _ in place_candidates(text):
        yield start, end, kind


def place_candidates(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, "LOCATION", rule) for facilities (place:facility, place:saint,
    place:university), hospital acronyms (place:acronym), places after "transferred to" ...
    (place:moved), cities and states (place:gazetteer)."""
    toks = words(text)
    cased = mixed_case(text)
    index = {w.start: k for k, w in enumerate(toks)}
    for m in FACILITY.finditer(text):
        k = next((n for n, t in enumerate(toks) if t.start >= m.start()), None)
        if k is None:
            continue
        j = k
        while j > 0 and k - j < 3 and toks[j - 1].lower not in _STOP | GENERIC \
                and re.fullmatch(r"[ \t]{1,3}|-", _gap(text, toks[j - 1], toks[j])) \
                and (j < k or namey(toks[j - 1], cased) or is_name(toks[j - 1].text)
                     or toks[j - 1].lower in places() or toks[j - 1].lower in NAMED_FACILITY
                     or (cased and toks[j - 1].text[:1].isupper() and toks[j - 1].lower in _FACILITY_NAMES)):
            j -= 1
        if j < k:
            yield toks[j].start, m.end(), "LOCATION", "place:facility"
    for pattern, rule in ((FACILITY_BEFORE, "place:saint"), (UNIVERSITY, "place:university")):
        for m in pattern.finditer(text):
            first = m[0].split()[0].rstrip(".").lower()
            if m["name"].lower() in _STOP or (first in ("st", "mt") and not (
                    (namey_word(m["name"], cased) or is_name(m["name"]))
                    and (not cased or m["name"][0].isupper()))):
                continue
            end = m.end("name")
            k = index.get(m.start("name"))
            if k is not None and k + 1 < len(toks) and namey(toks[k + 1], cased) \
                    and _gap(text, toks[k], toks[k + 1]) == " ":
                end = toks[k + 1].end
            yield m.start(), end, "LOCATION", rule
    for m in ACRONYM.finditer(text):
        if m[0] not in NOT_ACRONYMS and m[0].upper() not in NOT_ACRONYMS and len(m[0]) >= 2 \
                and (not is_safe(m[0]) or ((_moved_before(text, m.start())
                                            or (len(m[0]) <= 3 and _to_before(text, m.start())))
                                           and not is_clinical(m[0]))):
            yield m.start(), m.end(), "LOCATION", "place:acronym"
    for m in MOVED_TO.finditer(text):
        k = index.get(m.end())
        if k is None or toks[k].lower in _NEVER or len(toks[k].text) < 3 or is_clinical(toks[k].text):
            continue
        w = toks[k]
        if not is_safe(w.text) or (cased and w.text[0].isupper() and not w.text.isupper()
                                   and w.lower not in _DEPARTMENTS):
            yield w.start, w.end, "LOCATION", "place:moved"
    for m in WARD.finditer(text):
        name = m["name"]
        if not is_safe(name) and not is_clinical(name) and name.lower() not in _NEVER \
                and (not is_name(name) or (cased and name[0].isupper())):
            yield m.start("name"), m.end("name"), "LOCATION", "place:ward"
    for m in EMPLOYER.finditer(text):
        k = index.get(m.end())
        if k is None:
            continue
        j = k
        while j < len(toks) and j - k < 3 and toks[j].lower not in _STOP \
                and (j == k or _gap(text, toks[j - 1], toks[j]) == " ") \
                and ((cased and toks[j].text[0].isupper()) or (not is_safe(toks[j].text)
                                                               and not is_clinical(toks[j].text))):
            j += 1
        if j > k:
            yield toks[k].start, toks[j - 1].end, "LOCATION", "place:employer"
    yield from _gazetteer(text, toks, cased)


def _moved_before(text: str, start: int) -> bool:
    """Whether "transferred to (the)", "admitted from", "at" ... ends right at `start`."""
    return any(m.end() == start for m in MOVED_TO.finditer(text, max(0, start - 40), start + 12))


def _to_before(text: str, start: int) -> bool:
    """Whether "to " ends right at `start` ("sent to GH")."""
    return re.search(r"\bto\s+$", text[max(0, start - 6):start], re.I) is not None


def _gazetteer(text: str, toks: list[Word], cased: bool) -> Iterator[tuple[int, int, str, str]]:
    """Cities and states from the place lists, one to three words long."""
    known = places()
    for i, w in enumerate(toks):
        for n in (3, 2, 1):
            if i + n > len(toks):
                continue
            group = toks[i:i + n]
            if any(_gap(text, a, b) != " " for a, b in zip(group, group[1:], strict=False)):
                continue
            phrase = " ".join(t.lower for t in group)
            if phrase not in known:
                continue
            common = n == 1 and (is_safe(w.text) or is_name(w.text))
            if common and not (cased and w.text[0].isupper() and i > 0
                               and toks[i - 1].lower in PLACE_CONTEXT
                               and _gap(text, toks[i - 1], w).isspace()):
                continue
            yield group[0].start, group[-1].end, "LOCATION", "place:gazetteer"
            break


_STOP = frozenset(["a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to", "for", "with",
                   "without", "by", "from", "per", "via", "into", "onto", "over", "under", "is", "are",
                   "was", "were", "be", "been", "being", "has", "have", "had", "do", "does", "did", "will",
                   "would", "shall", "should", "can", "could", "may", "might", "must", "not", "no", "yes",
                   "he", "she", "it", "they", "them", "his", "her", "hers", "its", "their", "this", "that",
                   "these", "those", "who", "whom", "whose", "which", "what", "when", "where", "why", "how",
                   "here", "there", "then", "than", "so", "as", "also", "very", "all", "any", "some",
                   "each", "every", "aware", "notified", "called", "paged", "spoke", "speak", "spoken",
                   "talked", "updated", "informed", "visited", "visit", "out", "up", "down", "am", "pm",
                   "pt", "pts", "patient", "patients", "family", "said", "states", "stated", "says", "re",
                   "regarding", "about", "today", "tonight", "yesterday", "tomorrow", "morning", "evening",
                   "night"])
# words that are never (part of) a name: function words, relatives, roles, verbs the noisy lists hold
_NEVER = _STOP | RELATIVES | CREDENTIALS | TITLES | frozenset(
    ["came", "made", "said", "went", "got", "told", "asked", "left", "stayed", "arrived", "brought", "took",
     "gave", "seen", "wants", "will", "family", "friend", "friends", "team", "staff", "house", "unit"])
_DEPARTMENTS = frozenset(["radiology", "cardiology", "surgery", "rehab", "rehabilitation", "floor", "unit",
                          "icu", "oncology", "neurology", "dialysis", "pathology", "pharmacy", "home",
                          "bed", "room", "ward", "service", "clinic", "lab", "hospital", "the", "her",
                          "his", "their", "nursing", "medicine", "or", "ir", "endoscopy", "echo"])
