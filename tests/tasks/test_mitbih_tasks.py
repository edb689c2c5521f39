"""mitbih-beats: real MIT-BIH records read into beat rows, the inter-patient split (DS1 trains, DS2
tests when a copy holds both), bad records skipped and named, and the beat models end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from iatros import api
from iatros.errors import MissingDataError
from iatros.models.beats import BeatFeatures, morphology
from iatros.tasks import get_task
from iatros.tasks.mitbih import DS2, read_beat_records

FAST = api.EvalOptions(n_boot=20)
DS1_PICK = ("101", "106", "119", "201", "209")  # N, V, S and F beats among them


def _copy(src: Path, dst: Path, name: str, as_name: str) -> None:
    for suffix in (".dat", ".atr"):
        shutil.copyfile(src / f"{name}{suffix}", dst / f"{as_name}{suffix}")
    header = (src / f"{name}.hea").read_text().replace(f"{name}.dat", f"{as_name}.dat")
    (dst / f"{as_name}.hea").write_text(header.replace(name, as_name, 1))


@pytest.fixture(scope="module")
def mitdb(shared_data_module: Path) -> Path:
    base = shared_data_module / "mitbih_arrhythmia" / "mitdb"
    if not all((base / f"{r}.atr").is_file() for r in DS1_PICK):
        pytest.skip(f"MIT-BIH records {DS1_PICK} absent under {base}")
    return base


@pytest.fixture(scope="module")
def ds1_root(mitdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five DS1 records, and a sixth whose signal file is cut short."""
    root = tmp_path_factory.mktemp("ds1")
    folder = root / "mitbih_arrhythmia" / "mitdb"
    folder.mkdir(parents=True)
    for name in DS1_PICK:
        _copy(mitdb, folder, name, name)
    _copy(mitdb, folder, "208", "208")
    data = (folder / "208.dat").read_bytes()
    (folder / "208.dat").write_bytes(data[:len(data) // 3])
    return root


@pytest.fixture(scope="module")
def full_root(mitdb: Path, ds1_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DS1 records and two more under DS2 names: a copy with both of de Chazal's sets."""
    root = tmp_path_factory.mktemp("full")
    folder = root / "mitbih_arrhythmia" / "mitdb"
    shutil.copytree(ds1_root / "mitbih_arrhythmia" / "mitdb", folder)
    _copy(mitdb, folder, "118", "100")
    _copy(mitdb, folder, "215", "232")
    _copy(mitdb, folder, "205", "202")  # 202 is the man of DS1's 201
    return root


@pytest.fixture(scope="module")
def beat_run(ds1_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train("mitbih-beats", data_root=ds1_root, out=tmp_path_factory.mktemp("r") / "run",
                     model="beat-logreg", eval_options=FAST, register=False)


def test_a_truncated_record_is_skipped_and_named_and_the_rest_load(ds1_root):
    records = read_beat_records(ds1_root / "mitbih_arrhythmia" / "mitdb")
    assert records.records == list(DS1_PICK)
    assert [name for name, _ in records.skipped] == ["208"] and "208" in records.summary()


def test_ds1_alone_splits_by_record_and_every_beat_has_a_row(ds1_root):
    task = get_task("mitbih-beats")
    data = task.load(ds1_root)
    assert data.split is None and data.inputs.shape[1] == len(data.feature_names)
    split = task.split(data)
    parts = [set(data.patient_ids[split.part(p)]) for p in ("train", "val", "test")]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set(data.attributes.columns) == {"sex", "age_group"}


def test_a_copy_with_ds2_records_tests_on_ds2_only(full_root):
    task = get_task("mitbih-beats")
    data = task.load(full_root)
    split = task.split(data)
    assert set(data.patient_ids[split.test]) == {"100", "232"} <= set(DS2)
    assert not set(data.patient_ids[split.train]) & set(DS2)
    assert "202: the same patient as DS1 record 201" in data.source


def test_missing_records_say_where_and_where_to_get_them(tmp_path):
    with pytest.raises(MissingDataError, match="physionet.org/content/mitdb"):
        get_task("mitbih-beats").load(tmp_path)


def test_a_beat_model_trains_and_evaluate_on_a_full_copy_scores_ds2(beat_run, full_root):
    config = json.loads((beat_run / "config.json").read_text())
    assert config["model"] == "beat-logreg" and get_task("mitbih-beats").default_model == "beat-cnn"
    result = api.evaluate(beat_run, data_root=full_root, eval_options=FAST)
    assert result["external"] and result["split"] == "test"
    assert result["splits"]["test"]["f1"]["n"] == len(
        get_task("mitbih-beats").load(full_root).targets[
            np.isin(get_task("mitbih-beats").load(full_root).patient_ids, ["100", "232"])])


def test_beat_features_summarise_the_qrs_and_refuse_raw_recordings():
    waves = np.zeros((2, 234))
    waves[1, 90] = 5.0  # a tall R wave at the peak offset
    summary = morphology(waves)
    assert summary[1, -5] > summary[0, -5]  # qrs_range
    with pytest.raises(Exception, match="RR features then the beat's samples"):
        BeatFeatures().transform(np.zeros((2, 8)))


def test_the_cnn_trains_a_few_steps_on_beats(ds1_root, tmp_path):
    run = api.train("mitbih-beats", data_root=ds1_root, out=tmp_path / "cnn", model="beat-cnn",
                    epochs=1, eval_options=FAST, register=False,
                    params={"width": 8})
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["splits"]["test"]["accuracy"]["value"] <= 1.0
    explained = json.loads((run / "explanations.json").read_text())
    items = explained["items"] if isinstance(explained, dict) else explained
    assert items and all((run / item["path"]).is_file() for item in items)
    assert all(item["top_rr_feature"].startswith("rr_") for item in items)


def test_beat_attributions_add_up_to_the_change_from_an_on_time_flat_beat():
    import torch

    from iatros.data.signals.beats import RR_FEATURES
    from iatros.explain.beat import beat_attribution, on_time_baseline
    from iatros.models.beats import BeatNet

    torch.manual_seed(0)
    net = BeatNet(8 + 234, 5, width=8).eval()
    row = torch.randn(242)
    row[:8] = torch.tensor([0.5, 1.2, 0.8, 0.8, 0.6, 1.5, 0.6, 2.4])
    attr = beat_attribution(net, row, 1, RR_FEATURES, steps=200)
    base = torch.as_tensor(on_time_baseline(row.numpy(), RR_FEATURES))
    with torch.no_grad():
        change = float(net(row[None])[0, 1] - net(base[None])[0, 1])
    assert attr.sum() == pytest.approx(change, abs=0.02 + 0.02 * abs(change))
    assert on_time_baseline(row.numpy(), RR_FEATURES)[4] == 1.0  # pre / local RR of an on-time beat


def test_af_windows_are_labelled_from_the_rhythm_annotations(ds1_root):
    from iatros.tasks.mitbih import AF_WINDOW_FS, AF_WINDOW_S

    data = get_task("mitbih-af").load(ds1_root)
    assert data.inputs.shape[1] == int(AF_WINDOW_S * AF_WINDOW_FS)
    per_record = {r: int(data.targets[data.patient_ids == r].sum()) for r in DS1_PICK}
    # of these records only 201 holds atrial fibrillation (about 10 minutes of its 30)
    assert per_record.pop("201") >= 15 and not any(per_record.values())


def test_af_windows_train_and_cross_validate_with_every_af_record_held_out_once(ds1_root, tmp_path):
    run = api.train("mitbih-af", data_root=ds1_root, out=tmp_path / "af", model="hrv-gbm",
                    params={"max_iter": 30}, cv=2, eval_options=FAST, register=False)
    table = json.loads((run / "cross_validation.json").read_text())
    assert table["folds"] == 2 and table["n"] > 0


def test_predict_on_a_new_recording_classifies_each_detected_beat(beat_run, mitdb, tmp_path):
    import pandas as pd

    from iatros.data.signals import read_annotations, read_signal
    from iatros.data.signals.beats import aami_beats

    signal = read_signal(mitdb / "119.hea").slice(0.0, 60.0)
    t = np.arange(len(signal.data)) / signal.fs
    pd.DataFrame({"time": t, "MLII": signal.data[:, 0], "V1": signal.data[:, 1]}).to_csv(
        tmp_path / "minute.csv", index=False)
    pd.DataFrame({"time": t, "MLII": np.zeros(len(t))}).to_csv(tmp_path / "flat.csv", index=False)
    results = api.predict(beat_run, [tmp_path / "minute.csv", tmp_path / "flat.csv"])
    beats = [r for r in results if "error" not in r]
    reference = aami_beats(read_annotations(mitdb / "119.hea")).samples
    n_reference = int(np.sum(reference < 60 * signal.fs))
    assert abs(len(beats) - n_reference) <= 3
    assert all("@" in r["input"] and r["prediction"] in ("N", "S", "V", "F", "Q") for r in beats)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in beats)
    assert [r["input"] for r in results if "error" in r] == [str(tmp_path / "flat.csv")]
