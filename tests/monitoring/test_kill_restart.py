"""A real `iatros serve` process killed with SIGKILL while a device streams readings, then
restarted: every reading the server acknowledged is stored exactly once, and the device's
resent batches are recognised as duplicates."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs iatros[serve]")
httpx = pytest.importorskip("httpx", reason="the service needs iatros[serve]")

SECRET = "kill-restart-secret-" + "x" * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from iatros.cli import app; app()", "serve", "--port",
           str(port)]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")


class Device:
    """Streams batches with increasing seq; keeps what was acknowledged and resends a batch
    until an answer comes (as a real device would)."""

    def __init__(self, url: str, key: str, patients: list[str]) -> None:
        self.url, self.key, self.patients = url, key, patients
        self.acked: list[int] = []
        self.answers = 0
        self.failures = 0
        self.seq = 0
        self.clock = time.time() - 3600
        self.stop = threading.Event()

    def batch(self, size: int = 40) -> list[dict[str, Any]]:
        out = []
        for _ in range(size):
            self.seq += 1
            self.clock += 1.0
            out.append({"patient_id": self.patients[self.seq % len(self.patients)],
                        "seq": self.seq, "time": self.clock, "pulse": 60 + self.seq % 50,
                        "spo2": 95})
        return out

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                readings = self.batch()
                while not self.stop.is_set():
                    try:
                        r = client.post(f"{self.url}/api/v1/monitor/readings",
                                        json={"readings": readings},
                                        headers={"X-API-Key": self.key})
                    except httpx.HTTPError:
                        self.failures += 1
                        time.sleep(0.1)
                        continue
                    if r.status_code != 200:
                        self.failures += 1
                        time.sleep(0.1)
                        continue
                    body = r.json()
                    assert not body["rejected"], body["rejected"]
                    self.acked += body["stored"] + body["duplicates"]
                    self.answers += 1
                    break


def test_acknowledged_readings_survive_sigkill_exactly_once(tmp_path: Path,
                                                            iatros_home: Path) -> None:
    from iatros.access.store import AccessStore, open_engine
    from iatros.monitoring.store import MonitorStore
    from iatros.settings import get_settings

    iatros_home.mkdir(parents=True, exist_ok=True)
    url = get_settings().database_url
    store = AccessStore(open_engine(url))
    _, device_key = store.create_key("bed-1", "device")
    _, system_key = store.create_key("adt", "system")
    env = {**os.environ, "IATROS_SERVE_SECRET": SECRET, "IATROS_HOME": str(iatros_home),
           "IATROS_THREADS": "1"}
    port, log = _free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _start(port, env, log)
    try:
        patients = [f"p{i}" for i in range(5)]
        for p in patients:
            r = httpx.post(f"{base}/api/v1/monitor/patients", json={"patient_id": p,
                                                                    "ward": "w1"},
                           headers={"X-API-Key": system_key})
            assert r.status_code == 201, r.text
        device = Device(base, device_key, patients)
        thread = threading.Thread(target=device.run, daemon=True)
        thread.start()
        while device.answers < 15:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)    # mid-stream: the device is sending
        server.wait(10)
        killed_at = device.answers
        server = _start(port, env, log)
        while device.answers < killed_at + 15:
            time.sleep(0.01)
        device.stop.set()
        thread.join(30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    assert device.failures > 0, "the kill did not interrupt the stream"
    monitor_store = MonitorStore(open_engine(url))
    counts = monitor_store.stored_pairs([("bed-1", s) for s in sorted(set(device.acked))])
    assert set(counts.values()) == {1}, "an acknowledged reading is missing"
    # nothing beyond what was sent; a batch cut by the kill may be stored without its answer
    stored = monitor_store.count_readings("bed-1")
    assert len(set(device.acked)) <= stored <= device.seq
