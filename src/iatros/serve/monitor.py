"""The monitoring API (`/api/v1/monitor`, docs/monitoring.md): devices send readings (HTTP
batches or a WebSocket stream, device API keys); hospital systems admit and discharge patients;
clinicians see their care teams' ward, patients and alerts, acknowledge alerts and receive them
live over a WebSocket. A reading is acknowledged only after the monitor committed it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import (
    APIRouter,
    Depends,
    Path,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
)
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from iatros.access.store import AccessError, Principal
from iatros.errors import ConfigError
from iatros.monitoring.engine import MAX_BATCH, Monitor, MonitorSettings
from iatros.monitoring.readings import PATIENT_ID
from iatros.monitoring.store import MonitorStore
from iatros.serve.problems import ERROR_RESPONSES, Problem
from iatros.serve.security import (
    allow,
    audit_context,
    require_patient,
)

log = logging.getLogger("iatros")
router = APIRouter(prefix="/api/v1/monitor", responses=ERROR_RESPONSES, tags=["monitor"])
DEVICES = ("device",)
ADMITTERS = ("system", "admin")
CARERS = ("clinician", "admin")
MAX_ID = 2**63 - 1     # the largest row id the databases store
QUEUE = 1000          # events kept per WebSocket client before it is told it lagged
READING_EVENTS_S = 1.0  # a client gets a patient's latest reading at most this often


class Admission(BaseModel):
    patient_id: str = Field(pattern=PATIENT_ID.pattern, description="the patient's id")
    ward: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9 ._-]+$",
                      description="the ward; its care team sees the patient")
    spo2_scale: int = Field(1, ge=1, le=2, description="2 only for a prescribed 88-92% target")


def monitor_of(request: Request | WebSocket) -> Monitor:
    return request.app.state.monitor


def _message(body: bytes | str) -> tuple[Any, list[Any]]:
    """The batch id and readings of a request body or stream message, or a 422 problem (then
    nothing is stored)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Problem(422, f"the body is not JSON: {str(e)[:120]}", field="body") from None
    readings = data.get("readings") if isinstance(data, dict) else None
    if not isinstance(readings, list):
        raise Problem(422, 'the body must be {"readings": [...]}', field="readings")
    if len(readings) > MAX_BATCH:
        raise Problem(413, f"at most {MAX_BATCH} readings per batch, not {len(readings)}",
                      field="readings")
    return data.get("batch"), readings


@router.post("/readings", response_model=dict[str, Any])
async def post_readings(request: Request,
                        device: Annotated[Principal, Depends(allow(*DEVICES))]) -> Any:
    """Store a batch of readings; each is stored, a duplicate, or rejected with its reason."""
    _, readings = _message(await request.body())
    ctx = audit_context(request)
    ctx.action = "store readings"
    result = await run_in_threadpool(monitor_of(request).ingest, device.name, readings)
    ctx.detail = (f"{len(result.stored)} stored, {len(result.duplicates)} duplicates, "
                  f"{len(result.rejected)} rejected")
    return result.to_dict()


def allow_socket(*roles: str) -> Callable[[WebSocket], Principal]:
    """`allow` for WebSockets: the caller's token, key or session cookie, with one of `roles`."""

    check = allow(*roles)

    def dependency(websocket: WebSocket) -> Principal:
        origin = websocket.headers.get("origin")
        if origin and urlparse(origin).netloc != websocket.headers.get("host"):
            raise WebSocketException(1008, "this WebSocket was opened from another site")
        try:
            return check(websocket)  # type: ignore[arg-type]
        except Problem as e:    # a socket is closed with a policy code, not answered
            raise WebSocketException(1008, e.detail[:120]) from None

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


def _audit(websocket: WebSocket, principal: Principal, action: str, detail: str = "") -> None:
    websocket.app.state.audit.submit(actor=principal.name, role=principal.role, action=action,
                                     target="monitor", detail=detail)


_devices = allow_socket(*DEVICES)
_carers = allow_socket(*CARERS)


@router.websocket("/stream")
async def stream(websocket: WebSocket,
                 principal: Annotated[Principal, Depends(_devices)]) -> None:
    """A device's stream: each message {"batch": ID, "readings": [...]} is answered, after
    its commit, with {"batch": ID, ...the HTTP answer...}; a bad message gets an error."""
    await websocket.accept()
    _audit(websocket, principal, "readings stream opened")
    monitor, batches = monitor_of(websocket), 0
    try:
        while True:
            text = await websocket.receive_text()
            try:
                batch, readings = _message(text)
            except Problem as e:
                await websocket.send_json({"batch": None, "error": e.detail})
                continue
            result = await run_in_threadpool(monitor.ingest, principal.name, readings)
            batches += 1
            await websocket.send_json({"batch": batch, **result.to_dict()})
    except WebSocketDisconnect:
        pass
    finally:
        _audit(websocket, principal, "readings stream closed", f"{batches} batches")


@router.post("/patients", response_model=dict[str, Any], status_code=201)
def admit(request: Request, body: Admission,
          _: Annotated[Principal, Depends(allow(*ADMITTERS))]) -> Any:
    """Admit a patient to monitoring on a ward (its care team may then see the patient)."""
    ctx = audit_context(request)
    ctx.action, ctx.target = "admit to monitoring", f"patient:{body.patient_id}"
    try:
        patient = monitor_of(request).admit(body.patient_id, body.ward, body.spo2_scale)
    except ValueError as e:
        raise Problem(409, str(e), field="patient_id") from None
    request.app.state.store.assign(body.ward, [body.patient_id])
    return {"patient_id": patient.patient_id, "ward": patient.ward,
            "spo2_scale": patient.spo2_scale}


@router.post("/patients/{patient_id}/discharge", response_model=dict[str, Any])
def discharge(request: Request, patient_id: str,
              _: Annotated[Principal, Depends(allow(*ADMITTERS))]) -> Any:
    """Stop monitoring a patient (readings already stored stay)."""
    ctx = audit_context(request)
    ctx.action, ctx.target = "discharge from monitoring", f"patient:{patient_id}"[:200]
    if not monitor_of(request).discharge(patient_id):
        raise Problem(404, f"patient {patient_id} is not admitted to monitoring",
                      field="patient_id")
    return {"patient_id": patient_id, "discharged": True}


def visible(request: Request | WebSocket, principal: Principal) -> Callable[[str], bool]:
    """Whether the caller may see a patient (admins: all; clinicians: their care teams)."""
    store, seen = request.app.state.store, {}

    def check(patient_id: str) -> bool:
        if patient_id not in seen:
            seen[patient_id] = principal.role == "admin" or store.may_see(principal, patient_id)
        return seen[patient_id]
    return check


@router.get("/ward", response_model=list[dict[str, Any]])
def ward(request: Request, principal: Annotated[Principal, Depends(allow(*CARERS))]) -> Any:
    """Each patient of your care teams: latest vitals, NEWS2, open alert."""
    audit_context(request).action = "view ward"
    may = visible(request, principal)
    return [p for p in monitor_of(request).ward() if may(p["patient_id"])]


@router.get("/patients/{patient_id}", response_model=dict[str, Any])
def patient(request: Request, patient_id: str,
            principal: Annotated[Principal, Depends(allow(*CARERS))],
            hours: Annotated[float, Query(gt=0, le=168)] = 24.0) -> Any:
    """A patient's readings of the last `hours` (record time) with NEWS2, and their alerts."""
    audit_context(request).action = "view monitored patient"
    require_patient(request, principal, patient_id)
    monitor = monitor_of(request)
    current = next((p for p in monitor.ward() if p["patient_id"] == patient_id), None)
    if current is None:
        raise Problem(404, f"patient {patient_id} is not admitted to monitoring",
                      field="patient_id")
    since = (current["latest"] or 0.0) - hours * 3600.0
    return {**current, "readings": monitor.trend(patient_id, since),
            "alerts": [a.to_dict() for a in monitor.store.alerts(patient_id=patient_id)]}


@router.get("/patients/{patient_id}/segments", response_model=list[dict[str, Any]])
def segments(request: Request, patient_id: str,
             principal: Annotated[Principal, Depends(allow(*CARERS))],
             hours: Annotated[float, Query(gt=0, le=168)] = 24.0,
             limit: Annotated[int, Query(ge=1, le=20)] = 5) -> Any:
    """A patient's latest ECG segments (newest first) of the last `hours` of record time."""
    audit_context(request).action = "view ECG segments"
    require_patient(request, principal, patient_id)
    monitor = monitor_of(request)
    latest = next((p["latest"] for p in monitor.ward() if p["patient_id"] == patient_id), None)
    since = (latest or 0.0) - hours * 3600.0
    return [{"device": s.device, "seq": s.seq, "time": s.time, "fs": s.segment.fs,
             "lead": s.segment.lead, "n_samples": len(s.segment.samples),
             "samples": s.segment.samples.tolist()}
            for s in monitor.store.segments(patient_id, since, limit)]


@router.get("/alerts", response_model=list[dict[str, Any]])
def alerts(request: Request, principal: Annotated[Principal, Depends(allow(*CARERS))],
           open_only: Annotated[bool, Query(alias="open")] = True) -> Any:
    """Alerts of your care teams' patients (open ones by default), newest first."""
    audit_context(request).action = "view alerts"
    may = visible(request, principal)
    monitor = monitor_of(request)
    return [{**a.to_dict(), "level_name": monitor.level_name(a)}
            for a in monitor.store.alerts(open_only=open_only) if may(a.patient_id)]


@router.post("/alerts/{alert_id}/ack", response_model=dict[str, Any])
def acknowledge(request: Request, alert_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                principal: Annotated[Principal, Depends(allow(*CARERS))]) -> Any:
    """Acknowledge an open alert of a patient of your care teams."""
    monitor = monitor_of(request)
    found = monitor.store.alert(alert_id)
    if found is None:
        raise Problem(404, f"no alert {alert_id}", field="alert_id")
    ctx = audit_context(request)
    ctx.action = "acknowledge alert"
    require_patient(request, principal, found.patient_id)
    ctx.detail = f"alert {alert_id} ({found.severity})"
    alert = monitor.acknowledge(alert_id, principal.name)
    if alert is None:
        raise Problem(409, f"alert {alert_id} was already acknowledged by {found.acked_by}",
                      field="alert_id")
    return alert.to_dict()


@router.websocket("/events")
async def events(websocket: WebSocket,
                 principal: Annotated[Principal, Depends(_carers)]) -> None:
    """Alerts, escalations and acknowledgements of your care teams' patients as they happen,
    and each patient's latest reading (at most once a second per patient)."""
    await websocket.accept()
    hub: EventHub = websocket.app.state.monitor_events
    queue = hub.subscribe(visible(websocket, principal))
    try:
        receiver = asyncio.ensure_future(websocket.receive_text())
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                receiver.result()   # raises WebSocketDisconnect when the client left
                receiver = asyncio.ensure_future(websocket.receive_text())
                continue
            await websocket.send_json(getter.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(queue)


class EventHub:
    """Fans the monitor's events out to WebSocket clients (each its own bounded queue, filled
    from the monitor's thread through the event loop); reading events are coalesced per
    patient and flushed every READING_EVENTS_S."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[asyncio.Queue, Callable[[str], bool]] = {}
        self._readings: dict[str, dict[str, Any]] = {}

    def subscribe(self, may_see: Callable[[str], bool]) -> asyncio.Queue:
        self.loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        self._clients[queue] = may_see
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._clients.pop(queue, None)

    def publish(self, event: dict[str, Any]) -> None:
        """Called by the monitor (any thread)."""
        if self.loop is None or not self._clients:
            return
        if event.get("type") == "reading":
            self._readings[event["patient_id"]] = event
            return
        self.loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue, may_see in list(self._clients.items()):
            try:
                if may_see(event["patient_id"]):
                    queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("a monitor events client is %d events behind; dropping one",
                            QUEUE)
            except AccessError:
                continue

    async def flush_readings(self) -> None:
        """Send the latest reading of each patient that had one since the last flush."""
        while True:
            await asyncio.sleep(READING_EVENTS_S)
            pending, self._readings = self._readings, {}
            for event in pending.values():
                self._deliver(event)


def start_monitor(app: Any, engine: Any, settings: MonitorSettings,
                  webhooks: Any | None = None,
                  deterioration: dict[str, Any] | None = None,
                  rhythm: dict[str, Any] | None = None) -> Monitor:
    """The monitor on the service's database, its events to WebSocket clients, the audit log
    (alerts, escalations, acknowledgements), the webhooks, the deterioration model and the
    rhythm model on ECG segments."""
    # patient ids stored as the access store stores them: keyed tokens with a master key
    monitor = Monitor(MonitorStore(engine, ids=app.state.store.patients), settings)
    if rhythm:
        from iatros.api.monitor_rhythm import rhythm_config

        scorer = rhythm_config(rhythm, "monitor config")
        monitor.scorers.append((scorer.name, scorer))
        monitor.checks.append(scorer.check)
    if deterioration:
        from iatros.api.monitor_model import deterioration_scorer

        options = dict(deterioration)
        run = options.pop("run", None)
        if run is None:
            name = options.pop("model")
            try:
                run = app.state.catalog.get(name).path
            except Problem as e:
                raise ConfigError(f"monitor config: deterioration model: {e.detail}") from None
        monitor.scorers.append(deterioration_scorer(run, **options))
    hub = EventHub()
    audit = app.state.audit

    def to_audit(event: dict[str, Any]) -> None:
        if event["type"] in AUDITED:
            audit.submit(actor="monitor", role="system", action=AUDITED[event["type"]],
                         target=f"patient:{event['patient_id']}",
                         detail=f"alert {event['id']} {event['severity']} NEWS2 {event['score']} "
                                f"level {event.get('level_name', '')}"[:2000])

    monitor.listeners += [hub.publish, to_audit]
    if webhooks is not None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the URLs
        monitor.listeners.append(lambda e: webhooks.send({**e, "level": e["level_name"]})
                                 if e["type"] != "reading" else None)
    app.state.monitor, app.state.monitor_events = monitor, hub
    return monitor


async def run_monitor_tasks(app: Any, every_s: float = 1.0) -> None:
    """Escalate unacknowledged alerts and flush reading events while the service runs."""
    flusher = asyncio.ensure_future(app.state.monitor_events.flush_readings())
    try:
        while True:
            await asyncio.sleep(every_s)
            try:
                await run_in_threadpool(app.state.monitor.escalate_due)
            except Exception:
                log.exception("escalating monitor alerts failed; retrying in %.0f s", every_s)
    finally:
        flusher.cancel()


def audit_delivery(audit: Any) -> Callable[[Any], None]:
    """A webhook delivery's final outcome as an audit entry (no URL, no secret)."""

    def record(result: Any) -> None:
        audit.submit(actor="monitor", role="system", action=f"webhook {result.outcome}",
                     target=f"webhook:{result.webhook}", outcome="ok" if result.outcome ==
                     "delivered" else "error", status=result.status or 0,
                     detail=f"{result.event_type} level {result.level}, {result.tries} tries "
                            f"{result.reason}"[:2000])
    return record


AUDITED = {"alert": "monitor alert", "escalation": "monitor alert escalated"}
