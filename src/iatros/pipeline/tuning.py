"""Searching model and training settings on validation data only, then training the chosen one."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.pipeline.fit import check_model
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.runs import settings_for, task_for
from iatros.pipeline.training import register_run, train
from iatros.run_folder import TUNING, RunFolder, write_json
from iatros.settings import Settings
from iatros.tasks import Task
from iatros.train.search import best_trial, grid_trials, split_trial
from iatros.train.trainer import Callback

log = logging.getLogger("iatros")
BACKENDS = ("local", "ray")


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
    backend: str = "local",
    address: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    cpus_per_trial: int = 1,
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

    `backend="ray"` runs the trials as Ray Tune trials (`pipeline.tuning_ray`): on a local Ray
    instance, or the cluster at `address`, `workers` at a time with `cpus_per_trial` CPUs each;
    `scheduler="asha"` stops settings that fall behind early. The choice and tuning.json are
    the same as the sequential search's, with the stopped trials marked.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "local" and (address or scheduler or workers):
        raise ConfigError("--address, --scheduler and --workers belong to --backend ray")
    settings = settings_for(data_root, settings, None)
    task_obj = task_for(task, task_options, settings) if isinstance(task, str) else task
    spec = check_model(task_obj, model or task_obj.default_model)
    if cross_fit and (folds < 2 or ensemble > 1):
        raise ConfigError("tuning with --cross-fit needs --folds K >= 2 and no --ensemble: the "
                          "chosen setting becomes a cross-fit ensemble of K members")
    metric = task_obj.primary_metric
    higher = M.METRICS[metric].higher_is_better if metric in M.METRICS else True
    trials = grid_trials(space, max_trials, seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="iatros-tune-") as tmp:
        if backend == "ray":
            from iatros.pipeline.tuning_ray import run_trials

            rows = run_trials(task_obj, spec.name, trials, settings=settings, seed=seed,
                              epochs=epochs, ensemble=ensemble, folds=folds, metric=metric,
                              higher=higher, eval_options=eval_options, workdir=Path(tmp),
                              address=address, scheduler=scheduler, workers=workers,
                              cpus_per_trial=cpus_per_trial)
        else:
            rows = [run_trial(task_obj, spec.name, k, trial, settings=settings, seed=seed,
                           epochs=epochs, ensemble=ensemble, folds=folds, metric=metric,
                           eval_options=eval_options, progress=progress, workdir=Path(tmp))
                    for k, trial in enumerate(trials)]
    search_seconds = round(time.perf_counter() - t0, 2)
    chosen = best_trial([r["val"] for r in rows], higher)
    params, train_settings = split_trial(trials[chosen])
    run = train(task_obj, settings=settings, out=out, epochs=epochs, seed=seed, model=spec.name,
                params=params, train_overrides=train_settings, eval_options=eval_options,
                progress=progress, register=False, ensemble=folds if cross_fit else ensemble,
                cross_fit=cross_fit)
    write_json(run / TUNING, {"metric": metric, "split": "val", "higher_is_better": higher,
                              "space": space, "max_trials": max_trials, "ensemble": ensemble,
                              "folds": folds, "cross_fit": cross_fit, "backend": backend,
                              "scheduler": scheduler, "search_seconds": search_seconds,
                              "chosen": chosen, "trials": rows})
    RunFolder(run).seal()  # tuning.json is part of the run
    if register:
        register_run(settings, run)
    return run


def run_trial(task: Task, model: str, k: int, trial: dict[str, Any], *, settings: Settings,
              seed: int, epochs: int | None, ensemble: int, folds: int, metric: str,
              eval_options: EvalOptions, progress: bool, workdir: Path,
              callbacks: tuple[Callback, ...] = ()) -> dict[str, Any]:
    """Train one setting (once, or once per fold) and score it on validation: the row of
    tuning.json both backends write."""
    params, train_settings = split_trial(trial)
    t0 = time.perf_counter()
    scores = []
    for fold in range(folds):
        path = train(task, settings=settings, out=workdir / f"trial{k}-fold{fold}",
                     epochs=epochs, seed=seed, model=model, params=params,
                     train_overrides=train_settings, ensemble=ensemble,
                     eval_options=EvalOptions(0, eval_options.threshold, seed),
                     progress=progress, register=False,
                     val_fold=(fold, folds) if folds > 1 else None, callbacks=callbacks)
        scores.append(RunFolder(path).metrics()["splits"]["val"][metric].get("value"))
    usable = [v for v in scores if v is not None and np.isfinite(v)]
    value = float(np.mean(usable)) if len(usable) == len(scores) else None
    log.info("trial %d: %s val %s %s", k + 1, trial, metric, value)
    return {"trial": k, "settings": trial, "val": value, "folds": scores if folds > 1 else None,
            "seconds": round(time.perf_counter() - t0, 2)}
