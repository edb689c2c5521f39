"""Scorers for kinds scored by probabilities or values: binary, multiclass, ordinal, multilabel
and regression. Calibration and the decision threshold are fitted on validation only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.evaluate.calibration import calibrator_from_dict, fit_calibrator, reliability_curve
from iatros.evaluate.fairness import audit as audit_attributes
from iatros.evaluate.fairness import subgroup_audit
from iatros.evaluate.thresholds import choose_threshold
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.scoring.base import (
    FinishContext,
    Finished,
    Scored,
    bootstrap_block,
    class_name,
    fmt_entry,
    metrics_for,
    metrics_header,
    prediction_frame,
    primary_summary,
    require_finite,
    target_columns,
)
from iatros.run_folder import CALIBRATION, PREDICTIONS, RunFolder, write_csv, write_json
from iatros.tasks import Task, TaskData
from iatros.train.predictors import scoring_view

SCORED_SPLITS = ("val", "test")


class ProbabilityScorer:
    """Shared by every probability kind; subclasses say how scores become columns and words."""

    reliability = True  # draw reliability curves (probabilities of one outcome or class)
    supports_cross_fit = True
    cross_validates = True
    hands_test_scores = True

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        return {}

    # -- per-kind hooks -------------------------------------------------------------------
    def score_columns(self, calibrated: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
        """predictions.csv columns for calibrated and raw scores."""
        cal = {f"prob_{j}": calibrated[:, j] for j in range(calibrated.shape[1])}
        return {**cal, **{f"prob_raw_{j}": raw[:, j] for j in range(raw.shape[1])}}

    def scores_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        cols = sorted((c for c in frame.columns if c.startswith("prob_") and c[5:].isdigit()),
                      key=lambda c: int(c[5:]))
        return frame[cols].to_numpy(float)

    def threshold(self, options: EvalOptions, val_y: np.ndarray,
                  val_scores: np.ndarray) -> tuple[float, str]:
        return 0.5, ""

    def result(self, task: Task, name: str, score: Any, threshold: float,
               calibration: str | None) -> dict[str, Any]:
        probs = {c: float(v) for c, v in zip(task.classes, score, strict=True)}
        return {"input": name, "probabilities": probs,
                "prediction": task.classes[int(np.argmax(score))], "threshold": None,
                "calibration": calibration}

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        """One confident example per class."""
        picks = [int(np.argmax(scores[:, c])) for c in range(min(scores.shape[1], n))]
        return list(dict.fromkeys(picks))[:n]

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        unit = int(np.argmax(score))
        name = class_name(task, unit)
        return unit, f"predicted {name} (p = {score[unit]:.2f})", name

    def true_label(self, task: Task, target: Any) -> str:
        return class_name(task, int(target))

    # -- the protocol ---------------------------------------------------------------------
    def finish(self, ctx: FinishContext) -> Finished:
        task, data, split, options = ctx.task, ctx.data, ctx.split, ctx.options
        raw = {}
        for name in SCORED_SPLITS:
            rows = split.part(name)
            raw[name] = scoring_view(ctx.predictor, rows).predict_scores(data.inputs[rows])
            require_finite(raw[name], name, rows, data)
        val_y = data.targets[split.val]
        calibrator = fit_calibrator(task.target, raw["val"], val_y)
        write_json(ctx.run.file(CALIBRATION), calibrator.to_dict())
        calibrated = {name: calibrator.transform(scores) for name, scores in raw.items()}
        threshold, rule = self.threshold(options, val_y, calibrated["val"])
        options = options.with_threshold(threshold)
        frames = [self.frame(name, split.part(name), data, raw[name], calibrated[name])
                  for name in SCORED_SPLITS]
        write_csv(ctx.run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
        test = split.test
        metrics = {
            **metrics_header(task, ctx.predictor.info.get("name")),
            "threshold": threshold, "threshold_rule": rule,
            "splits": {name: self.score_part(task, data, split.part(name), calibrated[name], options)
                       for name in ("test", "val")},
            "calibration": self.calibration_section(task, calibrator, data, test, raw["test"],
                                                    calibrated["test"], options),
            "subgroups": self.audits(task, data, test, calibrated["test"], options),
            "bootstrap": bootstrap_block(task, options),
        }
        return Finished(metrics, calibrated["test"])

    def score_rows(self, run: RunFolder, task: Task, predictor: Any, data: TaskData,
                   rows: np.ndarray, split_name: str, options: EvalOptions) -> Scored:
        calibrator = calibrator_from_dict(run.calibration() or {"type": "identity"})
        raw = predictor.predict_scores(data.inputs[rows])
        calibrated = calibrator.transform(raw)
        return Scored(self.score_part(task, data, rows, calibrated, options),
                      self.audits(task, data, rows, calibrated, options),
                      self.frame(split_name, rows, data, raw, calibrated))

    def audit(self, run: RunFolder, task: Task, by: str, split: str,
              options: EvalOptions, trust: bool = False) -> dict[str, Any]:
        frame = run.predictions()
        column = f"attr_{by}"
        if column not in frame.columns:
            available = [c.removeprefix("attr_") for c in frame.columns if c.startswith("attr_")]
            raise ConfigError(f"run {run.path} has no attribute {by!r}; available: "
                              f"{', '.join(available) or 'none (this task has no sensitive attributes)'}")
        part = frame[frame["split"] == split]
        if part.empty:
            raise ConfigError(f"run {run.path} has no predictions for split {split!r} (val, test)")
        threshold = run.metrics().get("threshold", options.threshold)
        return subgroup_audit(part["target"].to_numpy(), self.scores_from_frame(part),
                              part[column].to_numpy(), task.target, attribute=by,
                              metrics=metrics_for(task), threshold=threshold, n_boot=options.n_boot,
                              seed=options.seed, clusters=part["patient_id"].to_numpy())

    def scores(self, run: RunFolder, predictor: Any, batch: Any) -> np.ndarray:
        calibrator = calibrator_from_dict(run.calibration() or {"type": "identity"})
        return calibrator.transform(predictor.predict_scores(batch))

    def predict(self, run: RunFolder, task: Task, predictor: Any, batch: Any,
                names: Sequence[str], out_dir: Path) -> tuple[list[dict[str, Any]], Any]:
        scores = self.scores(run, predictor, batch)
        threshold = run.metrics().get("threshold") or 0.5
        method = (run.calibration() or {}).get("type")
        return [self.result(task, name, scores[k], threshold, method)
                for k, name in enumerate(names)], scores

    def summary(self, metrics: Mapping[str, Any]) -> str:
        return primary_summary(metrics)

    def prediction_cells(self, result: Mapping[str, Any]) -> tuple[str, str, str]:
        probs = ", ".join(f"{k}: {v:.3f}" for k, v in (result.get("probabilities") or {}).items())
        words = ", ".join(w["term"] for w in result.get("words", []))
        detail = result.get("heatmap") or result.get("figure") or (f"words: {words}" if words
                                                                    else "-")
        return str(result["prediction"]), probs, detail

    # -- shared steps ---------------------------------------------------------------------
    def frame(self, split_name: str, rows: np.ndarray, data: TaskData, raw: np.ndarray,
              calibrated: np.ndarray) -> pd.DataFrame:
        columns = {**target_columns(data.targets[rows]), **self.score_columns(calibrated, raw)}
        return prediction_frame(split_name, rows, data, columns)

    def score_part(self, task: Task, data: TaskData, rows: np.ndarray, scores: np.ndarray,
                   options: EvalOptions) -> dict[str, Any]:
        return M.evaluate(data.targets[rows], scores, task.target, metrics=metrics_for(task),
                          threshold=options.threshold, n_boot=options.n_boot, seed=options.seed,
                          clusters=data.patient_ids[rows])

    def audits(self, task: Task, data: TaskData, rows: np.ndarray, scores: np.ndarray,
               options: EvalOptions) -> dict[str, Any]:
        if not task.sensitive_attributes:
            return {}
        attrs = data.attributes.iloc[rows][list(task.sensitive_attributes)].reset_index(drop=True)
        return audit_attributes(data.targets[rows], scores, attrs, task.target,
                                metrics=metrics_for(task), threshold=options.threshold,
                                n_boot=options.n_boot, seed=options.seed,
                                clusters=data.patient_ids[rows])

    def calibration_section(self, task: Task, calibrator: Any, data: TaskData, rows: np.ndarray,
                            raw: np.ndarray, calibrated: np.ndarray,
                            options: EvalOptions) -> dict[str, Any]:
        targets, patients = data.targets[rows], data.patient_ids[rows]
        keys = [k for k in ("ece", "brier") if k in M.default_metrics(task.target)]
        before, after = (M.evaluate(targets, scores, task.target, metrics=keys,
                                    threshold=options.threshold, n_boot=options.n_boot,
                                    seed=options.seed, clusters=patients)
                         for scores in (raw, calibrated))
        info = calibrator.to_dict()
        section = {"method": info.get("type", "none"), "note": info.get("note") or "",
                   "fitted_on": "val", "test_before": before, "test_after": after}
        if self.reliability:
            section["reliability"] = {
                "test_before": reliability_curve(targets, raw, task.target),
                "test_after": reliability_curve(targets, calibrated, task.target)}
        return section


class BinaryScorer(ProbabilityScorer):
    """P(positive class) in `prob`; the threshold is chosen on validation by the user's rule."""

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        return {"positives": int(np.sum(targets == 1))}

    def score_columns(self, calibrated: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {"prob": calibrated, "prob_raw": raw}

    def scores_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["prob"].to_numpy(float)

    def threshold(self, options: EvalOptions, val_y: np.ndarray,
                  val_scores: np.ndarray) -> tuple[float, str]:
        return choose_threshold(options.threshold, val_y, val_scores)

    def result(self, task: Task, name: str, score: Any, threshold: float,
               calibration: str | None) -> dict[str, Any]:
        p = float(score)
        return {"input": name, "probabilities": {task.classes[0]: 1 - p, task.classes[1]: p},
                "prediction": task.classes[1] if p >= threshold else task.classes[0],
                "threshold": threshold, "calibration": calibration}

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        """Confident hits, a confident error and a miss."""
        pos, neg = np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)
        picks = [pos[np.argmax(scores[pos])] if len(pos) else None,
                 neg[np.argmax(scores[neg])] if len(neg) else None,
                 pos[np.argmin(scores[pos])] if len(pos) else None,
                 neg[np.argmin(scores[neg])] if len(neg) else None]
        return list(dict.fromkeys(int(p) for p in picks if p is not None))[:n]

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        positive = class_name(task, 1)
        return 0, f"P({positive}) = {float(score):.2f}", positive

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Binary cross-entropy of each row."""
        p = np.clip(np.asarray(scores, float).reshape(-1), 1e-7, 1 - 1e-7)
        y = np.asarray(targets, float).reshape(-1)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))


class ClassScorer(ProbabilityScorer):
    """Multiclass and ordinal: a probability per class, temperature-calibrated."""

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        return {"class_counts": np.bincount(targets.astype(int),
                                            minlength=len(task.classes)).tolist()}

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Cross-entropy of each row: -log P(its class)."""
        probs = np.asarray(scores, float)
        chosen = probs[np.arange(len(probs)), np.asarray(targets).astype(int)]
        return -np.log(np.clip(chosen, 1e-7, 1.0))


class MultilabelScorer(ProbabilityScorer):
    """One independent probability per label; no calibrator, no reliability curve. A missing
    label (NaN target: not measured for that row) is left out of every metric; each label's own
    AUROC and AUPRC with CIs go to metrics.json's `per_label`, their mean is the headline."""

    reliability = False
    per_label_metrics = ("auroc", "auprc")
    summary_labels = 12  # the CLI's line names each label's AUROC up to this many labels

    def finish(self, ctx: FinishContext) -> Finished:
        finished = super().finish(ctx)
        frame = ctx.run.predictions()
        finished.metrics["per_label"] = {
            name: self.per_label(ctx.task, ctx.data, ctx.split.part(name),
                                 self.scores_from_frame(frame[frame["split"] == name]),
                                 ctx.options)
            for name in ("test", "val")}
        return finished

    def per_label(self, task: Task, data: TaskData, rows: np.ndarray, scores: np.ndarray,
                  options: EvalOptions) -> dict[str, Any]:
        """Each label scored as a binary task on the rows where it is known."""
        targets = np.asarray(data.targets[rows], dtype=float)
        out: dict[str, Any] = {}
        for j in range(targets.shape[1]):
            known = ~np.isnan(targets[:, j])
            if not known.any():
                continue
            out[class_name(task, j)] = M.evaluate(
                targets[known, j], scores[known, j], "binary", metrics=self.per_label_metrics,
                threshold=0.5, n_boot=options.n_boot, seed=options.seed,
                clusters=data.patient_ids[rows][known])
        return out

    def summary(self, metrics: Mapping[str, Any]) -> str:
        line = primary_summary(metrics)
        labels = (metrics.get("per_label") or {}).get("test") or {}
        primary = metrics["primary_metric"]
        if not labels or primary not in self.per_label_metrics:
            return line
        line += f" (mean over {len(labels)} labels)"
        if len(labels) <= self.summary_labels:
            line += "; per label: " + ", ".join(f"{name} {fmt_entry(entry.get(primary))}"
                                                for name, entry in labels.items())
        return line

    def result(self, task: Task, name: str, score: Any, threshold: float,
               calibration: str | None) -> dict[str, Any]:
        """Every label's probability; the prediction lists the labels at or above 0.5."""
        probs = {c: float(v) for c, v in zip(task.classes, score, strict=True)}
        found = [c for c, p in probs.items() if p >= 0.5]
        return {"input": name, "probabilities": probs, "positive_labels": found,
                "prediction": ", ".join(found) or "none", "threshold": 0.5,
                "calibration": calibration}

    def true_label(self, task: Task, target: Any) -> str:
        found = [class_name(task, j) for j in np.flatnonzero(np.asarray(target, float) == 1)]
        return ", ".join(found) or "no finding"

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Mean binary cross-entropy over the known labels of each row."""
        p = np.clip(np.asarray(scores, float), 1e-7, 1 - 1e-7)
        y = np.asarray(targets, float)
        with np.errstate(invalid="ignore"):
            losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        known = ~np.isnan(y)
        return np.where(known, losses, 0.0).sum(axis=1) / np.maximum(known.sum(axis=1), 1)


class RegressionScorer(ProbabilityScorer):
    """Values in the outcome's units: `prediction`, errors with CIs, no calibration."""

    reliability = False

    def score_columns(self, calibrated: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {"prediction": calibrated}

    def scores_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["prediction"].to_numpy(float)

    def result(self, task: Task, name: str, score: Any, threshold: float,
               calibration: str | None) -> dict[str, Any]:
        return {"input": name, "prediction": float(score)}

    def calibration_section(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        """The two highest predictions."""
        return [int(i) for i in np.argsort(scores)[-2:]]

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        return 0, f"predicted {float(score):.3g}", "the predicted value"

    def true_label(self, task: Task, target: Any) -> str:
        return f"{float(target):.3g}"

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Squared error of each row."""
        return (np.asarray(scores, float).reshape(-1) - np.asarray(targets, float).reshape(-1)) ** 2

    def prediction_cells(self, result: Mapping[str, Any]) -> tuple[str, str, str]:
        return f"{result['prediction']:.3f}", "-", result.get("heatmap") or "-"
