"""The monitor without the service: readings checked and stored once, NEWS2 on the current
observations, alerts opened, raised, suppressed, held after acknowledgement and escalated, and
the state rebuilt from the database after a restart."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.access.store import open_engine
from iatros.monitoring.engine import Level, Monitor, MonitorSettings
from iatros.monitoring.readings import parse_reading
from iatros.monitoring.store import MonitorStore

T0 = 1_800_000_000.0
NORMAL = {"pulse": 80, "respiration_rate": 16, "spo2": 97, "on_oxygen": False,
          "systolic_bp": 125, "temperature": 37.0, "consciousness": "A"}
SICK = {**NORMAL, "pulse": 135, "respiration_rate": 27, "spo2": 90, "systolic_bp": 88}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, clock: Clock | None = None, **settings_: Any) -> Monitor:
    engine = open_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    monitor = Monitor(MonitorStore(engine), MonitorSettings(**settings_), clock=clock or Clock())
    if "p1" not in monitor.patients():
        monitor.admit("p1", "ward-a")
    return monitor


def r(seq: int, minute: float, **values: Any) -> dict[str, Any]:
    return {"patient_id": "p1", "seq": seq, "time": T0 - 86_400 + minute * 60, **values}


def test_news2_scores_the_latest_value_of_each_parameter_from_separate_readings(
        tmp_path: Path) -> None:
    monitor = make(tmp_path)
    monitor.ingest("oximeter", [r(1, 0, pulse=80, spo2=97)])
    monitor.ingest("nurse", [r(1, 5, respiration_rate=16, systolic_bp=125, temperature=37.0,
                               consciousness="A", on_oxygen=False)])
    result = monitor.ingest("oximeter", [r(2, 10, pulse=135)])
    ward = monitor.ward()[0]
    assert ward["news2"]["score"] == 3 and ward["news2"]["complete"]
    assert result.alerts[0]["severity"] == "low-medium"   # a single parameter scoring 3


def test_a_value_older_than_stale_after_no_longer_counts(tmp_path: Path) -> None:
    monitor = make(tmp_path, stale_after_s=3600)
    monitor.ingest("d", [r(1, 0, **NORMAL)])
    monitor.ingest("d", [r(2, 90, pulse=82)])
    news = monitor.ward()[0]["news2"]
    assert not news["complete"] and news["score"] == 0


def test_a_higher_severity_updates_the_open_alert_and_a_repeat_is_suppressed(
        tmp_path: Path) -> None:
    monitor = make(tmp_path)
    first = monitor.ingest("d", [r(1, 0, **{**NORMAL, "pulse": 135})]).alerts
    assert [a["severity"] for a in first] == ["low-medium"]
    raised = monitor.ingest("d", [r(2, 5, **SICK)]).alerts
    assert raised[0]["id"] == first[0]["id"] and raised[0]["severity"] == "high"
    assert raised[0]["update"] is True
    assert monitor.ingest("d", [r(3, 10, **SICK)]).alerts == []
    assert len(monitor.store.alerts()) == 1


def test_after_an_acknowledgement_alerts_wait_for_the_hold_unless_worse(tmp_path: Path) -> None:
    monitor = make(tmp_path, hold_s=3600)
    alert = monitor.ingest("d", [r(1, 0, **{**NORMAL, "pulse": 135})]).alerts[0]
    assert monitor.acknowledge(alert["id"], "clara").acked_by == "clara"
    assert monitor.acknowledge(alert["id"], "clara") is None
    assert monitor.ingest("d", [r(2, 30, **{**NORMAL, "pulse": 135})]).alerts == []
    worse = monitor.ingest("d", [r(3, 40, **SICK)]).alerts
    assert [a["severity"] for a in worse] == ["high"]
    monitor.acknowledge(worse[0]["id"], "clara")
    assert monitor.ingest("d", [r(4, 50, **SICK)]).alerts == []
    again = monitor.ingest("d", [r(5, 40 + 61, **SICK)]).alerts   # the hour has passed
    assert [a["severity"] for a in again] == ["high"]


def test_unacknowledged_alerts_escalate_level_by_level(tmp_path: Path) -> None:
    clock = Clock()
    levels = (Level("nurse", 0), Level("doctor", 300), Level("outreach", 600))
    monitor = make(tmp_path, clock, levels=levels)
    events: list[dict[str, Any]] = []
    monitor.listeners.append(events.append)
    monitor.ingest("d", [r(1, 0, **SICK)])
    assert monitor.escalate_due() == []
    clock.now += 301
    assert [a.level for a in monitor.escalate_due()] == [1]
    assert monitor.escalate_due() == []
    clock.now += 300
    assert [monitor.level_name(a) for a in monitor.escalate_due()] == ["outreach"]
    clock.now += 10_000
    assert monitor.escalate_due() == []       # the last level
    kinds = [(e["type"], e.get("level_name")) for e in events if e["type"] != "reading"]
    assert kinds == [("alert", "nurse"), ("escalation", "doctor"), ("escalation", "outreach")]
    monitor.acknowledge(monitor.open_alerts()[0].id, "clara")
    assert monitor.open_alerts() == []


def test_a_restarted_monitor_has_the_same_state_open_alerts_and_duplicates(
        tmp_path: Path) -> None:
    monitor = make(tmp_path)
    monitor.ingest("d", [r(1, 0, **NORMAL), r(2, 5, **SICK)])
    before = monitor.ward()
    again = make(tmp_path)
    assert again.ward() == before
    assert again.ingest("d", [r(2, 5, **SICK)]).duplicates == [2]
    assert again.ingest("d", [r(3, 1, pulse=80)]).rejected[0].field == "time"
    assert again.ingest("d", [r(4, 6, **SICK)]).alerts == []     # the alert is still open


def test_a_failed_commit_leaves_memory_as_the_disk(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = make(tmp_path)
    monitor.ingest("d", [r(1, 0, **NORMAL)])
    before = monitor.ward()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")
    monkeypatch.setattr(monitor.store, "write", broken)
    with pytest.raises(OSError):
        monitor.ingest("d", [r(2, 5, **SICK)])
    monkeypatch.undo()
    assert monitor.ward() == before
    assert monitor.ingest("d", [r(2, 5, **SICK)]).stored == [2]


def test_a_listener_that_fails_does_not_lose_the_answer(tmp_path: Path) -> None:
    monitor = make(tmp_path)

    def fails(event: dict[str, Any]) -> None:
        raise RuntimeError("socket gone")
    monitor.listeners.append(fails)
    assert monitor.ingest("d", [r(1, 0, **SICK)]).stored == [1]


def test_a_batch_larger_than_the_limit_is_refused_whole(tmp_path: Path) -> None:
    monitor = make(tmp_path)
    with pytest.raises(ValueError, match="at most"):
        monitor.ingest("d", [r(i, i, pulse=80) for i in range(5001)])
    assert monitor.store.count_readings() == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=40))
def test_any_mix_of_new_and_resent_seqs_is_stored_exactly_once(tmp_path_factory: Any,
                                                               seqs: list[int]) -> None:
    monitor = make(tmp_path_factory.mktemp("m"))
    stored: list[int] = []
    for start in range(0, len(seqs), 7):
        chunk = seqs[start:start + 7]
        result = monitor.ingest("d", [r(s, minute=s, pulse=80) for s in chunk])
        stored += result.stored
        assert sorted(result.stored + result.duplicates + [x.seq for x in result.rejected]) == \
            sorted(chunk)
    assert sorted(stored) == sorted(set(stored))
    assert monitor.store.count_readings() == len(stored)


@pytest.mark.parametrize(("raw", "field"), [
    ({"seq": 1, "time": T0, "pulse": 80}, "patient_id"),
    ({"patient_id": "p 1", "seq": 1, "time": T0, "pulse": 80}, "patient_id"),
    ({"patient_id": "p1", "seq": -1, "time": T0, "pulse": 80}, "seq"),
    ({"patient_id": "p1", "seq": True, "time": T0, "pulse": 80}, "seq"),
    ({"patient_id": "p1", "seq": 1, "time": "2026-12-07T05:00:00", "pulse": 80}, "time"),
    ({"patient_id": "p1", "seq": 1, "time": T0}, "readings"),
    ({"patient_id": "p1", "seq": 1, "time": T0, "pulse": "80"}, "pulse"),
    ({"patient_id": "p1", "seq": 1, "time": T0, "consciousness": "Q"}, "consciousness"),
    ({"patient_id": "p1", "seq": 1, "time": T0, "spo2": 97, "spo2_scale": 3}, "spo2_scale"),
    ({"patient_id": "p1", "seq": 1, "time": T0, "temperature": 99.0}, "temperature"),
])
def test_each_kind_of_bad_reading_names_its_field(raw: dict[str, Any], field: str) -> None:
    from iatros.monitoring.readings import ReadingError

    with pytest.raises(ReadingError) as info:
        parse_reading(raw, now=T0)
    assert info.value.field == field


def test_iso_times_with_a_zone_and_acvpu_words_are_read() -> None:
    reading = parse_reading({"patient_id": "p1", "seq": 0, "time": "2027-01-15T08:00:00+01:00",
                             "consciousness": "voice", "temperature": 37.25},
                            now=T0 + 10**8)
    assert reading.time == datetime(2027, 1, 15, 7, tzinfo=timezone.utc).timestamp()
    assert reading.values == {"consciousness": "V", "temperature": 37.3}


def test_the_trend_is_the_rise_above_the_lowest_complete_score_of_the_last_day(
        tmp_path: Path) -> None:
    monitor = make(tmp_path)
    monitor.ingest("d", [r(1, 0, **NORMAL)])                        # complete, 0
    monitor.ingest("d", [r(2, 60, **{**NORMAL, "pulse": 95})])      # 1
    assert monitor.ward()[0]["news2"]["change_from_window_min"] == 1
    assert not monitor.ward()[0]["news2"]["rising"]
    monitor.ingest("d", [r(3, 120, **{**NORMAL, "pulse": 115})])    # 2: rising
    assert monitor.ward()[0]["news2"]["rising"]
    assert monitor.ingest("d", [r(4, 24 * 60 + 2, **{**NORMAL, "pulse": 115})]).stored == [4]
    assert monitor.ward()[0]["news2"]["change_from_window_min"] == 1   # the 0 left the day
