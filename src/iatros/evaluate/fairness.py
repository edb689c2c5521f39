"""Subgroup audits: metrics per group, between-group gaps with bootstrap intervals.

Gap intervals come from one bootstrap over the whole evaluated set (rows or patients), recomputing
every group's metric on each resample, so the interval reflects that group sizes vary too. Point
estimates of the equalized-odds and demographic-parity differences come from fairlearn; the
bootstrap uses an equivalent numpy version (tests check they agree) to stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from iatros.errors import ConfigError
from iatros.evaluate.metrics import (
    METRICS,
    Predictions,
    as_kind,
    bootstrap_weights,
    ci_key,
    compute_metrics,
    evaluate,
    json_float,
    percentile_ci,
    resolve_metrics,
)
from iatros.kinds import TargetKind

__all__ = ["UNKNOWN_GROUP", "audit", "group_labels", "subgroup_audit"]

UNKNOWN_GROUP = "unknown"


def _label(value: Any) -> str:
    """One group label as a string; missing values become UNKNOWN_GROUP, 1.0 becomes '1'."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return UNKNOWN_GROUP
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def group_labels(groups: Any, n: int) -> np.ndarray:
    """Group label of each row as str, with NaN/None mapped to 'unknown'."""
    values = groups.to_numpy(dtype=object) if hasattr(groups, "to_numpy") else groups
    values = np.asarray(values, dtype=object)
    if values.ndim != 1 or len(values) != n:
        raise ConfigError(f"groups must have one label per row ({n}), got shape {values.shape}")
    return np.array([_label(v) for v in values], dtype=object)


def ordered_groups(labels: np.ndarray) -> list[str]:
    """Distinct labels, sorted, with 'unknown' last."""
    return sorted(set(labels.tolist()), key=lambda g: (g == UNKNOWN_GROUP, g))


@dataclass(frozen=True)
class Groups:
    """The rows of each group of one attribute (in audit order) and the resampling clusters."""

    labels: np.ndarray
    rows: dict[str, np.ndarray]
    clusters: np.ndarray | None

    def eligible(self, min_size: int) -> list[str]:
        """Groups big enough to enter a gap."""
        return [g for g, idx in self.rows.items() if len(idx) >= min_size]

    def small(self, min_size: int) -> list[str]:
        return [g for g, idx in self.rows.items() if len(idx) < min_size]

    def cluster_ids(self, group: str) -> np.ndarray | None:
        return None if self.clusters is None else self.clusters[self.rows[group]]


def group_rows(groups: Any, n: int, clusters: Any = None) -> Groups:
    """Every audit starts here: labels (missing = 'unknown'), rows per group, clusters checked."""
    labels = group_labels(groups, n)
    cluster_ids = None if clusters is None else np.asarray(clusters, dtype=object).ravel()
    if cluster_ids is not None and len(cluster_ids) != n:
        raise ConfigError(f"clusters has {len(cluster_ids)} entries but there are {n} rows")
    return Groups(labels, {g: np.flatnonzero(labels == g) for g in ordered_groups(labels)},
                  cluster_ids)


def extremes(values: dict[str, float]) -> tuple[str, str] | None:
    """(highest, lowest) group of a metric's defined values; None with fewer than two."""
    if len(values) < 2:
        return None
    return max(values, key=values.get), min(values, key=values.get)


def best_and_worst(high: str, low: str, higher_is_better: bool) -> tuple[str, str]:
    return (high, low) if higher_is_better else (low, high)


def _range(values: np.ndarray) -> np.ndarray:
    """max - min over the last axis; NaN where any entry is NaN (that resample is undefined)."""
    return values.max(axis=-1) - values.min(axis=-1)


def _rate_tables(
    y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, w: np.ndarray
) -> dict[str, np.ndarray]:
    """Weighted per-group counts, each (B, n_groups)."""
    onehot = np.eye(n_groups)[codes]
    indicators = {"tp": y * pred, "pos": y, "fp": (1 - y) * pred, "neg": 1 - y,
                  "selected": pred, "size": np.ones_like(y)}
    counts = w @ np.concatenate([onehot * v[:, None] for v in indicators.values()], axis=1)
    return {key: counts[:, i * n_groups:(i + 1) * n_groups] for i, key in enumerate(indicators)}


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def equalized_odds_batch(
    y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, w: np.ndarray
) -> np.ndarray:
    """max(TPR range, FPR range) over groups, per weight row (fairlearn's worst case)."""
    t = _rate_tables(y, pred, codes, n_groups, w)
    tpr, fpr = _div(t["tp"], t["pos"]), _div(t["fp"], t["neg"])
    return np.maximum(_range(tpr), _range(fpr))


def demographic_parity_batch(
    y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, w: np.ndarray
) -> np.ndarray:
    """Range of selection rates P(pred = 1) over groups, per weight row."""
    t = _rate_tables(y, pred, codes, n_groups, w)
    return _range(_div(t["selected"], t["size"]))


def _entry(value: float | None, samples: np.ndarray, ci: float, n: int) -> dict[str, Any]:
    return {"value": json_float(value) if value is not None else None,
            ci_key(ci): percentile_ci(samples, ci) if value is not None else [None, None],
            "n": n}


def _gap_groups(
    per_group: dict[str, dict[str, Any]], eligible: list[str], metric: str
) -> dict[str, float]:
    """Point values of `metric` for eligible groups where it is defined."""
    values = {g: per_group[g]["metrics"][metric]["value"] for g in eligible}
    return {g: v for g, v in values.items() if v is not None}


THRESHOLDED = frozenset({TargetKind.BINARY})


def subgroup_audit(y_true: Any, y_score: Any, groups: Any, kind: TargetKind | str, *,
                   attribute: str = "group", metrics: Iterable[str] | str | None = None,
                   threshold: float = 0.5, n_boot: int = 1000, seed: int = 0, clusters: Any = None,
                   min_group_size: int = 10, ci: float = 0.95) -> dict[str, Any]:
    """Metrics per group of one attribute, between-group gaps, and (binary) fairness gaps.

    Groups smaller than `min_group_size` are reported but left out of every gap. A gap is
    max - min over the groups where the metric is defined; its interval comes from resampling
    the whole set (rows, or patients via `clusters`). Equalized-odds difference uses groups
    that hold both classes.
    """
    kind = as_kind(kind)
    names = resolve_metrics(kind, metrics)
    pred = Predictions(y_true, y_score, kind, threshold)
    grouped = group_rows(groups, pred.n, clusters)
    labels, rows = grouped.labels, grouped.rows
    thresholded = kind in THRESHOLDED  # one decision threshold: prevalence, EOD and DPD apply

    per_group: dict[str, dict[str, Any]] = {}
    for g, idx in rows.items():
        sub = pred.subset(idx)
        per_group[g] = {
            "n": len(idx),
            "prevalence": float(sub.y.mean()) if thresholded else None,
            "metrics": evaluate(sub.y, sub.s, kind, metrics=names, threshold=threshold,
                                n_boot=n_boot, seed=seed, ci=ci, clusters=grouped.cluster_ids(g)),
        }
    eligible = grouped.eligible(min_group_size)
    gap_sets = {m: _gap_groups(per_group, eligible, m) for m in names}
    fairness = _fairness_gaps_for(pred, labels, rows, eligible) if thresholded else []

    boot = _bootstrap_gaps(pred, rows, gap_sets, fairness, int(n_boot), seed, clusters)
    result: dict[str, Any] = {
        "attribute": attribute,
        "groups": per_group,
        "gaps": {m: _gap_entry(m, gap_sets[m], boot[m], ci, pred.n) for m in names},
    }
    for f in fairness:
        result[f.key] = _entry(_fairness_point(pred, labels, f), boot[f.key], ci, pred.n)
        result[f.key]["groups"] = list(f.groups)
    result["small_groups"] = grouped.small(min_group_size)
    result["threshold"] = float(threshold)
    return result


def _gap_entry(
    metric: str, values: dict[str, float], samples: np.ndarray, ci: float, n: int
) -> dict[str, Any]:
    """Gap summary for one metric: value, interval, best and worst group."""
    pair = extremes(values)
    if pair is None:
        entry = _entry(None, samples, ci, n)
        entry.update(best_group=None, worst_group=None, groups=sorted(values))
        return entry
    high, low = pair
    best, worst = best_and_worst(high, low, METRICS[metric].higher_is_better)
    entry = _entry(values[high] - values[low], samples, ci, n)
    entry.update(best_group=best, worst_group=worst, groups=list(values))
    return entry


def _eod_groups(pred: Predictions, rows: dict[str, np.ndarray], eligible: list[str]) -> list[str]:
    """Eligible groups where both TPR and FPR are defined (both classes present)."""
    return [g for g in eligible if 0 < pred.y[rows[g]].sum() < len(rows[g])]


@dataclass(frozen=True)
class _FairnessGap:
    """A binary fairness difference: which groups it compares and its two implementations."""

    key: str
    groups: list[str]
    rows: np.ndarray  # rows of the compared groups
    codes: np.ndarray  # each of those rows' group index within `groups`
    batch: Callable[..., np.ndarray]
    reference: Callable[..., float]


def _fairness_gap(
    key: str, chosen: list[str], labels: np.ndarray, rows: dict[str, np.ndarray],
    batch: Callable[..., np.ndarray], reference: Callable[..., float],
) -> _FairnessGap:
    idx = np.sort(np.concatenate([rows[g] for g in chosen])) if chosen else np.empty(0, int)
    lookup = {g: i for i, g in enumerate(chosen)}
    codes = np.array([lookup[g] for g in labels[idx]], dtype=np.int64)
    return _FairnessGap(key, chosen, idx, codes, batch, reference)


def _fairness_gaps_for(
    pred: Predictions, labels: np.ndarray, rows: dict[str, np.ndarray], eligible: list[str]
) -> list[_FairnessGap]:
    """Equalized odds (groups with both classes) and demographic parity (all eligible)."""
    return [
        _fairness_gap("equalized_odds_difference", _eod_groups(pred, rows, eligible), labels,
                      rows, equalized_odds_batch, equalized_odds_difference),
        _fairness_gap("demographic_parity_difference", eligible, labels, rows,
                      demographic_parity_batch, demographic_parity_difference),
    ]


def _fairness_point(pred: Predictions, labels: np.ndarray, gap: _FairnessGap) -> float | None:
    """fairlearn's value of the difference on the compared groups; None with under 2 groups."""
    if len(gap.groups) < 2:
        return None
    idx = gap.rows
    return float(gap.reference(pred.y[idx].astype(int), pred.pred_label[idx],
                               sensitive_features=labels[idx].astype(str)))


def _bootstrap_gaps(
    pred: Predictions,
    rows: dict[str, np.ndarray],
    gap_sets: dict[str, dict[str, float]],
    fairness: list[_FairnessGap],
    n_boot: int,
    seed: int,
    clusters: Any,
) -> dict[str, np.ndarray]:
    """One bootstrap over the whole set: every metric gap and every fairness difference.

    A metric gap is resampled as the signed difference between the two groups that are highest
    and lowest on the full data, not as max - min of each resample: max - min is never below 0,
    so its interval would exclude 0 even when the groups do not differ.
    """
    needed = sorted({g for values in gap_sets.values() for g in values})
    subs = {g: pred.subset(rows[g]) for g in needed}
    names = tuple(gap_sets)
    parts: dict[str, list[np.ndarray]] = {key: [] for key in (*names, *(f.key for f in fairness))}
    for w in bootstrap_weights(pred.n, n_boot, seed, clusters):
        per_group = {g: compute_metrics(subs[g], names, w[:, rows[g]]) for g in needed}
        for m, values in gap_sets.items():
            pair = extremes(values)
            if pair is not None:
                parts[m].append(per_group[pair[0]][m] - per_group[pair[1]][m])
        for f in fairness:
            if len(f.groups) >= 2:
                y, hard = pred.y[f.rows], pred.pred_label[f.rows].astype(float)
                with np.errstate(all="ignore"):
                    parts[f.key].append(f.batch(y, hard, f.codes, len(f.groups), w[:, f.rows]))
    return {key: np.concatenate(v) if v else np.empty(0) for key, v in parts.items()}


def audit(
    y_true: Any, y_score: Any, attributes: pd.DataFrame, kind: TargetKind | str, **kw: Any
) -> dict[str, dict[str, Any]]:
    """subgroup_audit for every column of `attributes` (one row per prediction)."""
    if not isinstance(attributes, pd.DataFrame):
        raise ConfigError("attributes must be a pandas DataFrame with one column per attribute")
    if "attribute" in kw or "groups" in kw:
        raise ConfigError("audit takes the groups from the columns of `attributes`")
    return {
        str(col): subgroup_audit(y_true, y_score, attributes[col], kind, attribute=str(col), **kw)
        for col in attributes.columns
    }
