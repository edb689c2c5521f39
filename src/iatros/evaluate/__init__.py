"""Evaluation: metrics with bootstrap intervals, probability calibration and subgroup audits."""

from iatros.evaluate.calibration import (
    IdentityCalibrator,
    PlattScaler,
    TemperatureScaler,
    calibrator_from_dict,
    fit_calibrator,
    reliability_curve,
)
from iatros.evaluate.fairness import audit, subgroup_audit
from iatros.evaluate.metrics import (
    METRICS,
    MetricSpec,
    binary_confusion,
    default_metrics,
    evaluate,
    expected_calibration_error,
    score,
    threshold_at_sensitivity,
)

__all__ = [
    "METRICS",
    "IdentityCalibrator",
    "MetricSpec",
    "PlattScaler",
    "TemperatureScaler",
    "audit",
    "binary_confusion",
    "calibrator_from_dict",
    "default_metrics",
    "evaluate",
    "expected_calibration_error",
    "fit_calibrator",
    "reliability_curve",
    "score",
    "subgroup_audit",
    "threshold_at_sensitivity",
]
