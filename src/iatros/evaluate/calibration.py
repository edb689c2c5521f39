"""Post-hoc probability calibration fitted on a validation set, and reliability curves.

Platt scaling (binary) and temperature scaling (multiclass/ordinal) each learn one or two
numbers, so they cannot overfit a small validation set much and keep the model's ranking
(temperature scaling keeps every argmax). Calibrators follow scikit-learn conventions and
round-trip through plain dicts so a run folder can store them as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, logit
from sklearn.exceptions import NotFittedError

from iatros.errors import ConfigError
from iatros.evaluate.metrics import (
    Predictions,
    as_kind,
    calibration_bin_index,
    check_predictions,
    json_float,
)
from iatros.kinds import TargetKind

__all__ = [
    "IdentityCalibrator",
    "PlattScaler",
    "TemperatureScaler",
    "calibrator_from_dict",
    "fit_calibrator",
    "reliability_curve",
]


def _require_fitted(obj: Any, attribute: str) -> None:
    if getattr(obj, attribute, None) is None:
        raise NotFittedError(f"{type(obj).__name__} is not fitted yet: call fit() first")


class IdentityCalibrator:
    """Leaves scores unchanged; used for kinds without a calibrator or unusable validation data."""

    def __init__(self, note: str | None = None) -> None:
        self.note = note

    def fit(self, y_score: Any, y_true: Any = None) -> IdentityCalibrator:
        """Nothing to learn."""
        return self

    def transform(self, y_score: Any) -> np.ndarray:
        """Return the scores unchanged, as a float array."""
        return np.array(y_score, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "identity", "note": self.note}


class PlattScaler:
    """Binary calibration: p' = sigmoid(a * logit(p) + b), fitted by maximum likelihood.

    `eps` clips probabilities away from 0 and 1 so logit(p) stays finite.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        self.eps = eps

    def _logits(self, y_score: Any) -> np.ndarray:
        p = np.asarray(y_score, dtype=float)
        return logit(np.clip(p, self.eps, 1.0 - self.eps))

    def fit(self, y_score: Any, y_true: Any) -> PlattScaler:
        """Learn coef_ (a) and intercept_ (b) minimising the log loss on (y_score, y_true)."""
        y, p = check_predictions(y_true, y_score, TargetKind.BINARY)
        if len(np.unique(y)) < 2:
            raise ConfigError("Platt scaling needs both classes in the validation set")
        z = self._logits(p)

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = params
            t = a * z + b
            # log(1 + e^t) - y t, written stably; gradient (sigmoid(t) - y) * (z, 1).
            value = np.mean(np.logaddexp(0.0, t) - y * t)
            resid = expit(t) - y
            return float(value), np.array([np.mean(resid * z), np.mean(resid)])

        result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        self.coef_, self.intercept_ = (float(v) for v in result.x)
        return self

    def transform(self, y_score: Any) -> np.ndarray:
        """Calibrated probability of class 1."""
        _require_fitted(self, "coef_")
        return expit(self.coef_ * self._logits(y_score) + self.intercept_)

    def to_dict(self) -> dict[str, Any]:
        _require_fitted(self, "coef_")
        return {"type": "platt", "coef": self.coef_, "intercept": self.intercept_,
                "eps": self.eps, "note": None}


class TemperatureScaler:
    """Multiclass calibration: p' = softmax(log p / T) with one temperature T.

    T is found by a bounded scalar search on log T minimising the validation NLL; dividing all
    log-probabilities of a row by the same T > 0 keeps the argmax.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0), eps: float = 1e-12) -> None:
        self.bounds = bounds
        self.eps = eps

    def _log_probs(self, y_score: Any) -> np.ndarray:
        return np.log(np.clip(np.asarray(y_score, dtype=float), self.eps, None))

    def fit(self, y_score: Any, y_true: Any) -> TemperatureScaler:
        """Learn temperature_ minimising the negative log-likelihood on (y_score, y_true)."""
        lo, hi = self.bounds
        if not 0 < lo < hi:
            raise ConfigError(f"temperature bounds must satisfy 0 < low < high, got {self.bounds}")
        y, p = check_predictions(y_true, y_score, TargetKind.MULTICLASS)
        log_p = self._log_probs(p)
        rows = np.arange(len(y))

        def nll(log_t: float) -> float:
            return float(-np.mean(log_softmax(log_p / np.exp(log_t), axis=1)[rows, y]))

        result = minimize_scalar(nll, bounds=(np.log(lo), np.log(hi)), method="bounded")
        self.temperature_ = float(np.exp(result.x))
        return self

    def transform(self, y_score: Any) -> np.ndarray:
        """Calibrated class probabilities (rows sum to 1)."""
        _require_fitted(self, "temperature_")
        return np.exp(log_softmax(self._log_probs(y_score) / self.temperature_, axis=1))

    def to_dict(self) -> dict[str, Any]:
        _require_fitted(self, "temperature_")
        return {"type": "temperature", "temperature": self.temperature_,
                "bounds": list(self.bounds), "eps": self.eps, "note": None}


Calibrator = IdentityCalibrator | PlattScaler | TemperatureScaler


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    """Rebuild a fitted calibrator from its to_dict() output."""
    kind = d.get("type")
    if kind == "identity":
        return IdentityCalibrator(note=d.get("note"))
    if kind == "platt":
        platt = PlattScaler(eps=float(d.get("eps", 1e-7)))
        platt.coef_, platt.intercept_ = float(d["coef"]), float(d["intercept"])
        return platt
    if kind == "temperature":
        scaler = TemperatureScaler(bounds=tuple(d.get("bounds", (0.05, 20.0))),
                                   eps=float(d.get("eps", 1e-12)))
        scaler.temperature_ = float(d["temperature"])
        return scaler
    raise ConfigError(
        f"unknown calibrator type {kind!r}; expected 'identity', 'platt' or 'temperature'"
    )


def _degenerate_reason(kind: TargetKind, y_true: Any) -> str | None:
    """Why a validation set cannot fit a calibrator, or None if it can."""
    if y_true is None or len(y_true) == 0:
        return "validation set is empty; predictions left uncalibrated"
    classes = np.unique(np.asarray(y_true))
    if len(classes) < 2:
        return (f"validation set has only class {classes[0]!s}; {kind.value} calibration needs "
                "at least two classes, so predictions are left uncalibrated")
    return None


# The post-hoc calibrator of each kind that has one (others are left uncalibrated, with a note).
CALIBRATORS: dict[TargetKind, type[PlattScaler] | type[TemperatureScaler]] = {
    TargetKind.BINARY: PlattScaler,
    TargetKind.MULTICLASS: TemperatureScaler,
    TargetKind.ORDINAL: TemperatureScaler,
}


def fit_calibrator(kind: TargetKind | str, y_score_val: Any, y_true_val: Any) -> Calibrator:
    """Fit the calibrator for `kind` on validation predictions.

    Platt for binary, temperature for multiclass/ordinal, identity otherwise or when the
    validation set cannot support a fit (the reason is kept in to_dict()["note"]).
    """
    kind = as_kind(kind)
    if kind not in CALIBRATORS:
        return IdentityCalibrator(note=f"no calibration method for {kind.value} targets")
    reason = _degenerate_reason(kind, y_true_val)
    if reason is not None:
        return IdentityCalibrator(note=reason)
    return CALIBRATORS[kind]().fit(y_score_val, y_true_val)


def reliability_curve(
    y_true: Any, y_score: Any, kind: TargetKind | str, n_bins: int = 10
) -> dict[str, list]:
    """Per equal-width bin: mean predicted confidence vs observed frequency, JSON-ready.

    Binary uses p(class 1) against y; multiclass/ordinal the top-label confidence against
    "argmax was right". Empty bins have count 0 and None values. The bins are those of
    `expected_calibration_error`, so sum(count * |mean_predicted - observed|) / N equals it.
    """
    if int(n_bins) < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    n_bins = int(n_bins)
    conf, outcome = Predictions(y_true, y_score, kind).calibration_pairs
    bins = calibration_bin_index(conf, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    outcome_sum = np.bincount(bins, weights=outcome, minlength=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)

    def means(sums: np.ndarray) -> list[float | None]:
        return [json_float(s / c) if c else None for s, c in zip(sums, count, strict=True)]

    return {
        "bin_lower": [round(float(e), 12) for e in edges[:-1]],
        "bin_upper": [round(float(e), 12) for e in edges[1:]],
        "mean_predicted": means(conf_sum),
        "observed": means(outcome_sum),
        "count": [int(c) for c in count],
    }
