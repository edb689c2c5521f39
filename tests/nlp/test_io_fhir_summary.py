"""Reading bad inputs, FHIR output and summaries / ROUGE / patient lists."""

from __future__ import annotations

import pytest

from iatros.nlp import extract_text
from iatros.nlp.fhir import to_fhir_bundle
from iatros.nlp.io import NoteError, chunks, decode_note, read_note
from iatros.nlp.patients import problem_and_medication_lists
from iatros.nlp.summarize import rouge, summarize


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "e.txt").write_text("  \n")
    with pytest.raises(NoteError, match="e.txt.*empty"):
        read_note(tmp_path / "e.txt")


def test_binary_file_is_refused(tmp_path):
    (tmp_path / "x.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(NoteError, match="binary"):
        read_note(tmp_path / "x.bin")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(NoteError, match="nope.txt"):
        read_note(tmp_path / "nope.txt")


def test_cp1252_note_is_decoded_with_a_warning():
    note = decode_note("Caf\xe9 patient denies fever.".encode("cp1252"), "n")
    assert "Café" in note.text and note.warnings


def test_chunks_cover_the_text_exactly():
    text = ("word " * 50 + "\n") * 2000
    parts = chunks(text, size=1000)
    assert "".join(p for _, p in parts) == text
    assert all(text[o:o + len(p)] == p for o, p in parts)


def test_fhir_bundle_links_resources_to_the_note():
    doc = extract_text("Denies chest pain. Possible pneumonia. Mother had breast cancer. "
                       "Lisinopril 10 mg daily. Hemoglobin 12.5 g/dL.", "note.txt")
    bundle = to_fhir_bundle(doc, "p1")
    resources = [e["resource"] for e in bundle["entry"]]
    kinds = [r["resourceType"] for r in resources]
    assert kinds.count("DocumentReference") == 1
    assert {"Condition", "MedicationStatement", "Observation"} <= set(kinds)
    docref = next(r for r in resources if r["resourceType"] == "DocumentReference")
    conds = {r["code"]["text"]: r for r in resources if r["resourceType"] == "Condition"}
    assert conds["chest pain"]["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert conds["pneumonia"]["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert "breast cancer" not in conds  # family history is not the patient's condition
    assert conds["pneumonia"]["evidence"][0]["detail"][0]["reference"] == f"urn:uuid:{docref['id']}"
    obs = next(r for r in resources if r["resourceType"] == "Observation")
    assert obs["valueQuantity"] == {"value": 12.5, "unit": "g/dL"}


def test_allergies_and_family_history_get_their_own_fhir_resources():
    from fhir.resources.R4B.bundle import Bundle

    doc = extract_text("FAMILY HISTORY: Mother had breast cancer. No family history of diabetes."
                       "\n\nALLERGIES: Penicillin causes rash. No known allergy to aspirin."
                       "\n\nMEDICATIONS: Metformin 500 mg PO BID.", "note.txt")
    bundle = to_fhir_bundle(doc, "p1")
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    family = [r for r in resources if r["resourceType"] == "FamilyMemberHistory"]
    assert len(family) == 1  # the negated "no family history of diabetes" has no R4 form
    assert family[0]["relationship"]["coding"][0]["code"] == "MTH"
    assert family[0]["condition"][0]["code"]["text"] == "breast cancer"
    allergies = {r["code"]["text"]: r for r in resources if r["resourceType"] == "AllergyIntolerance"}
    assert allergies["Penicillin"]["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert allergies["Penicillin"]["reaction"][0]["manifestation"][0]["text"] == "rash"
    assert allergies["aspirin"]["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert "clinicalStatus" not in allergies["aspirin"]
    conditions = {r["code"]["text"] for r in resources if r["resourceType"] == "Condition"}
    assert not conditions & {"rash", "breast cancer", "diabetes"}  # a reaction, the family's
    meds = [r["medicationCodeableConcept"]["text"] for r in resources
            if r["resourceType"] == "MedicationStatement"]
    assert meds == ["Metformin"]


def test_rouge_known_values():
    assert rouge("the cat sat", "the cat sat") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    r = rouge("the cat", "the cat sat on the mat")
    assert r["rouge1"] == pytest.approx(2 * (1.0 * 2 / 6) / (1.0 + 2 / 6))
    assert rouge("dog", "cat")["rouge1"] == 0.0


def test_summary_prefers_assessment_over_filler():
    text = ("The weather was nice today. The patient arrived by car. "
            "ASSESSMENT: Community acquired pneumonia and hypertension. "
            "PLAN: Start azithromycin 500 mg daily.")
    s = summarize(text, max_sentences=2)
    assert "pneumonia" in s["summary"] and "weather" not in s["summary"]
    assert "pneumonia" in s["problems"] and s["medications"][0]["name"] == "azithromycin"


def test_patient_lists_merge_notes():
    n1 = extract_text("History of asthma. Albuterol 2 puffs as needed.", "n1")
    n2 = extract_text("Asthma exacerbation. Denies fever. Albuterol 2 puffs q4h.", "n2")
    lists = problem_and_medication_lists([("p1", n1), ("p1", n2)])["p1"]
    asthma = next(p for p in lists["problems"] if p["name"] == "asthma")
    assert asthma["notes"] == ["n1", "n2"] and asthma["status"] == "active"
    assert "fever" not in [p["name"] for p in lists["problems"]]
    assert lists["medications"][0]["frequency"] == "q4h"
