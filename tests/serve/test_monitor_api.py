"""The monitoring API: device keys, admission, batches stored exactly once, bad readings
rejected one by one, alerts pushed, acknowledged, escalated and audited, care teams enforced."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from iatros.monitoring.config import MonitorConfig
from iatros.monitoring.engine import Level, MonitorSettings
from tests.serve.conftest import PASSWORD, make_app


def vitals(**over: Any) -> dict[str, Any]:
    base = {"pulse": 80, "respiration_rate": 16, "spo2": 97, "on_oxygen": False,
            "systolic_bp": 125, "temperature": 37.0, "consciousness": "A"}
    return {**base, **over}


def reading(patient: str, seq: int, ago_s: float = 0.0, **over: Any) -> dict[str, Any]:
    return {"patient_id": patient, "seq": seq, "time": time.time() - ago_s, **vitals(**over)}


SICK = {"pulse": 135, "respiration_rate": 27, "spo2": 90, "systolic_bp": 88}


@pytest.fixture
def ward(client: TestClient, app: Any) -> dict[str, dict[str, str]]:
    """A device key, a system key, patient p1 on ward icu-a (clara's team), p2 on ward-b."""
    store = app.state.store
    _, device = store.create_key("monitor-bed-1", "device")
    _, system = store.create_key("adt-feed", "system")
    heads = {"device": {"X-API-Key": device}, "system": {"X-API-Key": system}}
    for pid, w in (("p1", "icu-a"), ("p2", "ward-b")):
        r = client.post("/api/v1/monitor/patients", json={"patient_id": pid, "ward": w},
                        headers=heads["system"])
        assert r.status_code == 201, r.text
    return heads


def test_a_batch_is_stored_once_and_a_resent_batch_is_reported_as_duplicates(
        client: TestClient, ward: dict[str, dict[str, str]], app: Any) -> None:
    batch = {"readings": [reading("p1", 1, 30), reading("p1", 2, 20), reading("p2", 3, 10)]}
    first = client.post("/api/v1/monitor/readings", json=batch, headers=ward["device"]).json()
    again = client.post("/api/v1/monitor/readings", json=batch, headers=ward["device"]).json()
    assert first["stored"] == [1, 2, 3] and first["rejected"] == []
    assert again["stored"] == [] and again["duplicates"] == [1, 2, 3]
    assert app.state.monitor.store.count_readings("monitor-bed-1") == 3


def test_bad_readings_are_rejected_with_their_field_while_the_rest_is_stored(
        client: TestClient, ward: dict[str, dict[str, str]]) -> None:
    batch = {"readings": [
        reading("p1", 1, 60),
        {"patient_id": "p1", "seq": 2, "time": time.time() - 50, "spo2": 140},
        {"patient_id": "p1", "seq": 3, "time": time.time() - 40, "pulse": float("nan")},
        reading("nobody", 4, 30),
        {"patient_id": "p1", "seq": 5, "time": time.time() + 3600, "pulse": 80},
        {"patient_id": "p1", "seq": 6, "time": "yesterday", "pulse": 80},
        {"patient_id": "p1", "seq": 7, "time": time.time() - 20, "heart": 80},
        reading("p1", 8, 600),       # older than reading 1 of this device: out of order
        "not an object",
        reading("p1", 9, 10),
    ]}
    text = json.dumps(batch).replace("NaN", "NaN")
    r = client.post("/api/v1/monitor/readings", content=text, headers={
        **ward["device"], "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == [1, 9]
    fields = {x["index"]: x["field"] for x in body["rejected"]}
    assert fields == {1: "spo2", 2: "pulse", 3: "patient_id", 4: "time", 5: "time",
                      6: "heart", 7: "time", 8: "readings"}
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert "not admitted" in reasons[3] and "future" in reasons[4] and "out of order" in reasons[7]


@pytest.mark.parametrize("body", [b"{not json", b'{"rows": []}', b"[1, 2]"])
def test_a_malformed_body_is_a_problem_and_stores_nothing(
        client: TestClient, ward: dict[str, dict[str, str]], app: Any, body: bytes) -> None:
    r = client.post("/api/v1/monitor/readings", content=body,
                    headers={**ward["device"], "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert app.state.monitor.store.count_readings() == 0


def test_only_device_keys_send_readings_and_only_systems_admit(
        client: TestClient, ward: dict[str, dict[str, str]], as_user: Any) -> None:
    batch = {"readings": [reading("p1", 1)]}
    assert client.post("/api/v1/monitor/readings", json=batch).status_code == 401
    assert client.post("/api/v1/monitor/readings", json=batch,
                       headers=ward["system"]).status_code == 403
    assert client.post("/api/v1/monitor/readings", json=batch,
                       headers=as_user("clara")).status_code == 403
    assert client.post("/api/v1/monitor/patients", json={"patient_id": "p9", "ward": "x"},
                       headers=ward["device"]).status_code == 403
    again = client.post("/api/v1/monitor/patients", json={"patient_id": "p1", "ward": "icu-a"},
                        headers=ward["system"])
    assert again.status_code == 409


def test_a_deteriorating_patient_raises_one_alert_and_repeats_are_suppressed(
        client: TestClient, ward: dict[str, dict[str, str]]) -> None:
    post = lambda b: client.post("/api/v1/monitor/readings", json={"readings": b},  # noqa: E731
                                 headers=ward["device"]).json()
    assert post([reading("p1", 1, 300)])["alerts"] == []
    raised = post([reading("p1", 2, 200, **SICK)])["alerts"]
    assert len(raised) == 1 and raised[0]["severity"] == "high" and raised[0]["score"] >= 7
    assert "respiration rate 27 (3)" in raised[0]["reason"]
    assert post([reading("p1", 3, 100, **SICK)])["alerts"] == []   # one open already


def test_clinicians_see_and_acknowledge_only_their_care_teams_patients(
        client: TestClient, ward: dict[str, dict[str, str]], as_user: Any, app: Any) -> None:
    client.post("/api/v1/monitor/readings", headers=ward["device"], json={"readings": [
        reading("p1", 1, 100, **SICK), reading("p2", 2, 90, **SICK)]})
    clara, ada = as_user("clara"), as_user("ada")
    assert [p["patient_id"] for p in client.get("/api/v1/monitor/ward", headers=clara).json()] \
        == ["p1"]
    assert {a["patient_id"] for a in client.get("/api/v1/monitor/alerts", headers=ada).json()} \
        == {"p1", "p2"}
    mine = client.get("/api/v1/monitor/alerts", headers=clara).json()
    assert [a["patient_id"] for a in mine] == ["p1"]
    other = next(a for a in client.get("/api/v1/monitor/alerts", headers=ada).json()
                 if a["patient_id"] == "p2")
    assert client.post(f"/api/v1/monitor/alerts/{other['id']}/ack",
                       headers=clara).status_code == 403
    assert client.get("/api/v1/monitor/patients/p2", headers=clara).status_code == 403
    ack = client.post(f"/api/v1/monitor/alerts/{mine[0]['id']}/ack", headers=clara)
    assert ack.status_code == 200 and ack.json()["acked_by"] == "clara"
    assert client.post(f"/api/v1/monitor/alerts/{mine[0]['id']}/ack",
                       headers=clara).status_code == 409
    assert client.get("/api/v1/monitor/alerts", headers=clara).json() == []
    actions = [e.action for e in app.state.audit.entries()]
    assert "monitor alert" in actions and "acknowledge alert" in actions


def test_the_patient_view_has_the_trend_with_news2(
        client: TestClient, ward: dict[str, dict[str, str]], as_user: Any) -> None:
    client.post("/api/v1/monitor/readings", headers=ward["device"], json={"readings": [
        reading("p1", 1, 300), {"patient_id": "p1", "seq": 2, "time": time.time() - 200,
                                "pulse": 135}]})
    view = client.get("/api/v1/monitor/patients/p1", headers=as_user("clara")).json()
    assert [r["news2"] for r in view["readings"]] == [0, 3]
    assert view["news2"]["score"] == 3 and view["values"]["pulse"] == 135


def test_an_unacknowledged_alert_escalates_and_is_pushed_to_the_events_socket(
        tmp_path: Any) -> None:
    levels = (Level("ward-nurse", 0.0), Level("doctor", 0.05))
    app = make_app(monitor=MonitorConfig(MonitorSettings(levels=levels)))
    app.state.store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    _, device = app.state.store.create_key("bed", "device")
    _, system = app.state.store.create_key("adt", "system")
    with TestClient(app) as client:
        client.post("/api/v1/monitor/patients", json={"patient_id": "p1", "ward": "icu-a"},
                    headers={"X-API-Key": system})
        login = client.post("/api/v1/auth/token", data={"username": "clara",
                                                        "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        with client.websocket_connect("/api/v1/monitor/events", headers=auth) as ws:
            client.post("/api/v1/monitor/readings", headers={"X-API-Key": device},
                        json={"readings": [reading("p1", 1, 10, **SICK)]})
            first = ws.receive_json()
            while first["type"] == "reading":
                first = ws.receive_json()
            assert first["type"] == "alert" and first["level_name"] == "ward-nurse"
            second = ws.receive_json()
            while second["type"] == "reading":
                second = ws.receive_json()
            assert second["type"] == "escalation" and second["level_name"] == "doctor"
            client.post(f"/api/v1/monitor/alerts/{first['id']}/ack", headers=auth)
            third = ws.receive_json()
            while third["type"] == "reading":
                third = ws.receive_json()
            assert third["type"] == "ack" and third["acked_by"] == "clara"


def test_the_device_stream_acknowledges_each_batch_after_storing_it(
        client: TestClient, ward: dict[str, dict[str, str]], app: Any) -> None:
    with client.websocket_connect("/api/v1/monitor/stream", headers=ward["device"]) as ws:
        ws.send_text(json.dumps({"batch": "a", "readings": [reading("p1", 1, 20)]}))
        assert ws.receive_json()["stored"] == [1]
        ws.send_text("{broken")
        assert "not JSON" in ws.receive_json()["error"]
        ws.send_text(json.dumps({"batch": "b", "readings": [reading("p1", 1, 20),
                                                           reading("p1", 2, 10)]}))
        answer = ws.receive_json()
        assert answer["batch"] == "b" and answer["duplicates"] == [1] and answer["stored"] == [2]
    assert app.state.monitor.store.count_readings() == 2


def test_sockets_refuse_callers_without_the_role(
        client: TestClient, ward: dict[str, dict[str, str]], as_user: Any) -> None:
    refused = [("/api/v1/monitor/stream", {}), ("/api/v1/monitor/stream", as_user("clara")),
               ("/api/v1/monitor/events", ward["device"])]
    for path, headers in refused:
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(path,
                                                                          headers=headers) as ws:
            ws.receive_json()


def test_a_stream_dropped_mid_batch_loses_nothing_once_the_device_resends(
        client: TestClient, ward: dict[str, dict[str, str]], app: Any) -> None:
    batch = {"batch": "x", "readings": [reading("p1", s, 100 - s) for s in range(1, 6)]}
    with client.websocket_connect("/api/v1/monitor/stream", headers=ward["device"]) as ws:
        ws.send_text(json.dumps(batch))     # the connection closes before the answer is read
    with client.websocket_connect("/api/v1/monitor/stream", headers=ward["device"]) as ws:
        ws.send_text(json.dumps(batch))
        answer = ws.receive_json()
    assert sorted(answer["stored"] + answer["duplicates"]) == [1, 2, 3, 4, 5]
    assert app.state.monitor.store.count_readings() == 5


def test_with_a_master_key_the_monitor_tables_hold_tokens_never_patient_ids(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, iatros_home: Any) -> None:
    from sqlalchemy import text

    from iatros.access.store import open_engine
    from tests.crypto.helpers import use_key, write_key

    use_key(monkeypatch, write_key(tmp_path / "master.key"))
    iatros_home.mkdir(parents=True, exist_ok=True)
    app = make_app()
    app.state.store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    _, device = app.state.store.create_key("bed", "device")
    _, system = app.state.store.create_key("adt", "system")
    with TestClient(app) as client:
        client.post("/api/v1/monitor/patients", json={"patient_id": "MRN-0042", "ward": "icu-a"},
                    headers={"X-API-Key": system})
        answer = client.post("/api/v1/monitor/readings", headers={"X-API-Key": device},
                             json={"readings": [reading("MRN-0042", 1, 60, **SICK)]}).json()
        assert answer["stored"] == [1] and answer["alerts"][0]["patient_id"] == "MRN-0042"
        login = client.post("/api/v1/auth/token", data={"username": "clara",
                                                        "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        assert [p["patient_id"] for p in client.get("/api/v1/monitor/ward",
                                                    headers=auth).json()] == ["MRN-0042"]
    engine = open_engine(app.state.config.settings.database_url)
    with engine.connect() as c:
        dump = repr([row for table in ("monitor_patients", "monitor_readings", "monitor_alerts")
                     for row in c.execute(text(f"SELECT * FROM {table}"))])
    assert "MRN-0042" not in dump and "tok1:" in dump
    again = make_app()      # restarted: the ids come back from their sealed form
    assert list(again.state.monitor.patients()) == ["MRN-0042"]
    assert again.state.monitor.open_alerts()[0].patient_id == "MRN-0042"


@pytest.mark.parametrize("alert_id", ["0", "228771428473683774551787307008", "-3"])
def test_an_alert_id_out_of_range_is_a_problem_not_a_server_error(
        client: TestClient, as_user: Any, alert_id: str) -> None:
    r = client.post(f"/api/v1/monitor/alerts/{alert_id}/ack", headers=as_user("clara"))
    assert r.status_code == 422 and r.json()["field"] == "alert_id"
