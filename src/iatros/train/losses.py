"""Losses per target kind, so every model of a kind trains against the same objective."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.kinds import TargetKind


class BinaryLoss(nn.Module):
    """BCE on one logit per sample; `pos_weight` counters class imbalance."""

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        weight = None if pos_weight is None else torch.tensor([pos_weight])
        self.bce = nn.BCEWithLogitsLoss(pos_weight=weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce(logits.reshape(-1), target.reshape(-1).float())


class MaskedMultilabelLoss(nn.Module):
    """BCE over the known labels only: a NaN target (a label not measured for that row, as in
    Tox21) adds nothing to the loss or its gradient; the mean is over known cells. With every
    label known it is `BCEWithLogitsLoss`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        known = ~torch.isnan(target)
        losses = nn.functional.binary_cross_entropy_with_logits(
            logits.float(), torch.where(known, target, torch.zeros_like(target)), reduction="none")
        weight = known.to(losses.dtype)
        return (losses * weight).sum() / weight.sum().clamp(min=1.0)


class RegressionLoss(nn.Module):
    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output.reshape(-1), target.reshape(-1).float())


class SequenceNLLLoss(nn.Module):
    """Tokens targets: the tagger itself returns each sentence's negative log-likelihood (a CRF
    needs the gold path, which its dataset passes in with the inputs) in output column 0; the
    loss is its mean. Columns 1: hold the decoded tag ids and carry no gradient."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return output[:, 0].mean()


class ClassWeightedLoss(nn.Module):
    """Cross-entropy with each class weighted by the square root of (largest class count / its
    count): rare classes count more without a handful of examples dominating. Classes absent
    from training (or beyond the counts) weigh 1."""

    def __init__(self, counts: np.ndarray) -> None:
        super().__init__()
        counts = np.asarray(counts, dtype=np.float64)
        weights = np.where(counts > 0, np.sqrt(counts.max() / np.maximum(counts, 1)), 1.0)
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        weights = self.weights[:k]
        if len(weights) < k:
            weights = torch.cat([weights, weights.new_ones(k - len(weights))])
        return nn.functional.cross_entropy(logits, target, weight=weights.to(logits.device))


def _class_loss(train_targets: np.ndarray, balance: bool) -> nn.Module:
    """Cross-entropy; `balance` weights rarer classes up (`ClassWeightedLoss`)."""
    if not balance:
        return nn.CrossEntropyLoss()
    return ClassWeightedLoss(np.bincount(np.asarray(train_targets, dtype=np.int64)))


def _binary_loss(train_targets: np.ndarray, balance: bool) -> nn.Module:
    """BCE; `balance` weights the rarer positive class up by negatives / positives."""
    pos = float(np.sum(train_targets == 1))
    neg = float(len(train_targets) - pos)
    return BinaryLoss(pos_weight=neg / pos if balance and pos > 0 else None)


def _sigmoid(outputs: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-outputs))


def _softmax(outputs: np.ndarray) -> np.ndarray:
    z = outputs - outputs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


LOSSES: dict[TargetKind, Callable[[np.ndarray, bool], nn.Module]] = {
    TargetKind.BINARY: _binary_loss,
    TargetKind.MULTICLASS: _class_loss,
    TargetKind.ORDINAL: lambda y, balance: nn.CrossEntropyLoss(),
    TargetKind.MULTILABEL: lambda y, balance: MaskedMultilabelLoss(),
    TargetKind.REGRESSION: lambda y, balance: RegressionLoss(),
    TargetKind.TOKENS: lambda y, balance: SequenceNLLLoss(),
}
SCORES: dict[TargetKind, Callable[[np.ndarray], np.ndarray]] = {
    TargetKind.BINARY: lambda out: _sigmoid(out.reshape(-1)),
    TargetKind.MULTICLASS: _softmax,
    TargetKind.ORDINAL: _softmax,
    TargetKind.MULTILABEL: _sigmoid,
    TargetKind.REGRESSION: lambda out: out.reshape(-1),
    # column 0 is the sentence NLL, the rest decoded tag ids
    TargetKind.TOKENS: lambda out: np.rint(out[:, 1:]),
}


def loss_for(kind: TargetKind, train_targets: np.ndarray, balance: bool = False) -> nn.Module:
    """The training loss for a kind; `balance` weights rarer classes up (binary, multiclass)."""
    if kind not in LOSSES:
        raise ConfigError(f"no loss for target kind {TargetKind(kind).value!r} yet")
    return LOSSES[kind](train_targets, balance)


def to_probabilities(outputs: np.ndarray, kind: TargetKind) -> np.ndarray:
    """Map raw network outputs to the score convention of the metrics module."""
    if kind not in SCORES:
        raise ConfigError(f"no output mapping for target kind {TargetKind(kind).value!r} yet")
    return SCORES[kind](np.asarray(outputs, dtype=np.float64))
