"""Cross-fit ensembles: member k stops early on fold k, validation is scored out of fold."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.models.survival import curves_on_grid
from iatros.train.predictors import EnsemblePredictor, load_predictor, scoring_view

FAST = api.EvalOptions(n_boot=20)


@dataclass
class _Fixed:
    """A stand-in member: a constant score and a step curve on its own grid."""

    score: float
    times: np.ndarray
    info: dict

    def predict_scores(self, inputs):
        return np.full(len(inputs), self.score)

    def survival_times(self):
        return self.times

    def predict_survival(self, inputs):
        steps = np.linspace(0.9, 0.5, len(self.times)) * (1 - self.score)
        return np.full(len(inputs), self.score), self.times, np.tile(steps, (len(inputs), 1))


def _two_fold_ensemble() -> EnsemblePredictor:
    members = [_Fixed(0.2, np.array([1.0, 3.0]), {}), _Fixed(0.6, np.array([2.0, 3.0, 5.0]), {})]
    return EnsemblePredictor(members, TargetKind.SURVIVAL, {}, [np.array([0, 2]), np.array([1, 3])])


def test_out_of_fold_scores_each_held_out_row_with_its_own_member_and_others_with_all():
    view = scoring_view(_two_fold_ensemble(), np.array([3, 0, 7]))
    assert np.allclose(view.predict_scores(np.zeros((3, 1))), [0.6, 0.2, 0.4])


def test_members_on_different_grids_are_averaged_as_steps_on_the_union_grid():
    ensemble = _two_fold_ensemble()
    risk, times, curves = ensemble.predict_survival(np.zeros((2, 1)))
    assert np.allclose(times, [1.0, 2.0, 3.0, 5.0])
    first = curves_on_grid(np.array([1.0, 3.0]), np.array([[0.72, 0.4]]), times)[0]
    second = curves_on_grid(np.array([2.0, 3.0, 5.0]), np.array([[0.36, 0.28, 0.2]]), times)[0]
    assert np.allclose(first, [0.72, 0.72, 0.4, 0.4]) and np.allclose(second, [1.0, 0.36, 0.28, 0.2])
    assert np.allclose(curves[0], (first + second) / 2) and np.allclose(risk, 0.4)
    _, oof_times, oof = ensemble.out_of_fold(np.array([1, 2])).predict_survival(np.zeros((2, 1)))
    assert np.allclose(oof_times, times) and np.allclose(oof, [second, first])


def test_cross_fit_needs_an_ensemble_and_its_own_folds(tmp_path):
    with pytest.raises(ConfigError, match="--ensemble N with N >= 2"):
        api.train("breast-cancer-wdbc", cross_fit=True, out=tmp_path / "a", register=False)
    with pytest.raises(ConfigError, match="drop val_fold"):
        api.train("breast-cancer-wdbc", ensemble=2, cross_fit=True, val_fold=(0, 2),
                  out=tmp_path / "b", register=False)


def test_binary_cross_fit_members_hold_out_disjoint_folds_and_val_is_scored_out_of_fold(tmp_path):
    run = api.train("breast-cancer-wdbc", epochs=3, ensemble=3, cross_fit=True, out=tmp_path / "r",
                    eval_options=FAST, register=False)
    held = [np.array(r) for r in json.loads((run / "model.json").read_text())["held_out"]]
    pool = np.concatenate(held)
    assert len(np.unique(pool)) == len(pool)
    frame = pd.read_csv(run / "predictions.csv")
    val = frame[frame["split"] == "val"]
    assert sorted(val["row"]) == sorted(pool)
    assert not set(frame.loc[frame["split"] == "test", "row"]) & set(pool)
    from iatros.tasks import get_task

    inputs = get_task("breast-cancer-wdbc").load(".").inputs
    for k, rows in enumerate(held):
        member = load_predictor(run / "members" / f"m{k}")
        saved = val.set_index("row").loc[rows[:5], "prob_raw"].to_numpy()
        assert np.allclose(saved, member.predict_scores(inputs[rows[:5]]), atol=1e-6)
    config = json.loads((run / "config.json").read_text())
    assert config["cross_fit"] is True
    evaluated = api.evaluate(run, split="val", eval_options=FAST)["splits"]["val"]
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["val"]
    assert evaluated["auroc"]["value"] == pytest.approx(metrics["auroc"]["value"])


def test_survival_cross_fit_scores_validation_out_of_fold_on_the_union_grid(tmp_path):
    run = api.train("survival-whas500", model="deepsurv", epochs=30, ensemble=3, cross_fit=True,
                    out=tmp_path / "s", eval_options=FAST, register=False)
    ensemble = load_predictor(run)
    grids = [m.survival_times() for m in ensemble.members]
    assert not all(len(g) == len(grids[0]) and np.allclose(g, grids[0]) for g in grids)
    saved = np.load(run / "survival_curves.npz")
    assert np.allclose(saved["times"], np.unique(np.concatenate(grids)))
    assert np.all(np.diff(saved["val"], axis=1) <= 1e-6)
    from iatros.tasks import get_task

    inputs = get_task("survival-whas500").load(".").inputs
    frame = pd.read_csv(run / "predictions.csv").set_index("row")
    for k, rows in enumerate(ensemble.held_out):
        risk = ensemble.members[k].predict_survival(inputs[rows[:5]])[0]
        assert np.allclose(frame.loc[rows[:5]].query("split == 'val'")["risk"], risk, atol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())["splits"]
    assert metrics["val"]["c_index"]["n"] == sum(len(r) for r in ensemble.held_out)
    assert metrics["test"]["c_index"]["value"] > 0.6


def test_tuning_with_cross_fit_keeps_the_chosen_setting_as_a_cross_fit_ensemble_of_the_folds(tmp_path):
    with pytest.raises(ConfigError, match="--folds K >= 2"):
        api.tune("breast-cancer-wdbc", {"lr": [1e-3]}, cross_fit=True, out=tmp_path / "x",
                 register=False)
    run = api.tune("breast-cancer-wdbc", {"lr": [1e-3, 1e-2]}, epochs=2, folds=2, cross_fit=True,
                   out=tmp_path / "t", eval_options=FAST, register=False)
    info = json.loads((run / "model.json").read_text())
    assert info["family"] == "ensemble" and len(info["held_out"]) == 2
    tuning = json.loads((run / "tuning.json").read_text())
    assert tuning["cross_fit"] is True and len(tuning["trials"]) == 2


def test_report_of_a_cross_fit_run_says_validation_is_out_of_fold(tmp_path):
    run = api.train("breast-cancer-wdbc", epochs=2, ensemble=2, cross_fit=True, out=tmp_path / "r",
                    eval_options=FAST, register=False)
    html = " ".join((run / "report.html").read_text().split())
    assert "cross-fit ensemble of 2 networks" in html and "(out of fold)" in html
