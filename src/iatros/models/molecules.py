"""Molecule models: two graph networks written in plain torch (a directed message-passing network
and a graph isomorphism network with bond features), a perceptron on ECFP fingerprints, and
random forest / gradient boosting on ECFP fingerprints.

- `dmpnn`: D-MPNN (Yang et al. 2019, "Analyzing learned molecular representations for property
  prediction"), chemprop's architecture: hidden states live on directed bonds; each step a bond
  v->w sums the states of the bonds entering v except w->v; atoms then sum their incoming bond
  states, the molecule is the mean of its atoms, optionally joined by RDKit 2D descriptors
  (`descriptors=true`: clipped to the training 0.5-99.5 percentiles, imputed and standardised
  inside the network), then a feed-forward head.
- `gin`: GIN with bond features (GINE, Hu et al. 2020): atom states updated by an MLP of their
  own state plus the sum of ReLU(neighbour + bond) messages, batch norm, mean and max readout.
- `ecfp-mlp`: a perceptron on 2048-bit ECFP4 (Morgan radius 2) fingerprints.
- `ecfp-rf`, `ecfp-gbm`: scikit-learn random forest / histogram gradient boosting on the same
  fingerprints; several labels (Tox21) fit one model per label on the rows that have it.

Regression networks predict in standard units inside and return the target's units (the scale
is fitted on the training targets and saved with the weights). Multilabel networks train on the
known labels only (`train.losses.MaskedMultilabelLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from iatros.data.transforms.molecules import (
    ATOM_FEATURES,
    BOND_FEATURES,
    FP_BITS,
    FP_RADIUS,
    descriptor_names,
    descriptors,
    fingerprint_dataset,
    fingerprint_params,
    fingerprints,
    graph_dataset,
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

MOLECULE_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.MULTILABEL,
                  TargetKind.REGRESSION)
ESTIMATOR_MOLECULE_KINDS = (TargetKind.BINARY, TargetKind.MULTILABEL, TargetKind.REGRESSION)
AGGREGATIONS = ("mean", "sum", "norm")


@dataclass
class GraphBatch:
    """A batch of padded graphs as one flat graph: atoms (n, F), directed bonds (e, B) with
    source, destination and reverse-bond indices, the molecule of each atom."""

    atoms: torch.Tensor
    bonds: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    rev: torch.Tensor
    molecule: torch.Tensor
    n_molecules: int
    descriptors: torch.Tensor | None

    @classmethod
    def from_padded(cls, inputs: dict[str, torch.Tensor]) -> GraphBatch:
        atom_mask = inputs["atom_mask"].bool()
        edge_mask = inputs["edge_mask"].bool()
        n_mol, n_atoms = atom_mask.shape
        n_edges = edge_mask.shape[1]
        device = atom_mask.device
        flat_atoms, flat_edges = atom_mask.reshape(-1), edge_mask.reshape(-1)
        atom_index = torch.cumsum(flat_atoms.long(), 0) - 1  # padded position -> flat atom
        edge_index = torch.cumsum(flat_edges.long(), 0) - 1
        shift_a = (torch.arange(n_mol, device=device) * n_atoms)[:, None]
        shift_e = (torch.arange(n_mol, device=device) * n_edges)[:, None]
        src = atom_index[(inputs["src"] + shift_a).reshape(-1)[flat_edges]]
        dst = atom_index[(inputs["dst"] + shift_a).reshape(-1)[flat_edges]]
        rev = edge_index[(inputs["rev"] + shift_e).reshape(-1)[flat_edges]]
        atoms = inputs["atoms"].reshape(n_mol * n_atoms, -1)[flat_atoms]
        bonds = inputs["bonds"].reshape(n_mol * n_edges, -1)[flat_edges]
        molecule = torch.arange(n_mol, device=device).repeat_interleave(atom_mask.sum(dim=1))
        return cls(atoms, bonds, src, dst, rev, molecule, n_mol, inputs.get("descriptors"))

    def per_molecule(self, values: torch.Tensor, how: str) -> torch.Tensor:
        """Atom values pooled per molecule: sum, mean, max, or norm (sum / 100, chemprop's)."""
        if how == "max":
            out = values.new_full((self.n_molecules, values.shape[1]), -torch.inf)
            out = out.scatter_reduce(0, self.molecule[:, None].expand_as(values), values, "amax")
            return torch.where(torch.isinf(out), torch.zeros_like(out), out)
        total = values.new_zeros((self.n_molecules, values.shape[1])).index_add_(
            0, self.molecule, values)
        if how == "sum":
            return total
        if how == "norm":
            return total / 100.0
        counts = torch.bincount(self.molecule, minlength=self.n_molecules).clamp(min=1)
        return total / counts[:, None].to(values.dtype)


def _ffn(width: int, hidden: int, layers: int, n_outputs: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = [nn.Dropout(dropout)]
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    parts.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*parts)


class MoleculeNetwork(nn.Module):
    """What the molecule networks share: the regression target scale and the RDKit descriptor
    preprocessing (clip, impute, standardise), both fitted on training rows and kept in buffers
    so a checkpoint predicts from SMILES alone."""

    def __init__(self, n_outputs: int, n_descriptors: int = 0) -> None:
        super().__init__()
        self.n_descriptors = int(n_descriptors)
        self.register_buffer("out_center", torch.zeros(n_outputs))
        self.register_buffer("out_scale", torch.ones(n_outputs))
        for name, value in (("desc_low", 0.0), ("desc_high", 0.0), ("desc_fill", 0.0),
                            ("desc_center", 0.0), ("desc_scale", 1.0)):
            self.register_buffer(name, torch.full((self.n_descriptors,), value))

    def fit_preprocessing(self, smiles: Any) -> MoleculeNetwork:
        """Descriptor clipping bounds, fill values and scale from the training molecules."""
        if not self.n_descriptors:
            return self
        x = descriptors(smiles).astype(np.float64)
        with np.errstate(all="ignore"):
            missing = np.isnan(x).all(axis=0)
            safe = np.where(missing, 0.0, x)
            low = np.where(missing, 0.0, np.nanpercentile(safe, 0.5, axis=0))
            high = np.where(missing, 0.0, np.nanpercentile(safe, 99.5, axis=0))
            fill = np.where(missing, 0.0, np.nanmedian(safe, axis=0))
            clipped = np.clip(np.where(np.isnan(x), fill, x), low, high)
            center, scale = clipped.mean(axis=0), clipped.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        for name, value in (("desc_low", low), ("desc_high", high), ("desc_fill", fill),
                            ("desc_center", center), ("desc_scale", scale)):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        return self

    def fit_target_scaling(self, y: Any) -> MoleculeNetwork:
        fit_output_scaling(self.out_center, self.out_scale, y)
        return self

    def descriptor_block(self, batch: GraphBatch | dict[str, torch.Tensor]) -> torch.Tensor | None:
        raw = batch.descriptors if isinstance(batch, GraphBatch) else batch.get("descriptors")
        if not self.n_descriptors:
            return None
        if raw is None:
            raise ConfigError("this network reads RDKit descriptors but its inputs have none")
        x = torch.where(torch.isnan(raw), self.desc_fill, raw)
        x = torch.minimum(torch.maximum(x, self.desc_low), self.desc_high)
        return (x - self.desc_center) / self.desc_scale

    def outputs(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.out_scale + self.out_center


class DMPNN(MoleculeNetwork):
    """Directed message passing (chemprop's D-MPNN) with a feed-forward head."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden: int = 300, depth: int = 3,
                 dropout: float = 0.0, ffn_hidden: int = 300, ffn_layers: int = 1,
                 aggregation: str = "mean", n_descriptors: int = 0) -> None:
        super().__init__(n_outputs, n_descriptors)
        if depth < 1 or hidden < 1 or ffn_layers < 0:
            raise ConfigError(f"dmpnn needs depth >= 1, hidden >= 1 and ffn_layers >= 0 (got "
                              f"{depth}, {hidden}, {ffn_layers})")
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, "
                              f"not {aggregation!r}")
        self.depth, self.aggregation = int(depth), aggregation
        self.w_in = nn.Linear(n_inputs + BOND_FEATURES, hidden, bias=False)
        self.w_hidden = nn.Linear(hidden, hidden, bias=False)
        self.w_out = nn.Linear(n_inputs + hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = _ffn(hidden + self.n_descriptors, ffn_hidden, ffn_layers, n_outputs, dropout)

    def encode(self, batch: GraphBatch) -> torch.Tensor:
        """Atom states (n_atoms, hidden) after message passing."""
        start = self.w_in(torch.cat([batch.atoms[batch.src], batch.bonds], dim=1))
        h = torch.relu(start)
        for _ in range(self.depth - 1):
            entering = h.new_zeros((len(batch.atoms), h.shape[1])).index_add_(0, batch.dst, h)
            message = entering[batch.src] - h[batch.rev]
            h = self.dropout(torch.relu(start + self.w_hidden(message)))
        entering = h.new_zeros((len(batch.atoms), h.shape[1])).index_add_(0, batch.dst, h)
        return self.dropout(torch.relu(self.w_out(torch.cat([batch.atoms, entering], dim=1))))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = GraphBatch.from_padded(inputs)
        z = batch.per_molecule(self.encode(batch), self.aggregation)
        extra = self.descriptor_block(batch)
        if extra is not None:
            z = torch.cat([z, extra.to(z.dtype)], dim=1)
        return self.outputs(self.head(z))


class GINE(MoleculeNetwork):
    """Graph isomorphism network with bond features, batch norm, mean + max readout."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden: int = 300, layers: int = 5,
                 dropout: float = 0.1, ffn_hidden: int = 300, ffn_layers: int = 1,
                 n_descriptors: int = 0) -> None:
        super().__init__(n_outputs, n_descriptors)
        if layers < 1 or hidden < 1:
            raise ConfigError(f"gin needs layers >= 1 and hidden >= 1 (got {layers}, {hidden})")
        self.embed = nn.Linear(n_inputs, hidden)
        self.bond_embed = nn.ModuleList(nn.Linear(BOND_FEATURES, hidden) for _ in range(layers))
        self.mlps = nn.ModuleList(nn.Sequential(
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden)) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.eps = nn.Parameter(torch.zeros(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = _ffn(2 * hidden + self.n_descriptors, ffn_hidden, ffn_layers, n_outputs,
                         dropout)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = GraphBatch.from_padded(inputs)
        h = self.embed(batch.atoms)
        last = len(self.mlps) - 1
        for k, (bond, mlp, norm) in enumerate(zip(self.bond_embed, self.mlps, self.norms,
                                                  strict=True)):
            message = torch.relu(h[batch.src] + bond(batch.bonds))
            summed = torch.zeros_like(h).index_add_(0, batch.dst, message)
            out = norm(mlp((1 + self.eps[k]) * h + summed))
            h = self.dropout(out if k == last else torch.relu(out)) + h
        z = torch.cat([batch.per_molecule(h, "mean"), batch.per_molecule(h, "max")], dim=1)
        extra = self.descriptor_block(batch)
        if extra is not None:
            z = torch.cat([z, extra.to(z.dtype)], dim=1)
        return self.outputs(self.head(z))


class FingerprintMLP(MoleculeNetwork):
    """A perceptron on fingerprint bits (or counts)."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden: tuple[int, ...] = (512,),
                 dropout: float = 0.2) -> None:
        super().__init__(n_outputs)
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(self.net(x))


def atom_width(inputs: Any, params: dict[str, Any] | None = None) -> int:
    return ATOM_FEATURES


def fingerprint_width(inputs: Any, params: dict[str, Any] | None = None) -> int:
    return fingerprint_params(params)[1]


def _n_descriptors(use: Any) -> int:
    return len(descriptor_names()) if bool(use) else 0


def build_dmpnn(n_inputs: int, n_outputs: int, *, hidden: int = 300, depth: int = 3,
                dropout: float = 0.0, ffn_hidden: int = 300, ffn_layers: int = 1,
                aggregation: str = "mean", descriptors: bool = False, **_: Any) -> DMPNN:
    return DMPNN(n_inputs, n_outputs, hidden=int(hidden), depth=int(depth), dropout=float(dropout),
                 ffn_hidden=int(ffn_hidden), ffn_layers=int(ffn_layers), aggregation=str(aggregation),
                 n_descriptors=_n_descriptors(descriptors))


def build_gin(n_inputs: int, n_outputs: int, *, hidden: int = 300, layers: int = 5,
              dropout: float = 0.1, ffn_hidden: int = 300, ffn_layers: int = 1,
              descriptors: bool = False, **_: Any) -> GINE:
    return GINE(n_inputs, n_outputs, hidden=int(hidden), layers=int(layers),
                dropout=float(dropout), ffn_hidden=int(ffn_hidden), ffn_layers=int(ffn_layers),
                n_descriptors=_n_descriptors(descriptors))


def build_fingerprint_mlp(n_inputs: int, n_outputs: int, *, hidden: Any = (512,),
                          dropout: float = 0.2, radius: int = FP_RADIUS, bits: int = FP_BITS,
                          counts: bool = False) -> FingerprintMLP:
    """The network; `radius`, `bits` and `counts` are the dataset builder's fingerprint settings."""
    hidden = (int(hidden),) if isinstance(hidden, int | float) else tuple(int(h) for h in hidden)
    return FingerprintMLP(n_inputs, n_outputs, hidden=hidden, dropout=float(dropout))


# --------------------------------------------------------------------------------------------
# scikit-learn baselines on fingerprints
# --------------------------------------------------------------------------------------------


class MorganFingerprints:
    """scikit-learn transformer: SMILES -> Morgan fingerprints (nothing is learned)."""

    def __init__(self, radius: int = FP_RADIUS, bits: int = FP_BITS, counts: bool = False) -> None:
        self.radius, self.bits, self.counts = radius, bits, counts

    def fit(self, x: Any, y: Any = None) -> MorganFingerprints:
        return self

    def transform(self, x: Any) -> np.ndarray:
        return fingerprints(np.asarray(x, dtype=object).reshape(-1), self.radius, self.bits,
                            self.counts)

    def fit_transform(self, x: Any, y: Any = None) -> np.ndarray:
        return self.transform(x)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"radius": self.radius, "bits": self.bits, "counts": self.counts}

    def set_params(self, **params: Any) -> MorganFingerprints:
        for key, value in params.items():
            setattr(self, key, value)
        return self


class PerLabelClassifier(BaseEstimator):
    """One clone of `estimator` per label, each fitted on the rows where that label is known
    (targets: a 0/1 matrix with NaN for missing); `predict_proba` gives (N, labels) P(label = 1).
    A label with fewer than two training examples of a class predicts its observed rate."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, x: Any, y: Any) -> PerLabelClassifier:
        from sklearn.base import clone
        from sklearn.dummy import DummyClassifier

        x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ConfigError(f"per-label fitting needs a (rows, labels) target, got {y.shape}")
        self.estimators_ = []
        for j in range(y.shape[1]):
            known = ~np.isnan(y[:, j])
            labels = y[known, j].astype(np.int64)
            counts = np.bincount(labels, minlength=2)
            if counts.min() < 2:  # one class, or a single example of one: predict the rate
                model = DummyClassifier(strategy="prior")
                labels = labels if len(labels) else np.zeros(1, dtype=np.int64)
                model.fit(np.zeros((len(labels), 1)), labels)
            else:
                model = clone(self.estimator).fit(x[known], labels)
            self.estimators_.append(model)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        from sklearn.dummy import DummyClassifier

        x = np.asarray(x)
        out = np.zeros((len(x), len(self.estimators_)))
        for j, model in enumerate(self.estimators_):
            classes = list(model.classes_)
            if 1 not in classes:
                continue
            features = np.zeros((len(x), 1)) if isinstance(model, DummyClassifier) else x
            out[:, j] = model.predict_proba(features)[:, classes.index(1)]
        return out



def _fingerprint_pipeline(kind: TargetKind, classifier: Any, regressor: Any, radius: int,
                          bits: int, counts: bool) -> Any:
    from sklearn.pipeline import Pipeline

    if kind.label_matrix:
        final = PerLabelClassifier(classifier)
    else:
        final = classifier if kind.is_classification else regressor
    return Pipeline([("fingerprints", MorganFingerprints(int(radius), int(bits), bool(counts))),
                     ("model", final)])


def build_ecfp_rf(kind: TargetKind, seed: int, n_estimators: int = 500,
                  min_samples_leaf: int = 1, max_features: Any = "sqrt", radius: int = FP_RADIUS,
                  bits: int = FP_BITS, counts: bool = False, n_jobs: int = -1) -> Any:
    """ECFP fingerprints, then a random forest (one per label for several labels)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    common = dict(n_estimators=int(n_estimators), min_samples_leaf=int(min_samples_leaf),
                  max_features=max_features, n_jobs=int(n_jobs), random_state=seed)
    return _fingerprint_pipeline(kind, RandomForestClassifier(**common),
                                 RandomForestRegressor(**common), radius, bits, counts)


def build_ecfp_gbm(kind: TargetKind, seed: int, max_iter: int = 300, learning_rate: float = 0.05,
                   max_leaf_nodes: int = 31, radius: int = FP_RADIUS, bits: int = FP_BITS,
                   counts: bool = False) -> Any:
    """ECFP fingerprints, then histogram gradient boosting, early-stopped on an internal 15%."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = dict(max_iter=int(max_iter), learning_rate=float(learning_rate),
                  max_leaf_nodes=int(max_leaf_nodes), early_stopping=True,
                  validation_fraction=0.15, n_iter_no_change=20, random_state=seed)
    return _fingerprint_pipeline(kind, HistGradientBoostingClassifier(**common),
                                 HistGradientBoostingRegressor(**common), radius, bits, counts)


GRAPH_TRAINING = {"epochs": 50, "batch_size": 50, "lr": 1e-3, "weight_decay": 0.0,
                  "patience": 15, "scheduler": "cosine"}

register_model(ModelSpec(
    name="dmpnn", family="torch", modalities=(Modality.MOLECULE,), build=build_dmpnn,
    description="Directed message-passing network (D-MPNN, Yang et al. 2019; chemprop's "
                "architecture): depth 3, hidden 300, mean over atoms, one 300-unit feed-forward "
                "layer; `descriptors=true` adds RDKit 2D descriptors",
    params={"hidden": 300, "depth": 3, "dropout": 0.0, "ffn_hidden": 300, "ffn_layers": 1,
            "aggregation": "mean", "descriptors": False},
    train_defaults=GRAPH_TRAINING, dataset=graph_dataset, n_inputs=atom_width,
    kinds=MOLECULE_KINDS, prepare=fit_preprocessing, scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="gin", family="torch", modalities=(Modality.MOLECULE,), build=build_gin,
    description="Graph isomorphism network with bond features (GINE, Hu et al. 2020): 5 layers "
                "of 300, batch norm, residual connections, mean + max readout",
    params={"hidden": 300, "layers": 5, "dropout": 0.1, "ffn_hidden": 300, "ffn_layers": 1,
            "descriptors": False},
    train_defaults=GRAPH_TRAINING, dataset=graph_dataset, n_inputs=atom_width,
    kinds=MOLECULE_KINDS, prepare=fit_preprocessing, scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="ecfp-mlp", family="torch", modalities=(Modality.MOLECULE,), build=build_fingerprint_mlp,
    description="Perceptron (512 hidden units, dropout 0.2) on 2048-bit ECFP4 fingerprints",
    params={"hidden": (512,), "dropout": 0.2, "radius": FP_RADIUS, "bits": FP_BITS,
            "counts": False},
    train_defaults={"epochs": 50, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
                    "patience": 15, "scheduler": "cosine"},
    dataset=fingerprint_dataset, n_inputs=fingerprint_width, kinds=MOLECULE_KINDS,
    scale_targets=fit_target_scaling,
))
register_model(ModelSpec(
    name="ecfp-rf", family="sklearn", modalities=(Modality.MOLECULE,), build=build_ecfp_rf,
    description="Random forest (500 trees) on 2048-bit ECFP4 fingerprints; one forest per label "
                "for several labels, on the rows that have it",
    params={"n_estimators": 500, "min_samples_leaf": 1, "radius": FP_RADIUS, "bits": FP_BITS},
    kinds=ESTIMATOR_MOLECULE_KINDS,
))
register_model(ModelSpec(
    name="ecfp-gbm", family="sklearn", modalities=(Modality.MOLECULE,), build=build_ecfp_gbm,
    description="Histogram gradient boosting on 2048-bit ECFP4 fingerprints (early-stopped on "
                "an internal 15%); one model per label for several labels",
    params={"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "radius": FP_RADIUS,
            "bits": FP_BITS},
    kinds=ESTIMATOR_MOLECULE_KINDS,
))

