"""`iatros monitor replay`: PhysioNet 2012 records as readings in the contract's format (real
set-a files where this machine has them, crafted records everywhere), and the client against a
fake service on httpx's MockTransport: batches, seq continuity, admission, resends after a 503,
a lost answer or a dropped connection without losing or doubling a reading, pacing, and no key
in any output."""

from __future__ import annotations

import csv
import json
import logging
import secrets
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from iatros.errors import ConfigError, MissingDataError
from iatros.monitoring import replay as replay_module
from iatros.monitoring.replay import (
    ZERO_IS_ARTEFACT,
    ReplayError,
    SkipLog,
    Stay,
    gcs_to_acvpu,
    physionet_readings,
    replay,
)
from tests.cli_run import run_cli

START = datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)
DEVICE_KEY = "dev_" + secrets.token_urlsafe(24)
SYSTEM_KEY = "sys_" + secrets.token_urlsafe(24)
HEADER = "Time,Parameter,Value"
# independent of the code under test: PhysioNet name -> (reading field, plausible range of the
# EHR converter's class in data/ehr/schema.py)
VITALS = {"HR": ("pulse", 0, 350), "RespRate": ("respiration_rate", 0, 150),
          "SaO2": ("spo2", 0, 100), "Temp": ("temperature", 10, 46)}
RANGES = {**{k: (lo, hi) for k, (_, lo, hi) in VITALS.items()}, "SysABP": (0, 350),
          "NISysABP": (0, 350), "GCS": (3, 15), "FiO2": (0.21, 1.0), "MechVent": (0, float("inf"))}


# --- records --------------------------------------------------------------------------------

def _record(folder: Path, rid: int, lines: list[str], descriptors: bool = True) -> Path:
    """A record file in PhysioNet 2012's layout."""
    folder.mkdir(parents=True, exist_ok=True)
    head = [f"00:00,RecordID,{rid}", "00:00,Age,70", "00:00,Gender,1", "00:00,Height,-1",
            "00:00,ICUType,3", "00:00,Weight,80"] if descriptors else []
    path = folder / f"{rid}.txt"
    path.write_text("\n".join([HEADER, *head, *lines]) + "\n")
    return path


def _outcomes(root: Path, rows: list[tuple[int, int, int, int]]) -> None:
    """Outcomes-a.txt rows (RecordID, Length_of_stay, Survival, In-hospital_death)."""
    lines = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    lines += [f"{rid},10,5,{los},{surv},{died}" for rid, los, surv, died in rows]
    (root / "Outcomes-a.txt").write_text("\n".join(lines) + "\n")


def _at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    """A data root with two crafted stays: one for grouping, oxygen and plausibility, one plain."""
    root = tmp_path / "data"
    folder = root / "physionet2012" / "set-a"
    _record(folder, 200001, [
        "00:05,HR,88", "00:05,NISysABP,130", "00:05,SysABP,118", "00:05,HR,91",  # one minute
        "00:05,GCS,15", "00:05,Urine,100",
        "00:20,FiO2,0.5",                                   # oxygen on, no vitals: a reading
        "00:30,HR,95", "00:30,Temp,-17.8", "00:30,NISysABP,125",  # Temp impossible: dropped
        "01:00,MechVent,1",                                 # no change of state: no reading
        "02:00,FiO2,0.21", "02:00,RespRate,22", "02:00,GCS,9",  # back to air with vitals
        "02:30,SaO2,93", "02:30,Temp,38.2",
        "03:00,Glucose,120",                                # a lab only: no reading
        "47:59,HR,70",
    ])
    _record(folder, 200002, ["00:10,HR,60", "00:10,RespRate,12", "01:10,HR,62",
                             "01:10,Temp,20.5",   # plausible to the converter, not to NEWS2
                             "01:10,SysABP,0"])   # a disconnected arterial line: left out
    _outcomes(root / "physionet2012", [(200001, 5, 3, 1), (200002, 2, -1, 0)])
    return root


def test_gcs_maps_to_acvpu_at_the_midpoints_of_kelly_2004_medians():
    assert [gcs_to_acvpu(g) for g in range(15, 2, -1)] == list("AVVVVPPPPPUUU")
    assert gcs_to_acvpu(14.5) == "V"  # a non-integer total falls in the band below the next cut
    for bad in (2, 16):
        with pytest.raises(ValueError, match="outside 3-15"):
            gcs_to_acvpu(bad)


def test_same_minute_values_are_one_reading_and_the_oxygen_state_is_carried(crafted):
    skips = SkipLog()
    stays = physionet_readings(crafted, start=START, skips=skips)
    first, second = stays
    assert [s.patient_id for s in stays] == ["200001", "200002"]
    assert first.readings == (
        # HR twice at 00:05: the later line; SysABP (invasive) over NISysABP; no oxygen known yet
        {"patient_id": "200001", "time": _at(5), "pulse": 91, "systolic_bp": 118,
         "consciousness": "A"},
        {"patient_id": "200001", "time": _at(20), "on_oxygen": True},
        {"patient_id": "200001", "time": _at(30), "pulse": 95, "systolic_bp": 125,
         "on_oxygen": True},
        {"patient_id": "200001", "time": _at(120), "respiration_rate": 22, "consciousness": "P",
         "on_oxygen": False},
        {"patient_id": "200001", "time": _at(150), "spo2": 93, "temperature": 38.2,
         "on_oxygen": False},
        {"patient_id": "200001", "time": _at(47 * 60 + 59), "pulse": 70, "on_oxygen": False},
    )
    assert first.dropped == 1 and second.dropped == 1
    assert skips.by_reason() == {"impossible value": 1, "disconnected line or probe": 1}
    assert "PHYSIONET2012//Temp = -17.8" in skips.items[0].reason
    assert (first.died, first.length_hours, first.death_hours) == (True, 120.0, 72.0)
    assert (second.died, second.length_hours, second.death_hours) == (False, 48.0, None)
    assert first.record_hours == pytest.approx(47 + 59 / 60)
    assert all("seq" not in r for s in stays for r in s.readings)


def test_times_are_offsets_from_admission_shifted_to_start_in_utc(crafted):
    cet = timezone(timedelta(hours=2))
    stays = physionet_readings(crafted, start=datetime(2026, 12, 7, 7, 0, tzinfo=cet))
    assert stays[1].readings[0]["time"] == "2026-12-07T05:10:00Z"
    assert stays[1].readings[1]["time"] == "2026-12-07T06:10:00Z"
    assert {s.start for s in stays} == {START}
    with pytest.raises(ConfigError, match="time zone"):
        physionet_readings(crafted, start=datetime(2026, 12, 7, 5, 0))


def test_the_default_start_puts_the_last_reading_no_later_than_now(crafted):
    before = datetime.now(timezone.utc)
    stays = physionet_readings(crafted)
    last = max(r["time"] for s in stays for r in s.readings)
    assert last <= datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert last >= (before - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_sample_a_set_without_outcomes_and_a_missing_set(crafted, tmp_path):
    assert [s.patient_id for s in physionet_readings(crafted, stays=1, seed=0, start=START)] in (
        [["200001"], ["200002"]])
    (crafted / "physionet2012" / "Outcomes-a.txt").unlink()
    assert {s.died for s in physionet_readings(crafted / "physionet2012", start=START)} == {None}
    with pytest.raises(MissingDataError, match="set-b not found"):
        physionet_readings(crafted, "set-b")
    with pytest.raises(ConfigError, match="at least 1"):
        physionet_readings(crafted, stays=0)


# --- the real set-a files --------------------------------------------------------------------

@pytest.fixture
def physionet(shared_data) -> Path:
    root = shared_data / "physionet2012"
    if not (root / "set-a").is_dir() or not (root / "Outcomes-a.txt").is_file():
        pytest.skip(f"PhysioNet 2012 set-a is not under {root}")
    return root


def _expected(path: Path) -> tuple[str, dict[int, dict[str, float]], int]:
    """A record read naively: its RecordID, per minute the last value of each vital (plausible
    ones only) and the number of implausible values."""
    rows = list(csv.reader(path.read_text().splitlines()))[1:]
    rid = next(v for t, n, v in rows if n == "RecordID")
    minutes: dict[int, dict[str, float]] = {}
    bad = 0
    for stamp, name, raw in rows:
        if name not in RANGES:
            continue
        hours, mins = stamp.split(":")
        value = float(raw)
        lo, hi = RANGES[name]
        if not lo <= value <= hi or (value == 0 and name in ZERO_IS_ARTEFACT):
            bad += 1
            continue
        minutes.setdefault(int(hours) * 60 + int(mins), {})[name] = value
    return str(int(float(rid))), minutes, bad


def _check_stay(stay: Stay, path: Path, outcomes: dict[str, list[str]]) -> None:
    """The stay's readings against the file read naively, and its outcome against Outcomes-a."""
    rid, minutes, bad = _expected(path)
    assert stay.patient_id == rid == path.stem
    assert stay.dropped == bad
    assert stay.died == (outcomes[rid][5] == "1")
    oxygen = None
    by_time = {r["time"]: r for r in stay.readings}
    assert len(by_time) == len(stay.readings)  # one reading per minute
    for minute in sorted(minutes):
        values = minutes[minute]
        if "FiO2" in values or "MechVent" in values:
            oxygen = values.get("FiO2", 0) > 0.21 or values.get("MechVent", 0) == 1
        reading = by_time.get(_at(minute))
        wanted = {field: values[name] for name, (field, _, _) in VITALS.items() if name in values}
        if "SysABP" in values or "NISysABP" in values:
            wanted["systolic_bp"] = values.get("SysABP", values.get("NISysABP"))
        if "GCS" in values:
            wanted["consciousness"] = gcs_to_acvpu(values["GCS"])
        if reading is None:
            assert not wanted, f"{rid} minute {minute}: no reading for {wanted}"
            continue
        got = {k: v for k, v in reading.items() if k not in ("patient_id", "time", "on_oxygen")}
        assert got == wanted, f"{rid} minute {minute}"
        assert reading.get("on_oxygen") == oxygen, f"{rid} minute {minute}"
        assert reading["patient_id"] == rid


def test_real_set_a_records_map_to_readings(physionet, tmp_path):
    """Named records: a plain one, one with FiO2 / SaO2 / both pressures, a death, an
    impossible temperature; each checked reading by reading against the file."""
    chosen = ("132539", "132540", "132551", "134104")
    folder = tmp_path / "physionet2012" / "set-a"
    folder.mkdir(parents=True)
    for rid in chosen:
        shutil.copy(physionet / "set-a" / f"{rid}.txt", folder)
    shutil.copy(physionet / "Outcomes-a.txt", folder.parent)
    outcomes = {r[0]: r for r in csv.reader((physionet / "Outcomes-a.txt").read_text().splitlines())}
    skips = SkipLog()
    stays = physionet_readings(tmp_path, start=START, skips=skips)
    assert [s.patient_id for s in stays] == list(chosen)
    for stay in stays:
        _check_stay(stay, folder / f"{stay.patient_id}.txt", outcomes)
    plain, oxygenated, died, implausible = stays
    assert plain.readings[0] == {"patient_id": "132539", "time": _at(7), "pulse": 73,
                                 "respiration_rate": 19, "temperature": 35.1,
                                 "systolic_bp": 147, "consciousness": "A"}
    assert any(r.get("on_oxygen") for r in oxygenated.readings)
    assert any("spo2" in r for r in oxygenated.readings)
    assert died.died is True and plain.died is False
    assert implausible.dropped >= 1 and skips.by_reason()["impossible value"] >= 1


def test_a_random_sample_of_set_a_is_mapped_faithfully(physionet):
    outcomes = {r[0]: r for r in csv.reader((physionet / "Outcomes-a.txt").read_text().splitlines())}
    stays = physionet_readings(physionet.parent, stays=25, seed=7, start=START)
    assert len(stays) == 25 and len({s.patient_id for s in stays}) == 25
    assert [s.patient_id for s in stays] == sorted(s.patient_id for s in stays)
    for stay in stays:
        _check_stay(stay, physionet / "set-a" / f"{stay.patient_id}.txt", outcomes)
        times = [r["time"] for r in stay.readings]
        assert times == sorted(times) and times[0] >= _at(0) and times[-1] <= _at(48 * 60)


# --- the client against a fake service -------------------------------------------------------

class FakeMonitor:
    """The monitoring API as the contract describes it, in memory, with failures on demand.

    ``fail``: per request number (1-based, counting every request), "503", "connect" (nothing
    reaches the server) or "lost" (stored, then the connection drops before the answer)."""

    def __init__(self, fail: dict[int, str] | None = None, admitted: set[str] | None = None,
                 forget: set[str] | None = None):
        self.fail = fail or {}
        self.admitted = set(admitted or ())
        self.forget = set(forget or ())  # answered 201 but not kept (discharged at once)
        self.stored: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.path, request.headers.get("X-API-Key"), body))
        action = self.fail.get(len(self.requests))
        if action == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if action == "503":
            return httpx.Response(503, json={"title": "Service Unavailable"})
        if request.url.path.endswith("/patients"):
            if request.headers.get("X-API-Key") != SYSTEM_KEY:
                return httpx.Response(403, json={"detail": "a system key is required"})
            if body["patient_id"] in self.admitted:
                return httpx.Response(409, json={"detail": "already admitted"})
            if body["patient_id"] not in self.forget:
                self.admitted.add(body["patient_id"])
            return httpx.Response(201, json={"patient_id": body["patient_id"]})
        if request.headers.get("X-API-Key") != DEVICE_KEY:
            return httpx.Response(401, json={"detail": "unknown API key"})
        answer = self._readings(body["readings"])
        if action == "lost":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json=answer)

    def _readings(self, readings: list[dict[str, Any]]) -> dict[str, Any]:
        answer: dict[str, Any] = {"stored": [], "duplicates": [], "rejected": [], "alerts": []}
        for index, r in enumerate(readings):
            if r["seq"] in self.stored:
                answer["duplicates"].append(r["seq"])
            elif r["patient_id"] not in self.admitted:
                answer["rejected"].append({"index": index, "seq": r["seq"], "field": "patient_id",
                                           "reason": f"unknown patient {r['patient_id']}"})
            elif not 25 <= r.get("temperature", 37) <= 45:
                answer["rejected"].append({"index": index, "seq": r["seq"], "field": "temperature",
                                           "reason": f"temperature {r['temperature']} is outside "
                                                     f"25-45 C"})
            else:
                self.stored[r["seq"]] = r
                answer["stored"].append(r["seq"])
                if r.get("pulse", 0) >= 131:
                    answer["alerts"].append({"id": len(self.stored), "patient_id": r["patient_id"],
                                             "severity": "low-medium"})
        return answer


def _stays(n_readings: int = 5) -> list[Stay]:
    """Three stays whose readings interleave in time (every 10 minutes, offset by stay)."""
    out = []
    for k, pid in enumerate(("301", "302", "303")):
        readings = tuple({"patient_id": pid, "time": _at(10 * i + k), "pulse": 80 + i}
                         for i in range(n_readings))
        out.append(Stay(pid, False, 48.0, None, 1.0, START, readings))
    return out


def _client(server: FakeMonitor) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server))


def _run(server: FakeMonitor, stays: list[Stay], **kwargs: Any):
    kwargs = {"speed": 0, "batch_size": 4, "start_seq": 1, "backoff_s": 0.0, **kwargs}
    with _client(server) as client:
        return replay("http://127.0.0.1:8000", DEVICE_KEY, SYSTEM_KEY, stays, client=client,
                      progress=False, **kwargs)


def _sent(server: FakeMonitor) -> list[list[dict[str, Any]]]:
    return [b["readings"] for p, _, b in server.requests if p.endswith("/readings")]


def test_readings_go_in_time_order_in_batches_with_continuing_seq():
    server = FakeMonitor(admitted={"302"})
    stays = _stays()
    summary = _run(server, stays, start_seq=1000)
    admissions = [(p, k, b) for p, k, b in server.requests if p.endswith("/patients")]
    assert [b for _, _, b in admissions] == [
        {"patient_id": pid, "ward": "replay", "spo2_scale": 1} for pid in ("301", "302", "303")]
    assert {k for _, k, _ in admissions} == {SYSTEM_KEY}
    assert {k for p, k, _ in server.requests if p.endswith("/readings")} == {DEVICE_KEY}
    batches = _sent(server)
    assert [len(b) for b in batches] == [4, 4, 4, 3]
    flat = [r for b in batches for r in b]
    assert [r["seq"] for r in flat] == list(range(1000, 1015))
    assert [r["time"] for r in flat] == sorted(r["time"] for s in stays for r in s.readings)
    assert [r["patient_id"] for r in flat[:6]] == ["301", "302", "303"] * 2  # interleaved
    assert {json.dumps({k: v for k, v in r.items() if k != "seq"}, sort_keys=True) for r in flat} \
        == {json.dumps(r, sort_keys=True) for s in stays for r in s.readings}
    assert (summary.admitted, summary.already_admitted, summary.patients) == (2, 1, 3)
    assert (summary.sent, summary.stored, summary.duplicates, summary.rejected) == (15, 15, 0, 0)
    assert (summary.batches, summary.resends, summary.unanswered) == (4, 0, 0)
    assert summary.next_seq == 1015
    # a second replay continuing at next_seq stores everything again under new seqs
    again = _run(server, stays, start_seq=summary.next_seq)
    assert again.stored == 15 and again.already_admitted == 3
    assert sorted(server.stored) == list(range(1000, 1030))


def test_a_503_and_a_refused_connection_are_retried_without_losing_or_doubling_readings():
    # requests: 3 admissions, then batches; the 2nd batch meets a 503, the 3rd a refused connection
    server = FakeMonitor(fail={5: "503", 7: "connect"})
    sleeps: list[float] = []
    summary = _run(server, _stays(), backoff_s=0.5, sleep=sleeps.append)
    batches = _sent(server)
    assert [b[0]["seq"] for b in batches] == [1, 5, 5, 9, 9, 13]  # resent unchanged
    assert batches[1] == batches[2]
    assert sorted(server.stored) == list(range(1, 16))
    assert (summary.sent, summary.stored, summary.duplicates, summary.resends) == (15, 15, 0, 2)
    assert sleeps == [0.5, 0.5]


def test_an_answer_lost_after_the_commit_is_resent_and_counted_as_duplicates():
    server = FakeMonitor(fail={5: "lost"})
    summary = _run(server, _stays())
    assert sorted(server.stored) == list(range(1, 16))
    assert (summary.sent, summary.stored, summary.duplicates, summary.unanswered) == (15, 11, 4, 0)


def test_rejections_are_counted_by_reason_and_alerts_are_kept():
    stays = _stays(3)
    hot = dict(stays[0].readings[1], temperature=20.5)
    fast = dict(stays[1].readings[2], pulse=140)
    stays[0] = Stay("301", False, 48.0, None, 1.0, START,
                    (stays[0].readings[0], hot, stays[0].readings[2]))
    stays[1] = Stay("302", False, 48.0, None, 1.0, START, (*stays[1].readings[:2], fast))
    ghost = Stay("999", None, None, None, 0.0, START, ({"patient_id": "999", "time": _at(1)},))
    server = FakeMonitor(forget={"999"})  # admitted, then gone before its reading: unknown
    summary = _run(server, [*stays, ghost])
    assert (summary.sent, summary.stored, summary.rejected, summary.unanswered) == (10, 8, 2, 0)
    assert summary.rejected_reasons == {"temperature # is outside #-# C": 1, "unknown patient #": 1}
    assert summary.alerts == 1 and summary.alert_events[0]["patient_id"] == "302"
    assert "  rejected 1: unknown patient #" in summary.lines()


def test_the_replay_gives_up_after_max_tries_naming_what_failed():
    server = FakeMonitor(fail={n: "503" for n in range(1, 10)})
    with pytest.raises(ReplayError, match=r"admitting patient 301: HTTP 503 .*after 3 tries"):
        _run(server, _stays(), max_tries=3)
    assert len(server.requests) == 3


def test_a_refused_key_stops_at_once_and_no_output_holds_a_key(caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server = FakeMonitor()
    with _client(server) as client, pytest.raises(ReplayError) as refused:
        replay("http://127.0.0.1:8000", "wrong-" + DEVICE_KEY, SYSTEM_KEY, _stays(), client=client,
               speed=0, backoff_s=0, progress=False)
    assert "HTTP 401" in str(refused.value) and "unknown API key" in str(refused.value)
    assert len(_sent(server)) == 1  # not retried
    failing = FakeMonitor(fail={n: "503" for n in range(1, 20)})
    with _client(failing) as client, pytest.raises(ReplayError) as gave_up:
        replay("http://127.0.0.1:8000", DEVICE_KEY, SYSTEM_KEY, _stays(), client=client,
               max_tries=3, backoff_s=0, progress=False)
    summary = _run(FakeMonitor(fail={4: "connect"}), _stays())
    text = "\n".join([str(refused.value), str(gave_up.value), repr(summary), *summary.lines(),
                      json.dumps(summary.as_dict(with_alerts=True)), caplog.text,
                      *capsys.readouterr()])
    assert "try 1/6 failed" in caplog.text  # the retries were logged...
    for key in (DEVICE_KEY, SYSTEM_KEY, DEVICE_KEY[4:20], SYSTEM_KEY[4:20]):
        assert key not in text  # ...without the keys


def test_bad_arguments_are_refused_by_name():
    for kwargs, words in (({"speed": -1}, "speed"), ({"batch_size": 0}, "batch_size"),
                          ({"batch_size": 5001}, "batch_size"), ({"start_seq": -1}, "start_seq")):
        with pytest.raises(ConfigError, match=words):
            _run(FakeMonitor(), _stays(), **kwargs)
    with pytest.raises(ConfigError, match="device_key is empty"):
        replay("http://127.0.0.1:8000", " ", SYSTEM_KEY, _stays(), progress=False)
    with pytest.raises(ConfigError, match="url"):
        replay("127.0.0.1:8000", DEVICE_KEY, SYSTEM_KEY, _stays(), progress=False)


def test_record_time_runs_speed_times_faster_and_due_readings_share_a_batch():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    stays = _stays(3)  # readings at minutes 0,1,2, 10,11,12, 20,21,22
    server = FakeMonitor()
    _run(server, stays, speed=600.0, batch_size=10, sleep=sleep, clock=lambda: now[0])
    # 600x: 10 record minutes are 1 s; minutes 1 and 2 are due 0.1 s and 0.2 s after minute 0
    assert now[0] == pytest.approx(2 * 60 * 10 / 600 + 2 * 60 / 600)
    assert [len(b) for b in _sent(server)] == [1, 1, 1, 1, 1, 1, 1, 1, 1]
    now[0] = 0.0

    def late(seconds: float) -> None:  # a sender that wakes 5 s late catches up in one batch
        now[0] += seconds + 5

    server = FakeMonitor()
    _run(server, stays, speed=600.0, batch_size=10, sleep=late, clock=lambda: now[0])
    assert [len(b) for b in _sent(server)] == [1, 8]
    server = FakeMonitor()
    _run(server, stays, speed=600.0, batch_size=3, sleep=late, clock=lambda: now[0])
    assert [len(b) for b in _sent(server)] == [1, 3, 3, 2]


# --- the command -------------------------------------------------------------------------------

def test_the_command_needs_its_key_variables_and_never_repeats_a_pasted_key(capsys, crafted,
                                                                             monkeypatch):
    monkeypatch.delenv("IATROS_TEST_DEVICE_KEY", raising=False)
    monkeypatch.setenv("IATROS_TEST_SYSTEM_KEY", SYSTEM_KEY)
    args = ("--system-key-env", "IATROS_TEST_SYSTEM_KEY", "--data-root", str(crafted))
    code, out, err = run_cli(capsys, "monitor", "replay", "--device-key-env",
                             "IATROS_TEST_DEVICE_KEY", *args)
    assert code == 2 and "environment variable IATROS_TEST_DEVICE_KEY is not set" in err
    # a key given where the variable's name belongs: with a "-" it is no name at all; without,
    # it is a possible name, unset, and still not repeated
    for pasted in ("iat_0a1b2c3d4e5f_" + "x-Y" * 14, "iat_0a1b2c3d4e5f_" + "xY_9" * 10,
                   "dev_" + "aZ" * 20):
        code, out, err = run_cli(capsys, "monitor", "replay", "--device-key-env", pasted, *args)
        assert code == 2 and "--device-key-env" in err, err
        assert pasted not in out + err and pasted[4:20] not in out + err
    assert SYSTEM_KEY not in out + err


def test_the_command_replays_a_data_root_and_prints_no_key(capsys, crafted, monkeypatch):
    server = FakeMonitor()
    real_client = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        return real_client(transport=httpx.MockTransport(server), **kwargs)

    monkeypatch.setattr(replay_module.httpx, "Client", client)
    monkeypatch.setenv("IATROS_TEST_DEVICE_KEY", DEVICE_KEY)
    monkeypatch.setenv("IATROS_TEST_SYSTEM_KEY", SYSTEM_KEY)
    monkeypatch.setenv("IATROS_DATA", str(crafted))  # the default data root
    code, out, err = run_cli(capsys, "monitor", "replay", "--device-key-env", "IATROS_TEST_DEVICE_KEY",
                             "--system-key-env", "IATROS_TEST_SYSTEM_KEY", "--speed", "0",
                             "--start-seq", "41", "--start", "2026-12-07T05:00:00Z", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["stays"], summary["sent"], summary["stored"], summary["rejected"]) == (2, 8, 7, 1)
    assert summary["next_seq"] == 49 and summary["skipped"]["n"] == 2
    assert min(server.stored) == 41 and server.stored[41]["time"] == _at(5)
    assert ("2 stays, 8 readings from set-a (2 skipped (impossible value: 1, disconnected line or "
            "probe: 1))") in err
    assert DEVICE_KEY not in out + err and SYSTEM_KEY not in out + err
    code, out, err = run_cli(capsys, "monitor", "replay", "--device-key-env", "IATROS_TEST_DEVICE_KEY",
                             "--system-key-env", "IATROS_TEST_SYSTEM_KEY", "--speed", "0",
                             "--start-seq", "41", "--start", "2026-12-07T05:00:00Z")
    assert code == 0, err
    assert "duplicates: 7" in out and "next seq: 49" in out and "already admitted" in out
    code, out, err = run_cli(capsys, "monitor", "replay", "--device-key-env", "IATROS_TEST_DEVICE_KEY",
                             "--system-key-env", "IATROS_TEST_SYSTEM_KEY", "--start", "07:00")
    assert code == 2 and "ISO 8601 time with a zone" in err
