"""Training: the one Trainer for torch models, classical baselines, seeds, losses, predictors."""

from iatros.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult"]
