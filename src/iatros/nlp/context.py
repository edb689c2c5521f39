"""ConText attributes (Harkema et al. 2009; NegEx, Chapman et al. 2001) on spaCy docs.

The cue set is data, `nlp/data/context_cues.tsv`: the NegEx trigger lexicon and the ConText
history / hypothetical triggers (github.com/chapmanbe/negex, Apache License 2.0), medspaCy 1.3.1's
default ConText rules and negspacy 1.1.0's clinical termset (both MIT License), the cues iatros
shipped before, and radiology phrasing ("clear of", "not visualized", "removed"). The file's header
names each source and licence; every row names the sources that list it.

An entity is negated, uncertain ("possible"), historical, hypothetical or family (experiencer other
than the patient) when it lies in the scope of a cue of that category, in the same sentence: after a
forward cue, before a backward cue, on either side of a bidirectional one, within a window of words
(words of other entities and list conjunctions do not count, so a scope runs across "X, Y, or Z"),
with no terminator of that category in between. Pseudo-cues ("no change", "history and physical")
block the cues of their category inside them. Cues match on non-space tokens, so "family  history
of" or a cue broken over a line still matches; offsets stay those of the original text.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

CATEGORIES = ("negated", "uncertain", "historical", "family", "hypothetical")
SCOPED = ("forward", "backward", "bidirectional")
DIRECTIONS = (*SCOPED, "pseudo", "terminate")
SOURCES = ("negex", "context", "medspacy", "iatros-0", "negspacy", "radiology")
CUE_FILE = Path(__file__).resolve().parent / "data" / "context_cues.tsv"
FORWARD_WINDOW = 12  # words after a forward cue
BACKWARD_WINDOW = 6  # words before a backward cue
_LIST_WORDS = {"or", "and", "nor", "any", "other"}


@dataclass(frozen=True)
class CueRule:
    """One row of the cue file: a phrase, what it marks, which way its scope runs, where from."""

    cue: str
    category: str  # a CATEGORY, or "all" for pseudo and terminate rows
    direction: str  # one of DIRECTIONS
    max_scope: int | None
    source: str


@dataclass(frozen=True)
class Cue:
    category: str  # a CATEGORY, or "all" (pseudo / terminate)
    direction: str  # one of DIRECTIONS
    start: int  # token indices in the doc
    end: int
    text: str
    max_scope: int | None = None


def load_cues(path: Path = CUE_FILE) -> list[CueRule]:
    """The cue rules of a cue file; a bad row raises ValueError naming its line."""
    rules = []
    with open(path, encoding="utf-8", newline="") as handle:
        lines = [(i, line) for i, line in enumerate(handle, 1) if line.strip() and not line.startswith("#")]
    reader = csv.reader([line for _, line in lines], delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if header != ["cue", "category", "direction", "max_scope", "source"]:
        raise ValueError(f"{path}: header must be cue, category, direction, max_scope, source; got {header}")
    for (lineno, _), row in zip(lines[1:], reader, strict=False):
        if len(row) != 5:
            raise ValueError(f"{path}:{lineno}: {len(row)} columns, expected 5")
        cue, category, direction, scope, source = row
        ok_category = category in CATEGORIES or (category == "all" and direction in ("pseudo", "terminate"))
        if not cue.strip() or not ok_category or direction not in DIRECTIONS:
            raise ValueError(f"{path}:{lineno}: bad cue row {row}")
        if not source or any(s not in SOURCES for s in source.split(";")):
            raise ValueError(f"{path}:{lineno}: unknown source {source!r} (known: {', '.join(SOURCES)})")
        rules.append(CueRule(cue, category, direction, int(scope) if scope else None, source))
    return rules


def _terminates(term: Cue, category: str) -> bool:
    """Whether a terminator ends the scope of a cue of `category` (NegEx's negation terminators also
    end its "possible" cues)."""
    return term.category in ("all", category) or (term.category == "negated" and category == "uncertain")


class ConText:
    """Finds cues in a doc and decides each entity's attributes."""

    def __init__(self, nlp: Language, rules: list[CueRule] | None = None) -> None:
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        groups: dict[str, list[str]] = {}
        for rule in load_cues() if rules is None else rules:
            key = f"{rule.category}|{rule.direction}|{rule.max_scope or ''}"
            groups.setdefault(key, []).append(rule.cue)
        for key, phrases in groups.items():
            docs = [nlp.make_doc(p) for p in phrases]
            self.matcher.add(key, [Doc(nlp.vocab, words=[t.text for t in d if not t.is_space]) for d in docs])

    def cues(self, doc: Doc) -> list[Cue]:
        """Every cue in the doc (matched with whitespace tokens skipped), minus those inside a
        pseudo-cue of their category."""
        keep = [t.i for t in doc if not t.is_space]
        view = doc if len(keep) == len(doc) else Doc(doc.vocab, words=[doc[i].text for i in keep])
        found = []
        for match_id, start, end in self.matcher(view):
            category, direction, scope = doc.vocab.strings[match_id].split("|")
            s, e = keep[start], keep[end - 1] + 1
            found.append(Cue(category, direction, s, e, " ".join(view[start:end].text.split()),
                             int(scope) if scope else None))
        pseudo = [c for c in found if c.direction == "pseudo"]
        return [c for c in found if c.direction == "pseudo" or not any(
            p.start <= c.start and c.end <= p.end and p.category in ("all", c.category) for p in pseudo)]

    def by_sentence(self, doc: Doc, cues: list[Cue]) -> dict[int, list[Cue]]:
        """Cues grouped by the start token of their sentence."""
        out: dict[int, list[Cue]] = {}
        for cue in cues:
            out.setdefault(doc[cue.start].sent.start, []).append(cue)
        return out

    def attributes(self, doc: Doc, span: Span, cues: list[Cue], entity_tokens: set[int] = frozenset(),
                   ) -> tuple[dict[str, bool], list[str]]:
        """The attributes of an entity span and the cue texts that set them (`cues`: all of the
        doc's, or just those of the span's sentence). Words of other entities (`entity_tokens`)
        and list conjunctions do not count toward a cue's window, so "denies fever, chills,
        nausea, vomiting, ... or rash" stays in scope to the end of the list."""
        sent = span.sent
        out = dict.fromkeys(CATEGORIES, False)
        used: list[str] = []
        terms = [c for c in cues if c.direction == "terminate" and sent.start <= c.start < sent.end
                 and not (span.start <= c.start < span.end)]
        for cue in cues:
            if cue.direction not in SCOPED or cue.category not in out \
                    or not (sent.start <= cue.start < sent.end):
                continue
            if cue.start < span.end and span.start < cue.end:  # the cue is part of the entity
                continue
            if cue.direction in ("forward", "bidirectional") and cue.end <= span.start:
                gap, window = (cue.end, span.start), FORWARD_WINDOW
            elif cue.direction in ("backward", "bidirectional") and cue.start >= span.end:
                gap, window = (span.end, cue.start), BACKWARD_WINDOW
            else:
                continue
            if cue.max_scope is not None:
                window = cue.max_scope
            words = sum(1 for t in doc[gap[0]:gap[1]] if not t.is_punct and not t.is_space
                        and t.i not in entity_tokens and t.lower_ not in _LIST_WORDS)
            if words > window or any(gap[0] <= t.start < gap[1] and _terminates(t, cue.category)
                                     for t in terms):
                continue
            out[cue.category] = True
            if cue.text not in used:
                used.append(cue.text)
        return out, used
