"""`iatros monitor replay --ecg`: real PhysioNet 2017 recordings (where this machine has them)
become ECG readings, one patient per recording, cut into segments whose samples are the file's,
then go through the same batching, seq and resend machinery against the fake service of
test_replay; the command counts the labels, never sends them, and prints no key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from iatros.data.signals import read_signal
from iatros.errors import ConfigError, MissingDataError
from iatros.monitoring import replay as replay_module
from iatros.monitoring.readings import parse_reading
from iatros.monitoring.replay import SkipLog, ecg_readings, replay, segment_bounds
from tests.cli_run import run_cli
from tests.monitoring.test_replay import DEVICE_KEY, SYSTEM_KEY, FakeMonitor
from tests.monitoring.test_rhythm import PHYSIONET_2017

START = datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)
# name -> (label, seconds): an AF record of 30 s, a noisy one of 30 s, a normal one of 60 s,
# an AF one of 42.3 s (a 12.3 s tail: its own segment)
RECORDS = {"A00614": ("A", 30.0), "A00705": ("~", 30.0), "A00250": ("N", 60.0),
           "A00264": ("A", 42.3)}


@pytest.fixture
def ecg_root(tmp_path: Path) -> Path:
    """A data root with four real records, a malformed line, an unknown label and a record whose
    files are missing."""
    if not (PHYSIONET_2017 / "REFERENCE.csv").is_file():
        pytest.skip(f"PhysioNet 2017 records are absent under {PHYSIONET_2017}")
    folder = tmp_path / "physionet2017_af" / "training2017"
    folder.mkdir(parents=True)
    for name in RECORDS:
        for suffix in (".hea", ".mat"):
            (folder / f"{name}{suffix}").symlink_to(PHYSIONET_2017 / f"{name}{suffix}")
    lines = [f"{n},{label}" for n, (label, _) in RECORDS.items()]
    (folder / "REFERENCE.csv").write_text("\n".join(
        [*lines[:2], "A00001;N", "A00002,X", *lines[2:], "A09999,N"]) + "\n")
    return tmp_path


def test_segment_bounds_cover_every_sample_and_join_a_short_tail() -> None:
    assert segment_bounds(9000, 300.0, 30) == [(0, 9000)]
    assert segment_bounds(18000, 300.0, 30) == [(0, 9000), (9000, 18000)]
    assert segment_bounds(9900, 300.0, 30) == [(0, 9900)]                 # 3 s tail joins
    assert segment_bounds(10_500, 300.0, 30) == [(0, 9000), (9000, 10_500)]  # 5 s tail stays
    assert segment_bounds(1200, 300.0, 30) == []                          # under 5 s: none
    assert segment_bounds(18_300, 300.0, 10) == [(0, 3000), (3000, 6000), (6000, 9000),
                                                 (9000, 12_000), (12_000, 15_000),
                                                 (15_000, 18_300)]


def test_real_records_become_segments_of_their_own_samples(ecg_root: Path) -> None:
    skips = SkipLog()
    records = ecg_readings(ecg_root, start=START, skips=skips)
    assert [(r.patient_id, r.label) for r in records] == [(n, lab) for n, (lab, _) in
                                                          RECORDS.items()]
    assert skips.by_reason() == {"malformed line": 1, "unknown label": 1,
                                 "unreadable record": 1}
    assert {s.where for s in skips.items} >= {"REFERENCE.csv:3", "REFERENCE.csv:4",
                                              "training2017/A09999"}
    for record in records:
        label, seconds = RECORDS[record.patient_id]
        assert abs(record.seconds - seconds) < 0.05 and record.start == START
        x = read_signal(PHYSIONET_2017 / f"{record.patient_id}.hea").data[:, 0]
        sent = np.concatenate([r["ecg"]["samples"] for r in record.readings])
        assert np.array_equal(sent, x)                                 # every sample, once
        for k, r in enumerate(record.readings):
            assert r["patient_id"] == record.patient_id and "seq" not in r
            assert r["time"] == (START + timedelta(seconds=30 * k)).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert r["ecg"]["fs"] == 300 and r["ecg"]["lead"] == "ECG"
            assert set(r) == {"patient_id", "time", "ecg"}                  # no label sent
    assert [len(r.readings) for r in records] == [1, 1, 2, 2]
    # each reading passes the service's own checks
    wire = replay_module._wire(records[2].readings[1])
    checked = parse_reading({**wire, "seq": 1}, START.timestamp() + 3600)
    assert checked.ecg is not None and checked.ecg.seconds == 30.0
    chosen = ecg_readings(ecg_root, 2, seed=3, labels=["A"], segment_s=10, start=START)
    assert sorted(r.patient_id for r in chosen) == ["A00264", "A00614"]
    assert [len(r.readings) for r in chosen] == [3, 4]


def test_bad_ecg_arguments_and_a_missing_folder_are_refused_by_name(ecg_root: Path,
                                                                     tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="segment_s must be 5-55"):
        ecg_readings(ecg_root, segment_s=60)
    with pytest.raises(ConfigError, match="unknown ECG label"):
        ecg_readings(ecg_root, labels=["AF"])
    with pytest.raises(ConfigError, match="time zone"):
        ecg_readings(ecg_root, start=datetime(2026, 12, 7))
    with pytest.raises(MissingDataError, match="PhysioNet 2017 validation not found"):
        ecg_readings(ecg_root, part="validation")
    default = ecg_readings(ecg_root, 1)
    latest = max(r["time"] for rec in default for r in rec.readings)
    assert latest <= datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_segments_stream_in_time_order_with_continuing_seq_and_survive_a_503(
        ecg_root: Path) -> None:
    records = ecg_readings(ecg_root, start=START)
    server = FakeMonitor(fail={6: "503", 7: "lost"})
    with httpx.Client(transport=httpx.MockTransport(server)) as client:
        summary = replay("http://127.0.0.1:8000", DEVICE_KEY, SYSTEM_KEY, records, speed=0,
                         batch_size=2, start_seq=10, backoff_s=0.0, client=client,
                         progress=False)
    assert (summary.patients, summary.admitted, summary.sent, summary.batches) == (4, 4, 6, 3)
    # batch 2: a 503, then stored but the answer lost, then answered as duplicates
    assert (summary.stored, summary.duplicates, summary.resends) == (4, 2, 2)
    assert sorted(server.stored) == list(range(10, 16)) and summary.next_seq == 16
    stored = [server.stored[s] for s in sorted(server.stored)]
    assert [r["time"] for r in stored] == sorted(r["time"] for r in stored)
    assert [r["patient_id"] for r in stored[:4]] == list(RECORDS)           # all start at START
    for r in stored:
        assert isinstance(r["ecg"]["samples"], list) and r["ecg"]["fs"] == 300
    x = read_signal(PHYSIONET_2017 / "A00250.hea").data[:, 0]
    second = next(r for r in stored if r["patient_id"] == "A00250" and r["time"] > stored[0]["time"])
    assert np.array_equal(np.asarray(second["ecg"]["samples"]), x[9000:])


def test_the_command_replays_ecgs_counting_labels_and_prints_no_key(capsys, ecg_root: Path,
                                                                    monkeypatch) -> None:
    server = FakeMonitor()
    real_client = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        return real_client(transport=httpx.MockTransport(server), **kwargs)

    monkeypatch.setattr(replay_module.httpx, "Client", client)
    monkeypatch.setenv("IATROS_TEST_DEVICE_KEY", DEVICE_KEY)
    monkeypatch.setenv("IATROS_TEST_SYSTEM_KEY", SYSTEM_KEY)
    keys = ("--device-key-env", "IATROS_TEST_DEVICE_KEY", "--system-key-env",
            "IATROS_TEST_SYSTEM_KEY")
    code, out, err = run_cli(capsys, "monitor", "replay", *keys, "--ecg", "--data-root",
                             str(ecg_root), "--speed", "0", "--labels", "A,~",
                             "--start", "2026-12-07T05:00:00Z", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["records"] == 3 and summary["labels"] == {"A": 2, "~": 1}
    assert (summary["sent"], summary["stored"], summary["next_seq"]) == (4, 4, 5)
    assert summary["batches"] == 1 and summary["skipped"]["n"] == 2   # 20 segments a batch
    assert "3 ECG recordings (A 2, ~ 1), 4 readings from training2017" in err
    assert set(server.admitted) == {"A00614", "A00705", "A00264"}
    assert all("label" not in json.dumps(b) for _, _, b in server.requests)
    assert DEVICE_KEY not in out + err and SYSTEM_KEY not in out + err
    code, out, err = run_cli(capsys, "monitor", "replay", *keys, "--labels", "A",
                             "--data-root", str(ecg_root))
    assert code == 2 and "--labels chooses ECG recordings: use it with --ecg" in err
