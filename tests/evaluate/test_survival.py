"""Tests for iatros.evaluate.survival: agreement with scikit-survival/lifelines on a real Cox model."""

from __future__ import annotations

import json
import time as clock
from dataclasses import dataclass

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from sksurv.compare import compare_survival
from sksurv.datasets import load_gbsg2
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.preprocessing import OneHotEncoder
from sksurv.util import Surv

from iatros.errors import ConfigError
from iatros.evaluate.metrics import score
from iatros.evaluate.survival import (
    SurvivalPrediction,
    check_survival_target,
    evaluate_survival,
    kaplan_meier,
    logrank,
    number_at_risk,
    risk_cut_points,
    risk_groups,
    subgroup_survival_audit,
    survival_calibration,
)


@dataclass(frozen=True)
class CoxCase:
    """A Cox model trained on part of GBSG2 and its predictions on the rest."""

    train_time: np.ndarray
    train_event: np.ndarray
    train_risk: np.ndarray
    time: np.ndarray
    event: np.ndarray
    pred: SurvivalPrediction
    tgrade: np.ndarray

    @property
    def y_train(self) -> np.ndarray:
        return Surv.from_arrays(self.train_event, self.train_time)

    @property
    def y_test(self) -> np.ndarray:
        return Surv.from_arrays(self.event, self.time)

    def evaluate(self, pred: SurvivalPrediction | None = None, **kw: object) -> dict:
        kw.setdefault("n_boot", 0)
        return evaluate_survival(self.time, self.event, pred or self.pred, train_time=self.train_time,
                                 train_event=self.train_event, **kw)


@pytest.fixture(scope="module")
def cox() -> CoxCase:
    x, y = load_gbsg2()
    tgrade = x["tgrade"].astype(str).to_numpy()
    x = OneHotEncoder().fit_transform(x)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:450], order[450:]
    # scikit-survival's IPCW needs test follow-up inside the training follow-up.
    test = test[y["time"][test] < y["time"][train].max()]
    model = CoxPHSurvivalAnalysis().fit(x.iloc[train], y[train])
    surv = model.predict_survival_function(x.iloc[test], return_array=True)
    pred = SurvivalPrediction(model.predict(x.iloc[test]), model.unique_times_, surv)
    return CoxCase(y["time"][train], y["cens"][train], model.predict(x.iloc[train]),
                   y["time"][test], y["cens"][test], pred, tgrade[test])


def _shuffled(pred: SurvivalPrediction, seed: int = 1) -> SurvivalPrediction:
    """The same predictions given to the wrong patients: a model with random risk scores."""
    perm = np.random.default_rng(seed).permutation(pred.n)
    return SurvivalPrediction(pred.risk[perm], pred.times, pred.survival[perm])


def _horizons(result: dict) -> np.ndarray:
    return np.array([entry["horizon"] for key, entry in result.items() if key.startswith("brier@")])


# --------------------------------------------------------------------------------------------
# Metrics against scikit-survival
# --------------------------------------------------------------------------------------------


def test_metrics_match_sksurv(cox: CoxCase) -> None:
    res = cox.evaluate()
    h = _horizons(res)
    assert len(h) == 3 and res["c_index_uno"]["tau"] == h.max()
    risk, surv = cox.pred.risk, cox.pred.survival
    assert res["c_index"]["value"] == pytest.approx(
        concordance_index_censored(cox.event, cox.time, risk)[0], abs=1e-12)
    assert res["c_index"]["value"] == pytest.approx(score("c_index", cox.y_test, risk, "survival"))
    assert res["c_index_uno"]["value"] == pytest.approx(
        concordance_index_ipcw(cox.y_train, cox.y_test, risk, tau=h.max())[0], abs=1e-12)
    lo, hi = res["ibs"]["time_range"]
    grid = (cox.pred.times >= lo) & (cox.pred.times <= hi)
    assert res["ibs"]["value"] == pytest.approx(
        integrated_brier_score(cox.y_train, cox.y_test, surv[:, grid], cox.pred.times[grid]), abs=1e-12)
    at_h = np.column_stack([cox.pred.at(t) for t in h])
    auc, mean_auc = cumulative_dynamic_auc(cox.y_train, cox.y_test, 1.0 - at_h, h)
    _, brier = brier_score(cox.y_train, cox.y_test, at_h, h)
    assert res["td_auc"]["value"] == pytest.approx(mean_auc, abs=1e-10)
    for j, t in enumerate(h):
        assert res[f"td_auc@{t:g}"]["value"] == pytest.approx(auc[j], abs=1e-10)
        assert res[f"brier@{t:g}"]["value"] == pytest.approx(brier[j], abs=1e-12)


def test_default_horizons_are_event_time_quartiles_inside_follow_up(cox: CoxCase) -> None:
    h = _horizons(cox.evaluate())
    expected = np.percentile(cox.time[cox.event], [25, 50, 75])
    np.testing.assert_allclose(h, np.minimum(expected, cox.time.max()))
    assert h.max() < min(cox.time.max(), cox.train_time.max())


def test_intervals_contain_value_and_entries_are_json(cox: CoxCase) -> None:
    res = cox.evaluate(n_boot=200, seed=3)
    assert list(res)[:4] == ["c_index", "c_index_uno", "ibs", "td_auc"]
    for key, entry in res.items():
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi, key
        assert entry["n"] == len(cox.time) and entry["n_events"] == int(cox.event.sum())
    json.dumps(res, allow_nan=False)
    again = cox.evaluate(n_boot=200, seed=3)
    assert again == res


def test_cluster_bootstrap_and_ci_level(cox: CoxCase) -> None:
    patients = np.arange(len(cox.time)) // 2
    res = cox.evaluate(n_boot=100, clusters=patients, ci=0.9)
    assert set(res["c_index"]) >= {"value", "ci90", "n", "n_events"}
    assert res["c_index"]["ci90"][0] < res["c_index"]["value"] < res["c_index"]["ci90"][1]


def test_random_risk_model_is_near_half_and_worse_than_cox(cox: CoxCase) -> None:
    good = cox.evaluate(horizons=[500.0, 1000.0])
    bad = cox.evaluate(_shuffled(cox.pred), horizons=[500.0, 1000.0])
    assert abs(bad["c_index"]["value"] - 0.5) < 0.08
    assert abs(bad["td_auc"]["value"] - 0.5) < 0.1
    assert good["c_index"]["value"] > bad["c_index"]["value"] + 0.1
    assert bad["ibs"]["value"] > good["ibs"]["value"]


def test_metric_undefined_at_horizon_without_events_gives_none(cox: CoxCase) -> None:
    first_event = cox.time[cox.event].min()
    res = cox.evaluate(horizons=[first_event - 1.0, 1000.0], n_boot=20)
    early = f"{first_event - 1.0:g}"
    assert res[f"td_auc@{early}"] == {"value": None, "ci95": [None, None], "n": len(cox.time),
                                      "n_events": int(cox.event.sum()),
                                      "horizon": first_event - 1.0}
    assert res[f"brier@{early}"]["value"] is not None


def test_fast_enough_for_500_rows_100_times_200_resamples() -> None:
    rng = np.random.default_rng(0)
    n, grid = 500, np.linspace(0.05, 3.0, 100)
    x = rng.normal(size=n)
    hazard = np.exp(x)
    t_event, t_cens = rng.exponential(1 / hazard), rng.exponential(1.5, size=n)
    time, event = np.minimum(t_event, t_cens) + 1e-3, t_event <= t_cens
    pred = SurvivalPrediction(x, grid, np.exp(-np.outer(hazard, grid)))
    start = clock.perf_counter()
    res = evaluate_survival(time, event, pred, train_time=time, train_event=event, n_boot=200)
    assert clock.perf_counter() - start < 15
    assert res["c_index"]["value"] > 0.65


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "event", "message"),
    [
        ([1.0, np.nan, 3.0, np.nan], [1, 0, 1, 1], r"os time is missing.*rows 1, 3"),
        ([1.0, -2.0, 0.0, 4.0], [1, 0, 1, 1], r"os time must be > 0.*rows 1, 2"),
        ([1.0, 2.0, 3.0], [1, 2, 0], r"os event must be 0/1.*rows 1\b"),
        ([1.0, 2.0, 3.0], ["yes", 0, 1], r"os event must be 0/1.*rows 0\b"),
        ([1.0, 2.0, 3.0], [0, 0, False], r"os event has no events.*all 3 rows are censored"),
        ([1.0, 2.0, 3.0], [1, 0], r"os time has 3 rows but os event has 2"),
    ],
)
def test_check_survival_target_names_column_and_rows(time: list, event: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_survival_target(time, event, name="os")


def test_check_survival_target_shows_at_most_five_rows() -> None:
    with pytest.raises(ConfigError, match=r"rows 0, 1, 2, 3, 4, \.\.\."):
        check_survival_target(np.full(8, -1.0), np.ones(8), name="os")
    t, e = check_survival_target([1, 2.5], [True, 0.0])
    assert t.dtype == float and e.tolist() == [True, False]


def test_horizon_beyond_follow_up_is_an_error(cox: CoxCase) -> None:
    limit = min(cox.time.max(), cox.train_time.max())
    with pytest.raises(ConfigError, match=rf"horizon 5000 is beyond the follow-up.*{limit:g}"):
        cox.evaluate(horizons=[500.0, 5000.0])
    with pytest.raises(ConfigError, match=rf"horizon {cox.time.max():g} is beyond.*evaluated set"):
        cox.evaluate(horizons=[cox.time.max()])
    short = cox.train_time < 1000
    with pytest.raises(ConfigError, match=r"horizon 1200 .*training set"):
        evaluate_survival(cox.time, cox.event, cox.pred, train_time=cox.train_time[short],
                          train_event=cox.train_event[short], horizons=[1200.0], n_boot=0)


def test_survival_prediction_validation() -> None:
    times = np.array([1.0, 2.0, 3.0])
    good = np.array([[1.0, 0.8, 0.4], [0.9, 0.9, 0.2]])
    pred = SurvivalPrediction([0.1, 0.2], times, good)
    np.testing.assert_array_equal(pred.at(2.5), [0.8, 0.9])
    np.testing.assert_array_equal(pred.at(0.5), [1.0, 1.0])
    np.testing.assert_array_equal(pred.median_time(), [3.0, 3.0])
    assert np.isnan(SurvivalPrediction([0.0], times, [[1.0, 0.9, 0.6]]).median_time()[0])
    with pytest.raises(ConfigError, match="beyond the prediction grid"):
        pred.at(4.0)
    with pytest.raises(ConfigError, match=r"non-increasing.*rows 1\b"):
        SurvivalPrediction([0.1, 0.2], times, [[1.0, 0.8, 0.4], [0.5, 0.7, 0.2]])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SurvivalPrediction([0.1], times, [[1.2, 0.8, 0.4]])
    with pytest.raises(ConfigError, match="shape"):
        SurvivalPrediction([0.1, 0.2, 0.3], times, good)
    with pytest.raises(ConfigError, match="strictly increasing"):
        SurvivalPrediction([0.1, 0.2], [1.0, 1.0, 3.0], good)
    with pytest.raises(ConfigError, match="NaN"):
        SurvivalPrediction([0.1, np.nan], times, good)
    assert SurvivalPrediction([0.0], times, [[1.0, 0.8, 0.8 + 1e-9]]).survival[0, 2] == 0.8
    with pytest.raises(ValueError):
        pred.survival[0, 0] = 0.5  # read-only


# --------------------------------------------------------------------------------------------
# Kaplan-Meier, log-rank, risk groups
# --------------------------------------------------------------------------------------------


def test_kaplan_meier_matches_sksurv_and_lifelines(cox: CoxCase) -> None:
    km = kaplan_meier(cox.time, cox.event)
    times, surv, (low, high) = kaplan_meier_estimator(cox.event, cox.time, conf_type="log-log")
    np.testing.assert_allclose(km["times"], times)
    np.testing.assert_allclose(km["survival"], surv, atol=1e-12)
    np.testing.assert_allclose(km["ci_low"], low, atol=1e-12)
    np.testing.assert_allclose(km["ci_high"], high, atol=1e-12)
    table = KaplanMeierFitter().fit(cox.time, cox.event).event_table.loc[times]
    assert km["at_risk"] == table["at_risk"].tolist()
    assert km["n_events"] == table["observed"].tolist()
    json.dumps(km, allow_nan=False)


def test_number_at_risk_counts_patients_still_followed(cox: CoxCase) -> None:
    at = [0.0, 500.0, 1500.0]
    table = number_at_risk(cox.time, cox.tgrade, at)
    for g, counts in table["at_risk"].items():
        assert counts == [int((cox.time[cox.tgrade == g] >= t).sum()) for t in at]
    assert number_at_risk(cox.time, None, at)["at_risk"]["all"][0] == len(cox.time)


def test_logrank_matches_sksurv_and_lifelines(cox: CoxCase) -> None:
    res = logrank(cox.time, cox.event, cox.tgrade)
    chisq, p_value = compare_survival(cox.y_test, cox.tgrade)
    reference = multivariate_logrank_test(cox.time, cox.tgrade, cox.event)
    assert res["df"] == 2
    assert res["statistic"] == pytest.approx(chisq, rel=1e-10)
    assert res["p_value"] == pytest.approx(p_value, rel=1e-8)
    assert res["p_value"] == pytest.approx(reference.p_value, rel=1e-8)
    assert sum(g["observed"] for g in res["groups"].values()) == int(cox.event.sum())
    with pytest.raises(ConfigError, match="at least 2 groups"):
        logrank(cox.time, cox.event, np.zeros(len(cox.time)))


def test_risk_groups_use_reference_cut_points(cox: CoxCase) -> None:
    cuts = risk_cut_points(cox.train_risk)
    labels = risk_groups(cox.pred.risk, reference=cox.train_risk)
    expected = np.where(cox.pred.risk <= cuts[0], "low",
                        np.where(cox.pred.risk <= cuts[1], "medium", "high"))
    assert labels.tolist() == expected.tolist()
    assert risk_groups(cox.pred.risk, cut_points=cuts).tolist() == labels.tolist()
    # Cut points fixed on the reference: a shifted test set is all "high", not re-split.
    assert set(risk_groups(cox.pred.risk + 100, reference=cox.train_risk)) == {"high"}
    own = risk_groups(cox.pred.risk)
    assert sorted(np.unique(own, return_counts=True)[1]) == pytest.approx([len(own) / 3] * 3, abs=1)
    assert risk_groups([0.1, 0.9], 2, cut_points=[0.5]).tolist() == ["low", "high"]


# --------------------------------------------------------------------------------------------
# Calibration and subgroup audit
# --------------------------------------------------------------------------------------------


def test_calibration_groups_sum_to_n_and_json(cox: CoxCase) -> None:
    cal = survival_calibration(cox.time, cox.event, cox.pred, 1000.0)
    assert len(cal["n"]) == 10 and sum(cal["n"]) == len(cox.time)
    assert sum(cal["n_events"]) == int((cox.event & (cox.time <= 1000)).sum())
    assert cal["mean_predicted"] == sorted(cal["mean_predicted"])
    for obs, (lo, hi) in zip(cal["observed"], cal["observed_ci95"], strict=True):
        assert lo <= obs <= hi
    assert 0 <= cal["gnd"]["p_value"] <= 1 and cal["gnd"]["df"] == 9
    overall = 1 - kaplan_meier_estimator(cox.event, cox.time)[1][cox.time[np.argsort(cox.time)]
                                                                 .searchsorted(1000, "right") - 1]
    assert cal["observed_overall"] == pytest.approx(overall, abs=0.02)
    json.dumps(cal, allow_nan=False)
    with pytest.raises(ConfigError, match="beyond the follow-up"):
        survival_calibration(cox.time, cox.event, cox.pred, 1e6)


def test_gnd_test_separates_calibrated_from_miscalibrated() -> None:
    rng = np.random.default_rng(1)
    n, grid = 2000, np.linspace(0.01, 3.0, 60)
    hazard = np.exp(rng.normal(size=n))
    t_event, t_cens = rng.exponential(1 / hazard), rng.exponential(2.0, size=n)
    time, event = np.minimum(t_event, t_cens), t_event <= t_cens
    true_surv = np.exp(-np.outer(hazard, grid))
    calibrated = survival_calibration(time, event, SurvivalPrediction(hazard, grid, true_surv), 1.0)
    off = survival_calibration(time, event, SurvivalPrediction(hazard, grid, true_surv**3), 1.0)
    assert calibrated["gnd"]["p_value"] > 0.01 > 1e-6 > off["gnd"]["p_value"]
    assert calibrated["mean_abs_difference"] < off["mean_abs_difference"]


def test_subgroup_audit_shape_and_gaps(cox: CoxCase) -> None:
    groups = cox.tgrade.copy()
    audit = subgroup_survival_audit(cox.time, cox.event, cox.pred, groups, train_time=cox.train_time,
                                    train_event=cox.train_event, attribute="tgrade", n_boot=100,
                                    seed=0, min_group_size=30)
    assert audit["attribute"] == "tgrade" and set(audit["gaps"]) == {"c_index", "ibs"}
    sizes = {g: int((groups == g).sum()) for g in np.unique(groups)}
    assert {g: v["n"] for g, v in audit["groups"].items()} == sizes
    assert audit["small_groups"] == [g for g, n in sizes.items() if n < 30]
    big = [g for g, n in sizes.items() if n >= 30]
    for metric, higher_better in (("c_index", True), ("ibs", False)):
        values = {g: audit["groups"][g]["metrics"][metric]["value"] for g in big}
        gap = audit["gaps"][metric]
        assert gap["value"] == pytest.approx(max(values.values()) - min(values.values()))
        best = max(values, key=values.get) if higher_better else min(values, key=values.get)
        assert gap["best_group"] == best and sorted(gap["groups"]) == sorted(big)
        assert gap["ci95"][0] <= gap["value"] <= gap["ci95"][1]
    sub = cox.tgrade == big[0]
    c_sub = concordance_index_censored(cox.event[sub], cox.time[sub], cox.pred.risk[sub])[0]
    assert audit["groups"][big[0]]["metrics"]["c_index"]["value"] == pytest.approx(c_sub)
    json.dumps(audit, allow_nan=False)
