"""How a run is scored: one small value object shared by train, evaluate, audit and tune."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalOptions:
    """How a run is scored: bootstrap size, threshold, seed of the resampling."""

    n_boot: int = 1000
    threshold: str | float = "youden"
    seed: int = 0

    def with_threshold(self, threshold: str | float) -> EvalOptions:
        return EvalOptions(self.n_boot, threshold, self.seed)
