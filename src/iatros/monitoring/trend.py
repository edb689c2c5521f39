"""NEWS2 over time, per patient: the score of each observation set, how far it moved from the
previous complete score and from the lowest complete score of a trailing window, and whether it
is rising.

Readings are sorted by (patient, time) whatever order they came in. Two readings of one patient
at the same time cannot both be true: the one that came last in the input is kept, the others
are dropped and listed in ``Trend.duplicates`` (so a resent or corrected observation set
replaces the first).

Only complete scores serve as a reference (the previous score, the window's lowest): a score
with missing parameters is a lower bound, and a lower bound taken as a baseline could make a
stable patient look as if rising. The current reading may be incomplete: its change is then a
lower bound too (the true score can only be higher), so a rise it shows is real.

``rising`` is True when the score is at least ``rise`` points (default 2) above the lowest
complete score in the ``window`` (default 24 hours) before it; the window is [t - window, t),
so a reading exactly ``window`` earlier counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.monitoring.news2 import PARAMETERS, ObservationError, Observations, news2

# the columns of a reading that news2 reads; others (device, sequence, ...) are carried over
OBSERVATION_COLUMNS = ("respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse",
                       "consciousness", "temperature", "spo2_scale", "temperature_unit")
DEFAULT_WINDOW = pd.Timedelta(hours=24)
DEFAULT_RISE = 2


@dataclass(frozen=True)
class Trend:
    """``scores``: one row per (patient, time), in time order within each patient; ``duplicates``:
    the input rows replaced by a later reading with the same patient and time (``input_row`` and
    the ``kept_row`` that replaced it); ``reordered``: the input was not in (patient, time)
    order."""

    scores: pd.DataFrame
    duplicates: pd.DataFrame
    reordered: bool
    window: pd.Timedelta
    rise: int

    def notes(self) -> list[str]:
        """What was done to the input, in words (empty when nothing was)."""
        out = []
        if self.reordered:
            out.append("readings were not in time order; they were sorted by patient and time")
        if len(self.duplicates):
            rows = ", ".join(str(r) for r in self.duplicates["input_row"])
            out.append(f"{len(self.duplicates)} reading(s) had the same patient and time as a later "
                       f"one and were replaced by it (input rows {rows})")
        return out


def _settings(window: str | pd.Timedelta, rise: int) -> tuple[pd.Timedelta, int]:
    try:
        span = pd.Timedelta(window)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"window: {window!r} is not a duration (e.g. '24h')") from e
    if pd.isna(span) or span <= pd.Timedelta(0):
        raise ConfigError(f"window: {window!r} must be a positive duration (e.g. '24h')")
    if isinstance(rise, bool) or not isinstance(rise, (int, np.integer)) or rise < 1:
        raise ConfigError(f"rise: {rise!r} must be a whole number of points, 1 or more")
    return span, int(rise)


def _frame(readings: pd.DataFrame | Iterable[Mapping[str, object]], patient: str,
           time: str) -> pd.DataFrame:
    frame = readings.copy() if isinstance(readings, pd.DataFrame) else pd.DataFrame(list(readings))
    for column in (patient, time):
        if len(frame) and column not in frame.columns:
            raise ObservationError(column, None, f"a '{column}' column in the readings "
                                                 f"(columns: {list(frame.columns)})")
    if len(frame) and not set(OBSERVATION_COLUMNS) & set(frame.columns):
        raise ObservationError("readings", list(frame.columns),
                               f"at least one of the observation columns {list(OBSERVATION_COLUMNS)}")
    frame = frame.reset_index(drop=True)
    frame["input_row"] = np.arange(len(frame))
    if not len(frame):
        return frame.assign(**{patient: pd.Series(dtype=object), time: pd.Series(dtype="datetime64[ns]")})
    for row in frame.index[frame[patient].isna()]:
        raise ObservationError(patient, None, "a patient id", record=f"row {row}")
    frame[time] = _times(frame[time], frame[patient])
    return frame


def _times(values: pd.Series, patients: pd.Series) -> pd.Series:
    """Datetimes as given, or ISO 8601 text; all with a UTC offset (then in UTC) or all without."""
    if pd.api.types.is_datetime64_any_dtype(values) and not values.isna().any():
        return values
    stamps = []
    for row, value in values.items():
        try:
            if not isinstance(value, (str, pd.Timestamp, np.datetime64)) and not hasattr(value, "tzinfo"):
                raise ValueError(value)
            stamp = pd.Timestamp(value)
            if pd.isna(stamp):
                raise ValueError(value)
        except ValueError as e:
            raise ObservationError(values.name, value, "a date and time (ISO 8601 text or a datetime)",
                                   record=f"row {row} (patient {patients[row]})") from e
        stamps.append(stamp)
    aware = {s.tzinfo is not None for s in stamps}
    if len(aware) > 1:
        first = stamps[0].tzinfo is not None
        row = next(i for i, s in enumerate(stamps) if (s.tzinfo is not None) != first)
        raise ObservationError(values.name, values[row], "times all with a UTC offset or all without "
                               f"(row 0 is {'with' if stamps[0].tzinfo else 'without'})",
                               record=f"row {row} (patient {patients[row]})")
    if aware == {True}:
        stamps = [s.tz_convert("UTC") for s in stamps]
    return pd.Series(pd.DatetimeIndex(stamps), index=values.index, name=values.name)


def _observations(row: Mapping[str, object], temperature_unit: str) -> Observations:
    values = {c: row[c] for c in OBSERVATION_COLUMNS if c in row}
    if pd.isna(values.get("temperature_unit")):
        values["temperature_unit"] = temperature_unit
    scale = values.get("spo2_scale", 1)
    values["spo2_scale"] = 1 if pd.isna(scale) else scale   # Scale 1 unless one was prescribed
    return Observations(**values)


def _scored(frame: pd.DataFrame, patient: str, time: str, temperature_unit: str) -> pd.DataFrame:
    rows = []
    for record in frame.to_dict("records"):
        try:
            result = news2(_observations(record, temperature_unit))
        except ObservationError as e:
            where = f"row {record['input_row']} (patient {record[patient]}, {time} {record[time]})"
            raise ObservationError(e.field, e.value, e.expected, record=where) from e
        rows.append({"score": result.score, "complete": result.complete,
                     "missing": ", ".join(result.missing), "max_score": result.max_score,
                     "red_score": result.red_score, "risk": result.risk,
                     "response": result.response,
                     **{f"points_{p}": result.subscores[p] for p in PARAMETERS}})
    scored = pd.DataFrame(rows, index=frame.index, columns=[
        "score", "complete", "missing", "max_score", "red_score", "risk", "response",
        *(f"points_{p}" for p in PARAMETERS)])
    for p in PARAMETERS:
        scored[f"points_{p}"] = scored[f"points_{p}"].astype("Int64")
    return scored


def _per_patient(times: pd.Series, score: pd.Series, complete: pd.Series,
                 window: pd.Timedelta) -> pd.DataFrame:
    """Previous complete score and time, and the window's lowest complete score, for one patient
    (rows in time order, one per time)."""
    reference = score.where(complete).astype(float)
    previous = reference.ffill().shift(1)
    previous_time = times.where(complete).ffill().shift(1)
    lowest = pd.Series(reference.to_numpy(), index=pd.DatetimeIndex(times)).rolling(
        window, closed="left", min_periods=1).min().to_numpy()
    return pd.DataFrame({"previous_complete_score": previous, "previous_complete_time": previous_time,
                         "window_min": lowest}, index=score.index)


def news2_trend(readings: pd.DataFrame | Iterable[Mapping[str, object]], *,
                window: str | pd.Timedelta = DEFAULT_WINDOW, rise: int = DEFAULT_RISE,
                patient: str = "patient_id", time: str = "time",
                temperature_unit: str = "C") -> Trend:
    """Score every reading (a row of observation columns, a patient id and a time) and follow
    each patient's NEWS2 over time.

    ``window``: the trailing window for the lowest score (a pandas duration, e.g. "24h", "12h");
    ``rise``: the points above that lowest score that make the score "rising";
    ``temperature_unit``: "C" or "F" where the readings have no ``temperature_unit`` column.
    An unscorable reading is an ``ObservationError`` naming its input row, patient and time."""
    span, rise = _settings(window, rise)
    frame = _frame(readings, patient, time)
    order = frame.sort_values([patient, time, "input_row"], kind="mergesort")
    reordered = not order.index.equals(frame.index)
    dropped = order.duplicated([patient, time], keep="last")
    kept = order[~dropped].reset_index(drop=True)
    duplicates = order[dropped][[patient, time, "input_row"]].merge(
        kept[[patient, time, "input_row"]].rename(columns={"input_row": "kept_row"}),
        on=[patient, time], how="left").reset_index(drop=True)

    scored = pd.concat([kept, _scored(kept, patient, time, temperature_unit)], axis=1)
    parts = [_per_patient(g[time], g["score"], g["complete"], span)
             for _, g in scored.groupby(patient, sort=False)]
    reference = (pd.concat(parts).reindex(scored.index) if parts else pd.DataFrame(
        index=scored.index, columns=["previous_complete_score", "previous_complete_time", "window_min"]))
    scored = pd.concat([scored, reference], axis=1)
    scored["change_from_previous"] = scored["score"] - scored["previous_complete_score"]
    scored["change_from_window_min"] = scored["score"] - scored["window_min"]
    scored["rising"] = (scored["change_from_window_min"] >= rise).fillna(False).astype(bool)
    first = [patient, time, "input_row", "score", "complete", "missing", "max_score", "red_score",
             "risk", "response", "previous_complete_score", "previous_complete_time",
             "change_from_previous", "window_min", "change_from_window_min", "rising"]
    rest = [c for c in scored.columns if c not in first]
    return Trend(scores=scored[first + rest], duplicates=duplicates, reordered=reordered,
                 window=span, rise=rise)
