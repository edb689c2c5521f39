"""Readings as devices send them (docs/monitoring.md): parsed and checked one by one, so that a
batch keeps its good readings and says, for each bad one, which field was wrong and why.

A reading is one time point of one patient: any subset of the NEWS2 observations, and/or one
ECG segment (``ecg``: {"fs": Hz, "samples": [mV, ...], "lead": optional name}; ``time`` is its
first sample's). Values are checked with the NEWS2 scorer's own limits and codes (`news2.news2`
on the reading alone), so a value the monitor stores is one it can score. A segment is checked
for shape only (finite millivolts, ``ECG_FS`` Hz, ``ECG_SECONDS`` long); whether a model can
read its rate is a check of that model (``checks`` of `parse_batch`)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from iatros.monitoring.news2 import ObservationError, Observations, check_observations

VITALS = ("respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness",
          "temperature")
FIELDS = frozenset({"patient_id", "seq", "time", "spo2_scale", "ecg", *VITALS})
PATIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_FUTURE_S = 300.0
MAX_SEQ = 2**62
# an ECG segment: from a wearable's 50 Hz to a diagnostic recorder's 1 kHz, 5-60 s (the length
# of a handheld strip; shorter holds too few beats to read a rhythm), so at most 60,000 samples
ECG_FIELDS = frozenset({"fs", "samples", "lead"})
ECG_FS = (50.0, 1000.0)
ECG_SECONDS = (5.0, 60.0)
ECG_MAX_SAMPLES = int(ECG_SECONDS[1] * ECG_FS[1])
# millivolts: an ECG rarely passes 5 mV; a value above this is another unit (microvolts, ADC
# counts), which a model trained on millivolts would misread without a word
ECG_MAX_ABS_MV = 50.0
LEAD = re.compile(r"[A-Za-z0-9 ._+-]{1,16}")


class ReadingError(ValueError):
    """One reading refused: ``field`` names what was wrong, the message why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True, slots=True, eq=False)
class Segment:
    """A checked ECG segment: float32 samples in millivolts at ``fs`` Hz, and its lead if named."""

    samples: np.ndarray = field(repr=False)
    fs: float
    lead: str | None = None

    @property
    def seconds(self) -> float:
        """How long the segment lasts."""
        return len(self.samples) / self.fs


@dataclass(frozen=True, slots=True)
class Reading:
    """A checked reading: ``time`` in seconds since 1970 UTC, ``values`` the vitals it holds
    (as the NEWS2 chart reads them; empty for an ECG alone), ``spo2_scale`` None when the
    reading does not say, ``ecg`` its ECG segment if it holds one."""

    patient_id: str
    seq: int
    time: float
    values: dict[str, Any]
    spo2_scale: int | None = None
    ecg: Segment | None = None


# a check a model puts on readings before they are stored (e.g. the ECG rate it reads): it
# raises ReadingError to reject one reading, which is then answered like any other bad field
Check = Callable[[Reading], None]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the reading at ``index`` of a batch was not stored."""

    index: int
    seq: int | None
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "seq": self.seq, "field": self.field, "reason": self.reason}


def _seq(raw: Mapping[str, Any]) -> int:
    seq = raw.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_SEQ:
        raise ReadingError("seq", f"seq must be a whole number from 0 that the device increases "
                                  f"with every reading, not {seq!r}")
    return seq


def _patient(raw: Mapping[str, Any]) -> str:
    patient = raw.get("patient_id")
    if not isinstance(patient, str) or not PATIENT_ID.fullmatch(patient):
        raise ReadingError("patient_id", "patient_id must be 1-64 letters, digits, '.', '-' or "
                                         "'_'")
    return patient


def parse_time(value: Any, now: float) -> float:
    """Seconds since 1970 UTC from ISO 8601 with a zone or a number; not in the future."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ReadingError("time", f"time {value[:40]!r} is not ISO 8601 (e.g. "
                                       f"2026-12-07T05:00:00Z)") from None
        if stamp.tzinfo is None:
            raise ReadingError("time", f"time {value[:40]!r} has no time zone (add Z or +01:00)")
        seconds = stamp.timestamp()
    else:
        raise ReadingError("time", "time must be ISO 8601 with a time zone or seconds since 1970")
    if not math.isfinite(seconds) or seconds < 0:
        raise ReadingError("time", f"time {value!r} is not a valid instant")
    if seconds > now + MAX_FUTURE_S:
        raise ReadingError("time", f"time is {seconds - now:.0f} s in the future (more than "
                                   f"{MAX_FUTURE_S:.0f} s): check the device clock")
    return seconds


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_ecg(raw: Any) -> Segment:
    """An ECG segment from its JSON object, or ReadingError naming ``ecg.fs``, ``ecg.samples``
    or ``ecg.lead`` (see the module doc for the limits)."""
    if not isinstance(raw, Mapping):
        raise ReadingError("ecg", 'ecg must be an object {"fs": Hz, "samples": [mV, ...], '
                                  '"lead": name}')
    unknown = sorted(str(k)[:40] for k in set(raw) - ECG_FIELDS)
    if unknown:
        raise ReadingError("ecg", f"unknown ecg field {unknown[0]!r}; an ecg segment has fs, "
                                  f"samples and lead")
    fs = raw.get("fs")
    if not _number(fs) or not math.isfinite(fs) or not ECG_FS[0] <= fs <= ECG_FS[1]:
        raise ReadingError("ecg.fs", f"ecg.fs must be the sampling rate in Hz, "
                                     f"{ECG_FS[0]:g}-{ECG_FS[1]:g}, not {str(fs)[:40]}")
    samples = raw.get("samples")
    if not isinstance(samples, list):
        raise ReadingError("ecg.samples", "ecg.samples must be a list of numbers (millivolts)")
    if len(samples) > ECG_MAX_SAMPLES:
        raise ReadingError("ecg.samples", f"ecg.samples holds {len(samples)} samples; a segment "
                                          f"holds at most {ECG_MAX_SAMPLES}")
    seconds = len(samples) / fs
    if not ECG_SECONDS[0] <= seconds <= ECG_SECONDS[1]:
        raise ReadingError("ecg.samples", f"the ECG segment lasts {seconds:.3g} s ({len(samples)} "
                                          f"samples at {fs:g} Hz); send {ECG_SECONDS[0]:g}-"
                                          f"{ECG_SECONDS[1]:g} s per reading")
    bad = next((i for i, v in enumerate(samples) if not _number(v)), None)
    if bad is not None:
        raise ReadingError("ecg.samples", f"ecg.samples[{bad}] is {str(samples[bad])[:20]!r}, "
                                          f"not a number")
    values = np.asarray(samples, dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ReadingError("ecg.samples", f"ecg.samples[{bad}] is {values[bad]}; send measured "
                                          f"values only")
    peak = float(np.abs(values).max())
    if peak > ECG_MAX_ABS_MV:
        raise ReadingError("ecg.samples", f"ecg.samples reach {peak:g}; samples are millivolts "
                                          f"(at most {ECG_MAX_ABS_MV:g} mV): convert microvolts "
                                          f"or ADC counts before sending")
    lead = raw.get("lead")
    if lead is not None and (not isinstance(lead, str) or not LEAD.fullmatch(lead)):
        raise ReadingError("ecg.lead", "ecg.lead must be a name of 1-16 letters, digits, spaces "
                                       "or . _ + - (e.g. I, II, V1)")
    return Segment(values.astype(np.float32), float(fs), lead)


def _values(raw: Mapping[str, Any], needed: bool = True) -> tuple[dict[str, Any], int | None]:
    """The vitals present, checked by the NEWS2 scorer (limits, types, ACVPU codes); a reading
    without an ECG segment (``needed``) must hold one."""
    present = {k: raw[k] for k in VITALS if raw.get(k) is not None}
    if not present and needed:
        raise ReadingError("readings", f"a reading needs at least one of {', '.join(VITALS)} "
                                       f"or an ecg segment")
    for name, value in present.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ReadingError(name, f"{name} is {value}; send a measured value or leave it out")
    scale = raw.get("spo2_scale")
    if scale is not None and (isinstance(scale, bool) or scale not in (1, 2)):
        raise ReadingError("spo2_scale", "spo2_scale must be 1, or 2 where a clinician "
                                         "prescribed a target of 88-92%")
    if not present:
        return {}, scale
    try:
        read = check_observations(Observations(**present, spo2_scale=scale or 1))
    except ObservationError as e:
        raise ReadingError(e.field, str(e)) from None
    values = {k: read.get(k, present[k]) for k in present if k != "on_oxygen"}
    if "on_oxygen" in present:
        values["on_oxygen"] = read.get("air_or_oxygen") == "oxygen"
    return values, scale


def parse_reading(raw: Any, now: float) -> Reading:
    """One reading from its JSON object, or ReadingError naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise ReadingError("readings", "each reading must be a JSON object")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ReadingError(str(unknown[0])[:60], f"unknown field {str(unknown[0])[:60]!r}; a "
                           f"reading has {', '.join(sorted(FIELDS))}")
    seq, patient = _seq(raw), _patient(raw)
    time = parse_time(raw.get("time"), now)
    ecg = parse_ecg(raw["ecg"]) if raw.get("ecg") is not None else None
    values, scale = _values(raw, needed=ecg is None)
    return Reading(patient, seq, time, values, scale, ecg)


def parse_batch(raws: Sequence[Any], now: float, checks: Sequence[Check] = ()
                ) -> tuple[list[tuple[int, Reading]], list[Rejection]]:
    """The good readings with their index in the batch, and a rejection for each bad one
    (malformed, or refused by one of ``checks``, e.g. an ECG rate a model cannot read)."""
    good: list[tuple[int, Reading]] = []
    bad: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            reading = parse_reading(raw, now)
            for check in checks:
                check(reading)
            good.append((index, reading))
        except ReadingError as e:
            seq = raw.get("seq") if isinstance(raw, Mapping) else None
            bad.append(Rejection(index, seq if isinstance(seq, int) and not isinstance(seq, bool)
                                 else None, e.field, e.reason))
    return good, bad
