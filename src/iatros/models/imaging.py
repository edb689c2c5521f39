"""Imaging networks from MONAI (ResNet-18/50, DenseNet-121; 2D or 3D), trained from scratch.

MedMNIST-size inputs (28-64 px) lose most of their pixels to the ImageNet stem (7x7 stride-2
convolution then max-pool), so `stem="small"` swaps it for a 3x3 stride-1 convolution, as
CIFAR networks do. `tta=True` averages the logits of the image and its mirror at inference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.data.transforms.imaging import Augment, ImageDataset
from iatros.errors import ConfigError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import NETWORK_KINDS, ModelSpec, register_model

log = logging.getLogger("iatros")

RESNET_LAYOUT = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
                 50: ("bottleneck", [3, 4, 6, 3])}


class ImageClassifier(nn.Module):
    """A backbone with optional mirror test-time augmentation and channels-last memory layout."""

    def __init__(self, backbone: nn.Module, spatial_dims: int, cam_layer: str, tta: bool = False,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.spatial_dims = spatial_dims
        self.cam_layer = f"backbone.{cam_layer}"
        self.tta = tta
        self.channels_last = channels_last and spatial_dims == 2
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._forward(x)
        if self.tta and not self.training:
            out = (out + self._forward(torch.flip(x, dims=(-1,)))) / 2
        return out


def _load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a user's state dict; layers whose shape differs (e.g. the classifier) stay random."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(f"weights file {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"cannot read weights {path}: {e}") from e
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(f"no tensor in {path} matches the network's layer names and shapes")
    model.load_state_dict(usable, strict=False)
    log.info("loaded %d of %d tensors from %s (%d left at initialisation)", len(usable), len(own),
             path, len(own) - len(usable))


def build_resnet(n_inputs: int, n_outputs: int, *, depth: int = 18, spatial_dims: int = 2,
                 stem: str = "small", widen_factor: float = 1.0, tta: bool = False,
                 weights: str | None = None, size: int | None = None, **_: Any) -> ImageClassifier:
    from monai.networks.nets import ResNet

    if depth not in RESNET_LAYOUT:
        raise ConfigError(f"ResNet depth must be one of {sorted(RESNET_LAYOUT)}, not {depth}")
    block, layers = RESNET_LAYOUT[depth]
    small = stem == "small"
    net = ResNet(block, layers, [64, 128, 256, 512], spatial_dims=spatial_dims,
                 n_input_channels=n_inputs, conv1_t_size=3 if small else 7,
                 conv1_t_stride=1 if small else 2, no_max_pool=small, widen_factor=widen_factor,
                 num_classes=n_outputs)
    model = ImageClassifier(net, spatial_dims, "layer4", tta=tta)
    if weights:
        _load_weights(model.backbone, weights)
    return model


def build_densenet121(n_inputs: int, n_outputs: int, *, spatial_dims: int = 2, stem: str = "small",
                      tta: bool = False, weights: str | None = None, size: int | None = None,
                      **_: Any) -> ImageClassifier:
    from monai.networks.layers.factories import Conv
    from monai.networks.nets import DenseNet121

    net = DenseNet121(spatial_dims=spatial_dims, in_channels=n_inputs, out_channels=n_outputs)
    if stem == "small":
        net.features.conv0 = Conv[Conv.CONV, spatial_dims](n_inputs, 64, kernel_size=3, stride=1,
                                                          padding=1, bias=False)
        net.features.pool0 = nn.Identity()
    model = ImageClassifier(net, spatial_dims, "features.denseblock4", tta=tta)
    if weights:
        _load_weights(model.backbone, weights)
    return model


def image_dataset(inputs: Any, targets: Any, kind: TargetKind, train: bool = False,
                  params: dict[str, Any] | None = None) -> ImageDataset:
    """MedMNIST arrays or image paths, prepared to the task's size and channels."""
    params = params or {}
    dtype = torch.long if kind.class_indices else torch.float32
    reader = None
    if isinstance(inputs, np.ndarray) and inputs.dtype == object:
        from iatros.data.formats import read_image

        def reader(path: str) -> np.ndarray:
            return read_image(path).array
    return ImageDataset(
        inputs, targets, dims=int(params.get("spatial_dims", 2)),
        channels=int(params.get("in_channels", 1)), size=int(params.get("size", 28)),
        target_dtype=dtype, augment=Augment.from_dict(params.get("augment")) if train else None,
        seed=int(params.get("seed", 0)), reader=reader)


def image_channels(inputs: Any, params: dict[str, Any] | None = None) -> int:
    return int((params or {}).get("in_channels", 1))


_TRAIN = {"epochs": 20, "batch_size": 128, "lr": 2e-3, "weight_decay": 5e-4, "patience": 8,
          "amp": True, "scheduler": "cosine"}

for _depth in (18, 50):
    register_model(ModelSpec(
        name=f"resnet{_depth}", family="torch", modalities=(Modality.IMAGE,),
        build=lambda i, o, _d=_depth, **p: build_resnet(i, o, depth=_d, **p),
        description=f"MONAI ResNet-{_depth} (2D or 3D; 3x3 stride-1 stem for small images)",
        params={"stem": "small", "widen_factor": 1.0, "tta": True},
        train_defaults=_TRAIN, dataset=image_dataset, n_inputs=image_channels,
        kinds=NETWORK_KINDS, heatmaps=True,
    ))

register_model(ModelSpec(
    name="densenet121", family="torch", modalities=(Modality.IMAGE,), build=build_densenet121,
    description="MONAI DenseNet-121 (2D or 3D; 3x3 stride-1 stem for small images)",
    params={"stem": "small", "tta": True},
    train_defaults=_TRAIN, dataset=image_dataset, n_inputs=image_channels,
    kinds=NETWORK_KINDS, heatmaps=True,
))
