"""af-ecg: the PhysioNet/CinC 2017 loader on real records, the challenge F1, rhythm features, and
both signal models trained end to end on a few dozen records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iatros import api
from iatros.data.transforms.signals import (
    RHYTHM_FEATURES,
    SignalAugment,
    rhythm_features,
    signal_dataset,
    standardise,
)
from iatros.errors import ConfigError, MissingDataError
from iatros.evaluate.metrics import score
from iatros.kinds import TargetKind
from iatros.tasks import get_task
from iatros.tasks.signals import AF_CLASSES, read_af_records

# records per class in the small root: Normal, AF, Other, Noisy
PER_CLASS = {"N": 16, "A": 10, "O": 10, "~": 4}
FAST = api.EvalOptions(n_boot=20)


def _real(shared: Path) -> Path:
    base = shared / "physionet2017_af" / "training2017"
    if not (base / "REFERENCE.csv").is_file():
        pytest.skip(f"PhysioNet 2017 records absent: {base}/REFERENCE.csv")
    return base


@pytest.fixture(scope="module")
def af_root(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real records (links), one truncated record, and a validation/ that repeats a record."""
    real = _real(shared_data_module)
    rows = [line.split(",") for line in (real / "REFERENCE.csv").read_text().split()]
    chosen = [r for label, n in PER_CLASS.items() for r in [x for x in rows if x[1] == label][:n]]
    root = tmp_path_factory.mktemp("af")
    train = root / "physionet2017_af" / "training2017"
    train.mkdir(parents=True)
    for name, _ in chosen:
        for suffix in (".hea", ".mat"):
            (train / f"{name}{suffix}").symlink_to(real / f"{name}{suffix}")
    bad = chosen[0][0]
    (train / "B00001.hea").write_text((real / f"{bad}.hea").read_text().replace(bad, "B00001"))
    (train / "B00001.mat").write_bytes((real / f"{bad}.mat").read_bytes()[:500])
    lines = [f"{n},{label}" for n, label in chosen] + ["B00001,N"]
    (train / "REFERENCE.csv").write_text("\n".join(lines) + "\n")
    val = root / "physionet2017_af" / "validation"
    val.mkdir()
    (val / "REFERENCE.csv").write_text(f"{chosen[1][0]},{chosen[1][1]}\n")
    return root


def test_loader_reads_real_records_counts_classes_and_names_skips(af_root):
    records = read_af_records(af_root / "physionet2017_af")
    assert len(records.names) == sum(PER_CLASS.values())
    assert np.bincount(records.labels).tolist() == list(PER_CLASS.values())
    assert [name for name, _ in records.skipped] == ["training2017/B00001"]
    assert "truncated" in records.skipped[0][1]
    assert len(records.duplicates) == 1 and records.duplicates[0].startswith("validation/")
    lengths = [len(s) / 300 for s in records.signals]
    assert min(lengths) >= 9 and max(lengths) <= 61

    data = get_task("af-ecg").load(af_root)
    assert len(data) == 40 and data.inputs.dtype == object
    assert len(set(data.patient_ids)) == 40  # each recording is its own patient
    assert "B00001" in data.source and "1 skipped" in data.source
    assert "Normal 16, AF 10, Other 10, Noisy 4" in data.source


def data_names(root: Path) -> list[str]:
    return read_af_records(root / "physionet2017_af", limit=2).names


def test_loader_without_the_data_says_where_to_put_it(tmp_path):
    with pytest.raises(MissingDataError, match="training2017"):
        get_task("af-ecg").load(tmp_path)


def test_challenge_f1_is_the_mean_f1_of_all_but_the_last_class():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = rng.dirichlet(np.ones(4), 200)
    p[np.arange(200), y] += 0.5 * rng.random(200)
    expected = f1_score(y, p.argmax(1), labels=[0, 1, 2], average="macro")
    assert score("challenge_f1", y, p / p.sum(1, keepdims=True), TargetKind.MULTICLASS) \
        == pytest.approx(expected)


def test_rhythm_features_of_a_real_record_and_of_unusable_ones(af_root):
    records = read_af_records(af_root / "physionet2017_af", limit=1)
    row = dict(zip(RHYTHM_FEATURES, rhythm_features(records.signals[0], 300.0), strict=True))
    assert 30 < row["hr_mean_bpm"] < 200 and 0 < row["rr_sdnn_ms"] < 500
    assert 0 < row["beat_corr_mean"] <= 1
    for x in (np.zeros(3000), np.zeros(100), np.full(3000, np.nan)):
        out = rhythm_features(x, 300.0)
        assert out.shape == (len(RHYTHM_FEATURES),) and np.isnan(out[1])


def test_signal_dataset_windows_pads_and_augments():
    records = np.empty(2, dtype=object)
    records[:] = [np.arange(12000, dtype=np.float32), np.ones(3000, dtype=np.float32)]
    params = {"fs": 300.0, "length_s": 30.0, "augment": {"crop": True, "scale": 0.2}}
    plain = signal_dataset(records, [0, 1], TargetKind.MULTICLASS, params=params)
    x, y = plain[0]
    assert x.shape == (1, 9000) and int(y) == 0
    assert np.allclose(x[0, :5].numpy(), standardise(records[0])[:5])
    short, _ = plain[1]
    assert short.shape == (1, 9000) and float(short.abs().sum()) == 0.0  # flat record, zero pad
    trained = signal_dataset(records, [0, 1], TargetKind.MULTICLASS, train=True, params=params)
    assert trained[0][0].shape == (1, 9000)
    with pytest.raises(ConfigError, match="unknown signal augmentation"):
        SignalAugment.from_dict({"flip": True})


@pytest.mark.parametrize(("model", "params"), [("resnet1d", {"width": 8}),
                                               ("hrv-gbm", {"max_iter": 30})])
def test_af_models_train_end_to_end_with_the_challenge_score(af_root, tmp_path, model, params):
    run = api.train("af-ecg", data_root=af_root, model=model, epochs=1, register=False,
                    eval_options=FAST, params=params, out=tmp_path / model)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["primary_metric"] == "challenge_f1"
    test = metrics["splits"]["test"]
    assert test["challenge_f1"]["n"] >= 5 and len(test["challenge_f1"]["ci95"]) == 2
    assert {"f1", "auroc"} <= set(test)
    config = json.loads((run / "config.json").read_text())
    assert "B00001" in config["data"]["loader"]
    assert (run / "report.html").is_file()
    explained = (run / "explanations.json").is_file()
    assert explained == (model == "resnet1d")  # saliency over time for networks only
    if explained:
        items = json.loads((run / "explanations.json").read_text())
        assert items and all((run / item["path"]).is_file() for item in items)
        assert all(item["caption"].split(" (true: ")[1].split(")")[0] in AF_CLASSES
                   for item in items)
        assert "saliency_1.png" in (run / "report.html").read_text()
    record = af_root / "physionet2017_af" / "training2017" / f"{data_names(af_root)[0]}.hea"
    results = api.predict(run, [record, af_root / "missing.hea"])
    good = [r for r in results if "error" not in r]
    assert len(good) == 1 and good[0]["prediction"] in AF_CLASSES
    assert any("missing.hea" in r.get("error", "") for r in results)
