"""A deterioration model as a monitor scorer: a finished health-record run (for example
`icu-mortality-vitals`) scored on each monitored patient's readings through the EHR event
format, at most once per ``every`` of record time per patient, with the alert threshold chosen on
the run's validation predictions.

The readings become events with the run's own codes (``CODES``: pulse -> HR, respiration rate ->
RespRate, SpO2 -> SaO2, systolic pressure -> SysABP, temperature -> Temp, consciousness -> GCS at
the median GCS of each ACVPU level, Kelly et al., Ann Emerg Med 2004: A 15, V 13, P 8, U 3; new
confusion "C" as 14). The window is the model's own (48 h for the PhysioNet tasks) from the
patient's first reading, or the last 48 h once the stay is longer; model inputs the monitor
cannot give (labs, static features) are missing, as the model saw them when absent."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.ehr.schema import events_frame, stays_frame
from iatros.data.ehr.tensors import build_inputs, vocabulary_of
from iatros.errors import ConfigError
from iatros.evaluate.metrics import threshold_at_sensitivity
from iatros.monitoring.engine import Context, Finding, Scorer
from iatros.pipeline.prediction import LoadedRun

CODES = {"pulse": "HR", "respiration_rate": "RespRate", "spo2": "SaO2", "systolic_bp": "SysABP",
         "temperature": "Temp", "consciousness": "GCS"}
ACVPU_GCS = {"A": 15.0, "C": 14.0, "V": 13.0, "P": 8.0, "U": 3.0}


@dataclass(frozen=True)
class ModelThreshold:
    """The alert threshold and how it was chosen."""

    value: float
    how: str


def validation_threshold(run: LoadedRun, sensitivity: float) -> ModelThreshold:
    """The highest threshold that still finds `sensitivity` of the validation positives."""
    path = run.folder.path / "predictions.csv"
    frame = run.folder.predictions()   # read as the run folder stores it (encrypted or not)
    val = frame[frame["split"] == "val"]
    column = "prob" if "prob" in val.columns else None
    if column is None or val.empty or val["target"].nunique() < 2:
        raise ConfigError(f"{path}: no validation probabilities with both classes to choose the "
                          f"alert threshold from; give the threshold in the monitor config")
    value = threshold_at_sensitivity(val["target"].to_numpy(), val[column].to_numpy(),
                                     sensitivity)
    return ModelThreshold(float(value), f"validation sensitivity {sensitivity:.2f} "
                                        f"(n={len(val)}, {int(val['target'].sum())} positive)")


class DeteriorationScorer:
    """Keeps each patient's recent readings as events and scores the run on them."""

    def __init__(self, run: str | Path, *, every_minutes: float = 60.0, sensitivity: float = 0.8,
                 threshold: float | None = None) -> None:
        self.run = LoadedRun(run)
        if self.run.task.target.value != "binary":
            raise ConfigError(f"{run}: a deterioration model must be a binary run, not "
                              f"{self.run.task.target.value}")
        features = list(self.run.config["data"]["features"])
        self.variables, self.codes, static = vocabulary_of(features)
        self.static_names = [s for s in static if not s.startswith("count:")]
        self.features = features
        prefix = {v.rsplit("//", 1)[-1]: v for v in self.variables}
        self.map = {name: prefix[code] for name, code in CODES.items() if code in prefix}
        if not self.map:
            raise ConfigError(f"{run}: none of the model's variables is a vital sign the monitor "
                              f"receives ({', '.join(CODES.values())}); train one on bedside "
                              f"vitals, e.g. `iatros train icu-mortality-vitals`")
        self.hours = 48.0
        self.every_s = every_minutes * 60.0
        self.threshold = (ModelThreshold(threshold, "given in the monitor config")
                          if threshold is not None else
                          validation_threshold(self.run, sensitivity))
        self.name = f"{self.run.config['task']} ({self.run.config['model']})"
        self._history: dict[str, deque[tuple[float, str, float]]] = defaultdict(deque)
        self._scored: dict[str, float] = {}
        self._lock = threading.Lock()

    def events(self, reading_values: dict[str, Any]) -> list[tuple[str, float]]:
        """A reading's values as (model code, number) pairs."""
        out = []
        for name, code in self.map.items():
            value = reading_values.get(name)
            if value is None:
                continue
            out.append((code, ACVPU_GCS[value] if name == "consciousness" else float(value)))
        return out

    def __call__(self, context: Context) -> list[Finding]:
        pid, when = context.patient.patient_id, context.reading.time
        with self._lock:
            history = self._history[pid]
            history.extend((when, code, value) for code, value in
                           self.events(context.reading.values))
            while history and history[0][0] < when - self.hours * 3600:
                history.popleft()
            last = self._scored.get(pid)
            if last is not None and when - last < self.every_s:
                return []
            self._scored[pid] = when
            rows = list(history)
        if not rows:
            return []
        risk = self.risk(pid, rows, when)
        result = {"probability": risk, "threshold": self.threshold.value, "model": self.name}
        if risk < self.threshold.value:
            return [Finding(f"model:{self.run.config['task']}", "none", "", result=result)]
        reason = (f"{self.name}: risk {risk:.2f} >= threshold {self.threshold.value:.2f} "
                  f"(chosen for {self.threshold.how}), from {len(rows)} values of the last "
                  f"{(when - rows[0][0]) / 3600:.1f} h")
        return [Finding(f"model:{self.run.config['task']}", "medium", reason, result=result)]

    def risk(self, patient_id: str, rows: list[tuple[float, str, float]], when: float) -> float:
        """The run's calibrated probability for one patient's window of events."""
        start = _utc(rows[0][0])
        events = events_frame({
            "subject_id": [patient_id] * len(rows), "stay_id": [patient_id] * len(rows),
            "time": [_utc(t) for t, _, _ in rows], "code": [c for _, c, _ in rows],
            "numeric_value": [v for _, _, v in rows], "text_value": [None] * len(rows),
            "unit": [None] * len(rows)})
        stays = stays_frame([{"subject_id": patient_id, "stay_id": patient_id,
                              "start_time": start, "end_time": _utc(when)}])
        static = np.full((1, len(self.static_names)), np.nan, np.float32)
        inputs = build_inputs(events, stays, variables=self.variables, codes=self.codes,
                              static=static, static_names=self.static_names, hours=self.hours)
        inputs = inputs.align(self.features)
        scores = np.asarray(self.run.scorer.scores(self.run.folder, self.run.predictor, inputs),
                            dtype=float)
        return float(scores.reshape(1, -1)[0, -1])


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def deterioration_scorer(run: str | Path, **options: Any) -> tuple[str, Scorer]:
    """(name, scorer) for `Monitor.scorers` from a finished binary health-record run."""
    scorer = DeteriorationScorer(run, **options)
    return scorer.name, scorer

