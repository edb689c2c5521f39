"""Note classification: tf-idf + logistic regression and its word attributions."""

from __future__ import annotations

import numpy as np
import pytest

from iatros.kinds import TargetKind
from iatros.models.registry import get_model_spec
from iatros.models.text import class_top_words, word_attributions
from iatros.train.predictors import SklearnPredictor

TEXTS = ["cystoscopy of the bladder and prostate", "prostate biopsy and bladder scan",
         "bladder stones removed at cystoscopy", "cataract extraction of the left eye",
         "retina and eye pressure checked", "eye exam showed a cataract"] * 3
LABELS = np.array([0, 0, 0, 1, 1, 1] * 3)


@pytest.fixture(scope="module")
def pipeline():
    est = get_model_spec("tfidf-logreg").build(TargetKind.MULTICLASS, 0, min_df=1)
    return est.fit(np.array(TEXTS, dtype=object), LABELS)


def test_attributions_name_the_words_that_drove_the_class(pipeline):
    words = [w for w, _ in word_attributions(pipeline, "bladder cystoscopy today", 1 - 1)]
    assert words and set(words) <= {"bladder", "cystoscopy", "bladder cystoscopy"}
    assert all(c > 0 for _, c in word_attributions(pipeline, "eye cataract", 1))


def test_class_top_words(pipeline):
    top = class_top_words(pipeline, ["urology", "ophthalmology"], top=3)
    assert "eye" in top["ophthalmology"] and "bladder" in top["urology"]


def test_predictor_accepts_raw_text(pipeline):
    scores = SklearnPredictor(pipeline, TargetKind.MULTICLASS).predict_scores(
        np.array(["a cataract in the eye"], dtype=object))
    assert scores.shape == (1, 2) and scores[0, 1] > 0.5


@pytest.fixture(scope="module")
def specialty_run(shared_data_module, tmp_path_factory):
    from iatros import api

    return api.train("mtsamples-specialty", data_root=shared_data_module, register=False,
                     out=tmp_path_factory.mktemp("spec") / "run", eval_options=api.EvalOptions(n_boot=50))


def test_specialty_classifier_learns_real_notes_and_reports_its_words(specialty_run):
    import json

    metrics = json.loads((specialty_run / "metrics.json").read_text())
    macro_f1 = metrics["splits"]["test"]["f1"]
    assert macro_f1["value"] > 0.8 and macro_f1["n"] > 150
    html = (specialty_run / "report.html").read_text()
    assert "Which words drove the prediction" in html and "Strongest terms per class" in html
    explanations = json.loads((specialty_run / "explanations.json").read_text())
    first = explanations["examples"][0]
    assert first["words"] and first["words"][0]["term"] in html


def test_predict_gives_a_specialty_with_its_words_and_names_bad_files(specialty_run, tmp_path):
    from iatros import api

    note = tmp_path / "note.txt"
    note.write_text("PREOPERATIVE DIAGNOSIS: Cataract, left eye. PROCEDURE: Phacoemulsification "
                    "with intraocular lens implantation. The eye was prepped and draped; the "
                    "anterior chamber was entered and the lens capsule opened.")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    results = api.predict(specialty_run, [empty, note])
    assert [r["input"] for r in results] == [str(empty), str(note)]
    assert "empty" in results[0]["error"]
    assert results[1]["prediction"] == "Ophthalmology"
    assert sum(results[1]["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert any(w["term"] in ("eye", "lens", "cataract") for w in results[1]["words"])
