"""Tuning trials run as Ray Tune trials (`iatros tune --backend ray`).

Each trial is an ordinary iatros training of one setting (the same `train` call the sequential
search makes) inside a Ray worker; its validation score is reported to Ray after every epoch so
an ASHA scheduler can stop settings that fall behind, and once more at the end from the run's
metrics.json, which is the score the choice uses. Ray starts locally unless an address names a
running cluster (whose nodes need iatros installed and the same data root). Ray's usage
statistics are turned off. Ray moves the task and trial functions between its processes with
its own serialisation: use a cluster you run, as for any Ray workload.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from iatros.errors import ConfigError, RunError
from iatros.pipeline.options import EvalOptions
from iatros.settings import Settings
from iatros.tasks import Task
from iatros.train.trainer import Callback, EpochRecord, Trainer

log = logging.getLogger("iatros")
SCHEDULERS = (None, "asha")


def _ray() -> Any:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported: no usage reports
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU trials: leave GPUs be
    try:
        import ray
        from ray import tune  # noqa: F401  (the tune extra of ray)
    except ImportError:
        raise ConfigError("--backend ray needs Ray Tune: pip install \"iatros[scale]\"") from None
    return ray


class _ReportEpochs(Callback):
    """Each epoch's validation score to Ray, so a scheduler can stop a trial early."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        from ray import tune

        tune.report({"val": record.val_metric, "epoch": record.epoch, "final": 0})


def connect(address: str | None, cpus: int | None) -> bool:
    """Join the Ray cluster at `address`, or start a local one (`cpus` CPUs); whether this call
    started it (and so should shut it down)."""
    ray = _ray()
    if address and address != "auto":
        _probe(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except Exception as e:  # a cluster that does not answer, or a local start that fails
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RunError(f"could not connect to {where} ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else ''}); check the address "
                       f"(`ray status` on the head node) or leave out --address to run locally"
                       ) from e
    return True


def _probe(address: str, seconds: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at HOST:PORT (Ray itself retries
    for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be HOST:PORT of a Ray head node (or ray://HOST:PORT, "
                          f"or auto), not {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            pass
    except OSError as e:
        raise RunError(f"no Ray cluster answers at {address} ({e.strerror or type(e).__name__}); "
                       f"start one with `ray start --head --port {port}` on {host}, or leave "
                       f"out --address to run locally") from None


def run_trials(task: Task, model: str, trials: list[dict[str, Any]], *, settings: Settings,
               seed: int, epochs: int | None, ensemble: int, folds: int, metric: str,
               higher: bool, eval_options: EvalOptions, workdir: Path,
               address: str | None = None, scheduler: str | None = None,
               workers: int | None = None, cpus_per_trial: int = 1) -> list[dict[str, Any]]:
    """One row per trial, as the sequential search writes them (trial, settings, val, folds,
    seconds), plus `stopped_after_epoch` for trials the scheduler stopped (their `val` is None,
    so they are never chosen) and `error` for trials that failed."""
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler must be asha or left out, not {scheduler!r}")
    if scheduler and (folds > 1 or ensemble > 1):
        raise ConfigError("--scheduler asha stops single trainings early: leave out --folds and "
                          "--ensemble")
    ray = _ray()
    from ray import tune

    from iatros.pipeline.tuning import run_trial

    started = connect(address, (workers or 1) * cpus_per_trial if workers else None)
    report_epochs = scheduler is not None

    def trial(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(cpus_per_trial)
        row = run_trial(task, model, config["trial"], trials[config["trial"]],
                        settings=settings, seed=seed, epochs=epochs, ensemble=ensemble,
                        folds=folds, metric=metric, eval_options=eval_options, progress=False,
                        workdir=workdir,
                        callbacks=(_ReportEpochs(),) if report_epochs else ())
        tune.report({"val": math.nan if row["val"] is None else row["val"], "final": 1,
                     "fold_scores": row["folds"], "seconds": row["seconds"]})

    asha = None
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        asha = ASHAScheduler(time_attr="training_iteration", grace_period=1,
                             max_t=max(epochs or 1000, 1) + 1, reduction_factor=2)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trial, {"cpu": cpus_per_trial}),
            param_space={"trial": tune.grid_search(list(range(len(trials))))},
            tune_config=tune.TuneConfig(metric="val", mode="max" if higher else "min",
                                        scheduler=asha, max_concurrent_trials=workers),
            run_config=tune.RunConfig(name="iatros-tune", storage_path=str(workdir / "ray"),
                                      verbose=0))
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    rows = []
    for result in sorted(grid, key=lambda r: r.config["trial"]):
        k = result.config["trial"]
        last = result.metrics or {}
        row: dict[str, Any] = {"trial": k, "settings": trials[k], "val": None, "folds": None,
                               "seconds": last.get("seconds")}
        if result.error is not None:
            row["error"] = str(result.error).splitlines()[0][:300]
            log.warning("trial %d %s failed: %s", k, trials[k], row["error"])
        elif last.get("final") == 1:
            val = last.get("val")
            row["val"] = float(val) if val is not None and math.isfinite(val) else None
            row["folds"] = last.get("fold_scores")
        else:
            row["stopped_after_epoch"] = last.get("epoch")
            row["val_when_stopped"] = last.get("val")
        log.info("trial %d/%d %s: val %s %s", k + 1, len(trials), trials[k], metric, row["val"])
        rows.append(row)
    return rows
