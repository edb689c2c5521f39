"""The dashboard end to end in a real browser (Playwright driving Debian's chromium) against
the service on a local port: log in, upload a DICOM and see the heat map, read a note with a
negated finding struck through, a researcher sees the admin page refused, and a clinician sees
a deteriorating patient's alert arrive live on the ward monitor and acknowledges it.

Set IATROS_SCREENSHOTS=FOLDER to keep screenshots of each page (the README's come from here)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright", reason="playwright (iatros[dev]) is not installed")
from tests.serve.conftest import PASSWORD, make_app, promote  # noqa: E402

CHROMIUM = os.environ.get("IATROS_CHROMIUM", "/usr/bin/chromium")
WIDTHS = {"desktop": 1280, "tablet": 820}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_chromium() -> None:
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")


def _app_with_users() -> Any:
    app = make_app()
    store = app.state.store
    store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    store.add_user("remy", PASSWORD, "researcher")
    store.add_user("ada", PASSWORD, "admin")
    return app


@contextmanager
def _running(app: Any, port: int | None = None) -> Iterator[str]:
    """The app served by uvicorn (lifespan included) on a local port: its base URL."""
    import uvicorn

    port = port or _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(image_run, tabular_run, fhir_run):
    _need_chromium()
    promote(image_run, "breast-ultrasound")
    promote(tabular_run, "wdbc")
    promote(fhir_run[0], "readmission")
    app = _app_with_users()
    with _running(app) as base:
        yield base, app


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as e:  # a browser that cannot start on this machine
            pytest.skip(f"chromium at {CHROMIUM} did not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def _shot(page, name: str) -> None:
    folder = os.environ.get("IATROS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _login(page, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_clinician_uploads_a_dicom_and_sees_the_heat_map(server, browser, tmp_path):
    from pydicom.data import get_testdata_file

    base, app = server
    dicom = get_testdata_file("CT_small.dcm")
    if dicom is None:
        pytest.skip("pydicom's CT_small.dcm is not available offline")
    page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900})
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    _shot(page, "login")
    _login(page, base, "clara")
    assert page.locator("a.card.model").count() == 3
    _shot(page, "models")
    page.click("text=breast-ultrasound")
    assert page.locator("h2", has_text="Test metrics").is_visible()
    page.set_input_files("input[name=files]", dicom)
    page.click("text=Predict and explain")
    heatmap = page.locator("img.heatmap")
    heatmap.wait_for()
    assert heatmap.get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator(".prediction strong").inner_text() in ("benign or normal", "malignant")
    _shot(page, "predict-image")
    actions = [e.action for e in app.state.audit.entries()]
    assert "explain (dashboard)" in actions and "login (dashboard)" in actions


def test_note_page_strikes_through_negated_findings(server, browser):
    base, _ = server
    page = browser.new_page(viewport={"width": WIDTHS["tablet"], "height": 1000})
    _login(page, base, "clara")
    page.goto(f"{base}/notes")
    page.fill("textarea[name=text]", "Patient reports chest pain. Denies fever. Started on metoprolol.")
    # the first note loads the extraction pipeline and its terminology index: on a busy 2-core
    # machine that alone can outlast Playwright's 30 s default
    page.click("text=Find entities", timeout=180_000)
    negated = page.locator("div.note mark.negated")
    negated.first.wait_for(timeout=180_000)
    assert "fever" in negated.first.inner_text().lower()
    style = negated.first.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert "line-through" in style
    _shot(page, "notes-tablet")


def test_researcher_sees_the_admin_page_refused(server, browser):
    base, _ = server
    page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 800})
    _login(page, base, "remy")
    response = page.goto(f"{base}/admin/users")
    assert response.status == 403
    assert page.locator("h1", has_text="Not allowed").is_visible()
    assert "researcher" in page.locator("p.error").inner_text()
    _shot(page, "denied-researcher")


def test_admin_sees_the_audit_log_with_an_intact_chain(server, browser):
    base, _ = server
    page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900})
    _login(page, base, "ada")
    page.goto(f"{base}/admin/audit")
    assert "Hash chain intact" in page.locator("#chain").inner_text()
    assert page.locator("table.audit tbody tr").count() >= 2
    _shot(page, "audit-log")
    page.goto(f"{base}/admin/users")
    assert page.locator("td", has_text="clara").is_visible()
    _shot(page, "users")


def test_clinician_uploads_a_fhir_bundle_and_sees_the_risk(server, browser, fhir_run):
    import json

    base, app = server
    bundle = fhir_run[1][0]
    patient = next(e["resource"]["id"] for e in json.loads(bundle.read_text())["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    app.state.store.assign("icu-a", [patient])
    page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900})
    _login(page, base, "clara")
    page.click("text=Patient risk")
    page.set_input_files("input[name=bundle]", str(bundle))
    page.click("text=Assess risk")
    risk = page.locator("#risk h2")
    risk.wait_for()
    assert "readmit_30d" in risk.inner_text() and "%" in risk.inner_text()
    assert f"Patient/{patient}" in page.locator("#risk p.muted").inner_text()
    _shot(page, "patient-risk")


@pytest.fixture
def monitor_app():
    """The service with no models, p1 and p3 admitted (through the API) to clara's ward and p2
    to another; the app and the headers of a device key."""
    from fastapi.testclient import TestClient

    _need_chromium()
    app = _app_with_users()
    _, device = app.state.store.create_key("bed-7", "device")
    _, system = app.state.store.create_key("adt", "system")
    client = TestClient(app)
    for pid, ward in (("p1", "icu-a"), ("p2", "ward-b"), ("p3", "icu-a")):
        r = client.post("/api/v1/monitor/patients", headers={"X-API-Key": system},
                        json={"patient_id": pid, "ward": ward})
        assert r.status_code == 201, r.text
    return app, {"X-API-Key": device}


@pytest.fixture
def monitor_server(monitor_app):
    app, device = monitor_app
    with _running(app) as base:
        yield base, app, device


def _open_ward(browser: Any, base: str) -> Any:
    page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900})
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    _login(page, base, "clara")
    page.click("nav >> text=Monitor")
    page.wait_for_url(f"{base}/monitor")
    page.locator("#live").filter(has_text="live").wait_for(timeout=5000)
    return page


def test_a_deteriorating_patients_alert_arrives_live_and_is_acknowledged(monitor_server, browser):
    import httpx

    base, app, device = monitor_server
    seq = iter(range(1, 1000))

    def send(patient: str, ago_s: float, **vitals: Any) -> dict[str, Any]:
        normal = {"pulse": 78, "respiration_rate": 15, "spo2": 97, "on_oxygen": False,
                  "systolic_bp": 124, "temperature": 36.9, "consciousness": "A"}
        r = httpx.post(f"{base}/api/v1/monitor/readings", headers=device, json={"readings": [
            {"patient_id": patient, "seq": next(seq), "time": time.time() - ago_s,
             **normal, **vitals}]})
        assert r.status_code == 200 and r.json()["stored"], r.text
        return r.json()

    page = _open_ward(browser, base)
    live = page.locator("#live")
    assert page.locator("tr[data-patient]").evaluate_all("rows => rows.map(r => r.dataset.patient)") \
        == ["p1", "p3"]
    page.evaluate("window.sameDocument = true")
    row = page.locator('#ward-rows tr[data-patient="p1"]')

    send("p1", 1800)                                          # well: NEWS2 0, no alert
    row.locator('[data-field="news2"].risk-low').filter(has_text="0").wait_for(timeout=5000)
    assert row.locator('[data-field="pulse"]').inner_text() == "78"
    send("p1", 900, pulse=112, respiration_rate=22)           # worse, still no alert
    row.locator('[data-field="news2"]').filter(has_text="4").wait_for(timeout=5000)
    opened = send("p1", 60, pulse=138, respiration_rate=28, spo2=89, systolic_bp=86,
                  consciousness="C")["alerts"]
    assert len(opened) == 1 and opened[0]["severity"] == "high"
    send("p2", 60, pulse=138, respiration_rate=28)            # another team's: never shown

    alert = row.locator('[data-field="alert"] .alert.sev-high')
    alert.wait_for(timeout=5000)
    assert "HIGH" in alert.locator(".sev").inner_text().upper()
    assert "ward-nurse" in alert.inner_text() and "respiration rate 28 (3)" in alert.inner_text()
    banner = page.locator("#new-alerts")
    assert banner.is_visible() and "patient p1" in banner.inner_text()
    assert page.title().startswith("(1) ")
    row.locator('[data-field="news2"].risk-high').wait_for(timeout=5000)
    assert "p2" not in page.locator("main").inner_text()
    assert page.evaluate("window.sameDocument === true")      # all of it without a reload
    _shot(page, "monitor-ward-alert")

    app.state.monitor.ingest("bed-8", [{"patient_id": "p3", "seq": 1, "time": time.time() - 30,
                                        "pulse": 139, "respiration_rate": 29}])
    other = page.locator('#ward-rows tr[data-patient="p3"] [data-field="alert"]')
    other.locator(".alert.sev-medium").wait_for(timeout=5000)
    p3_alert = app.state.monitor.open_alerts()[-1]
    app.state.monitor.acknowledge(p3_alert.id, "ada")         # acknowledged elsewhere: live too
    other.locator(".acked", has_text="acknowledged by ada").wait_for(timeout=5000)

    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(f"{base}/monitor?acked={opened[0]['id']}")
    assert "acknowledged by clara" in page.locator("#notice").inner_text()
    assert row.locator(".alert").count() == 0 and banner.is_hidden()
    assert app.state.monitor.store.alert(opened[0]["id"]).acked_by == "clara"
    live.filter(has_text="live").wait_for(timeout=5000)

    page.click('a[href="/monitor/patients/p1"]')
    page.locator("#chart-news2 circle").first.wait_for()
    assert page.locator("#chart-news2 circle").count() == 3
    assert "acknowledged by clara" in page.locator("#alerts").inner_text()
    _shot(page, "monitor-patient")
    assert not [p for p in page.problems if "Content Security Policy" in p or "WebSocket" in p], \
        page.problems


def test_the_ward_says_when_it_is_disconnected_and_catches_up_when_back(monitor_app, browser):
    app, _ = monitor_app
    port = _free_port()
    with _running(app, port) as base:
        page = _open_ward(browser, base)
    live = page.locator("#live")
    live.filter(has_text="disconnected").wait_for(timeout=5000)
    assert "retrying" in live.inner_text() and "off" in live.get_attribute("class")
    # while the page has no socket: a deteriorating reading opens an alert, p3 is discharged
    app.state.monitor.ingest("bed-9", [{"patient_id": "p1", "seq": 1, "time": time.time() - 20,
                                        "pulse": 139, "respiration_rate": 29, "spo2": 90}])
    app.state.monitor.discharge("p3")
    with _running(app, port):
        live.filter(has_text="live").wait_for(timeout=10000)
        row = page.locator('#ward-rows tr[data-patient="p1"]')
        row.locator('[data-field="alert"] .alert.sev-high').wait_for(timeout=5000)
        assert row.locator('[data-field="pulse"]').inner_text() == "139"
        assert "patient p1" in page.locator("#new-alerts").inner_text()
        page.locator('tr[data-patient="p3"]').wait_for(state="detached", timeout=5000)


def test_replayed_physionet_stays_alert_live_escalate_and_are_acknowledged(browser, shared_data):
    """`iatros monitor replay`'s code streams real PhysioNet 2012 stays that ended in death into
    the running service: their alerts appear on clara's ward live, escalate when nobody answers,
    and are acknowledged from the page."""
    from iatros.monitoring.config import MonitorConfig
    from iatros.monitoring.engine import Level, MonitorSettings
    from iatros.monitoring.replay import physionet_readings, replay

    _need_chromium()
    if not (shared_data / "physionet2012" / "set-a").is_dir():
        pytest.skip(f"PhysioNet 2012 set A is absent under {shared_data}")
    died = [s for s in physionet_readings(shared_data, "set-a", stays=80, seed=0) if s.died][:6]
    levels = (Level("ward-nurse", 0.0), Level("doctor", 1.5))
    app = make_app(monitor=MonitorConfig(MonitorSettings(levels=levels)))
    app.state.store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    _, device = app.state.store.create_key("bed-replay", "device")
    _, system = app.state.store.create_key("adt", "system")
    with _running(app) as base:
        page = _open_ward(browser, base)
        summary = replay(base, device, system, died, speed=0, ward="icu-a")
        assert summary.stored == summary.sent - summary.rejected and summary.alerts
        alert = app.state.monitor.open_alerts()[0]
        row = page.locator(f'#ward-rows tr[data-patient="{alert.patient_id}"]')
        shown = row.locator('[data-field="alert"] .alert').first
        shown.wait_for(timeout=10000)
        assert page.evaluate("document.querySelectorAll('#ward-rows tr[data-patient]').length") \
            == len(died)
        shown.filter(has_text="doctor").wait_for(timeout=10000)      # escalated, live
        row.get_by_role("button", name="Acknowledge").first.click()
        page.wait_for_url(f"{base}/monitor?acked=*")
        acked = [a for a in app.state.monitor.store.alerts(patient_id=alert.patient_id)
                 if a.acked_by == "clara"]
        assert acked and acked[0].level == 1
