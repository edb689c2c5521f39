"""Heartbeat models: rows of RR features followed by the beat's samples (`data.signals.beats`).

`beat-logreg` fits class-balanced logistic regression on the RR features and a
QRS / T-wave summary: RR prematurity tells S beats apart, morphology V and F beats, and a linear
rule on few features carries across patients (de Chazal et al. 2004). `beat-gbm` adds the
waveform averaged to 60 Hz and fits sqrt-balanced gradient boosting, which fits each training
patient's beats more closely.

`beat-cnn` (the task's default: the best macro F1 of the three by record-level cross-validation
over DS1 in benchmarks/signals.py) reads the same rows: three convolutions over the waveform and
a small layer on the log RR features, joined before the head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from torch import nn

from iatros.data.signals.beats import BEATS_FS, BEFORE_S, RR_FEATURES
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import ModelSpec, register_model
from iatros.models.tabular import tabular_dataset, tabular_width

N_RR = len(RR_FEATURES)
BEAT_KINDS = frozenset({TargetKind.BINARY, TargetKind.MULTICLASS})
MORPHOLOGY = ("qrs_max", "qrs_min", "qrs_range", "qrs_area", "t_max", "t_min", "wave_energy")


def morphology(waves: np.ndarray, fs: float = BEATS_FS, step: int = 6) -> np.ndarray:
    """(n, ceil(width / step) + len(MORPHOLOGY)): the waveform averaged over `step` samples,
    then QRS (R +- 0.1 s) and T-wave (R + 0.15..0.4 s) extremes, QRS area and energy."""
    waves = np.nan_to_num(np.asarray(waves, dtype=np.float64))
    n, width = waves.shape
    pad = (-width) % step
    coarse = np.pad(waves, ((0, 0), (0, pad)), mode="edge").reshape(n, -1, step).mean(axis=2)
    r = int(round(BEFORE_S * fs))
    qrs = waves[:, max(0, r - int(0.1 * fs)):r + int(0.1 * fs)]
    t = waves[:, r + int(0.15 * fs):r + int(0.40 * fs)]
    if qrs.shape[1] == 0 or t.shape[1] == 0:
        raise ConfigError(f"beat windows of {width} samples are too short for morphology at {fs:g} Hz")
    summary = np.column_stack([qrs.max(1), qrs.min(1), qrs.max(1) - qrs.min(1),
                               np.abs(qrs).sum(1) / fs, t.max(1), t.min(1), (waves ** 2).mean(1)])
    return np.hstack([coarse, summary])


class BeatFeatures:
    """scikit-learn transformer: beat rows -> RR features + `morphology` (without the coarse
    waveform when `waveform` is False); nothing is learned."""

    def __init__(self, n_rr: int = N_RR, fs: float = BEATS_FS, waveform: bool = True) -> None:
        self.n_rr, self.fs, self.waveform = n_rr, fs, waveform

    def fit(self, x: Any, y: Any = None) -> BeatFeatures:
        self.n_features_ = self.transform(np.asarray(x)[:1]).shape[1]
        return self

    def transform(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] <= self.n_rr:
            raise ConfigError(f"beat models need rows of {self.n_rr} RR features then the beat's "
                              f"samples; got shape {x.shape}")
        shape = morphology(x[:, self.n_rr:], self.fs)
        return np.hstack([x[:, :self.n_rr], shape if self.waveform else shape[:, -len(MORPHOLOGY):]])

    def fit_transform(self, x: Any, y: Any = None) -> np.ndarray:
        return self.fit(x).transform(x)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"n_rr": self.n_rr, "fs": self.fs, "waveform": self.waveform}

    def set_params(self, **params: Any) -> BeatFeatures:
        self.n_rr = params.get("n_rr", self.n_rr)
        self.fs = params.get("fs", self.fs)
        self.waveform = params.get("waveform", self.waveform)
        return self


class SqrtBalancedGBM(HistGradientBoostingClassifier):
    """Histogram gradient boosting whose rows weigh sqrt(largest class count / their class's
    count), the weighting `beat-cnn`'s loss uses: full inverse frequency would let the handful of
    Q beats in DS1 weigh as much as all 45,000 N beats."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SqrtBalancedGBM:
        y = np.asarray(y)
        _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        weight = np.sqrt(counts.max() / counts)[inverse]
        if sample_weight is not None:
            weight = weight * np.asarray(sample_weight, dtype=np.float64)
        return super().fit(X, y, sample_weight=weight)


def build_beat_gbm(kind: TargetKind, seed: int, max_iter: int = 400, learning_rate: float = 0.05,
                   max_leaf_nodes: int = 31, l2_regularization: float = 1.0) -> Any:
    """`BeatFeatures`, then `SqrtBalancedGBM`."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", BeatFeatures()), ("gbm", SqrtBalancedGBM(
        max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        l2_regularization=l2_regularization, early_stopping=True, validation_fraction=0.15,
        n_iter_no_change=30, random_state=seed))])


def build_beat_logreg(kind: TargetKind, seed: int, C: float = 1.0) -> Any:
    """RR features and the morphology summary (no waveform samples), standardised, then
    logistic regression with inverse-frequency class weights: a linear rule on few features,
    as de Chazal's discriminants, carries across patients better than trees on the waveform."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("features", BeatFeatures(waveform=False)), ("scale", StandardScaler()),
                     ("logreg", LogisticRegression(C=C, class_weight="balanced", max_iter=3000,
                                                   random_state=seed))])


class BeatNet(nn.Module):
    """Convolutions over the beat's samples and a linear layer over log RR features, joined."""

    def __init__(self, n_inputs: int, n_outputs: int, n_rr: int = N_RR, width: int = 32,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if n_inputs <= n_rr or width < 1:
            raise ConfigError(f"beat-cnn needs rows of {n_rr} RR features then samples (got "
                              f"{n_inputs} columns) and width >= 1")
        self.n_rr = n_rr

        def block(c_in: int, c_out: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=False),
                                 nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))

        self.wave = nn.Sequential(block(1, width // 2 or 1, 7), nn.MaxPool1d(2),
                                  block(width // 2 or 1, width, 5), nn.MaxPool1d(2),
                                  block(width, 2 * width, 5))
        self.rr = nn.Sequential(nn.BatchNorm1d(n_rr), nn.Linear(n_rr, width), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(5 * width, 2 * width),
                                  nn.ReLU(inplace=True), nn.Linear(2 * width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nan_to_num(x.float(), nan=1.0)
        rr = torch.log(x[:, :self.n_rr].clamp(min=1e-2))
        h = self.wave(x[:, None, self.n_rr:])
        return self.head(torch.cat([h.mean(dim=-1), h.amax(dim=-1), self.rr(rr)], dim=1))


def build_beat_cnn(n_inputs: int, n_outputs: int, *, n_rr: int = N_RR, width: int = 32,
                   dropout: float = 0.3, **_: Any) -> BeatNet:
    return BeatNet(n_inputs, n_outputs, n_rr=int(n_rr), width=int(width), dropout=float(dropout))


register_model(ModelSpec(
    name="beat-logreg", family="sklearn", modalities=(Modality.BEATS,), build=build_beat_logreg,
    description="RR intervals (pre, post, local and 5-minute means, ratios) and a QRS / T-wave "
                "summary, standardised, then class-balanced logistic regression",
    params={"C": 1.0}, kinds=BEAT_KINDS,
))
register_model(ModelSpec(
    name="beat-gbm", family="sklearn", modalities=(Modality.BEATS,), build=build_beat_gbm,
    description="RR intervals (pre, post, local and 5-minute means, ratios) and beat morphology "
                "(waveform at 60 Hz, QRS and T extremes, area), then histogram gradient boosting "
                "with sqrt inverse-frequency class weights",
    params={"max_iter": 400, "learning_rate": 0.05, "max_leaf_nodes": 31,
            "l2_regularization": 1.0},
    kinds=BEAT_KINDS,
))
register_model(ModelSpec(
    name="beat-cnn", family="torch", modalities=(Modality.BEATS,), build=build_beat_cnn,
    description="Three 1-D convolutions over the beat (-0.25..+0.4 s) joined with a layer on log "
                "RR features; class-weighted cross-entropy",
    params={"n_rr": N_RR, "width": 32, "dropout": 0.3},
    train_defaults={"epochs": 15, "batch_size": 256, "lr": 2e-3, "weight_decay": 1e-3,
                    "patience": 5, "scheduler": "cosine"},
    dataset=tabular_dataset, n_inputs=tabular_width, kinds=BEAT_KINDS,
))
