"""Scoring a finished run again: on a split of its data or another copy (`evaluate`), and by
one sensitive attribute (`audit`); the run's scorer does the work."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.splits import SPLIT_NAMES
from iatros.errors import ConfigError
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.phi_scan import check_report
from iatros.pipeline.runs import load_data, open_run, saved_split, settings_for
from iatros.pipeline.scoring import scorer_for
from iatros.pipeline.scoring.base import bootstrap_block, metrics_header
from iatros.report import write_report
from iatros.run_folder import METRICS, PREDICTIONS, now_iso, slug, write_csv, write_json
from iatros.settings import Settings
from iatros.train.predictors import load_predictor, scoring_view


def evaluate(run: str | Path, *, data_root: str | Path | None = None, split: str | None = None,
             task: str | None = None, eval_options: EvalOptions = EvalOptions(),
             device: str | None = None, settings: Settings | None = None,
             trust: bool = False) -> dict[str, Any]:
    """Score a finished run on a split of its data or on another copy of the same dataset.

    `split` is train, val, test or all; the default is test on the training data root, and on
    another root all rows, or the test part when that copy ships its own split (a full MIT-BIH
    copy: de Chazal's DS2). Results go to RUN/evaluations/NAME/ and are returned.
    """
    settings = settings_for(data_root, settings, device)
    folder, config, task_obj = open_run(run, task, settings, data_root, trust)
    if data_root is None:
        settings = settings.with_data_root(config["data_root"])
    external = Path(settings.data_root) != Path(config["data_root"])
    if split is not None and split not in (*SPLIT_NAMES, "all"):
        raise ConfigError(f"--split must be one of train, val, test, all; got {split!r}")
    data = load_data(task_obj, config, settings)
    shipped_test = data.split is not None and bool(np.any(data.split == "test"))
    split = split or ("all" if external and not shipped_test else "test")
    rows = (np.arange(len(data)) if split == "all"
            else saved_split(task_obj, data, config).part(split))
    predictor = load_predictor(folder.path, settings.device, trust)
    if not external:
        predictor = scoring_view(predictor, rows)
    threshold = folder.metrics().get("threshold", eval_options.threshold)
    options = eval_options.with_threshold(threshold)
    scored = scorer_for(task_obj.target).score_rows(folder, task_obj, predictor, data, rows, split,
                                                    options)
    out_dir = folder.new_evaluation(
        f"{split}-{slug(Path(settings.data_root).name)}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = {
        **metrics_header(task_obj, config["model"]), "threshold": threshold,
        "data_root": str(settings.data_root), "split": split, "external": external,
        "splits": {split: scored.metrics}, "subgroups": scored.subgroups,
        "bootstrap": bootstrap_block(task_obj, options),
        "created": now_iso(),
    }
    write_csv(out_dir / PREDICTIONS, scored.frame)
    write_json(out_dir / METRICS, result)
    write_report(folder.path)
    check_report(folder, data)
    result["path"] = str(out_dir)
    return result


def audit(run: str | Path, *, by: str, split: str = "test",
          eval_options: EvalOptions = EvalOptions(), trust: bool = False) -> dict[str, Any]:
    """Subgroup audit of a finished run's predictions by one attribute."""
    folder, _, task_obj = open_run(run, trust=trust)
    return scorer_for(task_obj.target).audit(folder, task_obj, by, split, eval_options, trust)
