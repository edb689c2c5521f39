"""The rhythm scorer of a real (tiny) af-ecg run: its threshold comes from the run's validation
predictions, it gives the run's own AF probability for a real record it never saw, in well under
a second; the config section is checked by name; and in the service, ECG segments sent through
the API show on the patient page as strips with their rhythm result, the rhythm alert's reason
on the ward."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from iatros.api.monitor_rhythm import rhythm_config, rhythm_scorer_from_run, window_batch
from iatros.data.signals import read_signal
from iatros.errors import ConfigError
from iatros.evaluate.thresholds import choose_threshold
from iatros.pipeline.prediction import LoadedRun
from iatros.run_folder import RunFolder
from tests.monitoring.test_rhythm import AF_RECORD, NOISY_RECORD, PHYSIONET_2017


def _samples(name: str) -> np.ndarray:
    path = PHYSIONET_2017 / f"{name}.hea"
    if not path.is_file():
        pytest.skip(f"PhysioNet 2017 record {name} is absent under {PHYSIONET_2017}")
    return read_signal(path).data[:, 0]


def test_the_threshold_is_chosen_on_the_runs_validation_predictions(
        ecg_run: tuple[Path, Path]) -> None:
    run, _ = ecg_run
    frame = RunFolder(run).predictions()
    val = frame[frame["split"] == "val"]
    y = (val["target"] == 1).astype(int).to_numpy()                # class 1 is AF
    expected, _ = choose_threshold("youden", y, val["prob_1"].to_numpy(float))
    scorer = rhythm_scorer_from_run(run, device="cpu")
    assert scorer.threshold == pytest.approx(expected) and scorer.fs == 300.0
    assert "Youden" in scorer.threshold_rule and "validation" in scorer.threshold_rule
    assert scorer.model_name == "af-ecg resnet1d"
    sens = rhythm_scorer_from_run(run, "sens90", device="cpu")
    assert sens.threshold == pytest.approx(choose_threshold("sens90", y,
                                                            val["prob_1"].to_numpy(float))[0])
    fixed = rhythm_scorer_from_run(run, 0.7, device="cpu")
    assert fixed.threshold == 0.7 and fixed.threshold_rule == "given in the monitor config"


def test_the_run_gives_its_own_af_probability_for_an_unseen_record_quickly(
        ecg_run: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    run, unseen = ecg_run
    scorer = rhythm_scorer_from_run(run, device="cpu")
    window = read_signal(unseen).data[:9000, 0].astype(np.float32)   # the first 30 s at most
    p = scorer.predict(window, 300.0)
    assert 0.0 <= p <= 1.0
    # the same number `iatros predict` gives for the file (its network reads the first 30 s)
    loaded = LoadedRun(run, device="cpu")
    from_file = loaded.predict([unseen], tmp_path, explain=False)[0]["probabilities"]["AF"]
    assert p == pytest.approx(from_file, abs=1e-5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as a service on a shared CPU runs it (IATROS_THREADS=1)
    try:
        began = time.perf_counter()
        for _ in range(10):
            scorer.predict(window, 300.0)
        per_segment = (time.perf_counter() - began) / 10
    finally:
        torch.set_num_threads(threads)
    print(f"af-ecg tiny run: {per_segment * 1000:.1f} ms per 30 s segment on CPU (1 thread)")
    assert per_segment < 0.25


def test_a_long_segment_is_scored_window_by_window(ecg_run: tuple[Path, Path]) -> None:
    batch = window_batch(np.arange(18_000, dtype=np.float32), 9000)
    assert [len(w) for w in batch] == [9000, 9000] and batch[1][0] == 9000
    batch = window_batch(np.arange(12_000, dtype=np.float32), 9000)
    assert [int(w[0]) for w in batch] == [0, 3000]                 # the last aligned to the end
    assert len(window_batch(np.zeros(4000, np.float32), 9000)[0]) == 4000
    run, _ = ecg_run
    scorer = rhythm_scorer_from_run(run, device="cpu")
    x = _samples(AF_RECORD).astype(np.float32)                    # 30 s: one window
    flat = np.zeros(9000, np.float32)
    one, other = scorer.predict(x, 300.0), scorer.predict(flat, 300.0)
    # 60 s: the highest of its two windows, in either order
    assert scorer.predict(np.concatenate([x, flat]), 300.0) == pytest.approx(max(one, other))
    assert scorer.predict(np.concatenate([flat, x]), 300.0) == pytest.approx(max(one, other))


def test_the_config_section_is_checked_by_name(ecg_run: tuple[Path, Path],
                                               tabular_run: Path, tmp_path: Path) -> None:
    run, _ = ecg_run
    source = "monitor config /etc/iatros/monitor.json"
    scorer = rhythm_config({"run": str(run), "threshold": 0.4, "min_quality": 0.5}, source)
    assert scorer.threshold == 0.4 and scorer.min_quality == 0.5
    assert rhythm_config({"run": str(run)}, source).threshold_rule.startswith("maximises")
    for entry, words in [
            ([str(run)], "rhythm must be an object"),
            ({"run": str(run), "model": "x"}, "rhythm must be an object"),
            ({}, "rhythm.run must be the path"),
            ({"run": str(run), "threshold": 1.2}, "rhythm.threshold must be a number from 0 to 1"),
            ({"run": str(run), "threshold": "best"}, "or one of youden, sens90"),
            ({"run": str(run), "min_quality": True}, "rhythm.min_quality must be a number"),
            ({"run": str(tmp_path / "nowhere")}, "rhythm.run:"),
            ({"run": str(tabular_run)}, "a rhythm model is a signal run with an 'AF' class")]:
        with pytest.raises(ConfigError) as e:
            rhythm_config(entry, source)
        assert str(e.value).startswith(source) and words in str(e.value), str(e.value)


# --- in the service ----------------------------------------------------------------------------

@pytest.fixture
def app(ecg_run: tuple[Path, Path], tmp_path: Path) -> Any:
    """The service with the real run as the monitor's rhythm model through the monitor config,
    threshold 0 (every readable strip alerts); users as in the shared `app` fixture."""
    import json

    from iatros.monitoring.config import load_monitor_config
    from tests.serve.conftest import PASSWORD, make_app

    run, _ = ecg_run
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps({"rhythm": {"run": str(run), "threshold": 0.0}}))
    application = make_app(monitor=load_monitor_config(path))
    application.state.store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    application.state.store.add_user("ada", PASSWORD, "admin")
    return application


@pytest.fixture
def ecg_ward(client: TestClient, app: Any) -> dict[str, Any]:
    """p1 on clara's ward sends a noisy strip, then an AF strip beside its vitals."""
    _, device = app.state.store.create_key("ecg-patch-1", "device")
    _, system = app.state.store.create_key("adt-feed", "system")
    r = client.post("/api/v1/monitor/patients", json={"patient_id": "p1", "ward": "icu-a"},
                    headers={"X-API-Key": system})
    assert r.status_code == 201, r.text
    now = time.time()
    noisy, af = _samples(NOISY_RECORD), _samples(AF_RECORD)
    body = {"readings": [
        {"patient_id": "p1", "seq": 1, "time": now - 120,
         "ecg": {"fs": 300, "samples": noisy.tolist(), "lead": "I"}},
        {"patient_id": "p1", "seq": 2, "time": now - 60, "pulse": 112,
         "ecg": {"fs": 300, "samples": af.tolist(), "lead": "I"}}]}
    r = client.post("/api/v1/monitor/readings", json=body, headers={"X-API-Key": device})
    assert r.status_code == 200, r.text
    return {"answer": r.json(), "now": now, "af": af}


def test_segments_sent_through_the_api_are_stored_and_raise_one_rhythm_alert(
        ecg_ward: dict[str, Any], app: Any) -> None:
    answer = ecg_ward["answer"]
    assert answer["stored"] == [1, 2] and answer["rejected"] == []
    assert [a["kind"] for a in answer["alerts"]] == ["rhythm"]
    assert answer["alerts"][0]["reason"].startswith("atrial fibrillation likely: probability ")
    assert "threshold 0.00 (model af-ecg resnet1d), signal quality good" in \
        answer["alerts"][0]["reason"]
    stored = app.state.monitor.store.segments("p1")
    assert [s.seq for s in stored] == [2, 1]
    assert stored[0].segment.samples.tobytes() == ecg_ward["af"].astype("<f4").tobytes()


def test_the_patient_page_shows_the_ecg_strips_with_their_rhythm_result(
        ecg_ward: dict[str, Any], client: TestClient, as_user: Any) -> None:
    html = client.get("/monitor/patients/p1", headers=as_user("clara")).text
    section = html.split('id="ecg"')[1].split("</section>")[0]
    newest, older = section.split('<figure class="ecg-strip"')[1:]
    assert newest.count('<svg class="ecg"') == 3 and older.count('<svg class="ecg"') == 3
    assert newest.count('<polyline class="ecg-trace"') == 3 and 'fill="url(#ecg-grid-1-1)"' in newest
    assert "30 s · lead I · 300 Hz" in newest and "ecg-patch-1 #2" in newest
    assert re.search(r"AF probability \d\.\d\d</strong> \(threshold 0\.00, af-ecg resnet1d\) · "
                     r"signal quality good \(0\.9\d\) · heart rate \d+/min", newest)
    assert 'class="alert-ref sev-medium">alert ' in newest
    assert "no rhythm result held for this segment" in older   # only the latest is held
    points = re.findall(r'points="([^"]+)"', newest)[0].split()
    assert 600 < len(points) <= 1400                                  # min/max per pixel column
    alerts = html.split('id="alerts"')[1].split("</section>")[0]
    assert "<td>rhythm</td>" in alerts and "atrial fibrillation likely" in alerts
    assert "<script" not in html.split("</head>")[1]


def test_a_gated_strip_says_why_and_the_ward_shows_the_rhythm_reason(
        ecg_ward: dict[str, Any], client: TestClient, as_user: Any, app: Any) -> None:
    clara = as_user("clara")
    _, device = app.state.store.create_key("ecg-patch-2", "device")
    noisy = _samples(NOISY_RECORD)
    r = client.post("/api/v1/monitor/readings", headers={"X-API-Key": device}, json={
        "readings": [{"patient_id": "p1", "seq": 1, "time": ecg_ward["now"] - 30,
                      "ecg": {"fs": 300, "samples": noisy.tolist()}}]})
    assert r.json()["stored"] == [1] and r.json()["alerts"] == []
    html = client.get("/monitor/patients/p1", headers=clara).text
    newest = html.split('<figure class="ecg-strip"')[1]
    assert re.search(r"not assessed</span> signal quality poor \(0\.\d\d, needs 0\.66\): no "
                     r"rhythm alert from this segment", newest)
    ward = client.get("/monitor", headers=clara).text
    cell = ward.split('data-field="alert"')[1].split("</td>")[0]
    assert 'data-kind="rhythm"' in cell and 'data-part="kind" title="what raised the alert">rhythm<' in cell
    assert "atrial fibrillation likely: probability" in cell
    assert "/ack" in cell and "data-severity=\"medium\"" in cell
    api = client.get("/api/v1/monitor/ward", headers=clara).json()[0]
    assert api["results"]["rhythm"]["gated"] is True


def test_a_segment_at_the_wrong_rate_is_rejected_by_the_configured_service(
        ecg_ward: dict[str, Any], client: TestClient, app: Any) -> None:
    _, device = app.state.store.create_key("ecg-patch-2", "device")
    body = {"readings": [{"patient_id": "p1", "seq": 1, "time": ecg_ward["now"] - 30,
                          "ecg": {"fs": 250, "samples": [0.0] * 2500}}]}
    answer = client.post("/api/v1/monitor/readings", json=body,
                         headers={"X-API-Key": device}).json()
    assert answer["stored"] == [] and answer["rejected"][0]["field"] == "ecg.fs"


def test_the_segments_endpoint_returns_a_care_teams_strips_newest_first(
        ecg_ward: dict[str, Any], client: TestClient, as_user: Any) -> None:
    strips = client.get("/api/v1/monitor/patients/p1/segments?limit=1",
                        headers=as_user("clara")).json()
    assert [(s["seq"], s["fs"], s["lead"]) for s in strips] == [(2, 300.0, "I")]
    assert strips[0]["samples"][:5] == pytest.approx(ecg_ward["af"][:5].tolist(), abs=1e-6)
    assert strips[0]["n_samples"] == len(ecg_ward["af"])
