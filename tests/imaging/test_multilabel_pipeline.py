"""A multilabel MedMNIST-layout file (ChestMNIST's 14 findings) end to end, on synthetic images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros import api


@pytest.fixture
def chest_root(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 32), ("test", 32)):
        labels = (rng.random((n, 14)) < 0.3).astype(np.uint8)
        images = rng.integers(0, 80, size=(n, 28, 28)).astype(np.uint8)
        images[labels[:, 0] == 1, :8, :8] = 255  # finding 0 shows as a bright corner
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "chestmnist.npz", **arrays)
    return tmp_path


@pytest.mark.filterwarnings("ignore:.*checksum")
def test_multilabel_task_trains_and_reports_per_label_probabilities(chest_root, tmp_path):
    run = api.train("medmnist:chestmnist", data_root=chest_root, epochs=2,
                    params={"widen_factor": 0.125}, out=tmp_path / "run",
                    eval_options=api.EvalOptions(n_boot=20))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target_kind"] == "multilabel"
    assert {"auroc", "auprc", "f1", "brier"} <= set(metrics["splits"]["test"])
    frame = pd.read_csv(run / "predictions.csv")
    assert {f"prob_{j}" for j in range(14)} <= set(frame.columns)
    assert {f"target_{j}" for j in range(14)} <= set(frame.columns)
    assert (run / "report.html").is_file()
