"""Chest radiograph findings named the way radiologists write them, from the CheXpert labeler's
mention phrases (data: `nlp/data/chest_findings.tsv`, with its source and licence).

Two kinds of phrase:

- a **mention** names the finding ("effusions", "consolidative opacity", "pneumothoraces");
  ConText decides whether it is negated, uncertain or historical, as for any entity;
- an **attribute** names a structure whose stated size decides the finding: "heart size",
  "cardiac silhouette" for cardiomegaly, "mediastinal contours" for an enlarged cardiomediastinum.
  The size word in the same clause decides: enlarged / prominent / widened / increased -> present,
  normal / unremarkable / within normal limits -> absent, borderline / upper limits of normal /
  top normal -> uncertain; "not" or "no" just before the size word turns present into absent.
  An attribute with no size word ("the cardiac silhouette is stable") is no mention.

`mentions(doc)` gives token spans with their observation, coding term and, for attributes, the
state; the pipeline codes them and merges them with the dictionary's spans (the longer span
wins, so "pleural effusions" keeps its vocabulary coding and "effusions" alone gains one).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from iatros.errors import ConfigError

PHRASE_FILE = Path(__file__).resolve().parent / "data" / "chest_findings.tsv"
KINDS = ("mention", "attribute")
STATES = ("enlarged", "normal", "borderline")
AFTER_WORDS = 8  # words after an attribute in which its size word may stand
BEFORE_WORDS = 3  # ... and before it ("mildly enlarged cardiac silhouette")
_STATE_PATTERNS = (  # first match wins: "upper limits of normal" is borderline, not normal
    ("borderline", r"borderline|(?:at\s+)?(?:the\s+)?upper\s+limits?\s+of\s+normal|"
                   r"top[\s-]+(?:of\s+)?normal|high[\s-]+normal|upper[\s-]+normal"),
    ("normal", r"normal|unremarkable|within\s+normal\s+limits"),
    ("enlarged", r"enlarg\w*|large|larger|increased|prominen\w*|widen\w*|dilat\w*|"
                 r"cardiomegaly"),
)
_STATE = re.compile("|".join(f"(?P<{n}>\\b(?:{p})\\b)" for n, p in _STATE_PATTERNS), re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|without|nor)\s+(?:\w+\s+)?$", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:]|\bbut\b|\bhowever\b|\bwhereas\b", re.IGNORECASE)


@dataclass(frozen=True)
class Phrase:
    """One row of the phrase file."""

    observation: str
    phrase: str
    kind: str
    code_term: str


@dataclass(frozen=True)
class Match:
    """A phrase found in a doc: tokens [start, end), its row, and an attribute's state."""

    start: int
    end: int
    phrase: Phrase
    state: str | None = None


def read_phrases(path: str | Path = PHRASE_FILE) -> list[Phrase]:
    """The rows of a phrase file (tab-separated, # comments, one header row)."""
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the chest findings file ({e})") from e
    rows = list(csv.DictReader(lines, delimiter="\t"))
    out = []
    for n, row in enumerate(rows, start=2):
        if row.get("kind") not in KINDS or not row.get("observation") or not row.get("phrase"):
            raise ConfigError(f"{p}: data row {n}: expected observation, phrase, kind "
                              f"({' or '.join(KINDS)}), code_term; got {row}")
        out.append(Phrase(row["observation"].strip(), row["phrase"].strip().lower(),
                          row["kind"], (row.get("code_term") or "").strip()))
    return out


def _pattern(phrase: str) -> str:
    """A phrase as a regular expression: words separated by spaces or hyphens, a trailing "*"
    any word ending (the caller anchors it on a word boundary)."""
    stem = phrase.endswith("*")
    words = re.split(r"[\s-]+", phrase.rstrip("*"))
    body = r"[\s-]+".join(re.escape(w) for w in words)
    return body + (r"\w*" if stem else r"\b")


@lru_cache(maxsize=4)
def _compiled(path: str) -> tuple[re.Pattern[str], list[Phrase]]:
    """One alternation over every phrase, longest first, and the rows in the same order."""
    phrases = sorted(read_phrases(path), key=lambda p: -len(p.phrase))
    # one word boundary in front of the whole alternation: positions inside words fail at once
    pattern = r"\b(?:" + "|".join(f"(?P<p{i}>{_pattern(p.phrase)})" for i, p in enumerate(phrases)) + ")"
    return re.compile(pattern, re.IGNORECASE), phrases


def state_of(text: str, before: str) -> str | None:
    """An attribute's state from the text after it (up to the end of its clause) and just before
    it: the first size word after it, else the nearest before it; None without one."""
    clause = _CLAUSE_END.split(text, maxsplit=1)[0]
    after = " ".join(clause.split()[:AFTER_WORDS])
    m = _STATE.search(after)
    if m is not None:
        return _negated(m.lastgroup or "", after[:m.start()])
    head = " ".join(_CLAUSE_END.split(before)[-1].split()[-BEFORE_WORDS:])
    found = list(_STATE.finditer(head))
    if not found:
        return None
    m = found[-1]
    return _negated(m.lastgroup or "", head[:m.start()])


def _negated(state: str, preceding: str) -> str:
    """"not enlarged" is normal; "not normal" is enlarged; borderline stays borderline."""
    if state != "borderline" and _NEGATION.search(preceding):
        return "normal" if state == "enlarged" else "enlarged"
    return state


def mentions(doc: Doc, path: str | Path = PHRASE_FILE) -> list[Match]:
    """Every phrase of the file in a doc, as token spans (attributes only with a state)."""
    pattern, phrases = _compiled(str(path))
    text = doc.text
    out = []
    for m in pattern.finditer(text):
        phrase = phrases[int((m.lastgroup or "p0")[1:])]
        span = doc.char_span(m.start(), m.end(), alignment_mode="expand")
        if span is None or len(span) == 0:
            continue
        state = None
        if phrase.kind == "attribute":
            sent = span.sent
            state = state_of(text[m.end():sent.end_char], text[sent.start_char:m.start()])
            if state is None:
                continue
        out.append(Match(span.start, span.end, phrase, state))
    return out


def flags_for(state: str, flags: dict[str, bool]) -> dict[str, bool]:
    """ConText flags of an attribute mention: its state decides negation and uncertainty (a
    "no" earlier in the sentence says nothing about "heart size is enlarged")."""
    return {**flags, "negated": state == "normal",
            "uncertain": flags.get("uncertain", False) or state == "borderline"}


def entity_attributes(match: Match) -> dict[str, Any]:
    """The attributes an entity from a phrase carries besides its coding."""
    out: dict[str, Any] = {"observation": match.phrase.observation}
    if match.state is not None:
        out["size"] = match.state
    return out
