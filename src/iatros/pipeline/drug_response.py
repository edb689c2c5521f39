"""Drug-response scoring beyond the pooled error: per drug, the Pearson and Spearman correlation
between predicted and measured response over the drug's cell lines, with a bootstrap CI (cell
lines resampled within the drug), and their distribution over drugs (median, IQR, the median's
CI from resampling drugs). That is how drug-response models are compared: a pooled RMSE is
dominated by how potent each drug is, not by which lines respond to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iatros.evaluate import metrics as M
from iatros.pipeline.options import EvalOptions
from iatros.run_folder import FIGURES, RunFolder
from iatros.tasks import Task

MIN_LINES = 5  # a drug with fewer test lines gets no correlation


def _distribution(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """Median, IQR and the median's bootstrap CI (drugs resampled) of per-drug correlations."""
    values = values[np.isfinite(values)]
    if not len(values):
        return {"median": None, "iqr": None, "median_ci95": None, "n": 0}
    medians = np.median(values[rng.integers(0, len(values), size=(n_boot, len(values)))], axis=1)
    return {"median": M.json_float(np.median(values)),
            "iqr": [M.json_float(q) for q in np.percentile(values, [25, 75])],
            "median_ci95": [M.json_float(q) for q in np.percentile(medians, [2.5, 97.5])],
            "n": int(len(values))}


def per_group_correlations(frame: pd.DataFrame, by: str, split: str,
                           options: EvalOptions) -> dict[str, Any] | None:
    """One split's per-group correlations (`frame`: predictions.csv with `target`,
    `prediction` and `attr_<by>`), None when the split has no rows."""
    part = frame[frame["split"] == split]
    column = f"attr_{by}"
    if part.empty or column not in part.columns:
        return None
    rng = np.random.default_rng(options.seed)
    n_boot = max(int(options.n_boot), 20)
    groups = []
    for name, rows in part.groupby(column, sort=True):
        y, s = rows["target"].to_numpy(float), rows["prediction"].to_numpy(float)
        entry: dict[str, Any] = {by: str(name), "n": int(len(rows))}
        if len(rows) >= MIN_LINES and np.ptp(y) > 0:
            entry.update(M.correlations_with_ci(y, s, n_boot, rng))
        groups.append(entry)
    summary = {name: _distribution(np.array([g[name]["value"] if g.get(name) and
                                             g[name]["value"] is not None else np.nan
                                             for g in groups]), n_boot, rng)
               for name in M.CORRELATIONS}
    return {"groups": groups, "n_groups": len(groups),
            "too_small": sum(1 for g in groups if "pearson" not in g),
            "constant_prediction": sum(1 for g in groups
                                       if (g.get("pearson") or {}).get("constant_prediction")),
            **summary}


def finish(run: RunFolder, task: Task, options: EvalOptions) -> dict[str, Any]:
    """metrics.json section `per_group` (validation and test) and its figure."""
    by = str(task.extra.get("correlate_by") or "")
    if not by:
        return {}
    frame = run.predictions()
    splits = {split: result for split in ("val", "test")
              if (result := per_group_correlations(frame, by, split, options)) is not None}
    if not splits:
        return {}
    section: dict[str, Any] = {
        "by": by, "min_n": MIN_LINES,
        "method": (f"Per {by}: Pearson and Spearman correlation of predicted and measured "
                   f"values over its rows ({MIN_LINES} at least; 0 where the model predicts "
                   f"one value for all of them), percentile bootstrap CI "
                   f"with rows resampled within the {by}; over {by}s: median, IQR and the "
                   f"median's CI with {by}s resampled"),
        "splits": splits}
    if "test" in splits:
        from iatros.report.figures import per_group_histogram

        path = per_group_histogram(splits["test"], by, run.file(FIGURES) /
                                   f"per_{by}_correlation.png")
        if path is not None:
            section["figure"] = str(path.relative_to(run.path))
    return {"per_group": section}
