"""Image preparation and MONAI augmentation: one path from any pixel array to the model's input.

`prepare_image` turns a 2D image (H, W) / (H, W, C) or a 3D volume (D, H, W), of any dtype and
size, into a channel-first float32 array in [0, 1] of the training size, so training on MedMNIST
arrays and predicting on a user's DICOM or PNG go through the same steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from iatros.data.transforms import settings_from_dict
from iatros.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation; amounts are per task (no vertical flips on chest X-rays...)."""

    hflip: bool = True
    vflip: bool = False
    rotate_degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.1
    contrast: float = 0.2
    noise_std: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Augment:
        return settings_from_dict(cls, values, "augmentation")


def _to_channel_first(array: np.ndarray, dims: int, channels: int) -> np.ndarray:
    """(H, W) / (H, W, C) -> (C, H, W); (D, H, W) -> (1, D, H, W); channel count adapted."""
    a = np.asarray(array)
    if dims == 2:
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3 and a.shape[-1] in (1, 3, 4):
            a = np.moveaxis(a[..., :3] if a.shape[-1] == 4 else a, -1, 0)
        else:
            raise ConfigError(f"expected a 2D image (H, W) or (H, W, C), got shape {a.shape}; "
                              f"is this a 3D volume given to a 2D model?")
    elif dims == 3:
        if a.ndim == 3:
            a = a[None]
        elif not (a.ndim == 4 and a.shape[0] == 1):
            raise ConfigError(f"expected a 3D volume (D, H, W), got shape {a.shape}; "
                              f"is this a 2D image given to a 3D model?")
    else:
        raise ConfigError(f"spatial dims must be 2 or 3, not {dims}")
    if a.shape[0] == channels:
        return a
    if channels == 1:
        return a.astype(np.float32).mean(axis=0, keepdims=True)
    if a.shape[0] == 1:
        return np.repeat(a, channels, axis=0)
    raise ConfigError(f"image has {a.shape[0]} channels but the model expects {channels}")


def _to_unit_range(a: np.ndarray) -> np.ndarray:
    """uint8 / uint16 by their full range; floats by their own min and max (after windowing)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ConfigError("image contains NaN or infinite pixel values")
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def prepare_image(array: np.ndarray, *, dims: int, channels: int, size: int) -> np.ndarray:
    """Channel-first float32 in [0, 1], resized to `size` along every spatial axis."""
    a = _to_unit_range(_to_channel_first(array, dims, channels))
    target = (size,) * dims
    if tuple(a.shape[1:]) != target:
        from monai.transforms import Resize

        shrinking = any(s > t for s, t in zip(a.shape[1:], target, strict=True))
        resize = Resize(spatial_size=target, mode="area" if shrinking else ("bilinear" if dims == 2
                                                                             else "trilinear"))
        a = np.asarray(resize(a), dtype=np.float32)
    return np.ascontiguousarray(a, dtype=np.float32)


def augmentation(dims: int, augment: Augment, seed: int = 0) -> Callable[[Any], Any]:
    """A seeded MONAI pipeline of random flips, affine jitter and intensity changes."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandFlip,
        RandGaussianNoise,
    )

    steps: list[Any] = []
    if augment.hflip:
        steps.append(RandFlip(prob=0.5, spatial_axis=dims - 1))
    if augment.vflip:
        steps.append(RandFlip(prob=0.5, spatial_axis=dims - 2))
    if augment.rotate_degrees or augment.scale or augment.translate:
        rad = math.radians(augment.rotate_degrees)
        steps.append(RandAffine(
            prob=0.7, rotate_range=(rad,) if dims == 2 else (rad, rad, rad),
            scale_range=(augment.scale,) * dims, padding_mode="border",
            translate_range=None if not augment.translate else (augment.translate,) * dims,
        ))
    if augment.contrast:
        steps.append(RandAdjustContrast(prob=0.3, gamma=(1 - augment.contrast, 1 + augment.contrast)))
    if augment.noise_std:
        steps.append(RandGaussianNoise(prob=0.3, std=augment.noise_std))
    pipeline = Compose(steps)
    pipeline.set_random_state(seed=seed)
    return pipeline


class ImageDataset(Dataset):
    """Images from an in-memory array (N, ...) or from file paths, with optional augmentation.

    Translate amounts are fractions of the image size; MONAI wants pixels, converted here.
    """

    def __init__(self, images: Any, targets: Any, *, dims: int, channels: int, size: int,
                 target_dtype: torch.dtype, augment: Augment | None = None, seed: int = 0,
                 reader: Callable[[str], np.ndarray] | None = None) -> None:
        self.images, self.targets = images, np.asarray(targets)
        self.dims, self.channels, self.size = dims, channels, size
        self.target_dtype = target_dtype
        self.reader = reader
        if augment is not None and augment.translate:
            augment = Augment(**{**asdict(augment), "translate": augment.translate * size})
        self.transform = augmentation(dims, augment, seed) if augment is not None else None

    def __len__(self) -> int:
        return len(self.targets)

    def _pixels(self, i: int) -> np.ndarray:
        item = self.images[i]
        if isinstance(item, (str, bytes)) or not hasattr(item, "shape"):
            if self.reader is None:
                raise ConfigError("image paths given but no reader configured")
            return self.reader(str(item))
        return item

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            x = prepare_image(self._pixels(i), dims=self.dims, channels=self.channels, size=self.size)
        except ConfigError as e:
            item = self.images[i]
            where = str(item) if isinstance(item, (str, bytes)) else f"image {i}"
            raise ConfigError(f"{where}: {e}") from e
        if self.transform is not None:
            # draw the augmentation seed from torch's generator, which checkpoints save and
            # resume restores, so a resumed run replays the same augmentations
            self.transform.set_random_state(seed=int(torch.randint(0, 2**31 - 1, (1,))))
            x = self.transform(x)
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return x, torch.as_tensor(np.asarray(self.targets[i]), dtype=self.target_dtype)
