"""How a run is scored: one small value object shared by train, evaluate, audit and tune."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EvalOptions:
    """How a run is scored: bootstrap size, threshold, seed of the resampling."""

    n_boot: int = 1000
    threshold: str | float = "youden"
    seed: int = 0
    keep_text: bool = False  # token tagging: keep sentences' words in predictions.csv

    def with_threshold(self, threshold: str | float) -> EvalOptions:
        return replace(self, threshold=threshold)
