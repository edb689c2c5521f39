"""`iatros predict RUN record.hea` on signal runs (resnet1d and hrv-gbm trained for one epoch on
real PhysioNet 2017 records): probabilities per recording and per window, heart rate against
MIT-BIH reference beats, quality, the figure, and the CLI's table and --json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.data.signals import read_signal
from iatros.pipeline.explain import recording_windows
from tests.cli_run import run_cli

FAST = api.EvalOptions(n_boot=20)
PER_CLASS = {"N": 8, "A": 8, "O": 8}
BEATS = set("NLRBAaJSVrFejnE/fQ?")  # WFDB beat annotation symbols


def _write_wfdb(signal, seconds: float, out: Path) -> Path:
    """The first `seconds` of a record's first channel as a new WFDB record; its header."""
    wfdb = pytest.importorskip("wfdb")
    part = signal.slice(0, seconds)
    wfdb.wrsamp(out.name, fs=part.fs, units=["mV"], sig_name=["ECG"],
                p_signal=part.data[:, :1], fmt=["16"], write_dir=str(out.parent))
    return out.with_suffix(".hea")


@pytest.fixture(scope="module")
def recordings(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A training folder of 24 real PhysioNet 2017 records (N, A, O) and the inputs to predict:
    a 60 s and a 50 s real record, a 12 s excerpt, 60 s of MIT-BIH record 100 (360 Hz, with its
    reference beats) and a flat-line CSV recording."""
    real = shared_data_module / "physionet2017_af" / "training2017"
    mitbih = shared_data_module / "mitbih_arrhythmia" / "record100_wfdb" / "100"
    if not (real / "REFERENCE.csv").is_file():
        pytest.skip(f"PhysioNet 2017 records absent: {real}/REFERENCE.csv")
    if not mitbih.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 100 with annotations is absent ({mitbih}.atr)")
    rows = [line.split(",") for line in (real / "REFERENCE.csv").read_text().split()]
    chosen = [r for label, n in PER_CLASS.items() for r in [x for x in rows if x[1] == label][:n]]
    root = tmp_path_factory.mktemp("signal-predict")
    folder = root / "ecgs"
    folder.mkdir()
    for name, _ in chosen:
        for suffix in (".hea", ".mat"):
            shutil.copyfile(real / f"{name}{suffix}", folder / f"{name}{suffix}")
    pd.DataFrame({"record": [f"{n}.hea" for n, _ in chosen],
                  "label": [label for _, label in chosen]}).to_csv(folder / "labels.csv", index=False)
    long = next(n for n, _ in rows[len(chosen):] if read_signal(real / f"{n}.hea").duration_s >= 60)
    source = read_signal(real / f"{long}.hea")
    inputs = root / "inputs"
    inputs.mkdir()
    heart = read_signal(mitbih, annotations="atr").slice(0, 60)
    flat = inputs / "flat.csv"
    pd.DataFrame({"time": np.arange(6000) / 300.0, "ecg [mV]": np.zeros(6000)}).to_csv(flat, index=False)
    return {"folder": folder,
            "long": _write_wfdb(source, 60.0, inputs / "long"),
            "odd": _write_wfdb(source, 50.0, inputs / "odd"),
            "short": _write_wfdb(source, 12.0, inputs / "short"),
            "mitbih": _write_wfdb(heart, 60.0, inputs / "mitbih"),
            "mitbih_beats": np.array([a.sample for a in heart.annotations if a.symbol in BEATS]),
            "mitbih_fs": heart.fs,
            "flat": flat}


@pytest.fixture(scope="module", params=[("resnet1d", {"width": 8}), ("hrv-gbm", {"max_iter": 20})],
                ids=["resnet1d", "hrv-gbm"])
def predicted(request, recordings, tmp_path_factory) -> tuple[str, Path, dict[str, dict]]:
    """One tiny run per signal model and its predictions for every input, by input name."""
    model, params = request.param
    out = tmp_path_factory.mktemp(model)
    run = api.train(f"signals:{recordings['folder']}", model=model, epochs=1, register=False,
                    eval_options=FAST, params=params, out=out / "run")
    names = ("long", "odd", "short", "mitbih", "flat")
    results = api.predict(run, [recordings[n] for n in names], out=out / "predictions")
    assert [r["input"] for r in results] == [str(recordings[n]) for n in names]
    return model, run, dict(zip(names, results, strict=True))


def test_windows_cover_a_recording_with_half_overlap_and_the_last_at_the_end():
    fs = 300.0
    pieces, starts = recording_windows(np.arange(15000, dtype=np.float32), fs, 30.0)
    assert starts == [0, 4500, 6000]  # 50 s: 0-30, 15-45, then the last one 20-50
    assert all(len(p) == 9000 for p in pieces) and pieces[2][-1] == 14999
    pieces, starts = recording_windows(np.arange(18000, dtype=np.float32), fs, 30.0)
    assert starts == [0, 4500, 9000]
    pieces, starts = recording_windows(np.ones(3600, dtype=np.float32), fs, 30.0)
    assert starts == [0] and len(pieces) == 1 and len(pieces[0]) == 3600


def test_each_window_is_scored_like_the_recording(predicted):
    _, _, results = predicted
    for name, duration, bounds in (("long", 60.0, [(0, 30), (15, 45), (30, 60)]),
                                   ("odd", 50.0, [(0, 30), (15, 45), (20, 50)]),
                                   ("short", 12.0, [(0, 12)])):
        result = results[name]
        assert [(w["start_s"], w["end_s"]) for w in result["windows"]] == bounds, name
        assert result["windows"][-1]["end_s"] == pytest.approx(duration)
        for w in result["windows"]:
            assert set(w["probabilities"]) == set(PER_CLASS)
            assert sum(w["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
            assert w["prediction"] == max(w["probabilities"], key=w["probabilities"].get)
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_consecutive_windows_of_one_class_join_into_episodes():
    from iatros.pipeline.explain import window_episodes

    windows = [{"start_s": 0, "end_s": 30, "prediction": "AF"},
               {"start_s": 15, "end_s": 45, "prediction": "AF"},
               {"start_s": 30, "end_s": 60, "prediction": "Normal"},
               {"start_s": 45, "end_s": 75, "prediction": "AF"}]
    assert window_episodes(windows) == [
        {"prediction": "AF", "start_s": 0, "end_s": 45, "windows": 2},
        {"prediction": "Normal", "start_s": 30, "end_s": 60, "windows": 1},
        {"prediction": "AF", "start_s": 45, "end_s": 75, "windows": 1}]


def test_episodes_of_a_recording_cover_its_windows(predicted):
    _, _, results = predicted
    for name in ("long", "odd", "short"):
        episodes, windows = results[name]["episodes"], results[name]["windows"]
        assert sum(e["windows"] for e in episodes) == len(windows)
        assert episodes[0]["start_s"] == 0 and episodes[-1]["end_s"] == windows[-1]["end_s"]


def test_a_single_window_recording_gets_the_recordings_own_probabilities(predicted):
    _, _, results = predicted
    (window,) = results["short"]["windows"]
    assert window["probabilities"] == pytest.approx(results["short"]["probabilities"])


def test_heart_rate_of_mitbih_100_matches_its_reference_beats(predicted, recordings):
    _, _, results = predicted
    beats, fs = recordings["mitbih_beats"], recordings["mitbih_fs"]
    reference = 60.0 / np.mean(np.diff(beats) / fs)
    result = results["mitbih"]
    assert result["heart_rate_bpm"]["mean"] == pytest.approx(reference, abs=3.0)
    assert result["heart_rate_bpm"]["min"] <= result["heart_rate_bpm"]["mean"] <= \
        result["heart_rate_bpm"]["max"]
    assert abs(result["n_beats"] - len(beats)) <= 2
    assert result["quality"]["label"] == "good" and result["quality"]["index"] >= 0.66


def test_a_flat_line_is_unreadable_and_the_rest_of_the_batch_still_scores(predicted):
    _, _, results = predicted
    flat = results["flat"]
    assert "error" not in flat and flat["heart_rate_bpm"] is None and flat["n_beats"] == 0
    assert flat["quality"]["label"] == "unreadable" and flat["quality"]["index"] == 0.0
    assert "flat" in flat["quality"]["reason"]
    assert all("error" not in r and r["prediction"] in PER_CLASS for r in results.values())


def test_each_recording_has_a_figure_named_by_its_file_only(predicted):
    _, run, results = predicted
    for name, result in results.items():
        figure = Path(result["figure"])
        assert figure.is_file() and figure.stat().st_size > 5000
        assert figure.name == f"{name}-signal.png"


def test_no_explain_keeps_the_readings_and_draws_nothing(predicted, recordings, tmp_path):
    _, run, _ = predicted
    (result,) = api.predict(run, [recordings["short"]], out=tmp_path, explain=False)
    assert result["windows"] and result["quality"]["label"] in ("good", "poor")
    assert "figure" not in result and not list(tmp_path.glob("*.png"))


def test_cli_prints_a_line_per_recording_and_json_carries_everything(predicted, recordings, capsys,
                                                                     tmp_path):
    _, run, _ = predicted
    inputs = [recordings["mitbih"], recordings["flat"]]
    good, flat = api.prediction_cells(run, api.predict(run, inputs, out=tmp_path / "cells"))
    assert good[0] in PER_CLASS and good[2].endswith("mitbih-signal.png")
    assert "heart rate 7" in good[1] and "beats; quality good (" in good[1] and "3 windows: " in good[1]
    assert "heart rate unreadable; quality unreadable (0.00); 1 window: 1 " in flat[1]
    code, out, err = run_cli(capsys, "predict", str(run), *map(str, inputs), "--out",
                             str(tmp_path / "table"))
    assert code == 0, err
    assert "predictions of" in out and "unreadable" in out
    code, out, err = run_cli(capsys, "predict", str(run), str(recordings["long"]), "--json",
                             "--out", str(tmp_path / "json"))
    assert code == 0, err
    (result,) = json.loads(out)
    assert {"probabilities", "prediction", "windows", "heart_rate_bpm", "n_beats", "quality",
            "figure"} <= set(result)
    assert len(result["windows"]) == 3
    assert set(result["windows"][0]) == {"start_s", "end_s", "prediction", "probabilities"}
    assert set(result["heart_rate_bpm"]) == {"mean", "min", "max"}
    assert result["quality"]["label"] in ("good", "poor")
