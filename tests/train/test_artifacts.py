"""Fitted scikit-learn models saved as skops files: what is written comes back identical."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from iatros.train.artifacts import load_estimator, save_estimator

TEXTS = ["chest pain radiating to the left arm", "cataract of the left eye, lens implanted",
         "shortness of breath and chest tightness", "intraocular lens and anterior chamber"] * 5


def test_a_text_model_saves_its_vocabulary_as_plain_ints_and_reloads_identically(tmp_path):
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression())
    model.fit(TEXTS, [0, 1, 0, 1] * 5)
    before = dict(model[0].vocabulary_)
    save_estimator(model, tmp_path)
    vocabulary = model[0].vocabulary_
    assert vocabulary == before and all(type(v) is int for v in vocabulary.values())
    loaded = load_estimator(tmp_path)
    assert loaded[0].vocabulary_ == before
    probe = ["left eye lens", "chest pain", "nothing known here"]
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
