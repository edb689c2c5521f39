"""signals:FOLDER tasks: a user's own recordings (real PhysioNet 2017 WFDB records, CSV
recordings at another rate) with a labels CSV of record, label and patient_id."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.data.signals import read_signal, resample
from iatros.errors import ConfigError, CorruptDataError
from iatros.kinds import TargetKind
from iatros.tasks import get_task

FAST = api.EvalOptions(n_boot=20)
PER_CLASS = {"N": 12, "A": 12}  # binary: normal rhythm vs atrial fibrillation


def _real(shared: Path) -> tuple[Path, list[list[str]]]:
    base = shared / "physionet2017_af" / "training2017"
    if not (base / "REFERENCE.csv").is_file():
        pytest.skip(f"PhysioNet 2017 records absent: {base}/REFERENCE.csv")
    rows = [line.split(",") for line in (base / "REFERENCE.csv").read_text().split()]
    return base, rows


def _write_csv_record(source: Path, out: Path, fs: float) -> int:
    """The record's first 20 s at `fs` Hz as a CSV with a time column; its sample count."""
    signal = resample(read_signal(source).slice(0, 20.0), fs)
    x = signal.data[:, 0]
    pd.DataFrame({"time": np.arange(len(x)) / fs, "ecg [mV]": x}).to_csv(out, index=False)
    return len(x)


@pytest.fixture(scope="module")
def folder(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 copied real records (12 N, 12 A) in records/, two more as 250 Hz CSVs, and a truncated
    record on line 28 of labels.csv; patients P00-P12, two records each."""
    real, rows = _real(shared_data_module)
    chosen = [r for label, n in PER_CLASS.items() for r in [x for x in rows if x[1] == label][:n]]
    extra = [r for label in PER_CLASS for r in [x for x in rows if x[1] == label][PER_CLASS[label]:][:1]]
    root = tmp_path_factory.mktemp("signals") / "ecgs"
    (root / "records").mkdir(parents=True)
    table = []
    for k, (name, label) in enumerate(chosen):
        for suffix in (".hea", ".mat"):
            shutil.copyfile(real / f"{name}{suffix}", root / "records" / f"{name}{suffix}")
        record = f"records/{name}.hea" if k % 2 else f"records/{name}"  # header or record name
        table.append({"record": record, "label": label, "patient_id": f"P{k // 2:02d}"})
    for name, label in extra:
        _write_csv_record(real / f"{name}.hea", root / f"{name}.csv", 250.0)
        table.append({"record": f"{name}.csv", "label": label, "patient_id": "P12"})
    bad = chosen[0][0]
    (root / "B00001.hea").write_text((real / f"{bad}.hea").read_text().replace(bad, "B00001"))
    (root / "B00001.mat").write_bytes((real / f"{bad}.mat").read_bytes()[:500])
    table.append({"record": "B00001.hea", "label": "N", "patient_id": "P13"})
    pd.DataFrame(table).to_csv(root / "labels.csv", index=False)
    return root


def test_folder_reads_records_resamples_csvs_and_names_the_unreadable_one(folder, caplog):
    task = get_task(f"signals:{folder}", {"positive": "A"})
    assert task.target is TargetKind.BINARY and task.classes == ("N", "A")
    assert task.primary_metric == "auroc" and task.default_model == "resnet1d"
    with caplog.at_level(logging.WARNING, logger="iatros"):
        data = task.load(folder)
    assert len(data) == 26 and data.inputs.dtype == object
    assert np.bincount(data.targets).tolist() == [13, 13]
    assert "resampled to 300 Hz: 2 from 250 Hz" in data.source
    assert "1 skipped (labels.csv lines 28;" in data.source
    assert "B00001" not in data.source  # the source reaches config.json: no file names there
    assert any("line 28" in r.getMessage() and "B00001" in r.getMessage()
               and "truncated" in r.getMessage() for r in caplog.records)
    csv_lengths = [len(x) for x in data.inputs[24:]]
    assert csv_lengths == [6000, 6000]  # 20 s at 250 Hz -> 300 Hz
    assert len(set(data.patient_ids)) == 13


def test_folder_trains_resnet1d_with_auroc_and_explanations(folder, tmp_path):
    run = api.train("signals:" + str(folder), model="resnet1d", epochs=1, register=False,
                    eval_options=FAST, task_options={"positive": "A"}, params={"width": 8},
                    out=tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["primary_metric"] == "auroc"
    assert "auroc" in metrics["splits"]["test"]
    config = json.loads((run / "config.json").read_text())
    loader = config["data"]["loader"]  # the skip is named by its line, not its file name
    assert "labels.csv lines 28" in loader and "B00001" not in loader
    assert (run / "report.html").is_file() and (run / "explanations.json").is_file()
    results = api.predict(run, [folder / "records" / f"{_first(folder)}.hea"])
    assert results[0]["prediction"] in ("N", "A")


def _first(folder: Path) -> str:
    return pd.read_csv(folder / "labels.csv")["record"].iloc[0].split("/")[-1].removesuffix(".hea")


def test_multiclass_labels_score_macro_f1_and_missing_patients_warn(folder, tmp_path, caplog):
    frame = pd.read_csv(folder / "labels.csv").drop(columns="patient_id")
    frame.loc[:3, "label"] = "O"
    frame.to_csv(tmp_path / "three.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="iatros"):
        task = get_task(f"signals:{folder}", {"labels": str(tmp_path / "three.csv")})
    assert task.target is TargetKind.MULTICLASS and task.primary_metric == "f1"
    assert any("its own patient" in r.getMessage() for r in caplog.records)


def test_a_record_outside_the_folder_is_refused_naming_its_line(folder, tmp_path):
    frame = pd.read_csv(folder / "labels.csv")
    frame.loc[2, "record"] = "../outside.csv"
    frame.loc[5, "record"] = str(folder / "records" / "x.hea")  # absolute
    frame.to_csv(tmp_path / "out.csv", index=False)
    with pytest.raises(CorruptDataError, match=r"outside .*lines 4, 7"):
        get_task(f"signals:{folder}", {"labels": str(tmp_path / "out.csv")})


def test_a_link_leading_out_is_refused(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.csv").write_text("time,ecg\n0,1\n")
    (inner / "link.csv").symlink_to(tmp_path / "secret.csv")
    (inner / "labels.csv").write_text("record,label\nlink.csv,a\nother.csv,b\n")
    with pytest.raises(CorruptDataError, match="line 2"):
        get_task(f"signals:{inner}", {})


def test_a_single_class_is_a_clear_error_naming_the_file(folder, tmp_path):
    frame = pd.read_csv(folder / "labels.csv")
    frame["label"] = "N"
    frame.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(ConfigError, match=r"one\.csv.*single value"):
        get_task(f"signals:{folder}", {"labels": str(tmp_path / "one.csv")})


def test_hrv_gbm_trains_on_the_folder(folder, tmp_path):
    run = api.train("signals:" + str(folder), model="hrv-gbm", register=False, eval_options=FAST,
                    task_options={"positive": "A"}, params={"max_iter": 30}, out=tmp_path / "gbm")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["primary_metric"] == "auroc" and "auroc" in metrics["splits"]["test"]


def test_no_readable_record_of_a_class_is_a_clear_error(folder, tmp_path):
    frame = pd.read_csv(folder / "labels.csv")
    frame.loc[frame["label"] == "A", "record"] = [f"missing{k}.csv" for k in range(13)]
    frame.to_csv(tmp_path / "gone.csv", index=False)
    task = get_task(f"signals:{folder}", {"labels": str(tmp_path / "gone.csv")})
    with pytest.raises(CorruptDataError, match=r"gone\.csv: the readable records hold fewer than two"):
        task.load(folder)


@pytest.fixture(scope="module")
def two_lead_folder(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 20 s two-lead CSV excerpts (MLII, V1) of MIT-BIH record 101 at 360 Hz."""
    header = shared_data_module / "mitbih_arrhythmia" / "mitdb" / "101.hea"
    if not header.is_file():
        pytest.skip(f"MIT-BIH record 101 absent: {header}")
    signal = read_signal(header)
    root = tmp_path_factory.mktemp("two-lead")
    rows = []
    for k in range(6):
        part = signal.slice(20.0 * k, 20.0 * (k + 1))
        t = np.arange(len(part.data)) / part.fs
        pd.DataFrame({"time": t, "MLII": part.data[:, 0], "V1": part.data[:, 1]}).to_csv(
            root / f"r{k}.csv", index=False)
        rows.append({"record": f"r{k}.csv", "label": "ab"[k % 2], "patient_id": f"P{k}"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_a_chosen_channel_is_read_for_training_and_for_predict(two_lead_folder):
    from iatros.kinds import Modality
    from iatros.pipeline.inputs import read_inputs

    by_name = get_task(f"signals:{two_lead_folder}", {"channel": "V1"}).load(two_lead_folder)
    by_position = get_task(f"signals:{two_lead_folder}", {"channel": 1}).load(two_lead_folder)
    first = get_task(f"signals:{two_lead_folder}").load(two_lead_folder)
    v1 = resample(read_signal(two_lead_folder / "r0.csv").select(["V1"]), 300.0).data[:, 0]
    np.testing.assert_allclose(by_name.inputs[0], v1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_position.inputs[0], v1, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first.inputs[0], v1)
    config = {"task_options": {"channel": "V1"}, "model_params": {"fs": 300.0}}
    new = read_inputs(Modality.SIGNAL, [two_lead_folder / "r0.csv"], config)
    np.testing.assert_allclose(new.batch[0], by_name.inputs[0], rtol=1e-5, atol=1e-6)
    assert "channel 'V1'" in get_task(f"signals:{two_lead_folder}", {"channel": "V1"}).description


def test_an_unknown_channel_skips_every_record_with_a_clear_error(two_lead_folder):
    with pytest.raises(CorruptDataError, match="no listed record could be used"):
        get_task(f"signals:{two_lead_folder}", {"channel": "V5"}).load(two_lead_folder)
