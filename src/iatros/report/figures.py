"""Figures for a finished run: ROC, PR, calibration, subgroups, confusion, learning curve.

Each ``plot_*`` function takes plain arrays or dicts and writes one PNG, so other modalities can
reuse them; ``write_figures`` reads a run folder and draws the ones that apply to its task.
This module also holds the run-folder readers and the number formatting that the model card
shares, so a figure legend and the report print a metric the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from iatros.errors import RunError
from iatros.kinds import TargetKind
from iatros.run_folder import FEDERATION, FIGURES, RunFolder, read_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FIGURE_DPI = 120
FIGURE_DIR = FIGURES
_CHANCE_STYLE = {"color": "grey", "linestyle": "--", "linewidth": 1}


# --------------------------------------------------------------------------------------------
# Metric vocabulary and number formatting (shared with the model card)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    """How to name and explain one metric to a clinician."""

    label: str
    explanation: str
    bounded: bool = True  # on a 0-1-like scale, so a CI wider than 0.2 means "uncertain"
    lower_is_better: bool = False


METRIC_INFO: dict[str, MetricInfo] = {
    "auroc": MetricInfo(
        "AUROC",
        "Chance that the model ranks a random patient with the condition above one without it; "
        "0.5 is a coin flip, 1.0 is perfect."),
    "auprc": MetricInfo(
        "AUPRC (average precision)",
        "How often the model's flags are right, averaged over all thresholds; compare it with "
        "the prevalence, which is what flagging at random would score."),
    "accuracy": MetricInfo(
        "Accuracy",
        "Share of patients the model classifies correctly; can look high when one class is rare."),
    "balanced_accuracy": MetricInfo(
        "Balanced accuracy",
        "Accuracy averaged over the classes, so a rare class counts as much as a common one."),
    "sensitivity": MetricInfo(
        "Sensitivity",
        "Share of patients with the condition whom the model flags."),
    "specificity": MetricInfo(
        "Specificity",
        "Share of patients without the condition whom the model correctly leaves unflagged."),
    "specificity_at_sens90": MetricInfo(
        "Specificity at 90% sensitivity",
        "Specificity when the threshold is set so that the model catches 90% of patients with "
        "the condition."),
    "f1": MetricInfo(
        "F1 score",
        "Balance between how often a flag is right and how many cases are caught; 1.0 is "
        "perfect."),
    "kappa": MetricInfo(
        "Cohen's kappa",
        "Agreement between the model and the true label beyond what chance alone would give; "
        "0 is chance, 1 is perfect."),
    "brier": MetricInfo(
        "Brier score",
        "Mean squared error of the predicted probabilities; lower is better, 0 is perfect.",
        lower_is_better=True),
    "ece": MetricInfo(
        "Expected calibration error (ECE)",
        "Average gap between the predicted risk and how often the outcome really happened; "
        "lower is better, 0 means predicted risks match reality.", lower_is_better=True),
    "rmse": MetricInfo(
        "RMSE",
        "Typical size of a prediction error, in the outcome's units, with large errors weighing "
        "more; lower is better.", bounded=False, lower_is_better=True),
    "mae": MetricInfo(
        "MAE",
        "Average size of a prediction error, in the outcome's units; lower is better.",
        bounded=False, lower_is_better=True),
    "r2": MetricInfo(
        "R²",
        "Share of the variation in the outcome that the model explains; 1.0 is perfect, 0 is no "
        "better than always predicting the average."),
    "c_index": MetricInfo(
        "C-index",
        "Chance that, of two patients, the model gives the higher risk to the one whose event "
        "comes first; 0.5 is chance, 1.0 is perfect."),
    "c_td": MetricInfo(
        "Time-dependent C-index (Antolini)",
        "Like the C-index, but compares the two patients' predicted survival curves at the time of "
        "the first one's event; 0.5 is chance, 1.0 is perfect."),
    "ibs": MetricInfo(
        "Integrated Brier score",
        "Error of the predicted survival curves over the follow-up time; lower is better, about "
        "0.25 is uninformative.", lower_is_better=True),
}


def metric_info(key: str) -> MetricInfo:
    """Label and explanation for a metric key, falling back to the key for unknown metrics."""
    return METRIC_INFO.get(key, MetricInfo(key, "", bounded=False))


def as_float(value: Any) -> float | None:
    """The value as a finite float, or None when it is null, NaN, infinite or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` decimals, or "n/a" when it is undefined."""
    number = as_float(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def fmt_count(value: Any) -> str:
    """A count as an integer, or "n/a" when it is undefined."""
    number = as_float(value)
    return "n/a" if number is None else str(int(round(number)))


def ci_bounds(ci: Any) -> tuple[float | None, float | None]:
    """The (lower, upper) bounds of a ``ci95`` entry, each None when undefined."""
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return None, None
    return as_float(ci[0]), as_float(ci[1])


def fmt_ci(ci: Any) -> str:
    """A CI as "0.970–1.000", or "n/a" when both bounds are undefined."""
    lower, upper = ci_bounds(ci)
    if lower is None and upper is None:
        return "n/a"
    return f"{fmt(lower)}–{fmt(upper)}"


def metric_text(entry: Mapping[str, Any] | None) -> str:
    """A metric entry as "0.990 (95% CI 0.970–1.000)"."""
    entry = entry or {}
    return f"{fmt(entry.get('value'))} (95% CI {fmt_ci(entry.get('ci95'))})"


# --------------------------------------------------------------------------------------------
# Reading a run folder
# --------------------------------------------------------------------------------------------


@dataclass
class RunFiles:
    """What a run folder holds for its report, read through `RunFolder`."""

    run_dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    train_log: pd.DataFrame | None

    @property
    def task(self) -> str:
        return str(self.config.get("task") or self.metrics.get("task") or "TASK")

    @property
    def kind(self) -> TargetKind:
        return target_kind(self.config, self.metrics, self.run_dir)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in (self.config.get("classes") or [])]


def target_kind(config: Mapping[str, Any], metrics: Mapping[str, Any], run_dir: Path) -> TargetKind:
    """The run's target kind from config.json (or metrics.json), as a TargetKind."""
    raw = config.get("target_kind") or metrics.get("target_kind")
    try:
        return TargetKind(raw)
    except ValueError as exc:
        raise RunError(f"run folder {run_dir}: config.json has unknown target_kind {raw!r}; "
                       f"expected one of {', '.join(k.value for k in TargetKind)}") from exc


def load_run(run_dir: Path) -> RunFiles:
    """config.json, metrics.json, predictions.csv and train_log.csv of a run folder, each
    checked by `RunFolder` (a missing or damaged file is a RunError naming it)."""
    folder = RunFolder(run_dir)
    config = folder.config()
    run = RunFiles(Path(run_dir), config, folder.metrics(), folder.predictions(),
                   folder.train_log())
    _ = run.kind  # fail early, with a clear message, on an unknown target kind
    return run


# --------------------------------------------------------------------------------------------
# Plotting helpers
# --------------------------------------------------------------------------------------------


def _save(fig: plt.Figure, out: Path) -> Path:
    """Write the figure as a PNG and close it, so repeated reports do not grow memory."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(out, dpi=FIGURE_DPI, format="png")
    finally:
        plt.close(fig)
    return out


def _class_name(class_names: Sequence[str] | None, index: int) -> str:
    if class_names and index < len(class_names):
        return str(class_names[index])
    return f"class {index}"


Curve = tuple[str, np.ndarray, np.ndarray]


def one_vs_rest(y_true: np.ndarray, scores: np.ndarray,
                class_names: Sequence[str] | None = None) -> list[Curve]:
    """(label, 0/1 truth, score) per class with both positives and negatives present.

    A 1-D ``scores`` is a binary task scored by P(class 1); a 2-D one has a column per class.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        pairs = [(_class_name(class_names, 1), (y_true == 1).astype(int), scores)]
    else:
        pairs = [(_class_name(class_names, k), (y_true == k).astype(int), scores[:, k])
                 for k in range(scores.shape[1])]
    return [(label, y, s) for label, y, s in pairs if 0 < y.sum() < len(y)]


def _binary_title(kind: str, split: str, y: np.ndarray) -> str:
    return f"{kind}, {split} set (n={len(y)}, {int(np.sum(y))} positive)"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_roc(y_true: np.ndarray, scores: np.ndarray, out: Path, *,
             class_names: Sequence[str] | None = None,
             metric: Mapping[str, Any] | None = None, split: str = "test") -> Path:
    """ROC curve: one curve for binary scores, one-vs-rest per class for a score matrix."""
    curves = one_vs_rest(y_true, scores, class_names)
    binary = np.ndim(scores) == 1
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, y, s in curves:
        fpr, tpr, _ = roc_curve(y, s)
        legend = (f"AUROC {metric_text(metric)}" if binary
                  else f"{label} vs rest (AUC {auc(fpr, tpr):.3f})")
        ax.plot(fpr, tpr, linewidth=2, label=legend)
    ax.plot([0, 1], [0, 1], label="Chance (0.5)", **_CHANCE_STYLE)
    if binary:
        ax.set_title(_binary_title("ROC curve", split, np.asarray(y_true)))
    else:
        ax.set_title(f"ROC one-vs-rest, {split} set (n={len(y_true)})\n"
                     f"macro AUROC {metric_text(metric)}")
    ax.set_xlabel("False positive rate (1 − specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out)


def plot_pr(y_true: np.ndarray, scores: np.ndarray, out: Path, *,
            class_names: Sequence[str] | None = None,
            metric: Mapping[str, Any] | None = None, split: str = "test") -> Path:
    """Precision-recall curve with the prevalence (no-skill) baseline per curve."""
    curves = one_vs_rest(y_true, scores, class_names)
    binary = np.ndim(scores) == 1
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, y, s in curves:
        precision, recall, _ = precision_recall_curve(y, s)
        prevalence = float(np.mean(y))
        legend = (f"AUPRC {metric_text(metric)}" if binary
                  else f"{label} vs rest (AP {average_precision_score(y, s):.3f})")
        (line,) = ax.plot(recall, precision, linewidth=2, label=legend)
        baseline_label = (f"Prevalence {prevalence:.3f} (no skill)" if binary
                          else f"{label} prevalence {prevalence:.3f}")
        ax.axhline(prevalence, color=line.get_color(), linestyle=":", linewidth=1,
                   label=baseline_label)
    if binary:
        ax.set_title(_binary_title("Precision-recall", split, np.asarray(y_true)))
    else:
        ax.set_title(f"Precision-recall one-vs-rest, {split} set (n={len(y_true)})")
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision (positive predictive value)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, out)


def _bin_array(bins: Mapping[str, Any], key: str) -> np.ndarray:
    values = bins.get(key) or []
    return np.array([np.nan if as_float(v) is None else as_float(v) for v in values], dtype=float)


def plot_calibration(curves: Mapping[str, Mapping[str, Any]], out: Path, *,
                     probabilities: Mapping[str, np.ndarray] | None = None,
                     split: str = "test", n: int | None = None) -> Path:
    """Reliability diagram (one line per labelled set of bins) over a histogram of predictions.

    ``curves`` maps a legend label to reliability bins with ``mean_predicted``, ``observed``
    and ``count`` lists (nulls allowed for empty bins); ``probabilities`` maps a label to the
    predicted probabilities drawn in the histogram below.
    """
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], label="Perfect calibration", **_CHANCE_STYLE)
    for label, bins in curves.items():
        predicted = _bin_array(bins, "mean_predicted")
        observed = _bin_array(bins, "observed")
        size = min(len(predicted), len(observed))
        keep = np.isfinite(predicted[:size]) & np.isfinite(observed[:size])
        ax.plot(predicted[:size][keep], observed[:size][keep], marker="o", linewidth=1.5,
                label=label)
    n_text = f" (n={n})" if n is not None else ""
    ax.set_title(f"Calibration, {split} set{n_text}")
    ax.set_ylabel("Observed frequency")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="upper left", fontsize=8)
    for label, probs in (probabilities or {}).items():
        values = np.asarray(probs, dtype=float)
        hist.hist(values[np.isfinite(values)], bins=20, range=(0, 1), histtype="step",
                  linewidth=1.5, label=label)
    hist.set_xlabel("Predicted probability")
    hist.set_ylabel("Patients")
    if probabilities:
        hist.legend(fontsize=7)
    return _save(fig, out)


def _subgroup_panel(ax: plt.Axes, attribute: str, groups: Mapping[str, Any], metric: str,
                    overall: float | None) -> None:
    """One forest-plot panel: the metric per group with its CI and the group n in the label."""
    names = list(groups)
    ticks = []
    for position, name in enumerate(names):
        group = groups[name] or {}
        entry = (group.get("metrics") or {}).get(metric) or {}
        value = as_float(entry.get("value"))
        lower, upper = ci_bounds(entry.get("ci95"))
        tick = f"{name} (n={fmt_count(group.get('n'))})"
        if value is None:
            ticks.append(f"{tick}: n/a")
            continue
        ticks.append(tick)
        if lower is not None and upper is not None:
            err = [[max(value - lower, 0.0)], [max(upper - value, 0.0)]]
            ax.errorbar(value, position, xerr=err, fmt="o", color="tab:blue", capsize=4)
        else:
            ax.plot(value, position, "o", color="tab:blue")
    if overall is not None:
        ax.axvline(overall, label=f"All patients ({overall:.3f})", **_CHANCE_STYLE)
        ax.legend(loc="best", fontsize=7)
    ax.set_yticks(range(len(names)), ticks, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_title(attribute, fontsize=10)


def plot_subgroups(subgroups: Mapping[str, Any], metric: str, out: Path, *,
                   overall: float | None = None, split: str = "test") -> Path:
    """Forest plot with one panel per sensitive attribute (metrics.json ``subgroups`` shape)."""
    attributes = [a for a in subgroups if (subgroups[a] or {}).get("groups")]
    heights = [max(len(subgroups[a]["groups"]), 1) * 0.45 + 0.9 for a in attributes]
    fig, axes = plt.subplots(len(attributes), 1, figsize=(6, sum(heights) + 0.8),
                             squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": heights})
    for ax, attribute in zip(axes[:, 0], attributes, strict=True):
        _subgroup_panel(ax, attribute, subgroups[attribute]["groups"], metric, overall)
    label = metric_info(metric).label
    axes[-1, 0].set_xlabel(f"{label} (point and 95% CI)")
    fig.suptitle(f"{label} by subgroup, {split} set", fontsize=11)
    return _save(fig, out)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    for truth, pred in zip(np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int),
                           strict=True):
        if 0 <= truth < n_classes and 0 <= pred < n_classes:
            matrix[truth, pred] += 1
    return matrix


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, out: Path, *,
                   class_names: Sequence[str] | None = None, threshold: float | None = None,
                   split: str = "test") -> Path:
    """Confusion matrix with counts and the share of each true class in every cell."""
    n_classes = max(len(class_names or []), int(np.max(y_true, initial=0)) + 1,
                    int(np.max(y_pred, initial=0)) + 1, 2)
    matrix = confusion_counts(y_true, y_pred, n_classes)
    names = [_class_name(class_names, k) for k in range(n_classes)]
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    size = 3.2 + 0.6 * n_classes
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n_classes):
        for j in range(n_classes):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]}\n({shares[i, j]:.0%})", ha="center", va="center",
                    color=colour, fontsize=9)
    ax.set_xticks(range(n_classes), names, rotation=30, ha="right")
    ax.set_yticks(range(n_classes), names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    at = f", threshold {threshold:.3f}" if threshold is not None else ""
    ax.set_title(f"Confusion matrix, {split} set (n={len(y_true)}{at})", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Share of true class")
    return _save(fig, out)


def _finite_column(log: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in log.columns:
        return None
    values = pd.to_numeric(log[column], errors="coerce")
    return values if values.notna().any() else None


def plot_learning_curve(log: pd.DataFrame, out: Path, *,
                        metric_label: str = "Validation metric",
                        lower_is_better: bool = False) -> Path:
    """Training and validation loss per epoch, plus the validation metric when logged."""
    epochs = pd.to_numeric(log["epoch"], errors="coerce")
    val_metric = _finite_column(log, "val_metric")
    n_panels = 2 if val_metric is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 4), squeeze=False)
    loss_ax = axes[0, 0]
    for column, label in (("train_loss", "Training loss"), ("val_loss", "Validation loss")):
        values = _finite_column(log, column)
        if values is not None:
            loss_ax.plot(epochs, values, marker=".", label=label)
    loss_ax.set_xlabel("Epoch")
    loss_ax.set_ylabel("Loss")
    loss_ax.set_title(f"Loss per epoch ({len(log)} epochs)")
    loss_ax.legend(fontsize=8)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if val_metric is not None:
        metric_ax = axes[0, 1]
        metric_ax.plot(epochs, val_metric, marker=".", color="tab:green")
        pick = np.nanargmin if lower_is_better else np.nanargmax
        best = int(pick(val_metric.to_numpy()))
        metric_ax.set_title(f"{metric_label} (best {val_metric.iloc[best]:.3f} "
                            f"at epoch {epochs.iloc[best]:g})")
        metric_ax.set_xlabel("Epoch")
        metric_ax.set_ylabel(metric_label)
    return _save(fig, out)


def plot_predicted_vs_observed(observed: np.ndarray, predicted: np.ndarray, out: Path, *,
                               metric: Mapping[str, Any] | None = None,
                               metric_key: str = "r2", split: str = "test") -> Path:
    """Scatter of predicted against observed values with the identity line."""
    observed = np.asarray(observed, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    keep = np.isfinite(observed) & np.isfinite(predicted)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(observed[keep], predicted[keep], s=14, alpha=0.6,
               label=f"{metric_info(metric_key).label} {metric_text(metric)}")
    if keep.any():
        low = float(min(observed[keep].min(), predicted[keep].min()))
        high = float(max(observed[keep].max(), predicted[keep].max()))
        ax.plot([low, high], [low, high], label="Perfect prediction", **_CHANCE_STYLE)
    ax.set_xlabel("Observed")
    ax.set_ylabel("Predicted")
    ax.set_title(f"Predicted vs observed, {split} set (n={int(keep.sum())})")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out)


def per_group_histogram(split: Mapping[str, Any], by: str, out: Path) -> Path | None:
    """Histogram of the per-group (e.g. per-drug) Pearson and Spearman correlations of one
    split, medians marked; None when no group has one."""
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for name, colour in (("pearson", "#1f77b4"), ("spearman", "#ff7f0e")):
        values = [g[name]["value"] for g in split.get("groups") or []
                  if g.get(name) and g[name].get("value") is not None]
        if not values:
            continue
        drawn = True
        median = float(np.median(values))
        ax.hist(values, bins=np.linspace(-1, 1, 41), alpha=0.5, color=colour,
                label=f"{name.capitalize()} (median {median:.3f}, {len(values)} {by}s)")
        ax.axvline(median, color=colour, linestyle="--", linewidth=1)
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel(f"Correlation of predicted and measured, per {by}")
    ax.set_ylabel(f"{by.capitalize()}s")
    ax.set_title(f"Per-{by} correlation, test set")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------
# Driver: read a run folder, draw what applies
# --------------------------------------------------------------------------------------------


def _split_rows(predictions: pd.DataFrame, split: str) -> pd.DataFrame:
    return predictions[predictions["split"].astype(str) == split].reset_index(drop=True)


def class_indices(target: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """Targets as class indices, accepting either indices or class names in the CSV."""
    numeric = pd.to_numeric(target, errors="coerce")
    if numeric.notna().all():
        return numeric.round().astype(int).to_numpy()
    lookup = {str(name): index for index, name in enumerate(classes)}
    return target.astype(str).map(lookup).fillna(-1).astype(int).to_numpy()


def probability_matrix(frame: pd.DataFrame, prefix: str) -> np.ndarray | None:
    """Columns ``prefix0, prefix1, ...`` as an (n, C) array, or None when there are none."""
    columns = []
    while f"{prefix}{len(columns)}" in frame.columns:
        columns.append(f"{prefix}{len(columns)}")
    if not columns:
        return None
    return frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)


def _scores(run: RunFiles, test: pd.DataFrame, raw: bool = False) -> np.ndarray | None:
    """Test-set scores: P(class 1) (a `prob` column, binary), else the probability matrix
    (`prob_0`, `prob_1`, ...)."""
    if "prob" in test.columns:
        column = "prob_raw" if raw and "prob_raw" in test.columns else "prob"
        return pd.to_numeric(test[column], errors="coerce").to_numpy(dtype=float)
    if raw and probability_matrix(test, "prob_raw_") is not None:
        return probability_matrix(test, "prob_raw_")
    return probability_matrix(test, "prob_")


def _test_metric(run: RunFiles, key: str) -> dict[str, Any] | None:
    return ((run.metrics.get("splits") or {}).get("test") or {}).get(key)


def _threshold(run: RunFiles) -> float:
    value = as_float(run.metrics.get("threshold"))
    return 0.5 if value is None else value


def _classification_figures(run: RunFiles, test: pd.DataFrame, fig_dir: Path) -> dict[str, Path]:
    """ROC, PR and confusion matrix for binary, multiclass and ordinal tasks."""
    scores = _scores(run, test)
    if scores is None or not len(test) or "target" not in test.columns:
        return {}
    y_true = class_indices(test["target"], run.classes)
    valid = np.isfinite(scores) if scores.ndim == 1 else np.isfinite(scores).all(axis=1)
    valid &= y_true >= 0
    y_true, scores = y_true[valid], scores[valid]
    written: dict[str, Path] = {}
    names = run.classes or None
    if one_vs_rest(y_true, scores, names):
        written["roc"] = plot_roc(y_true, scores, fig_dir / "roc.png", class_names=names,
                                  metric=_test_metric(run, "auroc"))
        written["pr"] = plot_pr(y_true, scores, fig_dir / "pr.png", class_names=names,
                                metric=_test_metric(run, "auprc"))
    if len(y_true):
        binary = scores.ndim == 1
        y_pred = (scores >= _threshold(run)).astype(int) if binary else scores.argmax(axis=1)
        written["confusion"] = plot_confusion(
            y_true, y_pred, fig_dir / "confusion.png", class_names=names,
            threshold=_threshold(run) if binary else None)
    return written


def _regression_figures(run: RunFiles, test: pd.DataFrame, fig_dir: Path) -> dict[str, Path]:
    """Predicted-vs-observed scatter for regression tasks."""
    if not {"prediction", "target"} <= set(test.columns) or not len(test):
        return {}
    key = "r2" if _test_metric(run, "r2") is not None else str(run.metrics.get("primary_metric"))
    return {"predicted_vs_observed": plot_predicted_vs_observed(
        pd.to_numeric(test["target"], errors="coerce"),
        pd.to_numeric(test["prediction"], errors="coerce"),
        fig_dir / "predicted_vs_observed.png", metric=_test_metric(run, key), metric_key=key)}


def _confidence(scores: np.ndarray | None) -> np.ndarray | None:
    """Binary P(class 1) as is; for a probability matrix, the top-class probability."""
    if scores is None:
        return None
    return scores if scores.ndim == 1 else scores.max(axis=1)


def _calibration_figure(run: RunFiles, test: pd.DataFrame, fig_dir: Path) -> dict[str, Path]:
    """Reliability diagram before and after calibration, from the metrics.json bins."""
    calibration = run.metrics.get("calibration") or {}
    reliability = calibration.get("reliability") or {}
    method = calibration.get("method") or "calibration"
    curves: dict[str, Mapping[str, Any]] = {}
    for key, label in (("test_before", "Before"), ("test_after", f"After {method}")):
        bins = reliability.get(key)
        if bins:
            ece = (calibration.get(key) or {}).get("ece")
            curves[f"{label}: ECE {metric_text(ece)}"] = bins
    if not curves:
        return {}
    probabilities: dict[str, np.ndarray] = {}
    raw, calibrated = _confidence(_scores(run, test, raw=True)), _confidence(_scores(run, test))
    if raw is not None and len(raw):
        probabilities["Before"] = raw
    if calibrated is not None and len(calibrated) and "test_after" in reliability:
        probabilities[f"After {method}"] = calibrated
    return {"calibration": plot_calibration(curves, fig_dir / "calibration.png",
                                            probabilities=probabilities, n=len(test) or None)}


def _subgroup_figure(run: RunFiles, fig_dir: Path) -> dict[str, Path]:
    """Forest plot of the primary metric per group, when any attribute was audited."""
    subgroups = run.metrics.get("subgroups") or {}
    if not any((entry or {}).get("groups") for entry in subgroups.values()):
        return {}
    metric = str(run.metrics.get("primary_metric") or "")
    overall = as_float((_test_metric(run, metric) or {}).get("value"))
    return {"subgroups": plot_subgroups(subgroups, metric, fig_dir / "subgroups.png",
                                        overall=overall)}


def _learning_curve_figure(run: RunFiles, fig_dir: Path) -> dict[str, Path]:
    """Learning curve when the run was trained with a logged training loop."""
    if run.train_log is None:
        return {}
    primary = str(run.metrics.get("primary_metric") or "")
    info = metric_info(primary)
    label = f"Validation {info.label}" if primary else "Validation metric"
    log = run.train_log
    if "member" in log.columns and log["member"].nunique() > 1:  # an ensemble: show member 0
        log = log[log["member"] == log["member"].min()]
        label += " (first ensemble member)"
    return {"learning_curve": plot_learning_curve(log, fig_dir / "learning_curve.png",
                                                  metric_label=label,
                                                  lower_is_better=info.lower_is_better)}


def plot_federated_rounds(record: Mapping[str, Any], metric: str, out: Path) -> Path:
    """A federated run's learning curve: each site's validation metric of the global model per
    round and, in simulation, the metric on all test patients; bytes exchanged per round."""
    rounds = record.get("rounds") or []
    x = [r["round"] for r in rounds]
    fig, (ax, bytes_ax) = plt.subplots(1, 2, figsize=(10, 4))
    sites = sorted({s for r in rounds for s in r.get("sites", {})})
    for site in sites:
        values = [r["sites"].get(site, {}).get(f"val_{metric}", np.nan) for r in rounds]
        ax.plot(x, [np.nan if v is None else v for v in values], marker=".",
                alpha=0.7, label=f"{site} (validation)")
    pooled = record.get("pooled_test_by_round") or {}
    if pooled:
        keys = sorted(pooled, key=int)
        ax.plot([int(k) for k in keys],
                [pooled[k].get(f"pooled_test_{metric}") or np.nan for k in keys],
                color="black", linewidth=2, label="all test patients")
    label = metric_info(metric).label if metric else "metric"
    ax.set_xlabel("Round")
    ax.set_ylabel(label)
    ax.set_title(f"Global model's {label} per round")
    ax.legend(fontsize=7, loc="best")
    sent = [((r.get("bytes_down") or 0) + (r.get("bytes_up") or 0)) / 1e6 for r in rounds]
    bytes_ax.bar(x, sent, color="tab:gray")
    bytes_ax.set_xlabel("Round")
    bytes_ax.set_ylabel("MB of model weights exchanged")
    bytes_ax.set_title("Traffic per round (both directions)")
    for axis in (ax, bytes_ax):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, out)


def _federation_figure(run: RunFiles, fig_dir: Path) -> dict[str, Path]:
    path = run.run_dir / FEDERATION
    if not path.is_file():
        return {}
    metric = str(run.metrics.get("primary_metric") or "")
    return {"federated_rounds": plot_federated_rounds(read_json(path), metric,
                                                      fig_dir / "federated_rounds.png")}


def _survival_figures(run: RunFiles, test: pd.DataFrame, fig_dir: Path) -> dict[str, Path]:
    from iatros.report.survival_figures import survival_figures

    return survival_figures(run.metrics, fig_dir)


def _none(run: RunFiles, test: pd.DataFrame, fig_dir: Path) -> dict[str, Path]:
    return {}


# The figures of each target kind beside the shared calibration, subgroup and learning ones.
KIND_FIGURES: dict[TargetKind, Any] = {
    TargetKind.BINARY: _classification_figures,
    TargetKind.MULTICLASS: _classification_figures,
    TargetKind.ORDINAL: _classification_figures,
    TargetKind.REGRESSION: _regression_figures,
    TargetKind.SURVIVAL: _survival_figures,
}


def figures_for_run(run: RunFiles) -> dict[str, str]:
    """Draw every figure that applies to an already-read run; names -> paths relative to it."""
    fig_dir = run.run_dir / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    test = _split_rows(run.predictions, "test")
    written: dict[str, Path] = dict(KIND_FIGURES.get(run.kind, _none)(run, test, fig_dir))
    written.update(_calibration_figure(run, test, fig_dir))
    written.update(_subgroup_figure(run, fig_dir))
    written.update(_learning_curve_figure(run, fig_dir))
    written.update(_federation_figure(run, fig_dir))
    return {name: path.relative_to(run.run_dir).as_posix() for name, path in written.items()}


def write_figures(run_dir: Path) -> dict[str, str]:
    """Draw the report figures of a run folder into ``run_dir/figures``.

    Returns figure name -> PNG path relative to ``run_dir`` (e.g. ``"roc": "figures/roc.png"``),
    so the report can link them and the folder stays movable.
    """
    return figures_for_run(load_run(run_dir))
