"""ConText-style attributes (Harkema et al. 2009; NegEx, Chapman et al. 2001) on spaCy docs.

Cues (`lexicon.CONTEXT_CUES`) mark an entity negated, uncertain, historical, family or
hypothetical when the entity lies in the cue's scope: after a forward cue or before a backward
cue, in the same sentence, with no terminator ("but", "however", "which", ...) in between and
within a window of words. Pseudo-cues ("no change", "gram negative") block the cues inside them.
"""

from __future__ import annotations

from dataclasses import dataclass

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from iatros.nlp.lexicon import CONTEXT_CUES, PSEUDO_CUES, TERMINATORS

CATEGORIES = ("negated", "uncertain", "historical", "family", "hypothetical")
FORWARD_WINDOW = 12  # words after a forward cue
BACKWARD_WINDOW = 6  # words before a backward cue
_LIST_WORDS = {"or", "and", "nor", "any", "other"}


@dataclass(frozen=True)
class Cue:
    category: str  # a CATEGORY, "pseudo" or "terminate"
    direction: str  # "forward", "backward" or ""
    start: int  # token indices in the doc
    end: int
    text: str


class ConText:
    """Finds cues in a doc and decides each entity's attributes."""

    def __init__(self, nlp: Language) -> None:
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for category, (forward, backward) in CONTEXT_CUES.items():
            self.matcher.add(f"{category}|forward", [nlp.make_doc(t) for t in forward])
            if backward:
                self.matcher.add(f"{category}|backward", [nlp.make_doc(t) for t in backward])
        self.matcher.add("pseudo|", [nlp.make_doc(t) for t in PSEUDO_CUES])
        self.matcher.add("terminate|", [nlp.make_doc(t) for t in TERMINATORS])

    def cues(self, doc: Doc) -> list[Cue]:
        """Every cue in the doc, minus those inside a pseudo-cue."""
        found = []
        for match_id, start, end in self.matcher(doc):
            category, _, direction = doc.vocab.strings[match_id].partition("|")
            found.append(Cue(category, direction, start, end, doc[start:end].text))
        pseudo = [c for c in found if c.category == "pseudo"]
        return [c for c in found if c.category == "pseudo" or not any(
            p.start <= c.start and c.end <= p.end for p in pseudo)]

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
        terms = [c for c in cues if c.category == "terminate" and sent.start <= c.start < sent.end
                 and not (span.start <= c.start < span.end)]
        for cue in cues:
            if cue.category not in out or not (sent.start <= cue.start < sent.end):
                continue
            if cue.start < span.end and span.start < cue.end:  # the cue is part of the entity
                continue
            if cue.direction == "forward" and cue.end <= span.start:
                gap = (cue.end, span.start)
                window = FORWARD_WINDOW
            elif cue.direction == "backward" and cue.start >= span.end:
                gap = (span.end, cue.start)
                window = BACKWARD_WINDOW
            else:
                continue
            words = sum(1 for t in doc[gap[0]:gap[1]] if not t.is_punct and not t.is_space
                        and t.i not in entity_tokens and t.lower_ not in _LIST_WORDS)
            if words > window or any(gap[0] <= t.start < gap[1] for t in terms):
                continue
            out[cue.category] = True
            if cue.text not in used:
                used.append(cue.text)
        return out, used
