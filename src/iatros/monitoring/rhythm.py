"""Atrial-fibrillation alerts from the ECG segments of readings: a monitor scorer around any
``predict(samples, fs) -> P(AF)`` (a finished `af-ecg` run through `api.monitor_rhythm`, a stub
in tests), behind a signal-quality gate, and the rate check that rejects a segment the model
cannot read.

- Rate: a model reads the rate it was trained at. A segment at another rate is rejected when the
  batch arrives (:meth:`RhythmScorer.check`, a reading check: "ecg.fs" with the reason, the rest
  of the batch stored), never resampled behind the clinician's back; if the check is not
  installed, the scorer still refuses to score it and says so.
- Quality gate: ``iatros.data.signals.processing.ecg_reading`` (neurokit2's template-match
  index, Orphanidou et al. 2015). A segment whose beats cannot be read, or whose index is under
  ``min_quality`` (default ``GOOD_QUALITY``, 0.66: their threshold for an acceptable ECG), is
  not scored: a noisy strip would raise false AF alerts (irregular "RR" from artefacts). The
  finding records the quality and ``gated`` and raises nothing.
- Otherwise the AF probability against ``threshold``: at or above it a ``medium`` alert of kind
  ``rhythm`` whose reason gives the probability, threshold, model, quality and the strip (length,
  lead, start time), so the clinician can read the strip behind it; below it the result is
  recorded with no alert.

Scoring runs inside the monitor's ingest lock, once per segment: about 20-40 ms for the gate on
a 30 s strip at 300 Hz, plus the model."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from iatros.data.signals.processing import GOOD_QUALITY, ecg_reading
from iatros.monitoring.engine import Context, Finding
from iatros.monitoring.readings import Reading, ReadingError, Segment

RHYTHM = "rhythm"
RATE_TOLERANCE_HZ = 1e-6
# the model's probability of atrial fibrillation for one segment (samples in mV, rate in Hz)
Predict = Callable[[np.ndarray, float], float]


def segment_quality(segment: Segment) -> dict[str, Any]:
    """The gate's view of a segment: template-match index, label (good / poor / unreadable),
    why it is unreadable, and the mean heart rate when beats could be read."""
    read = ecg_reading(np.asarray(segment.samples, dtype=np.float64), segment.fs)
    quality = read["quality"]
    rate = read["heart_rate_bpm"]
    return {"index": float(quality["index"]), "label": str(quality["label"]),
            "reason": str(quality.get("reason", "")),
            "heart_rate_bpm": None if rate is None else float(rate["mean"])}


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _strip(reading: Reading, segment: Segment) -> str:
    """The strip a reason points to: its length, lead and start time."""
    lead = f", lead {segment.lead}" if segment.lead else ""
    return f"ECG strip {segment.seconds:.0f} s{lead}, from {_utc(reading.time)} UTC"


class RhythmScorer:
    """A monitor scorer (see the module doc): AF alerts from ECG segments of ``fs`` Hz."""

    def __init__(self, predict: Predict, *, fs: float, threshold: float, model_name: str,
                 min_quality: float = GOOD_QUALITY, threshold_rule: str = "") -> None:
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"the rhythm model's rate must be a positive number of Hz, not {fs}")
        for name, value in (("threshold", threshold), ("min_quality", min_quality)):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"the rhythm {name} must be in [0, 1], not {value}")
        self.predict, self.fs, self.threshold = predict, float(fs), float(threshold)
        self.model_name, self.min_quality = model_name, float(min_quality)
        self.threshold_rule = threshold_rule
        self.name = f"{RHYTHM} ({model_name})"

    def warm_up(self) -> None:
        """Run the gate once on a synthetic strip, so neurokit2's import (about a second) is
        paid at start-up, not inside the ingest lock on the first patient's segment."""
        t = np.arange(int(10 * self.fs)) / self.fs
        segment_quality(Segment((np.sin(2 * np.pi * 1.2 * t) ** 31).astype(np.float32),
                                self.fs))

    def _wrong_rate(self, segment: Segment) -> str:
        if abs(segment.fs - self.fs) <= RATE_TOLERANCE_HZ:
            return ""
        return (f"ECG sampled at {segment.fs:g} Hz; the rhythm model {self.model_name} reads "
                f"{self.fs:g} Hz segments: send them at {self.fs:g} Hz (segments are not "
                f"resampled)")

    def check(self, reading: Reading) -> None:
        """A reading check: reject a segment at a rate the model was not trained at."""
        if reading.ecg is not None and (why := self._wrong_rate(reading.ecg)):
            raise ReadingError("ecg.fs", why)

    def __call__(self, context: Context) -> list[Finding]:
        """The rhythm finding of a reading's ECG segment; nothing for a reading without one."""
        reading = context.reading
        segment = reading.ecg
        if segment is None:
            return []
        base: dict[str, Any] = {"segment_time": reading.time, "seconds": segment.seconds,
                                "lead": segment.lead, "model": self.model_name,
                                "threshold": self.threshold,
                                "threshold_rule": self.threshold_rule,
                                "min_quality": self.min_quality}
        if why := self._wrong_rate(segment):
            return [Finding(RHYTHM, "none", f"ECG segment not scored: {why}",
                            result={**base, "probability": None, "gated": True,
                                    "refused": why})]
        quality = segment_quality(segment)
        base.update(quality=round(quality["index"], 3), quality_label=quality["label"],
                    heart_rate_bpm=quality["heart_rate_bpm"])
        strip = _strip(reading, segment)
        if quality["label"] == "unreadable" or quality["index"] < self.min_quality:
            why = quality["reason"] or f"{quality['index']:.2f} < {self.min_quality:.2f}"
            return [Finding(RHYTHM, "none",
                            f"rhythm not assessed: signal quality {quality['label']} ({why}), "
                            f"so no atrial fibrillation alert from this segment; {strip}",
                            result={**base, "probability": None, "gated": True})]
        p = float(self.predict(segment.samples, segment.fs))
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"the rhythm model {self.model_name} gave {p}, not a probability")
        result = {**base, "probability": round(p, 4), "gated": False}
        sign = ">=" if p >= self.threshold else "<"
        words = (f"probability {p:.2f} {sign} threshold {self.threshold:.2f} (model "
                 f"{self.model_name}), signal quality {quality['label']} "
                 f"({quality['index']:.2f}); {strip}")
        if p >= self.threshold:
            return [Finding(RHYTHM, "medium", f"atrial fibrillation likely: {words}",
                            result=result)]
        return [Finding(RHYTHM, "none", f"atrial fibrillation unlikely: {words}", result=result)]


def rhythm_scorer(predict: Predict, *, fs: float, threshold: float, model_name: str,
                  min_quality: float = GOOD_QUALITY, threshold_rule: str = "") -> RhythmScorer:
    """A scorer for `Monitor.scorers` (and its `check` for the reading checks) around
    ``predict``; see the module doc for the gate, the rate and the alert."""
    return RhythmScorer(predict, fs=fs, threshold=threshold, model_name=model_name,
                        min_quality=min_quality, threshold_rule=threshold_rule)
