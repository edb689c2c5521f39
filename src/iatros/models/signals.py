"""Signal models: a 1-D residual CNN on the raw ECG, and gradient boosting on rhythm features.

`resnet1d` is a small residual network written here rather than MONAI's `ResNet(spatial_dims=1)`:
MONAI's blocks use 3-sample kernels, which at 300 Hz see 10 ms per layer, so a ResNet-18 would
need its full depth before a layer sees one beat; 7-sample kernels after a 15-sample stride-4 stem and
a max-pool (75 Hz from the first block on) reach several beats in a few blocks and train in
minutes on CPUs. Global average (and max)
pooling over time makes the network take any window length.

`hrv-gbm` is a scikit-learn pipeline whose first step turns each raw recording into rhythm
features (`RhythmFeatures`: R-peaks -> RR statistics, heart rate, beat agreement), so the
task's inputs stay one array per recording for every model and `predict` on new files needs no
separate feature step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.data.transforms.signals import FS, rhythm_feature_matrix, signal_dataset
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import ESTIMATOR_KINDS, NETWORK_KINDS, ModelSpec, register_model


class ResidualBlock1d(nn.Module):
    """Two convolutions with batch norm and a shortcut (1x1 convolution when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dropout: float) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False),
            nn.BatchNorm1d(c_out), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False), nn.BatchNorm1d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet1d(nn.Module):
    """Stem (15-sample convolution of stride `stem_stride`, max-pool 2), `stages` of `blocks` residual blocks
    (width doubling up to 4x, stride 2 from the second stage), average + max pooling, linear."""

    def __init__(self, n_inputs: int, n_outputs: int, width: int = 32, stages: int = 4,
                 blocks: int = 1, kernel: int = 7, dropout: float = 0.2, stem_stride: int = 4,
                 ) -> None:
        super().__init__()
        if width < 1 or stages < 1 or blocks < 1 or kernel < 1:
            raise ConfigError(f"resnet1d needs width, stages, blocks and kernel >= 1 (got {width}, "
                              f"{stages}, {blocks}, {kernel})")
        self.stem = nn.Sequential(
            nn.Conv1d(n_inputs, width, 15, stride=stem_stride, padding=7, bias=False),
            nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.MaxPool1d(2))
        layers: list[nn.Module] = []
        c = width
        for s in range(stages):
            out = width * min(2 ** s, 4)
            for b in range(blocks):
                layers.append(ResidualBlock1d(c, out, kernel, 2 if s > 0 and b == 0 else 1, dropout))
                c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.stem(x))
        return self.head(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1))


def build_resnet1d(n_inputs: int, n_outputs: int, *, width: int = 32, stages: int = 4,
                   blocks: int = 1, kernel: int = 7, dropout: float = 0.2, stem_stride: int = 4,
                   **_: Any) -> ResNet1d:
    """The network; window, rate and augmentation settings (`length_s`, `fs`, `augment`) are the
    dataset builder's and are ignored here."""
    return ResNet1d(n_inputs, n_outputs, width=int(width), stages=int(stages), blocks=int(blocks),
                    kernel=int(kernel), dropout=float(dropout), stem_stride=int(stem_stride))


def signal_channels(inputs: Any, params: dict[str, Any] | None = None) -> int:
    return 1


class RhythmFeatures:
    """scikit-learn transformer: each raw recording (1-D array at `fs` Hz) -> one row of rhythm
    features (`iatros.data.transforms.signals.RHYTHM_FEATURES`); nothing is learned."""

    def __init__(self, fs: float = FS) -> None:
        self.fs = fs

    def fit(self, x: Any, y: Any = None) -> RhythmFeatures:
        self.n_features_ = rhythm_feature_matrix(x[:1], self.fs).shape[1] if len(x) else 0
        return self

    def transform(self, x: Any) -> np.ndarray:
        return rhythm_feature_matrix(x, self.fs)

    def fit_transform(self, x: Any, y: Any = None) -> np.ndarray:
        out = self.transform(x)
        self.n_features_ = out.shape[1]
        return out

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"fs": self.fs}

    def set_params(self, **params: Any) -> RhythmFeatures:
        self.fs = params.get("fs", self.fs)
        return self


def build_hrv_gbm(kind: TargetKind, seed: int, fs: float = FS, max_iter: int = 300,
                  learning_rate: float = 0.05, max_leaf_nodes: int = 15) -> Any:
    """Rhythm features, then histogram gradient boosting (as `gbm`)."""
    from sklearn.pipeline import Pipeline

    from iatros.models.tabular import build_gbm

    gbm = build_gbm(kind, seed, max_iter=max_iter, learning_rate=learning_rate,
                    max_leaf_nodes=max_leaf_nodes)
    return Pipeline([("features", RhythmFeatures(fs=float(fs))), *gbm.steps])


register_model(ModelSpec(
    name="resnet1d", family="torch", modalities=(Modality.SIGNAL,), build=build_resnet1d,
    description="1-D residual CNN on the raw ECG (15-sample stride-4 stem, 4 stages of 7-sample "
                "residual blocks, width 16-64, average + max pooling over time); random-window "
                "and amplitude-scale augmentation",
    params={"width": 16, "stages": 4, "blocks": 1, "kernel": 7, "dropout": 0.2,
            "stem_stride": 4},
    train_defaults={"epochs": 24, "batch_size": 32, "lr": 3e-3, "weight_decay": 1e-3,
                    "patience": 8, "scheduler": "cosine"},
    dataset=signal_dataset, n_inputs=signal_channels, kinds=NETWORK_KINDS,
))
register_model(ModelSpec(
    name="hrv-gbm", family="sklearn", modalities=(Modality.SIGNAL,), build=build_hrv_gbm,
    description="Rhythm features (RR mean/SD/RMSSD/pNN50, RR irregularity and sample entropy, "
                "heart rate, beat-template agreement) from detected R-peaks, then histogram gradient "
                "boosting",
    params={"fs": FS, "max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15},
    kinds=ESTIMATOR_KINDS,
))
