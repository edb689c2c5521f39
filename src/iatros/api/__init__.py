"""The public Python API: the same words as the CLI (tasks, train, evaluate, audit, report, runs).

    import iatros.api as ia
    run = ia.train("breast-cancer-wdbc", epochs=30)
    ia.evaluate(run, split="val")

This is the public face only: the life of a run lives in `iatros.pipeline`, each target kind's
scoring in `iatros.pipeline.scoring`, clinical text batches in `iatros.api.nlp`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iatros.errors import ConfigError
from iatros.pipeline.evaluation import audit, evaluate
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.prediction import explain_records, predict
from iatros.pipeline.runs import open_run
from iatros.pipeline.scoring import scorer_for
from iatros.pipeline.scoring.base import fmt_entry
from iatros.pipeline.training import train
from iatros.pipeline.tuning import tune
from iatros.registry import ModelVersion, Registry, RunEntry
from iatros.report import write_report
from iatros.run_folder import RunFolder
from iatros.settings import Settings, get_settings
from iatros.tasks import list_families, list_tasks
from iatros.train.search import parse_params, parse_space, split_trial

__all__ = ["EvalOptions", "audit", "convert", "demo", "download", "evaluate", "explain_records",
           "families", "fmt_entry", "parse_params", "parse_space", "predict", "prediction_cells", "promote",
           "report", "run_metrics", "run_modality", "run_tuning", "runs", "split_trial",
           "summary_line", "tasks", "train", "tune"]


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


def run_modality(run: str | Path) -> str:
    """The modality of a finished run's task (image, tabular, ehr, text)."""
    return open_run(run)[2].modality.value


def summary_line(run: str | Path) -> str:
    """The one line the CLI prints after training: the headline test metric and the report."""
    folder, _, task = open_run(run)
    return f"{scorer_for(task.target).summary(folder.metrics())}; report: {folder.file('report.html')}"


def prediction_cells(run: str | Path,
                     results: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(prediction, details, figure) of each `predict` result, as the CLI's table shows them."""
    scorer = scorer_for(open_run(run)[2].target)
    return [("error", str(r["error"]), "-") if "error" in r else scorer.prediction_cells(r)
            for r in results]


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


def report(run: str | Path) -> Path:
    """Re-draw the figures and rewrite report.html of a finished run."""
    folder, _, _ = open_run(run)
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
            metrics = RunFolder(path).metrics()
            primary = metrics["primary_metric"]
            rows.append({"task": task_name, "model": model, "metric": primary,
                         **metrics["splits"]["test"][primary],
                         "seconds": round(time.perf_counter() - t0, 1),
                         "report": str(path / "report.html")})
    return rows

