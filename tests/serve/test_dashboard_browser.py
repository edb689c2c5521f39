"""The dashboard end to end in a real browser (Playwright driving Debian's chromium) against
the service on a local port: log in, upload a DICOM and see the heat map, read a note with a
negated finding struck through, and a researcher sees the admin page refused.

Set IATROS_SCREENSHOTS=FOLDER to keep screenshots of each page (the README's come from here)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright (iatros[dev]) is not installed")
from tests.serve.conftest import PASSWORD, make_app, promote  # noqa: E402

CHROMIUM = os.environ.get("IATROS_CHROMIUM", "/usr/bin/chromium")
WIDTHS = {"desktop": 1280, "tablet": 820}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(image_run, tabular_run, fhir_run):
    import uvicorn

    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    promote(image_run, "breast-ultrasound")
    promote(tabular_run, "wdbc")
    promote(fhir_run[0], "readmission")
    app = make_app()
    store = app.state.store
    store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    store.add_user("remy", PASSWORD, "researcher")
    store.add_user("ada", PASSWORD, "admin")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


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
    page.click("text=Find entities")
    negated = page.locator("div.note mark.negated")
    negated.first.wait_for()
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
