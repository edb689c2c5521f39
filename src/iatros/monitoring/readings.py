"""Readings as devices send them (docs/monitoring.md): parsed and checked one by one, so that a
batch keeps its good readings and says, for each bad one, which field was wrong and why.

A reading is one time point of one patient: any subset of the NEWS2 observations. Values are
checked with the NEWS2 scorer's own limits and codes (`news2.news2` on the reading alone), so a
value the monitor stores is one it can score."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iatros.monitoring.news2 import ObservationError, Observations, news2

VITALS = ("respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness",
          "temperature")
FIELDS = frozenset({"patient_id", "seq", "time", "spo2_scale", *VITALS})
PATIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_FUTURE_S = 300.0
MAX_SEQ = 2**62


class ReadingError(ValueError):
    """One reading refused: ``field`` names what was wrong, the message why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True, slots=True)
class Reading:
    """A checked reading: ``time`` in seconds since 1970 UTC, ``values`` the vitals it holds
    (as the NEWS2 chart reads them), ``spo2_scale`` None when the reading does not say."""

    patient_id: str
    seq: int
    time: float
    values: dict[str, Any]
    spo2_scale: int | None = None


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


def _values(raw: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The vitals present, checked by the NEWS2 scorer (limits, types, ACVPU codes)."""
    present = {k: raw[k] for k in VITALS if raw.get(k) is not None}
    if not present:
        raise ReadingError("readings", f"a reading needs at least one of {', '.join(VITALS)}")
    for name, value in present.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ReadingError(name, f"{name} is {value}; send a measured value or leave it out")
    scale = raw.get("spo2_scale")
    if scale is not None and (isinstance(scale, bool) or scale not in (1, 2)):
        raise ReadingError("spo2_scale", "spo2_scale must be 1, or 2 where a clinician "
                                         "prescribed a target of 88-92%")
    try:
        result = news2(Observations(**present, spo2_scale=scale or 1))
    except ObservationError as e:
        raise ReadingError(e.field, str(e)) from None
    values = {k: result.values.get(k, present[k]) for k in present if k != "on_oxygen"}
    if "on_oxygen" in present:
        values["on_oxygen"] = result.values.get("air_or_oxygen") == "oxygen"
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
    values, scale = _values(raw)
    return Reading(patient, seq, time, values, scale)


def parse_batch(raws: Sequence[Any], now: float) -> tuple[list[tuple[int, Reading]],
                                                          list[Rejection]]:
    """The good readings with their index in the batch, and a rejection for each bad one."""
    good: list[tuple[int, Reading]] = []
    bad: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            good.append((index, parse_reading(raw, now)))
        except ReadingError as e:
            seq = raw.get("seq") if isinstance(raw, Mapping) else None
            bad.append(Rejection(index, seq if isinstance(seq, int) and not isinstance(seq, bool)
                                 else None, e.field, e.reason))
    return good, bad
