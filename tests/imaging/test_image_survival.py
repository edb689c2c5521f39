"""Survival on another modality's encoder: a Cox head on an image network, and on the tabular MLP."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iatros import api
from iatros.kinds import TargetKind
from iatros.tasks import get_task

FAST = api.EvalOptions(n_boot=30)


@pytest.fixture
def scans(tmp_path):
    """300 patients: the brighter the lesion, the shorter the time to event (some censored)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "scans"
    root.mkdir()
    rows = []
    for p in range(300):
        severity = rng.random()
        img = rng.normal(60, 10, size=(32, 32))
        img[10:22, 10:22] += 180 * severity
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"p{p:03d}.png")
        time = rng.exponential(100 * np.exp(-4.0 * severity)) + 1
        censor = rng.exponential(300) + 1
        rows.append({"image": f"p{p:03d}.png", "patient_id": f"P{p:03d}",
                     "months": round(min(time, censor), 2), "died": int(time <= censor)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_image_folder_with_time_and_event_is_a_survival_task(scans):
    task = get_task(f"images:{scans}", {"time": "months", "event": "died", "size": 32})
    assert task.target is TargetKind.SURVIVAL and task.primary_metric == "c_index"
    assert task.load(scans).targets.shape == (300, 2)


def test_cox_head_on_an_image_network_learns_and_predicts_curves(scans, tmp_path):
    run = api.train(f"images:{scans}", task_options={"time": "months", "event": "died", "size": 32},
                    epochs=10, params={"widen_factor": 0.25}, out=tmp_path / "run", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target_kind"] == "survival"
    assert metrics["splits"]["test"]["c_index"]["value"] > 0.6
    (result,) = api.predict(run, [scans / "p000.png"], out=tmp_path / "pred")
    curve = np.asarray(result["curve"]["survival"])
    assert np.all(np.diff(curve) <= 1e-9) and 0 <= curve.min() <= curve.max() <= 1


def test_cox_head_on_the_tabular_mlp(tmp_path):
    run = api.train("survival-whas500", model="mlp", out=tmp_path / "run", eval_options=FAST)
    assert json.loads((run / "model.json").read_text())["cox_head"] is True
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["c_index"]["value"] > 0.65
