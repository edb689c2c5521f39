"""Finishing a survival run: curves, time-to-event metrics with CIs, KM by risk group, calibration.

Kept apart from api.py so the binary/multiclass path stays readable; api calls `finish_survival`
and `score_survival` for tasks whose target kind is survival.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iatros.data.splits import Split
from iatros.errors import ConfigError
from iatros.evaluate import survival as S
from iatros.models.survival import as_time_event
from iatros.run_folder import PREDICTIONS, RunFolder, write_csv
from iatros.train.predictors import scoring_view

CURVES = "survival_curves.npz"
N_EXAMPLES = 5


def _times_events(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, event as bool): the models' own (time, event) split, with events as booleans."""
    time, event = as_time_event(targets)
    return time, event > 0


def horizons_for(train_targets: np.ndarray, *others: np.ndarray) -> list[float]:
    """25th/50th/75th percentiles of training event times, kept inside every set's follow-up."""
    t, e = _times_events(train_targets)
    if not e.any():
        raise ConfigError("the training set has no events: survival models cannot be fitted")
    limit = min(float(np.max(_times_events(o)[0])) for o in (train_targets, *others))
    raw = np.percentile(t[e], [25, 50, 75])
    return sorted({float(h) for h in raw if h < limit * 0.999})


def prediction(predictor: Any, inputs: Any) -> S.SurvivalPrediction:
    risk, times, survival = predictor.predict_survival(inputs)
    return S.SurvivalPrediction(np.asarray(risk, float), np.asarray(times, float),
                                np.clip(np.asarray(survival, float), 0.0, 1.0))


def score_survival(targets: np.ndarray, pred: S.SurvivalPrediction, train_targets: np.ndarray,
                   horizons: list[float], n_boot: int, seed: int, clusters: Any) -> dict[str, Any]:
    t, e = _times_events(targets)
    tt, te = _times_events(train_targets)
    return S.evaluate_survival(t, e, pred, train_time=tt, train_event=te, horizons=horizons,
                               n_boot=n_boot, seed=seed, clusters=clusters)


def _frame(name: str, rows: np.ndarray, data: Any, pred: S.SurvivalPrediction,
           horizons: list[float]) -> pd.DataFrame:
    t, e = _times_events(data.targets[rows])
    frame = pd.DataFrame({"split": name, "row": rows, "patient_id": data.patient_ids[rows],
                          "time": t, "event": e.astype(int), "risk": pred.risk,
                          "median_survival": pred.median_time()})
    for h in horizons:
        frame[f"survival@{h:g}"] = pred.at(h)
    for column in data.attributes.columns:
        frame[f"attr_{column}"] = data.attributes[column].to_numpy()[rows]
    return frame


def _risk_group_section(train_risk: np.ndarray, targets: np.ndarray,
                        pred: S.SurvivalPrediction) -> dict[str, Any]:
    t, e = _times_events(targets)
    cuts = S.risk_cut_points(train_risk, 3)
    groups = S.risk_groups(pred.risk, 3, cut_points=cuts)
    curves = {str(g): S.kaplan_meier(t[groups == g], e[groups == g]) for g in np.unique(groups)}
    at = np.linspace(0, float(np.max(t)), 6)
    return {"cut_points_from": "training set risk tertiles", "cut_points": [float(c) for c in cuts],
            "groups": curves, "at_risk": S.number_at_risk(t, groups, at),
            "logrank": S.logrank(t, e, groups) if len(curves) > 1 else None,
            "n": {str(g): int((groups == g).sum()) for g in np.unique(groups)}}


def _examples(data: Any, rows: np.ndarray, pred: S.SurvivalPrediction) -> dict[str, Any]:
    order = np.argsort(pred.risk)
    picks = np.unique(order[np.linspace(0, len(order) - 1, min(N_EXAMPLES, len(order))).astype(int)])
    t, e = _times_events(data.targets[rows])
    return {"times": [float(v) for v in pred.times],
            "patients": [{"patient_id": str(data.patient_ids[rows[i]]), "time": float(t[i]),
                          "event": bool(e[i]), "risk": float(pred.risk[i]),
                          "survival": [float(v) for v in pred.survival[i]]} for i in picks]}


def _audit(task: Any, data: Any, rows: np.ndarray, pred: S.SurvivalPrediction,
           train_targets: np.ndarray, options: Any) -> dict[str, Any]:
    t, e = _times_events(data.targets[rows])
    train_t, train_e = _times_events(train_targets)
    return {attribute: S.subgroup_survival_audit(
        t, e, pred, data.attributes[attribute].to_numpy()[rows], train_time=train_t,
        train_event=train_e, attribute=attribute, n_boot=options.n_boot, seed=options.seed,
        clusters=data.patient_ids[rows]) for attribute in task.sensitive_attributes}


def saved_training_targets(run: RunFolder) -> tuple[np.ndarray, list[float]]:
    """The training (time, event) pairs and horizons saved with a run (for IPCW on new data)."""
    with np.load(run.file(CURVES)) as saved:
        return saved["train_targets"], [float(h) for h in saved["horizons"]]


def score_rows(run: RunFolder, task: Any, predictor: Any, data: Any, rows: np.ndarray, name: str,
               options: Any) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Metrics, subgroup audit and predictions of a finished survival run on some rows."""
    train_targets, horizons = saved_training_targets(run)
    pred = prediction(predictor, data.inputs[rows])
    limit = float(np.max(_times_events(data.targets[rows])[0]))
    horizons = [h for h in horizons if h < limit * 0.999]
    metrics = score_survival(data.targets[rows], pred, train_targets, horizons, options.n_boot,
                             options.seed, data.patient_ids[rows])
    return (metrics, _audit(task, data, rows, pred, train_targets, options),
            _frame(name, rows, data, pred, horizons))


def finish_survival(run: RunFolder, task: Any, predictor: Any, data: Any, split: Split,
                    options: Any) -> dict[str, Any]:
    """Predict train/val/test curves, write predictions and curves, return metrics.json content."""
    preds = {name: prediction(scoring_view(predictor, split.part(name)), data.inputs[split.part(name)])
             for name in ("train", "val", "test")}
    for name, p in preds.items():
        if not np.isfinite(p.risk).all():
            raise ConfigError(f"the trained model gives non-finite risks on the {name} split; "
                              f"training may have diverged: lower the learning rate")
    train_y = data.targets[split.train]
    horizons = horizons_for(train_y, data.targets[split.val], data.targets[split.test])
    frames = [_frame(n, split.part(n), data, preds[n], horizons) for n in ("val", "test")]
    write_csv(run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
    np.savez_compressed(run.file(CURVES), times=preds["test"].times,
                        test=preds["test"].survival.astype(np.float32),
                        val=preds["val"].survival.astype(np.float32),
                        test_rows=split.test, val_rows=split.val,
                        train_targets=np.asarray(data.targets[split.train], dtype=np.float64),
                        horizons=np.asarray(horizons, dtype=np.float64))
    test_y = data.targets[split.test]
    tt, te = _times_events(test_y)
    splits = {name: score_survival(data.targets[split.part(name)], preds[name], train_y, horizons,
                                   options.n_boot, options.seed, data.patient_ids[split.part(name)])
              for name in ("test", "val")}
    subgroups = _audit(task, data, split.test, preds["test"], train_y, options)
    return {
        "task": task.name, "model": predictor.info.get("name"), "target_kind": task.target.value,
        "primary_metric": task.primary_metric, "threshold": None, "splits": splits,
        "calibration": {},
        "survival": {
            "horizons": horizons,
            "calibration": {f"{h:g}": S.survival_calibration(tt, te, preds["test"], h)
                            for h in horizons},
            "risk_groups": _risk_group_section(preds["train"].risk, test_y, preds["test"]),
            "examples": _examples(data, split.test, preds["test"]),
        },
        "subgroups": subgroups,
        "bootstrap": {"n_boot": options.n_boot, "seed": options.seed, "unit": "patient", "ci": 0.95},
    }



