"""Survival (time-to-event) evaluation: discrimination, IPCW Brier scores, calibration, KM curves.

A model's output is a SurvivalPrediction: a risk score per patient and a survival curve on a time
grid. Metrics follow scikit-survival's definitions (tests check each against it) but are written,
like metrics.py, as functions of a (B, N) batch of bootstrap weights, so a bootstrap is a few
matrix products instead of B calls into scikit-survival. Harrell's C is metrics.py's; Uno's C uses
its weighted concordance. Inverse-probability-of-censoring weights come from the Kaplan-Meier
estimate of the censoring distribution on the *training* set, kept fixed while the evaluated rows
(or patients) are resampled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sksurv.nonparametric import CensoringDistributionEstimator
from sksurv.util import Surv

from iatros.errors import ConfigError
from iatros.evaluate.fairness import (
    best_and_worst,
    extremes,
    group_labels,
    group_rows,
    ordered_groups,
)
from iatros.evaluate.metrics import (
    Predictions,
    _check_ci,
    _row_list,
    bootstrap_weights,
    ci_key,
    compute_metrics,
    concordance_batch,
    json_float,
    percentile_ci,
)
from iatros.kinds import TargetKind
from iatros.targets import survival_pairs

__all__ = [
    "SURVIVAL_METRICS",
    "SurvivalPrediction",
    "check_survival_target",
    "evaluate_survival",
    "kaplan_meier",
    "logrank",
    "number_at_risk",
    "risk_cut_points",
    "risk_groups",
    "subgroup_survival_audit",
    "survival_calibration",
]

# Slack allowed when checking that survival curves are non-increasing and inside [0, 1].
_CURVE_TOL = 1e-6
_DEFAULT_QUANTILES = (25.0, 50.0, 75.0)

# Aggregate metric keys of evaluate_survival -> whether higher is better. Per-horizon keys
# "td_auc@{t:g}" (higher is better) and "brier@{t:g}" (lower is better) come after them.
SURVIVAL_METRICS: dict[str, bool] = {"c_index": True, "c_index_uno": True, "ibs": False,
                                     "td_auc": True, "c_td": True}
# Rows of the pair matrices held at once by the time-dependent concordance (memory ~ rows x N).
_PAIR_CHUNK = 512


# --------------------------------------------------------------------------------------------
# Targets and predictions
# --------------------------------------------------------------------------------------------


def _survival_arrays(
    time: Any, event: Any, name: str, *, require_event: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (time float > 0, event bool) arrays; ConfigError names the rows at fault."""
    return survival_pairs(time, event, name, require_event=require_event)


def check_survival_target(
    time: Any, event: Any, name: str = "survival"
) -> tuple[np.ndarray, np.ndarray]:
    """Check a survival target and return (time as float, event as bool).

    ConfigError, naming `name` and up to 5 rows, for missing or non-positive times, events that
    are not 0/1 or booleans, mismatched lengths, and a set with no events at all.
    """
    return _survival_arrays(time, event, name)


def _float_array(values: Any, name: str) -> np.ndarray:
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"SurvivalPrediction {name} must be numeric: {exc}") from None


@dataclass(frozen=True, eq=False)
class SurvivalPrediction:
    """A model's survival output for N patients: risk (N,), grid times (T,), survival (N, T).

    `risk` is higher for an earlier expected event; `survival[i, k]` is S(times[k] | x_i), in
    [0, 1] and non-increasing along the grid (checked within 1e-6, then clipped). Arrays are
    copied and read-only.
    """

    risk: np.ndarray
    times: np.ndarray
    survival: np.ndarray

    def __post_init__(self) -> None:
        risk = _float_array(self.risk, "risk")
        times = _float_array(self.times, "times")
        surv = _float_array(self.survival, "survival")
        if risk.ndim != 1 or times.ndim != 1 or len(times) == 0:
            raise ConfigError(f"SurvivalPrediction needs risk of shape (N,) and times of shape (T,), "
                              f"T >= 1; got {risk.shape} and {times.shape}")
        if surv.shape != (len(risk), len(times)):
            raise ConfigError(f"SurvivalPrediction survival must have shape (N, T) = "
                              f"{(len(risk), len(times))}, got {surv.shape}")
        for values, what in ((risk, "risk"), (surv, "survival")):
            rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
            if len(rows):
                raise ConfigError(f"SurvivalPrediction {what} is NaN or infinite in rows "
                                  f"{_row_list(rows)}")
        if not np.isfinite(times).all() or (len(times) > 1 and (np.diff(times) <= 0).any()):
            raise ConfigError("SurvivalPrediction times must be finite and strictly increasing")
        rows = np.flatnonzero(((surv < -_CURVE_TOL) | (surv > 1 + _CURVE_TOL)).any(axis=1))
        if len(rows):
            raise ConfigError(f"SurvivalPrediction survival must lie in [0, 1]; rows "
                              f"{_row_list(rows)} do not")
        rows = np.flatnonzero((np.diff(surv, axis=1) > _CURVE_TOL).any(axis=1))
        if len(rows):
            raise ConfigError(f"SurvivalPrediction survival must be non-increasing in time; it "
                              f"increases in rows {_row_list(rows)}")
        surv = np.minimum.accumulate(np.clip(surv, 0.0, 1.0), axis=1)
        for name, value in (("risk", risk), ("times", times), ("survival", surv)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        return len(self.risk)

    def at(self, t: float) -> np.ndarray:
        """S(t | x) per patient by step interpolation: the last grid value at or before t (1 before
        the grid). ConfigError beyond the grid, where the model says nothing."""
        t = float(t)
        if t > self.times[-1]:
            raise ConfigError(f"time {t:g} is beyond the prediction grid, which ends at "
                              f"{self.times[-1]:g}")
        k = int(np.searchsorted(self.times, t, side="right")) - 1
        return np.ones(self.n) if k < 0 else self.survival[:, k].copy()

    def median_time(self) -> np.ndarray:
        """First grid time where S <= 0.5, per patient; NaN when the curve stays above 0.5."""
        below = self.survival <= 0.5
        first = np.argmax(below, axis=1)
        return np.where(below.any(axis=1), self.times[first], np.nan)

    def subset(self, rows: np.ndarray) -> SurvivalPrediction:
        """The predictions of `rows` (indices or boolean mask)."""
        return SurvivalPrediction(self.risk[rows], self.times, self.survival[rows])


def _check_prediction(pred: Any, n: int) -> SurvivalPrediction:
    if not isinstance(pred, SurvivalPrediction):
        raise ConfigError(f"pred must be a SurvivalPrediction, got {type(pred).__name__}")
    if pred.n != n:
        raise ConfigError(f"pred has {pred.n} rows but the target has {n}")
    return pred


# --------------------------------------------------------------------------------------------
# Kaplan-Meier, weighted and batched
# --------------------------------------------------------------------------------------------


class _TimeTable:
    """Rows sorted by time once, so weighted Kaplan-Meier counts are two reduceat calls."""

    def __init__(self, time: np.ndarray, event: np.ndarray) -> None:
        self.order = np.argsort(time, kind="stable")
        sorted_time = time[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_time[1:] != sorted_time[:-1]])
        self.times = sorted_time[self.starts]
        self.event_sorted = event[self.order].astype(float)

    def counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted (events, at risk) at each distinct time, each (B, U)."""
        ws = w[:, self.order]
        total = np.add.reduceat(ws, self.starts, axis=1)
        died = np.add.reduceat(ws * self.event_sorted, self.starts, axis=1)
        return died, np.cumsum(total[:, ::-1], axis=1)[:, ::-1]

    def survival(self, w: np.ndarray) -> np.ndarray:
        """Kaplan-Meier S at each distinct time, (B, U)."""
        died, at_risk = self.counts(w)
        return np.cumprod(1.0 - _ratio(died, at_risk), axis=1)

    def survival_at(self, w: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Kaplan-Meier S at the times `at` (step function, 1 before the first time), (B, A)."""
        surv = self.survival(w)
        k = np.searchsorted(self.times, at, side="right") - 1
        return np.where(k >= 0, surv[:, np.maximum(k, 0)], 1.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where num is 0 (0/0 terms of Kaplan-Meier and Greenwood)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=(num != 0) & (den != 0))
    return out


def _km_table(time: np.ndarray, event: np.ndarray, ci: float = 0.95) -> dict[str, np.ndarray]:
    """Kaplan-Meier curve with Greenwood variance and log-log CI, as scikit-survival computes it."""
    table = _TimeTable(time, event)
    died, at_risk = (x[0] for x in table.counts(np.ones((1, len(time)))))
    surv = np.cumprod(1.0 - _ratio(died, at_risk))
    greenwood = np.cumsum(_ratio(died, at_risk * (at_risk - died)))
    eps = np.finfo(float).eps
    log_s = np.log(np.where(surv > eps, surv, 1.0))
    theta = np.zeros_like(surv)
    np.divide(np.sqrt(greenwood), log_s, out=theta, where=log_s < -eps)
    z = stats.norm.isf((1.0 - ci) / 2.0)
    low, high = np.exp(np.exp(z * np.multiply.outer([-1.0, 1.0], theta)) * log_s)
    low, high = np.where(surv > eps, low, 0.0), np.where(surv > eps, high, 0.0)
    return {"times": table.times, "survival": surv, "ci_low": low, "ci_high": high,
            "variance": surv**2 * greenwood, "at_risk": at_risk, "n_events": died}


def _km_at(table: dict[str, np.ndarray], t: float) -> dict[str, float]:
    """The step-function value of a _km_table at time t (S = 1, variance 0 before the start)."""
    k = int(np.searchsorted(table["times"], t, side="right")) - 1
    if k < 0:
        return {"survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "variance": 0.0}
    return {key: float(table[key][k]) for key in ("survival", "ci_low", "ci_high", "variance")}


def kaplan_meier(time: Any, event: Any, *, ci: float = 0.95) -> dict[str, list]:
    """Kaplan-Meier curve at each distinct time, with log-log CI and number at risk, JSON-ready.

    Keys: times, survival, ci_low, ci_high, at_risk (just before each time), n_events.
    """
    _check_ci(ci, 0)
    t, e = _survival_arrays(time, event, "survival", require_event=False)
    table = _km_table(t, e, ci)
    out: dict[str, list] = {key: [json_float(v) for v in table[key]]
                            for key in ("times", "survival", "ci_low", "ci_high")}
    out["at_risk"] = [int(round(v)) for v in table["at_risk"]]
    out["n_events"] = [int(round(v)) for v in table["n_events"]]
    return out


# --------------------------------------------------------------------------------------------
# Groups: at-risk tables, log-rank, risk groups
# --------------------------------------------------------------------------------------------


def number_at_risk(time: Any, groups: Any, at_times: Sequence[float]) -> dict[str, Any]:
    """Patients still under observation (time >= t) at each of `at_times`, per group.

    `groups=None` counts everyone as group 'all'. Returns {"times", "at_risk": {group: [...]}},
    the table printed under a Kaplan-Meier plot.
    """
    t = np.asarray(time, dtype=float)
    at = np.asarray(at_times, dtype=float).ravel()
    labels = np.full(len(t), "all", dtype=object) if groups is None else group_labels(groups, len(t))
    table = {}
    for g in ordered_groups(labels):
        sorted_t = np.sort(t[labels == g])
        table[g] = [int(v) for v in len(sorted_t) - np.searchsorted(sorted_t, at, side="left")]
    return {"times": [json_float(v) for v in at], "at_risk": table}


def logrank(time: Any, event: Any, groups: Any) -> dict[str, Any]:
    """Log-rank test that 2+ groups share one survival curve (chi-square, K - 1 df).

    Same statistic as sksurv.compare.compare_survival and lifelines' multivariate_logrank_test.
    Also returns per group n, observed and expected events.
    """
    t, e = _survival_arrays(time, event, "survival")
    labels = group_labels(groups, len(t))
    names = ordered_groups(labels)
    if len(names) < 2:
        raise ConfigError(f"the log-rank test needs at least 2 groups, got {len(names)}: {names}")
    event_times = np.unique(t[e])
    at_risk = np.empty((len(event_times), len(names)))
    died = np.empty_like(at_risk)
    for j, g in enumerate(names):
        tg, eg = t[labels == g], e[labels == g]
        sorted_t, sorted_events = np.sort(tg), np.sort(tg[eg])
        at_risk[:, j] = len(sorted_t) - np.searchsorted(sorted_t, event_times, side="left")
        died[:, j] = (np.searchsorted(sorted_events, event_times, side="right")
                      - np.searchsorted(sorted_events, event_times, side="left"))
    n_k, d_k = at_risk.sum(axis=1), died.sum(axis=1)
    expected = (at_risk * (d_k / n_k)[:, None]).sum(axis=0)
    factor = _ratio(d_k * (n_k - d_k), n_k**2 * (n_k - 1))
    cov = np.diag((factor[:, None] * at_risk * n_k[:, None]).sum(axis=0))
    cov -= np.einsum("k,ki,kj->ij", factor, at_risk, at_risk)
    df = len(names) - 1
    z = died.sum(axis=0)[:df] - expected[:df]
    statistic = float(z @ np.linalg.pinv(cov[:df, :df]) @ z)
    return {
        "statistic": json_float(statistic),
        "p_value": json_float(stats.chi2.sf(statistic, df)),
        "df": df,
        "groups": {g: {"n": int((labels == g).sum()), "observed": int(died[:, j].sum()),
                       "expected": json_float(expected[j])} for j, g in enumerate(names)},
    }


def _risk_labels(n_groups: int) -> list[str]:
    if n_groups == 2:
        return ["low", "high"]
    if n_groups == 3:
        return ["low", "medium", "high"]
    return [f"Q{k + 1}" for k in range(n_groups)]


def risk_cut_points(reference_risk: Any, n_groups: int = 3) -> np.ndarray:
    """Quantile cut points (n_groups - 1) of a reference set's risk scores, e.g. tertiles."""
    if int(n_groups) < 2:
        raise ConfigError(f"n_groups must be >= 2, got {n_groups}")
    ref = np.asarray(reference_risk, dtype=float).ravel()
    if len(ref) == 0 or not np.isfinite(ref).all():
        raise ConfigError("reference risk scores must be a non-empty set of finite numbers")
    return np.quantile(ref, np.arange(1, int(n_groups)) / int(n_groups))


def risk_groups(
    risk: Any,
    n_groups: int = 3,
    *,
    reference: Any = None,
    cut_points: Sequence[float] | None = None,
) -> np.ndarray:
    """Risk group label per patient: 'low'/'medium'/'high' by tertiles (2: low/high; else Q1..Qk).

    Cut points are quantiles of `reference` (e.g. validation-set risk) when given, or explicit
    `cut_points`, so test patients are grouped by thresholds fixed before seeing the test set;
    otherwise quantiles of `risk` itself. A risk equal to a cut point goes to the lower group.
    """
    r = np.asarray(risk, dtype=float).ravel()
    if reference is not None and cut_points is not None:
        raise ConfigError("give either reference or cut_points, not both")
    if cut_points is None:
        cuts = risk_cut_points(r if reference is None else reference, n_groups)
    else:
        cuts = np.asarray(cut_points, dtype=float).ravel()
        if len(cuts) != int(n_groups) - 1 or (np.diff(cuts) < 0).any():
            raise ConfigError(f"cut_points must be {int(n_groups) - 1} increasing values, got "
                              f"{list(cuts)}")
    return np.array(_risk_labels(int(n_groups)), dtype=object)[np.searchsorted(cuts, r, "left")]


# --------------------------------------------------------------------------------------------
# Weighted IPCW metrics on one evaluated set
# --------------------------------------------------------------------------------------------


def _fit_censoring(train_time: np.ndarray, train_event: np.ndarray) -> CensoringDistributionEstimator:
    """Kaplan-Meier of the training censoring times: G(t) for the IPC weights."""
    return CensoringDistributionEstimator().fit(Surv.from_arrays(train_event, train_time))


def _horizon_key(metric: str, t: float) -> str:
    return f"{metric}@{t:g}"


class _SurvivalSet:
    """One evaluated set with what every weighted metric shares, computed once.

    `compute(w)` returns each requested metric for each row of the (B, N) weights; NaN marks a
    resample where the metric is undefined (no event before a horizon, no comparable pair...).
    """

    def __init__(
        self,
        time: np.ndarray,
        event: np.ndarray,
        pred: SurvivalPrediction,
        censoring: CensoringDistributionEstimator,
        horizons: np.ndarray,
        ibs_times: np.ndarray,
    ) -> None:
        self.time, self.event, self.pred = time, event, pred
        self.n, self.n_events = len(time), int(event.sum())
        self.horizons, self.ibs_times = horizons, ibs_times
        self.harrell = Predictions(Surv.from_arrays(event, time), pred.risk, TargetKind.SURVIVAL,
                                   checked=True)
        # 1 / G(t_i) for the events any horizon or IBS time can count as cases; 0 elsewhere.
        last = max([*horizons, *ibs_times], default=-np.inf)
        used = event & (time <= last)
        g_rows = np.zeros(self.n)
        if used.any():
            g_rows[used] = censoring.predict_proba(time[used])
        inv_g = _ratio(np.ones(self.n), g_rows)
        tau = horizons.max() if len(horizons) else -np.inf
        self.uno_weight = np.where(event & (time < tau), inv_g**2, 0.0)
        # Brier: row terms at each horizon, then at each IBS time; mean over rows is the score.
        brier_times = np.r_[horizons, ibs_times]
        surv = np.column_stack([*(pred.at(h) for h in horizons),
                                pred.survival[:, np.searchsorted(pred.times, ibs_times)]])
        inv_g_t = _ratio(np.ones(len(brier_times)), censoring.predict_proba(brier_times)
                         if len(brier_times) else np.empty(0))
        case = event[:, None] & (time[:, None] <= brier_times[None, :])
        control = time[:, None] > brier_times[None, :]
        self.brier_terms = (surv**2 * case * inv_g[:, None]
                            + (1.0 - surv) ** 2 * control * inv_g_t[None, :])
        # td-AUC at a horizon: weighted AUROC of 1 - S(h), cases (event by h) weighted by IPCW.
        self.auc_parts = []
        for j in range(len(horizons)):
            rows = np.flatnonzero(case[:, j] | control[:, j])
            scale = np.where(case[rows, j], inv_g[rows], 1.0)
            binary = (Predictions(case[rows, j].astype(float), 1.0 - surv[rows, j],
                                  TargetKind.BINARY, checked=True)
                      if case[:, j].any() and control[:, j].any() else None)
            self.auc_parts.append((rows, scale, binary))
        self.km = _TimeTable(time, event)
        self.td_pairs = _td_concordance_pairs(time, event, pred)

    def keys(self) -> list[str]:
        """Every metric this set can compute, in report order."""
        keys = ["c_index"]
        if len(self.horizons):
            keys.append("c_index_uno")
        if len(self.ibs_times) >= 2:
            keys.append("ibs")
        if len(self.horizons):
            keys.append("td_auc")
        keys.append("c_td")
        keys += [_horizon_key("td_auc", h) for h in self.horizons]
        keys += [_horizon_key("brier", h) for h in self.horizons]
        return keys

    def compute(self, w: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        n_h = len(self.horizons)
        with np.errstate(all="ignore"):
            if "c_index" in names:
                out["c_index"] = compute_metrics(self.harrell, ("c_index",), w)["c_index"]
            if "c_td" in names:
                out["c_td"] = _weighted_pair_ratio(self.td_pairs, w)
            if "c_index_uno" in names:
                out["c_index_uno"] = concordance_batch(self.time, self.event, self.pred.risk, w,
                                                       self.uno_weight)
            total = w.sum(axis=1)
            brier = (w @ self.brier_terms) / np.where(total > 0, total, np.nan)[:, None]
            if "ibs" in names:
                out["ibs"] = (np.trapezoid(brier[:, n_h:], self.ibs_times, axis=1)
                              / (self.ibs_times[-1] - self.ibs_times[0]))
            auc = np.full((len(w), n_h), np.nan)
            for j, (rows, scale, binary) in enumerate(self.auc_parts):
                if binary is not None:
                    auc[:, j] = compute_metrics(binary, ("auroc",), w[:, rows] * scale)["auroc"]
            if "td_auc" in names:
                out["td_auc"] = self._mean_auc(w, auc)
            for j, h in enumerate(self.horizons):
                for key, values in (("td_auc", auc), ("brier", brier)):
                    if _horizon_key(key, h) in names:
                        out[_horizon_key(key, h)] = values[:, j]
        return {name: out[name] for name in names}

    def _mean_auc(self, w: np.ndarray, auc: np.ndarray) -> np.ndarray:
        """AUC(t) averaged with the weights of the evaluated set's KM drop at each horizon, as
        sksurv.metrics.cumulative_dynamic_auc does (a plain value for one horizon)."""
        if auc.shape[1] == 1:
            return auc[:, 0]
        s = self.km.survival_at(w, self.horizons)
        drop = -np.diff(np.concatenate([np.ones((len(w), 1)), s], axis=1), axis=1)
        return (auc * drop).sum(axis=1) / (1.0 - s[:, -1])


def _td_concordance_pairs(
    time: np.ndarray, event: np.ndarray, pred: SurvivalPrediction
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Antolini's comparable and concordant pairs, in row chunks: (rows, concordant, comparable).

    i and j are comparable when i has an event before j's time (or at it, j censored); they are
    concordant when i's own curve is strictly lower than j's at i's event time: S_i(t_i) <
    S_j(t_i). Curves are read as steps (1 before the grid, the last value after it), as pycox's
    EvalSurv.concordance_td("antolini") reads them.
    """
    column = np.searchsorted(pred.times, time, side="right")  # in padded: 0 is before the grid
    padded = np.concatenate([np.ones((pred.n, 1)), pred.survival], axis=1)
    chunks = []
    for start in range(0, len(time), _PAIR_CHUNK):
        rows = np.arange(start, min(start + _PAIR_CHUNK, len(time)))
        ti, ei = time[rows, None], event[rows, None]
        comparable = ei & ((ti < time[None, :]) | ((ti == time[None, :]) & ~event[None, :]))
        s_ij = padded[:, column[rows]].T  # (chunk, N): S_j(t_i)
        own = s_ij[np.arange(len(rows)), rows][:, None]
        chunks.append((rows, comparable & (own < s_ij), comparable))
    return chunks


def _weighted_pair_ratio(
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], w: np.ndarray
) -> np.ndarray:
    """sum_ij w_i w_j concordant_ij / sum_ij w_i w_j comparable_ij for each row of w (B, N)."""
    num, den = np.zeros(len(w)), np.zeros(len(w))
    for rows, concordant, comparable in chunks:
        wi = w[:, rows]
        num += (wi * (w @ concordant.T.astype(float))).sum(axis=1)
        den += (wi * (w @ comparable.T.astype(float))).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _follow_up_upper(time: np.ndarray, train_time: np.ndarray) -> tuple[float, str]:
    """Horizons must stay below this (IPCW needs both sets to follow patients past them)."""
    test_max, train_max = float(time.max()), float(train_time.max())
    if test_max <= train_max:
        return test_max, f"the last follow-up time of the evaluated set, {test_max:g}"
    return train_max, f"the last follow-up time of the training set, {train_max:g}"


def _check_horizons(
    horizons: Any, time: np.ndarray, train_time: np.ndarray, pred: SurvivalPrediction
) -> np.ndarray:
    h = np.unique(np.asarray(horizons, dtype=float).ravel())
    if len(h) == 0:
        raise ConfigError("horizons is empty; give at least one time or None for the defaults")
    bad = h[~np.isfinite(h) | (h <= 0)]
    if len(bad):
        raise ConfigError(f"horizons must be finite times > 0, got {bad[0]:g}")
    upper, why = _follow_up_upper(time, train_time)
    for t in h:
        if t >= upper:
            raise ConfigError(f"horizon {t:g} is beyond the follow-up: horizons must be below {why} "
                              "(the censoring weights are undefined after it)")
        if t > pred.times[-1]:
            raise ConfigError(f"horizon {t:g} is beyond the prediction grid, which ends at "
                              f"{pred.times[-1]:g}")
    keys = [_horizon_key("h", t) for t in h]
    if len(set(keys)) < len(keys):
        raise ConfigError(f"horizons {list(h)} are too close to tell apart in metric names")
    return h


def _default_horizons(
    time: np.ndarray, event: np.ndarray, train_time: np.ndarray, pred: SurvivalPrediction
) -> np.ndarray:
    """25th/50th/75th percentiles of the evaluated event times, clipped inside both follow-ups."""
    upper, _ = _follow_up_upper(time, train_time)
    inside = time[time < upper]
    high = min(float(inside.max()) if len(inside) else float(time.min()), float(pred.times[-1]))
    h = np.clip(np.percentile(time[event], _DEFAULT_QUANTILES), float(time.min()), high)
    return _check_horizons(h, time, train_time, pred)


def _ibs_times(time: np.ndarray, train_time: np.ndarray, pred: SurvivalPrediction) -> np.ndarray:
    """Prediction grid times within the follow-up: from the first evaluated time to below the
    last time both sets follow (scikit-survival's rule for integrated_brier_score)."""
    upper, why = _follow_up_upper(time, train_time)
    grid = pred.times[(pred.times >= time.min()) & (pred.times < upper)]
    if len(grid) < 2:
        raise ConfigError(f"the prediction grid has {len(grid)} times between the first evaluated "
                          f"time {time.min():g} and {why}; the integrated Brier score needs 2")
    return grid


def _estimate(
    fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    n: int,
    n_boot: int,
    seed: int,
    clusters: Any,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point estimates (all weights 1) and n_boot bootstrap values of every metric fn returns."""
    point = {k: float(v[0]) for k, v in fn(np.ones((1, n))).items()}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for w in bootstrap_weights(n, n_boot, seed, clusters):
        for k, v in fn(w).items():
            parts[k].append(v)
    return point, {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}


def _entry(value: float, samples: np.ndarray, ci: float, n: int, n_events: int) -> dict[str, Any]:
    v = json_float(value)
    return {"value": v, ci_key(ci): percentile_ci(samples, ci) if v is not None else [None, None],
            "n": int(n), "n_events": int(n_events)}


def _entries(
    data: _SurvivalSet, names: Sequence[str], n_boot: int, seed: int, clusters: Any, ci: float
) -> dict[str, dict[str, Any]]:
    point, boot = _estimate(lambda w: data.compute(w, names), data.n, n_boot, seed, clusters)
    return {k: _entry(point[k], boot[k], ci, data.n, data.n_events) for k in names}


def _prepare(
    time: Any, event: Any, pred: Any, train_time: Any, train_event: Any
) -> tuple[np.ndarray, np.ndarray, SurvivalPrediction, np.ndarray, CensoringDistributionEstimator]:
    t, e = check_survival_target(time, event, "evaluated")
    pred = _check_prediction(pred, len(t))
    tt, te = check_survival_target(train_time, train_event, "training")
    return t, e, pred, tt, _fit_censoring(tt, te)


def evaluate_survival(
    time: Any,
    event: Any,
    pred: SurvivalPrediction,
    *,
    train_time: Any,
    train_event: Any,
    horizons: Sequence[float] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    clusters: Any = None,
    ci: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Survival metrics with percentile bootstrap intervals, JSON-ready.

    Keys: c_index (Harrell, on risk), c_index_uno (Uno's IPCW C truncated at the last horizon),
    ibs (IPCW integrated Brier score over the prediction grid times within the follow-up),
    td_auc (cumulative/dynamic AUC of 1 - S(t) averaged over the horizons, weighted by the
    evaluated set's KM drops as scikit-survival does), c_td (Antolini's time-dependent
    concordance of the curves, pycox's C-td), and per horizon td_auc@t and brier@t.
    Each entry is {"value", "ci95", "n", "n_events"}; c_index_uno adds "tau", ibs "time_range",
    per-horizon entries "horizon". IPC weights come from the training set's censoring, kept
    fixed; rows (or `clusters`, e.g. patients) of the evaluated set are resampled, undefined
    resamples are dropped and under half defined gives [None, None].

    Default horizons are the 25th/50th/75th percentiles of the evaluated event times, clipped
    below the last follow-up time of both sets; a horizon at or beyond it is a ConfigError.
    """
    _check_ci(ci, n_boot)
    t, e, pred, tt, censoring = _prepare(time, event, pred, train_time, train_event)
    h = (_default_horizons(t, e, tt, pred) if horizons is None
         else _check_horizons(horizons, t, tt, pred))
    grid = _ibs_times(t, tt, pred)
    data = _SurvivalSet(t, e, pred, censoring, h, grid)
    out = _entries(data, data.keys(), int(n_boot), seed, clusters, ci)
    out["c_index_uno"]["tau"] = float(h.max())
    out["ibs"]["time_range"] = [float(grid[0]), float(grid[-1])]
    for t_h in h:
        for key in ("td_auc", "brier"):
            out[_horizon_key(key, t_h)]["horizon"] = float(t_h)
    return out


# --------------------------------------------------------------------------------------------
# Calibration at a horizon
# --------------------------------------------------------------------------------------------


def survival_calibration(
    time: Any, event: Any, pred: SurvivalPrediction, horizon: float, n_groups: int = 10
) -> dict[str, Any]:
    """Predicted vs Kaplan-Meier observed event probability by horizon, per risk group.

    Patients are cut into `n_groups` equal-size groups (deciles) of predicted event probability
    1 - S(horizon). Per group: mean predicted, KM observed 1 - S_KM(horizon) with its log-log 95%
    CI, n, and n_events (events at or before the horizon). Summary: count-weighted mean absolute
    difference (an ICI-like binned number), overall predicted vs observed, and the
    Greenwood-Nam-D'Agostino chi-square (df = groups - 1), left None when a group has < 2 events
    by the horizon (it is unstable below 5: see "note").
    """
    t, e = check_survival_target(time, event, "evaluated")
    pred = _check_prediction(pred, len(t))
    horizon = float(horizon)
    if not np.isfinite(horizon) or horizon <= 0:
        raise ConfigError(f"horizon must be a finite time > 0, got {horizon}")
    if horizon >= t.max():
        raise ConfigError(f"horizon {horizon:g} is beyond the follow-up: it must be below the last "
                          f"follow-up time of the evaluated set, {t.max():g}")
    if int(n_groups) < 1:
        raise ConfigError(f"n_groups must be >= 1, got {n_groups}")
    p = 1.0 - pred.at(horizon)
    chunks = [c for c in np.array_split(np.argsort(p, kind="stable"), min(int(n_groups), len(t)))
              if len(c)]
    rows = []
    for idx in chunks:
        km = _km_at(_km_table(t[idx], e[idx]), horizon)
        rows.append({"n": len(idx), "n_events": int((e[idx] & (t[idx] <= horizon)).sum()),
                     "mean_predicted": float(p[idx].mean()), "observed": 1.0 - km["survival"],
                     "observed_ci95": [1.0 - km["ci_high"], 1.0 - km["ci_low"]],
                     "variance": km["variance"]})
    overall = _km_at(_km_table(t, e), horizon)
    diff = np.array([r["observed"] - r["mean_predicted"] for r in rows])
    sizes = np.array([r["n"] for r in rows])
    var = np.array([r["variance"] for r in rows])
    events = np.array([r["n_events"] for r in rows])
    gnd_stat = float(np.sum(np.where(var > 0, diff**2 / np.where(var > 0, var, 1.0), 0.0)))
    df = len(rows) - 1
    note = None
    if events.min() < 2:
        gnd_stat, note = float("nan"), ("a group has fewer than 2 events by the horizon: use fewer "
                                        "groups for the Greenwood-Nam-D'Agostino test")
    elif events.min() < 5:
        note = "a group has fewer than 5 events by the horizon: the GND test may be unstable"
    if df < 1:
        gnd_stat = float("nan")
    return {
        "horizon": horizon,
        "mean_predicted": [json_float(r["mean_predicted"]) for r in rows],
        "observed": [json_float(r["observed"]) for r in rows],
        "observed_ci95": [[json_float(v) for v in r["observed_ci95"]] for r in rows],
        "n": [int(r["n"]) for r in rows],
        "n_events": [int(r["n_events"]) for r in rows],
        "mean_abs_difference": json_float(np.sum(sizes * np.abs(diff)) / sizes.sum()),
        "predicted_overall": json_float(p.mean()),
        "observed_overall": json_float(1.0 - overall["survival"]),
        "gnd": {"statistic": json_float(gnd_stat),
                "p_value": json_float(stats.chi2.sf(gnd_stat, df)) if df >= 1 else None,
                "df": df, "note": note},
    }


# --------------------------------------------------------------------------------------------
# Subgroup audit
# --------------------------------------------------------------------------------------------

_AUDIT_METRICS = ("c_index", "ibs")


def subgroup_survival_audit(
    time: Any,
    event: Any,
    pred: SurvivalPrediction,
    groups: Any,
    *,
    train_time: Any,
    train_event: Any,
    attribute: str = "group",
    n_boot: int = 200,
    seed: int = 0,
    min_group_size: int = 20,
    clusters: Any = None,
    ci: float = 0.95,
) -> dict[str, Any]:
    """c_index and ibs per group of one attribute and their between-group gaps, like
    fairness.subgroup_audit (same output shape; "prevalence" is None, "n_events" is added).

    Every group's IBS integrates over the same times (the whole evaluated set's grid within the
    follow-up) so groups are comparable. Groups below `min_group_size` are reported but left out
    of the gaps. A gap is best minus worst group on the full data; its interval is the signed
    difference of those two groups over one bootstrap of the whole set (rows or `clusters`).
    """
    _check_ci(ci, n_boot)
    t, e, pred, tt, censoring = _prepare(time, event, pred, train_time, train_event)
    grid = _ibs_times(t, tt, pred)
    grouped = group_rows(groups, len(t), clusters)
    rows = grouped.rows
    sets = {g: _SurvivalSet(t[idx], e[idx], pred.subset(idx), censoring, np.empty(0), grid)
            for g, idx in rows.items()}
    per_group = {
        g: {"n": len(idx), "n_events": sets[g].n_events, "prevalence": None,
            "metrics": _entries(sets[g], _AUDIT_METRICS, int(n_boot), seed,
                                grouped.cluster_ids(g), ci)}
        for g, idx in rows.items()
    }
    eligible = grouped.eligible(min_group_size)
    values = {m: {g: per_group[g]["metrics"][m]["value"] for g in eligible} for m in _AUDIT_METRICS}
    values = {m: {g: v for g, v in vals.items() if v is not None} for m, vals in values.items()}
    pairs = {m: pair for m, v in values.items() if (pair := extremes(v)) is not None}
    needed = sorted({g for pair in pairs.values() for g in pair})

    def gaps(w: np.ndarray) -> dict[str, np.ndarray]:
        got = {g: sets[g].compute(w[:, rows[g]], _AUDIT_METRICS) for g in needed}
        return {m: got[hi][m] - got[lo][m] for m, (hi, lo) in pairs.items()}

    _, boot = _estimate(gaps, len(t), int(n_boot), seed, clusters)
    gap_entries = {}
    for m in _AUDIT_METRICS:
        if m in pairs:
            hi, lo = pairs[m]
            entry = _entry(values[m][hi] - values[m][lo], boot[m], ci, len(t), int(e.sum()))
            best, worst = best_and_worst(hi, lo, SURVIVAL_METRICS[m])
            entry.update(best_group=best, worst_group=worst, groups=list(values[m]))
        else:
            entry = _entry(float("nan"), np.empty(0), ci, len(t), int(e.sum()))
            entry.update(best_group=None, worst_group=None, groups=sorted(values[m]))
        gap_entries[m] = entry
    return {
        "attribute": attribute,
        "groups": per_group,
        "gaps": gap_entries,
        "small_groups": grouped.small(min_group_size),
        "threshold": None,
        "ibs_time_range": [float(grid[0]), float(grid[-1])],
    }
