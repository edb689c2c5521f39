"""The public Python API: the same words as the CLI (tasks, train, evaluate, audit, report, runs).

    import iatros.api as ia
    run = ia.train("breast-cancer-wdbc", epochs=30)
    ia.evaluate(run, split="val")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros import __version__
from iatros.data.splits import SPLIT_NAMES, Split, validation_fold
from iatros.errors import ConfigError, MissingDataError, RunError
from iatros.evaluate import metrics as M
from iatros.evaluate.calibration import calibrator_from_dict, fit_calibrator, reliability_curve
from iatros.evaluate.fairness import audit as audit_attributes
from iatros.evaluate.fairness import subgroup_audit
from iatros.evaluate.thresholds import choose_threshold
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import ModelSpec, get_model_spec
from iatros.registry import ModelVersion, Registry, RunEntry
from iatros.report import write_report
from iatros.run_folder import (
    CALIBRATION,
    CONFIG,
    METRICS,
    PREDICTIONS,
    TRAIN_LOG,
    TUNING,
    RunFolder,
    now_iso,
    read_json,
    slug,
    write_csv,
    write_json,
)
from iatros.settings import Settings, get_settings
from iatros.tasks import Task, TaskData, get_task, list_tasks
from iatros.train.losses import to_probabilities
from iatros.train.predictors import (
    Predictor,
    fit_ensemble,
    fit_sklearn,
    fit_torch,
    load_predictor,
    make_dataset,
    scoring_view,
)
from iatros.train.trainer import Callback, TrainConfig

log = logging.getLogger("iatros")

__all__ = ["audit", "demo", "evaluate", "promote", "report", "runs", "tasks", "train", "tune"]


@dataclass(frozen=True)
class EvalOptions:
    """How a run is scored: bootstrap size, threshold, seed of the resampling."""

    n_boot: int = 1000
    threshold: str | float = "youden"
    seed: int = 0


def _settings_for(data_root: str | Path | None, settings: Settings | None,
                  device: str | None = None) -> Settings:
    """Settings reading from `data_root`; an explicitly named root must exist."""
    settings = (settings or get_settings(device=device)).with_data_root(data_root)
    if data_root is not None and not settings.data_root.is_dir():
        raise MissingDataError(f"data root {settings.data_root} does not exist or is not a folder; "
                               f"pass an existing folder to --data-root or set IATROS_DATA")
    return settings


def tasks() -> list[dict[str, Any]]:
    """Every registered task, as a table row."""
    return [t.summary() for t in list_tasks()]


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
def _resolve_run_dir(settings: Settings, task: Task, model: str, out: str | Path | None,
                     resume: bool) -> RunFolder:
    if out is not None:
        run = RunFolder(out)
        if resume:
            if not run.exists:
                raise RunError(f"--resume given but {run.path} holds no run to resume")
            run.config()
            return run
        if run.path.exists() and any(run.path.iterdir()):
            raise RunError(f"{run.path} already exists and is not empty; choose another --out "
                           f"or add --resume to continue the run in it")
        return run
    if resume:
        candidates = sorted(settings.runs_dir.glob(f"{slug(task.name)}-*"), reverse=True)
        for path in candidates:
            folder = RunFolder(path)
            if folder.exists and not folder.is_complete:
                return folder
        raise RunError(f"no unfinished run of {task.name} under {settings.runs_dir} to resume; "
                       f"pass --out RUN_FOLDER")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = settings.runs_dir / f"{slug(task.name)}-{slug(model)}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return RunFolder(path)


def _split_summary(task: Task, data: TaskData, split: Split) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        rows = split.part(name)
        entry = {"rows": int(len(rows)), "patients": int(len(np.unique(data.patient_ids[rows])))}
        if task.target is TargetKind.BINARY:
            entry["positives"] = int(np.sum(data.targets[rows] == 1))
        elif task.target in (TargetKind.MULTICLASS, TargetKind.ORDINAL):
            entry["class_counts"] = np.bincount(data.targets[rows].astype(int),
                                                minlength=len(task.classes)).tolist()
        out[name] = entry
    return out


def _check_model(task: Task, model: str) -> ModelSpec:
    spec = get_model_spec(model)
    if task.modality not in spec.modalities:
        raise ConfigError(f"model {model!r} does not read {task.modality.value} data; "
                          f"task {task.name} supports: {', '.join(task.models)}")
    return spec


def _train_config(spec: ModelSpec, task: Task, epochs: int | None, seed: int, progress: bool,
                  overrides: dict[str, Any] | None) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)} - {"seed", "progress"}
    merged = {**spec.train_defaults, **task.train_params, **(overrides or {})}
    values = {k: v for k, v in merged.items() if k in known}
    if epochs is not None:
        values["epochs"] = epochs
    return TrainConfig(**values, seed=seed, progress=progress)


def _new_config(task: Task, spec: ModelSpec, settings: Settings, seed: int,
                train_config: TrainConfig | None, params: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "task": task.name, "description": task.description, "modality": task.modality.value,
        "target_kind": task.target.value, "classes": list(task.classes),
        "model": spec.name, "model_family": spec.family,
        "model_description": spec.description, "model_params": {**spec.params, **(params or {})},
        "train": asdict(train_config) if train_config else None,
        "seed": seed, "epochs": train_config.epochs if train_config else None,
        "data_root": str(settings.data_root), "device": settings.device,
        "created": now_iso(), "iatros_version": __version__,
        "intended_use": task.intended_use, "limitations": list(task.limitations),
        "source": task.source, "sensitive_attributes": list(task.sensitive_attributes),
        "primary_metric": task.primary_metric, "split_by": task.split_by,
    }


def _monitor(task: Task) -> Any:
    def score(outputs: np.ndarray, targets: np.ndarray) -> float:
        return M.score(task.primary_metric, targets, to_probabilities(outputs, task.target),
                       task.target)
    mode = "max" if M.METRICS[task.primary_metric].higher_is_better else "min"
    return score, mode


def train(
    task: str | Task,
    *,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    model: str | None = None,
    resume: bool = False,
    device: str | None = None,
    params: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
    ensemble: int | None = None,
    eval_options: EvalOptions = EvalOptions(),
    progress: bool = False,
    register: bool = True,
    callbacks: Sequence[Callback] = (),
    settings: Settings | None = None,
    val_fold: tuple[int, int] | None = None,
    cross_fit: bool | None = None,
) -> Path:
    """Train a model on a task, evaluate it, write its report, register it; return the run folder.

    With `resume`, continue an interrupted run in `out` (or the task's newest unfinished run)
    from its last checkpoint, using the configuration saved when it started. `task_options`
    configure family tasks, e.g. {"target": "died"} for `csv:PATH`. `val_fold` (fold, n_folds)
    re-cuts train + val so validation is that fold (used by `tune`); test stays the same.
    `cross_fit` with `ensemble` N trains member k with fold k of N as its validation, so every
    training row fits N-1 members; validation metrics and calibration use out-of-fold scores.
    Left unset, both come from the model (DeepSurv: a 5-member cross-fit ensemble; others: one).
    """
    settings = _settings_for(data_root, settings, device)
    if isinstance(task, str):
        if resume and out is not None and RunFolder(out).exists:
            saved_options = RunFolder(out).config().get("task_options") or {}
            task_options = {**saved_options, **(task_options or {})}
        task = _task(task, task_options, settings)
    run = _resolve_run_dir(settings, task, model or task.default_model, out, resume)
    if resume:
        saved = run.config()
        if saved.get("task") != task.name:
            raise RunError(f"run folder {run.path} belongs to task {saved.get('task')!r}, "
                           f"not {task.name!r}")
        if run.is_complete:
            raise RunError(f"run {run.path} already finished; start a new run instead")
        if model and model != saved["model"]:
            raise RunError(f"run {run.path} trains {saved['model']!r}, not {model!r}")
        model, seed, params = saved["model"], saved["seed"], saved["model_params"]
        ensemble = int(saved.get("ensemble", 1))
        val_fold = tuple(saved["val_fold"]) if saved.get("val_fold") else None
        cross_fit = bool(saved.get("cross_fit"))
        train_overrides = {**(saved.get("train") or {}), **(train_overrides or {})}
        log.info("resuming %s in %s", task.name, run.path)
    spec = _check_model(task, model or task.default_model)
    ensemble, cross_fit = _ensemble_for(spec, ensemble, cross_fit, val_fold)
    if ensemble < 1 or (ensemble > 1 and spec.family != "torch"):
        raise ConfigError("--ensemble N needs N >= 1 and a torch model")
    _check_cross_fit(cross_fit, ensemble, val_fold, task)
    if (params or {}).get("weights") and task.modality is not Modality.IMAGE:
        raise ConfigError("--weights applies to image models only")
    train_config = (_train_config(spec, task, epochs, seed, progress, train_overrides)
                    if spec.family == "torch" else None)
    if spec.family == "torch" and not resume:
        params = {**task.model_params, **(params or {})}
    data = task.load(settings.data_root)
    split = run_split(task, data, seed, val_fold, cross_fit)
    run.path.mkdir(parents=True, exist_ok=True)
    if not resume:
        config = _new_config(task, spec, settings, seed, train_config, params)
        config["data"] = {"n_rows": len(data), "n_patients": int(len(np.unique(data.patient_ids))),
                          "n_features": len(data.feature_names or []),
                          "features": data.feature_names, "loader": data.source,
                          "splits": _split_summary(task, data, split)}
        config["task_options"] = task.extra.get("options")
        config["ensemble"] = ensemble
        config["val_fold"] = list(val_fold) if val_fold else None
        config["cross_fit"] = cross_fit
        write_json(run.file(CONFIG), config)
    run.set_status("running", started=now_iso())
    try:
        t0 = time.perf_counter()
        predictor = _fit(task, spec, data, split, run, settings, seed, train_config, resume,
                         params, tuple(callbacks), ensemble, cross_fit)
        train_seconds = time.perf_counter() - t0
        _finish(run, task, predictor, data, split, eval_options)
        run.set_status("complete", finished=now_iso(), train_seconds=round(train_seconds, 2))
    except (Exception, KeyboardInterrupt) as e:
        if not isinstance(e, KeyboardInterrupt):
            run.set_status("failed", error=str(e))
        raise
    if register:
        _register(settings, run)
    return run.path


def _ensemble_for(spec: ModelSpec, ensemble: int | None, cross_fit: bool | None,
                  val_fold: tuple[int, int] | None) -> tuple[int, bool]:
    """Members and cross-fitting: as asked, else the model's defaults (one network when a
    validation fold is fixed, as in tuning trials)."""
    if ensemble is None:
        use_default = spec.family == "torch" and val_fold is None
        ensemble = spec.ensemble if use_default else 1
        cross_fit = (spec.cross_fit and use_default) if cross_fit is None else cross_fit
    return ensemble, bool(cross_fit)


def _check_cross_fit(cross_fit: bool, ensemble: int, val_fold: tuple[int, int] | None,
                     task: Task) -> None:
    if not cross_fit:
        return
    if ensemble < 2:
        raise ConfigError("--cross-fit needs --ensemble N with N >= 2 (one member per fold)")
    if val_fold is not None:
        raise ConfigError("--cross-fit chooses each member's validation fold itself; drop val_fold")
    if task.target is TargetKind.TOKENS:
        raise ConfigError("--cross-fit is not available for token tagging (its ensembles vote "
                          "on entities, which has no out-of-fold counterpart)")


def run_split(task: Task, data: TaskData, seed: int, val_fold: tuple[int, int] | list[int] | None = None,
              cross_fit: bool = False) -> Split:
    """The rows a run uses: the task's split, re-cut for a validation fold, or for a cross-fit
    ensemble train = val = all training rows (val is then scored out of fold)."""
    split = task.split(data, seed)
    if val_fold:
        split = validation_fold(split, data.patient_ids, *val_fold, seed=seed)
    if cross_fit:
        pool = np.union1d(split.train, split.val)
        split = Split(pool, pool, split.test)
    return split


def _saved_split(task: Task, data: TaskData, config: dict[str, Any]) -> Split:
    return run_split(task, data, config["seed"], config.get("val_fold"), bool(config.get("cross_fit")))


def tune(
    task: str | Task,
    space: dict[str, list[Any]],
    *,
    model: str | None = None,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    max_trials: int = 20,
    epochs: int | None = None,
    ensemble: int = 1,
    folds: int = 1,
    cross_fit: bool = False,
    task_options: dict[str, Any] | None = None,
    eval_options: EvalOptions = EvalOptions(),
    progress: bool = False,
    register: bool = True,
    settings: Settings | None = None,
) -> Path:
    """Train one run per setting drawn from `space`, keep the best by validation score.

    `space` maps model parameters or training settings (lr, weight_decay, epochs...) to the values
    to try. Only the validation split guides the choice; the chosen setting is then trained as an
    ordinary run in `out` (scored on test once) whose `tuning.json` lists every trial. With
    `ensemble` > 1 every trial is an ensemble of that many seeds, so a setting is judged on a
    steadier validation score than one network's. With `folds` > 1 each setting is scored by
    cross-validation over train + val (mean of the folds' validation scores); the test part is
    never used until the chosen run. With `cross_fit` (needs `folds` > 1, one network per
    trial fold) the chosen setting is trained as a cross-fit ensemble over `folds` folds.
    """
    import tempfile

    from iatros.train.search import best_trial, grid_trials, split_trial

    settings = _settings_for(data_root, settings, None)
    task_obj = _task(task, task_options, settings) if isinstance(task, str) else task
    spec = _check_model(task_obj, model or task_obj.default_model)
    if cross_fit and (folds < 2 or ensemble > 1):
        raise ConfigError("tuning with --cross-fit needs --folds K >= 2 and no --ensemble: the "
                          "chosen setting becomes a cross-fit ensemble of K members")
    metric = task_obj.primary_metric
    higher = M.METRICS[metric].higher_is_better if metric in M.METRICS else True
    trials = grid_trials(space, max_trials, seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="iatros-tune-") as tmp:
        for k, trial in enumerate(trials):
            params, train_settings = split_trial(trial)
            t0 = time.perf_counter()
            scores = []
            for fold in range(folds):
                path = train(task_obj, settings=settings, out=Path(tmp) / f"trial{k}-fold{fold}",
                             epochs=epochs, seed=seed, model=spec.name, params=params,
                             train_overrides=train_settings, ensemble=ensemble,
                             eval_options=EvalOptions(0, eval_options.threshold, seed),
                             progress=progress, register=False,
                             val_fold=(fold, folds) if folds > 1 else None)
                scores.append(read_json(path / METRICS)["splits"]["val"][metric].get("value"))
            usable = [v for v in scores if v is not None and np.isfinite(v)]
            value = float(np.mean(usable)) if len(usable) == len(scores) else None
            rows.append({"trial": k, "settings": trial, "val": value,
                         "folds": scores if folds > 1 else None,
                         "seconds": round(time.perf_counter() - t0, 2)})
            log.info("trial %d/%d %s: val %s %s", k + 1, len(trials), trial, metric, value)
    chosen = best_trial([r["val"] for r in rows], higher)
    params, train_settings = split_trial(trials[chosen])
    run = train(task_obj, settings=settings, out=out, epochs=epochs, seed=seed, model=spec.name,
                params=params, train_overrides=train_settings, eval_options=eval_options,
                progress=progress, register=register, ensemble=folds if cross_fit else ensemble,
                cross_fit=cross_fit)
    write_json(run / TUNING, {"metric": metric, "split": "val", "higher_is_better": higher,
                              "space": space, "max_trials": max_trials, "ensemble": ensemble,
                              "folds": folds, "cross_fit": cross_fit,
                              "chosen": chosen, "trials": rows})
    return run


def _fit(task: Task, spec: ModelSpec, data: TaskData, split: Split, run: RunFolder,
         settings: Settings, seed: int, train_config: TrainConfig | None, resume: bool,
         params: dict[str, Any] | None, callbacks: tuple[Callback, ...],
         ensemble: int = 1, cross_fit: bool = False) -> Predictor:
    train_rows, val_rows = split.train, split.val
    xy_train = (data.inputs[train_rows], data.targets[train_rows])
    if spec.family == "sklearn":
        return fit_sklearn(spec, task.target, xy_train, seed=seed, run_dir=run.path, params=params)
    assert train_config is not None
    monitor, mode = _monitor(task)
    common = dict(device=settings.device, run_dir=run.path, resume=resume, monitor=monitor,
                  mode=mode, callbacks=callbacks, params=params,
                  balance=bool(task.train_params.get("balance", False)))
    val_xy = (data.inputs[val_rows], data.targets[val_rows])
    if ensemble > 1:
        folds = ([validation_fold(split, data.patient_ids, k, ensemble, seed=seed)
                  for k in range(ensemble)] if cross_fit else [split] * ensemble)
        parts = [((data.inputs[f.train], data.targets[f.train]), (data.inputs[f.val], data.targets[f.val]))
                 for f in folds]
        predictor, results = fit_ensemble(spec, task.target, len(task.classes), parts, train_config,
                                          held_out=[f.val for f in folds] if cross_fit else None,
                                          **common)
    else:
        predictor, result = fit_torch(spec, task.target, len(task.classes), xy_train, val_xy,
                                      train_config, **common)
        results = [result]
    frames = [pd.DataFrame([asdict(r) for r in res.history]).assign(member=k)
              for k, res in enumerate(results)]
    if frames:
        write_csv(run.file(TRAIN_LOG), pd.concat(frames, ignore_index=True))
    for res in results:
        log.info("trained %d epochs (best epoch %d, val %s %.4f%s)", res.epochs_run,
                 res.best_epoch, task.primary_metric, res.best_score,
                 f", resumed after epoch {res.resumed_from}" if res.resumed_from else "")
    return predictor


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _score_columns(kind: TargetKind, scores: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    if kind is TargetKind.BINARY:
        return {prefix: scores}
    if kind is TargetKind.REGRESSION:
        return {"prediction": scores}
    return {f"{prefix}_{j}": scores[:, j] for j in range(scores.shape[1])}


def _prediction_frame(split_name: str, rows: np.ndarray, data: TaskData, kind: TargetKind,
                      raw: np.ndarray, calibrated: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"split": split_name, "row": rows, "patient_id": data.patient_ids[rows]})
    targets = data.targets[rows]
    if targets.ndim == 1:
        frame["target"] = targets
    else:
        for j in range(targets.shape[1]):
            frame[f"target_{j}"] = targets[:, j]
    if kind is TargetKind.REGRESSION:
        frame["prediction"] = calibrated
    else:
        for name, values in {**_score_columns(kind, calibrated, "prob"),
                             **_score_columns(kind, raw, "prob_raw")}.items():
            frame[name] = values
    for column in data.attributes.columns:
        frame[f"attr_{column}"] = data.attributes[column].to_numpy()[rows]
    return frame


def _metrics_for(task: Task) -> tuple[str, ...]:
    return task.metrics or M.default_metrics(task.target)


def _score_part(task: Task, targets: np.ndarray, scores: np.ndarray, patients: np.ndarray,
                options: EvalOptions) -> dict[str, Any]:
    return M.evaluate(targets, scores, task.target, metrics=_metrics_for(task),
                      threshold=options.threshold, n_boot=options.n_boot, seed=options.seed,
                      clusters=patients)


def _calibration_section(task: Task, calibrator: Any, targets: np.ndarray, raw: np.ndarray,
                         calibrated: np.ndarray, patients: np.ndarray,
                         options: EvalOptions) -> dict[str, Any]:
    if task.target is TargetKind.REGRESSION:
        return {}
    keys = [k for k in ("ece", "brier") if k in M.default_metrics(task.target)]
    before = M.evaluate(targets, raw, task.target, metrics=keys, threshold=options.threshold,
                        n_boot=options.n_boot, seed=options.seed, clusters=patients)
    after = M.evaluate(targets, calibrated, task.target, metrics=keys,
                       threshold=options.threshold, n_boot=options.n_boot, seed=options.seed,
                       clusters=patients)
    info = calibrator.to_dict()
    section = {"method": info.get("type", "none"), "note": info.get("note") or "",
               "fitted_on": "val", "test_before": before, "test_after": after}
    if task.target in (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.ORDINAL):
        section["reliability"] = {"test_before": reliability_curve(targets, raw, task.target),
                                  "test_after": reliability_curve(targets, calibrated, task.target)}
    return section


def _audits(task: Task, data: TaskData, rows: np.ndarray, scores: np.ndarray,
            options: EvalOptions) -> dict[str, Any]:
    if not task.sensitive_attributes:
        return {}
    attrs = data.attributes.iloc[rows][list(task.sensitive_attributes)].reset_index(drop=True)
    return audit_attributes(data.targets[rows], scores, attrs, task.target,
                            metrics=_metrics_for(task), threshold=options.threshold,
                            n_boot=options.n_boot, seed=options.seed,
                            clusters=data.patient_ids[rows])


def _finish(run: RunFolder, task: Task, predictor: Predictor, data: TaskData, split: Split,
            options: EvalOptions) -> None:
    """Predict val and test, calibrate on val, write predictions, metrics and the report."""
    if task.target is TargetKind.SURVIVAL:
        from iatros.survival_run import finish_survival

        write_json(run.file(METRICS), finish_survival(run, task, predictor, data, split, options))
        write_report(run.path)
        return
    if task.target is TargetKind.TOKENS:
        from iatros.text_run import finish_tokens

        write_json(run.file(METRICS), finish_tokens(run, task, predictor, data, split, options))
        write_report(run.path)
        return
    raw = {name: scoring_view(predictor, split.part(name)).predict_scores(data.inputs[split.part(name)])
           for name in ("val", "test")}
    for name, scores in raw.items():
        bad = ~np.isfinite(np.asarray(scores, dtype=float))
        if bad.any():
            rows = split.part(name)[np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))]
            raise RunError(f"the trained model gives non-finite predictions for {len(rows)} {name} "
                           f"row(s) (e.g. {', '.join(data.patient_ids[rows[:3]])}); training may "
                           f"have diverged: lower the learning rate or turn off mixed precision")
    val_y = data.targets[split.val]
    calibrator = fit_calibrator(task.target, raw["val"], val_y)
    write_json(run.file(CALIBRATION), calibrator.to_dict())
    calibrated = {name: calibrator.transform(scores) for name, scores in raw.items()}
    threshold, threshold_rule = 0.5, ""
    if task.target is TargetKind.BINARY:
        threshold, threshold_rule = choose_threshold(options.threshold, val_y, calibrated["val"])
    options = EvalOptions(options.n_boot, threshold, options.seed)
    frames = [_prediction_frame(name, split.part(name), data, task.target, raw[name],
                                calibrated[name]) for name in ("val", "test")]
    write_csv(run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
    test = split.test
    metrics = {
        "task": task.name, "model": predictor.info.get("name"), "target_kind": task.target.value,
        "primary_metric": task.primary_metric, "threshold": threshold,
        "threshold_rule": threshold_rule,
        "splits": {name: _score_part(task, data.targets[split.part(name)], calibrated[name],
                                     data.patient_ids[split.part(name)], options)
                   for name in ("test", "val")},
        "calibration": _calibration_section(task, calibrator, data.targets[test], raw["test"],
                                            calibrated["test"], data.patient_ids[test], options),
        "subgroups": _audits(task, data, test, calibrated["test"], options),
        "bootstrap": {"n_boot": options.n_boot, "seed": options.seed, "unit": "patient",
                      "ci": 0.95},
    }
    write_json(run.file(METRICS), metrics)
    _explain_test_examples(run, task, predictor, data, test, calibrated["test"])
    if task.modality is Modality.TEXT:
        from iatros.text_run import explain_notes

        explain_notes(run, task, predictor, data, test, calibrated["test"])
    write_report(run.path)


def _pick_examples(targets: np.ndarray, scores: np.ndarray, kind: TargetKind, n: int = 4) -> list[int]:
    """Test rows worth showing: confident hits, confident errors and misses (or one per class)."""
    if kind is TargetKind.BINARY:
        pos, neg = np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)
        picks = [pos[np.argmax(scores[pos])] if len(pos) else None,
                 neg[np.argmax(scores[neg])] if len(neg) else None,
                 pos[np.argmin(scores[pos])] if len(pos) else None,
                 neg[np.argmin(scores[neg])] if len(neg) else None]
    else:
        picks = [int(np.argmax(scores[:, c])) for c in range(min(scores.shape[1], n))]
    return list(dict.fromkeys(int(p) for p in picks if p is not None))[:n]


def _class_name(task: Task, index: int) -> str:
    return task.classes[index] if index < len(task.classes) else str(index)


def explain_rows(predictor: Predictor, task: Task, inputs: Any, labels: Sequence[str],
                 scores: np.ndarray, out_dir: Path, names: Sequence[str] | None = None,
                 method: str = "gradcam") -> list[dict[str, Any]]:
    """Grad-CAM overlays for image inputs (arrays or paths); one entry per input."""
    from iatros.explain.gradcam import explain_image

    network = getattr(predictor, "network", None)
    if task.modality is not Modality.IMAGE or not hasattr(network, "cam_layer"):
        return []
    dummy = np.zeros(len(inputs), dtype=np.float32)
    dataset = make_dataset(predictor.spec, inputs, dummy, task.target, train=False,
                           params=predictor.info["params"])
    items = []
    for k in range(len(inputs)):
        x, _ = dataset[k]
        unit, shown, explained = _output_unit(task, scores[k])
        caption = f"{labels[k]}: {shown}; heat map for {explained}"
        name = names[k] if names else f"gradcam_{k}"
        item = explain_image(network, x, unit, out_dir / f"{name}.png", caption, method=method)
        items.append({**item, "caption": caption})
    return items


def _true_label(task: Task, target: Any) -> str:
    """The reference label of one row as text (every positive finding for multilabel tasks)."""
    if task.target is TargetKind.REGRESSION:
        return f"{float(target):.3g}"
    if task.target is TargetKind.SURVIVAL:
        return f"{'event' if target[1] else 'censored'} at {float(target[0]):.3g}"
    if task.target is TargetKind.MULTILABEL:
        found = [_class_name(task, j) for j in np.flatnonzero(np.asarray(target))]
        return ", ".join(found) or "no finding"
    return _class_name(task, int(target))


def _output_unit(task: Task, score: Any) -> tuple[int, str, str]:
    """(output unit to explain, what was predicted, the class the explanation is for)."""
    if task.target is TargetKind.BINARY:
        return 0, f"P({_class_name(task, 1)}) = {float(score):.2f}", _class_name(task, 1)
    if task.target is TargetKind.REGRESSION:
        return 0, f"predicted {float(score):.3g}", "the predicted value"
    if task.target is TargetKind.SURVIVAL:
        return 0, f"risk score {float(score):.3g}", "the risk score"
    unit = int(np.argmax(score))
    return unit, f"predicted {_class_name(task, unit)} (p = {score[unit]:.2f})", _class_name(task, unit)


def explain_stays(predictor: Predictor, task: Task, data: TaskData, rows: np.ndarray,
                  scores: np.ndarray, out_dir: Path) -> list[dict[str, Any]]:
    """Integrated-gradient attributions (JSON entries and figures) for EHR stays `rows`."""
    from iatros.explain.sequence import explain_stay, explainable

    network = explainable(getattr(predictor, "network", None))
    if task.modality is not Modality.EHR or network is None:
        return []
    dataset = make_dataset(predictor.spec, data.inputs[rows], data.targets[rows], task.target,
                           train=False, params=predictor.info["params"])
    stays = (data.attributes["stay_id"].to_numpy() if "stay_id" in data.attributes.columns
             else np.arange(len(data)))
    items = []
    for k, r in enumerate(rows):
        x, _ = dataset[k]
        unit, shown, explained = _output_unit(task, scores[k])
        truth = _true_label(task, data.targets[r])
        members = len(getattr(predictor, "members", ()))
        caption = (f"stay {stays[r]} (patient {data.patient_ids[r]}, true: {truth}): {shown}; "
                   f"attributions for {explained}"
                   f"{f' (of the first of {members} ensemble members)' if members > 1 else ''}")
        item = explain_stay(network, {n: v.unsqueeze(0) for n, v in x.items()}, data.inputs[[r]],
                            unit, caption, out_dir / f"stay_{stays[r]}.png")
        items.append({"stay_id": str(stays[r]), "patient_id": str(data.patient_ids[r]),
                      "score": np.asarray(scores[k]).tolist(), **item})
    return items


_EXPLANATION_INTROS = {
    Modality.EHR: "Integrated gradients for a few test stays: each cell is how much one variable's "
                  "value in that hour moved the model's output away from what an average value "
                  "would give (red raises it, blue lowers it). They show what the model used, not "
                  "what caused the outcome.",
}


def _explain_test_examples(run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                           rows: np.ndarray, scores: np.ndarray) -> None:
    """Explanations of a few telling test rows (Grad-CAM for images, attributions for stays)."""
    if task.modality not in (Modality.IMAGE, Modality.EHR) or (
            task.modality is Modality.IMAGE and task.target is TargetKind.REGRESSION):
        return
    picks = (list(np.argsort(scores)[-2:]) if task.target is TargetKind.REGRESSION
             else _pick_examples(data.targets[rows], scores, task.target))
    if not picks:
        return
    chosen = rows[picks]
    if task.modality is Modality.IMAGE:
        labels = [f"{data.patient_ids[r]} (true: {_true_label(task, data.targets[r])})"
                  for r in chosen]
        items = explain_rows(predictor, task, data.inputs[chosen], labels, scores[picks],
                             run.path / "figures")
    else:
        items = explain_stays(predictor, task, data, chosen, scores[picks], run.path / "figures")
    for item in items:
        item["path"] = str(Path(item["path"]).relative_to(run.path))
        if task.modality in _EXPLANATION_INTROS:
            item["intro"] = _EXPLANATION_INTROS[task.modality]
    if items:
        write_json(run.file("explanations.json"), items)


def _register(settings: Settings, run: RunFolder) -> RunEntry:
    config = run.config()
    metrics = read_json(run.file(METRICS))
    primary = config.get("primary_metric") or metrics.get("primary_metric")
    return Registry(settings.database_url).register_run(
        run.path, config["task"], config["model"], config["seed"], primary,
        metrics["splits"]["test"].get(primary))


# --------------------------------------------------------------------------------------------
# evaluate / audit / report / registry
# --------------------------------------------------------------------------------------------
def _task(name: str, options: dict[str, Any] | None, settings: Settings) -> Task:
    """A registered task, or a family task built with its options and the data root."""
    if ":" not in name:
        return get_task(name)
    return get_task(name, {**(options or {}), "data_root": str(settings.data_root)})


def _open_run(run: str | Path, task: str | None = None,
              settings: Settings | None = None) -> tuple[RunFolder, dict[str, Any], Task]:
    folder = RunFolder(run)
    config = folder.require_complete(task)
    settings = (settings or get_settings()).with_data_root(config["data_root"])
    return folder, config, _task(config["task"], config.get("task_options"), settings)


def _align_features(data: TaskData, trained: list[str] | None) -> TaskData:
    """Reorder another copy's features to the training ones (absent ones become missing):
    table columns, or a health-record copy's variables, codes and static features."""
    if not trained or data.feature_names == trained:
        return data
    if not isinstance(data.inputs, np.ndarray) and not hasattr(data.inputs, "align"):
        return data
    absent = sorted(set(trained) - set(data.feature_names or []))
    if absent:
        log.warning("%d feature(s) of the trained model are absent here and treated as missing: "
                    "%s", len(absent), ", ".join(absent[:10]))
    if isinstance(data.inputs, np.ndarray):
        frame = pd.DataFrame(data.inputs, columns=data.feature_names).reindex(columns=trained)
        data.inputs = frame.to_numpy(np.float32)
    else:
        data.inputs = data.inputs.align(trained)
    data.feature_names = list(trained)
    return data


def evaluate(run: str | Path, *, data_root: str | Path | None = None, split: str | None = None,
             task: str | None = None, eval_options: EvalOptions = EvalOptions(),
             device: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Score a finished run on a split of its data or on another copy of the same dataset.

    `split` is train, val, test or all; the default is test on the training data root and all
    rows on another root. Results go to RUN/evaluations/NAME/ and are returned.
    """
    settings = _settings_for(data_root, settings, device)
    folder, config, _ = _open_run(run, task)
    if data_root is None:
        settings = settings.with_data_root(config["data_root"])
    task_obj = _task(config["task"], config.get("task_options"), settings)
    external = Path(settings.data_root) != Path(config["data_root"])
    split = split or ("all" if external else "test")
    if split not in (*SPLIT_NAMES, "all"):
        raise ConfigError(f"--split must be one of train, val, test, all; got {split!r}")
    data = _align_features(task_obj.load(settings.data_root), config.get("data", {}).get("features"))
    rows = (np.arange(len(data)) if split == "all"
            else _saved_split(task_obj, data, config).part(split))
    predictor = load_predictor(folder.path, settings.device)
    if not external:
        predictor = scoring_view(predictor, rows)
    threshold = read_json(folder.file(METRICS)).get("threshold", eval_options.threshold)
    options = EvalOptions(eval_options.n_boot, threshold, eval_options.seed)
    if task_obj.target is TargetKind.SURVIVAL:
        from iatros.survival_run import score_rows

        scores, subgroups, frame = score_rows(folder, task_obj, predictor, data, rows, split, options)
    elif task_obj.target is TargetKind.TOKENS:
        from iatros.text_run import score_token_rows

        scores, subgroups, frame = score_token_rows(task_obj, predictor, data, rows, split, options)
    else:
        calibrator = calibrator_from_dict(read_json(folder.file(CALIBRATION)))
        raw = predictor.predict_scores(data.inputs[rows])
        calibrated = calibrator.transform(raw)
        scores = _score_part(task_obj, data.targets[rows], calibrated, data.patient_ids[rows], options)
        subgroups = _audits(task_obj, data, rows, calibrated, options)
        frame = _prediction_frame(split, rows, data, task_obj.target, raw, calibrated)
    name = f"{split}-{slug(Path(settings.data_root).name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = folder.path / "evaluations" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "task": task_obj.name, "model": config["model"], "target_kind": task_obj.target.value,
        "primary_metric": task_obj.primary_metric, "threshold": threshold,
        "data_root": str(settings.data_root), "split": split, "external": external,
        "splits": {split: scores}, "subgroups": subgroups,
        "bootstrap": {"n_boot": options.n_boot, "seed": options.seed, "unit": "patient",
                      "ci": 0.95},
        "created": now_iso(),
    }
    write_csv(out_dir / PREDICTIONS, frame)
    write_json(out_dir / METRICS, result)
    write_report(folder.path)
    result["path"] = str(out_dir)
    return result


def audit(run: str | Path, *, by: str, split: str = "test",
          eval_options: EvalOptions = EvalOptions()) -> dict[str, Any]:
    """Subgroup audit of a finished run's predictions by one attribute."""
    folder, config, task_obj = _open_run(run)
    frame = pd.read_csv(folder.file(PREDICTIONS), dtype={"patient_id": str})
    column = f"attr_{by}"
    if task_obj.target is TargetKind.SURVIVAL and column in frame.columns:
        return _audit_survival(folder, config, task_obj, by, split, eval_options)
    available = [c.removeprefix("attr_") for c in frame.columns if c.startswith("attr_")]
    if column not in frame.columns:
        raise ConfigError(f"run {folder.path} has no attribute {by!r}; available: "
                          f"{', '.join(available) or 'none (this task has no sensitive attributes)'}")
    part = frame[frame["split"] == split]
    if part.empty:
        raise ConfigError(f"run {folder.path} has no predictions for split {split!r} (val, test)")
    kind = task_obj.target
    scores = _scores_from_frame(part, kind)
    threshold = read_json(folder.file(METRICS)).get("threshold", eval_options.threshold)
    return subgroup_audit(part["target"].to_numpy(), scores, part[column].to_numpy(), kind,
                          attribute=by, metrics=_metrics_for(task_obj), threshold=threshold,
                          n_boot=eval_options.n_boot, seed=eval_options.seed,
                          clusters=part["patient_id"].to_numpy())


def _audit_survival(folder: RunFolder, config: dict[str, Any], task_obj: Task, by: str, split: str,
                    options: EvalOptions) -> dict[str, Any]:
    """Survival audits need the curves, so the split is predicted again from the saved model."""
    from iatros.survival_run import score_rows

    settings = get_settings().with_data_root(config["data_root"])
    data = _align_features(task_obj.load(settings.data_root), config.get("data", {}).get("features"))
    rows = _saved_split(task_obj, data, config).part(split)
    one = Task(**{**task_obj.__dict__, "sensitive_attributes": (by,)})
    predictor = scoring_view(load_predictor(folder.path), rows)
    _, subgroups, _ = score_rows(folder, one, predictor, data, rows, split, options)
    return subgroups[by]


def _scores_from_frame(frame: pd.DataFrame, kind: TargetKind) -> np.ndarray:
    if kind is TargetKind.BINARY:
        return frame["prob"].to_numpy(float)
    if kind is TargetKind.REGRESSION:
        return frame["prediction"].to_numpy(float)
    cols = sorted((c for c in frame.columns if c.startswith("prob_") and c[5:].isdigit()),
                  key=lambda c: int(c[5:]))
    return frame[cols].to_numpy(float)


def _read_input_table(path: Path, features: list[str]) -> np.ndarray:
    """Feature rows of a CSV for a tabular model, in the training column order."""
    from iatros.data.sources.csv_table import one_hot_text_columns, read_table

    frame = one_hot_text_columns(read_table(path))
    missing = [f for f in features if f not in frame.columns]
    if len(missing) == len(features):
        raise ConfigError(f"{path} has none of the model's features ({', '.join(features[:8])}, ...)")
    if missing:
        log.warning("%s lacks %d feature(s), treated as missing: %s", path, len(missing),
                    ", ".join(missing[:10]))
    return frame.reindex(columns=features).to_numpy(np.float32)


def predict(run: str | Path, inputs: Sequence[str | Path], *, out: str | Path | None = None,
            explain: bool = True, method: str = "gradcam",
            device: str | None = None) -> list[dict[str, Any]]:
    """Calibrated probabilities (and a Grad-CAM overlay for images) for new inputs.

    Image runs take image files (PNG, JPEG, DICOM, NIfTI); tabular runs take CSV files with the
    training columns, one prediction per row; text runs take note files, one prediction (or a
    tagger's entities) per file.
    """
    folder, config, task_obj = _open_run(run)
    settings = get_settings(device=device)
    predictor = load_predictor(folder.path, settings.device)
    threshold = read_json(folder.file(METRICS)).get("threshold") or 0.5
    files = [Path(p).expanduser() for p in inputs]
    for f in files:
        if not f.is_file():
            raise MissingDataError(f"input file {f} not found")
    if task_obj.modality is Modality.TEXT:
        from iatros.text_run import predict_notes

        calibrator = (calibrator_from_dict(read_json(folder.file(CALIBRATION)))
                      if folder.file(CALIBRATION).is_file() else None)
        return predict_notes(task_obj, predictor, calibrator, files)
    if task_obj.modality is Modality.IMAGE:
        batch = np.array([str(f) for f in files], dtype=object)
        names = [str(f) for f in files]
    else:
        tables = [_read_input_table(f, config["data"]["features"]) for f in files]
        batch = np.concatenate(tables)
        names = [f"{f}:{i + 1}" for f, t in zip(files, tables, strict=True) for i in range(len(t))]
    if task_obj.target is TargetKind.SURVIVAL:
        return _predict_survival(folder, predictor, batch, names, out)
    calibrator = calibrator_from_dict(read_json(folder.file(CALIBRATION)))
    scores = calibrator.transform(predictor.predict_scores(batch))
    classes = list(task_obj.classes)
    results = []
    for k, name in enumerate(names):
        if task_obj.target is TargetKind.BINARY:
            p = float(scores[k])
            probs = {classes[0]: 1 - p, classes[1]: p}
            label = classes[1] if p >= threshold else classes[0]
        elif task_obj.target is TargetKind.REGRESSION:
            results.append({"input": name, "prediction": float(scores[k])})
            continue
        else:
            probs = {c: float(v) for c, v in zip(classes, scores[k], strict=True)}
            label = classes[int(np.argmax(scores[k]))]
        results.append({"input": name, "probabilities": probs, "prediction": label,
                        "threshold": threshold if task_obj.target is TargetKind.BINARY else None,
                        "calibration": calibrator.to_dict().get("type")})
    if explain and task_obj.modality is Modality.IMAGE:
        out_dir = Path(out) if out else folder.path / "predictions" / time.strftime("%Y%m%d-%H%M%S")
        stems = [f"{f.name.split('.')[0]}-gradcam" for f in files]
        items = explain_rows(predictor, task_obj, batch, names, scores, out_dir, names=stems,
                             method=method)
        for result, item in zip(results, items, strict=True):
            result["heatmap"] = item["path"]
    return results


def download(dataset: str, *, size: int = 28, data_root: str | Path | None = None,
             settings: Settings | None = None) -> Path:
    """Download a dataset file from its official URL into the data root, checking its checksum.

    `dataset` is `medmnist:NAME` (the only downloadable source so far).
    """
    from iatros.data.sources.medmnist import download_medmnist

    settings = (settings or get_settings()).with_data_root(data_root)
    source, _, name = dataset.partition(":")
    if source != "medmnist" or not name:
        raise ConfigError(f"cannot download {dataset!r}: use medmnist:NAME (e.g. medmnist:dermamnist)")
    return download_medmnist(name, settings.data_root, size)


def convert(source: str, path: str | Path, out: str | Path, *, progress: bool = False) -> str:
    """Convert a health-record source into the event format at `out`; return the summary line."""
    from iatros.data.ehr import convert as convert_events
    from iatros.data.ehr import get_source

    return convert_events(get_source(source), path, out, progress=progress).summary()


def run_modality(run: str | Path) -> str:
    """The modality of a finished run's task (image, tabular, ehr, text)."""
    _, _, task_obj = _open_run(run)
    return task_obj.modality.value


def explain_records(run: str | Path, stays: Sequence[str], *, data_root: str | Path | None = None,
                    out: str | Path | None = None, device: str | None = None) -> list[dict[str, Any]]:
    """Per-stay attributions (variables, hours, static features) of a health-record run, for
    stays of its data (or of the copy at `data_root`); JSON entries plus one figure each."""
    settings = _settings_for(data_root, None, device)
    folder, config, _ = _open_run(run)
    if data_root is None:
        settings = settings.with_data_root(config["data_root"])
    task_obj = _task(config["task"], config.get("task_options"), settings)
    if task_obj.modality is not Modality.EHR:
        raise ConfigError(f"{folder.path} is a {task_obj.modality.value} run; stay explanations "
                          f"need a health-record run (image runs: pass image files)")
    data = _align_features(task_obj.load(settings.data_root), config.get("data", {}).get("features"))
    known = {str(s): i for i, s in enumerate(data.attributes["stay_id"])}
    missing = [s for s in stays if str(s) not in known]
    if missing:
        raise MissingDataError(f"stay id(s) {', '.join(map(str, missing[:5]))} are not in "
                               f"{task_obj.name} at {settings.data_root} (ids look like "
                               f"{', '.join(list(known)[:3])})")
    rows = np.array([known[str(s)] for s in stays])
    predictor = load_predictor(folder.path, settings.device)
    if task_obj.target is TargetKind.SURVIVAL:
        scores = predictor.predict_survival(data.inputs[rows])[0]
    else:
        calibrator = calibrator_from_dict(read_json(folder.file(CALIBRATION)))
        scores = calibrator.transform(predictor.predict_scores(data.inputs[rows]))
    out_dir = Path(out) if out else folder.path / "explanations" / time.strftime("%Y%m%d-%H%M%S")
    items = explain_stays(predictor, task_obj, data, rows, scores, out_dir)
    if not items:
        raise ConfigError(f"{config['model']} has no per-time-point explanation; train a sequence "
                          f"model (--model grud or event-transformer)")
    write_json(out_dir / "explanations.json", items)
    return items


def _predict_survival(folder: RunFolder, predictor: Predictor, batch: np.ndarray, names: list[str],
                      out: str | Path | None) -> list[dict[str, Any]]:
    """A survival curve per row (JSON) and one figure with all of them."""
    from iatros.report.survival_figures import plot_individual_curves
    from iatros.survival_run import prediction, saved_training_targets

    pred = prediction(predictor, batch)
    _, horizons = saved_training_targets(folder)
    medians = pred.median_time()
    results = [{"input": name, "risk": float(pred.risk[k]),
                "median_survival": None if np.isnan(medians[k]) else float(medians[k]),
                "survival_at": {f"{h:g}": float(pred.at(h)[k]) for h in horizons},
                "curve": {"times": [float(t) for t in pred.times],
                          "survival": [float(v) for v in pred.survival[k]]}}
               for k, name in enumerate(names)]
    out_dir = Path(out) if out else folder.path / "predictions" / time.strftime("%Y%m%d-%H%M%S")
    shown = {"times": [float(t) for t in pred.times],
             "patients": [{"patient_id": r["input"], "time": float("nan"), "event": False,
                           "survival": r["curve"]["survival"]} for r in results[:10]]}
    figure = plot_individual_curves(shown, out_dir / "survival_curves.png")
    for r in results:
        r["figure"] = str(figure)
    return results


def report(run: str | Path) -> Path:
    """Re-draw the figures and rewrite report.html of a finished run."""
    folder, _, _ = _open_run(run)
    return write_report(folder.path)


def runs(task: str | None = None, limit: int | None = None,
         settings: Settings | None = None) -> list[RunEntry]:
    """Registered runs, newest first."""
    return Registry((settings or get_settings()).database_url).runs(task, limit)


def promote(run: str | Path, name: str, stage: str = "candidate",
            settings: Settings | None = None) -> ModelVersion:
    """Register a finished run as the next version of a named model."""
    settings = settings or get_settings()
    registry = Registry(settings.database_url)
    if not str(run).isdigit():
        RunFolder(run).require_complete()
    return registry.promote(run, name, stage)


DEMO_TASKS = ("breast-cancer-wdbc", "whas500-mortality-1y", "diabetes-progression")
DEMO_MODELS = ("mlp", "logreg", "gbm")


def demo(out: str | Path | None = None, *, seed: int = 0, progress: bool = False,
         settings: Settings | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every demo task with each model, offline; one summary row per run."""
    settings = settings or get_settings()
    base = Path(out) if out else settings.runs_dir / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = []
    for task_name in DEMO_TASKS:
        for model in DEMO_MODELS:
            t0 = time.perf_counter()
            path = train(task_name, model=model, seed=seed, out=base / f"{task_name}-{model}",
                         progress=progress, settings=settings)
            metrics = read_json(path / METRICS)
            primary = metrics["primary_metric"]
            rows.append({"task": task_name, "model": model, "metric": primary,
                         **metrics["splits"]["test"][primary],
                         "seconds": round(time.perf_counter() - t0, 1),
                         "report": str(path / "report.html")})
    return rows
