"""The dashboard's monitoring pages (docs/monitoring.md) for clinicians and admins: the ward
(each visible patient's latest vitals, NEWS2 and open alerts, kept live by static/monitor.js
over the events WebSocket), a patient's trend over record time with the latest ECG strips and
their rhythm results, and acknowledging an alert from a form with the same care-team check as
the API."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from iatros.access.store import Principal
from iatros.monitoring.engine import SEVERITY_RANK, Monitor
from iatros.serve.dashboard import PageProblem, _render, page
from iatros.serve.monitor import CARERS, MAX_ID, visible
from iatros.serve.monitor_charts import ECG_STRIPS, EcgStrip, charts, ecg_strip, utc
from iatros.serve.problems import Problem
from iatros.serve.security import audit_context, require_patient

WARD = "/monitor"
CARER = page(*CARERS)   # module level: the routes' string annotations are resolved here


def _patient_path(patient_id: str) -> str:
    return f"{WARD}/patients/{patient_id}"


def _alert_view(monitor: Monitor, alert: dict[str, Any], level_name: str | None) -> dict[str, Any]:
    """An alert as the pages show it: with its level's name and its times as UTC text."""
    levels = monitor.settings.levels
    name = level_name or levels[min(alert["level"], len(levels) - 1)].name
    return {**alert, "level_name": name, "opened_at": utc(alert["opened"]),
            "acked_at": utc(alert["acked"]), "reading_at": utc(alert["reading_time"])}


def _rows(request: Request, user: Principal) -> list[dict[str, Any]]:
    """The ward's rows the user may see, the most urgent first (open alert, then NEWS2); each
    with every open alert (NEWS2, rhythm, models), the most severe first."""
    monitor: Monitor = request.app.state.monitor
    may = visible(request, user)
    names = {a.id: monitor.level_name(a) for a in monitor.open_alerts()}
    patients = monitor.patients()
    stale = time.time() - monitor.settings.stale_after_s
    rows = []
    for p in monitor.ward():
        if not may(p["patient_id"]):
            continue
        alert = p["alert"]
        patient = patients.get(p["patient_id"])
        rows.append({**p, "latest_at": utc(p["latest"]),
                     "stale": p["latest"] is not None and p["latest"] < stale,
                     "spo2_scale": patient.spo2_scale if patient else 1,
                     "alert": _alert_view(monitor, alert, names.get(alert["id"])) if alert else None,
                     "alerts": [_alert_view(monitor, a, names.get(a["id"]))
                                for a in p.get("alerts", [])]})
    rows.sort(key=lambda r: (-SEVERITY_RANK[r["alert"]["severity"]] if r["alert"] else 0,
                             -(r["news2"]["score"] if r["news2"] else -1), r["patient_id"]))
    return rows


def _acked_notice(request: Request, user: Principal, alert_id: int | None) -> str | None:
    """'Alert N ... acknowledged by X at T' after a redirect from the acknowledge form."""
    if alert_id is None:
        return None
    alert = request.app.state.monitor.store.alert(alert_id)
    if alert is None or alert.acked is None or not visible(request, user)(alert.patient_id):
        return None
    return (f"Alert {alert.id} ({alert.severity}, patient {alert.patient_id}) acknowledged by "
            f"{alert.acked_by} at {utc(alert.acked)} UTC.")


def _strips(monitor: Monitor, row: dict[str, Any], since: float,
            alerts: list[dict[str, Any]]) -> list[EcgStrip]:
    """The patient's latest ECG segments since `since`, newest first, each with the rhythm
    result if it is the one the monitor holds (the latest scored) and the alerts it raised."""
    rhythm = (row.get("results") or {}).get("rhythm")
    out = []
    for stored in monitor.store.segments(row["patient_id"], since, limit=ECG_STRIPS):
        mine = rhythm if rhythm and rhythm.get("segment_time") == stored.time else None
        raised = [a for a in alerts if a["kind"] == "rhythm" and a["reading_time"] == stored.time]
        out.append(ecg_strip(stored, mine, raised))
    return out


def _ward_page(request: Request, user: Principal, status: int = 200,
               **extra: Any) -> HTMLResponse:
    return _render(request, "monitor_ward.html", user, status=status,
                   rows=_rows(request, user), **extra)


def _patient_page(request: Request, user: Principal, patient_id: str, hours: float = 24.0,
                  status: int = 200, **extra: Any) -> HTMLResponse:
    """A patient's current values, trend charts, readings and alerts (404 if not admitted)."""
    monitor: Monitor = request.app.state.monitor
    current = next((r for r in _rows(request, user) if r["patient_id"] == patient_id), None)
    if current is None:
        raise PageProblem(404, f"patient {patient_id} is not admitted to monitoring")
    end = current["latest"] or time.time()
    start = end - hours * 3600.0
    readings = monitor.trend(patient_id, start)
    for r in readings:
        r["at"] = utc(r["time"])
    alerts = [_alert_view(monitor, a.to_dict(), monitor.level_name(a))
              for a in monitor.store.alerts(patient_id=patient_id)]
    return _render(request, "monitor_patient.html", user, status=status, row=current,
                   hours=hours, start_at=utc(start), end_at=utc(end), readings=readings[::-1],
                   charts=charts(readings, start, end, current["spo2_scale"]), alerts=alerts,
                   strips=_strips(monitor, current, start, alerts), **extra)


def mount(app: FastAPI) -> None:
    """Add the monitoring pages to `app` (called by dashboard.mount)."""
    @app.get(WARD, response_class=HTMLResponse, include_in_schema=False)
    def ward_page(request: Request, user: Annotated[Principal, Depends(CARER)],
                  acked: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Any:
        audit_context(request).action = "view ward (dashboard)"
        return _ward_page(request, user, notice=_acked_notice(request, user, acked))

    @app.get(WARD + "/patients/{patient_id}", response_class=HTMLResponse,
             include_in_schema=False)
    def patient_page(request: Request, patient_id: str,
                     user: Annotated[Principal, Depends(CARER)],
                     hours: Annotated[float, Query(gt=0, le=168)] = 24.0,
                     acked: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Any:
        audit_context(request).action = "view monitored patient (dashboard)"
        try:
            require_patient(request, user, patient_id)
        except Problem as e:
            raise PageProblem(e.status, e.detail) from None
        return _patient_page(request, user, patient_id, hours,
                             notice=_acked_notice(request, user, acked))

    @app.post(WARD + "/alerts/{alert_id}/ack", include_in_schema=False)
    def acknowledge(request: Request, alert_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                    user: Annotated[Principal, Depends(CARER)],
                    back: Annotated[str, Form(max_length=300)] = WARD) -> Any:
        """The API's acknowledgement (same care-team check), then back to the page it came
        from (the ward or the alert's patient; nowhere else)."""
        monitor: Monitor = request.app.state.monitor
        found = monitor.store.alert(alert_id)
        if found is None:
            raise PageProblem(404, f"no alert {alert_id}")
        ctx = audit_context(request)
        ctx.action = "acknowledge alert (dashboard)"
        try:
            require_patient(request, user, found.patient_id)
        except Problem as e:
            raise PageProblem(e.status, e.detail) from None
        ctx.detail = f"alert {alert_id} ({found.severity})"
        to_patient = back == _patient_path(found.patient_id)
        if monitor.acknowledge(alert_id, user.name) is None:
            done = monitor.store.alert(alert_id) or found
            error = (f"Alert {alert_id} was already acknowledged by {done.acked_by} at "
                     f"{utc(done.acked)} UTC.")
            ctx.detail += " already acknowledged"
            if to_patient:
                return _patient_page(request, user, found.patient_id, status=409, error=error)
            return _ward_page(request, user, status=409, error=error)
        target = _patient_path(found.patient_id) if to_patient else WARD
        return RedirectResponse(f"{target}?acked={alert_id}", status_code=303)
