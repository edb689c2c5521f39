"""`iatros federate`: one run trained across sites with Flower, finished like any run (the
scorer's metrics with intervals, calibration, subgroup audits with the sites as a subgroup, the
report with its sites section, the registry).

Simulation engine: every site is a simulated SuperNode on this machine (Ray); the records of
all sites are here, so the global model is also scored on all test patients. Deployment
engine: `flower-superlink` here and one `flower-supernode` per hospital, each reading its own
data; only numbers leave a hospital (the final model's test metrics at each site)."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError, RunError
from iatros.federated.deployment import QUIET, Connection, submit, write_app
from iatros.federated.local import Plan, SiteModel
from iatros.federated.sites import site_labels, site_problems, site_rows, too_few_sites
from iatros.pipeline.fit import check_model
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.runs import (
    new_config,
    open_registry,
    resolve_run_dir,
    run_split,
    settings_for,
    split_summary,
    task_for,
)
from iatros.pipeline.scoring import scorer_for
from iatros.pipeline.training import finish_run, register_run
from iatros.run_folder import CONFIG, FEDERATION, RunFolder, now_iso, write_json
from iatros.settings import Settings
from iatros.tasks import Task, TaskData
from iatros.train.predictors import load_predictor, save_network

log = logging.getLogger("iatros")

SITE_ATTRIBUTE = "federated_site"


def federate(task: str | Task, *, sites: str, data_root: str | Path | None = None,
             out: str | Path | None = None, rounds: int = 20, local_epochs: int = 1,
             strategy: str = "fedavg", min_clients: int = 2, model: str = "mlp",
             params: dict[str, Any] | None = None, seed: int = 0,
             train_overrides: dict[str, Any] | None = None, task_options: dict[str, Any] | None = None,
             proximal_mu: float = 0.01, server_lr: float = 0.01, dp_epsilon: float | None = None,
             dp_delta: float | None = None, dp_level: str = "site", clipping_norm: float = 1.0,
             min_site_patients: int = 20, eval_options: EvalOptions = EvalOptions(),
             register: bool = True, settings: Settings | None = None,
             pooled_curve: bool = True, connection: Connection | None = None,
             timeout: float = 600.0, secagg: bool = False, keep: str | None = None) -> Path:
    """Train `model` for `task` across the sites named by `sites` (a column such as `icu_type`,
    or `dirichlet:K[:ALPHA]`); return the run folder.

    Without `connection`, Flower's simulation engine runs every site here. With one, the run is
    submitted to a SuperLink (`flwr run`) whose SuperNodes hold the sites' data; this machine
    then scores the returned model on its copy of the test patients."""
    from iatros.federated.apps import Federation

    settings = settings_for(data_root, settings)
    if isinstance(task, str):
        task = task_for(task, task_options, settings)
    spec = check_model(task, model)
    fed = Federation(rounds=rounds, strategy=strategy, min_clients=min_clients,
                     proximal_mu=proximal_mu, server_lr=server_lr, dp_epsilon=dp_epsilon,
                     dp_delta=dp_delta, dp_level=dp_level, clipping_norm=clipping_norm,
                     timeout=timeout, secagg=secagg,
                     keep=keep or ("last" if dp_epsilon is not None else "best"))
    params = dict(params or {})
    if dp_epsilon is not None and "batch_norm" in spec.params:
        params["batch_norm"] = False  # server noise on running variances could make them negative
    plan = Plan(task=task.name, model=spec.name, seed=seed, sites=sites,
                task_options=task.extra.get("options"), params=params,
                train=dict(train_overrides or {}), local_epochs=local_epochs,
                min_site_patients=min_site_patients, n_boot=eval_options.n_boot, rounds=rounds,
                **({"dp_epsilon": dp_epsilon, "dp_delta": dp_delta} if dp_level == "patient"
                   else {}))
    if register:
        open_registry(settings)
    data = task.load(settings.data_root)
    split = run_split(task, data, seed)
    labels = site_labels(data, sites, seed)
    shares = site_rows(labels, split)
    if len(shares) < min_clients:
        raise ConfigError(f"--sites {sites!r} gives {len(shares)} site(s), fewer than "
                          f"--min-clients {min_clients}")
    SiteModel(plan, task, data, shares[0])  # the model and task can be federated: fail now
    run = resolve_run_dir(settings, task, spec.name, out, False)
    run.path.mkdir(parents=True, exist_ok=True)
    config = new_config(task, spec, settings, seed, None, {**spec.params, **task.model_params,
                                                           **params})
    config["data"] = {"n_rows": len(data), "n_patients": int(len(np.unique(data.patient_ids))),
                      "n_features": len(data.feature_names or []), "features": data.feature_names,
                      "loader": data.source,
                      "splits": split_summary(data, split,
                                              lambda y: scorer_for(task.target).split_counts(task, y))}
    engine = "simulation" if connection is None else "deployment"
    config["federation"] = {"engine": engine, "sites_from": sites, **asdict(fed),
                            "local_epochs": local_epochs, "train": plan.train,
                            "sites": [{"site": s.label, "rows": s.n,
                                       "problems": site_problems(s, data.targets, data.patient_ids,
                                                                 task.target, min_site_patients)}
                                      for s in shares]}
    write_json(run.file(CONFIG), config)
    run.set_status("running", started=now_iso())
    try:
        t0 = time.perf_counter()
        if connection is None:   # every site's rows are here: refuse before starting Flower
            problems = [(s["site"], s["problems"]) for s in config["federation"]["sites"]]
            usable = sum(not reasons for _, reasons in problems)
            if usable < fed.min_clients:
                raise ConfigError(too_few_sites(usable, fed.min_clients,
                                                [p for p in problems if p[1]]))
            outcome = _simulate(plan, fed, settings, [s.label for s in shares], task, data, split,
                                pooled_curve)
        else:
            folder = run.path / "federation"
            write_app(folder, plan, asdict(fed), private=fed.site_dp, secure=fed.secagg)
            outcome = submit(folder, connection, timeout=fed.timeout * (fed.rounds + 3))
        outcome["record"]["engine"] = engine
        seconds = time.perf_counter() - t0
        _finish(run, task, data, split, outcome, labels, sites, eval_options)
        run.set_status("complete", finished=now_iso(), train_seconds=round(seconds, 2),
                       registered=False)
    except (Exception, KeyboardInterrupt) as e:
        if not isinstance(e, KeyboardInterrupt):
            run.set_status("failed", error=str(e))
        raise
    if register:
        register_run(settings, run)
    return run.path


def _simulate(plan: Plan, fed: Any, settings: Settings, labels: list[str], task: Task,
              data: TaskData, split: Any, pooled_curve: bool) -> dict[str, Any]:
    """Flower's simulation engine (Ray), one simulated SuperNode per site, in this process."""
    try:
        from flwr.simulation import run_simulation
    except ImportError:
        raise ConfigError("iatros federate needs Flower: pip install \"iatros[federated]\"") from None
    from iatros.federated.apps import make_client_app, make_server_app, simulation_sites

    os.environ.update(QUIET)
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="iatros-ray-"))
    captured: dict[str, Any] = {}

    def finish(outcome: dict[str, Any]) -> None:
        captured.update(outcome)

    evaluate_fn = _pooled_test(plan, task, data, split) if pooled_curve else None
    server = make_server_app(plan, fed, finish, evaluate_fn)
    client = make_client_app(simulation_sites(str(settings.data_root), labels),
                             private=fed.site_dp, secure=fed.secagg)
    cpus = max(1, min(len(labels), os.cpu_count() or 1))
    run_simulation(server_app=server, client_app=client, num_supernodes=len(labels),
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus, "include_dashboard": False,
                                                 "log_to_driver": False}})
    if not captured:
        raise RunError("the federated run ended without a model: the server failed (see the "
                       "Flower log above)")
    return captured


def _pooled_test(plan: Plan, task: Task, data: TaskData, split: Any) -> Any:
    """The global model's metric on all test patients after each round (simulation only, where
    every site's records are here): a learning curve for the report, never used to choose."""
    from iatros.federated.sites import SiteRows

    model = SiteModel(plan, task, data, SiteRows("pooled", split.train, split.val, split.test))

    def evaluate(state: dict[str, np.ndarray]) -> dict[str, float]:
        model.load(state)
        return {f"pooled_test_{task.primary_metric}":
                float(model.evaluate("test")[task.primary_metric])}

    return evaluate


def _finish(run: RunFolder, task: Task, data: TaskData, split: Any, outcome: dict[str, Any],
            labels: np.ndarray, sites: str, options: EvalOptions) -> None:
    """The global model into the run folder, then the scorer, explanations and report as for
    `iatros train`, with the sites as one more audited subgroup."""
    plan = Plan(**outcome["record"]["plan"])
    state = outcome["state"]
    model = SiteModel(plan, task, data, site_rows(labels, split)[0])
    model.load(state)
    save_network(run.path, model.spec, task.target, model.network,
                 {"n_inputs": model.n_inputs, "n_outputs": model.width, "params": model.params,
                  "batch_size": int(plan.train.get("batch_size", 64)), "amp": None,
                  "cox_head": False})
    write_json(run.file(FEDERATION), outcome["record"])
    predictor = load_predictor(run.path)
    data.attributes = data.attributes.assign(**{SITE_ATTRIBUTE: labels})
    audited = replace(task, sensitive_attributes=(*task.sensitive_attributes, SITE_ATTRIBUTE))
    extra = {"federation": _summary(outcome["record"], task.primary_metric)}
    if outcome["record"].get("privacy"):
        extra["privacy"] = outcome["record"]["privacy"]
    finish_run(run, audited, predictor, data, split, options, extra)


def _summary(record: dict[str, Any], metric: str) -> dict[str, Any]:
    """The headline numbers of the federation for metrics.json."""
    rounds = record["rounds"]
    return {"sites": len(record["sites"]), "excluded": [e["site"] for e in record["excluded"]],
            "rounds": len(rounds), "kept_round": record.get("kept_round"),
            "strategy": record["federation"]["strategy"],
            "bytes_per_round": int(np.mean([r["bytes_down"] + (r["bytes_up"] or 0)
                                            for r in rounds])) if rounds else 0,
            "secure_aggregation": bool(record["federation"].get("secagg")),
            "seconds": record["seconds"],
            "site_test": {site: res.get(metric) for site, res in record["site_tests"].items()}}
