"""The dashboard's monitoring pages: the ward shows only the care team's patients with NEWS2 and
the open alert, the acknowledge form works (and is refused for another team's patient, from
another site, and twice), the patient page draws the trend and lists readings and alerts, and
roles without monitoring are refused."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from iatros.serve.monitor_charts import SERIES, chart, normal_range

SICK = {"pulse": 135, "respiration_rate": 27, "spo2": 90, "systolic_bp": 88}
WELL = {"pulse": 80, "respiration_rate": 16, "spo2": 97, "on_oxygen": False, "systolic_bp": 125,
        "temperature": 37.0, "consciousness": "A"}


def reading(patient: str, seq: int, ago_s: float, **over: Any) -> dict[str, Any]:
    return {"patient_id": patient, "seq": seq, "time": time.time() - ago_s, **WELL, **over}


@pytest.fixture
def ward(client: TestClient, app: Any) -> dict[str, int]:
    """p1 on icu-a (clara's team) and p2 on ward-b, both deteriorating: their alert ids."""
    store = app.state.store
    _, device = store.create_key("monitor-bed-1", "device")
    _, system = store.create_key("adt-feed", "system")
    for pid, w in (("p1", "icu-a"), ("p2", "ward-b")):
        r = client.post("/api/v1/monitor/patients", json={"patient_id": pid, "ward": w},
                        headers={"X-API-Key": system})
        assert r.status_code == 201, r.text
    r = client.post("/api/v1/monitor/readings", headers={"X-API-Key": device}, json={"readings": [
        reading("p1", 1, 3 * 3600), reading("p1", 2, 2 * 3600, pulse=95),
        reading("p1", 3, 600, **SICK), reading("p2", 4, 500, **SICK)]})
    assert r.status_code == 200 and r.json()["stored"] == [1, 2, 3, 4], r.text
    return {a["patient_id"]: a["id"] for a in r.json()["alerts"]}


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-patient="([^"]+)"', html)


def test_the_ward_lists_only_the_care_teams_patients_with_news2_and_the_alert(
        client: TestClient, ward: dict[str, int], as_user: Any, app: Any) -> None:
    page = client.get("/monitor", headers=as_user("clara"))
    assert page.status_code == 200
    assert _rows(page.text) == ["p1"]
    assert 'class="news2 risk-high"' in page.text
    score = app.state.monitor.ward()[0]["news2"]["score"]
    assert re.search(rf'data-field="news2" class="news2 risk-high"[^>]*>{score}<', page.text)
    assert 'data-field="pulse">135<' in page.text and 'data-field="respiration_rate">27<' in page.text
    assert 'data-part="severity">high<' in page.text and "ward-nurse" in page.text
    assert "respiration rate 27 (3)" in page.text
    assert f'action="/monitor/alerts/{ward["p1"]}/ack"' in page.text
    assert f'/monitor/alerts/{ward["p2"]}/ack' not in page.text
    assert '<script src="/static/monitor.js" defer></script>' in page.text
    assert 'href="/monitor">Monitor</a>' in page.text
    assert _rows(client.get("/monitor", headers=as_user("ada")).text) == ["p1", "p2"]
    assert "view ward (dashboard)" in [e.action for e in app.state.audit.entries()]


def test_the_acknowledge_form_acknowledges_and_returns_to_the_ward(
        client: TestClient, ward: dict[str, int], as_user: Any, app: Any) -> None:
    clara = as_user("clara")
    r = client.post(f"/monitor/alerts/{ward['p1']}/ack", headers=clara, data={"back": "/monitor"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/monitor?acked={ward['p1']}"
    assert app.state.monitor.store.alert(ward["p1"]).acked_by == "clara"
    after = client.get(r.headers["location"], headers=clara).text
    assert "acknowledged by clara" in after and "/ack" not in after.split('id="ward-row"')[0]
    assert 'data-alert-id=""' in after
    again = client.post(f"/monitor/alerts/{ward['p1']}/ack", headers=clara)
    assert again.status_code == 409 and "already acknowledged by clara" in again.text
    entry = next(e for e in app.state.audit.entries() if e.action == "acknowledge alert (dashboard)")
    assert entry.actor == "clara" and entry.target == "patient:p1" and entry.status == 303


def test_the_form_returns_to_the_patient_page_and_nowhere_else(
        client: TestClient, ward: dict[str, int], as_user: Any) -> None:
    ada = as_user("ada")
    r = client.post(f"/monitor/alerts/{ward['p1']}/ack", headers=ada,
                    data={"back": "/monitor/patients/p1"}, follow_redirects=False)
    assert r.headers["location"] == f"/monitor/patients/p1?acked={ward['p1']}"
    r = client.post(f"/monitor/alerts/{ward['p2']}/ack", headers=ada,
                    data={"back": "https://elsewhere.example/"}, follow_redirects=False)
    assert r.headers["location"] == f"/monitor?acked={ward['p2']}"


def test_acknowledging_another_teams_alert_or_from_another_site_is_refused(
        client: TestClient, ward: dict[str, int], as_user: Any, app: Any) -> None:
    clara = as_user("clara")
    r = client.post(f"/monitor/alerts/{ward['p2']}/ack", headers=clara)
    assert r.status_code == 403 and "not in your care teams" in r.text
    r = client.post(f"/monitor/alerts/{ward['p1']}/ack",
                    headers={**clara, "Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert client.post("/monitor/alerts/999/ack", headers=clara).status_code == 404
    store = app.state.monitor.store
    assert store.alert(ward["p1"]).acked is None and store.alert(ward["p2"]).acked is None


def test_the_patient_page_draws_the_trend_and_lists_readings_and_alerts(
        client: TestClient, ward: dict[str, int], as_user: Any) -> None:
    clara = as_user("clara")
    page = client.get("/monitor/patients/p1", headers=clara)
    assert page.status_code == 200
    html = page.text
    for s in SERIES:
        assert f'id="chart-{s.name}"' in html
    assert html.count("<svg") == len(SERIES) and html.count('<polyline class="trend"') == len(SERIES)
    news2 = html.split('id="chart-news2"')[1].split("</figure>")[0]
    assert news2.count("<circle") == 3 and "risk-high" in news2 and "5+ medium" in news2
    pulse = html.split('id="chart-pulse"')[1].split("</figure>")[0]
    assert 'class="normal"' in pulse and pulse.count('class="mark off"') == 2   # 95 and 135
    readings = html.split('id="readings"')[1]
    assert readings.count('<tr><td class="when">') == 3 and "monitor-bed-1" in readings
    assert "<script" not in html.split("</head>")[1]          # no inline script in the body
    alerts = html.split('id="alerts"')[1].split("</section>")[0]
    assert "open" in alerts and f"/monitor/alerts/{ward['p1']}/ack" in alerts
    client.post(f"/monitor/alerts/{ward['p1']}/ack", headers=clara,
                data={"back": "/monitor/patients/p1"})
    acked = client.get(f"/monitor/patients/p1?acked={ward['p1']}", headers=clara).text
    alerts = acked.split('id="alerts"')[1].split("</section>")[0]
    assert "acknowledged by clara at" in alerts and "/ack" not in alerts
    assert client.get("/monitor/patients/p2", headers=clara).status_code == 403
    assert client.get("/monitor/patients/p9", headers=as_user("ada")).status_code == 404


def test_a_researcher_and_an_anonymous_visitor_are_refused(
        client: TestClient, ward: dict[str, int], as_user: Any, app: Any) -> None:
    remy = as_user("remy")
    for path in ("/monitor", "/monitor/patients/p1"):
        r = client.get(path, headers=remy)
        assert r.status_code == 403 and "Not allowed" in r.text and "researcher" in r.text
    assert client.post(f"/monitor/alerts/{ward['p1']}/ack", headers=remy).status_code == 403
    assert app.state.monitor.store.alert(ward["p1"]).acked is None
    assert 'href="/monitor"' not in client.get("/", headers=remy).text
    r = client.get("/monitor", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_the_monitor_script_is_served_and_the_policy_allows_it_and_the_socket(
        client: TestClient) -> None:
    r = client.get("/static/monitor.js")
    assert r.status_code == 200 and "/api/v1/monitor/events" in r.text
    assert "innerHTML" not in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert "connect-src" not in policy   # default-src 'self' covers ws(s) to this host


def test_a_chart_places_readings_in_time_and_shades_the_range_scoring_zero() -> None:
    pulse = next(s for s in SERIES if s.name == "pulse")
    rows = [{"time": 1000.0 + 600 * i, "values": {"pulse": p}} for i, p in enumerate((60, 95, 180))]
    c = chart(pulse, rows, 0.0, 3600.0)
    xs = [m.x for m in c.marks]
    assert xs == sorted(xs) and c.plot[0] < xs[0] and xs[-1] < c.plot[0] + c.plot[2]
    assert [m.cls for m in c.marks] == ["", "off", "off"]
    assert min(m.y for m in c.marks) >= c.plot[1]                  # 180 widens the range
    assert normal_range("pulse", 1) == (50, 90) and c.shade is not None
    assert normal_range("spo2", 2) == (87, 92) and normal_range("spo2", 1)[0] == 95
    empty = chart(pulse, [], 0.0, 3600.0)
    assert empty.count == 0 and empty.line == "" and empty.x_ticks
