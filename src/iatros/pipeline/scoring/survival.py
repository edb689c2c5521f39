"""The survival scorer: curves, time-to-event metrics with CIs, KM by risk group, calibration at
horizons, subgroup audits of C and IBS, and a curve per patient for new inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.evaluate import survival as S
from iatros.models.survival import as_time_event
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.runs import load_saved_rows
from iatros.pipeline.scoring import base
from iatros.pipeline.scoring.base import FinishContext, Finished, Scored
from iatros.report.survival_figures import plot_individual_curves
from iatros.run_folder import CURVES, PREDICTIONS, RunFolder, write_csv, write_npz
from iatros.tasks import Task, TaskData
from iatros.train.predictors import scoring_view

N_EXAMPLES = 5


def times_events(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, event as bool): the models' own (time, event) split, with events as booleans."""
    time, event = as_time_event(targets)
    return time, event > 0


def horizons_for(train_targets: np.ndarray, *others: np.ndarray) -> list[float]:
    """25th/50th/75th percentiles of training event times, kept inside every set's follow-up."""
    t, e = times_events(train_targets)
    if not e.any():
        raise ConfigError("the training set has no events: survival models cannot be fitted")
    limit = min(float(np.max(times_events(o)[0])) for o in (train_targets, *others))
    raw = np.percentile(t[e], [25, 50, 75])
    return sorted({float(h) for h in raw if h < limit * 0.999})


def prediction(predictor: Any, inputs: Any) -> S.SurvivalPrediction:
    risk, times, survival = predictor.predict_survival(inputs)
    return S.SurvivalPrediction(np.asarray(risk, float), np.asarray(times, float),
                                np.clip(np.asarray(survival, float), 0.0, 1.0))


def saved_training_targets(run: RunFolder) -> tuple[np.ndarray, list[float]]:
    """The training (time, event) pairs and horizons saved with a run (for IPCW on new data)."""
    saved = run.curves()
    return saved["train_targets"], [float(h) for h in saved["horizons"]]


class SurvivalScorer:
    """Target kind `survival`: (time, event) pairs, censoring handled throughout."""

    supports_cross_fit = True
    cross_validates = False  # pooled curves from several fold models need their own Breslow fits
    hands_test_scores = False  # a survival prediction is a curve, not one score

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        return {}

    def finish(self, ctx: FinishContext) -> Finished:
        task, data, split, options = ctx.task, ctx.data, ctx.split, ctx.options
        preds = {}
        for name in ("train", "val", "test"):
            rows = split.part(name)
            preds[name] = prediction(scoring_view(ctx.predictor, rows), data.inputs[rows])
            base.require_finite(preds[name].risk, name, rows, data)
        train_y = data.targets[split.train]
        horizons = horizons_for(train_y, data.targets[split.val], data.targets[split.test])
        frames = [self.frame(n, split.part(n), data, preds[n], horizons) for n in ("val", "test")]
        write_csv(ctx.run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
        write_npz(ctx.run.file(CURVES), times=preds["test"].times,
                  test=preds["test"].survival.astype(np.float32),
                  val=preds["val"].survival.astype(np.float32),
                  test_rows=split.test, val_rows=split.val,
                  train_targets=np.asarray(train_y, dtype=np.float64),
                  horizons=np.asarray(horizons, dtype=np.float64))
        test_y = data.targets[split.test]
        tt, te = times_events(test_y)
        splits = {name: self.score(data.targets[split.part(name)], preds[name], train_y, horizons,
                                   options, data.patient_ids[split.part(name)])
                  for name in ("test", "val")}
        metrics = {
            **base.metrics_header(task, ctx.predictor.info.get("name")),
            "threshold": None, "splits": splits, "calibration": {},
            "survival": {
                "horizons": horizons,
                "calibration": {f"{h:g}": S.survival_calibration(tt, te, preds["test"], h)
                                for h in horizons},
                "risk_groups": self.risk_groups(preds["train"].risk, test_y, preds["test"]),
                "examples": self.examples(data, split.test, preds["test"]),
            },
            "subgroups": self.audits(task, data, split.test, preds["test"], train_y, options),
            "bootstrap": base.bootstrap_block(task, options),
        }
        return Finished(metrics, None)

    def score_rows(self, run: RunFolder, task: Task, predictor: Any, data: TaskData,
                   rows: np.ndarray, split_name: str, options: EvalOptions) -> Scored:
        train_targets, horizons = saved_training_targets(run)
        pred = prediction(predictor, data.inputs[rows])
        limit = float(np.max(times_events(data.targets[rows])[0]))
        horizons = [h for h in horizons if h < limit * 0.999]
        metrics = self.score(data.targets[rows], pred, train_targets, horizons, options,
                             data.patient_ids[rows])
        return Scored(metrics, self.audits(task, data, rows, pred, train_targets, options),
                      self.frame(split_name, rows, data, pred, horizons))

    def audit(self, run: RunFolder, task: Task, by: str, split: str,
              options: EvalOptions, trust: bool = False) -> dict[str, Any]:
        """Survival audits need the curves, so the split is predicted again from the model."""
        data, rows, predictor = load_saved_rows(run, task, split, trust=trust)
        if by not in data.attributes.columns:
            raise ConfigError(f"run {run.path} has no attribute {by!r}; available: "
                              f"{', '.join(map(str, data.attributes.columns)) or 'none'}")
        train_targets, _ = saved_training_targets(run)
        pred = prediction(predictor, data.inputs[rows])
        return self.audit_one(data, rows, pred, train_targets, by, options)

    def scores(self, run: RunFolder, predictor: Any, batch: Any) -> np.ndarray:
        return prediction(predictor, batch).risk

    def predict(self, run: RunFolder, task: Task, predictor: Any, batch: Any,
                names: Sequence[str], out_dir: Path) -> tuple[list[dict[str, Any]], Any]:
        """A survival curve per row (JSON) and one figure with the first ten of them."""
        pred = prediction(predictor, batch)
        _, horizons = saved_training_targets(run)
        medians = pred.median_time()
        results = [{"input": name, "risk": float(pred.risk[k]),
                    "median_survival": None if np.isnan(medians[k]) else float(medians[k]),
                    "survival_at": {f"{h:g}": float(pred.at(h)[k]) for h in horizons},
                    "curve": {"times": [float(t) for t in pred.times],
                              "survival": [float(v) for v in pred.survival[k]]}}
                   for k, name in enumerate(names)]
        shown = {"times": [float(t) for t in pred.times],
                 "patients": [{"patient_id": r["input"], "time": float("nan"), "event": False,
                               "survival": r["curve"]["survival"]} for r in results[:10]]}
        figure = plot_individual_curves(shown, out_dir / "survival_curves.png")
        for r in results:
            r["figure"] = str(figure)
        return results, pred.risk

    def summary(self, metrics: Mapping[str, Any]) -> str:
        return base.primary_summary(metrics)

    def prediction_cells(self, result: Mapping[str, Any]) -> tuple[str, str, str]:
        at = ", ".join(f"S({t}) = {v:.3f}" for t, v in result["survival_at"].items())
        median = ("not reached" if result["median_survival"] is None
                  else f"{result['median_survival']:.4g}")
        return f"risk {result['risk']:.3f}, median {median}", at, result["figure"]

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        order = np.argsort(scores)
        return list(dict.fromkeys(int(order[i]) for i in np.linspace(0, len(order) - 1, n)
                                  .astype(int)))

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        return 0, f"risk score {float(score):.3g}", "the risk score"

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        raise ConfigError("membership inference needs a per-row loss; survival runs have none "
                          "here (classification and regression runs do)")

    def true_label(self, task: Task, target: Any) -> str:
        return f"{'event' if target[1] else 'censored'} at {float(target[0]):.3g}"

    # -- pieces -----------------------------------------------------------------------------
    def score(self, targets: np.ndarray, pred: S.SurvivalPrediction, train_targets: np.ndarray,
              horizons: list[float], options: EvalOptions, clusters: Any) -> dict[str, Any]:
        t, e = times_events(targets)
        tt, te = times_events(train_targets)
        return S.evaluate_survival(t, e, pred, train_time=tt, train_event=te, horizons=horizons,
                                   n_boot=options.n_boot, seed=options.seed, clusters=clusters)

    def frame(self, name: str, rows: np.ndarray, data: TaskData, pred: S.SurvivalPrediction,
              horizons: list[float]) -> pd.DataFrame:
        t, e = times_events(data.targets[rows])
        columns: dict[str, Any] = {"time": t, "event": e.astype(int), "risk": pred.risk,
                                   "median_survival": pred.median_time()}
        columns.update({f"survival@{h:g}": pred.at(h) for h in horizons})
        return base.prediction_frame(name, rows, data, columns)

    def risk_groups(self, train_risk: np.ndarray, targets: np.ndarray,
                    pred: S.SurvivalPrediction) -> dict[str, Any]:
        t, e = times_events(targets)
        cuts = S.risk_cut_points(train_risk, 3)
        groups = S.risk_groups(pred.risk, 3, cut_points=cuts)
        curves = {str(g): S.kaplan_meier(t[groups == g], e[groups == g]) for g in np.unique(groups)}
        at = np.linspace(0, float(np.max(t)), 6)
        return {"cut_points_from": "training set risk tertiles",
                "cut_points": [float(c) for c in cuts], "groups": curves,
                "at_risk": S.number_at_risk(t, groups, at),
                "logrank": S.logrank(t, e, groups) if len(curves) > 1 else None,
                "n": {str(g): int((groups == g).sum()) for g in np.unique(groups)}}

    def examples(self, data: TaskData, rows: np.ndarray, pred: S.SurvivalPrediction) -> dict[str, Any]:
        order = np.argsort(pred.risk)
        picks = np.unique(order[np.linspace(0, len(order) - 1,
                                            min(N_EXAMPLES, len(order))).astype(int)])
        t, e = times_events(data.targets[rows])
        return {"times": [float(v) for v in pred.times],
                "patients": [{"patient_id": str(data.patient_ids[rows[i]]), "time": float(t[i]),
                              "event": bool(e[i]), "risk": float(pred.risk[i]),
                              "survival": [float(v) for v in pred.survival[i]]} for i in picks]}

    def audits(self, task: Task, data: TaskData, rows: np.ndarray, pred: S.SurvivalPrediction,
               train_targets: np.ndarray, options: EvalOptions) -> dict[str, Any]:
        return {attribute: self.audit_one(data, rows, pred, train_targets, attribute, options)
                for attribute in task.sensitive_attributes}

    def audit_one(self, data: TaskData, rows: np.ndarray, pred: S.SurvivalPrediction,
                  train_targets: np.ndarray, attribute: str, options: EvalOptions) -> dict[str, Any]:
        t, e = times_events(data.targets[rows])
        train_t, train_e = times_events(train_targets)
        return S.subgroup_survival_audit(
            t, e, pred, data.attributes[attribute].to_numpy()[rows], train_time=train_t,
            train_event=train_e, attribute=attribute, n_boot=options.n_boot, seed=options.seed,
            clusters=data.patient_ids[rows])
