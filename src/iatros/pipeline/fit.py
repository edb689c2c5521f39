"""Fitting the model of a run: checking the model against the task, the training settings,
the validation monitor, single networks, ensembles and cross-fit ensembles."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.splits import Split, validation_fold
from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.models.registry import ModelSpec, get_model_spec
from iatros.run_folder import PRIVACY, TRAIN_LOG, RunFolder, write_csv, write_json
from iatros.settings import Settings
from iatros.tasks import Task, TaskData
from iatros.train import distributed
from iatros.train.losses import to_probabilities
from iatros.train.predictors import Predictor, fit_ensemble, fit_sklearn, fit_torch
from iatros.train.search import TRAIN_KEYS
from iatros.train.trainer import Callback, TrainConfig

log = logging.getLogger("iatros")


def check_model(task: Task, model: str) -> ModelSpec:
    """The model's spec, if it reads the task's modality."""
    spec = get_model_spec(model)
    if task.modality not in spec.modalities:
        raise ConfigError(f"model {model!r} does not read {task.modality.value} data; "
                          f"task {task.name} supports: {', '.join(task.models)}")
    if task.target not in spec.kinds:
        raise ConfigError(f"model {model!r} does not predict {task.target.value} targets (it "
                          f"predicts {', '.join(k.value for k in spec.kinds)}); task {task.name} "
                          f"supports: {', '.join(task.models)}")
    return spec


def check_params(spec: ModelSpec, params: dict[str, Any] | None) -> None:
    """Refuse parameters the model's builder does not take, naming the ones it does."""
    signature = inspect.signature(spec.build)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    known = {name for name, p in signature.parameters.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} | set(spec.params)
    unknown = sorted(set(params or {}) - known)
    if unknown:
        usable = sorted(known - {"n_inputs", "n_outputs", "kind", "seed"} - TRAIN_KEYS)
        raise ConfigError(f"model {spec.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters: {', '.join(usable) or 'none'}; training settings: "
                          f"{', '.join(sorted(TRAIN_KEYS))}")


# DP-SGD's own settings, under the user's: larger batches (noise is added per batch), a fixed
# number of epochs trained to the end (the noise is calibrated for them; choosing an epoch on
# validation would also spend privacy), no weight decay. Chosen on validation AUROC of
# icu-mortality at epsilon 8 among batch 64-1024, epochs 15-100, lr 3e-3-3e-2 (benchmarks/privacy.py).
DP_DEFAULTS = {"batch_size": 256, "epochs": 30, "lr": 1e-2, "keep": "last", "weight_decay": 0.0}


def train_config(spec: ModelSpec, task: Task, epochs: int | None, seed: int, progress: bool,
                 overrides: dict[str, Any] | None) -> TrainConfig:
    """Trainer settings: the model's defaults, then the task's (then DP-SGD's when asked), then
    the user's."""
    private = DP_DEFAULTS if (overrides or {}).get("dp_epsilon") is not None else {}
    merged = {**spec.train_defaults, **task.train_params, **private, **(overrides or {})}
    values = {k: v for k, v in merged.items() if k in TRAIN_KEYS}
    if epochs is not None:
        values["epochs"] = epochs
    return TrainConfig(**values, seed=seed, progress=progress)


def monitor(task: Task) -> tuple[Callable[[np.ndarray, np.ndarray], float], str]:
    """The validation score early stopping follows: the task's primary metric."""
    def score(outputs: np.ndarray, targets: np.ndarray) -> float:
        return M.score(task.primary_metric, targets, to_probabilities(outputs, task.target),
                       task.target)
    mode = "max" if M.METRICS[task.primary_metric].higher_is_better else "min"
    return score, mode


def ensemble_for(spec: ModelSpec, ensemble: int | None, cross_fit: bool | None,
                 val_fold: tuple[int, int] | None) -> tuple[int, bool]:
    """Members and cross-fitting: as asked, else the model's defaults (one network when a
    validation fold is fixed, as in tuning trials)."""
    if ensemble is None:
        use_default = spec.family == "torch" and val_fold is None
        ensemble = spec.ensemble if use_default else 1
        cross_fit = (spec.cross_fit and use_default) if cross_fit is None else cross_fit
    return ensemble, bool(cross_fit)


def check_private(spec: ModelSpec, config: TrainConfig | None, ensemble: int,
                  overrides: dict[str, Any] | None) -> None:
    """Differential privacy needs one torch network (each ensemble member would spend the
    budget again on the same patients)."""
    asked = config.dp_epsilon if config is not None else (overrides or {}).get("dp_epsilon")
    if asked is None:
        return
    if spec.family != "torch":
        raise ConfigError(f"--dp-epsilon trains torch networks with DP-SGD; {spec.name!r} is a "
                          f"{spec.family} model (choose e.g. --model mlp)")
    if ensemble > 1:
        raise ConfigError("--dp-epsilon with --ensemble N would spend the privacy budget N times "
                          "on the same patients; use --ensemble 1")


def check_ensemble(spec: ModelSpec, ensemble: int, cross_fit: bool,
                   val_fold: tuple[int, int] | None, cross_fit_ok: bool) -> None:
    if ensemble < 1 or (ensemble > 1 and spec.family != "torch"):
        raise ConfigError("--ensemble N needs N >= 1 and a torch model")
    if not cross_fit:
        return
    if ensemble < 2:
        raise ConfigError("--cross-fit needs --ensemble N with N >= 2 (one member per fold)")
    if val_fold is not None:
        raise ConfigError("--cross-fit chooses each member's validation fold itself; drop val_fold")
    if not cross_fit_ok:
        raise ConfigError("--cross-fit is not available for token tagging (its ensembles vote "
                          "on entities, which has no out-of-fold counterpart)")


def fit(task: Task, spec: ModelSpec, data: TaskData, split: Split, run: RunFolder,
        settings: Settings, seed: int, config: TrainConfig | None, resume: bool,
        params: dict[str, Any] | None, callbacks: tuple[Callback, ...],
        ensemble: int = 1, cross_fit: bool = False) -> Predictor:
    """Fit the run's model (one network, an ensemble, or a scikit-learn estimator)."""
    xy_train = (data.inputs[split.train], data.targets[split.train])
    if spec.family == "sklearn":
        return fit_sklearn(spec, task.target, xy_train, seed=seed, run_dir=run.path, params=params,
                           n_classes=len(task.classes))
    assert config is not None
    score, mode = monitor(task)
    common = dict(device=settings.device, run_dir=run.path, resume=resume, monitor=score,
                  mode=mode, callbacks=callbacks, params=params,
                  balance=bool(task.train_params.get("balance", False)))
    if ensemble > 1:
        folds = ([validation_fold(split, data.patient_ids, k, ensemble, seed=seed)
                  for k in range(ensemble)] if cross_fit else [split] * ensemble)
        parts = [((data.inputs[f.train], data.targets[f.train]),
                  (data.inputs[f.val], data.targets[f.val])) for f in folds]
        predictor, results = fit_ensemble(spec, task.target, len(task.classes), parts, config,
                                          held_out=[f.val for f in folds] if cross_fit else None,
                                          **common)
    else:
        val = (data.inputs[split.val], data.targets[split.val])
        predictor, result = fit_torch(spec, task.target, len(task.classes), xy_train, val, config,
                                      **common)
        results = [result]
    if results[0].privacy is not None:
        write_json(run.file(PRIVACY), results[0].privacy)
        log.info("differential privacy: epsilon %.3g spent (delta %.2g, target %.3g)",
                 results[0].privacy["epsilon"], results[0].privacy["delta"],
                 results[0].privacy["target_epsilon"])
    frames = [pd.DataFrame([asdict(r) for r in res.history]).assign(member=k)
              for k, res in enumerate(results)]
    if frames and distributed.is_main():
        write_csv(run.file(TRAIN_LOG), pd.concat(frames, ignore_index=True))
    for res in results:
        log.info("trained %d epochs (best epoch %d, val %s %.4f%s)", res.epochs_run,
                 res.best_epoch, task.primary_metric, res.best_score,
                 f", resumed after epoch {res.resumed_from}" if res.resumed_from else "")
    return predictor
