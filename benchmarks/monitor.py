"""Remote monitoring under load and on real stays (issue: remote and bedside monitoring).

    python benchmarks/monitor.py --data-root ../shared/data [--part quality|ingest|latency|kill]

- quality: every PhysioNet 2012 set-A stay (4,000 ICU stays, first 48 h; in-hospital death from
  Outcomes-a) replayed in record-time order through the monitor (`monitoring.engine.Monitor` on
  SQLite in WAL mode with full sync, the code the service runs), each stay its own device, and
  every alert acknowledged at once (a nurse who answers everything, so the hold after an
  acknowledgement, 60 minutes of record time, decides how often a patient re-alerts). Reported:
  how many of the stays that died had a high NEWS2 alert (NEWS2 >= 7) or any alert, how many
  hours before the end of the record the first one came, alerts per patient-day among
  survivors, and the AUROC of the highest NEWS2 of the record for death. NEWS2's thresholds are
  the RCP's; nothing was tuned on these stays. Mapping caveats (SaO2 for SpO2, GCS for ACVPU):
  see `monitoring/replay.py`.
- model: the deterioration model beside NEWS2 on the held-out stays of its own split: an
  `icu-mortality-vitals` gradient-boosting run (seed 0, trained here) scored every 60 minutes of
  record time on each stay's readings so far, alerting above the threshold that finds 80% of the
  validation deaths.
- ingest: `iatros serve` on 127.0.0.1 (auth and audit on), two device clients sending
  pre-encoded HTTP batches of 1,000 readings as fast as they are answered; readings stored per
  second of wall time, the server's peak memory (VmHWM).
- latency: the same server at 1,000 readings/s (10 readings every 10 ms; one batch in ten holds
  a reading that makes a fresh patient's NEWS2 high); the time from sending that batch to the
  alert arriving on a clinician's `/api/v1/monitor/events` WebSocket, and each batch's answer.
- kill: a device streams batches; the server is killed with SIGKILL mid-stream and restarted;
  the device resends what was not answered; every acknowledged reading must be stored exactly
  once (counted in the database).

The clients run on the same 2 cores as the server.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_tables import Table, command_line, timing_note, write_tables  # noqa: E402

PASSWORD = "benchmark-password-1"
TARGETS = {"ingest": 10_000.0, "p99_ms": 100.0}
NORMAL = {"pulse": 80, "respiration_rate": 16, "spo2": 97, "on_oxygen": False,
          "systolic_bp": 125, "temperature": 37.0, "consciousness": "A"}
SICK = {**NORMAL, "pulse": 135, "respiration_rate": 27, "spo2": 90, "systolic_bp": 88}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("IATROS_DATA", "../shared/data")))
    p.add_argument("--part", choices=("all", "quality", "model", "ingest", "latency", "kill"),
                   default="all")
    p.add_argument("--stays", type=int, default=None, help="Set-A stays to replay (all: 4,000).")
    p.add_argument("--readings", type=int, default=300_000, help="Readings in the ingest part.")
    p.add_argument("--seconds", type=float, default=30.0, help="Length of the latency part.")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "iatros-monitor-bench",
                   help="Where the deterioration model's run is trained (reused when complete).")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--no-write", action="store_true", help="Print only; do not write results.")
    return p.parse_args(argv)


# --- quality ---------------------------------------------------------------------------------

def replay_in_process(stays: list[Any], db: Path, scorers: Sequence[Any] = ()) -> dict[str, Any]:
    """Feed every stay's readings in record-time order; acknowledge each alert at once. Per
    alert kind ("news2 high" counts NEWS2 alerts at high severity): the first alert's record
    time and the alerts opened per stay."""
    from iatros.access.store import open_engine
    from iatros.monitoring.engine import Monitor
    from iatros.monitoring.store import MonitorStore

    monitor = Monitor(MonitorStore(open_engine(f"sqlite:///{db}")))
    monitor.scorers.extend(scorers)
    for stay in stays:
        monitor.admit(stay.patient_id, "icu")
    first: dict[str, dict[str, float]] = defaultdict(dict)
    opened: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    max_news2: dict[str, int] = defaultdict(int)
    max_risk: dict[str, float] = defaultdict(float)
    to_ack: list[int] = []

    def listen(event: dict[str, Any]) -> None:
        pid = event["patient_id"]
        if event["type"] == "reading":
            max_news2[pid] = max(max_news2[pid], event["news2"]["score"])
            for result in event["results"].values():
                if "probability" in result:
                    max_risk[pid] = max(max_risk[pid], result["probability"])
            return
        if event["type"] != "alert":
            return
        kinds = [event["kind"]] + (["news2 high"] if event["kind"] == "news2"
                                   and event["severity"] == "high" else [])
        for kind in kinds:
            first[kind].setdefault(pid, event["reading_time"])
            # an open NEWS2 alert raised to high counts as a high alert
            if not event["update"] or kind == "news2 high":
                opened[kind][pid] += 1
        to_ack.append(event["id"])

    monitor.listeners.append(listen)
    rows = sorted(((r["time"], s.patient_id, r) for s in stays for r in s.readings),
                  key=lambda x: (x[0], x[1]))
    seq: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    i = 0
    from tqdm.auto import tqdm

    with tqdm(total=len(rows), desc="replaying", unit="reading", disable=None) as bar:
        while i < len(rows):
            stamp = rows[i][0]
            per_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
            while i < len(rows) and rows[i][0] == stamp:
                _, pid, reading = rows[i]
                seq[pid] += 1
                per_device[pid].append({**reading, "seq": seq[pid]})
                i += 1
            for pid, batch in per_device.items():
                monitor.ingest(f"bed-{pid}", batch)
                for alert_id in to_ack:
                    monitor.acknowledge(alert_id, "nurse")
                to_ack.clear()
            bar.update(sum(len(b) for b in per_device.values()))
    seconds = time.perf_counter() - t0
    return {"first": first, "opened": opened, "max_news2": max_news2, "max_risk": max_risk,
            "readings": len(rows), "seconds": seconds}


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def alert_rows(stays: list[Any], got: dict[str, Any], kinds: dict[str, str],
               n_boot: int) -> list[list[str]]:
    """One row per alert kind: stays that died with one, how early, survivors without one,
    alerts per survivor-day (95% CIs by bootstrap over stays)."""
    from iatros.evaluate.metrics import evaluate

    died = np.array([s.died for s in stays], dtype=int)
    end = {s.patient_id: _epoch(s.readings[-1]["time"]) for s in stays}
    days = np.array([max(s.record_hours, 1 / 60) / 24 for s in stays])
    ids = [s.patient_id for s in stays]
    rows = []
    for kind, label in kinds.items():
        first = got["first"].get(kind, {})
        flag = np.array([pid in first for pid in ids], dtype=float)
        m = evaluate(died, flag, "binary", metrics=["sensitivity", "specificity"],
                     threshold=0.5, n_boot=n_boot)
        early = [(end[pid] - first[pid]) / 3600 for pid, d in zip(ids, died, strict=True)
                 if d and pid in first]
        q1, med, q3 = np.percentile(early, [25, 50, 75]) if early else (np.nan,) * 3
        counts = np.array([got["opened"].get(kind, {}).get(pid, 0) for pid in ids], dtype=float)
        rows.append([label, _ci(m["sensitivity"]), f"{med:.1f} ({q1:.1f}-{q3:.1f})",
                     _ci(m["specificity"]), _rate_ci(counts[died == 0], days[died == 0], n_boot)])
    return rows


ALERT_COLUMNS = ["alert", "stays that died with one", "hours before end of record, median (IQR)",
                 "survivors without one", "alerts per survivor-day"]
NEWS2_KINDS = {"news2 high": "high NEWS2 alert (>= 7)", "news2": "any NEWS2 alert"}
CAVEAT = ("SaO2 (blood gas, about two per stay) stands in for SpO2; GCS for ACVPU (sedated "
          "patients read P or U, which scores 3): NEWS2 here is a lower bound on many readings "
          "and the consciousness sub-score is inflated by sedation.")


def quality(data_root: Path, n_stays: int | None, n_boot: int) -> Table:
    from iatros.evaluate.metrics import evaluate
    from iatros.monitoring.replay import physionet_readings

    stays = [s for s in physionet_readings(data_root, "set-a", stays=n_stays) if s.died is not None
             and s.readings]
    with tempfile.TemporaryDirectory() as tmp:
        got = replay_in_process(stays, Path(tmp) / "monitor.db")
    died = np.array([s.died for s in stays], dtype=int)
    max_news2 = np.array([got["max_news2"][s.patient_id] for s in stays], dtype=float)
    auroc = evaluate(died, max_news2, "binary", metrics=["auroc"], n_boot=n_boot)["auroc"]
    n_died = int(died.sum())
    return Table(
        ALERT_COLUMNS, alert_rows(stays, got, NEWS2_KINDS, n_boot), command_line(),
        [f"PhysioNet 2012 set A: {len(stays)} stays with readings ({n_died} died), "
         f"{got['readings']:,} readings replayed in {got['seconds']:.0f} s in-process (SQLite "
         f"WAL, full sync). 95% CIs: bootstrap over stays ({n_boot}). Every alert acknowledged "
         f"at once; re-alerts wait for the 60-minute hold unless more severe.",
         f"AUROC of the highest NEWS2 of the first 48 h for in-hospital death: {_ci(auroc)}.",
         "Stays that died: the first alert counted; 'hours before end of record' is from it to "
         "the stay's last reading (records stop at 48 h, deaths may come later).", CAVEAT])


def model_quality(data_root: Path, n_boot: int, work: Path) -> Table:
    """NEWS2 and the deterioration model side by side on the model's own test stays."""
    import pandas as pd

    from iatros import api
    from iatros.api.monitor_model import DeteriorationScorer, deterioration_scorer
    from iatros.evaluate.metrics import evaluate, threshold_at_sensitivity
    from iatros.monitoring.replay import physionet_readings

    run = work / "icu-mortality-vitals-gbm-s0"
    if not (run / "manifest.json").is_file():
        api.train("icu-mortality-vitals", data_root=data_root, model="gbm", seed=0, out=run,
                  register=False)
    frame = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    read_stays = physionet_readings(data_root, "set-a")

    def part(split: str) -> list[Any]:
        ids = set(frame.loc[frame["split"] == split, "patient_id"])
        return [s for s in read_stays if s.patient_id in ids and s.died is not None
                and s.readings]
    val, test = part("val"), part("test")
    # the alert fires on the running risk, so its threshold is chosen on the validation stays'
    # highest hourly risk (the statistic that decides an alert), not on their 48-hour risk
    per_stay = DeteriorationScorer(run).threshold
    name, silent = deterioration_scorer(run, every_minutes=60, threshold=1.01)
    with tempfile.TemporaryDirectory() as tmp:
        on_val = replay_in_process(val, Path(tmp) / "val.db", [(name, silent)])
    val_died = np.array([s.died for s in val], dtype=int)
    val_max = np.array([on_val["max_risk"][s.patient_id] for s in val])
    threshold = float(threshold_at_sensitivity(val_died, val_max, 0.8))
    name, scorer = deterioration_scorer(run, every_minutes=60, threshold=threshold)
    with tempfile.TemporaryDirectory() as tmp:
        got = replay_in_process(test, Path(tmp) / "test.db", [(name, scorer)])
    kinds = {**NEWS2_KINDS, "model:icu-mortality-vitals": f"model {name}, hourly risk >= "
                                                            f"{threshold:.3f}"}
    died = np.array([s.died for s in test], dtype=int)
    once = json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]
    auroc = {what: evaluate(died, np.array([got[key][s.patient_id] for s in test], dtype=float),
                            "binary", metrics=["auroc"], n_boot=n_boot)["auroc"]
             for what, key in (("NEWS2", "max_news2"), ("the model's risk", "max_risk"))}
    return Table(
        ALERT_COLUMNS, alert_rows(test, got, kinds, n_boot), command_line(),
        [f"The test split (seed 0) of icu-mortality-vitals: {len(test)} set-A stays "
         f"({int(died.sum())} died), never seen in training; the model (gradient boosting on the "
         f"bedside vitals of the training stays) scored every 60 minutes of record time on the "
         f"readings so far (at most 48 h). Its threshold: the highest that alerts on 80% of the "
         f"{int(val_died.sum())} deaths among the {len(val)} validation stays replayed the same "
         f"way (the threshold on the validation stays' 48-hour risk, {per_stay.value:.3f}, "
         f"alerts on nearly every stay when checked hourly). {got['readings']:,} test readings "
         f"in {got['seconds']:.0f} s. 95% CIs: bootstrap over stays ({n_boot}); alerts "
         f"acknowledged at once as above.",
         "AUROC for in-hospital death of the highest value over the record: "
         + "; ".join(f"{k} {_ci(v)}" for k, v in auroc.items()) + f"; the run's own test "
         f"AUROC, one prediction per stay on its full 48 h: {_ci(once)}.", CAVEAT])


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m["ci95"]
    return f"{m['value']:.3f} ({lo:.3f}-{hi:.3f})"


def _rate_ci(counts: np.ndarray, days: np.ndarray, n_boot: int) -> str:
    rng = np.random.default_rng(0)
    point = counts.sum() / days.sum()
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(counts), len(counts))
        boots.append(counts[pick].sum() / days[pick].sum())
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return f"{point:.2f} ({lo:.2f}-{hi:.2f})"


# --- the server ------------------------------------------------------------------------------

class Server:
    """`iatros serve` in a fresh workspace, with a device key per client, a system key and an
    admin user."""

    def __init__(self, port: int, devices: int = 2) -> None:
        from iatros.access.store import AccessStore, open_engine

        self.tmp = tempfile.TemporaryDirectory()
        self.home = Path(self.tmp.name) / "home"
        self.home.mkdir()
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.db = f"sqlite:///{self.home / 'registry.db'}"
        store = AccessStore(open_engine(self.db))
        self.devices = [store.create_key(f"bed-{i}", "device")[1] for i in range(devices)]
        self.system = store.create_key("adt", "system")[1]
        store.add_user("ada", PASSWORD, "admin")
        self.env = {**os.environ, "IATROS_HOME": str(self.home), "IATROS_LOG": "WARNING",
                    "IATROS_SERVE_SECRET": secrets.token_urlsafe(40),
                    "IATROS_DATABASE_URL": self.db}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import httpx

        iatros = Path(sys.executable).parent / "iatros"
        self.proc = subprocess.Popen([str(iatros), "serve", "--port", str(self.port),
                                      "--rate", "1000000", "--device-rate", "10000000"],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {self.proc.stderr.read().decode()[-2000:]}")
        raise SystemExit("the server did not start within 60 s")

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def admit(self, patients: Sequence[str]) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            for pid in patients:
                r = client.post(f"{self.url}/api/v1/monitor/patients",
                                json={"patient_id": pid, "ward": "w1"},
                                headers={"X-API-Key": self.system})
                if r.status_code != 201:
                    raise SystemExit(f"admission of {pid} failed: {r.text[:300]}")

    def token(self) -> str:
        import httpx

        r = httpx.post(f"{self.url}/api/v1/auth/token", data={"username": "ada",
                                                              "password": PASSWORD})
        return str(r.json()["access_token"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def close(self) -> None:
        self.stop()
        self.tmp.cleanup()


def _body(patients: Sequence[str], first_seq: int, n: int, t0: float,
          values: dict[str, Any] | None = None) -> bytes:
    readings = [{"patient_id": patients[(first_seq + i) % len(patients)], "seq": first_seq + i,
                 "time": t0 + (first_seq + i) * 1e-3, **(values or {"pulse": 70 + i % 20,
                                                                      "spo2": 97})}
                for i in range(n)]
    return json.dumps({"readings": readings}).encode()


def ingest(port: int, total: int) -> Table:
    import httpx

    server = Server(port)
    try:
        server.start()
        patients = [f"p{i}" for i in range(200)]
        server.admit(patients)
        per_client, batch = total // 2, 1000
        t_base = time.time() - 7 * 86400
        bodies = [[_body(patients, 1 + k * batch, batch, t_base)
                   for k in range(per_client // batch)] for _ in server.devices]
        stored = [0, 0]

        def send(index: int) -> None:
            with httpx.Client(timeout=60) as client:
                for body in bodies[index]:
                    r = client.post(f"{server.url}/api/v1/monitor/readings", content=body,
                                    headers={"X-API-Key": server.devices[index],
                                             "Content-Type": "application/json"})
                    stored[index] += len(r.json()["stored"])

        t0 = time.perf_counter()
        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        rss = server.peak_rss_mib()
    finally:
        server.close()
    rate = sum(stored) / seconds
    return Table(["readings", "batch", "clients", "seconds", "readings/s", "target", "server peak MiB"],
                 [[f"{sum(stored):,}", "1,000", "2", f"{seconds:.1f}", f"{rate:,.0f}",
                   f">= {TARGETS['ingest']:,.0f}", f"{rss:.0f}"]], command_line(),
                 ["HTTP batches to `iatros serve` (one uvicorn process, audit on, SQLite WAL full "
                  "sync); a reading counts when its batch's answer listed it as stored. "
                  "200 patients, pulse and SpO2 per reading, NEWS2 scored after every reading.",
                  timing_note()])


def latency(port: int, seconds: float) -> Table:
    import httpx
    from websockets.sync.client import connect

    server = Server(port, devices=1)
    try:
        server.start()
        normal = [f"n{i}" for i in range(50)]
        fresh = [f"a{i}" for i in range(int(seconds * 10) + 10)]
        server.admit(normal + fresh)
        token = server.token()
        sent_at: dict[str, float] = {}
        alert_ms: list[float] = []
        done = threading.Event()
        ready = threading.Event()

        def listen() -> None:
            ws_url = server.url.replace("http", "ws") + "/api/v1/monitor/events"
            with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                ready.set()
                while not done.is_set():
                    try:
                        event = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if event["type"] == "alert" and event["patient_id"] in sent_at:
                        alert_ms.append((time.perf_counter() - sent_at[event["patient_id"]])
                                        * 1000)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        ready.wait(30)
        answer_ms: list[float] = []
        seq, k = 0, 0
        t0 = time.perf_counter()
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() - t0 < seconds:
                due = t0 + k * 0.010
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                now = time.time() - 60
                readings = [{"patient_id": normal[(seq + i) % len(normal)], "seq": seq + i,
                             "time": now, "pulse": 75, "spo2": 97} for i in range(10)]
                trigger = None
                if k % 10 == 0 and k // 10 < len(fresh):
                    trigger = fresh[k // 10]
                    readings[-1] = {"patient_id": trigger, "seq": seq + 9, "time": now, **SICK}
                seq += 10
                start = time.perf_counter()
                if trigger:
                    sent_at[trigger] = start
                client.post(f"{server.url}/api/v1/monitor/readings",
                            json={"readings": readings}, headers={"X-API-Key": server.devices[0]})
                answer_ms.append((time.perf_counter() - start) * 1000)
                k += 1
        wall = time.perf_counter() - t0
        time.sleep(1.0)
        done.set()
        listener.join(5)
        rss = server.peak_rss_mib()
    finally:
        server.close()
    rate = seq / wall
    p = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return Table(["readings/s offered", "alerts", "reading-to-alert p50 ms", "p99 ms", "target p99",
                  "batch answer p50 ms", "p99 ms", "server peak MiB"],
                 [[f"{rate:,.0f}", f"{len(alert_ms)} of {len(sent_at)}",
                   f"{p(alert_ms, 50):.1f}", f"{p(alert_ms, 99):.1f}",
                   f"< {TARGETS['p99_ms']:.0f}", f"{p(answer_ms, 50):.1f}",
                   f"{p(answer_ms, 99):.1f}", f"{rss:.0f}"]], command_line(),
                 ["10 readings every 10 ms from one device over HTTP; one batch in ten carries a "
                  "reading that makes a fresh patient's NEWS2 high. Reading-to-alert: from sending "
                  "that batch to the alert on an admin's events WebSocket (same machine).",
                  timing_note()])


def kill_check(port: int) -> Table:
    import httpx

    from iatros.access.store import open_engine
    from iatros.monitoring.store import MonitorStore

    server = Server(port, devices=1)
    acked: list[int] = []
    sent = 0
    failures = 0
    try:
        server.start()
        patients = [f"p{i}" for i in range(20)]
        server.admit(patients)
        t_base = time.time() - 86400
        kill_after, total = 40, 100
        answered = 0
        with httpx.Client(timeout=10) as client:
            k = 0
            while answered < total:
                body = _body(patients, 1 + k * 200, 200, t_base)
                sent = max(sent, (k + 1) * 200)
                if answered == kill_after and server.proc is not None and failures == 0:
                    # kill while this batch is in flight
                    killer = threading.Timer(0.002, server.proc.send_signal, (signal.SIGKILL,))
                    killer.start()
                try:
                    r = client.post(f"{server.url}/api/v1/monitor/readings", content=body,
                                    headers={"X-API-Key": server.devices[0],
                                             "Content-Type": "application/json"})
                    result = r.json()
                    acked += result["stored"] + result["duplicates"]
                    answered += 1
                    k += 1
                except httpx.HTTPError:
                    failures += 1
                    server.proc.wait(30)
                    server.start()      # the device resends the same batch
        server.stop()
        store = MonitorStore(open_engine(server.db))
        counts = store.stored_pairs([("bed-0", s) for s in sorted(set(acked))])
        lost = sum(1 for n in counts.values() if n == 0)
        duplicated = sum(1 for n in counts.values() if n > 1)
        stored = store.count_readings("bed-0")
    finally:
        server.close()
    return Table(["batches answered", "readings acknowledged", "kills", "stored", "lost",
                  "stored twice"],
                 [[str(answered), f"{len(set(acked)):,}", str(failures), f"{stored:,}",
                   str(lost), str(duplicated)]], command_line(),
                 ["SIGKILL 2 ms after the 41st batch of 200 readings was sent; the device "
                  "resends the unanswered batch to the restarted server. 'lost': acknowledged "
                  "but not in the database; 'stored twice': counted twice for one (device, seq). "
                  "Target: 0 and 0. SIGKILL tests a process crash, not a power cut (SQLite "
                  "synchronous=FULL is what covers that; not tested here)."])


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    tables: dict[str, Table] = {}
    if args.part in ("all", "quality"):
        tables["quality"] = quality(args.data_root, args.stays, args.n_boot)
    if args.part in ("all", "model"):
        tables["model"] = model_quality(args.data_root, args.n_boot, args.work)
    if args.part in ("all", "ingest"):
        tables["ingest"] = ingest(args.port, args.readings)
    if args.part in ("all", "latency"):
        tables["latency"] = latency(args.port + 1, args.seconds)
    if args.part in ("all", "kill"):
        tables["kill"] = kill_check(args.port + 2)
    for name, table in tables.items():
        print(f"\n{name}\n{table.markdown()}")
    if not args.no_write:
        print(write_tables("monitor", tables))


if __name__ == "__main__":
    main()
