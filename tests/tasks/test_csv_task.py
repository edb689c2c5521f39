"""csv:PATH tasks on a real table (WHAS500 written to CSV with text categories and gaps)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.data.sources.packaged import load_whas500
from iatros.errors import ConfigError, CorruptDataError, MissingDataError
from iatros.kinds import TargetKind
from iatros.tasks import get_task

FAST = api.EvalOptions(n_boot=50)


@pytest.fixture
def whas_csv(tmp_path):
    frame = load_whas500().reset_index(names="mrn")
    frame["outcome"] = np.where((frame.lenfol <= 365) & frame.fstat, "died", "alive")
    frame["sex"] = frame.pop("gender").map({0.0: "male", 1.0: "female"})
    frame.loc[[3, 10], "bmi"] = np.nan
    frame.loc[[5], "outcome"] = np.nan
    path = tmp_path / "whas.csv"
    frame.drop(columns=["lenfol", "fstat"]).to_csv(path, index=False)
    return path


def _options(**extra):
    return {"target": "outcome", "positive": "died", "patient_id": "mrn",
            "attributes": ["sex"], **extra}


def test_kind_and_classes_are_inferred_from_the_table(whas_csv):
    task = get_task(f"csv:{whas_csv}", _options())
    assert task.target is TargetKind.BINARY and task.classes == ("alive", "died")
    data = task.load(whas_csv.parent)
    assert len(data) == 499  # the row without an outcome is skipped
    assert int(data.targets.sum()) == int((pd.read_csv(whas_csv)["outcome"] == "died").sum())
    assert "sex_female" in data.feature_names and "mrn" not in data.feature_names


def test_csv_task_trains_audits_and_evaluates_on_another_copy(whas_csv, tmp_path):
    run = api.train(f"csv:{whas_csv}", task_options=_options(), model="logreg",
                    out=tmp_path / "run", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["value"] > 0.7
    assert set(metrics["subgroups"]["sex"]["groups"]) == {"female", "male"}
    copy = tmp_path / "copy"
    copy.mkdir()
    pd.read_csv(whas_csv).drop(columns=["bmi"]).to_csv(copy / "whas.csv", index=False)
    result = api.evaluate(run, data_root=copy, eval_options=FAST)
    assert result["external"] and result["splits"]["all"]["auroc"]["n"] == 499


def test_missing_target_option_says_what_to_add(whas_csv):
    with pytest.raises(ConfigError, match="--target"):
        get_task(f"csv:{whas_csv}", {})


def test_unknown_target_column_lists_the_columns(whas_csv):
    with pytest.raises(ConfigError, match="bmi"):
        get_task(f"csv:{whas_csv}", {"target": "death"})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MissingDataError, match="absent.csv"):
        get_task("csv:absent.csv", {"target": "y", "data_root": str(tmp_path)})


def test_malformed_csv_names_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b\n1,2\n\xff\xfe\x00garbage,\"unclosed\n")
    with pytest.raises(CorruptDataError, match="bad.csv"):
        get_task(f"csv:{bad}", {"target": "a"})


def test_regression_is_inferred_for_a_continuous_outcome(whas_csv):
    assert get_task(f"csv:{whas_csv}", {"target": "bmi"}).target is TargetKind.REGRESSION
