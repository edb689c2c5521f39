"""Survival end to end: DeepSurv splits (real files), packaged sets, users' CSVs, predict, audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.data.sources.packaged import load_whas500
from iatros.errors import CorruptDataError

FAST = api.EvalOptions(n_boot=40)


def test_deepsurv_split_with_cox_baseline_reports_survival_metrics(shared_data, tmp_path):
    run = api.train("survival-metabric", data_root=shared_data, model="coxph", out=tmp_path / "r",
                    eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert {"c_index", "c_index_uno", "ibs", "td_auc"} <= set(test)
    assert test["c_index"]["n"] == 381 and 0.55 < test["c_index"]["value"] < 0.75
    assert test["c_index"]["ci95"][0] <= test["c_index"]["value"] <= test["c_index"]["ci95"][1]
    assert 0.05 < test["ibs"]["value"] < 0.25
    assert metrics["survival"]["risk_groups"]["logrank"]["p_value"] < 0.05
    for name in ("km_risk_groups", "survival_calibration", "survival_curves"):
        assert (run / "figures" / f"{name}.png").is_file()
    html = (run / "report.html").read_text()
    assert "Kaplan-Meier" in html and "Greenwood-Nam-D'Agostino" in html


@pytest.fixture(scope="module")
def whas_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("surv") / "run"
    return api.train("survival-whas500", model="deepsurv", out=out, eval_options=FAST,
                     register=False)


def test_deepsurv_learns_whas500(whas_run):
    metrics = json.loads((whas_run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["c_index"]["value"] > 0.65
    assert set(metrics["subgroups"]["sex"]["groups"]) == {"female", "male"}


def test_survival_audit_and_evaluate_on_another_split(whas_run):
    audit = api.audit(whas_run, by="age_group", eval_options=FAST)
    assert set(audit["groups"]) == {"<65", "65-79", ">=80"}
    result = api.evaluate(whas_run, split="val", eval_options=FAST)
    test_n = json.loads((whas_run / "metrics.json").read_text())["splits"]["test"]["c_index"]["n"]
    # DeepSurv's default is a cross-fit ensemble: every training row is validated on, out of fold
    assert result["splits"]["val"]["c_index"]["n"] == 500 - test_n == 425


def test_deepsurv_defaults_to_a_five_member_cross_fit_ensemble_unless_told(whas_run, tmp_path):
    config = json.loads((whas_run / "config.json").read_text())
    assert config["ensemble"] == 5 and config["cross_fit"] is True
    single = api.train("survival-whas500", model="deepsurv", epochs=3, ensemble=1, out=tmp_path / "one",
                       eval_options=FAST, register=False)
    config = json.loads((single / "config.json").read_text())
    assert config["ensemble"] == 1 and config["cross_fit"] is False
    assert json.loads((single / "model.json").read_text())["family"] == "torch"


def test_predict_returns_a_curve_per_patient(whas_run, tmp_path):
    frame = load_whas500().drop(columns=["lenfol", "fstat"]).head(3)
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    results = api.predict(whas_run, [path], out=tmp_path / "pred")
    assert len(results) == 3
    curve = np.asarray(results[0]["curve"]["survival"])
    assert np.all(np.diff(curve) <= 1e-9) and 0 <= curve.min() <= curve.max() <= 1
    assert (tmp_path / "pred" / "survival_curves.png").is_file()


@pytest.fixture
def whas_csv(tmp_path):
    frame = load_whas500().rename(columns={"lenfol": "days", "fstat": "died"})
    frame["died"] = frame["died"].astype(int)
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_csv_survival_task_trains_with_time_and_event(whas_csv, tmp_path):
    path, _ = whas_csv
    run = api.train(f"csv:{path}", task_options={"time": "days", "event": "died"}, model="coxph",
                    out=tmp_path / "r", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target_kind"] == "survival" and metrics["splits"]["test"]["c_index"]["value"] > 0.6
    features = json.loads((run / "config.json").read_text())["data"]["features"]
    assert "died" not in features and "days" not in features


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(died=f["died"].replace({1: 2})), r"event must be 0/1.*\(lines 5, 7, .* e\.g\. 2\)"),
    (lambda f: f.assign(died=0), "rows are censored"),
    (lambda f: f.assign(days=-f["days"]), r"time must be >= 0.*lines 2, 3"),
])
def test_bad_survival_columns_are_named(whas_csv, tmp_path, change, message):
    path, frame = whas_csv
    change(frame).to_csv(path, index=False)
    with pytest.raises(CorruptDataError, match=message):
        api.train(f"csv:{path}", task_options={"time": "days", "event": "died"}, model="coxph",
                  out=tmp_path / "r", eval_options=FAST)


@pytest.mark.parametrize("model", ["logistic-hazard", "deephit", "deepsurv"])
def test_predicted_curves_track_kaplan_meier_on_held_out_patients(model, tmp_path):
    """Curve levels, not only rankings: mean predicted S(t) near the test KM at the median time."""
    from sksurv.nonparametric import kaplan_meier_estimator

    run = api.train("survival-whas500", model=model, out=tmp_path / "r", eval_options=FAST)
    saved = np.load(run / "survival_curves.npz")
    frame = pd.read_csv(run / "predictions.csv")
    test = frame[frame.split == "test"]
    horizon = float(np.median(test["time"]))
    km_t, km_s = kaplan_meier_estimator(test["event"].astype(bool), test["time"])
    observed = km_s[np.searchsorted(km_t, horizon, side="right") - 1]
    predicted = saved["test"][:, np.searchsorted(saved["times"], horizon, side="right") - 1].mean()
    assert abs(predicted - observed) < 0.12, (model, predicted, observed)


def test_deepsurv_ensemble_averages_members_log_risk_and_curves(tmp_path):
    from iatros.tasks import get_task
    from iatros.train.predictors import load_predictor

    run = api.train("survival-whas500", model="deepsurv", epochs=40, ensemble=3, out=tmp_path / "e",
                    eval_options=FAST, register=False)
    ensemble = load_predictor(run)
    members = [load_predictor(run / "members" / f"m{k}") for k in range(3)]
    x = get_task("survival-whas500").load(".").inputs[:15]
    risk, times, curves = ensemble.predict_survival(x)
    parts = [m.predict_survival(x) for m in members]
    assert np.allclose(risk, np.mean([p[0] for p in parts], axis=0))
    assert np.allclose(curves, np.mean([p[2] for p in parts], axis=0))
    assert np.allclose(times, parts[0][1])
    assert not np.allclose(parts[0][0], parts[1][0])
    assert np.all(np.diff(curves, axis=1) <= 1e-9)
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    assert test["c_index"]["value"] > 0.6
