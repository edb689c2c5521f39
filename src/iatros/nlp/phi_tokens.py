"""Notes as token sequences for a PHI tagger, and back: the one tokenization that training
(`iatros.tasks.deid`) and detection (`iatros.nlp.phi.find_phi(tagger=...)`) share.

Tokens are runs of letters or digits (with inner apostrophes) or single other characters, with
their character offsets. A sequence is one line of the note, cut into pieces of at most
`MAX_TOKENS` tokens. Tags are BIO names ("B-NAME", "I-NAME", "O").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]|_")
MAX_TOKENS = 64
TAG_TYPES = ("NAME", "DATE", "LOCATION", "PHONE", "AGE", "ID")
Tagger = Callable[[list[list[str]]], list[list[str]]]


@dataclass(frozen=True)
class TokenSeq:
    """One tagger input: tokens and their (start, end) offsets in the note."""

    tokens: list[str]
    offsets: list[tuple[int, int]]


def sequences(text: str, max_tokens: int = MAX_TOKENS) -> list[TokenSeq]:
    """The note's lines as token sequences (long lines cut every `max_tokens` tokens)."""
    out: list[TokenSeq] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        found = [(m[0], (pos + m.start(), pos + m.end())) for m in TOKEN.finditer(line)]
        for k in range(0, len(found), max_tokens):
            part = found[k:k + max_tokens]
            out.append(TokenSeq([t for t, _ in part], [o for _, o in part]))
        pos += len(line)
    return out


def bio_tags(seq: TokenSeq, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """BIO tag names of a sequence's tokens from character spans (a token overlapping a span
    takes its type; B on the span's first token)."""
    tags = ["O"] * len(seq.tokens)
    for start, end, kind in spans:
        first = True
        for i, (s, e) in enumerate(seq.offsets):
            if s < end and start < e:
                tags[i] = f"{'B' if first else 'I'}-{kind}"
                first = False
    return tags


def tagged_spans(seq: TokenSeq, tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Character spans of the entities in a BIO-tagged sequence (an I- after O starts one)."""
    spans: list[tuple[int, int, str]] = []
    current: list[int | str] | None = None
    for (s, e), tag in zip(seq.offsets, tags, strict=False):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind and tag.startswith("I-") and current and current[2] == kind:
            current[1] = e
            continue
        if current:
            spans.append((int(current[0]), int(current[1]), str(current[2])))
        current = [s, e, kind] if kind else None
    if current:
        spans.append((int(current[0]), int(current[1]), str(current[2])))
    return spans


def tagger_spans(text: str, tagger: Tagger, batch: int = 256) -> list[tuple[int, int, str]]:
    """The entities a trained tagger finds in `text`, as character spans."""
    seqs = [s for s in sequences(text) if s.tokens]
    out: list[tuple[int, int, str]] = []
    for k in range(0, len(seqs), batch):
        part = seqs[k:k + batch]
        for seq, tags in zip(part, tagger([s.tokens for s in part]), strict=True):
            out += tagged_spans(seq, tags)
    return out
