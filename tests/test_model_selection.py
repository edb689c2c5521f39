"""`--model auto`: the model is chosen by cross-validation on train + val, then trained as an
ordinary run on the usual split; the choice and every fold's score are in the run folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from iatros import api
from iatros.errors import ConfigError
from iatros.pipeline.selection import select_model
from iatros.settings import get_settings
from iatros.tasks import get_task
from tests.tasks.ehr_fixture import write_physionet_root

FAST = api.EvalOptions(n_boot=20)


@pytest.fixture(scope="module")
def icu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_physionet_root(tmp_path_factory.mktemp("ehr") / "root")


@pytest.fixture
def small_task():
    """icu-mortality choosing between two fast models."""
    return dataclasses.replace(get_task("icu-mortality"), selection=("logreg", "gbm"))


def test_health_record_tasks_default_to_auto():
    for name in ("icu-mortality", "mimic-mortality", "eicu-mortality", "icu-survival"):
        summary = get_task(name).summary()
        assert summary["default_model"] == "auto" and summary["selection"]


def test_auto_trains_the_cross_validation_winner_and_records_the_search(small_task, icu_root,
                                                                        tmp_path):
    run = api.train(small_task, data_root=icu_root, out=tmp_path / "auto", select_folds=2,
                    eval_options=FAST, register=False)
    table = json.loads((run / "model_selection.json").read_text())
    assert [r["model"] for r in table["candidates"]] == ["logreg", "gbm"]
    assert all(len(r["folds"]) == 2 for r in table["candidates"])
    best = max(table["candidates"], key=lambda r: r["mean"])
    assert table["chosen"] == best["model"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == table["chosen"] and config["val_fold"] is None
    assert "How the model was chosen" in (run / "report.html").read_text()
    assert api.verify(run)["ok"]


def test_the_chosen_run_is_the_same_as_training_that_model_directly(small_task, icu_root,
                                                                    tmp_path):
    auto = api.train(small_task, data_root=icu_root, out=tmp_path / "auto", select_folds=2,
                     eval_options=FAST, register=False)
    chosen = json.loads((auto / "model_selection.json").read_text())["chosen"]
    direct = api.train(small_task, data_root=icu_root, out=tmp_path / "direct", model=chosen,
                       eval_options=FAST, register=False)
    a, b = pd.read_csv(auto / "predictions.csv"), pd.read_csv(direct / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)  # same split, same test rows, same model


def test_cross_validation_uses_folds_of_train_and_val_only(small_task, icu_root, monkeypatch):
    seen = []
    import iatros.pipeline.training as training

    real = training.train

    def spy(*args, **kwargs):
        seen.append(kwargs.get("val_fold"))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    table = select_model(small_task, settings=get_settings().with_data_root(icu_root), folds=3,
                         candidates=["logreg"])
    assert seen == [(0, 3), (1, 3), (2, 3)]
    assert table["chosen"] == "logreg" and "test untouched" in table["split"]


def test_auto_refuses_settings_meant_for_one_model(small_task, icu_root, tmp_path):
    with pytest.raises(ConfigError, match="--model auto chooses among whole models"):
        api.train(small_task, data_root=icu_root, out=tmp_path / "x", model="auto",
                  params={"hidden": 8}, register=False)


def test_auto_on_a_task_without_candidates_names_the_models_to_pass(icu_root, tmp_path):
    task = dataclasses.replace(get_task("icu-mortality"), selection=())
    with pytest.raises(ConfigError, match="names no models to choose from"):
        api.train(task, data_root=icu_root, out=tmp_path / "x", model="auto", register=False)


def test_one_fold_is_not_cross_validation(small_task, icu_root):
    with pytest.raises(ConfigError, match="at least 2 folds"):
        select_model(small_task, settings=get_settings().with_data_root(icu_root), folds=1)
