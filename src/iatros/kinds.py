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
        """Targets are classes or labels (probabilities are scored and may be calibrated)."""
        return self.value in _CLASSIFICATION

    @property
    def class_indices(self) -> bool:
        """Targets are one class index per row (trained with cross-entropy)."""
        return self.value in _CLASS_INDICES

    @property
    def stratified(self) -> bool:
        """Splits stratify on the target itself (one class per row)."""
        return self.value in _STRATIFIED

    @property
    def label_matrix(self) -> bool:
        """Targets are a 0/1 matrix, one column per label (several labels per row)."""
        return self.value == "multilabel"

    @property
    def strata_column(self) -> int | None:
        """For 2-column targets, the column splits stratify on (survival: the event)."""
        return _STRATA_COLUMN.get(self.value)

    @property
    def output_name(self) -> str:
        """What a single-output model of this kind predicts, in words (survival: the risk)."""
        return _OUTPUT_NAME.get(self.value, "the prediction")


_CLASSIFICATION = frozenset({"binary", "multiclass", "ordinal", "multilabel"})
_CLASS_INDICES = frozenset({"multiclass", "ordinal"})
_STRATIFIED = frozenset({"binary", "multiclass", "ordinal"})
_STRATA_COLUMN = {"survival": 1}
_OUTPUT_NAME = {"survival": "risk"}


class Modality(str, Enum):
    """What kind of data a task reads."""

    TABULAR = "tabular"
    IMAGE = "image"
    EHR = "ehr"
    TEXT = "text"
    SIGNAL = "signal"
    BEATS = "beats"  # heartbeats cut from an ECG at R-peaks: RR features and the beat's samples
    OMICS = "omics"
    MOLECULE = "molecule"
    DRUG_RESPONSE = "drug_response"  # (cell line, drug) pairs: the line's omics and the drug
