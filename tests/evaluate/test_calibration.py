"""Tests for iatros.evaluate.calibration: calibrators, persistence and reliability curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, softmax
from sklearn.exceptions import NotFittedError

from iatros.errors import ConfigError
from iatros.evaluate import (
    IdentityCalibrator,
    PlattScaler,
    TemperatureScaler,
    calibrator_from_dict,
    expected_calibration_error,
    fit_calibrator,
    reliability_curve,
    score,
)


def _overconfident_binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), scores sigmoid(3 z + 1): informative but miscalibrated."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < expit(z)).astype(int)
    return y, expit(3 * z + 1)


def _overconfident_multiclass(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), scores softmax(3 z): too sharp by a factor 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    probs = softmax(z, axis=1)
    y = np.array([rng.choice(4, p=row) for row in probs])
    return y, softmax(3 * z, axis=1)


def test_platt_scaling_improves_ece_of_a_miscalibrated_score_and_keeps_ranking() -> None:
    y_val, p_val = _overconfident_binary(2000, seed=0)
    y_test, p_test = _overconfident_binary(2000, seed=1)
    calibrator = fit_calibrator("binary", p_val, y_val)
    assert isinstance(calibrator, PlattScaler)
    calibrated = calibrator.transform(p_test)
    before = expected_calibration_error(y_test, p_test, "binary")
    after = expected_calibration_error(y_test, calibrated, "binary")
    assert after < 0.5 * before
    assert calibrator.coef_ == pytest.approx(1 / 3, abs=0.1)
    assert score("auroc", y_test, calibrated, "binary") == pytest.approx(
        score("auroc", y_test, p_test, "binary")
    )


def test_temperature_scaling_improves_ece_and_keeps_argmax_accuracy() -> None:
    y_val, p_val = _overconfident_multiclass(1500, seed=2)
    y_test, p_test = _overconfident_multiclass(1500, seed=3)
    calibrator = fit_calibrator("multiclass", p_val, y_val)
    assert isinstance(calibrator, TemperatureScaler)
    assert calibrator.temperature_ == pytest.approx(3.0, rel=0.2)
    calibrated = calibrator.transform(p_test)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), p_test.argmax(axis=1))
    assert score("accuracy", y_test, calibrated, "multiclass") == score(
        "accuracy", y_test, p_test, "multiclass"
    )
    before = expected_calibration_error(y_test, p_test, "multiclass")
    assert expected_calibration_error(y_test, calibrated, "multiclass") < 0.5 * before


@pytest.mark.parametrize(
    ("kind", "y", "p"),
    [
        ("binary", np.ones(20, dtype=int), np.linspace(0.1, 0.9, 20)),
        ("multiclass", np.full(20, 2), np.full((20, 3), 1 / 3)),
        ("ordinal", np.zeros(20, dtype=int), np.full((20, 3), 1 / 3)),
        ("binary", np.array([], dtype=int), np.array([])),
    ],
)
def test_degenerate_validation_set_gives_identity_with_a_note(kind, y, p) -> None:
    calibrator = fit_calibrator(kind, p, y)
    assert isinstance(calibrator, IdentityCalibrator)
    note = calibrator.to_dict()["note"]
    assert "uncalibrated" in note
    if len(y):
        assert "only class" in note
        np.testing.assert_array_equal(calibrator.transform(p), p)


@pytest.mark.parametrize("kind", ["multilabel", "regression", "survival"])
def test_kinds_without_a_calibrator_get_identity_with_a_note(kind: str) -> None:
    calibrator = fit_calibrator(kind, np.zeros(5), np.zeros(5))
    assert isinstance(calibrator, IdentityCalibrator)
    assert kind in calibrator.to_dict()["note"]


def test_ordinal_targets_get_temperature_scaling() -> None:
    y, p = _overconfident_multiclass(300, seed=4)
    assert isinstance(fit_calibrator("ordinal", p, y), TemperatureScaler)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_to_dict_round_trips_through_json_to_the_same_transform(kind: str) -> None:
    if kind == "binary":
        y, p = _overconfident_binary(400, seed=5)
    else:
        y, p = _overconfident_multiclass(400, seed=5)
    calibrator = fit_calibrator(kind, p, y)
    restored = calibrator_from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert type(restored) is type(calibrator)
    np.testing.assert_allclose(restored.transform(p), calibrator.transform(p))


def test_identity_round_trips_with_its_note() -> None:
    restored = calibrator_from_dict(IdentityCalibrator(note="why").to_dict())
    assert isinstance(restored, IdentityCalibrator)
    assert restored.note == "why"


def test_unfitted_calibrators_refuse_to_transform() -> None:
    with pytest.raises(NotFittedError):
        PlattScaler().transform([0.5])
    with pytest.raises(NotFittedError):
        TemperatureScaler().to_dict()


def test_unknown_calibrator_type_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown calibrator type 'isotonic'"):
        calibrator_from_dict({"type": "isotonic"})


def test_platt_scaler_rejects_a_single_class_when_fitted_directly() -> None:
    with pytest.raises(ConfigError, match="both classes"):
        PlattScaler().fit(np.linspace(0, 1, 10), np.zeros(10, dtype=int))


def _ece_from_curve(curve: dict) -> float:
    total = sum(curve["count"])
    return sum(
        c * abs(m - o)
        for c, m, o in zip(curve["count"], curve["mean_predicted"], curve["observed"], strict=True)
        if c
    ) / total


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000), st.sampled_from([5, 10, 15]), st.sampled_from(["binary", "multiclass"])
)
def test_reliability_curve_agrees_with_ece(seed: int, n_bins: int, kind: str) -> None:
    if kind == "binary":
        y, p = _overconfident_binary(300, seed)
    else:
        y, p = _overconfident_multiclass(300, seed)
    curve = reliability_curve(y, p, kind, n_bins=n_bins)
    assert sum(curve["count"]) == 300
    assert _ece_from_curve(curve) == pytest.approx(
        expected_calibration_error(y, p, kind, n_bins=n_bins)
    )


def test_reliability_curve_is_json_ready_with_empty_bins_as_none() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.95, 0.91, 0.02])
    curve = reliability_curve(y, p, "binary", n_bins=10)
    json.dumps(curve, allow_nan=False)
    assert curve["bin_lower"][3] == 0.3
    assert curve["count"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert curve["mean_predicted"][1] is None and curve["observed"][1] is None
    assert curve["observed"][0] == 0.0 and curve["observed"][9] == 1.0


def test_reliability_curve_is_not_defined_for_regression() -> None:
    with pytest.raises(ConfigError, match="calibration"):
        reliability_curve(np.zeros(3), np.zeros(3), "regression")
