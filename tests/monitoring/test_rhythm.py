"""ECG segments in the monitor: a segment is checked field by field (ecg.fs, ecg.samples), stored
once with its reading in the same transaction and read back bit for bit; the rhythm scorer's
quality gate keeps a noisy strip (a real PhysioNet 2017 "~" record, synthetic noise) from
raising an alert while a clean AF record (label A) raises exactly one; a segment at another
rate than the model's is rejected per reading while the rest of the batch is stored."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import IntegrityError

from iatros.data.signals import read_signal
from iatros.monitoring.engine import Monitor
from iatros.monitoring.readings import (
    ECG_MAX_SAMPLES,
    ReadingError,
    Segment,
    parse_batch,
    parse_reading,
)
from iatros.monitoring.rhythm import RHYTHM, rhythm_scorer, segment_quality
from iatros.monitoring.store import SEGMENTS, Alert, MonitorStore

NOW = 1_800_000_000.0
AF_RECORD = "A00614"      # label A, 30 s, template-match quality 0.93
NOISY_RECORD = "A00705"   # label ~, 30 s, template-match quality 0.48


def _data_root() -> Path:
    return Path(os.environ.get("IATROS_DATA", Path(__file__).resolve().parents[2].parent
                               / "shared" / "data"))


PHYSIONET_2017 = _data_root() / "physionet2017_af" / "training2017"


def _record(name: str) -> np.ndarray:
    """A real PhysioNet 2017 recording in mV (300 Hz); skips when the data is absent."""
    path = PHYSIONET_2017 / f"{name}.hea"
    if not path.is_file():
        pytest.skip(f"PhysioNet 2017 record {name} is absent under {PHYSIONET_2017}")
    signal = read_signal(path)
    assert signal.fs == 300.0
    return signal.data[:, 0]


def ecg(samples: Any, fs: float = 300.0, **extra: Any) -> dict[str, Any]:
    values = samples.tolist() if isinstance(samples, np.ndarray) else samples
    return {"fs": fs, "samples": values, **extra}


def reading(seq: int, t: float, patient: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"patient_id": patient, "seq": seq, "time": t, **fields}


def _sine(seconds: float = 10.0, fs: float = 300.0) -> np.ndarray:
    return 0.5 * np.sin(np.linspace(0, 2 * np.pi * seconds, int(seconds * fs)))


# --- the segment field -----------------------------------------------------------------------

@pytest.mark.parametrize(("segment", "field", "words"), [
    ([1, 2, 3], "ecg", "must be an object"),
    ({"fs": 300, "samples": [0.0] * 3000, "gain": 1}, "ecg", "unknown ecg field 'gain'"),
    ({"samples": [0.0] * 3000}, "ecg.fs", "sampling rate in Hz"),
    ({"fs": True, "samples": [0.0] * 3000}, "ecg.fs", "not True"),
    ({"fs": 20, "samples": [0.0] * 200}, "ecg.fs", "50-1000"),
    ({"fs": 5000, "samples": [0.0] * 50_000}, "ecg.fs", "50-1000"),
    ({"fs": float("nan"), "samples": [0.0] * 3000}, "ecg.fs", "not nan"),
    ({"fs": 300, "samples": "0,1,2"}, "ecg.samples", "list of numbers"),
    ({"fs": 300, "samples": [0.0] * 1200}, "ecg.samples", "lasts 4 s"),
    ({"fs": 300, "samples": [0.0] * 18_301}, "ecg.samples", "lasts 61 s"),
    ({"fs": 1000, "samples": [0.0] * (ECG_MAX_SAMPLES + 1)}, "ecg.samples", "at most 60000"),
    ({"fs": 300, "samples": [0.1] * 1500 + ["0.2"] + [0.1] * 1499}, "ecg.samples",
     "ecg.samples[1500] is '0.2'"),
    ({"fs": 300, "samples": [0.1] * 10 + [True] + [0.1] * 2989}, "ecg.samples",
     "ecg.samples[10] is 'True'"),
    ({"fs": 300, "samples": [0.1] * 7 + [float("nan")] + [0.1] * 2992}, "ecg.samples",
     "ecg.samples[7] is nan"),
    ({"fs": 300, "samples": [0.1] * 9 + [1e300] + [0.1] * 2990}, "ecg.samples", "reach 1e+300"),
    ({"fs": 300, "samples": [850.0] * 3000}, "ecg.samples", "microvolts"),
    ({"fs": 300, "samples": [0.0] * 3000, "lead": "<b>II</b>"}, "ecg.lead", "1-16 letters"),
    ({"fs": 300, "samples": [0.0] * 3000, "lead": 2}, "ecg.lead", "1-16 letters"),
])
def test_a_bad_segment_is_refused_naming_its_field(segment: Any, field: str, words: str) -> None:
    with pytest.raises(ReadingError) as e:
        parse_reading(reading(1, NOW - 60, ecg=segment), NOW)
    assert e.value.field == field and words in e.value.reason, e.value.reason


def test_a_reading_may_hold_an_ecg_alone_or_beside_vitals() -> None:
    x = _sine()
    alone = parse_reading(reading(1, NOW - 60, ecg=ecg(x, lead="II")), NOW)
    assert alone.values == {} and alone.spo2_scale is None
    assert isinstance(alone.ecg, Segment) and alone.ecg.fs == 300.0 and alone.ecg.lead == "II"
    assert alone.ecg.samples.dtype == np.float32 and alone.ecg.seconds == 10.0
    assert np.array_equal(alone.ecg.samples, x.astype(np.float32))
    both = parse_reading(reading(2, NOW - 50, pulse=88, ecg=ecg(x)), NOW)
    assert both.values == {"pulse": 88} and both.ecg is not None and both.ecg.lead is None
    plain = parse_reading(reading(3, NOW - 40, pulse=88), NOW)
    assert plain.ecg is None
    with pytest.raises(ReadingError) as e:
        parse_reading(reading(4, NOW - 30), NOW)
    assert e.value.field == "readings" and "or an ecg segment" in e.value.reason
    with pytest.raises(ReadingError) as e:   # a bad vital is still named with an ECG beside it
        parse_reading(reading(5, NOW - 20, spo2=140, ecg=ecg(x)), NOW)
    assert e.value.field == "spo2"


# --- storage ---------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> MonitorStore:
    return MonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"))


def _segment_rows(store: MonitorStore) -> int:
    with store.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(SEGMENTS)).scalar_one())


def test_segments_are_stored_once_with_their_reading_and_read_back_bit_for_bit(
        store: MonitorStore) -> None:
    monitor = Monitor(store, clock=lambda: NOW)
    monitor.admit("p1", "icu-a")
    rng = np.random.default_rng(7)
    # float32 edge cases: negative zero, a subnormal, the largest allowed value, random noise
    x = rng.normal(0, 0.4, 3000).astype(np.float32)
    x[:4] = [-0.0, np.float32(1e-40), 50.0, np.float32(0.1)]
    batch = [reading(1, NOW - 120, pulse=80), reading(2, NOW - 60, ecg=ecg(x, lead="I")),
             reading(3, NOW - 30, pulse=82, ecg=ecg(x[::-1].copy(), fs=250.0))]
    first = monitor.ingest("bed-1", batch)
    assert first.stored == [1, 2, 3] and first.rejected == []
    again = monitor.ingest("bed-1", batch)
    assert again.stored == [] and again.duplicates == [1, 2, 3]
    assert store.count_readings() == 3 and _segment_rows(store) == 2
    newest, older = store.segments("p1")
    assert (older.device, older.seq, older.time, older.segment.fs, older.segment.lead) == (
        "bed-1", 2, NOW - 60, 300.0, "I")
    assert older.segment.samples.dtype == np.float32
    assert older.segment.samples.tobytes() == x.tobytes()          # bit for bit, -0.0 included
    assert newest.seq == 3 and newest.segment.fs == 250.0 and newest.segment.lead is None
    assert newest.segment.samples.tobytes() == x[::-1].tobytes()
    with store.engine.connect() as c:
        raw = c.execute(select(SEGMENTS.c.samples).where(SEGMENTS.c.seq == 2)).scalar_one()
    assert raw == x.astype("<f4").tobytes()                         # float32 little-endian
    assert [s.seq for s in store.segments("p1", since=NOW - 45)] == [3]
    assert [s.seq for s in store.segments("p1", limit=1)] == [3] and store.segments("p2") == []


def test_a_failed_transaction_stores_neither_the_reading_nor_its_segment(
        store: MonitorStore) -> None:
    good = parse_reading(reading(1, NOW - 60, ecg=ecg(_sine())), NOW)
    broken = Alert(0, "p1", "rhythm", None, None, "x", NOW, NOW, 0, NOW)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.write("bed-1", [good], NOW, alerts=[broken])          # severity NOT NULL fails
    assert store.count_readings() == 0 and _segment_rows(store) == 0
    store.write("bed-1", [good], NOW)
    assert store.count_readings() == 1 and _segment_rows(store) == 1


# --- the rhythm scorer ------------------------------------------------------------------------

class StubModel:
    """A predict that answers a fixed probability and remembers what it saw."""

    def __init__(self, p: float) -> None:
        self.p, self.seen = p, []

    def __call__(self, samples: np.ndarray, fs: float) -> float:
        self.seen.append((len(samples), fs))
        return self.p


@pytest.fixture
def monitor(store: MonitorStore) -> Monitor:
    m = Monitor(store, clock=lambda: NOW)
    m.admit("p1", "icu-a")
    m.admit("p2", "icu-a")
    return m


def test_a_noisy_segment_is_gated_and_a_clean_af_record_raises_exactly_one_alert(
        monitor: Monitor) -> None:
    model = StubModel(0.9)
    scorer = rhythm_scorer(model, fs=300.0, threshold=0.62, model_name="stub")
    monitor.scorers.append((scorer.name, scorer))
    noisy, af = _record(NOISY_RECORD), _record(AF_RECORD)
    rng = np.random.default_rng(0)
    result = monitor.ingest("bed-1", [
        reading(1, NOW - 300, ecg=ecg(noisy)),
        reading(2, NOW - 290, patient="p2", ecg=ecg(rng.normal(0, 0.3, 9000))),
    ])
    assert result.stored == [1, 2] and result.alerts == [] and model.seen == []
    ward = {p["patient_id"]: p for p in monitor.ward()}
    gated = ward["p1"]["results"][RHYTHM]
    assert gated["gated"] is True and gated["probability"] is None
    assert gated["quality"] < 0.66 and gated["quality_label"] == "poor"
    assert gated["segment_time"] == NOW - 300
    assert ward["p2"]["results"][RHYTHM]["gated"] is True           # white noise: no beats
    result = monitor.ingest("bed-1", [reading(3, NOW - 200, ecg=ecg(af, lead="I"))])
    assert model.seen == [(9000, 300.0)]
    assert [(a["kind"], a["severity"], a["patient_id"]) for a in result.alerts] == [
        ("rhythm", "medium", "p1")]
    words = result.alerts[0]["reason"]
    assert words.startswith("atrial fibrillation likely: probability 0.90 >= threshold 0.62 "
                            "(model stub), signal quality good (0.93)")
    assert "ECG strip 30 s, lead I, from " in words
    # the next AF segment is suppressed while the alert is open; NEWS2 is untouched
    again = monitor.ingest("bed-1", [reading(4, NOW - 170, ecg=ecg(af))])
    assert again.alerts == [] and len(model.seen) == 2
    assert [a.kind for a in monitor.open_alerts()] == ["rhythm"]
    latest = {p["patient_id"]: p for p in monitor.ward()}["p1"]["results"][RHYTHM]
    assert latest["probability"] == 0.9 and latest["gated"] is False
    assert latest["threshold"] == 0.62 and latest["heart_rate_bpm"] > 100


def test_below_the_threshold_only_the_result_is_recorded(monitor: Monitor) -> None:
    scorer = rhythm_scorer(StubModel(0.2), fs=300.0, threshold=0.62, model_name="stub")
    monitor.scorers.append((scorer.name, scorer))
    result = monitor.ingest("bed-1", [reading(1, NOW - 100, pulse=80, ecg=ecg(_record(AF_RECORD)))])
    assert result.alerts == []
    rhythm = monitor.ward()[0]["results"][RHYTHM]
    assert rhythm["probability"] == 0.2 and rhythm["gated"] is False
    finding = scorer(_context(monitor, reading(2, NOW - 90, ecg=ecg(_record(AF_RECORD)))))
    assert finding[0].severity == "none"
    assert finding[0].reason.startswith("atrial fibrillation unlikely: probability 0.20 < "
                                        "threshold 0.62")


def _context(monitor: Monitor, raw: dict[str, Any]) -> Any:
    from iatros.monitoring.engine import Context, PatientState

    return Context(monitor.patients()["p1"], parse_reading(raw, NOW), PatientState(),
                   monitor.settings)


def test_a_segment_at_another_rate_is_rejected_per_reading_while_the_rest_is_stored(
        monitor: Monitor) -> None:
    model = StubModel(0.9)
    scorer = rhythm_scorer(model, fs=300.0, threshold=0.62, model_name="stub")
    x = _sine(10.0, 250.0)
    raws = [reading(1, NOW - 60, pulse=80), reading(2, NOW - 50, ecg=ecg(x, fs=250.0)),
            reading(3, NOW - 40, ecg=ecg(_sine()))]
    good, bad = parse_batch(raws, NOW, [scorer.check])
    assert [r.seq for _, r in good] == [1, 3]
    assert [(b.index, b.seq, b.field) for b in bad] == [(1, 2, "ecg.fs")]
    assert bad[0].reason == ("ECG sampled at 250 Hz; the rhythm model stub reads 300 Hz "
                             "segments: send them at 300 Hz (segments are not resampled)")
    # without the check installed the scorer still never reads a segment at another rate
    monitor.scorers.append((scorer.name, scorer))
    found = scorer(_context(monitor, raws[1]))
    assert found[0].severity == "none" and found[0].result["refused"] and model.seen == []
    monitor.checks.append(scorer.check)
    result = monitor.ingest("bed-1", raws)
    assert result.stored == [1, 3] and [r.field for r in result.rejected] == ["ecg.fs"]
    assert [s.seq for s in monitor.store.segments("p1")] == [3]


def test_a_broken_model_costs_neither_the_reading_nor_news2(monitor: Monitor) -> None:
    def broken(samples: np.ndarray, fs: float) -> float:
        return math.nan

    scorer = rhythm_scorer(broken, fs=300.0, threshold=0.5, model_name="broken")
    monitor.scorers.append((scorer.name, scorer))
    result = monitor.ingest("bed-1", [reading(1, NOW - 10, pulse=135, respiration_rate=27,
                                              ecg=ecg(_record(AF_RECORD)))])
    assert result.stored == [1] and [a["kind"] for a in result.alerts] == ["news2"]
    assert monitor.store.segments("p1")[0].seq == 1


def test_the_gate_reads_quality_with_the_projects_signal_processing() -> None:
    clean = segment_quality(Segment(_record(AF_RECORD).astype(np.float32), 300.0))
    noisy = segment_quality(Segment(_record(NOISY_RECORD).astype(np.float32), 300.0))
    flat = segment_quality(Segment(np.zeros(3000, np.float32), 300.0))
    assert clean["label"] == "good" and clean["index"] > 0.9 and clean["heart_rate_bpm"] > 100
    assert noisy["label"] == "poor" and noisy["index"] < 0.66
    assert flat["label"] == "unreadable" and "flat" in flat["reason"]
    with pytest.raises(ValueError):
        rhythm_scorer(StubModel(0.5), fs=300.0, threshold=1.5, model_name="x")


def test_segments_are_stored_once_and_read_back_bit_for_bit_on_postgresql(
        postgres_url: str) -> None:
    from iatros.access.store import open_engine
    from iatros.monitoring.store import METADATA

    engine = open_engine(postgres_url)
    try:
        monitor = Monitor(MonitorStore(engine), clock=lambda: NOW)
        monitor.admit("pg-1", "ward-a")
        x = np.random.default_rng(3).normal(0, 0.4, 3000).astype(np.float32)
        x[0] = -0.0
        batch = [reading(1, NOW - 60, patient="pg-1", ecg=ecg(x, lead="II"))]
        assert monitor.ingest("bed", batch).stored == [1]
        assert monitor.ingest("bed", batch).duplicates == [1]
        (stored,) = monitor.store.segments("pg-1")
        assert stored.segment.samples.tobytes() == x.tobytes() and stored.segment.lead == "II"
    finally:
        METADATA.drop_all(engine)
        engine.dispose()
