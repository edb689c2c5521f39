"""The public API's functions (loaded by `iatros.api` on first use; see its docstring)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iatros.data.ehr.fhir import event_code
from iatros.errors import ConfigError, RunError
from iatros.federated.deployment import Connection, make_certificates, make_node_key, register_node
from iatros.federated.run import federate
from iatros.pipeline.evaluation import audit, evaluate
from iatros.pipeline.explain import explainer_for
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.prediction import LoadedRun, explain_records, predict
from iatros.pipeline.privacy import membership_inference
from iatros.pipeline.runs import open_registry, open_run, run_split
from iatros.pipeline.scoring import scorer_for
from iatros.pipeline.scoring.base import fmt_entry
from iatros.pipeline.training import register_run, train, train_distributed
from iatros.pipeline.tuning import tune
from iatros.registry import ModelVersion, RunEntry
from iatros.report import write_report
from iatros.run_folder import MANIFEST, RunFolder
from iatros.settings import Settings, get_settings
from iatros.tasks import list_families, list_tasks
from iatros.train.search import parse_params, parse_space, split_trial

__all__ = ["audit", "Connection", "convert", "demo", "download", "event_code", "EvalOptions",
           "evaluate", "explain_records", "families", "federate", "fmt_entry", "LoadedRun",
           "make_certificates", "make_node_key", "membership_inference", "register_node",
           "model_versions", "parse_params", "parse_space", "predict", "prediction_cells",
           "promote", "register", "report", "results_table", "run_metrics", "run_modality",
           "run_split",
           "run_tuning", "runs",
           "split_trial", "summary_line", "tasks", "train", "train_distributed", "tune", "verify"]


def tasks() -> list[dict[str, Any]]:
    """Every registered task, as a table row."""
    return [t.summary() for t in list_tasks()]


def families() -> list[str]:
    """Task families, used as `NAME:ARG` (csv:PATH, images:FOLDER, ...)."""
    return list(list_families())


def run_metrics(run: str | Path) -> dict[str, Any]:
    """metrics.json of a finished run."""
    folder = RunFolder(run)
    folder.require_complete()
    return folder.metrics()


def run_tuning(run: str | Path) -> dict[str, Any]:
    """tuning.json of a run made by `tune`: every trial and the chosen one."""
    return RunFolder(run).tuning()


def run_modality(run: str | Path, *, trust: bool = False) -> str:
    """The modality of a finished run's task (image, tabular, ehr, text)."""
    return open_run(run, trust=trust)[2].modality.value


def summary_line(run: str | Path, *, trust: bool = False) -> str:
    """The one line the CLI prints after training: the headline test metric and the report."""
    folder, _, task = open_run(run, trust=trust)
    line = scorer_for(task.target).summary(folder.metrics())
    cv = folder.cross_validation()
    if cv:
        entry = cv["pooled"].get(cv["primary_metric"]) or {}
        line += (f"; {cv['folds']}-fold CV {cv['primary_metric']} {fmt_entry(entry)} "
                 f"(out-of-fold, n={cv['n']})")
    return f"{line}; report: {folder.file('report.html')}"


def prediction_cells(run: str | Path, results: Sequence[Mapping[str, Any]], *,
                     trust: bool = False) -> list[tuple[str, str, str]]:
    """(prediction, details, figure) of each `predict` result, as the CLI's table shows them: the
    scorer's cells, the details followed by what the modality's explainer adds (signals: heart
    rate, quality, windows)."""
    task = open_run(run, trust=trust)[2]
    scorer, explainer = scorer_for(task.target), explainer_for(task.modality)

    def cells(result: Mapping[str, Any]) -> tuple[str, str, str]:
        prediction, details, figure = scorer.prediction_cells(result)
        extra = explainer.describe(result)
        return prediction, f"{details}; {extra}" if extra else details, figure

    return [("error", str(r["error"]), "-") if "error" in r else cells(r) for r in results]


def results_table(results: Sequence[Mapping[str, Any]]) -> Any:
    """`predict` results as a table, one row per input in the order given: plain fields as
    columns, a dict field (probabilities, a multilabel uncertainty) as NAME.KEY columns, a list
    of plain values joined by "; "; nested lists of records (windows, atoms) left out."""
    import pandas as pd

    rows = []
    for result in results:
        row: dict[str, Any] = {}
        for key, value in result.items():
            if isinstance(value, Mapping):
                row.update({f"{key}.{k}": v for k, v in value.items()
                            if not isinstance(v, Mapping | list)})
            elif isinstance(value, list):
                if key != "atoms" and all(not isinstance(v, Mapping | list) for v in value):
                    row[key] = "; ".join(map(str, value))
            else:
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows)


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


def convert(source: str, path: str | Path, out: str | Path, *, progress: bool = False,
            schema: str | None = None) -> str:
    """Convert a health-record source into the event format at `out`; return the summary line.
    An OMOP CDM may be a database URL (`schema`: its schema): its tables are first copied into
    OUT/omop_tables/ as Parquet."""
    from iatros.data.ehr import convert as convert_events
    from iatros.data.ehr import get_source
    from iatros.data.ehr.omop_db import dump, is_database_url

    if is_database_url(str(path)):
        if source != "omop":
            raise ConfigError(f"a database URL is an OMOP CDM source; {source} reads files")
        path = dump(str(path), Path(out) / "omop_tables", schema)
    elif schema is not None:
        raise ConfigError("--schema names the schema of an OMOP database URL")
    return convert_events(get_source(source), path, out, progress=progress).summary()


def report(run: str | Path, *, trust: bool = False) -> Path:
    """Re-draw the figures and rewrite report.html of a finished run."""
    folder, _, _ = open_run(run, trust=trust)
    return write_report(folder.path)


def runs(task: str | None = None, limit: int | None = None,
         settings: Settings | None = None) -> list[RunEntry]:
    """Registered runs, newest first."""
    return open_registry(settings or get_settings()).runs(task, limit)


def register(run: str | Path, settings: Settings | None = None) -> RunEntry:
    """Register a finished run that training could not register (the registry was down)."""
    return register_run(settings or get_settings(), run)


def verify(run: str | Path, *, seal: bool = False,
           settings: Settings | None = None) -> dict[str, Any]:
    """Check a run folder's files against its manifest (and the registry's record of it).

    With `seal`, first write a manifest for a folder that has none (a folder from before
    manifests, checked by hand). Returns the changed, missing and added files, the manifest's
    sha256 and whether it matches the registry; `ok` is true only when nothing differs."""
    folder = RunFolder(run)
    folder.require_complete()
    if seal:
        if folder.file(MANIFEST).is_file():
            raise RunError(f"{folder.path} is already sealed; `iatros verify` checks it")
        folder.seal()
    found = folder.verify()
    digest = folder.manifest_digest()
    registered = open_registry(settings or get_settings()).find_run_or_none(folder.path)
    result: dict[str, Any] = {"path": str(folder.path), "manifest_sha256": digest, **found,
                              "registered": registered is not None,
                              "registry_matches": (registered.manifest_sha256 == digest
                                                   if registered is not None else None)}
    result["ok"] = not any(found.values()) and result["registry_matches"] is not False
    return result


def promote(run: str | Path, name: str, stage: str = "candidate",
            settings: Settings | None = None, trust: bool = False) -> ModelVersion:
    """Register a finished run as the next version of a named model; the run folder must still
    match its manifest and the manifest the one recorded at registration (unless `trust`)."""
    settings = settings or get_settings()
    registry = open_registry(settings)
    entry = registry.find_run(run)
    folder = RunFolder(entry.path)
    folder.require_complete()
    folder.require_intact(trust)
    if not trust and entry.manifest_sha256 != folder.manifest_digest():
        raise RunError(f"run {folder.path} changed since it was registered (its manifest differs "
                       f"from the registry's record); check it with `iatros verify "
                       f"{folder.path}`, or pass --trust")
    return registry.promote(entry.id, name, stage)


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
            metrics = RunFolder(path).metrics()
            primary = metrics["primary_metric"]
            rows.append({"task": task_name, "model": model, "metric": primary,
                         **metrics["splits"]["test"][primary],
                         "seconds": round(time.perf_counter() - t0, 1),
                         "report": str(path / "report.html")})
    return rows


def model_versions(name: str | None = None, settings: Settings | None = None) -> list[ModelVersion]:
    """Promoted model versions (all names, or one), oldest first."""
    return open_registry(settings or get_settings()).model_versions(name)
