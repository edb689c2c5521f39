"""PhysioNet/CinC Challenge 2012: `set-a/`, `set-b/`, `set-c/` record files and `Outcomes-*.txt`.

Each record holds the first 48 h of an ICU stay as `HH:MM,Parameter,Value` lines; the first lines
at 00:00 are descriptors (RecordID, Age, Gender, Height, ICUType, Weight; -1 means unknown). Times
are relative to ICU admission, so stays are anchored at a nominal 2000-01-01 00:00.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from iatros.data.ehr.convert import Part, PartResult, Source, no_finish
from iatros.data.ehr.schema import SkipLog, drop_implausible, events_frame, stays_frame

ANCHOR = datetime(2000, 1, 1)
VOCAB = "PHYSIONET2012"
DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
ICU_TYPES = {1: "Coronary care", 2: "Cardiac surgery recovery", 3: "Medical ICU", 4: "Surgical ICU"}
# variable -> (unit, plausibility class from schema.PLAUSIBLE)
VARIABLES: dict[str, tuple[str, str]] = {
    "Albumin": ("g/dL", "nonnegative"), "ALP": ("IU/L", "nonnegative"),
    "ALT": ("IU/L", "nonnegative"), "AST": ("IU/L", "nonnegative"),
    "Bilirubin": ("mg/dL", "nonnegative"), "BUN": ("mg/dL", "nonnegative"),
    "Cholesterol": ("mg/dL", "nonnegative"), "Creatinine": ("mg/dL", "nonnegative"),
    "DiasABP": ("mmHg", "dbp"), "FiO2": ("fraction", "fio2"), "GCS": ("score", "gcs"),
    "Glucose": ("mg/dL", "nonnegative"), "HCO3": ("mmol/L", "nonnegative"),
    "HCT": ("%", "nonnegative"), "HR": ("bpm", "heart_rate"), "K": ("mEq/L", "nonnegative"),
    "Lactate": ("mmol/L", "nonnegative"), "Mg": ("mmol/L", "nonnegative"),
    "MAP": ("mmHg", "map"), "MechVent": ("flag", "nonnegative"), "Na": ("mEq/L", "nonnegative"),
    "NIDiasABP": ("mmHg", "dbp"), "NIMAP": ("mmHg", "map"), "NISysABP": ("mmHg", "sbp"),
    "PaCO2": ("mmHg", "nonnegative"), "PaO2": ("mmHg", "nonnegative"), "pH": ("pH", "ph"),
    "Platelets": ("cells/nL", "nonnegative"), "RespRate": ("bpm", "resp_rate"),
    "SaO2": ("%", "spo2"), "SysABP": ("mmHg", "sbp"), "Temp": ("degC", "temperature_c"),
    "TroponinI": ("ug/L", "nonnegative"), "TroponinT": ("ug/L", "nonnegative"),
    "Urine": ("mL", "nonnegative"), "WBC": ("cells/nL", "nonnegative"),
    "Weight": ("kg", "weight_kg"),
}
OUTCOME_COLUMNS = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival", "In-hospital_death")
STAY_EXTRA = {"icu_type": pl.Utf8, "height_cm": pl.Float64, "weight_kg": pl.Float64,
              "saps1": pl.Float64, "sofa": pl.Float64, "survival_days": pl.Float64,
              "set": pl.Utf8}


def code(variable: str) -> str:
    return f"{VOCAB}//{variable}"


def _minutes(stamp: str) -> int:
    hours, minutes = stamp.split(":")
    if not (hours.isdigit() and minutes.isdigit()) or int(minutes) >= 60 or int(hours) > 10**6:
        raise ValueError(stamp)
    return int(hours) * 60 + int(minutes)


def _known(value: float) -> float | None:
    return None if value < 0 else value


def read_record(path: Path, skips: SkipLog) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """One record file: (descriptors, event columns). Bad lines are skipped and logged."""
    desc: dict[str, Any] = {}
    cols: dict[str, list[Any]] = {"time": [], "code": [], "numeric_value": [], "unit": []}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"unreadable: {e}") from e
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header != ["Time", "Parameter", "Value"]:
        raise ValueError(f"header is {header}, expected Time,Parameter,Value")
    for lineno, row in enumerate(rows, start=2):
        where = f"{path.parent.name}/{path.name}:{lineno}"
        if not row:
            continue
        if len(row) != 3:
            skips.add(where, f"malformed line: {len(row)} fields")
            continue
        stamp, name, raw = (x.strip() for x in row)
        try:
            minute, value = _minutes(stamp), float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
        except ValueError:
            # a non-finite descriptor (`Gender,nan`) is skipped here and so left unknown
            skips.add(where, f"malformed line: time {stamp!r} or value {raw!r}")
            continue
        if minute == 0 and name in DESCRIPTORS and name not in desc:
            desc[name] = value
            continue
        if name not in VARIABLES:
            skips.add(where, f"unknown variable: {name}")
            continue
        cols["time"].append(ANCHOR + timedelta(minutes=minute))
        cols["code"].append(code(name))
        cols["numeric_value"].append(value)
        cols["unit"].append(VARIABLES[name][0])
    return desc, cols


def read_outcomes(path: Path, skips: SkipLog) -> dict[str, dict[str, float]]:
    """`Outcomes-X.txt` rows by RecordID; malformed rows are skipped and logged."""
    out: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != OUTCOME_COLUMNS:
            raise ValueError(f"{path}: header is {header}, expected {','.join(OUTCOME_COLUMNS)}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                values = [float(x) for x in row]
                if (len(values) != len(OUTCOME_COLUMNS) or values[5] not in (0.0, 1.0)
                        or not all(math.isfinite(v) and abs(v) < 1e6 for v in values)
                        or values[0] != int(values[0])):
                    raise ValueError
            except ValueError:
                skips.add(f"{path.name}:{lineno}", f"malformed outcome row: {','.join(row)}")
                continue
            rid = str(int(values[0]))
            if rid in out:
                skips.add(f"{path.name}:{lineno}", f"duplicate outcome row for record {rid}")
                continue
            out[rid] = dict(zip(OUTCOME_COLUMNS, values, strict=True))
    return out


def _stay(rid: str, desc: dict[str, Any], outcome: dict[str, float] | None,
          set_name: str) -> dict[str, Any]:
    gender = desc.get("Gender", -1)
    row: dict[str, Any] = {
        "subject_id": rid, "stay_id": rid, "site_id": None, "start_time": ANCHOR,
        "age": _known(desc.get("Age", -1)), "sex": {0: "F", 1: "M"}.get(int(gender)),
        "ethnicity": None, "icu_type": ICU_TYPES.get(int(desc.get("ICUType", -1))),
        "height_cm": _known(desc.get("Height", -1)), "weight_kg": _known(desc.get("Weight", -1)),
        "set": set_name,
    }
    if outcome is not None:
        los, survival = outcome["Length_of_stay"], outcome["Survival"]
        row.update(died=int(outcome["In-hospital_death"]), los_days=_known(los),
                   end_time=ANCHOR + timedelta(days=los) if los >= 0 else None,
                   death_time=ANCHOR + timedelta(days=survival) if survival >= 0 else None,
                   survival_days=_known(survival), saps1=_known(outcome["SAPS-I"]),
                   sofa=_known(outcome["SOFA"]))
    return row


def records(paths: Iterable[Path], skips: SkipLog
            ) -> Iterator[tuple[str, Path, dict[str, Any], dict[str, list[Any]]]]:
    """(RecordID, path, descriptors, events) of each readable record file, in order; an
    unreadable file or a second file with the same RecordID is skipped and logged."""
    seen: dict[str, str] = {}
    for path in paths:
        try:
            desc, cols = read_record(path, skips)
        except ValueError as e:
            skips.add(f"{path.parent.name}/{path.name}", f"unreadable record: {e}")
            continue
        rid = str(int(desc["RecordID"])) if "RecordID" in desc else path.stem
        if rid in seen:
            skips.add(f"{path.parent.name}/{path.name}",
                      f"duplicate record: {rid} is also in {seen[rid]}")
            continue
        seen[rid] = path.name
        yield rid, path, desc, cols


def convert_set(folder: Path, outcomes_path: Path | None) -> PartResult:
    """All records of one set, joined with its outcomes file when it exists."""
    skips, notes = SkipLog(), []
    outcomes = read_outcomes(outcomes_path, skips) if outcomes_path else {}
    if outcomes_path is None:
        notes.append(f"{folder.name}: no Outcomes file beside it; its stays have no outcomes")
    columns: dict[str, list[Any]] = {k: [] for k in ("subject_id", "stay_id", "time", "code",
                                                     "numeric_value", "unit")}
    stays = []
    seen: set[str] = set()
    for rid, path, desc, cols in records(sorted(folder.glob("*.txt")), skips):
        seen.add(rid)
        outcome = outcomes.get(rid)
        if outcomes_path is not None and outcome is None:
            skips.add(f"{folder.name}/{path.name}", f"no outcome row: record {rid}")
        stays.append(_stay(rid, desc, outcome, folder.name))
        n = len(cols["time"])
        columns["subject_id"] += [rid] * n
        columns["stay_id"] += [rid] * n
        for k in ("time", "code", "numeric_value", "unit"):
            columns[k] += cols[k]
    for rid in sorted(set(outcomes) - set(seen)):
        skips.add(f"{outcomes_path.name if outcomes_path else ''}",
                  f"outcome without record: {rid}")
    events = events_frame({**columns, "text_value": [None] * len(columns["time"])})
    events = drop_implausible(events, {code(v): c for v, (_, c) in VARIABLES.items()}, skips,
                              folder.name)
    return PartResult(events, stays_frame(stays, STAY_EXTRA), skips, notes)


def parts(root: Path) -> list[Part]:
    """One part per `set-X/` folder under `root` (or `root` itself when it is a set folder)."""
    folders = [root] if root.name.startswith("set-") else sorted(root.glob("set-*"))
    result = []
    for folder in (f for f in folders if f.is_dir()):
        letter = folder.name.split("-", 1)[1]
        outcomes = folder.parent / f"Outcomes-{letter}.txt"
        outcomes_path = outcomes if outcomes.is_file() else None
        inputs = tuple(sorted(folder.glob("*.txt"))) + ((outcomes,) if outcomes_path else ())
        result.append(Part(folder.name, inputs,
                           lambda f=folder, o=outcomes_path: convert_set(f, o)))
    return result


SOURCE = Source("physionet2012", "set-a/ set-b/ set-c/ folders of record .txt files and "
                "Outcomes-a.txt ...", parts, no_finish)
