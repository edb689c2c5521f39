"""Every metric of the project, with percentile (cluster) bootstrap confidence intervals.

Each metric is written once, as a *weighted* function of a batch of weight vectors: a bootstrap
resample that draws row i k times is the same data set as giving row i the weight k. The point
estimate is that function with all weights 1, and 1000 resamples are one (B, N) weight matrix.
Sorting, binning and one-hot encoding happen once per evaluated set, so a bootstrap costs a few
matrix products instead of 1000 calls into scikit-learn. Tests check every metric against
scikit-learn / scikit-survival.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.targets import bio_spans

__all__ = [
    "METRICS",
    "MetricSpec",
    "Predictions",
    "Resamples",
    "as_kind",
    "binary_confusion",
    "bootstrap_metrics",
    "bootstrap_weights",
    "calibration_bin_index",
    "calibration_pairs",
    "check_predictions",
    "ci_key",
    "compute_metrics",
    "concordance_batch",
    "default_metrics",
    "evaluate",
    "expected_calibration_error",
    "json_float",
    "percentile_ci",
    "resolve_metrics",
    "score",
    "threshold_at_sensitivity",
]

# A (B, N) float64 weight block of this many elements is ~16 MB: the unit of bootstrap work.
_ELEMENTS_PER_CHUNK = 2_000_000
# Risk scores closer than this are tied in Harrell's C (the tolerance scikit-survival uses).
_RISK_TIE_TOL = 1e-8
# Relative slack when checking "sensitivity >= 90%" so that 0.9 * 30 rounding cannot flip it.
_REL_TOL = 1e-12
_SHOW_ROWS = 5

K = TargetKind


# --------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------


def as_kind(kind: TargetKind | str) -> TargetKind:
    """Return `kind` as a TargetKind, accepting its string value."""
    if isinstance(kind, TargetKind):
        return kind
    try:
        return TargetKind(str(kind).lower())
    except ValueError:
        known = ", ".join(k.value for k in TargetKind)
        raise ConfigError(f"unknown target kind {kind!r}; expected one of: {known}") from None


def _row_list(rows: np.ndarray) -> str:
    """Format the first few row indices of a problem for an error message."""
    shown = ", ".join(str(int(i)) for i in rows[:_SHOW_ROWS])
    return shown + (", ..." if len(rows) > _SHOW_ROWS else "")


def _check_finite(values: np.ndarray, name: str, why: str) -> None:
    """Raise ConfigError naming the rows of `values` that hold NaN or inf."""
    bad = ~np.isfinite(values)
    n_bad = int(bad.sum())
    if not n_bad:
        return
    rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
    what = "NaN" if int(np.isnan(values).sum()) == n_bad else "non-finite"
    raise ConfigError(f"{name} has {n_bad} {what} values (rows {_row_list(rows)}): {why}")


def _as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert to a float array, turning conversion failures into a ConfigError."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be numeric: {exc}") from None


def _check_binary_labels(y: np.ndarray, name: str = "y_true") -> np.ndarray:
    """Check that labels are 0/1 and return them as floats."""
    y = _as_float_array(y, name)
    _check_finite(y, name, "labels must be 0 or 1")
    bad = np.flatnonzero(((y != 0) & (y != 1)).reshape(len(y), -1).any(axis=1))
    if len(bad):
        raise ConfigError(f"{name} must hold only 0/1 labels; rows {_row_list(bad)} do not")
    return y


def _check_binary(y: Any, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if s.ndim != 1:
        hint = " (pass y_score[:, 1], the probability of class 1)" if s.ndim == 2 else ""
        raise ConfigError(
            f"binary y_score must have shape (N,), got {s.shape}{hint}"
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"binary y_true must have shape (N,), got {y.shape}")
    return _check_binary_labels(y), s


def _check_class_index(y: Any, s: np.ndarray, kind: TargetKind) -> tuple[np.ndarray, np.ndarray]:
    if s.ndim != 2 or s.shape[1] < 2:
        raise ConfigError(
            f"{kind.value} y_score must have shape (N, C) with C >= 2 class probabilities, "
            f"got {s.shape}"
        )
    y = _as_float_array(y, "y_true")
    if y.ndim != 1:
        raise ConfigError(f"{kind.value} y_true must be class indices of shape (N,), got {y.shape}")
    _check_finite(y, "y_true", "every row needs a class index")
    n_classes = s.shape[1]
    bad = np.flatnonzero((y != np.round(y)) | (y < 0) | (y >= n_classes))
    if len(bad):
        raise ConfigError(
            f"y_true must hold class indices 0..{n_classes - 1} (y_score has {n_classes} "
            f"columns); rows {_row_list(bad)} do not"
        )
    return y.astype(np.int64), s


def _check_multilabel(y: Any, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels, NaN where a label is missing (not measured): every metric leaves those cells
    out, so each label is scored on the rows that have it."""
    y = _as_float_array(y, "y_true")
    if s.ndim != 2 or y.shape != s.shape:
        raise ConfigError(
            f"multilabel y_true and y_score must both have shape (N, L); got {y.shape} and "
            f"{s.shape}"
        )
    if np.isinf(y).any():
        _check_finite(y, "y_true", "labels must be 0, 1 or NaN (missing)")
    observed = np.nan_to_num(y, nan=0.0)
    bad = np.flatnonzero((~np.isnan(y) & (observed != 0) & (observed != 1)).any(axis=1))
    if len(bad):
        raise ConfigError(f"y_true must hold only 0/1 labels (NaN: missing); rows "
                          f"{_row_list(bad)} do not")
    return y, s


def _check_regression(y: Any, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = _as_float_array(y, "y_true")
    if s.ndim != 1 or y.ndim != 1:
        raise ConfigError(
            f"regression y_true and y_score must have shape (N,); got {y.shape} and {s.shape}"
        )
    _check_finite(y, "y_true", "regression targets must be finite numbers")
    return y, s


def _check_survival(y: Any, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = getattr(getattr(y, "dtype", None), "names", None)
    if not names or "event" not in names or "time" not in names:
        raise ConfigError(
            "survival y_true must be a structured array with fields 'event' (bool) and 'time' "
            "(float), e.g. sksurv.util.Surv.from_arrays(event, time)"
        )
    if s.ndim != 1:
        raise ConfigError(f"survival y_score must be a risk score of shape (N,), got {s.shape}")
    time = _as_float_array(y["time"], "y_true['time']")
    _check_finite(time, "y_true['time']", "every row needs a follow-up time")
    out = np.empty(len(y), dtype=[("event", bool), ("time", float)])
    out["event"] = np.asarray(y["event"]).astype(bool)
    out["time"] = time
    return out, s


def check_predictions(
    y_true: Any, y_score: Any, kind: TargetKind | str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate targets and predictions for `kind`; return them as numpy arrays.

    Raises ConfigError for an empty set, mismatched lengths, non-finite scores or targets,
    labels outside the kind's range, and shapes that do not fit the kind.
    """
    kind = as_kind(kind)
    if kind is K.TOKENS:
        return _check_tokens(y_true, y_score)
    s = _as_float_array(y_score, "y_score")
    n_true = len(y_true) if hasattr(y_true, "__len__") else 0
    if s.ndim == 0 or n_true == 0 or len(s) == 0:
        raise ConfigError("nothing to evaluate: y_true and y_score must hold at least one row")
    if n_true != len(s):
        raise ConfigError(f"y_true has {n_true} rows but y_score has {len(s)}")
    _check_finite(s, "y_score", "the model produced non-finite predictions")
    if kind is K.BINARY:
        return _check_binary(y_true, s)
    if kind in (K.MULTICLASS, K.ORDINAL):
        return _check_class_index(y_true, s, kind)
    if kind is K.MULTILABEL:
        return _check_multilabel(y_true, s)
    if kind is K.REGRESSION:
        return _check_regression(y_true, s)
    return _check_survival(y_true, s)


def _check_tokens(y: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    """Tag ids per token, (N, L) integer arrays padded with -1 (see `bio_spans`)."""
    y, s = np.asarray(y), np.asarray(s)
    if y.ndim != 2 or s.ndim != 2 or y.shape != s.shape or len(y) == 0:
        raise ConfigError(f"tokens targets and predictions must be (N, L) tag-id arrays of the same "
                          f"non-empty shape, got {y.shape} and {s.shape}")
    for name, a in (("y_true", y), ("y_score", s)):
        a = a.astype(float)
        _check_finite(a, name, "tag ids must be finite")
        bad = np.flatnonzero(((a != np.round(a)) | (a < -1)).any(axis=1))
        if len(bad):
            raise ConfigError(f"{name} holds values that are not tag ids (>= 0, or -1 for padding) "
                              f"in rows {_row_list(bad)}")
    return y.astype(np.int64), s.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Validated predictions and weighted resamples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RankedColumn:
    """One score column sorted ascending, cut into groups of tied scores."""

    order: np.ndarray  # argsort of the scores
    starts: np.ndarray  # index (in sorted order) where each group of tied scores starts
    labels: np.ndarray  # 0/1 labels in sorted order
    values: np.ndarray  # the distinct score values, ascending
    observed: np.ndarray | float = 1.0  # 1 where the label is known, 0 where missing (sorted)


def _rank_column(scores: np.ndarray, labels: np.ndarray,
                 observed: np.ndarray | None = None) -> _RankedColumn:
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    known = 1.0 if observed is None else observed[order].astype(float)
    return _RankedColumn(order, starts, labels[order].astype(float), sorted_scores[starts], known)


class Predictions:
    """Validated targets and scores of one kind, with the per-set work every metric shares."""

    def __init__(
        self,
        y_true: Any,
        y_score: Any,
        kind: TargetKind | str,
        threshold: float = 0.5,
        *,
        checked: bool = False,
    ) -> None:
        self.kind = as_kind(kind)
        if not checked:
            y_true, y_score = check_predictions(y_true, y_score, self.kind)
        self.y: np.ndarray = y_true
        self.s: np.ndarray = y_score
        self.threshold = float(threshold)
        self.n = len(self.s)

    def subset(self, rows: np.ndarray) -> Predictions:
        """The predictions restricted to `rows` (indices or boolean mask)."""
        return Predictions(self.y[rows], self.s[rows], self.kind, self.threshold, checked=True)

    @cached_property
    def pred_label(self) -> np.ndarray:
        """Hard predictions: thresholded for binary/multilabel, argmax for class indices."""
        if self.kind in (K.MULTICLASS, K.ORDINAL):
            return np.argmax(self.s, axis=1)
        return (self.s >= self.threshold).astype(np.int64)

    @cached_property
    def n_classes(self) -> int:
        return self.s.shape[1] if self.kind in (K.MULTICLASS, K.ORDINAL, K.MULTILABEL) else 2

    @cached_property
    def observed(self) -> np.ndarray | None:
        """Multilabel: 1 where a label is known, 0 where it is missing (NaN); else None."""
        if self.kind is not K.MULTILABEL:
            return None
        return (~np.isnan(self.y)).astype(float)

    def _onehot(self, labels: np.ndarray) -> np.ndarray:
        if self.kind is K.MULTILABEL:  # missing labels count as neither true nor predicted
            return np.nan_to_num(labels.astype(float), nan=0.0) * self.observed
        return np.eye(self.n_classes)[labels.astype(np.int64)]

    @cached_property
    def true_onehot(self) -> np.ndarray:
        """(N, K) indicator of the true class (binary: columns 0 and 1; multilabel: y)."""
        return self._onehot(self.y)

    @cached_property
    def pred_onehot(self) -> np.ndarray:
        """(N, K) indicator of the predicted class, laid out like true_onehot."""
        return self._onehot(self.pred_label)

    @cached_property
    def ranked(self) -> list[_RankedColumn]:
        """Score columns sorted once for the rank metrics (one per class/label, one-vs-rest)."""
        if self.kind is K.BINARY:
            return [_rank_column(self.s, self.y)]
        truth, known = self.true_onehot, self.observed
        return [_rank_column(self.s[:, j], truth[:, j], None if known is None else known[:, j])
                for j in range(self.s.shape[1])]

    @cached_property
    def entity_counts(self) -> np.ndarray:
        """Tokens targets: (N, 3) exact-match counts per row: true positives, predicted, true."""
        out = np.zeros((self.n, 3))
        for i in range(self.n):
            truth, guess = bio_spans(self.y[i]), bio_spans(self.s[i])
            out[i] = (len(truth & guess), len(guess), len(truth))
        return out

    @cached_property
    def calibration_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, outcome): binary p(class 1) vs y; class indices top-label vs correct."""
        if self.kind is K.BINARY:
            return self.s, self.y
        if self.kind in (K.MULTICLASS, K.ORDINAL):
            return self.s.max(axis=1), (self.pred_label == self.y).astype(float)
        raise ConfigError(f"calibration is defined for binary, multiclass and ordinal targets, "
                          f"not {self.kind.value}")


class Resamples:
    """A batch of B weighted copies of one Predictions: weights (B, N), one row per resample."""

    def __init__(self, pred: Predictions, weights: np.ndarray) -> None:
        self.pred = pred
        self.w = np.asarray(weights, dtype=float)
        self.total = self.w.sum(axis=1)
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute something shared by several metrics once per batch."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def mean_of(self, row_values: np.ndarray) -> np.ndarray:
        """Weighted mean of a per-row quantity, per resample."""
        return _div(self.w @ row_values, self.total)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (the metric is undefined there)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row has no defined value."""
    defined = ~np.isnan(x)
    return _div(np.where(defined, x, 0.0).sum(axis=-1), defined.sum(axis=-1))


# --------------------------------------------------------------------------------------------
# Rank metrics: AUROC, average precision, operating points
# --------------------------------------------------------------------------------------------


def _grouped_weights(r: Resamples) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per score column: positive and negative weight of each tied-score group, ascending."""

    def compute() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for col in r.pred.ranked:
            w_sorted = r.w[:, col.order]
            pos = np.add.reduceat(w_sorted * col.labels, col.starts, axis=1)
            neg = np.add.reduceat(w_sorted * col.observed, col.starts, axis=1) - pos
            out.append((pos, neg))
        return out

    return r.memo("grouped", compute)


def _auroc_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC: P(score_pos > score_neg) + 0.5 P(tie)."""
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return _div(num, pos.sum(axis=1) * neg.sum(axis=1))


def _ap_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision, sum over thresholds of (recall step) x precision, as in sklearn."""
    pos_desc, neg_desc = pos[:, ::-1], neg[:, ::-1]
    tp = np.cumsum(pos_desc, axis=1)
    predicted = tp + np.cumsum(neg_desc, axis=1)
    precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1.0), 0.0)
    return _div((pos_desc * precision).sum(axis=1), pos.sum(axis=1))


def _auroc(r: Resamples) -> np.ndarray:
    cols = [_auroc_from_groups(p, n) for p, n in _grouped_weights(r)]
    return _nanmean_rows(np.stack(cols, axis=1))


def _auprc(r: Resamples) -> np.ndarray:
    cols = [_ap_from_groups(p, n) for p, n in _grouped_weights(r)]
    return _nanmean_rows(np.stack(cols, axis=1))


def _specificity_at_sensitivity(r: Resamples, target: float = 0.9) -> np.ndarray:
    """Best specificity among thresholds whose sensitivity is >= target (threshold per set)."""
    pos, neg = _grouped_weights(r)[0]
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    pos_at_or_above = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
    reaches = pos_at_or_above >= target * n_pos[:, None] * (1 - _REL_TOL)
    k = reaches.sum(axis=1) - 1  # highest group index still reaching the target (prefix mask)
    neg_below = np.cumsum(neg, axis=1) - neg
    spec = _div(neg_below[np.arange(len(k)), np.maximum(k, 0)], n_neg)
    return np.where(n_pos > 0, spec, np.nan)


def _sensitivity_at_specificity(r: Resamples, target: float = 0.9) -> np.ndarray:
    """Best sensitivity among thresholds whose specificity is >= target (threshold per set)."""
    pos, neg = _grouped_weights(r)[0]
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    # Candidate k = 0..U: predict positive when score >= value_k; k = U means "never positive".
    neg_below = np.concatenate([np.cumsum(neg, axis=1) - neg, n_neg[:, None]], axis=1)
    pos_at_or_above = np.concatenate(
        [np.cumsum(pos[:, ::-1], axis=1)[:, ::-1], np.zeros((len(pos), 1))], axis=1
    )
    reaches = neg_below >= target * n_neg[:, None] * (1 - _REL_TOL)
    k = reaches.shape[1] - reaches.sum(axis=1)  # lowest threshold reaching the target (suffix)
    sens = _div(pos_at_or_above[np.arange(len(k)), np.minimum(k, reaches.shape[1] - 1)], n_pos)
    return np.where(n_neg > 0, sens, np.nan)


# --------------------------------------------------------------------------------------------
# Threshold metrics
# --------------------------------------------------------------------------------------------


def _confusion(r: Resamples) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted binary (tp, fp, tn, fn), each of shape (B,)."""

    def compute() -> tuple[np.ndarray, ...]:
        y, pred = r.pred.y, r.pred.pred_label
        cells = np.stack([y * pred, (1 - y) * pred, (1 - y) * (1 - pred), y * (1 - pred)], 1)
        counts = r.w @ cells
        return tuple(counts[:, j] for j in range(4))

    return r.memo("confusion", compute)


def _per_class_counts(r: Resamples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted (true positives, predicted count, actual count) per class/label, (B, K)."""

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        truth, pred = r.pred.true_onehot, r.pred.pred_onehot
        return r.w @ (truth * pred), r.w @ pred, r.w @ truth

    return r.memo("per_class", compute)


def _accuracy(r: Resamples) -> np.ndarray:
    return r.mean_of((r.pred.pred_label == r.pred.y).astype(float))


def _balanced_accuracy(r: Resamples) -> np.ndarray:
    """Mean recall over the classes present in the (resampled) set, as sklearn defines it."""
    tp, _, actual = _per_class_counts(r)
    return _nanmean_rows(_div(tp, actual))


def _sensitivity(r: Resamples) -> np.ndarray:
    tp, _, _, fn = _confusion(r)
    return _div(tp, tp + fn)


def _specificity(r: Resamples) -> np.ndarray:
    _, fp, tn, _ = _confusion(r)
    return _div(tn, tn + fp)


def _f1(r: Resamples) -> np.ndarray:
    """Binary: F1 of class 1. Otherwise macro F1 over classes/labels where it is defined."""
    if r.pred.kind is K.BINARY:
        tp, fp, _, fn = _confusion(r)
        return _div(2 * tp, 2 * tp + fp + fn)
    tp, predicted, actual = _per_class_counts(r)
    return _nanmean_rows(_div(2 * tp, predicted + actual))


def _challenge_f1(r: Resamples) -> np.ndarray:
    """Mean F1 over every class but the last, each class one-vs-rest on the argmax prediction:
    the PhysioNet/CinC 2017 score (mean of the Normal, AF and Other F1s; Noisy, the last class,
    counts as a prediction but not as a term). Classes absent from a resample are left out."""
    tp, predicted, actual = _per_class_counts(r)
    return _nanmean_rows(_div(2 * tp, predicted + actual)[:, :-1])


def _entity_sums(r: Resamples) -> np.ndarray:
    return r.memo("entities", lambda: r.w @ r.pred.entity_counts)


def _entity_precision(r: Resamples) -> np.ndarray:
    c = _entity_sums(r)
    return _div(c[:, 0], c[:, 1])


def _entity_recall(r: Resamples) -> np.ndarray:
    c = _entity_sums(r)
    return _div(c[:, 0], c[:, 2])


def _entity_f1(r: Resamples) -> np.ndarray:
    c = _entity_sums(r)
    return _div(2 * c[:, 0], c[:, 1] + c[:, 2])


def _kappa(r: Resamples) -> np.ndarray:
    """Cohen's kappa on class indices; quadratic-weighted for ordinal targets."""
    pred = r.pred
    n_classes = pred.n_classes
    pair = pred.y.astype(np.int64) * n_classes + pred.pred_label

    def compute() -> np.ndarray:
        present, inverse = np.unique(pair, return_inverse=True)
        cells = r.w @ np.eye(len(present))[inverse]
        cm = np.zeros((len(r.w), n_classes * n_classes))
        cm[:, present] = cells
        return cm.reshape(len(r.w), n_classes, n_classes)

    cm = r.memo("class_confusion", compute)
    idx = np.arange(n_classes)
    if pred.kind is K.ORDINAL:
        penalty = (idx[:, None] - idx[None, :]).astype(float) ** 2
    else:
        penalty = (idx[:, None] != idx[None, :]).astype(float)
    total = cm.sum(axis=(1, 2))
    expected = _div(cm.sum(axis=2)[:, :, None] * cm.sum(axis=1)[:, None, :], total[:, None, None])
    observed_cost = (cm * penalty).sum(axis=(1, 2))
    expected_cost = (expected * penalty).sum(axis=(1, 2))
    return 1.0 - _div(observed_cost, expected_cost)


# --------------------------------------------------------------------------------------------
# Probability and error metrics
# --------------------------------------------------------------------------------------------


def _brier(r: Resamples) -> np.ndarray:
    """Binary: mean (p - y)^2. Multiclass: mean over rows of the sum over classes.
    Multilabel: mean over the known (row, label) cells (with every label known, the mean over
    rows of the mean over labels)."""
    pred = r.pred
    if pred.kind is K.BINARY:
        return r.mean_of((pred.s - pred.y) ** 2)
    squared = (pred.s - pred.true_onehot) ** 2
    if pred.kind is K.MULTILABEL:
        known = pred.observed
        return _div(r.w @ (squared * known).sum(axis=1), r.w @ known.sum(axis=1))
    return r.mean_of(squared.sum(axis=1))


def calibration_bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence: [0, 1/n), ..., [(n-1)/n, 1]; shared with the curve."""
    conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    return np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)


def _ece(r: Resamples, n_bins: int = 10) -> np.ndarray:
    """Sum over bins of |sum(confidence - outcome)| / N, i.e. count-weighted |gap|."""
    conf, outcome = r.pred.calibration_pairs
    bins = np.eye(n_bins)[calibration_bin_index(conf, n_bins)]
    gaps = r.w @ (bins * (conf - outcome)[:, None])
    return _div(np.abs(gaps).sum(axis=1), r.total)


def _errors(pred: Predictions) -> np.ndarray:
    """Prediction minus truth: regression values, or argmax class minus true class (ordinal)."""
    if pred.kind is K.ORDINAL:
        return (pred.pred_label - pred.y).astype(float)
    return pred.s - pred.y


def _rmse(r: Resamples) -> np.ndarray:
    return np.sqrt(r.mean_of(_errors(r.pred) ** 2))


def _mae(r: Resamples) -> np.ndarray:
    return r.mean_of(np.abs(_errors(r.pred)))


def _r2(r: Resamples) -> np.ndarray:
    """1 - SS_res / SS_tot; NaN when the targets are constant."""
    y = r.pred.y
    mean = r.mean_of(y)
    ss_tot = (r.w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
    ss_res = r.w @ (r.pred.s - y) ** 2
    return 1.0 - _div(ss_res, ss_tot)


CORRELATIONS = ("pearson", "spearman")


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of (B, n) arrays; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def correlations_with_ci(y: np.ndarray, s: np.ndarray, n_boot: int,
                        rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Pearson and Spearman of predictions `s` with targets `y` (e.g. one drug's cell lines),
    each with a percentile bootstrap 95% CI. A constant prediction ranks nothing: its
    correlation counts as 0 (and is marked), never as missing, so a model that gives up on a
    group is not scored only on the groups it kept."""
    from scipy.stats import rankdata

    y, s = np.asarray(y, float), np.asarray(s, float)
    out: dict[str, dict[str, Any]] = {}
    if np.ptp(s) == 0:
        return {name: {"value": 0.0, "ci95": [0.0, 0.0], "constant_prediction": True}
                for name in CORRELATIONS}
    index = rng.integers(0, len(y), size=(n_boot, len(y)))
    for name in CORRELATIONS:
        if name == "spearman":
            value = _pearson_rows(rankdata(y)[None], rankdata(s)[None])[0]
            boot = _pearson_rows(rankdata(y[index], axis=1), rankdata(s[index], axis=1))
        else:
            value = _pearson_rows(y[None], s[None])[0]
            boot = _pearson_rows(y[index], s[index])
        boot = boot[np.isfinite(boot)]
        ci = [json_float(q) for q in np.percentile(boot, [2.5, 97.5])] if len(boot) else None
        out[name] = {"value": json_float(value), "ci95": ci}
    return out


# --------------------------------------------------------------------------------------------
# Survival
# --------------------------------------------------------------------------------------------


def concordance_batch(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    weights: np.ndarray,
    event_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted concordance index per row of `weights` (B, N), as scikit-survival computes it.

    Pair (i, j) is comparable when i had the event and j was still at risk later (t_j > t_i,
    or censored at t_i); it is concordant when risk_i > risk_j, half when the risks tie. Each
    pair counts w_i * w_j * event_weight_i: no `event_weight` is Harrell's C, the squared
    inverse probability of censoring weights (0 after a truncation time) is Uno's C. Works on
    blocks of event rows, O(B N^2) time and O(N) extra memory per row of a block.
    """
    events = np.flatnonzero(event)
    if event_weight is not None:
        events = events[event_weight[events] > 0]
    block = max(1, _ELEMENTS_PER_CHUNK // max(len(time), 1))
    num = np.zeros(len(weights))
    den = np.zeros(len(weights))
    for start in range(0, len(events), block):
        rows = events[start : start + block]
        later = time[None, :] > time[rows, None]
        censored_same = (time[None, :] == time[rows, None]) & ~event[None, :]
        comparable = (later | censored_same).astype(float)
        diff = risk[rows, None] - risk[None, :]
        credit = np.where(np.abs(diff) <= _RISK_TIE_TOL, 0.5, (diff > 0).astype(float))
        w_rows = weights[:, rows] if event_weight is None else weights[:, rows] * event_weight[rows]
        num += (w_rows * (weights @ (comparable * credit).T)).sum(axis=1)
        den += (w_rows * (weights @ comparable.T)).sum(axis=1)
    return _div(num, den)


def _c_index(r: Resamples) -> np.ndarray:
    """Harrell's C as in sksurv.metrics.concordance_index_censored, weighted."""
    return concordance_batch(r.pred.y["time"], r.pred.y["event"], r.pred.s, r.w)


# Survival metrics that need the *training* set as well (its censoring distribution gives the
# inverse-probability weights): Uno's C, the integrated and per-horizon Brier score and the
# time-dependent AUC live in iatros.evaluate.survival (evaluate_survival), not in METRICS,
# because a MetricSpec sees only the evaluated set. Uno's C reuses concordance_batch.


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A metric: its weighted batch implementation, where it applies, and its direction.

    `fn(Resamples) -> (B,)` returns one value per weight row (NaN where undefined); use
    `score()` for a single value on plain arrays.
    """

    fn: Callable[[Resamples], np.ndarray]
    kinds: frozenset[TargetKind]
    higher_is_better: bool
    description: str


_CLASSES = frozenset({K.BINARY, K.MULTICLASS, K.ORDINAL})
_INDEX = frozenset({K.MULTICLASS, K.ORDINAL})

METRICS: dict[str, MetricSpec] = {
    "auroc": MetricSpec(_auroc, _CLASSES | {K.MULTILABEL}, True,
                        "area under the ROC curve (macro one-vs-rest for several classes)"),
    "auprc": MetricSpec(_auprc, _CLASSES | {K.MULTILABEL}, True,
                        "average precision (macro one-vs-rest for several classes)"),
    "accuracy": MetricSpec(_accuracy, _CLASSES, True, "fraction of correct hard predictions"),
    "balanced_accuracy": MetricSpec(_balanced_accuracy, _CLASSES, True,
                                    "mean recall over classes present"),
    "sensitivity": MetricSpec(_sensitivity, frozenset({K.BINARY}), True,
                              "true positive rate at the threshold"),
    "specificity": MetricSpec(_specificity, frozenset({K.BINARY}), True,
                              "true negative rate at the threshold"),
    "specificity_at_sens90": MetricSpec(
        _specificity_at_sensitivity, frozenset({K.BINARY}), True,
        "specificity at the highest threshold reaching 90% sensitivity on the evaluated set"),
    "sensitivity_at_spec90": MetricSpec(
        _sensitivity_at_specificity, frozenset({K.BINARY}), True,
        "sensitivity at the lowest threshold reaching 90% specificity on the evaluated set"),
    "f1": MetricSpec(_f1, _CLASSES | {K.MULTILABEL}, True,
                     "F1 of class 1 (binary), macro F1 otherwise"),
    "challenge_f1": MetricSpec(_challenge_f1, frozenset({K.MULTICLASS}), True,
                               "mean F1 of every class but the last (PhysioNet/CinC 2017: Normal, "
                               "AF, Other; the last, noisy, class left out)"),
    "kappa": MetricSpec(_kappa, _CLASSES, True,
                        "Cohen's kappa (quadratic-weighted for ordinal targets)"),
    "brier": MetricSpec(_brier, _CLASSES | {K.MULTILABEL}, False, "Brier score"),
    "ece": MetricSpec(_ece, _CLASSES, False,
                      "expected calibration error, 10 equal-width bins (top-label if multiclass)"),
    "rmse": MetricSpec(_rmse, frozenset({K.REGRESSION}), False, "root mean squared error"),
    "mae": MetricSpec(_mae, frozenset({K.REGRESSION, K.ORDINAL}), False,
                      "mean absolute error (ordinal: argmax class vs true class)"),
    "r2": MetricSpec(_r2, frozenset({K.REGRESSION}), True, "coefficient of determination"),
    "c_index": MetricSpec(_c_index, frozenset({K.SURVIVAL}), True, "Harrell's concordance index"),
    "entity_precision": MetricSpec(_entity_precision, frozenset({K.TOKENS}), True,
                                   "exact-match entity precision (micro over entities)"),
    "entity_recall": MetricSpec(_entity_recall, frozenset({K.TOKENS}), True,
                                "exact-match entity recall (micro over entities)"),
    "entity_f1": MetricSpec(_entity_f1, frozenset({K.TOKENS}), True,
                            "exact-match entity F1 (micro over entities; span and type must match)"),
}

_DEFAULTS: dict[TargetKind, tuple[str, ...]] = {
    K.BINARY: ("auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
               "specificity_at_sens90", "f1", "brier", "ece"),
    K.MULTICLASS: ("auroc", "auprc", "accuracy", "balanced_accuracy", "f1", "kappa", "brier",
                   "ece"),
    K.ORDINAL: ("auroc", "auprc", "accuracy", "balanced_accuracy", "f1", "kappa", "brier", "ece",
                "mae"),
    K.MULTILABEL: ("auroc", "auprc", "f1", "brier"),
    K.REGRESSION: ("rmse", "mae", "r2"),
    K.SURVIVAL: ("c_index",),
    K.TOKENS: ("entity_f1", "entity_precision", "entity_recall"),
}


def default_metrics(kind: TargetKind | str) -> tuple[str, ...]:
    """The metrics reported for `kind` when none are asked for."""
    return _DEFAULTS[as_kind(kind)]


def resolve_metrics(kind: TargetKind | str, metrics: Iterable[str] | str | None) -> tuple[str, ...]:
    """Check metric names against the registry and the kind; None means the defaults."""
    kind = as_kind(kind)
    if metrics is None:
        return default_metrics(kind)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    for name in names:
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
        if kind not in METRICS[name].kinds:
            usable = ", ".join(n for n, spec in METRICS.items() if kind in spec.kinds)
            raise ConfigError(
                f"metric {name!r} does not apply to {kind.value} targets; use one of: {usable}"
            )
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------------------------
# Point estimates
# --------------------------------------------------------------------------------------------


def compute_metrics(
    pred: Predictions, names: Sequence[str], weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Each named metric for each weight row (default: one row of ones, the point estimate)."""
    w = np.ones((1, pred.n)) if weights is None else weights
    batch = Resamples(pred, w)
    with np.errstate(all="ignore"):
        return {name: np.asarray(METRICS[name].fn(batch), dtype=float) for name in names}


def score(
    name: str, y_true: Any, y_score: Any, kind: TargetKind | str, *, threshold: float = 0.5
) -> float:
    """Point estimate of one metric; NaN when undefined (e.g. AUROC with one class present)."""
    (name,) = resolve_metrics(kind, [name])
    pred = Predictions(y_true, y_score, kind, threshold)
    return float(compute_metrics(pred, (name,))[name][0])


def expected_calibration_error(
    y_true: Any, y_score: Any, kind: TargetKind | str, n_bins: int = 10
) -> float:
    """ECE with `n_bins` equal-width bins: binary on p(class 1), multiclass on the top label."""
    if int(n_bins) < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    pred = Predictions(y_true, y_score, kind)
    with np.errstate(all="ignore"):
        return float(_ece(Resamples(pred, np.ones((1, pred.n))), int(n_bins))[0])


INTERVAL_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def interval_coverage(y_true: Any, mean: Any, sd: Any,
                      levels: Sequence[float] = INTERVAL_LEVELS) -> dict[str, Any]:
    """Regression intervals' calibration: for each level p, the fraction of targets inside the
    central Gaussian interval mean +- z(p) sd, and the expected calibration error, the mean of
    |observed - p| over the levels (Levi et al. 2022; 0 is perfect, the interval ECE chemprop
    and uncertainty-toolbox report). Rows with a missing target are left out."""
    from scipy.stats import norm

    y, mu, s = (np.asarray(v, dtype=np.float64).ravel() for v in (y_true, mean, sd))
    if not y.shape == mu.shape == s.shape:
        raise ConfigError(f"y_true, mean and sd need the same length (got {y.shape}, {mu.shape}, "
                          f"{s.shape})")
    keep = np.isfinite(y) & np.isfinite(mu) & np.isfinite(s)
    if not keep.any():
        raise ConfigError("interval calibration needs at least one row with a known target")
    z = np.abs(y[keep] - mu[keep]) / np.maximum(s[keep], 1e-12)
    levels = np.asarray(levels, dtype=np.float64)
    observed = np.array([(z <= norm.ppf(0.5 + p / 2)).mean() for p in levels])
    return {"levels": [round(float(p), 4) for p in levels],
            "observed": [round(float(o), 4) for o in observed],
            "ece": float(np.mean(np.abs(observed - levels))), "n": int(keep.sum())}


def calibration_pairs(
    y_true: Any, y_score: Any, kind: TargetKind | str
) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs that ECE and the reliability curve are computed on."""
    return Predictions(y_true, y_score, kind).calibration_pairs


def binary_confusion(y_true: Any, p: Any, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(tp, fp, tn, fn) counts when predicting positive for p >= threshold."""
    pred = Predictions(y_true, p, K.BINARY, threshold)
    counts = _confusion(Resamples(pred, np.ones((1, pred.n))))
    tp, fp, tn, fn = (int(round(c[0])) for c in counts)
    return tp, fp, tn, fn


def threshold_at_sensitivity(y_true: Any, p: Any, target: float = 0.9) -> float:
    """Highest threshold t such that predicting p >= t reaches `target` sensitivity.

    NaN when there are no positives.
    """
    if not 0.0 <= target <= 1.0:
        raise ConfigError(f"target sensitivity must be in [0, 1], got {target}")
    pred = Predictions(y_true, p, K.BINARY)
    col = pred.ranked[0]
    pos = np.add.reduceat(col.labels, col.starts)
    if pos.sum() == 0:
        return math.nan
    pos_at_or_above = np.cumsum(pos[::-1])[::-1]
    k = int((pos_at_or_above >= target * pos.sum() * (1 - _REL_TOL)).sum()) - 1
    return float(col.values[k])


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------


def _cluster_codes(clusters: Any, n: int) -> tuple[np.ndarray | None, int]:
    """Integer code of each row's cluster and the number of clusters (rows if no clusters)."""
    if clusters is None:
        return None, n
    values = np.asarray(clusters, dtype=object).ravel()
    if len(values) != n:
        raise ConfigError(f"clusters has {len(values)} entries but there are {n} rows")
    codes, uniques = pd.factorize(values)
    missing = np.flatnonzero(codes < 0)
    if len(missing):
        raise ConfigError(
            f"clusters has {len(missing)} missing ids (rows {_row_list(missing)}): every row "
            "needs a patient/cluster id"
        )
    return codes, len(uniques)


def bootstrap_weights(
    n: int, n_boot: int, seed: int = 0, clusters: Any = None
) -> Iterator[np.ndarray]:
    """Yield (b, n) blocks of bootstrap weights, n_boot rows in all, reproducibly from `seed`.

    Each row counts how often each row (or, with `clusters`, each row's cluster) was drawn when
    resampling with replacement, so multi-row patients move together.
    """
    codes, n_units = _cluster_codes(clusters, n)
    rng = np.random.default_rng(seed)
    chunk = max(1, _ELEMENTS_PER_CHUNK // max(n, n_units, 1))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, n_units, size=(b, n_units))
        draws += (np.arange(b) * n_units)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units)
        counts = counts.astype(float)
        yield counts if codes is None else counts[:, codes]
        done += b


def bootstrap_metrics(
    pred: Predictions,
    names: Sequence[str],
    n_boot: int,
    seed: int = 0,
    clusters: Any = None,
) -> dict[str, np.ndarray]:
    """Each metric on n_boot bootstrap resamples of `pred`: arrays of shape (n_boot,)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for w in bootstrap_weights(pred.n, n_boot, seed, clusters):
        for name, values in compute_metrics(pred, names, w).items():
            parts[name].append(values)
    return {name: np.concatenate(v) if v else np.empty(0) for name, v in parts.items()}


def json_float(value: Any) -> float | None:
    """A plain float, or None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def ci_key(ci: float) -> str:
    """Name of the interval entry: 'ci95' for ci=0.95, 'ci90' for 0.9, ..."""
    return f"ci{100 * ci:g}".replace(".", "_")


def _check_ci(ci: float, n_boot: int) -> None:
    if not 0.0 < ci < 1.0:
        raise ConfigError(f"ci must be between 0 and 1 (e.g. 0.95), got {ci}")
    if int(n_boot) < 0:
        raise ConfigError(f"n_boot must be >= 0, got {n_boot}")


def percentile_ci(samples: np.ndarray, ci: float = 0.95) -> list[float | None]:
    """Percentile interval of the defined bootstrap values; [None, None] if under half are."""
    samples = np.asarray(samples, dtype=float)
    valid = samples[np.isfinite(samples)]
    if len(samples) == 0 or len(valid) < 0.5 * len(samples):
        return [None, None]
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(valid, [alpha, 1.0 - alpha])
    return [json_float(lo), json_float(hi)]


def evaluate(
    y_true: Any,
    y_score: Any,
    kind: TargetKind | str,
    *,
    metrics: Iterable[str] | str | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    clusters: Any = None,
    ci: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Point estimate and percentile bootstrap interval of each metric, JSON-ready.

    Returns {metric: {"value", "ci95": [lo, hi], "n"}} (plus "n_positive" for binary); the
    interval key follows `ci` ("ci90" for 0.9). With `clusters` (patient ids), whole patients
    are resampled. Undefined resamples are dropped; under half defined gives [None, None].
    """
    kind = as_kind(kind)
    names = resolve_metrics(kind, metrics)
    _check_ci(ci, n_boot)
    pred = Predictions(y_true, y_score, kind, threshold)
    point = compute_metrics(pred, names)
    boot = bootstrap_metrics(pred, names, int(n_boot), seed, clusters)
    key = ci_key(ci)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entry: dict[str, Any] = {
            "value": json_float(point[name][0]),
            key: percentile_ci(boot[name], ci),
            "n": int(pred.n),
        }
        if kind is K.BINARY:
            entry["n_positive"] = int(pred.y.sum())
        if kind is K.TOKENS:
            entry["n_entities"] = int(pred.entity_counts[:, 2].sum())
        out[name] = entry
    return out
