"""Hyper-parameter search: parsing NAME=V1,V2 options, enumerating trials, choosing on validation."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from iatros import api
from iatros.cli import app
from iatros.errors import ConfigError
from iatros.train.search import best_trial, grid_trials, parse_space, parse_value, split_trial


def test_values_parse_to_tuples_numbers_bools_and_text():
    assert parse_value("64x64x32") == (64, 64, 32)
    assert parse_value("1e-3") == 0.001 and parse_value("8") == 8
    assert parse_value("true") is True and parse_value("adamw") == "adamw"


def test_space_options_name_their_mistakes():
    assert parse_space(["weight-decay=0,1e-4"]) == {"weight_decay": [0, 0.0001]}
    for bad in (["dropout"], ["=1,2"], ["dropout="]):
        with pytest.raises(ConfigError, match="NAME=V1,V2"):
            parse_space(bad)
    with pytest.raises(ConfigError, match="twice"):
        parse_space(["lr=1e-3", "lr=3e-3"])


def test_small_grids_are_enumerated_in_full():
    trials = grid_trials({"a": [1, 2], "b": ["x", "y", "z"]}, max_trials=10, seed=0)
    assert len(trials) == 6 and {"a": 2, "b": "z"} in trials


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(1, 30), st.integers(0, 5))
def test_large_grids_are_sampled_without_repeats_and_reproducibly(sizes, max_trials, seed):
    space = {f"p{i}": list(range(n)) for i, n in enumerate(sizes)}
    trials = grid_trials(space, max_trials, seed)
    keys = [tuple(t.values()) for t in trials]
    assert len(keys) == len(set(keys)) == min(max_trials, math.prod(sizes))
    assert trials == grid_trials(space, max_trials, seed)
    assert all(list(t) == list(space) and all(t[k] in space[k] for k in t) for t in trials)


def test_training_settings_are_told_apart_from_model_parameters():
    params, train = split_trial({"hidden": (32,), "dropout": 0.1, "lr": 1e-3, "weight_decay": 0})
    assert params == {"hidden": (32,), "dropout": 0.1}
    assert train == {"lr": 1e-3, "weight_decay": 0}


def test_the_best_validation_score_wins_and_nan_never_does():
    assert best_trial([0.6, float("nan"), 0.7, 0.7], higher_is_better=True) == 2
    assert best_trial([3.0, None, 2.0], higher_is_better=False) == 2
    with pytest.raises(ConfigError, match="no trial"):
        best_trial([None, float("nan")], higher_is_better=True)


def test_tune_keeps_the_setting_with_the_best_validation_score(tmp_path):
    run = api.tune("survival-whas500", {"min_samples_leaf": [3, 60]}, model="rsf",
                   out=tmp_path / "tuned", eval_options=api.EvalOptions(n_boot=20), register=False)
    tuning = json.loads((run / "tuning.json").read_text())
    scores = [t["val"] for t in tuning["trials"]]
    assert len(scores) == 2 and tuning["metric"] == "c_index"
    assert tuning["chosen"] == scores.index(max(scores))
    config = json.loads((run / "config.json").read_text())
    assert config["model_params"]["min_samples_leaf"] == tuning["trials"][tuning["chosen"]][
        "settings"]["min_samples_leaf"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["val"]["c_index"]["value"] == pytest.approx(max(scores))
    assert metrics["splits"]["test"]["c_index"]["ci95"][0] is not None


def test_tune_command_lists_trials_and_prints_the_chosen_run(tmp_path):
    result = CliRunner().invoke(app, ["tune", "survival-whas500", "--model", "deepsurv",
                                      "--space", "dropout=0,0.3", "--epochs", "3", "--n-boot", "0",
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "trial 1: val c_index" in result.output and "chosen trial" in result.output
    assert (tmp_path / "t" / "tuning.json").is_file()


@given(st.integers(4, 40), st.integers(2, 5), st.integers(0, 3))
def test_validation_folds_partition_train_and_val_by_patient_and_keep_test(n_patients, k, seed):
    import numpy as np

    from iatros.data.splits import group_split, validation_fold

    groups = np.repeat([f"p{i}" for i in range(n_patients)], 2)
    split = group_split(groups, seed=seed)
    pool = np.sort(np.concatenate([split.train, split.val]))
    if len(set(groups[pool])) < k:
        with pytest.raises(ConfigError, match="folds"):
            validation_fold(split, groups, 0, k, seed=seed)
        return
    folds = [validation_fold(split, groups, f, k, seed=seed) for f in range(k)]
    assert all(np.array_equal(f.test, split.test) for f in folds)
    assert np.array_equal(np.sort(np.concatenate([f.val for f in folds])), pool)
    for f in folds:
        assert np.array_equal(np.sort(np.concatenate([f.train, f.val])), pool)
        assert not set(groups[f.train]) & set(groups[f.val])


def test_cross_validated_tuning_scores_each_setting_on_every_fold(tmp_path):
    run = api.tune("survival-whas500", {"min_samples_leaf": [3, 60]}, model="rsf", folds=3,
                   out=tmp_path / "cv", eval_options=api.EvalOptions(n_boot=0), register=False)
    tuning = json.loads((run / "tuning.json").read_text())
    assert tuning["folds"] == 3
    for row in tuning["trials"]:
        assert len(row["folds"]) == 3 and row["val"] == pytest.approx(sum(row["folds"]) / 3)
    config = json.loads((run / "config.json").read_text())
    assert config["val_fold"] is None  # the chosen run uses the task's own split
