"""The Python API across target kinds: regression on real data, multiclass/ordinal on a fixture."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.kinds import Modality, TargetKind
from iatros.tasks import Task, TaskData, register_task

FAST = api.EvalOptions(n_boot=50)


def test_regression_task_reports_errors_with_cis_and_audits(tmp_path):
    run = api.train("diabetes-progression", model="logreg", out=tmp_path / "r", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert set(test) == {"rmse", "mae", "r2"}
    assert test["rmse"]["ci95"][0] <= test["rmse"]["value"] <= test["rmse"]["ci95"][1]
    assert 30 < test["rmse"]["value"] < 80  # the outcome's SD is 77: the model explains some of it
    assert set(metrics["subgroups"]["sex"]["groups"]) == {"sex=1", "sex=2"}
    assert "prediction" in pd.read_csv(run / "predictions.csv").columns
    assert (run / "figures" / "predicted_vs_observed.png").is_file()


def test_mlp_regression_predicts_in_the_targets_units(tmp_path):
    run = api.train("diabetes-progression", model="mlp", epochs=40, out=tmp_path / "r",
                    eval_options=FAST)
    predictions = pd.read_csv(run / "predictions.csv")
    assert 100 < predictions["prediction"].mean() < 200  # target mean is 152
    assert json.loads((run / "metrics.json").read_text())["splits"]["test"]["r2"]["value"] > 0.2


def _three_class_loader(kind):
    def load(_root):
        rng = np.random.default_rng(0)
        n = 600
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5])
        return TaskData(inputs=x, targets=y, patient_ids=np.arange(n) // 2,
                        attributes=pd.DataFrame({"site": rng.choice(["A", "B"], size=n)}))
    return load


@pytest.mark.parametrize("kind", [TargetKind.MULTICLASS, TargetKind.ORDINAL])
def test_multiclass_and_ordinal_tasks_run_end_to_end(tmp_path, kind):
    task = register_task(Task(
        name=f"toy-{kind.value}", description="toy", modality=Modality.TABULAR, target=kind,
        loader=_three_class_loader(kind), classes=("low", "mid", "high"),
        sensitive_attributes=("site",)), replace=True)
    run = api.train(task, epochs=5, out=tmp_path / "r", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["accuracy"]["value"] > 0.5
    assert "kappa" in metrics["splits"]["test"]
    assert metrics["calibration"]["method"] == "temperature"
    frame = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    assert np.allclose(frame[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0)
    test_patients = set(frame.loc[frame.split == "test", "patient_id"])
    assert not test_patients & set(frame.loc[frame.split == "val", "patient_id"])
    assert set(metrics["subgroups"]["site"]["groups"]) == {"A", "B"}
    assert (run / "report.html").is_file()


def test_same_seed_gives_identical_predictions_in_one_process(tmp_path):
    """Initial weights, batches and dropout all follow the run's seed."""
    runs = [api.train("breast-cancer-wdbc", epochs=5, seed=3, out=tmp_path / f"r{i}",
                      eval_options=FAST) for i in range(2)]
    a, b = (pd.read_csv(r / "predictions.csv")["prob_raw"] for r in runs)
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    c = pd.read_csv(api.train("breast-cancer-wdbc", epochs=5, seed=4, out=tmp_path / "r9",
                              eval_options=FAST) / "predictions.csv")
    assert len(c) != len(a) or not np.array_equal(c["prob_raw"].to_numpy(), a.to_numpy())


def test_ensemble_averages_member_probabilities(tmp_path):
    from iatros.train.predictors import load_predictor

    run = api.train("breast-cancer-wdbc", epochs=3, ensemble=2, out=tmp_path / "e", eval_options=FAST)
    ensemble = load_predictor(run)
    members = [load_predictor(run / "members" / f"m{k}") for k in range(2)]
    from iatros.tasks import get_task

    x = get_task("breast-cancer-wdbc").load(".").inputs[:20]
    expected = np.mean([m.predict_scores(x) for m in members], axis=0)
    assert np.allclose(ensemble.predict_scores(x), expected)
    assert not np.allclose(members[0].predict_scores(x), members[1].predict_scores(x))
    log = pd.read_csv(run / "train_log.csv")
    assert set(log["member"]) == {0, 1}
    assert api.evaluate(run, split="val", eval_options=FAST)["splits"]["val"]["auroc"]["n"] > 0


def test_the_nlp_api_loads_without_the_run_pipeline():
    """`iatros nlp` starts fast: importing iatros.api.nlp loads neither torch nor the run pipeline,
    and both still load when asked for."""
    import os
    import subprocess
    import sys

    code = ("import sys, iatros.api.nlp, iatros.api as ia; from iatros.api import nlp; "
            "doc = nlp.ClinicalPipeline(cache_dir=nlp.terminology_cache()).extract('No pneumothorax.'); "
            "print(sorted(m for m in ('iatros.api.core', 'iatros.pipeline.training', 'torch') "
            "if m in sys.modules)); print(doc['entities'][0]['negated']); ia.tasks; import torch; "
            "print('iatros.api.core' in sys.modules, torch.ones(2).sum().item())")
    env = {**os.environ, "IATROS_THREADS": "1"}  # a thread setting alone must not load torch
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout
    assert out.split("\n")[:3] == ["[]", "True", "True 2.0"]
