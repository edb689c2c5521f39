"""`iatros monitor replay`: real ICU stays (PhysioNet/CinC Challenge 2012), or real single-lead
ECGs (PhysioNet/CinC Challenge 2017, ``--ecg``), streamed into a running `iatros serve` faster
than real time, for demonstrations and load tests (docs/monitoring.md).

Two halves. :func:`physionet_readings` turns record files into readings in the contract's format,
one :class:`Stay` per record with its outcome beside it (a benchmark measures how long before
death the alerts come). :func:`replay` admits the stays' patients with the system key and sends
the readings of all stays in time order (interleaved as on a ward) with the device key, in
batches, paced ``speed`` times faster than the record's own time, resending a batch after a
connection error or a 5xx (the server is idempotent by (device, seq), so a resend is never stored
twice). Keys are arguments, never defaulted, and appear in no log line, error or summary.

The mapping from PhysioNet 2012 variables to readings:

    HR -> pulse            RespRate -> respiration_rate       Temp -> temperature (C)
    SaO2 -> spo2           SysABP (invasive), else NISysABP -> systolic_bp
    GCS -> consciousness (ACVPU, see GCS_TO_ACVPU)
    FiO2 > 0.21 or MechVent = 1 -> on_oxygen true, FiO2 <= 0.21 -> false (see below)

- SpO2: PhysioNet 2012 has no pulse-oximetry variable; SaO2 (arterial oxygen saturation from a
  blood gas) is the closest. It is sparse (about two per stay) and reads a little higher than
  SpO2 would, so NEWS2 on a replay sees fewer SpO2 points than a ward would.
- Consciousness: the ACVPU level whose median GCS is nearest (``GCS_TO_ACVPU``). "C" (new
  confusion) cannot be told from a GCS total and is never produced. A sedated or intubated
  patient's GCS is low by design, so ventilated stays read as P or U.
- Oxygen is a state of the stay, carried forward: every FiO2 or MechVent value sets it (on when
  any value at that minute says so) and every later reading carries it until the next one.
  Before the first FiO2 or MechVent value a stay's readings leave ``on_oxygen`` out (unknown,
  not "air"; NEWS2 then scores the rest). PhysioNet records MechVent only as 1, so the end of
  ventilation shows only through a later FiO2 of 0.21.
- Values measured at the same minute of one stay form one reading (a PhysioNet time has minute
  resolution); where a variable appears twice in a minute the later line counts. A minute with
  none of these vitals and no change of oxygen state gives no reading.
- Implausible values are dropped as the EHR converter drops them (``schema.drop_implausible``
  with each variable's class from ``physionet2012.VARIABLES``), logged in a ``SkipLog`` and
  counted per stay. A value of exactly 0 for heart rate, respiratory rate, systolic pressure or
  SaO2 is dropped too (``ZERO_IS_ARTEFACT``): in these records it is a disconnected arterial line
  or probe (681 SysABP and 59 RespRate zeros in set A, mostly between normal values), and NEWS2
  would score it 3 and raise a false alert. Other doubtful values are sent as recorded; the
  server's own limits decide.
- Patient id: the RecordID as a string. Time: the record's offset from ICU admission added to
  ``start`` (UTC), so every stay starts at ``start``.

ECG (:func:`ecg_readings`, PhysioNet 2017 ``training2017/``: AliveCor single-lead recordings of
9-61 s at 300 Hz, read by ``data.signals.read_signal``, labels from REFERENCE.csv beside them):
each record is one patient (id: the record name; the challenge publishes no patient ids) whose
recording is cut into consecutive segments of ``segment_s`` seconds (30 by default, the af-ecg
model's window), one reading each (``ecg``: fs, samples in mV, lead as the header names it;
``time`` its first sample, ``start`` plus its offset). A tail under ``MIN_SEGMENT_S`` joins the
segment before it, so every sample is sent. The label (N normal, A AF, O other rhythm, ~ too
noisy) stays beside the readings, never in them. A record that cannot be read, is not one lead,
or holds a flat or mostly missing channel is skipped and named in the ``SkipLog``.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl

from iatros.data.ehr.physionet2012 import (
    ANCHOR,
    VARIABLES,
    code,
    read_outcomes,
    records,
)
from iatros.data.ehr.schema import SkipLog, drop_implausible, events_frame
from iatros.data.signals.readers import read_signal
from iatros.errors import ConfigError, IatrosError, MissingDataError

log = logging.getLogger("iatros.monitoring.replay")

# PhysioNet 2012 variable -> reading field, for the vitals taken as they are
DIRECT = {"HR": "pulse", "RespRate": "respiration_rate", "SaO2": "spo2", "Temp": "temperature"}
SYSTOLIC = ("SysABP", "NISysABP")  # invasive first: the arterial line where there is one
OXYGEN = ("FiO2", "MechVent")
USED = (*DIRECT, *SYSTOLIC, "GCS", *OXYGEN)
# GCS total -> ACVPU: the lowest GCS of each level. Each level takes the GCS totals nearest its
# median GCS in Kelly CA, Upex A, Bateman DN. Comparison of consciousness level assessment in the
# poisoned patient using the alert/verbal/painful/unresponsive scale and the Glasgow Coma Scale.
# Ann Emerg Med 2004;44(2):108-13 (1,384 patients; medians A 15, V 13 (IQR 12-14), P 8 (7-9),
# U 3 (3)), cut halfway between neighbouring medians: A 15, V 11-14, P 6-10, U 3-5. McNarry AF,
# Goldhill DR. Simple bedside assessment of level of consciousness. Anaesthesia 2004;59:34-7
# found medians 15, 13, 8 and 6 (neurosurgical ward), consistent except at U's upper edge.
GCS_TO_ACVPU: tuple[tuple[int, str], ...] = ((15, "A"), (11, "V"), (6, "P"), (3, "U"))
AIR_FIO2 = 0.21
READINGS_PATH = "/api/v1/monitor/readings"
PATIENTS_PATH = "/api/v1/monitor/patients"
MAX_BATCH = 5000  # the contract's largest batch
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# answers worth another try: the server is overloaded or briefly broken
RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?")  # "25-45" is two numbers


class ReplayError(IatrosError):
    """The service refused the replay or could not be reached after every retry."""


@dataclass(frozen=True)
class Stay:
    """One ICU stay as readings in the contract's format, with its outcome beside them.

    ``died``: in-hospital death (Outcomes file; None where the set has none). ``length_hours``:
    ICU length of stay in hours (Outcomes' whole days times 24; None when unknown).
    ``death_hours``: hours from ICU admission to death (Outcomes' "Survival" days times 24, day
    resolution; None when not known to have died, and it may lie after discharge).
    ``record_hours``: hours from admission to the stay's last reading (at most 48). ``start``:
    the admission time the readings are dated from (the same for every stay). ``dropped``:
    implausible values left out. Readings carry no ``seq``: :func:`replay` numbers them."""

    patient_id: str
    died: bool | None
    length_hours: float | None
    death_hours: float | None
    record_hours: float
    start: datetime
    readings: tuple[dict[str, Any], ...] = field(repr=False)
    dropped: int = 0


def gcs_to_acvpu(gcs: float) -> str:
    """The ACVPU level of a GCS total (3-15), by the thresholds of ``GCS_TO_ACVPU``."""
    if not 3 <= gcs <= 15:
        raise ValueError(f"GCS {gcs} is outside 3-15")
    return next(level for lowest, level in GCS_TO_ACVPU if gcs >= lowest)


def _value(value: float) -> int | float:
    """A whole number as int (so JSON reads 88, not 88.0); others as they are."""
    return int(value) if float(value).is_integer() else value


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stay_readings(patient_id: str, minutes: Sequence[int], variables: Sequence[str],
                  values: Sequence[float], start: datetime) -> list[dict[str, Any]]:
    """One stay's values (in time order, file order within a minute) as readings; see the module
    docstring for the mapping, the oxygen state and the same-minute grouping."""
    readings: list[dict[str, Any]] = []
    oxygen: bool | None = None
    rows = zip(minutes, variables, values, strict=True)
    for minute, group in groupby(rows, key=lambda r: r[0]):
        at: dict[str, float] = {}
        evidence: list[bool] = []
        for _, name, value in group:
            at[name] = value
            if name == "FiO2":
                evidence.append(value > AIR_FIO2)
            elif name == "MechVent":
                evidence.append(value >= 1)
        vitals: dict[str, Any] = {field: _value(at[name]) for name, field in DIRECT.items()
                                  if name in at}
        systolic = next((at[name] for name in SYSTOLIC if name in at), None)
        if systolic is not None:
            vitals["systolic_bp"] = _value(systolic)
        if "GCS" in at:
            vitals["consciousness"] = gcs_to_acvpu(at["GCS"])
        changed = False
        if evidence:
            changed, oxygen = any(evidence) != oxygen, any(evidence)
        if not vitals and not changed:
            continue
        if oxygen is not None:
            vitals["on_oxygen"] = oxygen
        readings.append({"patient_id": patient_id,
                         "time": _iso(start + timedelta(minutes=minute)), **vitals})
    return readings


def _set_folder(root: Path, set_name: str) -> Path:
    """The set's folder: under ``root/physionet2012`` (a data root) or ``root`` itself."""
    for base in (root / "physionet2012", root):
        if (base / set_name).is_dir():
            return base / set_name
    raise MissingDataError(
        f"PhysioNet 2012 {set_name} not found under {root} (looked for {root / 'physionet2012' / set_name} "
        f"and {root / set_name}); it holds one HH:MM,Parameter,Value record file per stay "
        f"(e.g. {set_name}/132539.txt) beside Outcomes-{set_name.split('-', 1)[-1]}.txt, from "
        f"https://physionet.org/content/challenge-2012/")


def physionet_readings(root: Path, set_name: str = "set-a", stays: int | None = None,
                       seed: int = 0, *, start: datetime | None = None,
                       skips: SkipLog | None = None) -> list[Stay]:
    """PhysioNet 2012 records as :class:`Stay` s of readings, in file (RecordID) order.

    ``root``: a data root holding ``physionet2012/``, or that folder. ``stays``: a random sample
    of this many records (``seed``), all when None. ``start``: when every stay begins (tz-aware;
    default: now, to the minute, less the longest stay's record span, so that no reading lies in
    the future even when replayed at full speed). ``skips`` collects every line or value left
    out (malformed lines, implausible values), naming file or stay and time."""
    if stays is not None and stays < 1:
        raise ConfigError(f"stays must be at least 1, got {stays}")
    if start is not None and (start.tzinfo is None or start.utcoffset() is None):
        raise ConfigError(f"start must carry a time zone (e.g. 2026-12-07T05:00:00+00:00), got {start}")
    skips = SkipLog() if skips is None else skips
    folder = _set_folder(Path(root), set_name)
    paths = sorted(folder.glob("*.txt"))
    if not paths:
        raise MissingDataError(f"{folder} holds no record files (*.txt)")
    if stays is not None and stays < len(paths):
        paths = sorted(random.Random(seed).sample(paths, stays))
    letter = set_name.split("-", 1)[-1]
    outcomes_path = folder.parent / f"Outcomes-{letter}.txt"
    try:
        outcomes = read_outcomes(outcomes_path, skips) if outcomes_path.is_file() else None
    except ValueError as e:
        raise MissingDataError(str(e)) from e
    ids, columns = _read_records(paths, skips)
    events = events_frame({**columns, "text_value": [None] * len(columns["time"])})
    kept = drop_implausible(events, {code(v): VARIABLES[v][1] for v in USED}, skips, folder.name)
    kept = _drop_zero_artefacts(kept, skips, folder.name)
    dropped = Counter(events["stay_id"].to_list())
    dropped.subtract(kept["stay_id"].to_list())
    by_stay = {rid: part.sort("time", maintain_order=True)  # file order within a minute
               for (rid,), part in kept.partition_by("stay_id", as_dict=True,
                                                         maintain_order=True).items()}
    offsets = {rid: _minutes(part) for rid, part in by_stay.items()}
    span = max((m[-1] for m in offsets.values() if m), default=0)
    if start is None:
        start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=span)
    prefix = len(code(""))  # "PHYSIONET2012//"
    result = []
    for rid in ids:
        minutes = offsets.get(rid, [])
        part = by_stay.get(rid)
        names = [] if part is None else [c[prefix:] for c in part["code"].to_list()]
        values = [] if part is None else part["numeric_value"].to_list()
        outcome = (outcomes or {}).get(rid)
        if outcomes is not None and outcome is None:
            skips.add(f"{folder.name}/{rid}", f"no outcome row: record {rid}")
        result.append(Stay(
            patient_id=rid,
            died=None if outcome is None else bool(outcome["In-hospital_death"]),
            length_hours=_hours(outcome, "Length_of_stay"),
            death_hours=_hours(outcome, "Survival"),
            record_hours=(minutes[-1] / 60) if minutes else 0.0,
            start=start,
            readings=tuple(stay_readings(rid, minutes, names, values, start)),
            dropped=dropped[rid]))
    return result


# --- PhysioNet 2017 ECG ---------------------------------------------------------------------

ECG_FOLDER = "physionet2017_af"
ECG_LABELS = {"N": "normal rhythm", "A": "atrial fibrillation", "O": "other rhythm",
              "~": "too noisy"}
ECG_URL = "https://physionet.org/content/challenge-2017/1.0.0/"
MIN_SEGMENT_S = 5    # the shortest segment a reading may hold (readings.ECG_SECONDS)
MAX_SEGMENT_S = 55   # so that a tail joined to a segment stays within the 60 s a reading holds


@dataclass(frozen=True)
class EcgRecord:
    """One PhysioNet 2017 recording as the ECG readings of one patient, its label beside them:
    ``label`` the challenge's (N, A, O, ~), ``seconds`` the recording's length, ``start`` when
    its first segment begins. Readings carry no ``seq``: :func:`replay` numbers them; their
    samples stay an array until they are sent."""

    patient_id: str
    label: str
    seconds: float
    start: datetime
    readings: tuple[dict[str, Any], ...] = field(repr=False)


def _ecg_folder(root: Path, part: str) -> Path:
    """The part's folder (with REFERENCE.csv): under ``root/physionet2017_af``, or ``root``."""
    for base in (root / ECG_FOLDER, root):
        if (base / part / "REFERENCE.csv").is_file():
            return base / part
    raise MissingDataError(
        f"PhysioNet 2017 {part} not found under {root} (looked for "
        f"{root / ECG_FOLDER / part / 'REFERENCE.csv'} and {root / part / 'REFERENCE.csv'}); it "
        f"holds A00001.hea + A00001.mat, ... beside REFERENCE.csv (record,label), from {ECG_URL}")


def _ecg_labels(path: Path, skips: SkipLog) -> list[tuple[str, str]]:
    """(record, label) rows of a REFERENCE.csv; a malformed line or unknown label is a skip."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not re.fullmatch(r"[A-Za-z0-9_]+", parts[0]):
            skips.add(f"{path.name}:{number}", f"malformed line: expected record,label, got "
                                               f"{line[:40]!r}")
        elif parts[1] not in ECG_LABELS:
            skips.add(f"{path.name}:{number}", f"unknown label: {parts[1]!r} is not one of "
                                               f"{', '.join(ECG_LABELS)}")
        else:
            rows.append((parts[0], parts[1]))
    return rows


def segment_bounds(n: int, fs: float, segment_s: int) -> list[tuple[int, int]]:
    """(first, end) samples of consecutive segments of ``segment_s`` seconds; a tail under
    MIN_SEGMENT_S joins the segment before it (a recording under it gives none)."""
    size, least = int(round(segment_s * fs)), int(math.ceil(MIN_SEGMENT_S * fs))
    bounds = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < least:
        bounds[-2:] = [(bounds[-2][0], n)]
    return [(lo, hi) for lo, hi in bounds if hi - lo >= least]


def ecg_readings(root: Path, records: int | None = None, seed: int = 0, *,
                 part: str = "training2017", segment_s: int = 30,
                 labels: Sequence[str] | None = None, start: datetime | None = None,
                 skips: SkipLog | None = None) -> list[EcgRecord]:
    """PhysioNet 2017 recordings as :class:`EcgRecord` s of ECG readings (see the module doc),
    in REFERENCE.csv order.

    ``root``: a data root holding ``physionet2017_af/``, or that folder. ``records``: a random
    sample of this many (``seed``), all when None. ``labels``: only records with these labels
    (e.g. ["A", "~"]). ``start``: when every recording begins (tz-aware; default: now, to the
    second, less the longest recording, so no segment begins in the future)."""
    if records is not None and records < 1:
        raise ConfigError(f"records must be at least 1, got {records}")
    if not MIN_SEGMENT_S <= segment_s <= MAX_SEGMENT_S:
        raise ConfigError(f"segment_s must be {MIN_SEGMENT_S}-{MAX_SEGMENT_S} seconds, got "
                          f"{segment_s}")
    unknown = sorted(set(labels or ()) - set(ECG_LABELS))
    if unknown:
        raise ConfigError(f"unknown ECG label(s) {', '.join(unknown)}; the labels are "
                          + ", ".join(f"{k} ({v})" for k, v in ECG_LABELS.items()))
    if start is not None and (start.tzinfo is None or start.utcoffset() is None):
        raise ConfigError(f"start must carry a time zone (e.g. 2026-12-07T05:00:00+00:00), got {start}")
    skips = SkipLog() if skips is None else skips
    folder = _ecg_folder(Path(root), part)
    rows = [r for r in _ecg_labels(folder / "REFERENCE.csv", skips)
            if labels is None or r[1] in labels]
    if not rows:
        raise MissingDataError(f"{folder / 'REFERENCE.csv'} lists no record"
                               + (f" labelled {', '.join(labels)}" if labels else ""))
    if records is not None and records < len(rows):
        keep = set(random.Random(seed).sample(range(len(rows)), records))
        rows = [r for k, r in enumerate(rows) if k in keep]
    read: list[tuple[str, str, Any]] = []
    for name, label in rows:
        where = f"{folder.name}/{name}"
        try:
            signal = read_signal(folder / f"{name}.hea")
        except IatrosError as e:
            skips.add(where, f"unreadable record: {e}")
            continue
        if signal.n_channels != 1:
            skips.add(where, f"not one lead: {signal.n_channels} channels {signal.channels}")
            continue
        if problems := signal.problems():
            skips.add(where, f"unusable signal: {'; '.join(problems)}")
            continue
        if signal.duration_s < MIN_SEGMENT_S:
            skips.add(where, f"too short: {signal.duration_s:.1f} s, under {MIN_SEGMENT_S} s")
            continue
        read.append((name, label, signal))
    if start is None:
        longest = max((s.duration_s for _, _, s in read), default=0.0)
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(
            seconds=math.ceil(longest))
    return [_ecg_record(name, label, signal, start, segment_s) for name, label, signal in read]


def _ecg_record(name: str, label: str, signal: Any, start: datetime,
                segment_s: int) -> EcgRecord:
    """One recording's segments as readings dated from ``start``."""
    x = signal.data[:, 0]
    lead = re.sub(r"[^A-Za-z0-9 ._+-]", "", signal.channels[0])[:16] or None
    readings = []
    for lo, hi in segment_bounds(len(x), signal.fs, segment_s):
        ecg: dict[str, Any] = {"fs": _value(signal.fs), "samples": x[lo:hi].copy()}
        if lead:
            ecg["lead"] = lead
        readings.append({"patient_id": name,
                         "time": _iso(start + timedelta(seconds=lo / signal.fs)), "ecg": ecg})
    return EcgRecord(name, label, signal.duration_s, start, tuple(readings))


ZERO_IS_ARTEFACT = ("HR", "RespRate", "SysABP", "NISysABP", "SaO2")


def _drop_zero_artefacts(events: pl.DataFrame, skips: SkipLog, source: str) -> pl.DataFrame:
    """Events without the zeros that are disconnected lines or probes (ZERO_IS_ARTEFACT)."""
    artefact = (pl.col("numeric_value") == 0) & pl.col("code").is_in(
        [code(v) for v in ZERO_IS_ARTEFACT])
    for row in events.filter(artefact).iter_rows(named=True):
        skips.add(f"{source}/{row['stay_id']}", f"disconnected line or probe: {row['code']} = 0 "
                                                 f"at {row['time']}")
    return events.filter(~artefact)


def _read_records(paths: Sequence[Path], skips: SkipLog) -> tuple[list[str], dict[str, list[Any]]]:
    """Record ids in file order and the used variables' events of every readable record."""
    wanted = {code(v) for v in USED}
    columns: dict[str, list[Any]] = {k: [] for k in ("subject_id", "stay_id", "time", "code",
                                                     "numeric_value", "unit")}
    ids: list[str] = []
    for rid, _, _, cols in records(paths, skips):
        ids.append(rid)
        keep = [i for i, c in enumerate(cols["code"]) if c in wanted]
        columns["subject_id"] += [rid] * len(keep)
        columns["stay_id"] += [rid] * len(keep)
        for k in ("time", "code", "numeric_value", "unit"):
            columns[k] += [cols[k][i] for i in keep]
    return ids, columns


def _minutes(part: pl.DataFrame) -> list[int]:
    """Minutes since ICU admission of a stay's events (the reader anchors them at ANCHOR)."""
    return [int((t - ANCHOR).total_seconds() // 60) for t in part["time"].to_list()]


def _hours(outcome: dict[str, float] | None, column: str) -> float | None:
    """An Outcomes column in days as hours; None when missing or unknown (-1)."""
    if outcome is None or outcome[column] < 0:
        return None
    return outcome[column] * 24.0


@dataclass
class ReplaySummary:
    """What a replay did: readings sent once each (``sent``), as the server answered them
    (``stored``, ``duplicates``, ``rejected`` with ``rejected_reasons``: each reason with its
    numbers as #, counted), sent readings no answer mentioned (``unanswered``), alerts opened
    or raised, batches and resends, the next unused ``seq`` and the wall time."""

    patients: int = 0
    admitted: int = 0
    already_admitted: int = 0
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    unanswered: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    batches: int = 0
    resends: int = 0
    next_seq: int = 0
    wall_s: float = 0.0
    alert_events: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def as_dict(self, *, with_alerts: bool = False) -> dict[str, Any]:
        """A JSON-ready copy (the alerts themselves only on request: they may be many)."""
        out = asdict(self)
        if not with_alerts:
            out.pop("alert_events")
        return out

    def lines(self) -> list[str]:
        """The summary in words, one fact a line."""
        rate = self.sent / self.wall_s if self.wall_s > 0 else 0.0
        out = [f"patients: {self.patients} ({self.admitted} admitted, {self.already_admitted} "
               f"already admitted)",
               f"readings sent: {self.sent} in {self.batches} batches ({self.resends} resent) "
               f"in {self.wall_s:.1f} s ({rate:.0f}/s)",
               f"stored: {self.stored}, duplicates: {self.duplicates}, rejected: {self.rejected}, "
               f"unanswered: {self.unanswered}",
               f"alerts: {self.alerts}",
               f"next seq: {self.next_seq}"]
        out += [f"  rejected {n}: {reason}" for reason, n in self.rejected_reasons.items()]
        return out


def _scrub(text: str, keys: Sequence[str]) -> str:
    """A text without any of the keys in it."""
    for key in keys:
        if key:
            text = text.replace(key, "<key>")
    return text


def _problem(response: httpx.Response) -> str:
    """The server's words on a refusal (problem+json detail or title), else its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") or body.get("title") if isinstance(body, dict) else None
    phrase = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return f"{phrase}: {detail}" if detail else phrase


class _Poster:
    """POSTs JSON with one key, retrying connection errors, timeouts, 429 and 5xx with back-off."""

    def __init__(self, client: httpx.Client, keys: Sequence[str], max_tries: int,
                 backoff_s: float, sleep: Callable[[float], None]) -> None:
        self.client, self.keys, self.max_tries = client, keys, max_tries
        self.backoff_s, self.sleep = backoff_s, sleep
        self.resends = 0

    def post(self, url: str, key: str, body: dict[str, Any], what: str) -> httpx.Response:
        """The first answer that is not worth retrying; ReplayError after ``max_tries``."""
        problem = ""
        for attempt in range(self.max_tries):
            if attempt:
                self.resends += 1
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self.client.post(url, json=body, headers={"X-API-Key": key})
            except httpx.TransportError as e:  # refused, reset, timed out: the server may come back
                problem = _scrub(f"{type(e).__name__}: {e}", self.keys)
            else:
                if response.status_code not in RETRY_STATUS:
                    return response
                problem = _scrub(_problem(response), self.keys)
            log.warning("%s: try %d/%d failed (%s)", what, attempt + 1, self.max_tries, problem)
        raise ReplayError(f"{what}: {problem} after {self.max_tries} tries; the server is "
                          f"idempotent by (device, seq): rerun with the same --start-seq to resume")


def _epoch(iso: str) -> float:
    """Seconds since 1970 of an ISO 8601 time with a zone."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _in_time_order(stays: Sequence[Stay | EcgRecord]) -> list[dict[str, Any]]:
    """Every stay's readings merged by time (ties in stay order), as a ward's devices send them."""
    return list(heapq.merge(*(s.readings for s in stays), key=lambda r: r["time"]))


def _wire(reading: dict[str, Any]) -> dict[str, Any]:
    """A reading as JSON takes it: an ECG segment's samples (kept as an array) as a list."""
    ecg = reading.get("ecg")
    if ecg is None or isinstance(ecg["samples"], list):
        return reading
    return {**reading, "ecg": {**ecg, "samples": ecg["samples"].tolist()}}


def _reason(rejection: Any) -> str:
    """A rejection's reason with its numbers (values, ids) as #, so that like reasons count together."""
    if not isinstance(rejection, dict):
        return "unreadable rejection entry"
    reason = str(rejection.get("reason", "no reason given"))
    return _NUMBER.sub("#", reason)


def _check_args(url: str, device_key: str, system_key: str, speed: float, batch_size: int,
                start_seq: int, max_tries: int) -> None:
    """Refuse arguments that cannot work, naming them (never a key's value)."""
    for name, key in (("device_key", device_key), ("system_key", system_key)):
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{name} is empty: give the API key itself")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"url must be http(s)://HOST[:PORT], got {url!r}")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        log.warning("sending API keys over plain http to %s: use https beyond this machine",
                    parts.hostname)
    if speed < 0:
        raise ConfigError(f"speed must be >= 0 (0: as fast as possible), got {speed}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"batch_size must be 1-{MAX_BATCH}, got {batch_size}")
    if start_seq < 0:
        raise ConfigError(f"start_seq must be >= 0, got {start_seq}")
    if max_tries < 1:
        raise ConfigError(f"max_tries must be >= 1, got {max_tries}")


def replay(url: str, device_key: str, system_key: str, stays: Sequence[Stay | EcgRecord], *,
           speed: float = 60.0, batch_size: int = 200, start_seq: int = 1, ward: str = "replay",
           spo2_scale: int = 1, max_tries: int = 6, backoff_s: float = 0.5,
           timeout_s: float = 30.0, progress: bool | None = None,
           client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> ReplaySummary:
    """Admit the stays' patients, then send their readings in time order; the summary.

    ``speed``: record seconds per wall second (60: an hour of the record a minute; 0: as fast as
    the server answers). Each batch holds the readings that are due (at most ``batch_size``), so
    a slow server gets fuller batches, never a later schedule. ``start_seq``: the ``seq`` of the
    first reading; each next one is one higher (the summary's ``next_seq`` continues a later
    replay with the same device key). A batch that meets a connection error, a timeout, 429 or
    5xx is resent unchanged after 0.5, 1, 2, ... s (``backoff_s``), up to ``max_tries`` tries;
    any other refusal stops the replay with the server's words. ``progress``: a progress bar
    (None: when stderr is a terminal). ``client``, ``sleep``, ``clock``: for tests."""
    from tqdm import tqdm

    _check_args(url, device_key, system_key, speed, batch_size, start_seq, max_tries)
    base = url.rstrip("/")
    keys = (device_key, system_key)
    summary = ReplaySummary(patients=len(stays), next_seq=start_seq)
    reasons: Counter[str] = Counter()
    began = clock()
    own = client is None
    http = httpx.Client(timeout=timeout_s, follow_redirects=False) if own else client
    try:
        poster = _Poster(http, keys, max_tries, backoff_s, sleep)
        for stay in stays:
            body = {"patient_id": stay.patient_id, "ward": ward, "spo2_scale": spo2_scale}
            answer = poster.post(base + PATIENTS_PATH, system_key, body,
                                 f"admitting patient {stay.patient_id}")
            if answer.status_code == 409:
                summary.already_admitted += 1
            elif answer.is_success:
                summary.admitted += 1
            else:
                raise ReplayError(f"admitting patient {stay.patient_id}: "
                                  f"{_scrub(_problem(answer), keys)}")
        readings = _in_time_order(stays)
        times = [_epoch(r["time"]) for r in readings]
        seq = start_seq
        with tqdm(total=len(readings), unit="reading", desc="replay", disable=None if progress is None
                  else not progress) as bar:
            for batch in _batches(times, speed, batch_size, clock, sleep):
                sent = [{**_wire(readings[i]), "seq": seq + k} for k, i in enumerate(batch)]
                seq += len(sent)
                answer = poster.post(base + READINGS_PATH, device_key, {"readings": sent},
                                     f"batch of seq {sent[0]['seq']}-{sent[-1]['seq']}")
                if not answer.is_success:
                    raise ReplayError(f"batch of seq {sent[0]['seq']}-{sent[-1]['seq']} refused: "
                                      f"{_scrub(_problem(answer), keys)}")
                _tally(summary, reasons, sent, answer)
                summary.next_seq = seq
                bar.update(len(sent))
        summary.resends = poster.resends
    finally:
        if own:
            http.close()
        summary.wall_s = clock() - began
        summary.rejected_reasons = dict(reasons.most_common())
    return summary


def _batches(times: Sequence[float], speed: float, batch_size: int, clock: Callable[[], float],
             sleep: Callable[[float], None]) -> Iterator[list[int]]:
    """Indices of the readings to send together: at ``speed`` > 0, those due by now (after
    sleeping until the next is due), at most ``batch_size``; at 0, ``batch_size`` at a time."""
    n = len(times)
    if not n:
        return
    first, began = times[0], clock()
    i = 0
    while i < n:
        if speed > 0:
            wait = began + (times[i] - first) / speed - clock()
            if wait > 0:
                sleep(wait)
            now = clock()
            j = i + 1
            while j < n and j - i < batch_size and began + (times[j] - first) / speed <= now:
                j += 1
        else:
            j = min(n, i + batch_size)
        yield list(range(i, j))
        i = j


def _tally(summary: ReplaySummary, reasons: Counter[str], sent: Sequence[dict[str, Any]],
           answer: httpx.Response) -> None:
    """Add one batch's answer to the summary; an answer not in the contract's shape is an error."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(k, []), list)
                                             for k in ("stored", "duplicates", "rejected", "alerts")):
        raise ReplayError(f"batch answer is not the contract's {{stored, duplicates, rejected, "
                          f"alerts}} (HTTP {answer.status_code})")
    stored, duplicates = body.get("stored", []), body.get("duplicates", [])
    rejected, alerts = body.get("rejected", []), body.get("alerts", [])
    summary.sent += len(sent)
    summary.batches += 1
    summary.stored += len(stored)
    summary.duplicates += len(duplicates)
    summary.rejected += len(rejected)
    reasons.update(_reason(r) for r in rejected)
    answered = {*stored, *duplicates, *(r.get("seq") for r in rejected if isinstance(r, dict))}
    summary.unanswered += sum(1 for r in sent if r["seq"] not in answered)
    summary.alerts += len(alerts)
    summary.alert_events.extend(a for a in alerts if isinstance(a, dict))
