"""The life of one training run: open the folder, fit, let the task's scorer finish it (predict,
calibrate, score, audit), explain a few test rows, write the report, register."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.sources.table_encoding import TableEncoding
from iatros.errors import ConfigError, IatrosError, RunError
from iatros.pipeline.cross_validation import check_cross_validates, cross_validate_run
from iatros.pipeline.explain import explain_test_examples, explainer_for
from iatros.pipeline.fit import (
    check_ensemble,
    check_model,
    check_params,
    check_private,
    ensemble_for,
    fit,
    train_config,
)
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.phi_scan import check_report
from iatros.pipeline.runs import (
    new_config,
    open_registry,
    resolve_run_dir,
    run_split,
    settings_for,
    split_summary,
    task_for,
)
from iatros.pipeline.scoring import FinishContext, scorer_for
from iatros.pipeline.selection import AUTO, DEFAULT_FOLDS, record_selection, select_model
from iatros.registry import RunEntry
from iatros.report import write_report
from iatros.run_folder import (
    CONFIG,
    DATA_REPORT,
    ENCODING,
    METRICS,
    PRIVACY,
    RunFolder,
    now_iso,
    read_json,
    remove_stale_temp_files,
    write_csv,
    write_json,
)
from iatros.settings import Settings
from iatros.tasks import Task
from iatros.train import distributed
from iatros.train.trainer import Callback

log = logging.getLogger("iatros")


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
    select_folds: int | None = None,
    cv: int | None = None,
) -> Path:
    """Train a model on a task, evaluate it, write its report, register it; return the run folder.

    With `resume`, continue an interrupted run in `out` (or the task's newest unfinished run)
    from its last checkpoint, using the configuration saved when it started. `task_options`
    configure family tasks, e.g. {"target": "died"} for `csv:PATH`. `val_fold` (fold, n_folds)
    re-cuts train + val so validation is that fold (used by `tune`); test stays the same.
    `cross_fit` with `ensemble` N trains member k with fold k of N as its validation, so every
    training row fits N-1 members; validation metrics and calibration use out-of-fold scores.
    Left unset, both come from the model (DeepSurv: a 5-member cross-fit ensemble; others: one).
    `model="auto"` (the default of tasks that list `selection` models) first chooses the model by
    `select_folds`-fold cross-validation over train + val (`pipeline.selection`). `cv` K then
    cross-validates the run's model over K patient-level folds of train + val and adds the pooled
    out-of-fold metrics with intervals to the run (`pipeline.cross_validation`).
    """
    settings = settings_for(data_root, settings, device)
    if cv is not None and (ensemble not in (None, 1) or cross_fit or val_fold):
        raise ConfigError("--cv cross-validates one model: leave out --ensemble and --cross-fit")
    if isinstance(task, str):
        if resume and out is not None and RunFolder(out).exists:
            saved_options = RunFolder(out).config().get("task_options") or {}
            task_options = {**saved_options, **(task_options or {})}
        task = task_for(task, task_options, settings)
    main = True
    if distributed.launched():
        check_distributable(out, model, task, cv, resume)
        settings = replace(settings, device=distributed.init_from_env(settings.device))
        main = distributed.is_main()
        if not main:
            register = False
            logging.getLogger("iatros").setLevel(logging.WARNING)  # rank 0 reports
    if not resume and (model == AUTO or (model is None and task.selection)):
        if params or ensemble or cross_fit or val_fold:
            raise ConfigError("--model auto chooses among whole models: pass --model NAME to set "
                              "parameters, an ensemble or folds for one model")
        if register:
            open_registry(settings)  # an unusable registry fails now, not after the search
        table = select_model(task, settings=settings, seed=seed, epochs=epochs, progress=progress,
                             folds=select_folds or DEFAULT_FOLDS)
        path = train(task, settings=settings, out=out, epochs=epochs, seed=seed,
                     model=table["chosen"], train_overrides=train_overrides,
                     eval_options=eval_options, progress=progress, register=False,
                     callbacks=callbacks, cv=cv)
        record_selection(path, table)
        if register:
            register_run(settings, path)
        return path
    run = (resolve_run_dir(settings, task, model or task.default_model, out, resume) if main
           else RunFolder(out))
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
    spec = check_model(task, model or task.default_model)
    scorer = scorer_for(task.target)
    if cv is not None:
        check_cross_validates(task, cv)
    user_params = params
    ensemble, cross_fit = ensemble_for(spec, ensemble, cross_fit, val_fold)
    check_ensemble(spec, ensemble, cross_fit, val_fold, scorer.supports_cross_fit)
    config = (train_config(spec, task, epochs, seed, progress, train_overrides)
              if spec.family == "torch" else None)
    check_private(spec, config, ensemble, train_overrides)
    if spec.family == "torch" and not resume:
        params = {**task.model_params, **(params or {})}
    check_params(spec, params)
    if register:
        open_registry(settings)  # an unusable registry fails now, not after hours of training
    data = task.load(settings.data_root)
    split = run_split(task, data, seed, val_fold, cross_fit)
    if not main:  # the other ranks train alongside rank 0 and leave the run folder to it
        fit(task, spec, data, split, run, settings, seed, config, resume, params,
            tuple(callbacks), ensemble, cross_fit)
        return run.path
    run.path.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temp_files(run.path):
        log.warning("removed %s, left by an interrupted write", stale)
    if not resume:
        saved = new_config(task, spec, settings, seed, config, params)
        saved["data"] = {"n_rows": len(data), "n_patients": int(len(np.unique(data.patient_ids))),
                         "n_features": len(data.feature_names or []),
                         "features": data.feature_names, "loader": data.source,
                         "splits": split_summary(data, split,
                                                 lambda y: scorer.split_counts(task, y))}
        saved.update(task_options=task.extra.get("options"), ensemble=ensemble,
                     val_fold=list(val_fold) if val_fold else None, cross_fit=cross_fit)
        if data.checks is not None:
            saved["data"]["checks"] = data.checks
        if data.row_report is not None and len(data.row_report):
            write_csv(run.file(DATA_REPORT), data.row_report)
        if data.encoding is not None:
            write_json(run.file(ENCODING), data.encoding)
            saved["data"]["encoding"] = TableEncoding.from_dict(data.encoding).summary()
        write_json(run.file(CONFIG), saved)
    run.set_status("running", started=now_iso())
    try:
        t0 = time.perf_counter()
        predictor = fit(task, spec, data, split, run, settings, seed, config, resume, params,
                        tuple(callbacks), ensemble, cross_fit)
        train_seconds = time.perf_counter() - t0
        finish_run(run, task, predictor, data, split, eval_options)
        run.set_status("complete", finished=now_iso(), train_seconds=round(train_seconds, 2),
                       registered=False)
    except (Exception, KeyboardInterrupt) as e:
        if not isinstance(e, KeyboardInterrupt):
            run.set_status("failed", error=str(e))
        raise
    if cv is not None:
        cross_validate_run(run.path, task, cv, settings=settings, seed=seed, epochs=epochs,
                           params=user_params, train_overrides=train_overrides,
                           eval_options=eval_options, progress=progress)
    if register:
        register_run(settings, run)
    return run.path


def train_distributed(argv: Sequence[str], task: str, *, nproc: int, nnodes: int = 1,
                      node_rank: int = 0, rdzv: str | None = None, rdzv_timeout: int = 300,
                      data_root: str | Path | None = None, out: str | Path | None = None,
                      model: str | None = None, resume: bool = False,
                      task_options: dict[str, Any] | None = None) -> Path:
    """`iatros ARGV` (a `train` command line) as `nproc` data-parallel processes per node under
    torchrun; the run folder rank 0 wrote. The folder is named here, before launching, so every
    process writes to the same one; with several nodes it must be given (`out`) and be on
    storage every node sees."""
    if nnodes > 1 and out is None:
        raise ConfigError("--nnodes > 1 needs --out RUN on storage every node sees (each node "
                          "would otherwise name its own run)")
    settings = settings_for(data_root)
    built = task_for(task, task_options, settings)
    check_distributable(out or "planned", model, built, None, resume)
    run = resolve_run_dir(settings, built, model or built.default_model, out, resume)
    argv = list(argv)
    if out is None:
        argv += ["--out", str(run.path)]
    status = distributed.launch(argv, nproc, nnodes, node_rank, rdzv, rdzv_timeout)
    if status != 0 and not any(run.path.rglob("last.pt")):
        raise RunError(f"data-parallel training exited with status {status} before any "
                       f"checkpoint was written: a rendezvous that did not complete (every node "
                       f"must reach --rdzv within --rdzv-timeout) or an error at start; see the "
                       f"log above")
    if status != 0:
        raise RunError(f"data-parallel training exited with status {status} (the log above names "
                       f"the rank that failed); continue it from its last checkpoint with the "
                       f"same command plus --resume --out {run.path}")
    if node_rank == 0 and not run.is_complete:
        raise RunError(f"data-parallel training ended but {run.path} is not complete; see the "
                       f"log above")
    return run.path


def check_distributable(out: str | Path | None, model: str | None, task: Task, cv: int | None,
                        resume: bool) -> None:
    """What data-parallel training needs: one run folder named for every rank, one model."""
    if out is None:
        raise ConfigError("under torchrun every rank must write to the same run: pass --out RUN "
                          "(`iatros train --nproc N` does this for you)")
    if not resume and (model == AUTO or (model is None and task.selection)):
        raise ConfigError("--nproc trains one model: pass --model NAME (run `--model auto` in "
                          "one process to choose it)")
    if cv is not None:
        raise ConfigError("--cv is not run data-parallel: drop --nproc or --cv")
    if model not in (None, AUTO) or not task.selection:
        spec = check_model(task, model or task.default_model)
        if spec.family != "torch":
            raise ConfigError(f"--nproc trains torch networks; {spec.name!r} is a {spec.family} "
                              f"model, trained in one process: drop --nproc")


def finish_run(run: RunFolder, task: Task, predictor: Any, data: Any, split: Any,
               eval_options: EvalOptions, extra: dict[str, Any] | None = None) -> None:
    """The end of every run once its model is fitted: the task's scorer (predictions,
    calibration, metrics with CIs, audits), `extra` sections of metrics.json, explanations of a
    few test rows, the report, its identifier check, the manifest."""
    finished = scorer_for(task.target).finish(FinishContext(run, task, predictor, data, split,
                                                            eval_options))
    finished.metrics.update(explainer_for(task.modality).finish(run, task, predictor, data, split,
                                                                eval_options))
    if run.file(PRIVACY).is_file():
        finished.metrics["privacy"] = read_json(run.file(PRIVACY))
    finished.metrics.update(extra or {})
    write_json(run.file(METRICS), finished.metrics)
    if finished.test_scores is not None:
        explain_test_examples(run, task, predictor, data, split.test, finished.test_scores)
    write_report(run.path)
    check_report(run, data)
    run.seal()


def register_run(settings: Settings, run: str | Path | RunFolder) -> RunEntry:
    """Index a finished, intact run in the registry with its headline test metric and the
    sha256 of its manifest. When the registry cannot be written the run stays complete but
    marked unregistered, and the error says how to register it later."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    config = run.require_complete()
    run.require_intact()
    metrics = run.metrics()
    primary = config.get("primary_metric") or metrics.get("primary_metric")
    try:
        entry = open_registry(settings).register_run(
            run.path, config["task"], config["model"], config["seed"], primary,
            metrics["splits"]["test"].get(primary), manifest_sha256=run.manifest_digest())
    except IatrosError as e:
        run.set_status("complete", registered=False, registry_error=str(e))
        raise RunError(f"run {run.path} finished but was not registered ({e}); register it with "
                       f"`iatros runs register {run.path}` once the registry works") from e
    run.set_status("complete", registered=True, registry_id=entry.id)
    return entry
