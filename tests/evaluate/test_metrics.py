"""Tests for iatros.evaluate.metrics: reference agreement, bootstrap intervals, validation."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from iatros.errors import ConfigError
from iatros.evaluate import (
    METRICS,
    binary_confusion,
    default_metrics,
    evaluate,
    expected_calibration_error,
    score,
    threshold_at_sensitivity,
)
from iatros.evaluate import metrics as M
from iatros.evaluate.metrics import Predictions, Resamples, ci_key, percentile_ci

FEW = settings(max_examples=40, deadline=None)


@st.composite
def binary_with_ties(draw: st.DrawFn, max_size: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels with both classes present and scores on a coarse grid (many ties)."""
    n = draw(st.integers(2, max_size))
    levels = draw(st.integers(1, 8))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    y[0], y[1] = 0, 1
    s = draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))
    return np.array(y), np.array(s, dtype=float) / levels


@st.composite
def class_probabilities(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Class indices with every class present, and rounded (tied) probability rows."""
    n_classes = draw(st.integers(3, 5))
    n = draw(st.integers(n_classes + 1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.dirichlet(np.ones(n_classes), size=n).round(1) + 1e-3
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)
    return y, p


def _binary_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An informative, noisy binary score."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    return y, p


# ---------------------------------------------------------------- agreement with references


@FEW
@given(binary_with_ties())
def test_auroc_matches_sklearn_roc_auc_with_ties(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    assert score("auroc", y, p, "binary") == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


@FEW
@given(binary_with_ties())
def test_auprc_matches_sklearn_average_precision_with_ties(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = data
    expected = skm.average_precision_score(y, p)
    assert score("auprc", y, p, "binary") == pytest.approx(expected, abs=1e-12)


@FEW
@given(binary_with_ties(), st.sampled_from([0.25, 0.5, 0.7]))
def test_binary_threshold_metrics_match_sklearn(
    data: tuple[np.ndarray, np.ndarray], threshold: float
) -> None:
    y, p = data
    hard = (p >= threshold).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(y, hard),
        "balanced_accuracy": skm.balanced_accuracy_score(y, hard),
        "sensitivity": skm.recall_score(y, hard),
        "specificity": skm.recall_score(y, hard, pos_label=0),
        "f1": skm.f1_score(y, hard, zero_division=np.nan),
        "kappa": skm.cohen_kappa_score(y, hard, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, p),
    }
    for name, value in expected.items():
        got = score(name, y, p, "binary", threshold=threshold)
        assert got == pytest.approx(value, abs=1e-12, nan_ok=True), name


@FEW
@given(binary_with_ties())
def test_operating_point_metrics_match_the_roc_curve(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    spec = 1 - fpr
    best_spec = spec[tpr >= 0.9 - 1e-12].max()
    best_sens = tpr[spec >= 0.9 - 1e-12].max()
    assert score("specificity_at_sens90", y, p, "binary") == pytest.approx(best_spec)
    assert score("sensitivity_at_spec90", y, p, "binary") == pytest.approx(best_sens)


@FEW
@given(binary_with_ties())
def test_threshold_at_sensitivity_is_the_highest_threshold_reaching_the_target(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = data
    t = threshold_at_sensitivity(y, p, 0.9)
    assert skm.recall_score(y, p >= t) >= 0.9
    higher = np.unique(p[p > t])
    assert all(skm.recall_score(y, p >= u) < 0.9 for u in higher)


def test_binary_confusion_matches_sklearn_confusion_matrix() -> None:
    y, p = _binary_data(200)
    tn, fp, fn, tp = skm.confusion_matrix(y, p >= 0.4).ravel()
    assert binary_confusion(y, p, 0.4) == (tp, fp, tn, fn)


@FEW
@given(class_probabilities())
def test_multiclass_metrics_match_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    labels = list(range(p.shape[1]))
    hard = p.argmax(axis=1)
    onehot = np.eye(p.shape[1])[y]
    expected = {
        "auroc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels),
        "auprc": skm.average_precision_score(onehot, p, average="macro"),
        "accuracy": skm.accuracy_score(y, hard),
        "balanced_accuracy": skm.balanced_accuracy_score(y, hard),
        "f1": skm.f1_score(y, hard, average="macro"),
        "kappa": skm.cohen_kappa_score(y, hard, labels=labels),
        "brier": skm.brier_score_loss(y, p, labels=labels),
    }
    for name, value in expected.items():
        assert score(name, y, p, "multiclass") == pytest.approx(value, abs=1e-10), name


@FEW
@given(class_probabilities())
def test_ordinal_kappa_is_quadratic_weighted_and_mae_uses_argmax(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = data
    hard = p.argmax(axis=1)
    labels = list(range(p.shape[1]))
    kappa = skm.cohen_kappa_score(y, hard, labels=labels, weights="quadratic")
    assert score("kappa", y, p, "ordinal") == pytest.approx(kappa, abs=1e-10, nan_ok=True)
    assert score("mae", y, p, "ordinal") == pytest.approx(skm.mean_absolute_error(y, hard))


def test_multilabel_metrics_match_sklearn_macro_averages() -> None:
    rng = np.random.default_rng(3)
    p = rng.random((300, 4)).round(2)
    y = (rng.random((300, 4)) < 0.3 + 0.5 * p).astype(int)
    assert score("auroc", y, p, "multilabel") == pytest.approx(skm.roc_auc_score(y, p))
    assert score("auprc", y, p, "multilabel") == pytest.approx(
        skm.average_precision_score(y, p)
    )
    f1 = skm.f1_score(y, (p >= 0.4).astype(int), average="macro")
    assert score("f1", y, p, "multilabel", threshold=0.4) == pytest.approx(f1)
    assert score("brier", y, p, "multilabel") == pytest.approx(np.mean((p - y) ** 2))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=150)
    pred = y + rng.normal(scale=0.5, size=150)
    assert score("rmse", y, pred, "regression") == pytest.approx(
        skm.root_mean_squared_error(y, pred)
    )
    assert score("mae", y, pred, "regression") == pytest.approx(skm.mean_absolute_error(y, pred))
    assert score("r2", y, pred, "regression") == pytest.approx(skm.r2_score(y, pred))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # sksurv's 0/0
@FEW
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 6), st.integers(0, 4)), min_size=2, max_size=50
    )
)
def test_c_index_matches_sksurv_with_tied_times_and_risks(
    rows: list[tuple[bool, int, int]],
) -> None:
    event = np.array([r[0] for r in rows])
    time_ = np.array([r[1] for r in rows], dtype=float)
    risk = np.array([r[2] for r in rows], dtype=float)
    got = score("c_index", Surv.from_arrays(event, time_), risk, "survival")
    try:
        expected = concordance_index_censored(event, time_, risk)[0]
    except ValueError:  # sksurv refuses sets without comparable pairs; we return NaN
        assert math.isnan(got)
        return
    assert got == pytest.approx(expected, abs=1e-12, nan_ok=True)


def test_ece_equals_count_weighted_gap_over_equal_width_bins() -> None:
    y, p = _binary_data(500, seed=2)
    bins = np.minimum((p * 10).astype(int), 9)
    manual = sum(
        abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum()
        for b in range(10)
        if (bins == b).any()
    ) / len(y)
    assert expected_calibration_error(y, p, "binary") == pytest.approx(manual)
    assert score("ece", y, p, "binary") == pytest.approx(manual)


def test_multiclass_ece_uses_the_top_label() -> None:
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(3), size=400)
    y = rng.integers(0, 3, size=400)
    top = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    assert expected_calibration_error(y, p, "multiclass") == pytest.approx(
        expected_calibration_error(correct, top, "binary")
    )


@pytest.mark.parametrize("kind", ["binary", "multiclass", "survival"])
def test_weighted_batch_equals_the_metric_on_explicitly_resampled_rows(kind: str) -> None:
    rng = np.random.default_rng(6)
    n = 120
    if kind == "binary":
        y, s = _binary_data(n, seed=6)
        s = s.round(1)
    elif kind == "multiclass":
        s = rng.dirichlet(np.ones(3), size=n)
        y = rng.integers(0, 3, size=n)
    else:
        y = Surv.from_arrays(rng.random(n) < 0.6, rng.integers(1, 20, size=n).astype(float))
        s = rng.integers(0, 5, size=n).astype(float)
    idx = rng.integers(0, n, size=n)
    weights = np.bincount(idx, minlength=n).astype(float)[None, :]
    batch = Resamples(Predictions(y, s, kind), weights)
    for name in default_metrics(kind):
        weighted = METRICS[name].fn(batch)[0]
        assert weighted == pytest.approx(score(name, y[idx], s[idx], kind), abs=1e-12), name


# ---------------------------------------------------------------- undefined values and JSON


def test_auroc_with_one_class_is_nan_and_reported_as_none() -> None:
    y = np.zeros(30, dtype=int)
    p = np.linspace(0, 1, 30)
    assert math.isnan(score("auroc", y, p, "binary"))
    out = evaluate(y, p, "binary", metrics=["auroc", "specificity"], n_boot=50)
    assert out["auroc"] == {"value": None, "ci95": [None, None], "n": 30, "n_positive": 0}
    assert out["specificity"]["value"] is not None
    json.dumps(out, allow_nan=False)


def test_interval_is_none_when_fewer_than_half_the_resamples_are_defined() -> None:
    mostly_undefined = np.r_[np.full(60, np.nan), np.linspace(0, 1, 40)]
    mostly_defined = np.r_[np.full(40, np.nan), np.linspace(0, 1, 60)]
    assert percentile_ci(mostly_undefined) == [None, None]
    lo, hi = percentile_ci(mostly_defined)
    assert 0 <= lo < hi <= 1


def _example(kind: str, n: int = 60) -> tuple[object, np.ndarray]:
    rng = np.random.default_rng(7)
    if kind == "binary":
        return _binary_data(n)
    if kind in ("multiclass", "ordinal"):
        return rng.integers(0, 3, size=n), rng.dirichlet(np.ones(3), size=n)
    if kind == "multilabel":
        return rng.integers(0, 2, size=(n, 3)), rng.random((n, 3))
    if kind == "regression":
        y = rng.normal(size=n)
        return y, y + rng.normal(size=n)
    return Surv.from_arrays(rng.random(n) < 0.5, rng.random(n) * 10), rng.normal(size=n)


@pytest.mark.parametrize(
    "kind", ["binary", "multiclass", "ordinal", "multilabel", "regression", "survival"]
)
def test_evaluate_output_is_json_serialisable_for_every_kind(kind: str) -> None:
    y, s = _example(kind)
    out = evaluate(y, s, kind, n_boot=30)
    assert tuple(out) == default_metrics(kind)
    text = json.dumps(out, allow_nan=False)
    for entry in json.loads(text).values():
        assert entry["n"] == 60
        assert isinstance(entry["value"], float)
        assert len(entry["ci95"]) == 2


def test_binary_entries_report_the_number_of_positives() -> None:
    y, p = _binary_data(100)
    out = evaluate(y, p, "binary", metrics=["auroc"], n_boot=20)
    assert out["auroc"]["n_positive"] == int(y.sum())


# ---------------------------------------------------------------- bootstrap behaviour


def test_interval_contains_the_point_estimate() -> None:
    y, p = _binary_data(500, seed=8)
    out = evaluate(y, p, "binary", n_boot=500)
    for name, entry in out.items():
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi, name


def _width(entry: dict) -> float:
    lo, hi = entry["ci95"]
    return hi - lo


def test_interval_narrows_with_more_data() -> None:
    small = evaluate(*_binary_data(200, seed=9), "binary", metrics=["auroc", "brier"], n_boot=300)
    large = evaluate(*_binary_data(2000, seed=9), "binary", metrics=["auroc", "brier"], n_boot=300)
    for name in ("auroc", "brier"):
        assert _width(large[name]) < 0.6 * _width(small[name])


def test_cluster_bootstrap_widens_interval_when_rows_are_duplicated_per_patient() -> None:
    y, p = _binary_data(200, seed=10)
    copies = 5
    y_rows, p_rows = np.repeat(y, copies), np.repeat(p, copies)
    patient = np.repeat(np.arange(200), copies)
    rows = evaluate(y_rows, p_rows, "binary", metrics=["auroc"], n_boot=400)
    patients = evaluate(y_rows, p_rows, "binary", metrics=["auroc"], n_boot=400, clusters=patient)
    assert _width(patients["auroc"]) > 1.5 * _width(rows["auroc"])
    assert patients["auroc"]["value"] == rows["auroc"]["value"]


def test_evaluate_is_reproducible_for_a_seed_and_changes_with_it() -> None:
    y, p = _binary_data(150)
    first = evaluate(y, p, "binary", n_boot=100, seed=1)
    assert evaluate(y, p, "binary", n_boot=100, seed=1) == first
    assert evaluate(y, p, "binary", n_boot=100, seed=2)["auroc"]["ci95"] != first["auroc"]["ci95"]


def test_interval_key_follows_the_confidence_level() -> None:
    assert ci_key(0.95) == "ci95"
    y, p = _binary_data(80)
    out = evaluate(y, p, "binary", metrics=["auroc"], n_boot=50, ci=0.9)
    assert "ci90" in out["auroc"]


def test_default_binary_evaluation_of_1000_rows_with_1000_resamples_is_fast() -> None:
    y, p = _binary_data(1000, seed=11)
    evaluate(y, p, "binary", n_boot=10)  # warm up imports and caches
    start = time.perf_counter()
    evaluate(y, p, "binary", n_boot=1000)
    assert time.perf_counter() - start < 3.0


# ---------------------------------------------------------------- registry and validation


def test_default_metrics_per_kind() -> None:
    assert default_metrics("binary") == (
        "auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
        "specificity_at_sens90", "f1", "brier", "ece",
    )
    assert default_metrics("multiclass") == (
        "auroc", "auprc", "accuracy", "balanced_accuracy", "f1", "kappa", "brier", "ece",
    )
    assert default_metrics("ordinal") == default_metrics("multiclass") + ("mae",)
    assert default_metrics("multilabel") == ("auroc", "auprc", "f1", "brier")
    assert default_metrics("regression") == ("rmse", "mae", "r2")
    assert default_metrics("survival") == ("c_index",)


def test_only_error_metrics_are_lower_is_better() -> None:
    lower = {name for name, spec in METRICS.items() if not spec.higher_is_better}
    assert lower == {"brier", "ece", "rmse", "mae"}


def test_nan_scores_are_rejected_naming_the_rows() -> None:
    y, p = _binary_data(100)
    p[[4, 17, 90]] = np.nan
    with pytest.raises(ConfigError, match=r"3 NaN values \(rows 4, 17, 90\)"):
        evaluate(y, p, "binary", n_boot=10)


@pytest.mark.parametrize(
    ("y", "s", "kind", "message"),
    [
        ([0, 1, 1], [0.2, 0.8], "binary", "3 rows but y_score has 2"),
        ([0, 1], [[0.8, 0.2], [0.3, 0.7]], "binary", r"shape \(N,\)"),
        ([0, 2], [0.2, 0.8], "binary", "0/1"),
        ([0, 3], [[0.5, 0.5], [0.4, 0.6]], "multiclass", "class indices 0..1"),
        ([0, 1], [0.5, 0.5], "multiclass", r"\(N, C\)"),
        ([[0, 1]], [[0.5, 0.5, 0.1]], "multilabel", r"\(N, L\)"),
        ([1.0, 2.0], [1.0], "regression", "2 rows but y_score has 1"),
        ([1.0, 2.0], [1.0, 2.0], "survival", "'event'"),
        ([], [], "binary", "at least one row"),
        ([0, 1], [0.1, 0.9], "colour", "unknown target kind"),
    ],
)
def test_malformed_inputs_raise_config_error(y, s, kind, message) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate(y, s, kind, n_boot=5)


def test_unknown_or_inapplicable_metric_raises_config_error() -> None:
    y, p = _binary_data(20)
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        score("auc", y, p, "binary")
    with pytest.raises(ConfigError, match="does not apply to binary"):
        evaluate(y, p, "binary", metrics=["rmse"])


def test_clusters_must_match_rows_and_have_no_missing_ids() -> None:
    y, p = _binary_data(20)
    with pytest.raises(ConfigError, match="clusters has 19 entries"):
        evaluate(y, p, "binary", n_boot=5, clusters=np.arange(19))
    ids = np.arange(20).astype(object)
    ids[3] = None
    with pytest.raises(ConfigError, match="1 missing ids"):
        evaluate(y, p, "binary", n_boot=5, clusters=ids)


def test_interval_coverage_is_near_zero_for_gaussian_errors_of_the_stated_spread():
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.5, 2.0, size=20_000)
    y = rng.normal(0.0, sd)
    result = M.interval_coverage(y, np.zeros_like(y), sd)
    assert result["ece"] < 0.01 and result["n"] == 20_000
    assert result["observed"][result["levels"].index(0.95)] == pytest.approx(0.95, abs=0.01)


def test_interval_coverage_penalises_overconfident_intervals():
    rng = np.random.default_rng(1)
    y = rng.normal(0.0, 1.0, size=5_000)
    honest = M.interval_coverage(y, np.zeros_like(y), np.ones_like(y))["ece"]
    narrow = M.interval_coverage(y, np.zeros_like(y), np.full_like(y, 0.3))
    assert narrow["ece"] > 0.2 > honest
    assert all(o <= p for o, p in zip(narrow["observed"], narrow["levels"], strict=True))


def test_interval_coverage_leaves_out_missing_targets_and_checks_lengths():
    y = np.array([0.1, np.nan, -0.2, 0.4])
    assert M.interval_coverage(y, np.zeros(4), np.ones(4))["n"] == 3
    with pytest.raises(ConfigError, match="same length"):
        M.interval_coverage(y, np.zeros(3), np.ones(4))
    with pytest.raises(ConfigError, match="known target"):
        M.interval_coverage(np.full(2, np.nan), np.zeros(2), np.ones(2))
