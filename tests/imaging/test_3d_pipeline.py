"""A 3D MedMNIST-layout file end to end (synthetic volumes in the official npz layout)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from iatros import api


@pytest.fixture
def nodule_root(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 12), ("test", 12)):
        labels = np.arange(n) % 2
        vols = rng.integers(0, 60, size=(n, 28, 28, 28)).astype(np.uint8)
        vols[labels == 1, 10:18, 10:18, 10:18] = 220  # a bright "nodule"
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = vols, labels[:, None]
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "nodulemnist3d.npz", **arrays)
    return tmp_path


@pytest.mark.filterwarnings("ignore:.*checksum")
def test_3d_task_trains_and_explains_with_top_slices(nodule_root, tmp_path):
    run = api.train("nodule-ct", data_root=nodule_root, epochs=2, params={"widen_factor": 0.125},
                    out=tmp_path / "run", eval_options=api.EvalOptions(n_boot=30))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["n"] == 12
    items = json.loads((run / "explanations.json").read_text())
    assert items and all((run / i["path"]).is_file() for i in items)
    assert len(items[0]["peak"]) == 3  # (slice, row, column) of the strongest attribution


@pytest.mark.filterwarnings("ignore:.*checksum")
def test_2d_image_given_to_a_3d_model_names_the_file(nodule_root, tmp_path):
    from PIL import Image

    run = api.train("nodule-ct", data_root=nodule_root, epochs=1, params={"widen_factor": 0.125},
                    out=tmp_path / "run", eval_options=api.EvalOptions(n_boot=10))
    flat = tmp_path / "flat.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(flat)
    import nibabel as nib

    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((28, 28, 28), dtype=np.float32), np.eye(4)), good)
    bad, fine = api.predict(run, [flat, good])  # a bad input is an entry; the batch goes on
    assert re.search("flat.png.*2D image given to a 3D model", bad["error"])
    assert fine["input"] == str(good) and set(fine["probabilities"]) == {"benign", "malignant"}
