"""Fitted models behind one interface, saved in and loaded from a run folder.

A predictor maps a task's inputs to scores in the metrics module's convention (probabilities
for classification, values for regression), whether a torch network or a scikit-learn model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from iatros.errors import ConfigError, RunError
from iatros.kinds import TargetKind
from iatros.models.registry import ModelSpec, get_model_spec
from iatros.run_folder import (
    CHECKPOINTS,
    MEMBERS,
    MODEL_DATA,
    MODEL_INFO,
    read_json_object,
    write_json,
)
from iatros.train import distributed
from iatros.train.artifacts import load_estimator, save_estimator
from iatros.train.heads import head_for
from iatros.train.seed import seed_everything
from iatros.train.trainer import (
    Callback,
    Monitor,
    TrainConfig,
    Trainer,
    TrainResult,
    atomic_save,
    load_checkpoint,
)

log = logging.getLogger("iatros")


def as_model_input(inputs: Any) -> np.ndarray:
    """A float matrix for tabular baselines; text (object arrays of strings) stays as it is."""
    x = np.asarray(inputs)
    return x if x.dtype == object else x.astype(np.float64)


def make_dataset(spec: ModelSpec, inputs: Any, targets: Any, kind: TargetKind, *, train: bool,
                 params: dict[str, Any]) -> Dataset:
    """The model's own Dataset for these inputs (augmented when `train`)."""
    if spec.dataset is None:
        raise ConfigError(f"model {spec.name!r} declares no dataset builder")
    return spec.dataset(inputs, targets, kind, train=train, params=params)


@dataclass
class TorchPredictor:
    """A torch network and the Trainer that runs its inference."""

    network: torch.nn.Module
    kind: TargetKind
    trainer: Trainer
    spec: ModelSpec
    info: dict[str, Any] = field(default_factory=dict)

    def predict_outputs(self, inputs: Any) -> np.ndarray:
        """Raw outputs (logits), averaged over test-time augmentation when the model asks."""
        dummy = np.zeros(len(inputs), dtype=np.float32)
        data = make_dataset(self.spec, inputs, dummy, self.kind, train=False,
                            params=self.info["params"])
        return self.trainer.predict(self.network, data)

    def predict_scores(self, inputs: Any) -> np.ndarray:
        return head_for(self.kind).scores(self.predict_outputs(inputs))

    def predict_survival(self, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(risk, times, survival curves) for a survival network."""
        from iatros.models.survival import curves_from_outputs

        return curves_from_outputs(self.network, self.predict_outputs(inputs))

    def survival_times(self) -> np.ndarray:
        """The time grid of this survival network's curves."""
        from iatros.models.survival import curve_times

        return curve_times(self.network)


@dataclass
class SklearnPredictor:
    """A fitted scikit-learn estimator or pipeline."""

    estimator: Any
    kind: TargetKind
    info: dict[str, Any] = field(default_factory=dict)
    spec: ModelSpec | None = None

    def predict_survival(self, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(risk, times, survival curves) for a Cox or random-survival-forest baseline."""
        from iatros.models.survival import baseline_survival_curves

        return baseline_survival_curves(self.estimator, np.asarray(inputs, dtype=np.float64))

    def predict_scores(self, inputs: Any) -> np.ndarray:
        scores = head_for(self.kind).sklearn_scores(self.estimator, as_model_input(inputs))
        return every_class(scores, getattr(self.estimator, "classes_", None),
                           self.info.get("n_classes"))


def every_class(scores: np.ndarray, fitted: Any, n_classes: int | None) -> np.ndarray:
    """One column per task class: a class absent from the training rows (a classifier then
    knows only `fitted` classes) gets probability 0 in its column."""
    if not n_classes or fitted is None or scores.ndim != 2 or scores.shape[1] >= n_classes:
        return scores
    out = np.zeros((len(scores), n_classes), dtype=scores.dtype)
    out[:, np.asarray(fitted, dtype=np.int64)] = scores
    return out


@dataclass
class EnsemblePredictor:
    """Several networks trained with different seeds; probabilities (or curves) are averaged,
    tagged entities are kept by majority vote.

    A cross-fit ensemble's members each validated on a different fold of the training rows;
    `held_out[k]` are member k's rows (indices into the task's data), which `out_of_fold`
    scores with that member alone. Explanations use the first member's network.
    """

    members: list[TorchPredictor]
    kind: TargetKind
    info: dict[str, Any] = field(default_factory=dict)
    held_out: list[np.ndarray] | None = None

    @property
    def network(self) -> torch.nn.Module:
        return self.members[0].network

    @property
    def spec(self) -> ModelSpec:
        return self.members[0].spec

    def predict_scores(self, inputs: Any) -> np.ndarray:
        return head_for(self.kind).combine([m.predict_scores(inputs) for m in self.members])

    def predict_survival(self, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean risk and mean curve; members fitted on different rows have different time grids,
        so curves are read as steps on the union of the grids."""
        parts = [m.predict_survival(inputs) for m in self.members]
        grid = self.time_grid()
        return (np.mean([p[0] for p in parts], axis=0), grid,
                np.mean([_on_grid(p, grid) for p in parts], axis=0))

    def time_grid(self) -> np.ndarray:
        """The members' common time grid: the union of their own (the same for seed ensembles)."""
        return np.unique(np.concatenate([m.survival_times() for m in self.members]))

    def out_of_fold(self, rows: np.ndarray) -> OutOfFold:
        """This ensemble scoring `rows` without looking at its own training: each row a member
        held out scores with that member; other rows (e.g. test) with the whole ensemble."""
        member = np.full(len(rows), -1)
        for k, held in enumerate(self.held_out or []):
            member[np.isin(rows, held)] = k
        return OutOfFold(self, member)


def _on_grid(part: tuple[np.ndarray, np.ndarray, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """A member's curves read as steps on the ensemble's grid (unchanged on their own grid)."""
    from iatros.models.survival import curves_on_grid

    return curves_on_grid(np.asarray(part[1], dtype=np.float64), np.asarray(part[2]), grid)


@dataclass
class OutOfFold:
    """A cross-fit ensemble's out-of-fold view of some rows: row i is scored by member
    `member[i]`, or by the whole ensemble where that is -1. Inputs must be those rows, in order."""

    ensemble: EnsemblePredictor
    member: np.ndarray

    @property
    def info(self) -> dict[str, Any]:
        return self.ensemble.info

    def _pieces(self, inputs: Any, predict: Any) -> list[tuple[np.ndarray, Any]]:
        if len(inputs) != len(self.member):
            raise ConfigError(f"out-of-fold scoring got {len(inputs)} rows for {len(self.member)}")
        pieces = []
        for k in np.unique(self.member):
            idx = np.flatnonzero(self.member == k)
            model = self.ensemble if k < 0 else self.ensemble.members[k]
            pieces.append((idx, predict(model, inputs[idx])))
        return pieces

    def predict_scores(self, inputs: Any) -> np.ndarray:
        pieces = self._pieces(inputs, lambda m, x: m.predict_scores(x))
        out = np.empty((len(self.member), *np.shape(pieces[0][1])[1:]))
        for idx, scores in pieces:
            out[idx] = scores
        return out

    def predict_survival(self, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pieces = self._pieces(inputs, lambda m, x: m.predict_survival(x))
        grid = self.ensemble.time_grid()
        risk, survival = np.empty(len(self.member)), np.empty((len(self.member), len(grid)))
        for idx, part in pieces:
            risk[idx], survival[idx] = part[0], _on_grid(part, grid)
        return risk, grid, survival


def scoring_view(predictor: Predictor, rows: np.ndarray) -> Predictor | OutOfFold:
    """The predictor to score `rows` of the task's data honestly: out-of-fold for a cross-fit
    ensemble, the predictor itself otherwise."""
    if isinstance(predictor, EnsemblePredictor) and predictor.held_out:
        return predictor.out_of_fold(np.asarray(rows))
    return predictor


Predictor = TorchPredictor | SklearnPredictor | EnsemblePredictor

ENSEMBLE_DONE = "member-complete"


def fit_ensemble(spec: ModelSpec, kind: TargetKind, n_classes: int,
                 parts: Sequence[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
                 config: TrainConfig, *, run_dir: Path, resume: bool = False, device: str,
                 held_out: Sequence[np.ndarray] | None = None,
                 **kwargs: Any) -> tuple[EnsemblePredictor, list[TrainResult]]:
    """Train one member per (train, val) part with seeds seed, seed+1, ...; each member resumes
    on its own. `held_out` (rows each member validated on) makes it a cross-fit ensemble."""
    members, results = [], []
    for k, (train, val) in enumerate(parts):
        member_dir = run_dir / MEMBERS / f"m{k}"
        member_dir.mkdir(parents=True, exist_ok=True)
        if resume and (member_dir / ENSEMBLE_DONE).exists():
            members.append(load_predictor(member_dir, device))
            continue
        member_resume = resume and (member_dir / CHECKPOINTS / "last.pt").exists()
        predictor, result = fit_torch(spec, kind, n_classes, train, val,
                                      replace(config, seed=config.seed + k), device=device,
                                      run_dir=member_dir, resume=member_resume, **kwargs)
        if distributed.is_main():
            (member_dir / ENSEMBLE_DONE).write_text("ok\n")
        members.append(predictor)
        results.append(result)
    info = {"name": spec.name, "family": "ensemble", "kind": kind.value,
            "members": [f"{MEMBERS}/m{k}" for k in range(len(parts))],
            "params": members[0].info["params"]}
    if held_out is not None:
        info["held_out"] = [[int(r) for r in rows] for rows in held_out]
    if distributed.is_main():
        _write_info(run_dir, info, spec)
    return _ensemble(members, kind, info), results


def _ensemble(members: list[TorchPredictor], kind: TargetKind, info: dict[str, Any]) -> EnsemblePredictor:
    held = info.get("held_out")
    return EnsemblePredictor(members, kind, info,
                             [np.asarray(r, dtype=np.int64) for r in held] if held else None)


def _write_info(run_dir: Path, info: dict[str, Any], spec: ModelSpec) -> None:
    """model.json, which is shared with the model card; parameters learned from the training
    data's text (a tagger's vocabulary) go to model_data.json, which is not."""
    params = dict(info.get("params") or {})
    private = {k: params.pop(k) for k in spec.private_params if k in params}
    write_json(run_dir / MODEL_INFO, {**info, "params": params})
    if private:
        write_json(run_dir / MODEL_DATA, private)


def fit_torch(spec: ModelSpec, kind: TargetKind, n_classes: int,
              train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
              config: TrainConfig, *, device: str, run_dir: Path, resume: bool = False,
              monitor: Monitor | None = None, mode: str = "max", callbacks: tuple[Callback, ...] = (),
              params: dict[str, Any] | None = None, balance: bool = False,
              ) -> tuple[TorchPredictor, TrainResult]:
    """Build the network, train it with the one Trainer, keep the best epoch's weights.

    The target kind's head decides the output width, loss and monitor (survival: cut points,
    partial likelihood, C-index; a Cox head on encoders that are not survival networks) and
    what is fitted from the best weights afterwards; the model spec's hooks fit its own
    preprocessing and target scale."""
    params = {**spec.params, **(params or {})}
    if config.dp_epsilon is not None and params.get("batch_norm") is True:
        # batch norm mixes examples, which DP-SGD's per-example gradients cannot allow
        log.info("differential privacy: %s trained without batch norm", spec.name)
        params["batch_norm"] = False
    x_train, y_train = train
    n_inputs = spec.n_inputs(x_train, params) if spec.n_inputs else int(np.asarray(x_train).shape[1])
    head = head_for(kind)
    wrapped = head.wraps(spec)
    width = head.outputs(spec, n_classes)
    seed_everything(config.seed, config.deterministic)  # initial weights follow the run's seed
    network = head.build(spec, n_inputs, width, params, wrapped)
    if spec.prepare is not None:
        spec.prepare(network, x_train)
    loss_fn, monitor, mode = head.setup(spec, network, y_train, params, balance, monitor, mode)
    trainer = Trainer(config, device=device, checkpoint_dir=run_dir / CHECKPOINTS,
                      callbacks=callbacks)
    info = {"name": spec.name, "family": "torch", "kind": kind.value, "n_inputs": n_inputs,
            "n_outputs": width, "params": params, "batch_size": config.batch_size,
            "amp": config.amp, "cox_head": wrapped}
    if distributed.is_main():
        _write_info(run_dir, info, spec)
    result = trainer.fit(network, loss_fn,
                         make_dataset(spec, x_train, y_train, kind, train=True, params=params),
                         make_dataset(spec, *val, kind, train=False, params=params),
                         monitor=monitor, mode=mode, resume=resume)
    if not distributed.is_main():  # only rank 0 goes on to fit the head and evaluate
        return TorchPredictor(network, kind, trainer, spec, info), result
    head.after_fit(spec, network, x_train, y_train,
                   lambda: trainer.predict(network, make_dataset(spec, x_train, y_train, kind,
                                                                 train=False, params=params)),
                   run_dir / CHECKPOINTS / "best.pt")
    return TorchPredictor(network, kind, trainer, spec, info), result


def save_network(run_dir: Path, spec: ModelSpec, kind: TargetKind, network: torch.nn.Module,
                 info: dict[str, Any]) -> None:
    """A network trained elsewhere (a federated run's global model) saved as a torch run
    folder's model, loadable by `load_predictor` like any trained network."""
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    atomic_save({"model": network.state_dict()}, run_dir / CHECKPOINTS / "best.pt")
    _write_info(run_dir, {"name": spec.name, "family": "torch", "kind": kind.value, **info}, spec)


def fit_sklearn(spec: ModelSpec, kind: TargetKind, train: tuple[np.ndarray, np.ndarray], *,
                seed: int, run_dir: Path, params: dict[str, Any] | None = None,
                n_classes: int | None = None) -> SklearnPredictor:
    """Fit a classical baseline on the training rows and save it; `n_classes` (the task's) keeps
    a column for every class even when the training rows lack one."""
    params = {**spec.params, **(params or {})}
    estimator = spec.build(kind, seed, **params)
    x_train, y_train = train
    estimator.fit(as_model_input(x_train), np.asarray(y_train))
    info = {"name": spec.name, "family": "sklearn", "kind": kind.value, "params": params,
            **({"n_classes": int(n_classes)} if n_classes and kind.class_indices else {})}
    save_estimator(estimator, run_dir)
    _write_info(run_dir, info, spec)
    return SklearnPredictor(estimator, kind, info, spec)


def load_predictor(run_dir: Path, device: str = "cpu", trust: bool = False) -> Predictor:
    """The fitted model saved in a run folder (best checkpoint for torch models), loaded without
    unpickling anything: torch weights only, scikit-learn models through skops against a list
    of trusted types (a format-1 pickle only with `trust`)."""
    run_dir = Path(run_dir)
    info = read_json_object(run_dir / MODEL_INFO, "the run folder is incomplete")
    if (run_dir / MODEL_DATA).is_file():
        info["params"] = {**info.get("params", {}), **read_json_object(run_dir / MODEL_DATA)}
    spec = get_model_spec(info["name"])
    kind = TargetKind(info["kind"])
    if info["family"] == "ensemble":
        return _ensemble([load_predictor(run_dir / m, device, trust) for m in info["members"]],
                         kind, info)
    if info["family"] == "sklearn":
        return SklearnPredictor(load_estimator(run_dir, trust), kind, info, spec)
    network = head_for(kind).build(spec, info["n_inputs"], info["n_outputs"], info["params"],
                                  bool(info.get("cox_head")))
    path = run_dir / CHECKPOINTS / "best.pt"
    try:
        network.load_state_dict(load_checkpoint(path)["model"])
    except (RuntimeError, KeyError) as e:
        raise RunError(f"checkpoint {path} does not fit model {spec.name!r} as configured in "
                       f"{MODEL_INFO} ({str(e).splitlines()[0][:200]})") from e
    batch = int(info.get("batch_size", 64))
    trainer = Trainer(TrainConfig(progress=False, batch_size=batch,
                                  amp=info.get("amp")), device=device)
    return TorchPredictor(network, kind, trainer, spec, info)
