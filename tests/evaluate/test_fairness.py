"""Tests for iatros.evaluate.fairness: group metrics, gaps, fairlearn agreement, edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError
from iatros.evaluate import METRICS, audit, evaluate, subgroup_audit
from iatros.evaluate.fairness import (
    demographic_parity_batch,
    equalized_odds_batch,
    group_labels,
)

N_BOOT = 200


def _cohort(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three sizeable groups of different difficulty, a 5-row group and 3 unlabelled rows."""
    rng = np.random.default_rng(seed)
    groups = np.array(["a"] * 300 + ["b"] * 200 + ["c"] * 100 + ["d"] * 5 + [None] * 3,
                      dtype=object)
    noise = {"a": 0.5, "b": 0.7, "c": 0.9, "d": 0.7, None: 0.7}
    y = rng.integers(0, 2, size=len(groups))
    y[-8:] = [0, 1, 0, 1, 0, 0, 1, 0]
    scale = np.array([noise[g] for g in groups])
    p = np.clip((1 - scale) * y + scale * rng.random(len(groups)), 0, 1)
    return y, p, groups


@pytest.fixture(scope="module")
def binary_audit() -> dict:
    y, p, groups = _cohort()
    return subgroup_audit(y, p, groups, "binary", attribute="site", n_boot=N_BOOT)


def test_gap_equals_max_minus_min_of_the_group_values(binary_audit: dict) -> None:
    for metric, gap in binary_audit["gaps"].items():
        values = {g: binary_audit["groups"][g]["metrics"][metric]["value"] for g in gap["groups"]}
        assert gap["value"] == pytest.approx(max(values.values()) - min(values.values()))
        lo, hi = gap["ci95"]
        assert 0 <= lo <= hi
        assert gap["n"] == 608


def test_best_and_worst_group_follow_the_metric_direction(binary_audit: dict) -> None:
    for metric, gap in binary_audit["gaps"].items():
        values = {g: binary_audit["groups"][g]["metrics"][metric]["value"] for g in gap["groups"]}
        high, low = max(values, key=values.get), min(values, key=values.get)
        if METRICS[metric].higher_is_better:
            assert (gap["best_group"], gap["worst_group"]) == (high, low), metric
        else:
            assert (gap["best_group"], gap["worst_group"]) == (low, high), metric
    assert binary_audit["gaps"]["auroc"]["worst_group"] == "c"


def test_group_entries_hold_size_prevalence_and_evaluate_output(binary_audit: dict) -> None:
    y, p, groups = _cohort()
    entry = binary_audit["groups"]["b"]
    rows = groups == "b"
    assert entry["n"] == 200
    assert entry["prevalence"] == pytest.approx(y[rows].mean())
    assert entry["metrics"] == evaluate(y[rows], p[rows], "binary", n_boot=N_BOOT)
    assert binary_audit["attribute"] == "site"
    assert binary_audit["threshold"] == 0.5


def test_missing_group_labels_become_unknown(binary_audit: dict) -> None:
    assert list(binary_audit["groups"]) == ["a", "b", "c", "d", "unknown"]
    assert binary_audit["groups"]["unknown"]["n"] == 3
    labels = group_labels(pd.Series([1.0, np.nan, 2.0, None]), 4)
    assert labels.tolist() == ["1", "unknown", "2", "unknown"]


def test_small_groups_are_reported_but_left_out_of_every_gap(binary_audit: dict) -> None:
    assert binary_audit["small_groups"] == ["d", "unknown"]
    assert binary_audit["groups"]["d"]["metrics"]["accuracy"]["n"] == 5
    for gap in binary_audit["gaps"].values():
        assert set(gap["groups"]) <= {"a", "b", "c"}
    for key in ("equalized_odds_difference", "demographic_parity_difference"):
        assert binary_audit[key]["groups"] == ["a", "b", "c"]


def test_fairness_differences_are_fairlearns_on_the_compared_groups(binary_audit: dict) -> None:
    y, p, groups = _cohort()
    rows = np.isin(groups.astype(str), ["a", "b", "c"])
    hard = (p[rows] >= 0.5).astype(int)
    sensitive = groups[rows].astype(str)
    eod = binary_audit["equalized_odds_difference"]
    dpd = binary_audit["demographic_parity_difference"]
    assert eod["value"] == pytest.approx(
        equalized_odds_difference(y[rows], hard, sensitive_features=sensitive)
    )
    assert dpd["value"] == pytest.approx(
        demographic_parity_difference(y[rows], hard, sensitive_features=sensitive)
    )
    assert eod["ci95"][0] is not None and dpd["ci95"][0] is not None


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5))
def test_numpy_fairness_differences_match_fairlearn(seed: int, n_groups: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40 * n_groups
    codes = np.repeat(np.arange(n_groups), 40)
    y = rng.integers(0, 2, size=n)
    y[::40], y[1::40] = 0, 1  # both classes in every group, so TPR and FPR are defined
    hard = rng.integers(0, 2, size=n)
    ones = np.ones((1, n))
    sensitive = codes.astype(str)
    eod = equalized_odds_batch(y.astype(float), hard.astype(float), codes, n_groups, ones)[0]
    dpd = demographic_parity_batch(y.astype(float), hard.astype(float), codes, n_groups, ones)[0]
    assert eod == pytest.approx(equalized_odds_difference(y, hard, sensitive_features=sensitive))
    assert dpd == pytest.approx(
        demographic_parity_difference(y, hard, sensitive_features=sensitive)
    )


def test_output_is_json_serialisable(binary_audit: dict) -> None:
    json.dumps(binary_audit, allow_nan=False)


def test_groups_without_a_defined_value_are_left_out_of_that_gap() -> None:
    y, p, groups = _cohort(seed=1)
    y[groups == "c"] = 0  # AUROC undefined in c, accuracy still defined
    out = subgroup_audit(y, p, groups, "binary", metrics=["auroc", "accuracy"], n_boot=50)
    assert out["groups"]["c"]["metrics"]["auroc"]["value"] is None
    assert out["gaps"]["auroc"]["groups"] == ["a", "b"]
    assert out["gaps"]["accuracy"]["groups"] == ["a", "b", "c"]
    assert out["equalized_odds_difference"]["groups"] == ["a", "b"]


def test_a_single_eligible_group_has_no_gap() -> None:
    y, p, _ = _cohort()
    groups = np.array(["a"] * (len(y) - 4) + ["b"] * 4)
    out = subgroup_audit(y, p, groups, "binary", metrics=["auroc"], n_boot=20)
    assert out["gaps"]["auroc"]["value"] is None
    assert out["gaps"]["auroc"]["ci95"] == [None, None]
    assert out["demographic_parity_difference"]["value"] is None


def test_patient_clusters_are_resampled_together() -> None:
    y, p, groups = _cohort()
    patients = np.arange(len(y)) // 2
    out = subgroup_audit(y, p, groups, "binary", metrics=["auroc"], n_boot=50, clusters=patients)
    assert out["gaps"]["auroc"]["ci95"][0] is not None
    with pytest.raises(ConfigError, match="clusters has 3 entries"):
        subgroup_audit(y, p, groups, "binary", n_boot=5, clusters=[1, 2, 3])


def test_multiclass_audit_has_no_binary_fairness_differences() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(3), size=120)
    y = rng.integers(0, 3, size=120)
    groups = np.where(np.arange(120) < 60, "x", "y")
    out = subgroup_audit(y, p, groups, "multiclass", metrics=["accuracy", "kappa"], n_boot=30)
    assert "equalized_odds_difference" not in out
    assert out["groups"]["x"]["prevalence"] is None
    assert set(out["gaps"]) == {"accuracy", "kappa"}


def test_audit_runs_one_subgroup_audit_per_column() -> None:
    y, p, groups = _cohort()
    sex = np.where(np.arange(len(y)) % 2 == 0, "F", "M")
    attributes = pd.DataFrame({"site": groups, "sex": sex})
    out = audit(y, p, attributes, "binary", metrics=["auroc"], n_boot=30)
    assert list(out) == ["site", "sex"]
    assert out["sex"]["attribute"] == "sex"
    assert out["sex"] == subgroup_audit(y, p, sex, "binary", attribute="sex", metrics=["auroc"],
                                        n_boot=30)
    json.dumps(out, allow_nan=False)


def test_group_labels_must_match_the_rows() -> None:
    y, p, groups = _cohort()
    with pytest.raises(ConfigError, match="one label per row"):
        subgroup_audit(y, p, groups[:-1], "binary", n_boot=5)


def test_gap_interval_includes_zero_when_groups_are_exchangeable() -> None:
    """Groups drawn from one distribution: the gap's CI must not claim a difference."""
    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    groups = rng.choice(["x", "y"], size=n)
    out = subgroup_audit(y, p, groups, "binary", metrics=["auroc", "accuracy"], n_boot=N_BOOT)
    for metric in ("auroc", "accuracy"):
        lo, hi = out["gaps"][metric]["ci95"]
        assert lo < 0 < hi, metric


def test_gap_interval_excludes_zero_for_a_real_difference(binary_audit: dict) -> None:
    lo, _ = binary_audit["gaps"]["auroc"]["ci95"]
    assert lo > 0
