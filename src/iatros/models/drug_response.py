"""Drug-response models: inputs are a cell line's features followed by one column holding the
drug's index (`tasks.drug_response`), the target a response such as log IC50.

- `drug-response-net`: a perceptron encoder of the line's features (standardised with training
  statistics kept in buffers), a learned embedding and bias per drug, and a head on the line
  embedding, the drug embedding and their product, so that what the lines share is learned
  once across drugs. The output is each drug's training mean plus its SD times the head's value,
  and training divides the gradient by that SD (`per_drug_scale`), so the squared error counts in
  each drug's own SD units: a drug whose responses spread little is learnt as well as one whose
  responses spread widely, which is what ranking lines within each drug needs; the forward pass
  still returns the response's units. A drug not seen in training (or an index past the table) is read as the
  "unknown drug" entry, which training teaches by hiding each pair's drug with probability
  `drug_dropout`: a new drug gets the response to drugs in general, never an untrained vector.
- `drug-mixed`: a multilevel model: each drug's mean, its lines' group effects (GDSC: the
  tissue, the leading one-hot block of the features) as the group's mean standardised response
  shrunk towards the drug's mean by `group_prior` pseudo-lines (partial pooling), and on what
  the group leaves a sparse genomic model per drug (an elastic net with one penalty in the
  drug's SD units for every drug, not one cross-validated per drug). A new drug gets the
  group's effect across drugs.
- `drug-enet`: the classical comparator of drug-response studies: one elastic net per drug on
  the standardised line features, its penalty chosen by inner cross-validation on the drug's
  training lines; a drug without one (unseen, or too few lines) gets a pooled elastic net of
  each training line's mean response after subtracting each drug's mean (what sensitises a line
  to drugs in general), plus the mean of the drug means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from iatros.data.transforms.omics import omics_dataset, omics_width
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import (
    ModelSpec,
    fit_preprocessing,
    fit_target_scaling,
    register_model,
)
from iatros.models.scaling import fit_output_scaling

MAX_DRUGS = 1024
MIN_LINES = 20  # a drug's own elastic net needs this many training lines


def leading_onehot(features: np.ndarray) -> int:
    """The width of the leading block of 0/1 columns with exactly one 1 in every row (a one-hot
    coded group such as the tissue); 0 when there is none."""
    width, total = 0, np.zeros(len(features))
    for j in range(features.shape[1]):
        column = features[:, j]
        if not np.isin(column, (0.0, 1.0)).all():
            break
        total += column
        if (total > 1).any():
            break
        if (total == 1).all():
            width = j + 1
    return width


def _center_scale(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training means and SDs of the line features (a missing mean is 0, an SD of 0 is 1)."""
    sd = np.nanstd(features, axis=0)
    return np.nan_to_num(np.nanmean(features, axis=0)), np.where(sd > 1e-12, sd, 1.0)


def _check_drugs(drugs: np.ndarray, capacity: int) -> None:
    bad = (drugs < 0) | (drugs >= capacity) | (drugs != np.round(drugs))
    if bad.any():
        raise ConfigError(f"drug index {float(drugs[bad][0]):g} (last input column) must be a whole "
                          f"number in [0, {capacity}); raise `n_drugs` for more drugs")


class DrugResponseNet(nn.Module):
    """Line encoder x drug embedding; unseen drugs read as the learned unknown drug."""

    def __init__(self, n_inputs: int, n_outputs: int, n_drugs: int = MAX_DRUGS,
                 hidden: int = 256, latent: int = 64, dropout: float = 0.3,
                 drug_dropout: float = 0.1, per_drug_scale: bool = True) -> None:
        super().__init__()
        if n_inputs < 2 or n_drugs < 1 or hidden < 1 or latent < 1:
            raise ConfigError(f"drug-response-net needs line features and a drug column "
                              f"(n_inputs {n_inputs}) and positive n_drugs, hidden, latent")
        if not 0.0 <= drug_dropout < 1.0:
            raise ConfigError(f"drug_dropout must be in [0, 1), not {drug_dropout}")
        width = n_inputs - 1
        self.n_drugs, self.drug_dropout = int(n_drugs), float(drug_dropout)
        self.per_drug_scale = bool(per_drug_scale)
        self.register_buffer("center", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.register_buffer("seen", torch.zeros(self.n_drugs, dtype=torch.bool))
        self.register_buffer("out_center", torch.zeros(n_outputs))
        self.register_buffer("out_scale", torch.ones(n_outputs))
        # each drug's training mean and SD of the response (the last row: the unknown drug)
        self.register_buffer("drug_center", torch.zeros(self.n_drugs + 1, n_outputs))
        self.register_buffer("drug_scale", torch.ones(self.n_drugs + 1, n_outputs))
        self._train_drugs: np.ndarray | None = None
        self.encoder = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, latent), nn.ReLU())
        self.embedding = nn.Embedding(self.n_drugs + 1, latent)
        self.bias = nn.Embedding(self.n_drugs + 1, n_outputs)
        nn.init.normal_(self.embedding.weight, std=0.1)
        nn.init.zeros_(self.bias.weight)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(3 * latent, hidden // 4 or 1),
                                  nn.ReLU(), nn.Linear(hidden // 4 or 1, n_outputs))

    def fit_preprocessing(self, x: Any) -> DrugResponseNet:
        """Feature means and SDs, and which drugs training has, from training pairs only."""
        x = np.asarray(x, dtype=np.float64)
        drugs = x[:, -1]
        _check_drugs(drugs, self.n_drugs)
        center, scale = _center_scale(x[:, :-1])
        self.center.copy_(torch.as_tensor(center, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        seen = torch.zeros(self.n_drugs, dtype=torch.bool)
        seen[torch.as_tensor(np.unique(drugs).astype(np.int64))] = True
        self.seen.copy_(seen)
        self._train_drugs = drugs.astype(np.int64)
        return self

    def fit_target_scaling(self, y: Any) -> DrugResponseNet:
        """The response's overall scale, and each training drug's mean and SD (the rows of `y`
        are the training rows `fit_preprocessing` saw, in order; the pipeline calls it first)."""
        fit_output_scaling(self.out_center, self.out_scale, y)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        drugs = self._train_drugs
        if drugs is None or len(drugs) != len(y):
            raise ConfigError("drug-response-net: fit_preprocessing must see the training rows "
                              "before fit_target_scaling")
        center = np.tile(self.out_center.numpy(), (self.n_drugs + 1, 1)).astype(np.float64)
        scale = np.tile(self.out_scale.numpy(), (self.n_drugs + 1, 1)).astype(np.float64)
        means, sds = [], []
        for d in np.unique(drugs):
            rows = y[drugs == d]
            center[d] = rows.mean(axis=0)
            sd = rows.std(axis=0)
            scale[d] = np.where(sd > 1e-6, sd, scale[d])
            means.append(center[d])
            sds.append(scale[d])
        center[self.n_drugs], scale[self.n_drugs] = np.mean(means, axis=0), np.mean(sds, axis=0)
        self.drug_center.copy_(torch.as_tensor(center, dtype=torch.float32))
        self.drug_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self._train_drugs = None  # needed only for this fit
        return self

    def drug_index(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding row of each pair: its drug, or the unknown drug (unseen in training,
        out of range, or hidden by drug dropout while training)."""
        raw = x[:, -1]
        index = torch.nan_to_num(raw, nan=-1.0).round().long()
        valid = (index >= 0) & (index < self.n_drugs)
        known = valid & self.seen[index.clamp(0, self.n_drugs - 1)]
        if self.training and self.drug_dropout > 0:
            known &= torch.rand(known.shape, device=x.device) >= self.drug_dropout
        return torch.where(known, index, torch.full_like(index, self.n_drugs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.nan_to_num((x[:, :-1] - self.center) / self.scale)
        drugs = self.drug_index(x)
        h, e = self.encoder(features), self.embedding(drugs)
        z = self.head(torch.cat([h, e, h * e], dim=1)) + self.bias(drugs)
        if not self.per_drug_scale:
            return z * self.out_scale + self.out_center
        scale = self.drug_scale[drugs]
        out = z * scale + self.drug_center[drugs]
        if self.training:
            # the value stays in the response's units; the gradient reaching z is divided by the
            # drug's SD twice over, as if the squared error were taken in each drug's SD units
            out = out.detach() + (z - z.detach()) / scale
        return out


def build_drug_response_net(n_inputs: int, n_outputs: int, *, n_drugs: int = MAX_DRUGS,
                            hidden: int = 256, latent: int = 64, dropout: float = 0.3,
                            drug_dropout: float = 0.1,
                            per_drug_scale: bool = True) -> DrugResponseNet:
    return DrugResponseNet(n_inputs, n_outputs, n_drugs=int(n_drugs), hidden=int(hidden),
                           latent=int(latent), dropout=float(dropout),
                           drug_dropout=float(drug_dropout), per_drug_scale=bool(per_drug_scale))


class PerDrugElasticNet(RegressorMixin, BaseEstimator):
    """One cross-validated elastic net per drug (last input column), a pooled one for the rest."""

    def __init__(self, l1_ratio: float = 0.5, n_alphas: int = 20, cv: int = 3,
                 min_lines: int = MIN_LINES, max_iter: int = 5000, random_state: int = 0,
                 n_jobs: int | None = -1) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.cv = cv
        self.min_lines = min_lines
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _net(self) -> Any:
        from sklearn.linear_model import ElasticNetCV

        return ElasticNetCV(l1_ratio=float(self.l1_ratio), alphas=int(self.n_alphas),
                            cv=int(self.cv), max_iter=int(self.max_iter),
                            random_state=int(self.random_state), n_jobs=self.n_jobs)

    def _features(self, x: np.ndarray) -> np.ndarray:
        return np.nan_to_num((x[:, :-1] - self.center_) / self.scale_)

    def fit(self, x: Any, y: Any) -> PerDrugElasticNet:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from tqdm.auto import tqdm

        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64).ravel()
        drugs = x[:, -1]
        _check_drugs(drugs, np.iinfo(np.int32).max)
        self.center_, self.scale_ = _center_scale(x[:, :-1])
        features = self._features(x)
        ids = np.unique(drugs).astype(np.int64)
        means = np.array([y[drugs == d].mean() for d in ids])
        self.drugs_, self.estimators_ = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for d in tqdm(ids, desc="elastic net per drug", unit="drug", disable=None,
                          leave=False):
                rows = drugs == d
                if rows.sum() >= max(int(self.min_lines), int(self.cv) + 1):
                    self.drugs_.append(int(d))
                    self.estimators_.append(self._net().fit(features[rows], y[rows]))
            # general sensitivity: each line's mean drug-centred response (the rows of a line
            # share its features, so this is the pairs' least-squares fit weighted per line)
            centred = y - means[np.searchsorted(ids, drugs.astype(np.int64))]
            lines, line_of = np.unique(features, axis=0, return_inverse=True)
            sums = np.bincount(line_of.ravel(), weights=centred, minlength=len(lines))
            counts = np.bincount(line_of.ravel(), minlength=len(lines))
            self.pooled_ = self._net().fit(lines, sums / counts)
        self.mean_of_means_ = float(means.mean())
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        features = self._features(x)
        out = self.pooled_.predict(features) + self.mean_of_means_
        drugs = x[:, -1]
        for d, model in zip(self.drugs_, self.estimators_, strict=True):
            rows = drugs == d
            if rows.any():
                out[rows] = model.predict(features[rows])
        return out


class PerDrugMixedModel(RegressorMixin, BaseEstimator):
    """Drug mean + partially pooled group (tissue) effect + a sparse genomic residual per drug."""

    def __init__(self, group_columns: int = -1, group_prior: float = 20.0, alpha: float = 0.3,
                 l1_ratio: float = 0.5, min_lines: int = MIN_LINES,
                 max_iter: int = 5000) -> None:
        self.group_columns = group_columns
        self.group_prior = group_prior
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.min_lines = min_lines
        self.max_iter = max_iter

    def _groups(self, features: np.ndarray) -> np.ndarray:
        n = self.n_groups_
        if n == 0:
            return np.zeros(len(features), dtype=np.int64)
        block = features[:, :n] == 1
        return np.where(block.any(axis=1), block.argmax(axis=1), n)

    def fit(self, x: Any, y: Any) -> PerDrugMixedModel:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import ElasticNet
        from tqdm.auto import tqdm

        if self.group_prior < 0 or self.alpha <= 0 or not 0 <= self.l1_ratio <= 1:
            raise ConfigError(f"drug-mixed needs group_prior >= 0, alpha > 0 and l1_ratio in "
                              f"[0, 1]; got {self.group_prior}, {self.alpha}, {self.l1_ratio}")
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64).ravel()
        drugs = x[:, -1]
        _check_drugs(drugs, np.iinfo(np.int32).max)
        drugs, raw = drugs.astype(np.int64), x[:, :-1]
        if int(self.group_columns) > raw.shape[1]:
            raise ConfigError(f"drug-mixed: group_columns {self.group_columns} is more than the "
                              f"{raw.shape[1]} feature columns (-1: the leading one-hot block)")
        self.n_groups_ = (leading_onehot(raw) if int(self.group_columns) < 0
                          else int(self.group_columns))
        self.center_, self.scale_ = _center_scale(raw)
        features, groups = np.nan_to_num((raw - self.center_) / self.scale_), self._groups(raw)
        self.drugs_ = np.unique(drugs)
        slot = np.searchsorted(self.drugs_, drugs)
        self.means_ = np.array([y[drugs == d].mean() for d in self.drugs_])
        sds = np.array([y[drugs == d].std() for d in self.drugs_])
        self.sds_ = np.where(sds > 1e-6, sds, 1.0)
        standard = (y - self.means_[slot]) / self.sds_[slot]
        width, prior = self.n_groups_ + 1, float(self.group_prior) + 1e-12
        index = slot * width + groups
        sums = np.bincount(index, weights=standard, minlength=len(self.drugs_) * width)
        counts = np.bincount(index, minlength=len(self.drugs_) * width)
        self.effects_ = (sums / (counts + prior)).reshape(len(self.drugs_), width)
        self.pooled_effects_ = (np.bincount(groups, weights=standard, minlength=width)
                                / (np.bincount(groups, minlength=width) + prior))
        self.effects_[:, -1] = self.pooled_effects_[-1] = 0.0  # rows in no group
        residual = standard - self.effects_[slot, groups]
        self.coefs_ = np.zeros((len(self.drugs_), features.shape[1]))
        self.intercepts_ = np.zeros(len(self.drugs_))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in tqdm(range(len(self.drugs_)), desc="genomic model per drug", unit="drug",
                          disable=None, leave=False):
                rows = slot == k
                if rows.sum() >= int(self.min_lines):
                    net = ElasticNet(alpha=float(self.alpha), l1_ratio=float(self.l1_ratio),
                                     max_iter=int(self.max_iter)).fit(features[rows],
                                                                      residual[rows])
                    self.coefs_[k], self.intercepts_[k] = net.coef_, net.intercept_
        self.mean_of_means_, self.mean_sd_ = float(self.means_.mean()), float(self.sds_.mean())
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        raw, drugs = x[:, :-1], np.nan_to_num(x[:, -1], nan=-1.0)
        features, groups = np.nan_to_num((raw - self.center_) / self.scale_), self._groups(raw)
        slot = np.searchsorted(self.drugs_, drugs).clip(0, len(self.drugs_) - 1)
        known = self.drugs_[slot] == drugs
        out = self.mean_of_means_ + self.mean_sd_ * self.pooled_effects_[groups]
        k, rows = slot[known], np.flatnonzero(known)
        genomic = np.einsum("ij,ij->i", features[rows], self.coefs_[k]) + self.intercepts_[k]
        out[rows] = self.means_[k] + self.sds_[k] * (self.effects_[k, groups[rows]] + genomic)
        return out


def build_drug_mixed(kind: TargetKind, seed: int, group_columns: int = -1,
                     group_prior: float = 20.0, alpha: float = 0.3, l1_ratio: float = 0.5,
                     min_lines: int = MIN_LINES, max_iter: int = 5000) -> PerDrugMixedModel:
    return PerDrugMixedModel(group_columns=int(group_columns), group_prior=float(group_prior),
                             alpha=float(alpha), l1_ratio=float(l1_ratio),
                             min_lines=int(min_lines), max_iter=int(max_iter))


def build_drug_enet(kind: TargetKind, seed: int, l1_ratio: float = 0.5, n_alphas: int = 20,
                    cv: int = 3, min_lines: int = MIN_LINES, max_iter: int = 5000,
                    n_jobs: int | None = -1) -> PerDrugElasticNet:
    return PerDrugElasticNet(l1_ratio=float(l1_ratio), n_alphas=int(n_alphas), cv=int(cv),
                             min_lines=int(min_lines), max_iter=int(max_iter), random_state=seed,
                             n_jobs=n_jobs)


register_model(ModelSpec(
    name="drug-response-net", family="torch", modalities=(Modality.DRUG_RESPONSE,),
    build=build_drug_response_net,
    description="Cell-line encoder (256-64 perceptron on the standardised features) with a "
                "learned embedding and bias per drug, each drug's errors weighed in its own SD "
                "units; unseen drugs use a learned unknown-drug entry (drug dropout 0.1)",
    params={"n_drugs": MAX_DRUGS, "hidden": 256, "latent": 64, "dropout": 0.3,
            "drug_dropout": 0.1, "per_drug_scale": True},
    train_defaults={"epochs": 40, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4,
                    "patience": 8},
    dataset=omics_dataset, n_inputs=omics_width, kinds=(TargetKind.REGRESSION,),
    prepare=fit_preprocessing, scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="drug-mixed", family="sklearn", modalities=(Modality.DRUG_RESPONSE,),
    build=build_drug_mixed,
    description="Multilevel model: each drug's mean, its tissue effects shrunk by partial "
                "pooling (20 pseudo-lines), and a sparse genomic residual per drug (elastic net, "
                "one penalty in drug-SD units); a new drug gets the tissue effects across drugs",
    params={"group_columns": -1, "group_prior": 20.0, "alpha": 0.3, "l1_ratio": 0.5,
            "min_lines": MIN_LINES},
    kinds=(TargetKind.REGRESSION,),
))
register_model(ModelSpec(
    name="drug-enet", family="sklearn", modalities=(Modality.DRUG_RESPONSE,),
    build=build_drug_enet,
    description="One elastic net per drug (l1_ratio 0.5, penalty by 3-fold CV on the drug's "
                "training lines, folds in parallel threads); a pooled elastic net on each "
                "line's mean drug-centred response for drugs without one",
    params={"l1_ratio": 0.5, "n_alphas": 20, "cv": 3, "min_lines": MIN_LINES},
    kinds=(TargetKind.REGRESSION,),
))
