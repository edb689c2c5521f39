"""images:FOLDER tasks: a user's own PNGs with a labels CSV (generated fixture, real file formats)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iatros import api
from iatros.errors import MissingDataError
from iatros.kinds import TargetKind
from iatros.tasks import get_task

FAST = api.EvalOptions(n_boot=30)


@pytest.fixture
def folder(tmp_path):
    """60 patients, 2 images each: 'lesion' images carry a bright blob, 'clear' ones do not."""
    rng = np.random.default_rng(0)
    rows = []
    root = tmp_path / "scans"
    root.mkdir()
    for p in range(60):
        label = "lesion" if p % 2 else "clear"
        for k in range(2):
            img = rng.normal(80, 20, size=(48, 40))
            if label == "lesion":
                cy, cx = rng.integers(10, 30, size=2)
                img[cy:cy + 10, cx:cx + 10] += 120
            name = f"p{p:02d}_{k}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name)
            rows.append({"image": name, "label": label, "patient_id": f"P{p:02d}",
                         "sex": "F" if p % 3 else "M"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_folder_task_infers_binary_labels_and_keeps_patients_together(folder):
    task = get_task(f"images:{folder}", {"positive": "lesion", "attributes": ["sex"], "size": 32})
    assert task.target is TargetKind.BINARY and task.classes == ("clear", "lesion")
    data = task.load(folder)
    split = task.split(data)
    train_patients = set(data.patient_ids[split.train])
    assert not train_patients & set(data.patient_ids[split.test])


def test_folder_task_trains_audits_and_predicts(folder, tmp_path):
    run = api.train(f"images:{folder}", task_options={"positive": "lesion", "attributes": ["sex"],
                                                      "size": 32},
                    epochs=3, params={"widen_factor": 0.25}, out=tmp_path / "run", eval_options=FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["subgroups"]["sex"]["groups"]) == {"F", "M"}
    (result,) = api.predict(run, [folder / "p01_0.png"], out=tmp_path / "pred")
    assert set(result["probabilities"]) == {"clear", "lesion"}
    assert (tmp_path / "pred" / "p01_0-gradcam.png").is_file()


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError):
        get_task(f"images:{tmp_path / 'empty'}", {})
