"""ConText attributes on single sentences."""

from __future__ import annotations

import pytest

from iatros.nlp import extract_text


def _attrs(text: str, term: str) -> dict:
    ents = [e for e in extract_text(text)["entities"] if e["text"].lower() == term]
    assert ents, f"{term!r} not extracted from {text!r}"
    return ents[0]


@pytest.mark.parametrize(("text", "term", "attribute"), [
    ("The patient denies chest pain.", "chest pain", "negated"),
    ("No fever, chills, or cough.", "cough", "negated"),
    ("Pneumonia was ruled out.", "pneumonia", "negated"),
    ("Possible pneumonia in the right lower lobe.", "pneumonia", "uncertain"),
    ("Findings are concerning for appendicitis.", "appendicitis", "uncertain"),
    ("She has a history of asthma.", "asthma", "historical"),
    ("Status post appendectomy.", "appendectomy", "historical"),
    ("Her mother had breast cancer.", "breast cancer", "family"),
    ("Return to the clinic if fever develops.", "fever", "hypothetical"),
])
def test_cue_sets_attribute(text, term, attribute):
    assert _attrs(text, term)[attribute] is True


def test_affirmed_mention_has_no_attributes():
    e = _attrs("The patient reports chest pain radiating to the left arm.", "chest pain")
    assert not any(e[a] for a in ("negated", "uncertain", "historical", "family", "hypothetical"))


def test_terminator_ends_negation_scope():
    text = "He denies fever but reports cough."
    assert _attrs(text, "fever")["negated"] is True
    assert _attrs(text, "cough")["negated"] is False


def test_pseudo_cue_does_not_negate():
    assert _attrs("No change in his hypertension.", "hypertension")["negated"] is False


def test_negation_does_not_cross_sentences():
    text = "No fever. Severe abdominal pain since yesterday."
    assert _attrs(text, "abdominal pain")["negated"] is False


def test_family_history_section_marks_family():
    text = "FAMILY HISTORY: Diabetes and hypertension.\nSOCIAL HISTORY: No tobacco."
    assert _attrs(text, "diabetes")["family"] is True
