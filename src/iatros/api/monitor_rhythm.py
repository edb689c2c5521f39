"""A finished atrial-fibrillation run (`af-ecg`, or a signals run with an "AF" class) as the
monitor's rhythm scorer (`monitoring.rhythm`): ``predict`` on in-memory segments through the
run's own predictor and calibration, the alert threshold chosen on the run's validation
predictions, and the ``rhythm`` section of the monitor config.

- Probability: the run's calibrated probability of its "AF" class. A segment longer than the
  model's window (``length_s``, 30 s for af-ecg) is cut into consecutive windows (the last one
  aligned to the segment's end, as `data.signals.processing.windows` does) scored in one batch,
  and the highest window's probability counts: AF in the second half of a 60 s strip is not
  missed. A shorter segment is zero-padded by the model's own dataset, as in training.
- Threshold: a number from the config, else a rule applied to the run's validation rows of
  predictions.csv, AF against every other class (``evaluate.thresholds.choose_threshold``):
  ``youden`` by default (Youden's J: the balance of missed AF and false alarms), or ``sens90``
  (90% of validation AF found). A multiclass run stores no AF decision threshold of its own
  (it predicts by the largest probability), so there is none to reuse. The test split is never
  looked at.
- The run's predictor is loaded and run once on a flat segment, and the quality gate once on a
  synthetic strip, when the scorer is built, so a broken run fails at start-up and the first
  patient's segment pays no loading time."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError, IatrosError
from iatros.evaluate.thresholds import RULES, choose_threshold
from iatros.monitoring.rhythm import GOOD_QUALITY, RhythmScorer, rhythm_scorer
from iatros.pipeline.prediction import LoadedRun

AF_CLASS = "AF"
DEFAULT_RULE = "youden"
THRESHOLD_RULES = tuple(r for r in RULES if r != "fixed")
CONFIG_KEYS = frozenset({"run", "threshold", "min_quality"})


def _af_index(run: LoadedRun) -> int:
    """The column of the "AF" class in the run's probabilities; ConfigError if it has none."""
    classes = list(run.task.classes or ())
    if AF_CLASS not in classes:
        raise ConfigError(f"{run.folder.path}: a rhythm model is a signal run with an "
                          f"{AF_CLASS!r} class (e.g. `iatros train af-ecg`); this one is "
                          f"{run.config['task']} with classes {classes}")
    return classes.index(AF_CLASS)


def validation_threshold(run: LoadedRun, af: int, rule: str = DEFAULT_RULE) -> tuple[float, str]:
    """(threshold, how it was chosen) by `rule` on the run's validation predictions, AF vs
    the rest; ConfigError when they cannot give one (no AF or no other rhythm there)."""
    frame = run.folder.predictions()
    val = frame[frame["split"] == "val"]
    column = f"prob_{af}"
    if column not in val.columns:
        raise ConfigError(f"{run.folder.path}: predictions.csv has no {column} column for the "
                          f"{AF_CLASS} class; give rhythm.threshold in the monitor config")
    y = (val["target"].to_numpy() == af).astype(int)
    if val.empty or y.min(initial=1) == y.max(initial=0):
        raise ConfigError(f"{run.folder.path}: the validation predictions hold {int(y.sum())} "
                          f"{AF_CLASS} of {len(y)} recordings, too few to choose the alert "
                          f"threshold by {rule}; give rhythm.threshold in the monitor config")
    value, how = choose_threshold(rule, y, val[column].to_numpy(float))
    return float(value), f"{how} ({int(y.sum())} AF of {len(y)} validation recordings)"


def window_batch(samples: np.ndarray, n: int) -> np.ndarray:
    """Consecutive windows of ``n`` samples (the last aligned to the end) as the object array
    the signal models read; the whole segment when it is no longer than one window."""
    x = np.asarray(samples, dtype=np.float32)
    starts = [0] if len(x) <= n else [*range(0, len(x) - n, n), len(x) - n]
    batch = np.empty(len(starts), dtype=object)
    batch[:] = [x[s:s + n] for s in starts]
    return batch


def rhythm_scorer_from_run(run_path: str | Path, threshold: float | str | None = None, *,
                           min_quality: float = GOOD_QUALITY, device: str | None = None,
                           trust: bool = False) -> RhythmScorer:
    """The rhythm scorer of a finished AF run (see the module doc): ``threshold`` a number in
    [0, 1], a rule name (youden, sens90) or None (youden on validation)."""
    run = LoadedRun(run_path, device=device, trust=trust)
    af = _af_index(run)
    params = run.config.get("model_params") or {}
    fs = params.get("fs")
    if not isinstance(fs, (int, float)) or not fs > 0:
        raise ConfigError(f"{run.folder.path}: the run records no sampling rate (model_params.fs)"
                          f"; a rhythm model must know the rate it reads")
    window = max(1, int(round(float(params.get("length_s", 30.0)) * float(fs))))
    if threshold is None or isinstance(threshold, str):
        value, how = validation_threshold(run, af, threshold or DEFAULT_RULE)
    else:
        value, how = float(threshold), "given in the monitor config"
    predictor, folder, scorer = run.predictor, run.folder, run.scorer

    def predict(samples: np.ndarray, rate: float) -> float:
        """P(AF) of one segment at the run's rate: the highest over its windows."""
        scores = np.asarray(scorer.scores(folder, predictor, window_batch(samples, window)),
                            dtype=float)
        return float(scores.reshape(-1, scores.shape[-1])[:, af].max())

    predict(np.zeros(window, np.float32), float(fs))   # load and check now, not on a patient
    name = f"{run.config['task']} {run.config.get('model', '')}".strip()
    built = rhythm_scorer(predict, fs=float(fs), threshold=value, model_name=name,
                          min_quality=min_quality, threshold_rule=how)
    built.warm_up()
    return built


def _fraction(entry: Mapping[str, Any], key: str, source: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{source}: rhythm.{key} must be a number from 0 to 1, not {value!r}")
    return float(value)


def rhythm_config(entry: Any, source: str) -> RhythmScorer:
    """The rhythm scorer of a monitor config's ``"rhythm": {"run": PATH, "threshold": number
    or rule, "min_quality": number}`` section; errors name ``source`` and the field."""
    if not isinstance(entry, Mapping) or set(entry) - CONFIG_KEYS:
        raise ConfigError(f"{source}: rhythm must be an object with {', '.join(sorted(CONFIG_KEYS))}"
                          f" (run required)")
    run = entry.get("run")
    if not isinstance(run, str) or not run.strip():
        raise ConfigError(f"{source}: rhythm.run must be the path of a finished af-ecg run folder")
    threshold: float | str | None = entry.get("threshold")
    if isinstance(threshold, str):
        if threshold not in THRESHOLD_RULES:
            raise ConfigError(f"{source}: rhythm.threshold must be a number from 0 to 1 or one of "
                              f"{', '.join(THRESHOLD_RULES)}, not {threshold!r}")
    else:
        threshold = _fraction(entry, "threshold", source)
    min_quality = _fraction(entry, "min_quality", source)
    try:
        return rhythm_scorer_from_run(Path(run).expanduser(), threshold,
                                      min_quality=GOOD_QUALITY if min_quality is None
                                      else min_quality)
    except IatrosError as e:
        raise ConfigError(f"{source}: rhythm.run: {e}") from e
