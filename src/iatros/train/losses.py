"""Losses per target kind, so every model of a kind trains against the same objective."""

from __future__ import annotations

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


class RegressionLoss(nn.Module):
    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output.reshape(-1), target.reshape(-1).float())


class SequenceNLLLoss(nn.Module):
    """Tokens targets: the tagger itself returns each sentence's negative log-likelihood (a CRF
    needs the gold path, which its dataset passes in with the inputs) in output column 0; the
    loss is its mean. Columns 1: hold the decoded tag ids and carry no gradient."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return output[:, 0].mean()


def n_outputs(kind: TargetKind, n_classes: int) -> int:
    """Width of the output layer for a target kind (tokens: the number of BIO tags)."""
    if kind in (TargetKind.BINARY, TargetKind.REGRESSION):
        return 1
    if kind in (TargetKind.MULTICLASS, TargetKind.ORDINAL, TargetKind.MULTILABEL, TargetKind.TOKENS):
        return n_classes
    raise ConfigError(f"target kind {kind.value!r} has no output layer defined yet")


def loss_for(kind: TargetKind, train_targets: np.ndarray, balance: bool = False) -> nn.Module:
    """The training loss for a kind; `balance` weights the rarer class up (binary)."""
    if kind is TargetKind.BINARY:
        pos = float(np.sum(train_targets == 1))
        neg = float(len(train_targets) - pos)
        return BinaryLoss(pos_weight=neg / pos if balance and pos > 0 else None)
    if kind in (TargetKind.MULTICLASS, TargetKind.ORDINAL):
        return nn.CrossEntropyLoss()
    if kind is TargetKind.MULTILABEL:
        return nn.BCEWithLogitsLoss()
    if kind is TargetKind.REGRESSION:
        return RegressionLoss()
    if kind is TargetKind.TOKENS:
        return SequenceNLLLoss()
    raise ConfigError(f"no loss for target kind {kind.value!r} yet")


def to_probabilities(outputs: np.ndarray, kind: TargetKind) -> np.ndarray:
    """Map raw network outputs to the score convention of the metrics module."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if kind is TargetKind.BINARY:
        return 1.0 / (1.0 + np.exp(-outputs.reshape(-1)))
    if kind in (TargetKind.MULTICLASS, TargetKind.ORDINAL):
        z = outputs - outputs.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    if kind is TargetKind.MULTILABEL:
        return 1.0 / (1.0 + np.exp(-outputs))
    if kind is TargetKind.REGRESSION:
        return outputs.reshape(-1)
    if kind is TargetKind.TOKENS:  # column 0 is the sentence NLL, the rest decoded tag ids
        return np.rint(outputs[:, 1:])
    raise ConfigError(f"no output mapping for target kind {kind.value!r} yet")
