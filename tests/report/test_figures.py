"""Figures: every expected PNG is written, valid, and no figure stays open."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from iatros.errors import RunError
from iatros.report import write_figures
from iatros.report.figures import (
    confusion_counts,
    fmt,
    fmt_ci,
    metric_text,
    plot_confusion,
    plot_roc,
)

from . import (
    assert_png,
    make_binary_run,
    make_multiclass_run,
    make_null_run,
    make_regression_run,
)


def _check(run_dir: Path, figures: dict[str, str], expected: set[str]) -> None:
    assert set(figures) == expected
    for name, relative in figures.items():
        assert relative == f"figures/{name}.png"
        assert_png(run_dir / relative)
    assert plt.get_fignums() == [], "figures must be closed after saving"


def test_binary_run_writes_all_figures(tmp_path: Path) -> None:
    run_dir = make_binary_run(tmp_path / "run")
    figures = write_figures(run_dir)
    _check(run_dir, figures,
           {"roc", "pr", "calibration", "subgroups", "confusion", "learning_curve"})


def test_multiclass_run_writes_one_vs_rest_figures(tmp_path: Path) -> None:
    run_dir = make_multiclass_run(tmp_path / "run")
    figures = write_figures(run_dir)
    _check(run_dir, figures, {"roc", "pr", "calibration", "subgroups", "confusion"})


def test_regression_run_writes_predicted_vs_observed(tmp_path: Path) -> None:
    run_dir = make_regression_run(tmp_path / "run")
    figures = write_figures(run_dir)
    _check(run_dir, figures, {"predicted_vs_observed", "subgroups"})


def test_null_metrics_and_no_subgroups_still_draw(tmp_path: Path) -> None:
    run_dir = make_null_run(tmp_path / "run")
    figures = write_figures(run_dir)
    _check(run_dir, figures, {"roc", "pr", "calibration", "confusion"})


def test_missing_predictions_raises_run_error(tmp_path: Path) -> None:
    run_dir = make_null_run(tmp_path / "run")
    (run_dir / "predictions.csv").unlink()
    with pytest.raises(RunError, match="predictions.csv"):
        write_figures(run_dir)


def test_plot_functions_take_plain_arrays(tmp_path: Path) -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    scores = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.2, 0.4, 0.5])
    roc = plot_roc(y, scores, tmp_path / "roc.png",
                   metric={"value": 0.875, "ci95": [0.6, 1.0], "n": 8})
    confusion = plot_confusion(y, (scores >= 0.5).astype(int), tmp_path / "cm.png",
                               class_names=["no", "yes"], threshold=0.5)
    assert_png(roc)
    assert_png(confusion)
    assert plt.get_fignums() == []


def test_confusion_counts() -> None:
    counts = confusion_counts(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_formatting_of_undefined_values() -> None:
    assert fmt(None) == "n/a"
    assert fmt(float("nan")) == "n/a"
    assert fmt(0.98765) == "0.988"
    assert fmt_ci([None, None]) == "n/a"
    assert fmt_ci(None) == "n/a"
    assert fmt_ci([0.9, None]) == "0.900–n/a"
    assert metric_text({"value": 0.99, "ci95": [0.97, 1.0]}) == "0.990 (95% CI 0.970–1.000)"
    assert metric_text(None) == "n/a (95% CI n/a)"


def test_kinds_without_curves_draw_nothing_and_do_not_crash(tmp_path: Path) -> None:
    run_dir = make_null_run(tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["target_kind"] = "survival"
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.json").write_text(json.dumps({"primary_metric": "c_index",
                                                     "splits": {"test": {}}}))
    pd.DataFrame({"split": ["test"] * 3, "row": [0, 1, 2], "patient_id": ["a", "b", "c"],
                  "target_0": [1.0, 2.0, 3.0], "target_1": [1, 0, 1],
                  "risk": [0.2, 0.5, 0.9]}).to_csv(run_dir / "predictions.csv", index=False)
    assert write_figures(run_dir) == {}
