"""Vocabulary shared by every layer: what kind of target a task predicts and what modality it reads."""

from __future__ import annotations

from enum import Enum


class TargetKind(str, Enum):
    """What a task predicts; decides the loss, the output layer and which metrics apply."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    ORDINAL = "ordinal"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"
    SURVIVAL = "survival"
    TOKENS = "tokens"

    @property
    def is_classification(self) -> bool:
        return self in (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL,
                        TargetKind.MULTILABEL)


class Modality(str, Enum):
    """What kind of data a task reads."""

    TABULAR = "tabular"
    IMAGE = "image"
    EHR = "ehr"
    TEXT = "text"
    SIGNAL = "signal"
    OMICS = "omics"
    MOLECULE = "molecule"
