"""Durable storage of the monitor: admitted patients, readings (unique per device and sequence
number, so a resent batch is never stored twice), their ECG segments and alerts, in the
service's database (SQLite in WAL mode with full sync by default, PostgreSQL by URL). A write
returns only after its transaction committed: what the monitor acknowledges is on disk.

An ECG segment is stored beside its reading, in the same transaction and under the same
(device, seq), as float32 little-endian bytes (``SAMPLE_DTYPE``; read back bit for bit, never
unpickled)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Engine

from iatros.monitoring.readings import Reading, Segment

METADATA = MetaData()
PATIENTS = Table(
    "monitor_patients", METADATA,
    Column("patient_id", String(80), primary_key=True),
    Column("ward", String(120), nullable=False),
    Column("spo2_scale", Integer, nullable=False),
    Column("patient_sealed", Text, nullable=True),
    Column("admitted", Float, nullable=False),
    Column("discharged", Float, nullable=True),
)
READINGS = Table(
    "monitor_readings", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(120), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("patient_id", String(80), nullable=False, index=True),
    Column("time", Float, nullable=False),
    Column("received", Float, nullable=False),
    Column("spo2_scale", Integer, nullable=True),
    Column("vitals", Text, nullable=False),
    UniqueConstraint("device", "seq", name="uq_monitor_reading_device_seq"),
)
SEGMENTS = Table(
    "monitor_segments", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(120), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("patient_id", String(80), nullable=False, index=True),
    Column("time", Float, nullable=False),
    Column("fs", Float, nullable=False),
    Column("lead", String(16), nullable=True),
    Column("n_samples", Integer, nullable=False),
    Column("samples", LargeBinary, nullable=False),
    UniqueConstraint("device", "seq", name="uq_monitor_segment_device_seq"),
)
SAMPLE_DTYPE = np.dtype("<f4")
ALERTS = Table(
    "monitor_alerts", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", String(80), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("score", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("reading_time", Float, nullable=False),
    Column("opened", Float, nullable=False),
    Column("level", Integer, nullable=False),
    Column("escalated", Float, nullable=False),
    Column("acked_by", String(120), nullable=True),
    Column("acked", Float, nullable=True),
)
CHUNK = 500  # rows per IN (...) lookup, under SQLite's host-parameter limit


@dataclass
class Alert:
    """An alert as stored; ``acked`` is None while it is open."""

    id: int
    patient_id: str
    kind: str
    severity: str
    score: int | None
    reason: str
    reading_time: float
    opened: float
    level: int
    escalated: float
    acked_by: str | None = None
    acked: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("id", "patient_id", "kind", "severity", "score",
                                              "reason", "reading_time", "opened", "level",
                                              "escalated", "acked_by", "acked")}
        return {**out, **self.extra}


@dataclass(frozen=True)
class StoredSegment:
    """An ECG segment as stored: its reading's (device, seq), patient and time, and the samples."""

    device: str
    seq: int
    patient_id: str
    time: float
    segment: Segment


@dataclass(frozen=True)
class Patient:
    patient_id: str
    ward: str
    spo2_scale: int
    admitted: float




class PatientIds(Protocol):
    """How patient ids are stored: (searched value, sealed id) and back (the service passes
    `access.patients.PatientFields`: with a master key, a keyed token and the id sealed)."""

    def stored(self, patient_id: str) -> tuple[str, str | None]: ...

    def shown(self, stored: str, sealed: str | None) -> str: ...


class PlainIds:
    """Ids stored as they are (no master key)."""

    def stored(self, patient_id: str) -> tuple[str, str | None]:
        return patient_id, None

    def shown(self, stored: str, sealed: str | None) -> str:
        return stored


class MonitorStore:
    """The monitor's tables on an engine (created when missing). Patient ids go in and come
    out as they are; the columns hold what `ids` stores (a token with a master key)."""

    def __init__(self, engine: Engine, ids: PatientIds | None = None) -> None:
        self.engine = engine
        self.ids = ids or PlainIds()
        self._keys: dict[str, str] = {}     # patient id -> stored value
        self._names: dict[str, str] = {}    # stored value -> patient id
        METADATA.create_all(engine)
        self._insert = _insert_ignoring_duplicates(engine, READINGS)
        self._insert_segment = _insert_ignoring_duplicates(engine, SEGMENTS)

    # patient ids as stored
    def _key(self, patient_id: str) -> str:
        key = self._keys.get(patient_id)
        if key is None:
            key = self.ids.stored(patient_id)[0]
            self._keys[patient_id], self._names[key] = key, patient_id
        return key

    def _name(self, stored: str) -> str:
        return self._names.get(stored, stored)

    # patients
    def admit(self, patient_id: str, ward: str, spo2_scale: int, now: float) -> Patient:
        """Admit a patient to monitoring (again, if discharged); ValueError if already admitted."""
        key, sealed = self.ids.stored(patient_id)
        self._keys[patient_id], self._names[key] = key, patient_id
        with self.engine.begin() as c:
            row = c.execute(select(PATIENTS).where(PATIENTS.c.patient_id == key)).first()
            if row is not None and row.discharged is None:
                raise ValueError(f"patient {patient_id} is already admitted (ward {row.ward})")
            values = {"ward": ward, "spo2_scale": spo2_scale, "admitted": now, "discharged": None,
                      "patient_sealed": sealed}
            if row is None:
                c.execute(insert(PATIENTS).values(patient_id=key, **values))
            else:
                c.execute(update(PATIENTS).where(PATIENTS.c.patient_id == key).values(**values))
        return Patient(patient_id, ward, spo2_scale, now)

    def discharge(self, patient_id: str, now: float) -> bool:
        with self.engine.begin() as c:
            done = c.execute(update(PATIENTS).where(PATIENTS.c.patient_id == self._key(patient_id),
                                                    PATIENTS.c.discharged.is_(None))
                             .values(discharged=now))
        return bool(done.rowcount)

    def patients(self) -> dict[str, Patient]:
        """The patients admitted now."""
        with self.engine.connect() as c:
            rows = c.execute(select(PATIENTS).where(PATIENTS.c.discharged.is_(None))).all()
        out = {}
        for r in rows:
            pid = self.ids.shown(r.patient_id, r.patient_sealed)
            self._keys[pid], self._names[r.patient_id] = r.patient_id, pid
            out[pid] = Patient(pid, r.ward, r.spo2_scale, r.admitted)
        return out

    # readings
    def existing(self, c: Connection, device: str, seqs: Sequence[int]) -> set[int]:
        """Which of `seqs` the device has stored already."""
        found: set[int] = set()
        for start in range(0, len(seqs), CHUNK):
            chunk = list(seqs[start:start + CHUNK])
            found.update(c.execute(select(READINGS.c.seq).where(
                READINGS.c.device == device, READINGS.c.seq.in_(chunk))).scalars())
        return found

    def write(self, device: str, readings: Sequence[Reading], received: float,
              alerts: Iterable[Alert] = (), alert_updates: Iterable[Alert] = ()
              ) -> list[Alert]:
        """Store new readings and the alerts they opened or changed in one transaction; the
        opened alerts come back with their ids. Returns after the commit."""
        opened = list(alerts)
        with self.engine.begin() as c:
            if readings:
                c.execute(self._insert, [
                    {"device": device, "seq": r.seq, "patient_id": self._key(r.patient_id),
                     "time": r.time, "received": received, "spo2_scale": r.spo2_scale,
                     "vitals": json.dumps(r.values, separators=(",", ":"))} for r in readings])
                segments = [_segment_row(device, r, r.ecg, self._key(r.patient_id))
                            for r in readings if r.ecg is not None]
                if segments:
                    c.execute(self._insert_segment, segments)
            for alert in opened:
                alert.id = int(c.execute(insert(ALERTS).values(self._alert_row(alert))
                                         .returning(ALERTS.c.id)).scalar_one())
            for alert in alert_updates:
                c.execute(update(ALERTS).where(ALERTS.c.id == alert.id)
                          .values(self._alert_row(alert)))
        return opened

    def recent_readings(self, since: float, patients: Iterable[str] | None = None
                        ) -> list[dict[str, Any]]:
        """Readings with time >= since (of `patients` if given), in time order."""
        query = select(READINGS).where(READINGS.c.time >= since)
        if patients is not None:
            query = query.where(READINGS.c.patient_id.in_([self._key(p) for p in patients]))
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(READINGS.c.time, READINGS.c.id)).all()
        return [{"device": r.device, "seq": r.seq, "patient_id": self._name(r.patient_id),
                 "time": r.time, "spo2_scale": r.spo2_scale, **json.loads(r.vitals)}
                for r in rows]

    def segments(self, patient_id: str, since: float | None = None, limit: int = 20
                 ) -> list[StoredSegment]:
        """A patient's latest ECG segments (time >= since if given), at most ``limit``, newest
        first."""
        query = select(SEGMENTS).where(SEGMENTS.c.patient_id == self._key(patient_id))
        if since is not None:
            query = query.where(SEGMENTS.c.time >= since)
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(SEGMENTS.c.time.desc(), SEGMENTS.c.id.desc())
                             .limit(limit)).all()
        return [StoredSegment(r.device, r.seq, patient_id, r.time, _segment(r)) for r in rows]

    def last_times(self) -> dict[tuple[str, str], float]:
        """The latest reading time per (device, patient): readings older than it are refused."""
        with self.engine.connect() as c:
            rows = c.execute(select(READINGS.c.device, READINGS.c.patient_id,
                                    func.max(READINGS.c.time))
                             .group_by(READINGS.c.device, READINGS.c.patient_id)).all()
        return {(d, self._name(p)): float(t) for d, p, t in rows}

    def latest_time(self) -> float | None:
        with self.engine.connect() as c:
            return c.execute(select(func.max(READINGS.c.time))).scalar()

    def count_readings(self, device: str | None = None) -> int:
        query = select(func.count()).select_from(READINGS)
        if device is not None:
            query = query.where(READINGS.c.device == device)
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def stored_pairs(self, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """How many times each (device, seq) is stored (0 or 1: the table refuses more)."""
        out = dict.fromkeys(pairs, 0)
        with self.engine.connect() as c:
            for start in range(0, len(pairs), CHUNK):
                chunk = list(pairs[start:start + CHUNK])
                for d, s, n in c.execute(select(READINGS.c.device, READINGS.c.seq, func.count())
                                         .where(tuple_(READINGS.c.device, READINGS.c.seq)
                                                .in_(chunk))
                                         .group_by(READINGS.c.device, READINGS.c.seq)):
                    out[(d, s)] = int(n)
        return out

    # alerts
    def alerts(self, open_only: bool = False, patient_id: str | None = None,
               limit: int = 500) -> list[Alert]:
        query = select(ALERTS)
        if open_only:
            query = query.where(ALERTS.c.acked.is_(None))
        if patient_id is not None:
            query = query.where(ALERTS.c.patient_id == self._key(patient_id))
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(ALERTS.c.id.desc()).limit(limit)).all()
        return [self._alert(r) for r in rows]

    def alert(self, alert_id: int) -> Alert | None:
        with self.engine.connect() as c:
            row = c.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).first()
        return None if row is None else self._alert(row)

    def acknowledge(self, alert_id: int, by: str, now: float) -> Alert | None:
        """Mark an open alert acknowledged; None if it is unknown or was acknowledged already."""
        with self.engine.begin() as c:
            done = c.execute(update(ALERTS).where(ALERTS.c.id == alert_id,
                                                  ALERTS.c.acked.is_(None))
                             .values(acked_by=by, acked=now))
            if not done.rowcount:
                return None
            return self._alert(c.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).one())

    def escalate(self, alert: Alert) -> bool:
        """Store an alert's new level unless it was acknowledged meanwhile."""
        with self.engine.begin() as c:
            done = c.execute(update(ALERTS).where(ALERTS.c.id == alert.id,
                                                  ALERTS.c.acked.is_(None))
                             .values(level=alert.level, escalated=alert.escalated))
        return bool(done.rowcount)


    def _alert_row(self, alert: Alert) -> dict[str, Any]:
        return {"patient_id": self._key(alert.patient_id), "kind": alert.kind,
                "severity": alert.severity, "score": alert.score, "reason": alert.reason,
                "reading_time": alert.reading_time, "opened": alert.opened, "level": alert.level,
                "escalated": alert.escalated, "acked_by": alert.acked_by, "acked": alert.acked}

    def _alert(self, row: Any) -> Alert:
        return Alert(row.id, self._name(row.patient_id), row.kind, row.severity, row.score,
                     row.reason, row.reading_time, row.opened, row.level, row.escalated,
                     row.acked_by, row.acked)


def _segment_row(device: str, reading: Reading, ecg: Segment, patient: str) -> dict[str, Any]:
    """The monitor_segments row of a reading's ECG segment (`patient`: the id as stored)."""
    samples = np.ascontiguousarray(ecg.samples, dtype=SAMPLE_DTYPE)
    return {"device": device, "seq": reading.seq, "patient_id": patient,
            "time": reading.time, "fs": ecg.fs, "lead": ecg.lead, "n_samples": len(samples),
            "samples": samples.tobytes()}


def _segment(row: Any) -> Segment:
    """A stored segment's samples as float32 (native order), checked against their count."""
    samples = np.frombuffer(row.samples, dtype=SAMPLE_DTYPE)
    if len(samples) != row.n_samples:
        raise ValueError(f"monitor segment of device {row.device} seq {row.seq}: "
                         f"{len(samples)} samples stored, {row.n_samples} expected")
    return Segment(samples.astype(np.float32), row.fs, row.lead)


def _insert_ignoring_duplicates(engine: Engine, table: Table) -> Any:
    """INSERT that skips a (device, seq) already stored (a race between two resends)."""
    name = engine.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        raise ValueError(f"the monitor stores readings in SQLite or PostgreSQL, not {name}")
    return dialect_insert(table).on_conflict_do_nothing(index_elements=["device", "seq"])
