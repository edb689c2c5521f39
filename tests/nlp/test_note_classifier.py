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
