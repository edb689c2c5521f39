"""Imaging end to end on real MedMNIST files: a tiny training, Grad-CAM in the report, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from iatros import api

FAST = api.EvalOptions(n_boot=50)
TINY = {"widen_factor": 0.25}


@pytest.fixture(scope="module")
def breast_run(tmp_path_factory, shared_data_module):
    out = tmp_path_factory.mktemp("breast") / "run"
    return api.train("breast-ultrasound", data_root=shared_data_module, epochs=1, params=TINY,
                     out=out, eval_options=FAST, register=False)


def test_tiny_breast_training_reports_auc_with_ci(breast_run):
    metrics = json.loads((breast_run / "metrics.json").read_text())
    auroc = metrics["splits"]["test"]["auroc"]
    assert auroc["n"] == 156 and auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    config = json.loads((breast_run / "config.json").read_text())
    assert config["data"]["splits"]["train"]["rows"] == 546
    assert config["classes"] == ["benign or normal", "malignant"]


def test_gradcam_overlays_are_saved_and_shown_in_the_report(breast_run):
    items = json.loads((breast_run / "explanations.json").read_text())
    assert 2 <= len(items) <= 4
    for item in items:
        png = breast_run / item["path"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (breast_run / "report.html").read_text()
    assert "What the model looked at" in html and items[0]["path"] in html


def test_predict_on_png_returns_calibrated_probabilities_and_heatmap(breast_run, tmp_path):
    image = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(0).random((60, 80)) * 255).astype(np.uint8)).save(image)
    (result,) = api.predict(breast_run, [image], out=tmp_path / "pred")
    assert set(result["probabilities"]) == {"benign or normal", "malignant"}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["prediction"] in result["probabilities"]
    assert (tmp_path / "pred" / "scan-gradcam.png").is_file()


def test_predict_on_a_real_dicom(breast_run, tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's CT_small.dcm is not available offline")
    (result,) = api.predict(breast_run, [path], out=tmp_path)
    assert 0.0 <= result["probabilities"]["malignant"] <= 1.0


def test_batched_grad_cam_gives_each_image_its_own_map(breast_run, shared_data_module):
    import torch

    from iatros.explain.gradcam import heatmap, heatmaps
    from iatros.pipeline.explain import _network
    from iatros.settings import get_settings
    from iatros.train.predictors import load_predictor

    network = _network(load_predictor(breast_run, get_settings().device))
    images = np.load(shared_data_module / "medmnist" / "breastmnist.npz")["test_images"][:4]
    xs = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    for method in ("gradcam", "gradcampp"):  # binary: one output unit
        batch = heatmaps(network, xs, 0, method)
        for k in range(len(xs)):
            assert np.allclose(batch[k], heatmap(network, xs[k], 0, method), atol=1e-4)
    # a one-epoch network's Grad-CAM can be all zero; Grad-CAM++ maps differ between images
    assert any(not np.allclose(batch[0], batch[k]) for k in range(1, len(xs)))
