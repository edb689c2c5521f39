"""Extractive summaries of a note and ROUGE to score them.

`summarize(text)` picks the sentences that carry the most clinical content (problems,
medications, labs, procedures, weighted up in chief complaint / assessment / plan sections) and
returns them in note order, together with structured lists: problems, medications, key findings
and plan. `rouge` computes ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004) on lower-cased word tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from iatros.nlp.pipeline import ClinicalPipeline, extract_text

_KEY_SECTIONS = {"chief_complaint": 2.0, "assessment": 2.5, "plan": 2.0, "impression": 2.5,
                 "history_of_present_illness": 1.0, "procedure": 1.5}
_WEIGHTS = {"PROBLEM": 1.5, "SYMPTOM": 1.0, "MEDICATION": 1.0, "LAB": 0.75, "PROCEDURE": 1.25}
_WORD = re.compile(r"[a-z0-9]+")


def _sentences(text: str, pipeline: ClinicalPipeline) -> list[tuple[int, int]]:
    spans = []
    for offset, piece in _chunks(text):
        doc = pipeline.nlp(piece)
        for s in doc.sents:
            if s.text.strip():
                spans.append((s.start_char + offset, s.end_char + offset))
    return spans


def _chunks(text: str) -> list[tuple[int, str]]:
    from iatros.nlp.io import chunks

    return chunks(text)


def summarize(text: str, max_sentences: int = 4, pipeline: ClinicalPipeline | None = None,
              extraction: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"summary": str, "sentences": [...], "problems", "medications", "findings", "plan"}."""
    pipeline = pipeline or _shared()
    doc = extraction or pipeline.extract(text)
    sentences = _sentences(text, pipeline)
    scores = [0.0] * len(sentences)
    for e in doc["entities"]:
        if e["family"] or e["hypothetical"]:
            continue
        for k, (a, b) in enumerate(sentences):
            if a <= e["start"] < b:
                weight = _WEIGHTS.get(e["label"], 1.0) * (0.3 if e["negated"] else 1.0)
                scores[k] += weight * _KEY_SECTIONS.get(e.get("section") or "", 0.8)
                break
    for k, (a, b) in enumerate(sentences):
        words = len(_WORD.findall(text[a:b].lower()))
        if words < 3 or words > 80:  # fragments and run-ons make poor summary sentences
            scores[k] *= 0.2
        scores[k] /= max(1.0, words / 25)
    ranked = sorted(range(len(sentences)), key=lambda k: (-scores[k], k))
    chosen = sorted(k for k in ranked[:max_sentences] if scores[k] > 0) or ranked[:1]
    picked = [re.sub(r"\s+", " ", text[sentences[k][0]:sentences[k][1]]).strip(" ,;") for k in chosen]
    positive = [e for e in doc["entities"] if not (e["negated"] or e["family"] or e["hypothetical"])]

    def unique(label: str) -> list[str]:
        return list(dict.fromkeys(e["text"].lower() for e in positive if e["label"] == label))

    meds = {}
    for e in positive:
        if e["label"] == "MEDICATION":
            details = " ".join(str(e[k]) for k in ("dose", "route", "frequency") if e.get(k))
            meds.setdefault(e["text"].lower(), details)
    plan = [e["text"] for e in positive if e.get("section") == "plan"]
    return {
        "summary": " ".join(picked), "sentences": picked,
        "problems": unique("PROBLEM"), "symptoms": unique("SYMPTOM"),
        "medications": [{"name": k, "details": v} for k, v in meds.items()],
        "findings": [f"{e['text']} {e.get('value', '')} {e.get('unit', '')}".strip()
                     for e in positive if e["label"] == "LAB"],
        "procedures": unique("PROCEDURE"), "plan": list(dict.fromkeys(plan)),
    }


_PIPELINE: ClinicalPipeline | None = None


def _shared() -> ClinicalPipeline:
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = ClinicalPipeline()
    return _PIPELINE


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _f1(overlap: float, predicted: float, reference: float) -> float:
    if predicted == 0 or reference == 0 or overlap == 0:
        return 0.0
    p, r = overlap / predicted, overlap / reference
    return 2 * p * r / (p + r)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge(candidate: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 between two texts (lower-cased alphanumeric words)."""
    c, r = _WORD.findall(candidate.lower()), _WORD.findall(reference.lower())
    out = {}
    for n in (1, 2):
        cn, rn = _ngrams(c, n), _ngrams(r, n)
        out[f"rouge{n}"] = _f1(sum((cn & rn).values()), sum(cn.values()), sum(rn.values()))
    out["rougeL"] = _f1(_lcs(c, r), len(c), len(r))
    return out


__all__ = ["extract_text", "rouge", "summarize"]
