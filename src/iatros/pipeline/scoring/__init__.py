"""One scorer per family of target kinds, looked up by `TargetKind` (never an if-chain).

A scorer finishes a run (calibrate, threshold, predictions frame, metrics, audit), scores rows
for `evaluate`, audits, predicts new inputs and gives the CLI its lines. A new target kind adds
a scorer here; nothing else in the pipeline branches on the kind.
"""

from __future__ import annotations

from typing import Any

from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.pipeline.scoring.base import FinishContext, Finished, Scored, Scorer
from iatros.pipeline.scoring.probabilities import (
    BinaryScorer,
    ClassScorer,
    MultilabelScorer,
    RegressionScorer,
)
from iatros.pipeline.scoring.survival import SurvivalScorer
from iatros.pipeline.scoring.tokens import Tagger, TokenScorer, tagger_from

SCORERS: dict[TargetKind, Scorer] = {
    TargetKind.BINARY: BinaryScorer(),
    TargetKind.MULTICLASS: ClassScorer(),
    TargetKind.ORDINAL: ClassScorer(),
    TargetKind.MULTILABEL: MultilabelScorer(),
    TargetKind.REGRESSION: RegressionScorer(),
    TargetKind.SURVIVAL: SurvivalScorer(),
    TargetKind.TOKENS: TokenScorer(),
}


def scorer_for(kind: TargetKind) -> Scorer:
    """The scorer of a target kind; a kind without one is a clear error, not a silent default."""
    try:
        return SCORERS[TargetKind(kind)]
    except (KeyError, ValueError) as e:
        raise ConfigError(f"no scorer for target kind {kind!r}; known: "
                          f"{', '.join(k.value for k in SCORERS)}") from e


def tagger_for(kind: TargetKind, predictor: Any, classes: list[str], run: str) -> Tagger:
    """A trained tagger as a callable for the clinical text pipeline; other kinds refuse."""
    if not isinstance(scorer_for(kind), TokenScorer):
        raise ConfigError(f"run {run} is a {TargetKind(kind).value} model, not a token tagger "
                          f"(train one with `iatros train ner-ncbi-disease`)")
    return tagger_from(predictor, classes)


__all__ = ["SCORERS", "FinishContext", "Finished", "Scored", "Scorer", "scorer_for", "tagger_for"]
