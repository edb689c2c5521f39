"""The monitor: stores a device's batch of readings, scores NEWS2 on each patient's current
observations after every reading, opens, suppresses and escalates alerts, and tells listeners
(WebSocket clients, webhooks, the audit log) what happened.

- Current observations: the latest value of each parameter not older than ``stale_after``
  (record time) before the reading; an older value counts as not recorded.
- An alert opens when NEWS2 reaches a trigger (Chart 3: aggregate 7+ high, 5-6 medium, a single
  parameter scoring 3 low-medium), or when a scorer after it (the deterioration model, the
  rhythm model on ECG segments) finds one. Alerts are kept per patient and kind: while one is
  open no new one of its kind is raised; a higher severity updates the open alert. After an
  acknowledgement, alerts of the same kind and the same or a lower severity stay quiet for
  ``hold`` (record time; Chart 4 asks for hourly review at medium).
- Escalation (wall time): level 0 at once; when an alert stays unacknowledged for a level's
  ``after_s``, it moves to that level and is pushed again.
- Ingest is serialised by a lock: one writer, and the in-memory state changes only after the
  batch's transaction committed, so a failed commit leaves memory and disk as they were."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iatros.monitoring.news2 import LABELS, PARAMETERS, News2Result, Observations, news2
from iatros.monitoring.readings import Check, Reading, Rejection, parse_batch
from iatros.monitoring.store import Alert, MonitorStore, Patient
from iatros.monitoring.trend import DEFAULT_RISE, DEFAULT_WINDOW

log = logging.getLogger("iatros")
SEVERITY_RANK = {"none": 0, "low-medium": 1, "medium": 2, "high": 3}
MAX_BATCH = 5000
TREND_WINDOW_S = DEFAULT_WINDOW.total_seconds()


@dataclass(frozen=True)
class Level:
    """An escalation level: who is told, and after how long without acknowledgement."""

    name: str
    after_s: float


DEFAULT_LEVELS = (Level("ward-nurse", 0.0), Level("doctor", 300.0), Level("rapid-response", 600.0))


@dataclass
class MonitorSettings:
    stale_after_s: float = 4 * 3600.0
    hold_s: float = 3600.0
    levels: tuple[Level, ...] = DEFAULT_LEVELS


@dataclass
class PatientState:
    """What the monitor knows of a patient now: each parameter's latest value and time, the
    latest NEWS2 and model results, and per alert kind the hold after an acknowledgement
    (until when, in record time, and up to which severity)."""

    values: dict[str, tuple[float, Any]] = field(default_factory=dict)
    latest: float = 0.0
    news2: dict[str, Any] | None = None
    holds: dict[str, tuple[float, int]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    since: float | None = None   # the first reading's time
    complete: list[tuple[float, int]] = field(default_factory=list)  # (time, score), 24 h

    def copy(self) -> PatientState:
        """A copy whose containers can change without touching this one (values are
        immutable: numbers, codes, tuples)."""
        return PatientState(dict(self.values), self.latest, self.news2, dict(self.holds),
                            dict(self.results), self.since, list(self.complete))


@dataclass(frozen=True)
class Finding:
    """What a scorer concluded from a reading: an alert of ``kind`` at ``severity`` ('none' to
    only record ``result``, e.g. a probability under the threshold), with its reason in words."""

    kind: str
    severity: str
    reason: str
    score: int | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What a scorer sees: the patient, the stored reading, the patient's state (values and
    earlier results; read only) and the monitor's settings."""

    patient: Patient
    reading: Reading
    state: PatientState
    settings: MonitorSettings


# A scorer is called after NEWS2 on every stored reading (inside the ingest lock, so it must be
# quick or decide itself how often to work) and returns its findings; one that needs a window
# of history keeps its own.
Scorer = Callable[[Context], list[Finding]]


@dataclass
class BatchResult:
    """The answer to a batch: seqs stored, seqs already stored, the rejections, the alerts."""

    stored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "duplicates": self.duplicates,
                "rejected": [r.to_dict() for r in self.rejected], "alerts": self.alerts}


def severity(result: News2Result) -> str:
    """The alert severity of a NEWS2 result ('none' below the triggers)."""
    return result.risk if result.risk in ("high", "medium", "low-medium") else "none"


def reason(result: News2Result) -> str:
    """The alert's reason in words: the score and the parameters that scored."""
    scored = [f"{LABELS[p]} {_shown(result.values.get(p))} ({result.subscores[p]})"
              for p in PARAMETERS if result.subscores.get(p)]
    return f"{result.summary()}. Scoring: {', '.join(scored) or 'none'}"


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Monitor:
    """Readings in, alerts out, everything stored before it is acknowledged."""

    def __init__(self, store: MonitorStore, settings: MonitorSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings or MonitorSettings()
        self.clock = clock
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._lock = threading.RLock()
        self._patients: dict[str, Patient] = {}
        self._states: dict[str, PatientState] = {}
        self._open: dict[tuple[str, str], Alert] = {}
        self._last: dict[tuple[str, str], float] = {}
        self.scorers: list[tuple[str, Scorer]] = []
        self.checks: list[Check] = []   # more per-reading checks (e.g. a model's ECG rate)
        self.reload()

    # state from the database (start-up, after a crash)
    def reload(self) -> None:
        """Rebuild the in-memory state from the store: patients, open alerts, each patient's
        current observations, and the last reading time per device and patient."""
        with self._lock:
            self._patients = self.store.patients()
            self._open = {(a.patient_id, a.kind): a
                          for a in reversed(self.store.alerts(open_only=True, limit=100_000))}
            self._last = self.store.last_times()
            self._states = {p: PatientState() for p in self._patients}
            latest = self.store.latest_time()
            if latest is not None:   # replayed as they came, for the values and the trend
                span = max(self.settings.stale_after_s, TREND_WINDOW_S)
                for row in self.store.recent_readings(latest - span, self._patients):
                    state = self._states[row["patient_id"]]
                    self._remember(state, row["time"], {k: row[k] for k in row if k in
                                                        _STORED_VITALS})
                    state.since = row["time"] if state.since is None else state.since
                    scale = row["spo2_scale"] or self._patients[row["patient_id"]].spo2_scale
                    self._rescore(state, scale)

    def patients(self) -> dict[str, Patient]:
        with self._lock:
            return dict(self._patients)

    def admit(self, patient_id: str, ward: str, spo2_scale: int = 1) -> Patient:
        with self._lock:
            patient = self.store.admit(patient_id, ward, spo2_scale, self.clock())
            self._patients[patient_id] = patient
            self._states[patient_id] = PatientState()
        return patient

    def discharge(self, patient_id: str) -> bool:
        with self._lock:
            done = self.store.discharge(patient_id, self.clock())
            self._patients.pop(patient_id, None)
            self._states.pop(patient_id, None)
        return done

    # readings
    def ingest(self, device: str, raws: Sequence[Any]) -> BatchResult:
        """Check, store (one transaction) and score a device's batch; see the module doc."""
        if len(raws) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} readings, not {len(raws)}")
        now = self.clock()
        good, rejected = parse_batch(raws, now, self.checks)
        result = BatchResult(rejected=rejected)
        with self._lock:
            with self.store.engine.connect() as c:
                stored_before = self.store.existing(c, device, [r.seq for _, r in good])
            unseen: list[tuple[int, Reading]] = []
            seen: set[int] = set()
            for index, reading in good:   # a resent reading is a duplicate, whatever its time
                if reading.seq in stored_before or reading.seq in seen:
                    result.duplicates.append(reading.seq)
                else:
                    seen.add(reading.seq)
                    unseen.append((index, reading))
            new = [reading for _, reading in self._admissible(device, unseen, result)]
            result.rejected.sort(key=lambda r: r.index)
            states = {p: self._states[p].copy() for p in {r.patient_id for r in new}}
            opened, updated, events = self._score(new, states, now)
            self.store.write(device, new, now, opened, updated)
            # committed: memory follows the disk
            self._states.update(states)
            for alert in [*opened, *updated]:
                self._open[(alert.patient_id, alert.kind)] = alert
            for reading in new:
                key = (device, reading.patient_id)
                self._last[key] = max(self._last.get(key, 0.0), reading.time)
            result.stored = [r.seq for r in new]
            result.alerts = [{**a.to_dict(), "update": a in updated} for a in [*opened, *updated]]
        for event in events:
            self._emit(event)
        return result

    def _admissible(self, device: str, good: list[tuple[int, Reading]],
                    result: BatchResult) -> list[tuple[int, Reading]]:
        """Readings of admitted patients, in time order per device and patient."""
        out = []
        last = dict(self._last)
        for index, reading in good:
            if reading.patient_id not in self._patients:
                result.rejected.append(Rejection(index, reading.seq, "patient_id",
                                                 f"patient {reading.patient_id} is not admitted "
                                                 f"to monitoring"))
                continue
            key = (device, reading.patient_id)
            if reading.time < last.get(key, 0.0):
                result.rejected.append(Rejection(
                    index, reading.seq, "time", f"out of order: older than this device's latest "
                    f"reading of patient {reading.patient_id} by "
                    f"{last[key] - reading.time:.0f} s"))
                continue
            last[key] = reading.time
            out.append((index, reading))
        return out

    def _remember(self, state: PatientState, when: float, values: dict[str, Any]) -> None:
        for name, value in values.items():
            held = state.values.get(name)
            if held is None or held[0] <= when:
                state.values[name] = (when, value)
        state.latest = max(state.latest, when)

    def current(self, state: PatientState, when: float, scale: int) -> Observations:
        """The observations NEWS2 scores at `when`: values not older than stale_after."""
        oldest = when - self.settings.stale_after_s
        fresh = {k: v for k, (t, v) in state.values.items() if t >= oldest}
        return Observations(**fresh, spo2_scale=scale)

    def _rescore(self, state: PatientState, scale: int) -> News2Result:
        """NEWS2 of the patient's current observations with its trend (as `trend.news2_trend`:
        the change from the lowest complete score of the trailing 24 h, rising at +2), kept in
        the state for the ward view."""
        when = state.latest
        result = news2(self.current(state, when, scale))
        state.complete = [(t, v) for t, v in state.complete if t >= when - TREND_WINDOW_S]
        lowest = min((v for t, v in state.complete if t < when), default=None)
        change = None if lowest is None else result.score - lowest
        if result.complete:
            state.complete.append((when, result.score))
        state.news2 = {"score": result.score, "complete": result.complete, "risk": result.risk,
                       "red_score": result.red_score, "time": when, "summary": result.summary(),
                       "change_from_window_min": change,
                       "rising": change is not None and change >= DEFAULT_RISE}
        return result

    def _score(self, new: list[Reading], states: dict[str, PatientState], now: float
               ) -> tuple[list[Alert], list[Alert], list[dict[str, Any]]]:
        opened: dict[tuple[str, str], Alert] = {}
        updated: dict[tuple[str, str], Alert] = {}
        events: list[dict[str, Any]] = []
        for reading in sorted(new, key=lambda r: r.time):
            state = states[reading.patient_id]
            self._remember(state, reading.time, reading.values)
            state.since = reading.time if state.since is None else min(state.since, reading.time)
            patient = self._patients[reading.patient_id]
            result = self._rescore(state, reading.spo2_scale or patient.spo2_scale)
            level = severity(result)
            findings = [Finding("news2", level, reason(result) if level != "none" else "",
                                result.score)]
            context = Context(patient, reading, state, self.settings)
            for name, scorer in self.scorers:
                try:
                    findings += scorer(context)
                except Exception:   # a broken model must not cost the reading or NEWS2
                    log.exception("monitor scorer %s failed on patient %s", name,
                                  reading.patient_id)
            for finding in findings:
                if finding.result:
                    state.results[finding.kind] = {**finding.result, "time": reading.time}
            events.append({"type": "reading", "patient_id": reading.patient_id,
                           "time": reading.time, "values": reading.values,
                           "news2": state.news2, "results": dict(state.results)})
            for finding in findings:
                self._decide(finding, reading, state, now, opened, updated)
        for alert in opened.values():
            events.append({"type": "alert", "update": False, "alert": alert})
        for alert in updated.values():
            events.append({"type": "alert", "update": True, "alert": alert})
        return list(opened.values()), list(updated.values()), events

    def _decide(self, finding: Finding, reading: Reading, state: PatientState, now: float,
                opened: dict[tuple[str, str], Alert], updated: dict[tuple[str, str], Alert]
                ) -> None:
        """Open, raise or suppress the alert of a finding (see the module doc)."""
        rank = SEVERITY_RANK[finding.severity]
        if not rank:
            return
        key = (reading.patient_id, finding.kind)
        current = opened.get(key) or updated.get(key) or self._open.get(key)
        if current is not None and current.acked is None:
            if rank > SEVERITY_RANK[current.severity]:
                raised = copy.copy(current)
                raised.severity, raised.score = finding.severity, finding.score
                raised.reason, raised.reading_time = finding.reason, reading.time
                (opened if key in opened else updated)[key] = raised  # new in this batch: new
            return
        until, held = state.holds.get(finding.kind, (0.0, 0))
        if state.latest < until and rank <= held:
            return
        opened[key] = Alert(0, reading.patient_id, finding.kind, finding.severity, finding.score,
                            finding.reason, reading.time, now, 0, now)

    # acknowledgement and escalation
    def acknowledge(self, alert_id: int, by: str) -> Alert | None:
        """Acknowledge an open alert; alerts of its severity or lower then wait `hold`."""
        with self._lock:
            alert = self.store.acknowledge(alert_id, by, self.clock())
            if alert is None:
                return None
            key = (alert.patient_id, alert.kind)
            if self._open.get(key, alert).id == alert.id:
                self._open.pop(key, None)
            state = self._states.get(alert.patient_id)
            if state is not None:
                state.holds[alert.kind] = (state.latest + self.settings.hold_s,
                                           SEVERITY_RANK[alert.severity])
        self._emit({"type": "ack", **alert.to_dict(), "level_name": self.level_name(alert)})
        return alert

    def level_name(self, alert: Alert) -> str:
        levels = self.settings.levels
        return levels[min(alert.level, len(levels) - 1)].name

    def escalate_due(self) -> list[Alert]:
        """Move every open alert whose next level's time has come to that level."""
        now = self.clock()
        moved: list[Alert] = []
        with self._lock:
            for alert in list(self._open.values()):
                nxt = alert.level + 1
                if (alert.acked is None and nxt < len(self.settings.levels)
                        and now - alert.opened >= self.settings.levels[nxt].after_s):
                    raised = copy.copy(alert)
                    raised.level, raised.escalated = nxt, now
                    if self.store.escalate(raised):
                        self._open[(alert.patient_id, alert.kind)] = raised
                        moved.append(raised)
        for alert in moved:
            self._emit({"type": "escalation", **alert.to_dict(),
                        "level_name": self.level_name(alert)})
        return moved

    def trend(self, patient_id: str, since: float) -> list[dict[str, Any]]:
        """The patient's readings from `since` (record time), each with the NEWS2 of the
        observations current at its time (values up to stale_after earlier count)."""
        with self._lock:
            patient = self._patients.get(patient_id)
        scale = patient.spo2_scale if patient else 1
        state, out = PatientState(), []
        for row in self.store.recent_readings(since - self.settings.stale_after_s, [patient_id]):
            values = {k: row[k] for k in row if k in _STORED_VITALS}
            self._remember(state, row["time"], values)
            if row["time"] >= since:
                result = news2(self.current(state, row["time"], row["spo2_scale"] or scale))
                out.append({"time": row["time"], "device": row["device"], "values": values,
                            "news2": result.score, "complete": result.complete,
                            "risk": result.risk})
        return out

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return sorted(self._open.values(), key=lambda a: a.id)

    def ward(self) -> list[dict[str, Any]]:
        """Each admitted patient's latest values, NEWS2, model results and open alerts (the
        ward view); ``alert`` is the most severe open one."""
        with self._lock:
            by_patient: dict[str, list[Alert]] = {}
            for (pid, _), alert in self._open.items():
                by_patient.setdefault(pid, []).append(alert)
            out = []
            for pid, patient in sorted(self._patients.items()):
                state = self._states.get(pid, PatientState())
                alerts = sorted(by_patient.get(pid, []),
                                key=lambda a: (-SEVERITY_RANK[a.severity], a.id))
                shown = [{**a.to_dict(), "level_name": self.level_name(a)} for a in alerts]
                out.append({"patient_id": pid, "ward": patient.ward,
                            "values": {k: v for k, (_, v) in state.values.items()},
                            "latest": state.latest or None, "news2": state.news2,
                            "results": dict(state.results),
                            "alert": shown[0] if shown else None, "alerts": shown})
            return out

    def _emit(self, event: dict[str, Any]) -> None:
        if "alert" in event and isinstance(event["alert"], Alert):
            alert = event.pop("alert")
            event.update(alert.to_dict())
            event["level_name"] = self.level_name(alert)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a listener's failure must not lose the reading's answer
                log.exception("monitor listener failed on a %s event", event.get("type"))


_STORED_VITALS = frozenset({"respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse",
                            "consciousness", "temperature"})
