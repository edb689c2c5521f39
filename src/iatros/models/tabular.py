"""Tabular models: an MLP with built-in imputation and scaling, and classical baselines."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import (
    ESTIMATOR_KINDS,
    NETWORK_KINDS,
    ModelSpec,
    fit_preprocessing,
    fit_target_scaling,
    register_model,
    target_tensor,
)
from iatros.models.scaling import fit_output_scaling

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "selu": nn.SELU, "gelu": nn.GELU}


class TabularMLP(nn.Module):
    """Feed-forward network; median imputation and standardisation live in its buffers.

    Keeping preprocessing inside the module makes a checkpoint self-contained: the saved
    state dict predicts on raw feature rows, NaNs included.
    """

    def __init__(self, n_inputs: int, n_outputs: int, hidden: tuple[int, ...] = (32,),
                 dropout: float = 0.3, activation: str = "relu", batch_norm: bool = True,
                 out_l2: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
        if out_l2 < 0:
            raise ConfigError(f"out_l2 must be >= 0, not {out_l2}")
        self.out_l2 = float(out_l2)
        self.register_buffer("center", torch.zeros(n_inputs))
        self.register_buffer("scale", torch.ones(n_inputs))
        self.register_buffer("fill", torch.zeros(n_inputs))
        self.register_buffer("out_center", torch.zeros(n_outputs))
        self.register_buffer("out_scale", torch.ones(n_outputs))
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), *([nn.BatchNorm1d(h)] if batch_norm else []),
                       ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def fit_preprocessing(self, x: np.ndarray) -> TabularMLP:
        """Learn imputation values and scaling from training rows only."""
        x = np.asarray(x, dtype=np.float64)
        all_missing = np.isnan(x).all(axis=0)
        fill = np.where(all_missing, 0.0, np.nanmedian(np.where(all_missing, 0.0, x), axis=0))
        filled = np.where(np.isnan(x), fill, x)
        center, scale = filled.mean(axis=0), filled.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        for name, value in (("fill", fill), ("center", center), ("scale", scale)):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        return self

    def fit_target_scaling(self, y: np.ndarray) -> TabularMLP:
        """For regression: predict in standard units internally, return the target's units."""
        fit_output_scaling(self.out_center, self.out_scale, y)
        return self

    def penalty(self) -> torch.Tensor | None:
        """`out_l2` times the squared output weights (DeepSurv's L2 term), added to the loss."""
        if not self.out_l2:
            return None
        return self.out_l2 * self.net[-1].weight.pow(2).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.fill, x)
        return self.net((x - self.center) / self.scale) * self.out_scale + self.out_center


def tabular_dataset(inputs: np.ndarray, targets: np.ndarray, kind: TargetKind, train: bool = False,
                    params: dict[str, Any] | None = None) -> TensorDataset:
    """Float feature rows and targets typed for the kind's loss."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    return TensorDataset(x, target_tensor(targets, kind))


def tabular_width(inputs: np.ndarray, params: dict[str, Any] | None = None) -> int:
    return int(np.asarray(inputs).shape[1])


def build_mlp(n_inputs: int, n_outputs: int, **params: Any) -> TabularMLP:
    params = dict(params)
    if "hidden" in params:
        params["hidden"] = tuple(params["hidden"])
    return TabularMLP(n_inputs, n_outputs, **params)


def build_logreg(kind: TargetKind, seed: int, C: float = 1.0) -> Any:
    """Median imputation, standardisation and L2 logistic / ridge regression."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = (LogisticRegression(C=C, max_iter=5000, random_state=seed) if kind.is_classification
            else Ridge(alpha=1.0 / C))
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), head)


class DropAllMissing:
    """Drop columns observed in fewer than 5 training rows: gradient boosting crashes on a column
    that is all missing in its internal training fraction, and learns nothing from so few."""

    min_observed = 5

    def fit(self, x: np.ndarray, y: Any = None) -> DropAllMissing:
        observed = (~np.isnan(np.asarray(x, dtype=np.float64))).sum(axis=0)
        self.keep_ = observed >= min(self.min_observed, max(1, int(observed.max(initial=0))))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, self.keep_]

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x).transform(x)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> DropAllMissing:
        return self


def build_gbm(kind: TargetKind, seed: int, max_iter: int = 300, learning_rate: float = 0.05,
              max_leaf_nodes: int = 15) -> Any:
    """Histogram gradient boosting with early stopping on an internal validation fraction."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if kind.is_classification else HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline

    return make_pipeline(DropAllMissing(), cls(
        max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=seed))


CV_SCORING = {TargetKind.BINARY: "roc_auc"}  # other kinds: the estimator's default (accuracy)


def build_logreg_cv(kind: TargetKind, seed: int, folds: int = 5) -> Any:
    """`logreg` with its L2 strength chosen by cross-validation on the training rows (grid
    1e-4..10): wide, correlated feature sets need far more shrinkage than C = 1."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grid = np.logspace(-4, 1, 11)
    head = (LogisticRegressionCV(Cs=grid, cv=folds, max_iter=5000, random_state=seed,
                                 scoring=CV_SCORING.get(kind)) if kind.is_classification
            else RidgeCV(alphas=1.0 / grid))
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), head)


def build_gbm_bag(kind: TargetKind, seed: int, bags: int = 5, max_iter: int = 2000,
                  learning_rate: float = 0.02, max_leaf_nodes: int = 31,
                  l2_regularization: float = 1.0) -> Any:
    """Soft vote of `bags` slower-learning boosting models, each early-stopped on its own internal
    validation fraction (different seeds): steadier than one model on a few thousand rows."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        VotingClassifier,
        VotingRegressor,
    )
    from sklearn.pipeline import make_pipeline

    regression = not kind.is_classification
    cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    members = [(f"gbm{k}", cls(max_iter=max_iter, learning_rate=learning_rate,
                               max_leaf_nodes=max_leaf_nodes, l2_regularization=l2_regularization,
                               early_stopping=True, validation_fraction=0.15, n_iter_no_change=40,
                               random_state=seed + k)) for k in range(bags)]
    vote = VotingRegressor(members) if regression else VotingClassifier(members, voting="soft")
    return make_pipeline(DropAllMissing(), vote)


register_model(ModelSpec(
    name="mlp", family="torch", modalities=(Modality.TABULAR, Modality.EHR), build=build_mlp,
    description="Perceptron (one hidden layer of 32, batch norm, dropout 0.3) with built-in "
                "imputation and scaling",
    params={"hidden": (32,), "dropout": 0.3, "batch_norm": True},
    train_defaults={"epochs": 100, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-2,
                    "patience": 30},
    dataset=tabular_dataset, n_inputs=tabular_width,
    kinds=NETWORK_KINDS, prepare=fit_preprocessing, scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="logreg", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR), build=build_logreg,
    description="L2 logistic regression (ridge for regression) after imputation and scaling",
    params={"C": 1.0},
    kinds=ESTIMATOR_KINDS,
))
register_model(ModelSpec(
    name="gbm", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR), build=build_gbm,
    description="Histogram gradient boosting (scikit-learn), native missing-value handling",
    params={"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15},
    kinds=ESTIMATOR_KINDS,
))
register_model(ModelSpec(
    name="logreg-cv", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR),
    build=build_logreg_cv,
    description="L2 logistic regression (ridge for regression) with its strength chosen by 5-fold "
                "cross-validation on training rows, after imputation and scaling",
    params={"folds": 5},
    kinds=ESTIMATOR_KINDS,
))
register_model(ModelSpec(
    name="gbm-bag", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR),
    build=build_gbm_bag,
    description="Five histogram gradient-boosting models (learning rate 0.02, 31 leaves, L2 1.0), "
                "each early-stopped on its own internal split, probabilities averaged",
    params={"bags": 5, "learning_rate": 0.02, "max_leaf_nodes": 31, "l2_regularization": 1.0},
    kinds=ESTIMATOR_KINDS,
))
