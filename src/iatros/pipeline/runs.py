"""Opening a run: settings, the task (with its saved options), the run folder, the split the run
used, and another copy's features aligned to the trained ones."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros import __version__
from iatros.data.splits import SPLIT_NAMES, Split, validation_fold
from iatros.errors import MissingDataError, RunError
from iatros.models.registry import ModelSpec
from iatros.registry import Registry
from iatros.run_folder import RUN_FORMAT, RunFolder, now_iso, slug
from iatros.settings import Settings, get_settings
from iatros.tasks import Task, TaskData, get_task
from iatros.train.predictors import Predictor, load_predictor, scoring_view
from iatros.train.trainer import TrainConfig

log = logging.getLogger("iatros")


def settings_for(data_root: str | Path | None, settings: Settings | None = None,
                 device: str | None = None) -> Settings:
    """Settings reading from `data_root`; an explicitly named root must exist."""
    settings = (settings or get_settings(device=device)).with_data_root(data_root)
    if data_root is not None and not settings.data_root.is_dir():
        raise MissingDataError(f"data root {settings.data_root} does not exist or is not a folder; "
                               f"pass an existing folder to --data-root or set IATROS_DATA")
    return settings


def task_for(name: str, options: dict[str, Any] | None, settings: Settings) -> Task:
    """A registered task, or a family task built with its options and the data root."""
    if ":" not in name:
        return get_task(name)
    return get_task(name, {**(options or {}), "data_root": str(settings.data_root)})


def open_registry(settings: Settings) -> Registry:
    """The registry of these settings (the workspace folder is created for the default one)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Registry(settings.database_url)


def open_run(run: str | Path, task: str | None = None, settings: Settings | None = None,
             data_root: str | Path | None = None,
             trust: bool = False) -> tuple[RunFolder, dict[str, Any], Task]:
    """A finished, intact run folder (its files match its manifest unless `trust`), its config
    and its task (built against `data_root` when given, else the run's own data root)."""
    folder = RunFolder(run)
    config = folder.require_complete(task)
    folder.require_intact(trust)
    settings = (settings or get_settings()).with_data_root(data_root or config["data_root"])
    options = config.get("task_options")
    encoding = folder.encoding()
    if encoding is not None:  # another copy of a user's table is encoded as the run was trained
        options = {**(options or {}), "encoding": encoding}
    return folder, config, task_for(config["task"], options, settings)


def resolve_run_dir(settings: Settings, task: Task, model: str, out: str | Path | None,
                    resume: bool) -> RunFolder:
    """The folder a training writes to: `out`, the unfinished run to resume, or a new one."""
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
        for path in sorted(settings.runs_dir.glob(f"{slug(task.name)}-*"), reverse=True):
            folder = RunFolder(path)
            if folder.exists and not folder.is_complete:
                return folder
        raise RunError(f"no unfinished run of {task.name} under {settings.runs_dir} to resume; "
                       f"pass --out RUN_FOLDER")
    base = settings.runs_dir / f"{slug(task.name)}-{slug(model)}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return RunFolder(path)


def run_split(task: Task, data: TaskData, seed: int,
              val_fold: tuple[int, int] | list[int] | None = None, cross_fit: bool = False) -> Split:
    """The rows a run uses: the task's split, re-cut for a validation fold, or for a cross-fit
    ensemble train = val = all training rows (val is then scored out of fold)."""
    split = task.split(data, seed)
    if val_fold:
        split = validation_fold(split, data.patient_ids, *val_fold, seed=seed)
    if cross_fit:
        pool = np.union1d(split.train, split.val)
        split = Split(pool, pool, split.test)
    return split


def saved_split(task: Task, data: TaskData, config: dict[str, Any]) -> Split:
    """The split a finished run was trained and scored on, rebuilt from its config."""
    return run_split(task, data, config["seed"], config.get("val_fold"),
                     bool(config.get("cross_fit")))


def split_summary(data: TaskData, split: Split, counts: Any) -> dict[str, Any]:
    """Rows, patients and the scorer's outcome counts of each part."""
    out: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        rows = split.part(name)
        out[name] = {"rows": int(len(rows)),
                     "patients": int(len(np.unique(data.patient_ids[rows]))),
                     **counts(data.targets[rows])}
    return out


def new_config(task: Task, spec: ModelSpec, settings: Settings, seed: int,
               train_config: TrainConfig | None, params: dict[str, Any] | None) -> dict[str, Any]:
    """config.json of a new run, before its data is described."""
    return {
        "run_format": RUN_FORMAT,
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


def align_features(data: TaskData, trained: list[str] | None) -> TaskData:
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


def load_data(task: Task, config: dict[str, Any], settings: Settings) -> TaskData:
    """The task's data at the settings' root, aligned to the run's trained features."""
    return align_features(task.load(settings.data_root), config.get("data", {}).get("features"))


def load_saved_rows(run: RunFolder, task: Task, split: str, device: str = "cpu",
                    trust: bool = False) -> tuple[TaskData, np.ndarray, Predictor]:
    """The run's own data, the rows of `split`, and the predictor that scores them honestly."""
    config = run.require_complete()
    settings = get_settings().with_data_root(config["data_root"])
    data = load_data(task, config, settings)
    rows = saved_split(task, data, config).part(split)
    return data, rows, scoring_view(load_predictor(run.path, device, trust), rows)
