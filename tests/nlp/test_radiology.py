"""Radiology reports: sections, numbered impression items, "XXXX" placeholders, report-level
finding labels (present / absent / uncertain / not mentioned), the labels CSV without text."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from iatros.api import nlp as nlp_api
from iatros.cli import app
from iatros.errors import ConfigError
from iatros.nlp import extract_text
from iatros.nlp.pipeline import make_nlp
from iatros.nlp.radiology import (
    findings_csv,
    normalise,
    parse_finding,
    read_findings_file,
    summarize_findings,
)
from iatros.nlp.sections import find_sections

# OpenI-style chest X-ray report (the Indiana collection hides words as "XXXX")
REPORT = ("COMPARISON: XXXX\n\nINDICATION: XXXX-year-old male, chest pain. Rule out pneumonia.\n\n"
          "FINDINGS: The heart is normal in size. The lungs are clear of focal airspace disease, "
          "pneumothorax, or pleural effusion. XXXX XXXX are intact.\n\n"
          "IMPRESSION: 1. No acute cardiopulmonary abnormality. 2. Stable cardiomegaly. "
          "3. Possible small left pleural effusion.")


def _sentences(text: str) -> list[str]:
    return [s.text.strip() for s in make_nlp()(text).sents]


def _entity(text: str, section: str | None = "findings", **flags: object) -> dict[str, object]:
    return {"text": text, "label": "PROBLEM", "section": section, **flags}


def _report(*entities: dict[str, object], sections: tuple[str, ...] = ("findings", "impression"),
            ) -> dict[str, object]:
    return {"entities": list(entities), "sections": [{"name": n} for n in sections]}


# -- structure ----------------------------------------------------------------------------------
def test_radiology_sections_found_with_their_own_names():
    text = ("EXAMINATION: CHEST 2 VIEWS\nHISTORY: Cough.\nTECHNIQUE: PA and lateral views.\n"
            "COMPARISON: None.\nINDICATION: Fever.\nFINDINGS: Normal heart.\nIMPRESSION: Normal.")
    names = [s.name for s in find_sections(text)]
    assert names[1:] == ["history_of_present_illness", "technique", "comparison", "indication",
                         "findings", "impression"]


def test_sections_run_together_and_bare_headers_on_their_own_line():
    run_together = "FINDINGS: No pneumothorax.IMPRESSION: Normal chest."
    assert [s.name for s in find_sections(run_together)] == ["findings", "impression"]
    bare = "FINDINGS\nThe lungs are clear.\n\nIMPRESSION\n1. Normal chest.\n"
    sections = find_sections(bare)
    assert [(s.name, s.header) for s in sections] == [("findings", "FINDINGS"),
                                                      ("impression", "IMPRESSION")]
    assert bare[sections[1].body_start:].strip() == "1. Normal chest."


def test_placeholder_is_never_a_section_header():
    assert find_sections("XXXX: none. FINDINGS: Clear lungs.")[0].name == "findings"
    assert find_sections("XXXX XXXX: none.") == []


def test_numbered_impression_items_are_separate_sentences():
    assert _sentences("IMPRESSION: 1. No acute cardiopulmonary abnormality. 2. Stable "
                      "cardiomegaly. 3. Possible small left pleural effusion.") == [
        "IMPRESSION:", "1. No acute cardiopulmonary abnormality.", "2. Stable cardiomegaly.",
        "3. Possible small left pleural effusion."]
    # items that run on without a period, on their own lines, after a title-case header
    assert _sentences("IMPRESSION: 1. No acute disease 2. Stable cardiomegaly") == [
        "IMPRESSION:", "1. No acute disease", "2. Stable cardiomegaly"]
    assert _sentences("Impression:\n1. No acute disease\n2. Stable cardiomegaly") == [
        "Impression:", "1. No acute disease", "2. Stable cardiomegaly"]


def test_numbers_that_are_no_list_items_keep_the_old_splits():
    assert _sentences("Dr. Smith saw him. Temp 98.6 today. He is well.") == [
        "Dr. Smith saw him.", "Temp 98.6 today.", "He is well."]
    assert _sentences("Nodule measures 4 mm. 2 views obtained.") == [
        "Nodule measures 4 mm.", "2 views obtained."]


def test_placeholders_neither_break_sentences_nor_become_entities():
    assert _sentences("No XXXX\nXXXX are intact; XXXX: no change.") == [
        "No XXXX\nXXXX are intact; XXXX: no change."]
    doc = extract_text(REPORT)
    assert doc["entities"]
    assert not [e for e in doc["entities"] if "XXXX" in e["text"]]
    for e in doc["entities"]:
        assert REPORT[e["start"]:e["end"]] == e["text"]
    effusion = extract_text("FINDINGS: XXXX pleural effusion.")["entities"]
    assert [e["text"] for e in effusion] == ["pleural effusion"]


def test_report_sections_and_items_end_to_end():
    doc = extract_text(REPORT)
    assert [s["name"] for s in doc["sections"]] == ["comparison", "indication", "findings",
                                                   "impression"]
    effusion = [e for e in doc["entities"] if e["section"] == "impression"
                and "pleural effusion" in e["text"]]
    assert effusion and effusion[0]["uncertain"]  # "3. Possible ..." is its own item


# -- report-level labels from entities ----------------------------------------------------------
def test_mention_statuses_present_absent_uncertain():
    labels = summarize_findings(_report(
        _entity("Cardiomegaly"), _entity("pneumothorax", negated=True),
        _entity("left pleural effusion", uncertain=True),
        _entity("pneumonia", hypothetical=True), _entity("atelectasis", negated=True,
                                                         uncertain=True)))
    assert labels == {"cardiomegaly": "present", "pneumothorax": "absent",
                      "pleural effusion": "uncertain", "pneumonia": "uncertain",
                      "atelectasis": "uncertain"}


def test_impression_overrides_findings():
    labels = summarize_findings(_report(
        _entity("pleural effusion"), _entity("pleural effusion", "impression", negated=True),
        _entity("pneumothorax", negated=True), _entity("pneumothorax", "impression"),
        _entity("cardiomegaly")))  # not in the impression: the findings decide
    assert labels == {"pleural effusion": "absent", "pneumothorax": "present",
                      "cardiomegaly": "present"}


def test_within_a_section_present_beats_uncertain_beats_absent():
    labels = summarize_findings(_report(
        _entity("pneumothorax", negated=True), _entity("pneumothorax"),
        _entity("effusion", negated=True), _entity("effusion", uncertain=True)))
    assert labels == {"pneumothorax": "present", "effusion": "uncertain"}


def test_historical_is_present_unless_a_current_mention_says_otherwise():
    alone = summarize_findings(_report(_entity("granuloma", historical=True)))
    assert alone == {"granuloma": "present"}
    overruled = summarize_findings(_report(_entity("pneumothorax", historical=True),
                                           _entity("pneumothorax", negated=True)))
    assert overruled == {"pneumothorax": "absent"}


def test_indication_history_and_other_experiencers_are_ignored():
    labels = summarize_findings(_report(
        _entity("pneumonia", "indication", uncertain=True),
        _entity("lung cancer", "history_of_present_illness"),
        _entity("tuberculosis", family=True), _entity("emphysema", experiencer="other"),
        _entity("aspirin", label="MEDICATION"), _entity("atelectasis", None),
        _entity("CT", label="PROCEDURE"), _entity("sternotomy", label="PROCEDURE")))
    assert labels == {"atelectasis": "present"}  # text before the first header counts
    asked = summarize_findings(_report(_entity("median sternotomy", label="PROCEDURE")),
                               [parse_finding("sternotomy")])
    assert asked == {"sternotomy": "present"}  # a procedure counts when asked for by name
    # a note without findings / impression sections counts everywhere
    note = summarize_findings(_report(_entity("pneumonia", "history_of_present_illness"),
                                      sections=("history_of_present_illness",)))
    assert note == {"pneumonia": "present"}


def test_findings_grouped_by_concept_when_the_vocabulary_names_one():
    labels = summarize_findings(_report(
        _entity("enlarged cardiac silhouette", preferred_name="Cardiomegaly", concept_id="HP:0001640"),
        _entity("cardiomegaly", "impression", negated=True, preferred_name="Cardiomegaly",
                concept_id="HP:0001640")))
    assert labels == {"cardiomegaly": "absent"}
    # ICD-10-CM's qualifiers dropped; a mention without a concept joins the report's concept
    merged = summarize_findings(_report(
        _entity("left pleural effusion"),
        _entity("pleural effusion", "impression", negated=True,
                preferred_name="Pleural effusion, not elsewhere classified", concept_id="J90"),
        _entity("pneumothorax", negated=True, preferred_name="Pneumothorax, unspecified")))
    assert merged == {"pleural effusion": "absent", "pneumothorax": "absent"}
    asked = summarize_findings(_report(
        _entity("enlarged cardiac silhouette", preferred_name="Cardiomegaly",
                concept_id="HP:0001640")), [parse_finding("HP:0001640")])
    assert asked == {"HP:0001640": "present"}


def test_requested_findings_not_mentioned_versus_absent():
    specs = [parse_finding(n) for n in ("pleural effusion|effusion", "pneumothorax",
                                        "cardiomegaly", "opacity")]
    labels = summarize_findings(_report(
        _entity("small left pleural effusions"), _entity("pneumothorax", negated=True),
        _entity("bibasilar opacities", uncertain=True),
        _entity("cardiomegaly", "indication")), specs)
    assert labels == {"pleural effusion": "present",
                      "pneumothorax": "absent", "cardiomegaly": "not mentioned",
                      "opacity": "uncertain"}
    assert summarize_findings(_report(_entity("effusion")), [parse_finding("pleural effusion")]) \
        == {"pleural effusion": "not mentioned"}  # "effusion" alone is no "pleural effusion"


def test_normalised_keys_drop_modifiers_and_placeholders():
    assert normalise("Small LEFT pleural effusion") == "pleural effusion"
    assert normalise("XXXX Cardiomegaly") == "cardiomegaly"
    assert normalise("mild") == "mild"


def test_findings_file_and_its_errors(tmp_path):
    path = tmp_path / "findings.txt"
    path.write_text("# chest findings\ncardiomegaly\npleural effusion|effusion  # both\n\n")
    specs = read_findings_file(path)
    assert [s.name for s in specs] == ["cardiomegaly", "pleural effusion"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty.txt.*no findings"):
        read_findings_file(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="missing.txt"):
        read_findings_file(tmp_path / "missing.txt")


def test_csv_has_labels_and_ids_but_no_text():
    results = [{"source": "a.txt", "patient_id": "a", "entities": [{"text": "heart is normal"}],
                "findings": {"pneumothorax": "absent"}},
               {"source": "b.txt", "error": "b.txt: the note is empty"}]
    rows = list(csv.reader(io.StringIO(findings_csv(results, ["pneumothorax", "cardiomegaly"]))))
    assert rows == [["source", "id", "status", "pneumothorax", "cardiomegaly"],
                    ["a.txt", "a", "ok", "absent", "not mentioned"],
                    ["b.txt", "", "error", "", ""]]


# -- end to end -----------------------------------------------------------------------------------
def test_extract_findings_json_and_csv_end_to_end(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cxr1.txt").write_text(REPORT)
    (tmp_path / "in" / "cxr2.txt").write_text(
        "INDICATION: Pneumothorax.\nFINDINGS: There is a small left pneumothorax. No pneumonia.\n"
        "IMPRESSION: 1. Small left pneumothorax. 2. No pneumonia.")
    out_csv = tmp_path / "labels.csv"
    results = nlp_api.extract([tmp_path / "in"], findings=["pneumothorax", "pneumonia",
                                                           "pleural effusion"],
                              findings_csv=out_csv)
    by_name = {r["source"].rsplit("/", 1)[-1]: r["findings"] for r in results}
    assert by_name["cxr2.txt"] == {"pneumothorax": "present", "pneumonia": "absent",
                                   "pleural effusion": "not mentioned"}
    # cxr1: the impression's "3. Possible ... pleural effusion" decides over the findings;
    # "Rule out pneumonia" in the indication does not count
    assert by_name["cxr1.txt"]["pleural effusion"] == "uncertain"
    assert by_name["cxr1.txt"]["pneumonia"] == "not mentioned"
    text = out_csv.read_text()
    assert text.splitlines()[0] == "source,id,status,pneumothorax,pneumonia,pleural effusion"
    for words in ("heart is normal", "left pneumothorax", "Possible", "chest pain"):
        assert words not in text


def test_cli_findings_flag_and_csv(tmp_path):
    report = tmp_path / "cxr.txt"
    report.write_text("FINDINGS: No pneumothorax.\nIMPRESSION: Possible pneumonia.")
    out, labels = tmp_path / "out.json", tmp_path / "labels.csv"
    result = CliRunner().invoke(app, ["nlp", "extract", str(report), "--findings", "--out",
                                      str(out), "--findings-csv", str(labels)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["findings"] == {"pneumonia": "uncertain",
                                                         "pneumothorax": "absent"}
    assert labels.read_text().splitlines() == ["source,id,status,pneumonia,pneumothorax",
                                               f"{report},cxr,ok,uncertain,absent"]
    names = tmp_path / "findings.txt"
    names.write_text("pneumothorax\ncardiomegaly\n")
    result = CliRunner().invoke(app, ["nlp", "extract", str(report), "--findings-file", str(names),
                                      "--finding", "pneumonia", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["findings"] == {
        "pneumonia": "uncertain", "pneumothorax": "absent", "cardiomegaly": "not mentioned"}


def test_a_finding_named_twice_is_refused(tmp_path):
    (tmp_path / "cxr.txt").write_text("FINDINGS: No pneumothorax.")
    with pytest.raises(ConfigError, match="named twice.*pneumothorax"):
        nlp_api.extract([tmp_path / "cxr.txt"], findings=["Pneumothorax", "pneumothorax"])
