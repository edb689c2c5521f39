"""Imaging building blocks: preparation, MONAI augmentation, network shapes, Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iatros.data.transforms.imaging import Augment, ImageDataset, augmentation, prepare_image
from iatros.errors import ConfigError
from iatros.explain.gradcam import heatmap, top_slices
from iatros.models.imaging import build_densenet121, build_resnet


def test_prepare_scales_uint8_and_resizes_to_the_training_size():
    img = np.full((60, 80), 255, dtype=np.uint8)
    out = prepare_image(img, dims=2, channels=1, size=28)
    assert out.shape == (1, 28, 28) and out.dtype == np.float32
    assert np.allclose(out, 1.0)


def test_prepare_min_max_scales_float_images_such_as_ct():
    hu = np.linspace(-1000, 400, 28 * 28, dtype=np.float32).reshape(28, 28)
    out = prepare_image(hu, dims=2, channels=1, size=28)
    assert out.min() == 0.0 and out.max() == 1.0


def test_prepare_converts_channels_both_ways():
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert prepare_image(rgb, dims=2, channels=1, size=28).shape == (1, 28, 28)
    gray = np.zeros((28, 28), dtype=np.uint8)
    assert prepare_image(gray, dims=2, channels=3, size=28).shape == (3, 28, 28)


def test_prepare_refuses_a_volume_for_a_2d_model_and_nan_pixels():
    with pytest.raises(ConfigError, match="3D volume"):
        prepare_image(np.zeros((5, 28, 28, 7)), dims=2, channels=1, size=28)
    with pytest.raises(ConfigError, match="2D image given to a 3D model"):
        prepare_image(np.zeros((28, 28)), dims=3, channels=1, size=28)
    bad = np.zeros((28, 28), dtype=np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        prepare_image(bad, dims=2, channels=1, size=28)


def test_augmentation_is_seeded_and_keeps_shape_and_range():
    x = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    a = augmentation(2, Augment(hflip=True, rotate_degrees=20, contrast=0.3), seed=5)
    b = augmentation(2, Augment(hflip=True, rotate_degrees=20, contrast=0.3), seed=5)
    outs_a = [np.asarray(a(x)) for _ in range(5)]
    outs_b = [np.asarray(b(x)) for _ in range(5)]
    assert all(np.array_equal(p, q) for p, q in zip(outs_a, outs_b, strict=True))
    assert any(not np.allclose(o, x) for o in outs_a)
    assert all(o.shape == (1, 28, 28) for o in outs_a)


def test_unknown_augmentation_setting_is_rejected():
    with pytest.raises(ConfigError, match="elastic"):
        Augment.from_dict({"elastic": 1.0})


def test_dataset_yields_channel_first_tensors_and_typed_targets():
    images = np.zeros((4, 28, 28, 3), dtype=np.uint8)
    ds = ImageDataset(images, [0, 1, 2, 1], dims=2, channels=3, size=32,
                      target_dtype=torch.long, augment=Augment())
    x, y = ds[1]
    assert x.shape == (3, 32, 32) and y.dtype == torch.long and int(y) == 1


@pytest.mark.parametrize("build", [lambda: build_resnet(1, 2, depth=18, widen_factor=0.25),
                                   lambda: build_resnet(1, 2, depth=50, widen_factor=0.125),
                                   lambda: build_densenet121(1, 2)])
def test_2d_networks_map_a_28px_batch_to_logits(build):
    net = build().eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 28, 28)).shape == (2, 2)


def test_3d_resnet_maps_a_volume_batch_to_logits():
    net = build_resnet(1, 1, depth=18, spatial_dims=3, stem="standard", widen_factor=0.25).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 28, 28, 28)).shape == (2, 1)


def test_mirror_tta_averages_the_image_and_its_mirror():
    net = build_resnet(1, 1, widen_factor=0.25, tta=True).eval()
    x = torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        both = net(x)
        net.tta = False
        plain, mirror = net(x), net(torch.flip(x, dims=(-1,)))
    assert torch.allclose(both, (plain + mirror) / 2, atol=1e-5)


def test_user_weights_load_by_name_and_shape(tmp_path):
    source = build_resnet(1, 5, widen_factor=0.25)
    path = tmp_path / "w.pt"
    torch.save(source.backbone.state_dict(), path)
    target = build_resnet(1, 2, widen_factor=0.25, weights=str(path))
    conv = "conv1.weight"
    assert torch.equal(source.backbone.state_dict()[conv], target.backbone.state_dict()[conv])


class _BlobNet(torch.nn.Module):
    """Conv features then a global sum: evidence is wherever the image is bright."""

    cam_layer = "features"

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv2d(1, 4, kernel_size=3, padding=1)
        torch.nn.init.constant_(self.features.weight, 0.1)
        torch.nn.init.zeros_(self.features.bias)

    def forward(self, x):
        return torch.relu(self.features(x)).sum(dim=(2, 3))[:, :1]


def test_gradcam_peaks_where_the_evidence_is():
    x = torch.zeros(1, 28, 28)
    x[:, 3:9, 4:10] = 1.0
    heat = heatmap(_BlobNet(), x, class_index=0)
    assert heat.shape == (28, 28) and heat.min() == 0.0 and heat.max() == 1.0
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    assert 2 <= peak[0] <= 9 and 3 <= peak[1] <= 10
    assert heat[20:, 20:].max() < 0.1


def test_gradcam_runs_on_a_resnet_with_tta():
    net = build_resnet(1, 1, widen_factor=0.25, tta=True).eval()
    heat = heatmap(net, torch.rand(1, 28, 28), class_index=0)
    assert heat.shape == (28, 28) and np.isfinite(heat).all() and net.tta


def test_top_slices_pick_the_slices_with_most_attribution():
    heat = np.zeros((10, 4, 4))
    heat[[2, 7, 8]] = 1.0
    assert top_slices(heat, 3) == [2, 7, 8]


def test_dataset_accepts_float_placeholder_targets_for_class_models():
    """Prediction passes zeros as targets; class-index models must still get a batch."""
    ds = ImageDataset(np.zeros((2, 28, 28), dtype=np.uint8), np.zeros(2, dtype=np.float32), dims=2,
                      channels=1, size=28, target_dtype=torch.long)
    assert ds[0][1].dtype == torch.long


def test_augmentations_follow_torchs_generator_so_resume_replays_them():
    images = np.random.default_rng(0).integers(0, 255, size=(3, 28, 28)).astype(np.uint8)
    ds = ImageDataset(images, [0, 1, 0], dims=2, channels=1, size=28, target_dtype=torch.long,
                      augment=Augment(rotate_degrees=25, contrast=0.3))
    torch.manual_seed(7)
    first = [ds[i][0] for i in range(3)]
    torch.manual_seed(7)
    again = [ds[i][0] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(ds[0][0], first[0])  # the generator moved on: a new augmentation
