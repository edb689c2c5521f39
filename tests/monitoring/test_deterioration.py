"""The deterioration model as a monitor scorer: a real `icu-mortality-vitals` run (gradient
boosting on PhysioNet 2012 set A bedside vitals) scored on monitored readings, at most once per
interval, with its alert threshold chosen on the run's validation predictions; in the service
through the monitor config."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.access.store import open_engine
from iatros.errors import ConfigError
from iatros.evaluate.metrics import threshold_at_sensitivity
from iatros.monitoring.engine import Monitor
from iatros.monitoring.store import MonitorStore

T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def vitals_run(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shared_data_module / "physionet2012" / "set-a").is_dir():
        pytest.skip(f"PhysioNet 2012 set A is absent under {shared_data_module}")
    out = tmp_path_factory.mktemp("vitals") / "run"
    return api.train("icu-mortality-vitals", data_root=shared_data_module, model="gbm", out=out,
                     eval_options=api.EvalOptions(n_boot=20), register=False)


def reading(seq: int, hours: float, **values: Any) -> dict[str, Any]:
    return {"patient_id": "p1", "seq": seq, "time": T0 - 100 * 3600 + hours * 3600, **values}


def test_the_task_sees_only_bedside_vitals(vitals_run: Path) -> None:
    features = json.loads((vitals_run / "config.json").read_text())["data"]["features"]
    variables = {f.rsplit(":", 1)[0] for f in features}
    assert variables == {f"PHYSIONET2012//{v}" for v in
                         ("HR", "RespRate", "SaO2", "SysABP", "Temp", "GCS")}


def test_the_threshold_is_chosen_on_validation_predictions(vitals_run: Path) -> None:
    from iatros.api.monitor_model import DeteriorationScorer

    scorer = DeteriorationScorer(vitals_run, sensitivity=0.7)
    frame = pd.read_csv(vitals_run / "predictions.csv")
    val = frame[frame["split"] == "val"]
    assert scorer.threshold.value == threshold_at_sensitivity(val["target"], val["prob"], 0.7)
    assert "validation sensitivity 0.70" in scorer.threshold.how
    assert DeteriorationScorer(vitals_run, threshold=0.3).threshold.value == 0.3


def test_the_model_scores_at_most_once_per_interval_and_alerts_above_its_threshold(
        vitals_run: Path, tmp_path: Path) -> None:
    from iatros.api.monitor_model import deterioration_scorer

    monitor = Monitor(MonitorStore(open_engine(f"sqlite:///{tmp_path / 'm.db'}")),
                      clock=lambda: T0)
    name, scorer = deterioration_scorer(vitals_run, every_minutes=120, threshold=0.0)
    monitor.scorers.append((name, scorer))
    monitor.admit("p1", "icu")
    kinds = []
    probabilities = []
    for k in range(12):
        result = monitor.ingest("bed", [reading(k, k * 0.5, pulse=90 + 3 * k,
                                                respiration_rate=18 + k, systolic_bp=120 - 3 * k,
                                                consciousness="A" if k < 6 else "P")])
        kinds += [a["kind"] for a in result.alerts]
        probabilities.append(monitor.ward()[0]["results"].get(
            "model:icu-mortality-vitals", {}).get("time"))
    assert kinds.count("model:icu-mortality-vitals") == 1   # threshold 0: alerts once, stays open
    scored_at = sorted({t for t in probabilities if t is not None})
    assert np.all(np.diff(scored_at) >= 2 * 3600 - 1)       # every 120 minutes of record time
    alert = next(a for a in monitor.store.alerts() if a.kind == "model:icu-mortality-vitals")
    assert "icu-mortality-vitals (gbm): risk" in alert.reason and "threshold 0.00" in alert.reason


def test_a_sicker_window_scores_higher_than_a_stable_one(vitals_run: Path) -> None:
    from iatros.api.monitor_model import DeteriorationScorer

    scorer = DeteriorationScorer(vitals_run)
    code = scorer.map

    def window(pulse: float, rr: float, sbp: float, gcs: float) -> list[tuple[float, str, float]]:
        return [(T0 + h * 3600, c, v) for h in range(24) for c, v in (
            (code["pulse"], pulse), (code["respiration_rate"], rr),
            (code["systolic_bp"], sbp), (code["consciousness"], gcs))]
    stable = scorer.risk("a", window(80, 16, 125, 15), T0 + 24 * 3600)
    sick = scorer.risk("b", window(130, 30, 80, 3), T0 + 24 * 3600)
    assert 0.0 <= stable < sick <= 1.0


def test_a_run_without_bedside_vitals_is_refused(tmp_path: Path) -> None:
    from iatros.api.monitor_model import DeteriorationScorer

    run = api.train("breast-cancer-wdbc", model="logreg", out=tmp_path / "run",
                    eval_options=api.EvalOptions(n_boot=10), register=False)
    with pytest.raises(ConfigError, match="vital sign"):
        DeteriorationScorer(run)


def test_the_service_raises_model_alerts_from_its_monitor_config(vitals_run: Path,
                                                                 tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from iatros.monitoring.config import load_monitor_config
    from tests.serve.conftest import make_app

    path = tmp_path / "monitor.json"
    path.write_text(json.dumps({"deterioration": {"run": str(vitals_run), "threshold": 0.0}}))
    app = make_app(monitor=load_monitor_config(path))
    _, device = app.state.store.create_key("bed", "device")
    app.state.monitor.admit("p1", "icu")
    body = {"readings": [{**reading(1, 0, pulse=120, respiration_rate=26),
                          "time": time.time() - 60}]}
    with TestClient(app) as client:
        answer = client.post("/api/v1/monitor/readings", json=body,
                             headers={"X-API-Key": device}).json()
    assert {a["kind"] for a in answer["alerts"]} == {"news2", "model:icu-mortality-vitals"}


@pytest.mark.parametrize("section", [
    {"run": "x", "model": "y"}, {}, {"run": "x", "sensitivity": 1.5},
    {"run": "x", "every_minutes": "hourly"}, {"run": "x", "extra": 1}])
def test_bad_deterioration_sections_name_the_field(tmp_path: Path,
                                                   section: dict[str, Any]) -> None:
    from iatros.monitoring.config import load_monitor_config

    path = tmp_path / "monitor.json"
    path.write_text(json.dumps({"deterioration": section}))
    with pytest.raises(ConfigError, match="deterioration"):
        load_monitor_config(path)


def test_the_config_may_name_a_promoted_model_instead_of_a_run(vitals_run: Path,
                                                               tmp_path: Path) -> None:
    from iatros.monitoring.config import load_monitor_config
    from tests.serve.conftest import make_app, promote

    promote(vitals_run, "deterioration")
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps({"deterioration": {"model": "deterioration", "threshold": 0.5}}))
    app = make_app(monitor=load_monitor_config(path))
    assert [name for name, _ in app.state.monitor.scorers] == ["icu-mortality-vitals (gbm)"]
    path.write_text(json.dumps({"deterioration": {"model": "nobody"}}))
    with pytest.raises(ConfigError, match="no promoted model named 'nobody'"):
        make_app(monitor=load_monitor_config(path))
