"""Multi-omics models: one small encoder per omic and a fusion of their embeddings, plus an
elastic-net and a gradient-boosting baseline on the concatenated omics.

- `omics-fusion`: per omic, a variance filter (the `max_features` most variable features on the
  training samples), median imputation and standardisation kept in buffers (fitted by the
  `prepare` hook on training samples only), then a two-layer perceptron to a `latent` embedding.
  `fusion` joins the embeddings of the omics a sample has:
  `concat` (intermediate concatenation: embeddings side by side, an absent omic's slot zeroed
  and flagged by a mask bit the head reads), `mean` (late fusion: one classifier per omic, logits
  averaged over the omics present), `attention` (a learned score per embedding, softmax over the
  omics present) or `gated` (a sigmoid gate per embedding unit, gated embeddings averaged over
  the omics present). An omic whose block is all missing in a row is absent: a mask, never
  zeros passed off as measurements. During training each present omic is hidden with
  probability `modality_dropout` (at least one kept per sample), so the network learns to
  predict from any subset, e.g. test samples without protein.
- `omics-enet`: median imputation, a near-zero-variance filter, standardisation (all fitted on
  training samples) and elastic-net logistic regression (ridge-like elastic net for regression).
- `omics-gbm`: the same filter, then histogram gradient boosting, which handles missing values
  natively.
The baselines see an absent omic as missing cells (imputed with the training median by the
elastic net), since a flat estimator has no notion of a missing block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.data.transforms.omics import (
    block_slices,
    blocks_of,
    fit_block_scaling,
    omics_dataset,
    omics_width,
)
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import (
    ModelSpec,
    fit_preprocessing,
    fit_target_scaling,
    register_model,
)
from iatros.models.scaling import fit_output_scaling

FUSIONS = ("concat", "mean", "attention", "gated")
OMICS_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL,
               TargetKind.REGRESSION, TargetKind.SURVIVAL)  # survival: under a Cox head
ESTIMATOR_OMICS_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.REGRESSION)


class OmicsFusion(nn.Module):
    """Per-omic encoders and a fusion of the embeddings of the omics each sample has."""

    def __init__(self, n_inputs: int, n_outputs: int, blocks: list[tuple[str, int]],
                 max_features: int = 2000, hidden: int = 64, latent: int = 32,
                 dropout: float = 0.3, fusion: str = "attention",
                 modality_dropout: float = 0.25) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ConfigError(f"modality_dropout must be in [0, 1), not {modality_dropout}")
        if max_features < 1 or hidden < 1 or latent < 1:
            raise ConfigError(f"max_features, hidden and latent must be >= 1 (got "
                              f"{max_features}, {hidden}, {latent})")
        self.blocks = [(str(n), int(w)) for n, w in blocks]
        if sum(w for _, w in self.blocks) != n_inputs:
            raise ConfigError(f"omics blocks {self.blocks} do not add up to {n_inputs} inputs")
        self.slices = block_slices(self.blocks)
        self.widths = [min(int(max_features), w) for _, w in self.blocks]
        self.fusion, self.modality_dropout = fusion, float(modality_dropout)
        for k, width in enumerate(self.widths):
            self.register_buffer(f"keep{k}", torch.arange(width, dtype=torch.long))
            self.register_buffer(f"fill{k}", torch.zeros(width))
            self.register_buffer(f"center{k}", torch.zeros(width))
            self.register_buffer(f"scale{k}", torch.ones(width))
        self.register_buffer("out_center", torch.zeros(n_outputs))
        self.register_buffer("out_scale", torch.ones(n_outputs))
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(w, hidden), nn.ReLU(), nn.Dropout(dropout),
                          nn.Linear(hidden, latent), nn.ReLU()) for w in self.widths)
        n = len(self.blocks)
        if fusion == "mean":
            self.heads = nn.ModuleList(nn.Linear(latent, n_outputs) for _ in range(n))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(
                latent * n + n if fusion == "concat" else latent, n_outputs))
        if fusion == "attention":
            self.score = nn.Sequential(nn.Linear(latent, latent), nn.Tanh(),
                                       nn.Linear(latent, 1))
        if fusion == "gated":
            self.gates = nn.ModuleList(nn.Linear(latent, latent) for _ in range(n))

    def _block_stats(self, k: int) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f"{name}{k}") for name in ("keep", "fill", "center", "scale"))

    def fit_preprocessing(self, x: Any) -> OmicsFusion:
        """Variance filter, medians and scale per omic, from training samples only."""
        x = np.asarray(x, dtype=np.float64)
        for k, (cols, width) in enumerate(zip(self.slices, self.widths, strict=True)):
            fitted = fit_block_scaling(x[:, cols], width)
            for name, value in (("keep", fitted.keep), ("fill", fitted.fill),
                                ("center", fitted.center), ("scale", fitted.scale)):
                buffer = getattr(self, f"{name}{k}")
                buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))
        return self

    def fit_target_scaling(self, y: Any) -> OmicsFusion:
        """For regression: predict in standard units inside, return the target's units."""
        fit_output_scaling(self.out_center, self.out_scale, y)
        return self

    def present(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, omics) True where the sample has at least one value of the omic."""
        return torch.stack([~torch.isnan(x[:, cols]).all(dim=1) for cols in self.slices], dim=1)

    def standardised(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Omic k's kept features, imputed and standardised with the training statistics."""
        keep, fill, center, scale = self._block_stats(k)
        block = x[:, self.slices[k]][:, keep]
        return (torch.where(torch.isnan(block), fill, block) - center) / scale

    def reference_input(self, x: torch.Tensor) -> torch.Tensor:
        """The baseline of integrated gradients: `x` with every kept feature at its training
        mean (0 after standardisation); missing cells and absent omics stay missing."""
        ref = x.clone()
        for k, cols in enumerate(self.slices):
            keep, _, center, _ = self._block_stats(k)
            index = keep + cols.start
            ref[:, index] = torch.where(torch.isnan(x[:, index]), x[:, index],
                                        center.to(x.dtype).expand(len(x), -1))
        return ref

    def _drop_modalities(self, mask: torch.Tensor) -> torch.Tensor:
        """Training only: hide each present omic with probability `modality_dropout`, keeping
        at least one per sample."""
        if not self.training or self.modality_dropout <= 0 or mask.shape[1] < 2:
            return mask
        kept = mask & (torch.rand(mask.shape, device=mask.device) >= self.modality_dropout)
        return torch.where(kept.any(dim=1, keepdim=True), kept, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._drop_modalities(self.present(x))
        weights = mask.to(x.dtype)
        h = torch.stack([encoder(self.standardised(x, k))
                         for k, encoder in enumerate(self.encoders)], dim=1)  # (B, omics, latent)
        h = h * weights[..., None]
        count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        if self.fusion == "mean":
            logits = torch.stack([head(h[:, k]) for k, head in enumerate(self.heads)], dim=1)
            z = (logits * weights[..., None]).sum(dim=1) / count
        elif self.fusion == "concat":
            z = self.head(torch.cat([h.flatten(1), weights], dim=1))
        elif self.fusion == "attention":
            score = self.score(h).squeeze(-1)
            score = score.masked_fill(~mask, torch.finfo(score.dtype).min)
            alpha = torch.softmax(score, dim=1) * weights
            z = self.head((alpha[..., None] * h).sum(dim=1))
        else:
            gated = torch.stack([torch.sigmoid(gate(h[:, k])) * h[:, k]
                                 for k, gate in enumerate(self.gates)], dim=1)
            z = self.head((gated * weights[..., None]).sum(dim=1) / count)
        return z * self.out_scale + self.out_center


def build_omics_fusion(n_inputs: int, n_outputs: int, *, blocks: Any = None,
                       max_features: int = 2000, hidden: int = 64, latent: int = 32,
                       dropout: float = 0.3, fusion: str = "attention",
                       modality_dropout: float = 0.25) -> OmicsFusion:
    """The network; `blocks` ([[name, width], ...]) is the task's omics layout."""
    return OmicsFusion(n_inputs, n_outputs, blocks_of({"blocks": blocks}, n_inputs),
                       max_features=int(max_features), hidden=int(hidden), latent=int(latent),
                       dropout=float(dropout), fusion=str(fusion),
                       modality_dropout=float(modality_dropout))


def build_omics_enet(kind: TargetKind, seed: int, C: float = 0.1, l1_ratio: float = 0.5,
                     max_iter: int = 5000) -> Any:
    """Median imputation, near-zero-variance filter, standardisation, elastic net."""
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import ElasticNet, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = (LogisticRegression(C=float(C), l1_ratio=float(l1_ratio), solver="saga",
                               max_iter=int(max_iter), random_state=seed)
            if kind.is_classification
            else ElasticNet(alpha=1.0 / float(C) / 100, l1_ratio=float(l1_ratio),
                            max_iter=int(max_iter), random_state=seed))
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         VarianceThreshold(1e-8), StandardScaler(), head)


def build_omics_gbm(kind: TargetKind, seed: int, max_iter: int = 300, learning_rate: float = 0.05,
                    max_leaf_nodes: int = 15) -> Any:
    """Near-zero-variance filter, then histogram gradient boosting (missing values native)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import make_pipeline

    cls = HistGradientBoostingClassifier if kind.is_classification else HistGradientBoostingRegressor
    return make_pipeline(VarianceThreshold(1e-8), cls(
        max_iter=int(max_iter), learning_rate=float(learning_rate),
        max_leaf_nodes=int(max_leaf_nodes), early_stopping=True, validation_fraction=0.15,
        n_iter_no_change=20, random_state=seed))


register_model(ModelSpec(
    name="omics-fusion", family="torch", modalities=(Modality.OMICS,), build=build_omics_fusion,
    description="One perceptron encoder per omic (the 2000 most variable training features, "
                "imputed and standardised inside), fused by attention over the omics a sample "
                "has (`fusion`: concat, mean, attention, gated), modality dropout 0.25",
    params={"blocks": None, "max_features": 2000, "hidden": 64, "latent": 32, "dropout": 0.3,
            "fusion": "attention", "modality_dropout": 0.25},
    train_defaults={"epochs": 100, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-2,
                    "patience": 20},
    dataset=omics_dataset, n_inputs=omics_width, kinds=OMICS_KINDS,
    prepare=fit_preprocessing, scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="omics-enet", family="sklearn", modalities=(Modality.OMICS,), build=build_omics_enet,
    description="Elastic-net logistic regression (C 0.1, l1_ratio 0.5, saga) on the concatenated "
                "omics after median imputation, a near-zero-variance filter and standardisation",
    params={"C": 0.1, "l1_ratio": 0.5},
    kinds=ESTIMATOR_OMICS_KINDS,
))
register_model(ModelSpec(
    name="omics-gbm", family="sklearn", modalities=(Modality.OMICS,), build=build_omics_gbm,
    description="Histogram gradient boosting on the concatenated omics (missing values native), "
                "early-stopped on an internal 15%",
    params={"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15},
    kinds=ESTIMATOR_OMICS_KINDS,
))
