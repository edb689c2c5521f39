"""Token tasks end to end: IOB reading, entity metrics, a tiny BiLSTM-CRF trained by the one
Trainer through api.train, and the trained tagger inside the extraction pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError, CorruptDataError
from iatros.evaluate import metrics as M
from iatros.kinds import TargetKind
from iatros.tasks.text import bio_classes, read_iob

SENTENCES = [
    ("Patients with cystic fibrosis often cough .", "O O B-Disease I-Disease O O O"),
    ("Breast cancer risk rises with age .", "B-Disease I-Disease O O O O O"),
    ("No signs of diabetes were seen .", "O O O B-Disease O O O"),
    ("The gene was sequenced in all samples .", "O O O O O O O O"),
    ("Huntington disease is inherited .", "B-Disease I-Disease O O O"),
    ("Mice without asthma were controls .", "O O B-Disease O O O"),
]


def _write_iob(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "devel.tsv", "test.tsv"):
        lines = []
        for _ in range(n):
            for words, tags in SENTENCES:
                lines += [f"{w}\t{t}" for w, t in zip(words.split(), tags.split(), strict=True)] + [""]
        (folder / name).write_text("\n".join(lines) + "\n")


def test_read_iob_maps_tags_to_ids(tmp_path):
    _write_iob(tmp_path / "d", n=1)
    sentences, tags = read_iob(tmp_path / "d" / "train.tsv", bio_classes(("Disease",)))
    assert sentences[0][:4] == ["Patients", "with", "cystic", "fibrosis"]
    assert tags[0].tolist() == [0, 0, 1, 2, 0, 0, 0]


def test_read_iob_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("word\tO\nbroken-line-without-tag\n")
    with pytest.raises(CorruptDataError, match="bad.tsv, line 2"):
        read_iob(path, bio_classes(("Disease",)))


def test_bio_spans_follow_conlleval():
    # O B-0 I-0 O I-0 B-1 I-0  -> (1,3,0), (4,5,0) (stray I starts), (5,6,1), (6,7,0)
    assert M.bio_spans([0, 1, 2, 0, 2, 3, 2]) == {(1, 3, 0), (4, 5, 0), (5, 6, 1), (6, 7, 0)}
    assert M.bio_spans([-1, -1]) == set()


def test_entity_metrics_exact_match_with_ci():
    y = np.array([[1, 2, 0, 1], [0, 0, 1, -1]])
    s = np.array([[1, 2, 0, 0], [0, 1, 2, -1]])  # one hit, one miss, one wrong span
    out = M.evaluate(y, s, TargetKind.TOKENS, n_boot=200)
    assert out["entity_precision"]["value"] == pytest.approx(1 / 2)
    assert out["entity_recall"]["value"] == pytest.approx(1 / 3)
    assert out["entity_f1"]["value"] == pytest.approx(2 * 1 / (2 + 3))
    assert out["entity_f1"]["n_entities"] == 3 and len(out["entity_f1"]["ci95"]) == 2


def test_entity_metrics_reject_mismatched_shapes():
    with pytest.raises(ConfigError, match="same"):
        M.evaluate(np.zeros((2, 3)), np.zeros((2, 4)), TargetKind.TOKENS, n_boot=0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=12),
                min_size=1, max_size=8))
def test_perfect_tagging_scores_one(rows):
    width = max(len(r) for r in rows)
    y = np.full((len(rows), width), -1)
    for i, r in enumerate(rows):
        y[i, :len(r)] = r
    f1 = M.score("entity_f1", y, y, TargetKind.TOKENS)
    has_entities = any(t > 0 for r in rows for t in r)
    assert (f1 == 1.0) if has_entities else np.isnan(f1)


def test_tiny_tagger_trains_end_to_end(tmp_path):
    from iatros import api
    from iatros.api.nlp import load_tagger
    from iatros.nlp.pipeline import ClinicalPipeline

    _write_iob(tmp_path / "data" / "bioner" / "NCBI-disease-IOB")
    run = api.train("ner-ncbi-disease", data_root=tmp_path / "data", epochs=2, register=False,
                    out=tmp_path / "run", params={"hidden": 16, "word_dim": 16, "char_filters": 8})
    metrics = json.loads((run / "metrics.json").read_text())
    f1 = metrics["splits"]["test"]["entity_f1"]
    assert f1["n"] == len(SENTENCES) * 4 and f1["n_entities"] == 5 * 4 and "ci95" in f1
    assert (run / "report.html").exists() and (run / "predictions.csv").exists()
    again = api.evaluate(run)
    assert again["splits"]["test"]["entity_f1"]["value"] == f1["value"]  # the saved model re-scores
    tagger = load_tagger(run)
    tags = tagger([["Huntington", "disease", "is", "inherited", "."]])
    assert len(tags[0]) == 5 and set(tags[0]) <= {"O", "B-Disease", "I-Disease"}
    doc = ClinicalPipeline(tagger=tagger).extract("Huntington disease is inherited.")
    assert all(e["text"] == "Huntington disease is inherited."[e["start"]:e["end"]]
               for e in doc["entities"])


def test_predict_on_note_files_returns_the_taggers_entities_with_offsets(tmp_path):
    from iatros import api

    _write_iob(tmp_path / "data" / "bioner" / "NCBI-disease-IOB", n=8)
    run = api.train("ner-ncbi-disease", data_root=tmp_path / "data", epochs=40, register=False,
                    out=tmp_path / "run", params={"hidden": 16, "word_dim": 16, "char_filters": 8},
                    train_overrides={"lr": 0.02, "patience": 40}, eval_options=api.EvalOptions(n_boot=0))
    text = "Breast cancer risk rises with age. Huntington disease is inherited."
    note = tmp_path / "note.txt"
    note.write_text(text)
    binary = tmp_path / "scan.bin"
    binary.write_bytes(b"\x00\x01\x02" * 10)
    results = api.predict(run, [note, binary])
    entities = results[0]["entities"]
    assert {e["text"] for e in entities} == {"Breast cancer", "Huntington disease"}
    assert all(text[e["start"]:e["end"]] == e["text"] and e["label"] == "Disease" for e in entities)
    assert results[1]["input"] == str(binary) and "binary" in results[1]["error"]
    from typer.testing import CliRunner

    from iatros.cli import app

    shown = CliRunner().invoke(app, ["predict", str(run), str(note), str(binary)])
    assert shown.exit_code == 0, shown.output
    assert "2 entities" in shown.output and "Huntington disease [Disease]" in shown.output


def test_tagger_ensembles_keep_entities_most_members_predict_and_ties_go_to_the_first():
    from iatros.targets import majority_spans

    a = np.array([[0, 1, 2, 0, 3, -1]])  # entities (1, 3, Disease) and (4, 5, Chemical)
    b = np.array([[0, 1, 2, 0, 0, -1]])  # (1, 3)
    c = np.array([[1, 2, 0, 0, 3, -1]])  # (0, 2) and (4, 5)
    assert majority_spans([a, b, c]).tolist() == [[0, 1, 2, 0, 3, -1]]
    assert majority_spans([b, c, c]).tolist() == c.tolist()
    assert majority_spans([c, a]).tolist() == c.tolist()  # two members: the first one's entities
    assert majority_spans([a, b, c, c]).tolist() == [[0, 1, 2, 0, 3, -1]]  # 2-2 tie: first's


@given(st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=12), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_voted_entities_are_exactly_those_of_a_majority(rows):
    from iatros.targets import majority_spans

    members = [np.array([row]) for row in rows]
    width = max(len(r) for r in rows)
    members = [np.pad(m, ((0, 0), (0, width - m.shape[1])), constant_values=0) for m in members]
    voted = M.bio_spans(majority_spans(members)[0])
    counts: dict = {}
    for m in members:
        for span in M.bio_spans(m[0]):
            counts[span] = counts.get(span, 0) + 1
    first = M.bio_spans(members[0][0])
    expected = {s for s, n in counts.items() if 2 * n > len(members)
                or (2 * n == len(members) and s in first)}
    assert voted == expected


def test_an_ensemble_of_taggers_trains_and_scores_end_to_end(tmp_path):
    from iatros import api
    from iatros.targets import majority_spans
    from iatros.train.predictors import load_predictor

    _write_iob(tmp_path / "data" / "bioner" / "NCBI-disease-IOB")
    run = api.train("ner-ncbi-disease", data_root=tmp_path / "data", epochs=2, register=False,
                    out=tmp_path / "run", ensemble=3, eval_options=api.EvalOptions(n_boot=0),
                    params={"hidden": 8, "word_dim": 8, "char_filters": 4})
    predictor = load_predictor(run, "cpu")
    from iatros.tasks.text import object_array

    sentences = object_array([w.split() for w, _ in SENTENCES])
    votes = majority_spans([m.predict_scores(sentences) for m in predictor.members])
    assert np.array_equal(predictor.predict_scores(sentences), votes)
    assert "entity_f1" in json.loads((run / "metrics.json").read_text())["splits"]["test"]


def test_real_ncbi_loader(shared_data):
    from iatros.tasks import get_task

    data = get_task("ner-ncbi-disease").load(shared_data)
    assert {"train", "val", "test"} == set(np.unique(data.split))
    assert (data.split == "test").sum() == 940


def test_mtsamples_specialty_labels(shared_data):
    from iatros.tasks import get_task

    task = get_task("mtsamples-specialty")
    data = task.load(shared_data)
    assert len(data) == 1184 and len(task.classes) == 9
    assert len(set(data.patient_ids)) == len(data)  # one row per distinct text
