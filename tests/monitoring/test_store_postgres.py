"""The monitor on a real PostgreSQL server (a throwaway cluster on a Unix socket): readings
stored once per (device, seq), alerts, and the state after a restart, as on SQLite.

Skips, saying why, where the PostgreSQL server binaries or the psycopg driver are absent."""

from __future__ import annotations

from iatros.access.store import open_engine
from iatros.monitoring.engine import Monitor
from iatros.monitoring.store import METADATA, MonitorStore

T0 = 1_800_000_000.0
SICK = {"pulse": 135, "respiration_rate": 27, "spo2": 90, "systolic_bp": 88, "on_oxygen": False,
        "temperature": 37.0, "consciousness": "A"}


def test_the_monitor_stores_once_and_restarts_on_postgresql(postgres_url: str) -> None:
    engine = open_engine(postgres_url)
    try:
        monitor = Monitor(MonitorStore(engine), clock=lambda: T0)
        monitor.admit("pg-1", "ward-a")
        batch = [{"patient_id": "pg-1", "seq": s, "time": T0 - 600 + s, **SICK} for s in range(3)]
        first = monitor.ingest("bed", batch)
        assert first.stored == [0, 1, 2] and len(first.alerts) == 1
        assert monitor.ingest("bed", batch).duplicates == [0, 1, 2]
        again = Monitor(MonitorStore(engine), clock=lambda: T0)
        assert again.ward() == monitor.ward()
        assert again.store.stored_pairs([("bed", 0), ("bed", 9)]) == {("bed", 0): 1, ("bed", 9): 0}
        assert again.acknowledge(first.alerts[0]["id"], "clara").acked_by == "clara"
    finally:
        METADATA.drop_all(engine)
        engine.dispose()
