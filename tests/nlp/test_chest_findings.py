"""Chest radiograph findings from the CheXpert labeler's phrases: plain mentions, structures
whose stated size decides the finding, codings, and the report-level labels they give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError
from iatros.nlp.chest_findings import PHRASE_FILE, mentions, read_phrases, state_of
from iatros.nlp.pipeline import ClinicalPipeline, make_nlp
from iatros.nlp.radiology import parse_finding, summarize_findings

ASKED = [parse_finding(n) for n in ("cardiomegaly", "pleural effusion", "pneumothorax",
                                    "lung opacity", "consolidation", "enlarged cardiomediastinum")]


@pytest.fixture(scope="module")
def pipeline() -> ClinicalPipeline:
    return ClinicalPipeline(radiology=True)


def _labels(pipeline: ClinicalPipeline, text: str) -> dict[str, str]:
    return summarize_findings(pipeline.extract(text), ASKED)


def test_the_phrase_file_reads_and_every_row_has_a_known_kind():
    rows = read_phrases()
    assert {r.kind for r in rows} == {"mention", "attribute"}
    assert {"Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Lung Opacity"} <= {
        r.observation for r in rows}


def test_a_malformed_phrase_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "phrases.tsv"
    bad.write_text("observation\tphrase\tkind\tcode_term\nEdema\tedema\tsometimes\t\n")
    with pytest.raises(ConfigError, match=r"phrases.tsv: data row 2"):
        read_phrases(bad)


def test_every_code_term_is_coded_by_the_installed_vocabularies(pipeline):
    for row in read_phrases():
        if row.code_term:
            coded = pipeline._observation_code(row)
            assert coded.get("concept_id"), f"{row.code_term!r} has no coding"


@pytest.mark.parametrize(("text", "state"), [
    ("is enlarged.", "enlarged"), ("is normal in size.", "normal"),
    ("is not enlarged.", "normal"), ("is within normal limits.", "normal"),
    ("is at the upper limits of normal.", "borderline"), ("is top-normal.", "borderline"),
    ("remains mildly prominent.", "enlarged"), ("is stable.", None),
    ("is difficult to assess; the lungs are normal.", None),
])
def test_size_words_after_a_structure_decide_its_state(text, state):
    assert state_of(" " + text, "") == state


def test_size_words_before_a_structure_count_too():
    assert state_of(".", "Mildly enlarged ") == "enlarged"
    assert state_of(".", "Normal ") == "normal"
    assert state_of(".", "The lungs are normal; the ") is None


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=200))
def test_any_text_gives_spans_inside_the_doc_without_error(text):
    doc = make_nlp()(text)
    for m in mentions(doc):
        assert 0 <= m.start < m.end <= len(doc)


@pytest.mark.parametrize(("report", "expected"), [
    ("FINDINGS: The cardiac silhouette is enlarged. IMPRESSION: Cardiomegaly.",
     {"cardiomegaly": "present"}),
    ("FINDINGS: Enlarged cardiac silhouette. No focal consolidation.",
     {"cardiomegaly": "present", "consolidation": "absent"}),
    ("FINDINGS: Heart size is normal. The lungs are clear.", {"cardiomegaly": "absent"}),
    ("FINDINGS: Heart size and mediastinal contours are within normal limits.",
     {"cardiomegaly": "absent", "enlarged cardiomediastinum": "absent"}),
    ("FINDINGS: Heart size is at the upper limits of normal.", {"cardiomegaly": "uncertain"}),
    ("FINDINGS: No pneumothorax. Heart size is mildly enlarged.",
     {"cardiomegaly": "present", "pneumothorax": "absent"}),
    ("FINDINGS: Small bilateral effusions. Patchy opacity in the left base.",
     {"pleural effusion": "present", "lung opacity": "present"}),
    ("FINDINGS: Pneumothoraces are not seen. Effusions have resolved.",
     {"pneumothorax": "absent", "pleural effusion": "absent"}),
    ("FINDINGS: The lungs are clear of focal airspace disease, pneumothorax, or effusion.",
     {"lung opacity": "absent", "pneumothorax": "absent", "pleural effusion": "absent"}),
    ("FINDINGS: Widened mediastinum. IMPRESSION: Right lower lobe consolidation.",
     {"enlarged cardiomediastinum": "present", "consolidation": "present"}),
])
def test_report_labels_from_radiologists_phrasing(pipeline, report, expected):
    labels = _labels(pipeline, report)
    assert {k: labels[k] for k in expected} == expected


def test_a_dictionary_span_takes_the_observation_it_contains(pipeline):
    out = pipeline.extract("FINDINGS: Pleural effusions. Right upper lobe pulmonary nodule.")
    by_text = {e["text"].lower(): e for e in out["entities"]}
    assert by_text["pleural effusions"]["observation"] == "Pleural Effusion"
    assert by_text["pleural effusions"]["concept_id"] == "J90"
    assert by_text["pulmonary nodule"]["observation"] == "Lung Lesion"


def test_an_attribute_mention_is_coded_and_says_its_size(pipeline):
    out = pipeline.extract("FINDINGS: The cardiac silhouette is enlarged.")
    [e] = [e for e in out["entities"] if e.get("observation") == "Cardiomegaly"]
    assert (e["concept_id"], e["size"], e["negated"]) == ("I51.7", "enlarged", False)


def test_general_notes_do_not_get_chest_phrases_unless_asked():
    note = "Patient with a soft tissue mass and infection of the left foot."
    plain = ClinicalPipeline().extract(note)
    assert not any(e.get("observation") for e in plain["entities"])
    asked = ClinicalPipeline(radiology=True).extract(note)
    assert {e.get("observation") for e in asked["entities"]} >= {"Lung Lesion", "Pneumonia"}


def test_phrase_file_is_the_shipped_one():
    assert PHRASE_FILE.name == "chest_findings.tsv" and PHRASE_FILE.is_file()


def test_a_consult_note_with_only_an_impression_gets_no_chest_phrases():
    note = "HPI: fever.\nIMPRESSION: Infection of the left foot, likely cellulitis. Soft tissue mass."
    out = ClinicalPipeline().extract(note)
    assert not any(e.get("observation") for e in out["entities"])
    report = "FINDINGS: Small effusions.\nIMPRESSION: Effusions."
    assert any(e.get("observation") == "Pleural Effusion"
               for e in ClinicalPipeline().extract(report)["entities"])
