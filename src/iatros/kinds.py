"""Vocabulary shared by every layer: what kind of target a task predicts and what modality it reads."""

from __future__ import annotations

from enum import Enum
from typing import Any


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


def bio_spans(tags: Any) -> set[tuple[int, int, int]]:
    """Entities (start, end exclusive, type) in one row of BIO tag ids.

    Convention for every tokens task: 0 is O, 2k+1 is B of entity type k, 2k+2 is I of type k,
    -1 is padding. An I that does not continue an entity of its type starts one (conlleval).
    """
    spans: set[tuple[int, int, int]] = set()
    start, kind = -1, -1
    row = [int(t) for t in tags]
    for i, t in enumerate([*row, 0]):
        inside = t > 0 and t % 2 == 0 and (t - 2) // 2 == kind and start >= 0
        if start >= 0 and not inside:
            spans.add((start, i, kind))
            start, kind = -1, -1
        if t > 0 and not inside:
            start, kind = i, (t - 1) // 2
    return spans
