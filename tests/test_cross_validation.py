"""`train --cv K`: every train + val row scored once by a fold model that did not see it, pooled
metrics with intervals in the run, its report and the CLI line; test rows never used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.tasks import get_task
from tests.tasks.ehr_fixture import write_physionet_root

FAST = api.EvalOptions(n_boot=50)


@pytest.fixture(scope="module")
def icu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_physionet_root(tmp_path_factory.mktemp("ehr") / "root")


@pytest.fixture(scope="module")
def cv_run(icu_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train("icu-mortality", data_root=icu_root, out=tmp_path_factory.mktemp("cv") / "run",
                     model="logreg", cv=3, eval_options=FAST, register=False)


def test_every_train_and_val_row_is_scored_once_and_no_test_row(cv_run):
    table = json.loads((cv_run / "cross_validation.json").read_text())
    predictions = pd.read_csv(cv_run / "predictions.csv")
    test_rows = set(predictions.loc[predictions["split"] == "test", "row"])
    pooled = set(pd.read_csv(cv_run / "cv_predictions.csv")["row"])
    n_rows = json.loads((cv_run / "config.json").read_text())["data"]["n_rows"]
    assert not pooled & test_rows and pooled | test_rows == set(range(n_rows))
    assert table["n"] == len(pooled) and table["folds"] == 3
    assert len(table["fold_values"]) == 3 and "test untouched" in table["split"]


def test_pooled_metric_matches_a_recomputation_and_carries_an_interval(cv_run):
    table = json.loads((cv_run / "cross_validation.json").read_text())
    pooled = pd.read_csv(cv_run / "cv_predictions.csv")
    assert sorted(pooled["fold"].unique()) == [0, 1, 2] and pooled["row"].is_unique
    auroc = table["pooled"]["auroc"]
    again = M.evaluate(pooled["target"], pooled["prob"], "binary", metrics=["auroc"], n_boot=0)
    assert again["auroc"]["value"] == pytest.approx(auroc["value"])
    low, high = auroc["ci95"]
    assert low <= auroc["value"] <= high
    brier = table["pooled"]["brier"]
    assert brier["ci95"][0] < brier["value"] < brier["ci95"][1]
    values = [v for v in table["fold_values"] if v is not None]
    assert table["fold_mean"] == pytest.approx(np.mean(values))
    # the pooled AUROC is not the mean of the fold AUROCs, but lies within their range
    assert min(values) - 0.1 <= auroc["value"] <= max(values) + 0.1


def test_report_and_summary_line_show_the_cross_validation(cv_run):
    assert "Cross-validation" in (cv_run / "report.html").read_text()
    assert "3-fold CV auroc" in api.summary_line(cv_run)
    assert api.verify(cv_run)["ok"]


def test_cv_refuses_one_fold_ensembles_and_tagging_runs(icu_root, tmp_path):
    with pytest.raises(ConfigError, match="at least 2 folds"):
        api.train("icu-mortality", data_root=icu_root, out=tmp_path / "a", model="logreg", cv=1,
                  register=False)
    with pytest.raises(ConfigError, match="leave out --ensemble"):
        api.train("icu-mortality", data_root=icu_root, out=tmp_path / "b", model="mlp", cv=3,
                  ensemble=3, register=False)
    with pytest.raises(ConfigError, match="--cv pools out-of-fold"):
        api.train(get_task("ner-ncbi-disease"), data_root=icu_root, out=tmp_path / "c", cv=3,
                  register=False)
