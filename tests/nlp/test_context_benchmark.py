"""The ConText benchmark's protocol (benchmarks/nlp_context.py): locating the condition, labels, scores."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmark_module import load_benchmark

bench = load_benchmark("nlp_context")


def test_condition_is_located_case_insensitively_across_whitespace():
    sentence = "FINDINGS:     LEFT KNEE: IRREGULARITY WITHIN THE 45  DEGREE FLEXION ZONE."
    start, end = bench.locate(sentence, "irregularity within the 45 degree flexion zone")
    assert sentence[start:end] == "IRREGULARITY WITHIN THE 45  DEGREE FLEXION ZONE"
    assert bench.locate("No edema.", "cyanosis") is None


def test_bootstrap_scores_of_a_known_confusion():
    gold = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    s = bench.prf(gold, pred, n_boot=200)
    assert (s["tp"], s["fp"], s["fn"], s["gold"]) == (2, 1, 1, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3)
    assert s["f1_lo"] <= s["f1"] <= s["f1_hi"]


def test_real_test_set_lines_are_read_located_and_scored(shared_data):
    path = shared_data / bench.TESTSET
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = bench.read_testset(path)[:40]
    assert rows[0]["condition"].lower() == "edema" and rows[0]["negation"] == "Negated"
    located = [(r, bench.locate(r["sentence"], r["condition"])) for r in rows]
    kept = [(r, s) for r, s in located if s]
    assert len(kept) >= 35
    out = bench.run_iatros([(r["sentence"], *s) for r, s in kept])
    scores = bench.score([r for r, _ in kept], out["flags"], n_boot=50)
    assert set(scores) == set(bench.ATTRIBUTES)
    assert scores["negated"]["n"] == len(kept) and scores["negated"]["gold"] >= 1
    assert bench.gold_labels(rows[0]) == {"negated": True, "historical": False, "hypothetical": False,
                                          "other": False}
