"""How a target kind is trained and read out, one entry per kind (never an if-chain): the width
of the output layer, the loss and the validation monitor, what happens after training, how raw
outputs become scores, how ensemble members are combined and how a scikit-learn estimator scores.

A new target kind adds a `Head` to `HEADS`; `fit_torch`, `load_predictor` and the predictors
only ever call `head_for(kind)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.models.registry import ModelSpec
from iatros.targets import majority_spans
from iatros.train.losses import LOSSES, SCORES

Monitor = Callable[[np.ndarray, np.ndarray], float] | None


def _mean(members: list[np.ndarray]) -> np.ndarray:
    return np.mean(members, axis=0)


def _probabilities(estimator: Any, x: Any) -> np.ndarray:
    return np.asarray(estimator.predict_proba(x), dtype=np.float64)


@dataclass(frozen=True)
class Head:
    """The standard head: `width(n_classes)` outputs, the kind's loss, the task's monitor."""

    kind: TargetKind
    width: Callable[[int], int]
    combine: Callable[[list[np.ndarray]], np.ndarray] = _mean
    sklearn_scores: Callable[[Any, Any], np.ndarray] = _probabilities

    def outputs(self, spec: ModelSpec, n_classes: int) -> int:
        return self.width(n_classes)

    def wraps(self, spec: ModelSpec) -> bool:
        """Whether the network is the spec's encoder under a head module (survival: Cox)."""
        return False

    def build(self, spec: ModelSpec, n_inputs: int, width: int, params: dict[str, Any],
              wrapped: bool) -> nn.Module:
        return spec.build(n_inputs, width, **params)

    def setup(self, spec: ModelSpec, network: nn.Module, y_train: np.ndarray,
              params: dict[str, Any], balance: bool, monitor: Monitor,
              mode: str) -> tuple[nn.Module, Monitor, str]:
        """(loss, monitor, mode) for training; may fit parts of the network on the targets."""
        return LOSSES[self.kind](y_train, balance), monitor, mode

    def after_fit(self, spec: ModelSpec, network: nn.Module, x_train: Any, y_train: np.ndarray,
                  train_outputs: Callable[[], np.ndarray], checkpoint: Path) -> None:
        """Anything fitted from the best weights after training (saved into `checkpoint`)."""

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        return SCORES[self.kind](outputs)


@dataclass(frozen=True)
class RegressionHead(Head):
    """Regression: the model may scale its targets to unit variance before training."""

    def setup(self, spec: ModelSpec, network: nn.Module, y_train: np.ndarray,
              params: dict[str, Any], balance: bool, monitor: Monitor,
              mode: str) -> tuple[nn.Module, Monitor, str]:
        if spec.scale_targets is not None:
            spec.scale_targets(network, y_train)
        return super().setup(spec, network, y_train, params, balance, monitor, mode)


@dataclass(frozen=True)
class SurvivalHead(Head):
    """Survival: a survival network of its own (DeepSurv, discrete-time nets) or any encoder
    under a Cox head; cut points from the training times, partial likelihood or discrete
    likelihood, C-index (or validation loss) monitor, Breslow baseline after training."""

    def outputs(self, spec: ModelSpec, n_classes: int) -> int:
        return 0 if spec.survival else 1

    def wraps(self, spec: ModelSpec) -> bool:
        return spec.survival is None

    def build(self, spec: ModelSpec, n_inputs: int, width: int, params: dict[str, Any],
              wrapped: bool) -> nn.Module:
        if not wrapped:
            return spec.build(n_inputs, width, **params)
        from iatros.models.survival import CoxHead

        return CoxHead(spec.build(n_inputs, 1, **params))

    def setup(self, spec: ModelSpec, network: nn.Module, y_train: np.ndarray,
              params: dict[str, Any], balance: bool, monitor: Monitor,
              mode: str) -> tuple[nn.Module, Monitor, str]:
        from iatros.models.survival import as_time_event, concordance_monitor, fit_survival_head
        from iatros.train.survival_losses import survival_loss_for

        fit_survival_head(network, *as_time_event(y_train))
        loss = survival_loss_for(network, **params)
        if spec.survival == "discrete":
            # Discrete-time nets start near h = 0.5 per interval; the C-index peaks long before
            # their hazard levels settle, so they stop on validation likelihood instead.
            return loss, None, "min"
        return loss, concordance_monitor(network), "max"

    def after_fit(self, spec: ModelSpec, network: nn.Module, x_train: Any, y_train: np.ndarray,
                  train_outputs: Callable[[], np.ndarray], checkpoint: Path) -> None:
        from iatros.models.survival import as_time_event, fit_survival_baseline
        from iatros.train.trainer import atomic_save, load_checkpoint

        fit_survival_baseline(network, x_train, *as_time_event(y_train),
                              train_log_risk=train_outputs())
        saved = load_checkpoint(checkpoint)
        atomic_save({**saved, "model": network.state_dict()}, checkpoint)

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        raise ConfigError("survival networks are read through predict_survival, not scores")


def _one(_: int) -> int:
    return 1


def _classes(n_classes: int) -> int:
    return n_classes


def _binary_scores(estimator: Any, x: Any) -> np.ndarray:
    return _probabilities(estimator, x)[:, 1]


def _values(estimator: Any, x: Any) -> np.ndarray:
    return np.asarray(estimator.predict(x), dtype=np.float64)


HEADS: dict[TargetKind, Head] = {
    TargetKind.BINARY: Head(TargetKind.BINARY, _one, sklearn_scores=_binary_scores),
    TargetKind.MULTICLASS: Head(TargetKind.MULTICLASS, _classes),
    TargetKind.ORDINAL: Head(TargetKind.ORDINAL, _classes),
    TargetKind.MULTILABEL: Head(TargetKind.MULTILABEL, _classes),
    TargetKind.REGRESSION: RegressionHead(TargetKind.REGRESSION, _one, sklearn_scores=_values),
    TargetKind.SURVIVAL: SurvivalHead(TargetKind.SURVIVAL, _one),
    TargetKind.TOKENS: Head(TargetKind.TOKENS, _classes, combine=majority_spans),
}


def head_for(kind: TargetKind) -> Head:
    try:
        return HEADS[TargetKind(kind)]
    except (KeyError, ValueError) as e:
        raise ConfigError(f"no training head for target kind {kind!r} yet") from e
