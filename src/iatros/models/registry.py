"""The model registry: what each model name builds, for which modalities, with which defaults."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind

Family = Literal["torch", "sklearn"]
Survival = Literal["cox", "discrete"]
EVERY_KIND = tuple(TargetKind)


@dataclass(frozen=True)
class ModelSpec:
    """A named model.

    torch models: `build(n_inputs, n_outputs, **params) -> nn.Module`, trained by the one Trainer;
    `dataset(inputs, targets, kind, train, params)` turns a task's inputs into a torch Dataset
    (augmenting when `train`), and `n_inputs(inputs, params)` gives the input width / channels.
    sklearn models: `build(kind, seed, **params) -> estimator` with fit / predict(_proba).
    `train_defaults` are Trainer settings that suit this model (lr, batch size, epochs, ...);
    `ensemble` / `cross_fit` how many networks a run trains when the user does not say.

    Declared hooks (no duck typing): `kinds` the target kinds it predicts; `prepare(network,
    train_inputs)` fits input preprocessing kept in the network (imputation, scaling);
    `scale_targets(network, train_targets)` fits a regression target scale; `survival` says the
    network is a survival model of its own ("cox": log-risk, "discrete": intervals), else a
    survival task puts a Cox head on it; `heatmaps` (Grad-CAM layer) and `word_attributions`
    (exact linear word weights) say which explanations apply; `private_params` are parameters
    learned from the training text (a vocabulary), kept out of the shareable model.json.
    """

    name: str
    family: Family
    modalities: tuple[Modality, ...]
    build: Callable[..., Any]
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    train_defaults: dict[str, Any] = field(default_factory=dict)
    dataset: Callable[..., Any] | None = None
    n_inputs: Callable[..., int] | None = None
    ensemble: int = 1
    cross_fit: bool = False
    kinds: tuple[TargetKind, ...] = EVERY_KIND
    prepare: Callable[[nn.Module, Any], Any] | None = None
    scale_targets: Callable[[nn.Module, Any], Any] | None = None
    survival: Survival | None = None
    heatmaps: bool = False
    word_attributions: bool = False
    private_params: tuple[str, ...] = ()


_MODELS: dict[str, ModelSpec] = {}
_BUILTIN_MODULES = ("iatros.models.tabular", "iatros.models.imaging", "iatros.models.survival",
                    "iatros.models.ehr", "iatros.models.text", "iatros.models.signals",
                    "iatros.models.beats", "iatros.models.molecules",
                    "iatros.models.omics", "iatros.models.drug_response")
_loaded = False


def target_tensor(targets: Any, kind: TargetKind) -> torch.Tensor:
    """Targets typed for the kind's loss: class indices as long, everything else as float."""
    dtype = torch.long if kind.class_indices else torch.float32
    return torch.as_tensor(np.asarray(targets), dtype=dtype)


# Target kinds a general-purpose network or estimator predicts (tokens need a tagger).
NETWORK_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL,
                 TargetKind.MULTILABEL, TargetKind.REGRESSION, TargetKind.SURVIVAL)
ESTIMATOR_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL,
                   TargetKind.REGRESSION)


def _holder(network: nn.Module, method: str) -> Any:
    """The network, or the encoder a head wraps (a Cox head on an omics network), that has
    `method`."""
    for module in (network, getattr(network, "encoder", None)):
        if module is not None and hasattr(module, method):
            return module
    raise ConfigError(f"{type(network).__name__} has no {method}: its model spec declares a "
                      f"hook the network does not implement")


def fit_preprocessing(network: nn.Module, inputs: Any) -> Any:
    """The `prepare` hook of networks that keep their own imputation and scaling."""
    return _holder(network, "fit_preprocessing").fit_preprocessing(inputs)


def fit_target_scaling(network: nn.Module, targets: Any) -> Any:
    """The `scale_targets` hook of networks that predict in standard units internally."""
    return _holder(network, "fit_target_scaling").fit_target_scaling(targets)


def register_model(spec: ModelSpec) -> ModelSpec:
    _MODELS[spec.name] = spec
    return spec


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def get_model_spec(name: str) -> ModelSpec:
    _load_builtin()
    if name not in _MODELS:
        raise ConfigError(f"no model named {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models() -> list[ModelSpec]:
    _load_builtin()
    return [_MODELS[k] for k in sorted(_MODELS)]
