"""Entity extraction: labels, offsets, medication and lab details, sections, sentences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.nlp import extract_text
from iatros.nlp.pipeline import ClinicalPipeline, make_nlp
from iatros.nlp.sections import find_sections

NOTE = """CHIEF COMPLAINT: Chest pain.
HISTORY OF PRESENT ILLNESS: 65-year-old man with hypertension who presents with chest pain.
MEDICATIONS: Lisinopril 10 mg p.o. daily, metformin 500 mg b.i.d.
LABS: Hemoglobin 12.5 g/dL, creatinine of 1.2 mg/dL.
PLAN: Colonoscopy next month."""


def test_labels_and_offsets_point_into_the_note():
    doc = extract_text(NOTE)
    labels = {(e["text"].lower(), e["label"]) for e in doc["entities"]}
    assert {("hypertension", "PROBLEM"), ("chest pain", "SYMPTOM"), ("lisinopril", "MEDICATION"),
            ("hemoglobin", "LAB"), ("colonoscopy", "PROCEDURE")} <= labels
    for e in doc["entities"]:
        assert NOTE[e["start"]:e["end"]] == e["text"]


def test_medication_dose_route_frequency():
    meds = {e["text"].lower(): e for e in extract_text(NOTE)["entities"] if e["label"] == "MEDICATION"}
    assert meds["lisinopril"]["dose"] == "10 mg"
    assert meds["lisinopril"]["route"] == "p.o."
    assert meds["lisinopril"]["frequency"] == "daily"
    assert meds["metformin"]["frequency"] == "b.i.d."


def test_lab_value_and_unit():
    labs = {e["text"].lower(): e for e in extract_text(NOTE)["entities"] if e["label"] == "LAB"}
    assert labs["hemoglobin"]["value"] == "12.5" and labs["hemoglobin"]["unit"] == "g/dL"
    assert labs["creatinine"]["value"] == "1.2"


def test_lab_name_without_value_is_not_a_lab():
    assert not [e for e in extract_text("We will check a hemoglobin tomorrow.")["entities"]
                if e["label"] == "LAB"]


def test_sections_found_in_order():
    names = [s.name for s in find_sections(NOTE)]
    assert names == ["chief_complaint", "history_of_present_illness", "medications", "labs", "plan"]


def test_mtsamples_style_run_together_sections():
    text = "PREOPERATIVE DIAGNOSIS: , Morbid obesity. ,PROCEDURE:, Gastric bypass."
    assert [s.name for s in find_sections(text)] == ["assessment", "procedure"]


def test_sentences_do_not_split_on_abbreviations_or_decimals():
    sents = [s.text.strip() for s in make_nlp()("Dr. Smith saw him. Temp 98.6 today. He is well.").sents]
    assert sents == ["Dr. Smith saw him.", "Temp 98.6 today.", "He is well."]


def test_long_note_is_chunked_with_correct_offsets():
    unit = "The patient denies chest pain. Aspirin 81 mg daily.\n"
    text = unit * 4000  # ~200k characters: more than one chunk
    doc = extract_text(text)
    pains = [e for e in doc["entities"] if e["text"] == "chest pain"]
    assert len(pains) == 4000 and all(e["negated"] for e in pains)
    assert all(text[e["start"]:e["end"]] == e["text"] for e in doc["entities"])


def test_tagger_adds_mentions_the_rules_miss():
    def tagger(sentences):
        return [["B-Disease" if t == "Wolfram" else "I-Disease" if t == "syndrome2" else "O"
                 for t in s] for s in sentences]
    doc = ClinicalPipeline(tagger=tagger).extract("No signs of Wolfram syndrome2 today.")
    ner = [e for e in doc["entities"] if e["source"] == "ner"]
    assert [(e["text"], e["label"], e["negated"]) for e in ner] == [("Wolfram syndrome2", "PROBLEM", True)]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_gives_valid_offsets(text):
    doc = extract_text(text)
    for e in doc["entities"]:
        assert 0 <= e["start"] < e["end"] <= len(text)
        assert text[e["start"]:e["end"]] == e["text"]
